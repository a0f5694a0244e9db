//! conclave's member-to-member service on the client port: a follower's forwarded writes,
//! read-index requests and member attributes, served by the leader.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    Command, ProposeResponse, PublishMemberRequest, PublishMemberResponse, ReadIndexRequest,
    ReadIndexResponse, internal_server::Internal,
};
use openraft::async_runtime::WatchReceiver;
use tonic::{Request, Response, Status};

use crate::node::{Node, applied_to_wire, member_from_wire};

#[derive(Clone)]
pub struct InternalService {
    node: Arc<Node>,
}

impl InternalService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn propose(
        &self,
        request: Request<Command>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let request = request
            .into_inner()
            .request
            .ok_or_else(|| Status::invalid_argument("etcdserver: empty proposal"))?;
        let applied = self.node.propose(request).await?;
        Ok(Response::new(applied_to_wire(applied)))
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.node.read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn publish_member(
        &self,
        request: Request<PublishMemberRequest>,
    ) -> Result<Response<PublishMemberResponse>, Status> {
        let req = request.into_inner();
        let member = req
            .member
            .ok_or_else(|| Status::invalid_argument("etcdserver: member is not provided"))?;
        let known = self
            .node
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .get_node(&req.id)
            .is_some();
        if !known {
            return Err(Status::not_found("etcdserver: member not found"));
        }
        self.node
            .set_member(req.id, member_from_wire(member))
            .await?;
        Ok(Response::new(PublishMemberResponse {}))
    }
}
