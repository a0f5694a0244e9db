//! etcd's Lease service: grants and revokes go through Raft; keep-alives and remaining TTLs
//! are the leader's (see `crate::lease`).

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request as Command;
use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, lease_server::Lease,
};
use conclave_store::RequestError;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::error::answer;
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::node::Node;
use conclave_store::Access;

/// etcd's answer to a TTL above the largest.
const TOO_LARGE_TTL: &str = "etcdserver: too large lease TTL";
/// Server-chosen IDs that collided with an existing lease before giving up (never, in practice).
const ID_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct LeaseService {
    node: Arc<Node>,
    lessor: Arc<Lessor>,
    min_ttl: i64,
}

impl LeaseService {
    pub fn new(node: Arc<Node>, lessor: Arc<Lessor>, min_ttl: i64) -> Self {
        Self {
            node,
            lessor,
            min_ttl,
        }
    }

    /// One keep-alive, as the gateway serves it.
    pub async fn keep_alive_once(
        &self,
        req: LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        let ttl = self.lessor.keep_alive(req.id).await?;
        Ok(LeaseKeepAliveResponse {
            header: self.node.header(self.node.store.current_revision()),
            id: req.id,
            ttl,
        })
    }

    async fn grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range(TOO_LARGE_TTL));
        }
        let ttl = req.ttl.max(self.min_ttl);
        let chosen = req.id != 0;
        for _ in 0..ID_ATTEMPTS {
            let id = if chosen {
                req.id
            } else {
                crate::ids::random_lease_id()
            };
            let command = Command::LeaseGrant(LeaseGrantRequest { ttl, id });
            let applied = self.node.router.propose(command).await?;
            if !chosen && applied.result == Err(RequestError::LeaseExists) {
                continue;
            }
            let (mut resp, revision): (LeaseGrantResponse, i64) = answer(applied)?;
            resp.header = self.node.header(revision);
            return Ok(resp);
        }
        Err(Status::internal("could not choose a free lease ID"))
    }
}

impl LeaseService {
    /// Whether `caller` may have `access` to every key attached to lease `id`.
    fn check_lease_keys(&self, caller: &Caller, id: i64, access: Access) -> Result<(), Status> {
        if caller.is_root() {
            return Ok(());
        }
        if let Some(lease) = self.node.store.lease(id) {
            for key in &lease.keys {
                caller.check(key, &[], access)?;
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.node.auth.caller(&request)?;
        Ok(Response::new(self.grant(request.into_inner()).await?))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let id = request.into_inner().id;
        // Revoking deletes the lease's keys: the caller must be allowed to write every one.
        self.check_lease_keys(&caller, id, Access::Write)?;
        let applied = self
            .node
            .router
            .propose_for(&caller, Command::LeaseRevoke(LeaseRevokeRequest { id }))
            .await?;
        match applied.result {
            Ok(_) => Ok(Response::new(LeaseRevokeResponse {
                header: self.node.header(applied.revision),
            })),
            Err(e) => Err(crate::error::request_status(&e)),
        }
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.node.auth.caller(&request)?;
        let mut requests = request.into_inner();
        let (out, responses) = mpsc::channel(16);
        let node = self.node.clone();
        let lessor = self.lessor.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                let answer = lessor
                    .keep_alive(req.id)
                    .await
                    .map(|ttl| LeaseKeepAliveResponse {
                        header: node.header(node.store.current_revision()),
                        id: req.id,
                        ttl,
                    })
                    .map_err(Status::from);
                let failed = answer.is_err();
                if out.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        // The names of the lease's keys only for a caller who may read every one (etcd's fix
        // for CVE-2023-32082): otherwise the whole answer is refused, as etcd refuses it.
        if req.keys {
            self.check_lease_keys(&caller, req.id, Access::Read)?;
        }
        Ok(Response::new(self.lessor.time_to_live(req).await?))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.auth.caller(&request)?;
        let leases = self
            .node
            .store
            .leases()
            .into_iter()
            .map(|l| LeaseStatus { id: l.id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.node.header(self.node.store.current_revision()),
            leases,
        }))
    }
}
