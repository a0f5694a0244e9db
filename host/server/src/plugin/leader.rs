//! What a plugin thread on the leader works with, whatever its world: the plugin's name, this
//! member's plugins and the parts of the member it uses, a runtime handle to wait on async work from its thread,
//! and the term it started in: it proposes only while this member still leads in that term.

use std::sync::Arc;

use std::time::Instant;

use conclave_plugin::{Compiled, Limits, Output, PluginError, World};
use conclave_proto::conclavepb::command::Request;
use conclave_proto::conclavepb::{PluginRecord, PluginSpec};
use conclave_store::{RequestError, Response};
use tokio::runtime::Handle;

use super::Plugins;
use super::error::RunError;
use crate::cluster_view::ClusterView;
use crate::router::Router;

/// What the plugin runtime uses of its member: who leads and the cluster's shape (election
/// hooks see it), where plugin outputs go, and the member's name.
#[derive(Clone)]
pub struct MemberParts {
    pub cluster: ClusterView,
    pub router: Arc<Router>,
    pub name: String,
}

pub struct OnLeader {
    pub name: String,
    pub plugins: Arc<Plugins>,
    pub member: MemberParts,
    pub runtime: Handle,
    pub term: u64,
}

/// The version a thread runs, compiled, with its registry record.
pub struct Current {
    pub record: PluginRecord,
    pub spec: PluginSpec,
    pub compiled: Compiled,
    pub limits: Limits,
}

impl OnLeader {
    /// The plugin's current version, compiled, marked `starting`; None if it is no longer
    /// registered or no longer of `world` (the thread then stops, and the supervisor starts
    /// what the registry holds now).
    pub fn current(&self, world: World) -> Result<Option<Current>, RunError> {
        let Some(record) = self
            .plugins
            .store
            .plugin(&self.name)
            .map_err(RunError::Registry)?
        else {
            return Ok(None);
        };
        let Some(spec) = record.versions.last().cloned() else {
            return Ok(None);
        };
        if World::parse(&spec.world) != Some(world) {
            return Ok(None);
        }
        self.plugins.statuses.starting(&self.name, spec.version);
        let compiled = self.plugins.compiled(&spec)?;
        let limits = Limits::from_deploy(spec.memory_limit_bytes, spec.timeout_ms, spec.fuel);
        Ok(Some(Current {
            record,
            spec,
            compiled,
            limits,
        }))
    }

    /// Whether this member still leads in the term the thread started in.
    pub fn leading(&self) -> bool {
        self.member.cluster.is_leader() && self.member.cluster.term() == self.term
    }

    /// Proposes `request` (what it carries: `what`, for the error) and waits until it is
    /// applied here; the store's answer. Refused once this member no longer leads in the
    /// thread's term, and never forwarded to another leader (`Router::propose_as_leader`).
    pub fn propose(
        &self,
        what: &'static str,
        request: Request,
    ) -> Result<Result<Response, RequestError>, RunError> {
        if !self.leading() {
            return Err(RunError::NotLeader);
        }
        let applied = self
            .runtime
            .block_on(self.member.router.propose_as_leader(request, self.term))
            .map_err(|error| RunError::NotCommitted { what, error })?;
        Ok(applied.result)
    }

    /// Runs one call into the plugin and counts it in the plugin's status (`events` inputs,
    /// and the outputs it returned).
    pub fn timed<R: Counted>(
        &self,
        events: u64,
        call: impl FnOnce() -> Result<R, PluginError>,
    ) -> Result<R, RunError> {
        let took = Instant::now();
        let result = call()?;
        self.plugins
            .statuses
            .call(&self.name, took.elapsed(), events, result.outputs());
        Ok(result)
    }
}

/// How many outputs a call's answer carries, for the counters.
pub trait Counted {
    fn outputs(&self) -> u64 {
        0
    }
}

impl Counted for () {}
impl Counted for Option<u64> {}
impl Counted for Vec<Output> {
    fn outputs(&self) -> u64 {
        self.len() as u64
    }
}
