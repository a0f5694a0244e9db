//! conclave's Plugin service: deploy (validated here, then stored in the replicated registry
//! through Raft), list, status, logs, rollback and remove. What only the leader knows — how
//! its runtime is doing with each plugin, and the plugin's log — is asked of the leader.

use std::sync::Arc;

use conclave_plugin::{AggregatorInstance, HookInstance, Limits, PluginError, World};
use conclave_proto::conclavepb::{
    PluginChanged, PluginDeploy, PluginDeployRequest, PluginDeployResponse, PluginListRequest,
    PluginListResponse, PluginLogsRequest, PluginLogsResponse, PluginRecord, PluginRemove,
    PluginRemoveRequest, PluginRemoveResponse, PluginRollback, PluginRollbackRequest,
    PluginRollbackResponse, PluginSpec, PluginStatus, PluginStatusRequest, PluginStatusResponse,
    command::Request as Command, member_request::Call, plugin_server::Plugin,
};
use conclave_store::RequestError;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::error::{answer, request_status};
use crate::limits::MAX_PLUGIN_BYTES;
use crate::node::Node;
use crate::plugin::{Plugins, StoreReads};

/// The longest plugin name: it is part of keys in the registry and of thread names.
const MAX_NAME: usize = 64;

#[derive(Clone)]
pub struct PluginService {
    node: Arc<Node>,
    plugins: Arc<Plugins>,
}

impl PluginService {
    pub fn new(node: Arc<Node>, plugins: Arc<Plugins>) -> Self {
        Self { node, plugins }
    }

    /// Whether what only the leader knows is to be asked of another member: one leads and it
    /// is not this one. With no leader known, this member answers with what it has.
    fn ask_leader(&self) -> bool {
        !self.node.cluster.is_leader() && self.node.cluster.leader_peer().is_some()
    }

    /// The registry with this member's runtime figures (the leader's, when it leads).
    pub async fn list_here(&self) -> Result<PluginListResponse, Status> {
        let registry = self.node.blocking(|store| store.plugins()).await?;
        let plugins = registry
            .iter()
            .map(|(name, record)| self.status_of(name, record))
            .collect();
        Ok(PluginListResponse {
            header: self.node.header(self.node.store.current_revision()),
            plugins,
        })
    }

    pub async fn status_here(&self, name: String) -> Result<PluginStatusResponse, Status> {
        let record = self.record(&name).await?;
        Ok(PluginStatusResponse {
            header: self.node.header(self.node.store.current_revision()),
            status: Some(self.status_of(&name, &record)),
        })
    }

    pub async fn logs_here(&self, name: String) -> Result<PluginLogsResponse, Status> {
        self.record(&name).await?;
        Ok(PluginLogsResponse {
            header: self.node.header(self.node.store.current_revision()),
            lines: self.plugins.logs.lines(&name),
        })
    }

    /// The registry's current record of `name`.
    async fn record(&self, name: &str) -> Result<PluginRecord, Status> {
        let key = name.to_string();
        self.node
            .blocking(move |store| store.plugin(&key))
            .await?
            .ok_or_else(|| request_status(&RequestError::PluginNotFound))
    }

    /// A status report: the registry's entry and, on the leader, its runtime's figures.
    fn status_of(&self, name: &str, record: &PluginRecord) -> PluginStatus {
        let mut status = PluginStatus {
            spec: record.versions.last().cloned(),
            mark: record.mark,
            versions: record.versions.iter().map(|v| v.version).collect(),
            ..Default::default()
        };
        if self.node.cluster.is_leader() {
            status.leader = self.node.me.name.clone();
            self.plugins.statuses.fill(name, &mut status);
        } else {
            status.state = "unknown".into();
        }
        status
    }

    async fn change(&self, command: Command) -> Result<(PluginChanged, i64), Status> {
        answer(self.node.router.propose(command).await?)
    }
}

fn check_name(name: &str) -> Result<(), Status> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "conclave: invalid plugin name {name:?}: 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A refused deploy: the plugin's fault, in its words.
fn refused(e: PluginError) -> Status {
    Status::invalid_argument(format!("conclave: plugin refused: {e}"))
}

#[tonic::async_trait]
impl Plugin for PluginService {
    async fn deploy(
        &self,
        request: Request<PluginDeployRequest>,
    ) -> Result<Response<PluginDeployResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        check_name(&req.name)?;
        if req.wasm.len() > MAX_PLUGIN_BYTES {
            return Err(Status::invalid_argument(format!(
                "conclave: plugin refused: the component is {} bytes, the limit is {MAX_PLUGIN_BYTES}",
                req.wasm.len()
            )));
        }
        let config = if req.config.trim().is_empty() {
            "{}".to_string()
        } else {
            req.config.clone()
        };
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&config) {
            return Err(Status::invalid_argument(format!(
                "conclave: plugin refused: the config is not JSON: {e}"
            )));
        }
        let limits = Limits::from_deploy(req.memory_limit_bytes, req.timeout_ms, req.fuel);
        // Compile it and run its init with the config, here and now: what would fail on the
        // leader fails the deploy instead, and nothing is stored.
        let plugins = self.plugins.clone();
        let store = self.node.store.clone();
        let (wasm, check_config, name) = (req.wasm, config.clone(), req.name.clone());
        let (wasm, world) = tokio::task::spawn_blocking(move || {
            let compiled = plugins.compile(&wasm)?;
            let reads = Arc::new(StoreReads(store));
            let log = plugins.log_sink(&name);
            match compiled.world {
                World::Aggregator => {
                    AggregatorInstance::start(
                        &plugins.engine,
                        &compiled,
                        limits,
                        &check_config,
                        reads,
                        log,
                    )?;
                }
                World::ElectionHook => {
                    HookInstance::start(
                        &plugins.engine,
                        &compiled,
                        limits,
                        &check_config,
                        reads,
                        log,
                    )?;
                }
            }
            Ok::<_, PluginError>((wasm, compiled.world))
        })
        .await
        .map_err(|e| Status::internal(format!("plugin check failed: {e}")))?
        .map_err(refused)?;
        let spec = PluginSpec {
            name: req.name.clone(),
            world: world.as_str().to_string(),
            digest: Sha256::digest(&wasm).to_vec(),
            config,
            memory_limit_bytes: limits.memory_bytes,
            timeout_ms: limits.timeout.as_millis() as u64,
            fuel: limits.fuel.unwrap_or(0),
            ..Default::default()
        };
        // Held to the deploy limit (see `Router::proposal_limit`), here and on the leader.
        let (changed, revision) = self
            .change(Command::PluginDeploy(PluginDeploy {
                spec: Some(spec),
                wasm,
            }))
            .await?;
        let version = changed.version;
        let record = self.record(&req.name).await?;
        let spec = record
            .versions
            .iter()
            .find(|v| v.version == version)
            .cloned();
        Ok(Response::new(PluginDeployResponse {
            header: self.node.header(revision),
            spec,
        }))
    }

    async fn list(
        &self,
        request: Request<PluginListRequest>,
    ) -> Result<Response<PluginListResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if self.ask_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::PluginList(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.list_here().await.map(Response::new)
    }

    async fn status(
        &self,
        request: Request<PluginStatusRequest>,
    ) -> Result<Response<PluginStatusResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if self.ask_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::PluginStatus(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.status_here(req.name).await.map(Response::new)
    }

    async fn logs(
        &self,
        request: Request<PluginLogsRequest>,
    ) -> Result<Response<PluginLogsResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if self.ask_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::PluginLogs(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.logs_here(req.name).await.map(Response::new)
    }

    async fn rollback(
        &self,
        request: Request<PluginRollbackRequest>,
    ) -> Result<Response<PluginRollbackResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let name = request.into_inner().name;
        check_name(&name)?;
        let (changed, revision) = self
            .change(Command::PluginRollback(PluginRollback {
                name: name.clone(),
            }))
            .await?;
        let record = self.record(&name).await?;
        let spec = record
            .versions
            .iter()
            .find(|v| v.version == changed.version)
            .cloned();
        Ok(Response::new(PluginRollbackResponse {
            header: self.node.header(revision),
            spec,
        }))
    }

    async fn remove(
        &self,
        request: Request<PluginRemoveRequest>,
    ) -> Result<Response<PluginRemoveResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let name = request.into_inner().name;
        check_name(&name)?;
        let (_, revision) = self
            .change(Command::PluginRemove(PluginRemove { name: name.clone() }))
            .await?;
        self.plugins.logs.forget(&name);
        Ok(Response::new(PluginRemoveResponse {
            header: self.node.header(revision),
        }))
    }
}
