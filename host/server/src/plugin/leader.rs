//! What a plugin thread on the leader works with, whatever its world: the plugin's name, this
//! member's plugins, node and lessor, a runtime handle to wait on async work from its thread,
//! and the term it started in: it proposes only while this member still leads in that term.

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request;
use conclave_store::{RequestError, Response};
use tokio::runtime::Handle;

use super::Plugins;
use crate::lease::Lessor;
use crate::node::Node;

pub struct OnLeader {
    pub name: String,
    pub plugins: Arc<Plugins>,
    pub node: Arc<Node>,
    pub lessor: Arc<Lessor>,
    pub runtime: Handle,
    pub term: u64,
}

impl OnLeader {
    /// Whether this member still leads in the term the thread started in.
    pub fn leading(&self) -> bool {
        self.node.is_leader() && self.node.term() == self.term
    }

    /// Proposes `request` (what it carries: `what`, for the error) and waits until it is
    /// applied here; the store's answer. Refused once this member no longer leads.
    pub fn propose(
        &self,
        what: &str,
        request: Request,
    ) -> Result<Result<Response, RequestError>, String> {
        if !self.leading() {
            return Err("no longer the leader".into());
        }
        let applied = self
            .runtime
            .block_on(self.node.propose(request))
            .map_err(|s| format!("{what} not committed: {}", s.message()))?;
        Ok(applied.result)
    }
}
