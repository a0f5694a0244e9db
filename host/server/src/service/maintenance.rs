//! The Maintenance service: status and health for `etcdctl endpoint status|health`, alarms
//! (replicated: raised by the quota and the corruption check, cleared by `alarm disarm`),
//! hashes for `endpoint hash|hashkv`, and defragmentation, which on an LSM is a major
//! compaction and does not stop writes.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use conclave_proto::conclavepb::command::Request as Command;
use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse, alarm_request::AlarmAction, maintenance_server::Maintenance,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::backup;
use crate::config::ETCD_API_VERSION;
use crate::error::{ClusterError, answer};
use crate::limits::REQUEST_TIMEOUT;
use crate::node::Node;

/// Bytes per Snapshot stream message (etcd sends 32 KiB).
const SNAPSHOT_CHUNK: usize = 64 * 1024;

#[derive(Clone)]
pub struct MaintenanceService {
    node: Arc<Node>,
    /// Where a snapshot being streamed is written first.
    scratch: PathBuf,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>, scratch: PathBuf) -> Self {
        Self { node, scratch }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: {what} is not supported by this conclave version"
    ))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        let alarm = AlarmType::try_from(req.alarm).unwrap_or(AlarmType::None);
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => Ok(Response::new(AlarmResponse {
                header: self.node.header(self.node.store.current_revision()),
                alarms: self.node.store.alarms(alarm),
            })),
            Ok(AlarmAction::Activate | AlarmAction::Deactivate) => {
                caller.require_root()?;
                let (mut resp, revision): (AlarmResponse, i64) =
                    answer(self.node.router.propose(Command::Alarm(req)).await?)?;
                resp.header = self.node.header(revision);
                Ok(Response::new(resp))
            }
            Err(_) => Err(Status::invalid_argument("etcdserver: unknown alarm action")),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.node.blocking(|s| Ok(s.status())).await?;
        let raft = self.node.cluster.status();
        let db_size = i64::try_from(s.disk_bytes).unwrap_or(i64::MAX);
        let mut errors = if raft.leader.is_none() {
            vec!["etcdserver: no leader".to_string()]
        } else {
            Vec::new()
        };
        // As etcd lists them: each alarm in its text form.
        for a in self.node.store.alarms(AlarmType::None) {
            let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
            errors.push(format!("memberID:{} alarm:{name} ", a.member_id));
        }
        Ok(Response::new(StatusResponse {
            header: self.node.header(s.revision),
            version: ETCD_API_VERSION.into(),
            db_size,
            leader: raft.leader.unwrap_or(0),
            raft_index: raft.last_log_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors,
            db_size_in_use: db_size,
            is_learner: raft.is_learner,
            storage_version: String::new(),
            db_size_quota: self
                .node
                .router
                .quota()
                .map_or(0, |q| i64::try_from(q).unwrap_or(i64::MAX)),
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        self.node.blocking(|s| s.defragment()).await?;
        Ok(Response::new(DefragmentResponse {
            header: self.node.header(self.node.store.current_revision()),
        }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let h = self.node.blocking(|s| s.hash_all()).await?;
        Ok(Response::new(HashResponse {
            header: self.node.header(h.hash_revision),
            hash: h.hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let revision = request.into_inner().revision;
        Ok(Response::new(self.node.hash_kv(revision).await?))
    }

    type SnapshotStream =
        Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>>;

    /// The whole state, as of now, in etcd's snapshot format or, when the client asks for it
    /// (see [`backup::Format::requested`]), the store's: written to a file first (so the
    /// stream can say how much remains, as etcd's does), then sent in chunks.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let asked = request
            .metadata()
            .get(conclave_proto::SNAPSHOT_FORMAT_METADATA)
            .map(|v| v.as_bytes());
        let format = backup::Format::requested(asked).ok_or_else(|| {
            Status::invalid_argument(format!(
                "conclave: {} must be etcd or conclave",
                conclave_proto::SNAPSHOT_FORMAT_METADATA
            ))
        })?;
        let store = self.node.store.clone();
        let scratch = self.scratch.clone();
        let (file, info) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&scratch)?;
            let path = backup::temp_path(&scratch);
            let info = backup::write_file(&store, &path, format)?;
            let file = std::fs::File::open(&path)?;
            // The open file stays readable; nothing is left behind if the client goes away.
            std::fs::remove_file(&path)?;
            Ok::<_, std::io::Error>((file, info))
        })
        .await
        .map_err(|e| Status::internal(format!("etcdserver: {e}")))?
        .map_err(|e| Status::internal(format!("etcdserver: cannot write the snapshot: {e}")))?;
        tracing::info!(
            revision = info.revision,
            bytes = info.bytes,
            "sending a snapshot to a client"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let header = self.node.header(info.revision);
        tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut remaining = info.bytes;
            loop {
                let mut blob = vec![0u8; SNAPSHOT_CHUNK];
                let n = match std::io::Read::read(&mut file, &mut blob) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!(
                            "etcdserver: reading the snapshot: {e}"
                        ))));
                        return;
                    }
                };
                blob.truncate(n);
                remaining = remaining.saturating_sub(n as u64);
                let message = SnapshotResponse {
                    header,
                    remaining_bytes: remaining,
                    blob,
                    version: ETCD_API_VERSION.into(),
                };
                if tx.blocking_send(Ok(message)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let target = request.into_inner().target_id;
        let node = &self.node;
        if !node.cluster.is_leader() {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        let is_voter = node.cluster.membership().voters.contains(&target);
        if !is_voter {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        if target != node.identity.member_id {
            match node.cluster.move_leadership(target, REQUEST_TIMEOUT).await {
                Ok(()) => {}
                Err(ClusterError::TimedOut) => {
                    return Err(Status::unavailable(
                        "etcdserver: request timed out, leader transfer took too long",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Response::new(MoveLeaderResponse {
            header: node.header(node.store.current_revision()),
        }))
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        Err(not_yet("Downgrade"))
    }
}
