//! etcd's v3lock service: Lock waits in line under `<name>/` (see `crate::recipe`) and
//! answers the key that exists while the lock is held; Unlock deletes it. The key's create
//! revision (in the answer's kv, by a Range on the key) is the fencing token.

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request as Command;
use conclave_proto::etcdserverpb::DeleteRangeRequest;
use conclave_proto::v3lockpb::{
    LockRequest, LockResponse, UnlockRequest, UnlockResponse, lock_server::Lock,
};
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::recipe;
use crate::watch::WatchHub;

#[derive(Clone)]
pub struct LockService {
    node: Arc<Node>,
    hub: Arc<WatchHub>,
}

impl LockService {
    pub fn new(node: Arc<Node>, hub: Arc<WatchHub>) -> Self {
        Self { node, hub }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        // A lease that does not exist fails the recipe's put, in etcd's words.
        let held = recipe::acquire(
            &self.node,
            &self.hub,
            &caller,
            &req.name,
            req.lease,
            Vec::new(),
        )
        .await?;
        Ok(Response::new(LockResponse {
            header: held.header,
            key: held.key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let delete = DeleteRangeRequest {
            key: request.into_inner().key,
            ..Default::default()
        };
        caller.check_delete(&delete)?;
        let applied = self
            .node
            .router
            .propose_for(&caller, Command::DeleteRange(delete))
            .await?;
        Ok(Response::new(UnlockResponse {
            header: self.node.header(applied.revision),
        }))
    }
}
