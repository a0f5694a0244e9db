//! conclave's member-to-member service on the client port: a follower's forwarded writes,
//! read-index requests and member attributes, served by the leader.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    ProposeBatchRequest, ProposeBatchResponse, PublishMemberRequest, PublishMemberResponse,
    ReadIndexRequest, ReadIndexResponse, internal_server::Internal,
};
use openraft::async_runtime::WatchReceiver;
use tonic::{Request, Response, Status};

use crate::forward::to_outcome;
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
    async fn propose_batch(
        &self,
        request: Request<ProposeBatchRequest>,
    ) -> Result<Response<ProposeBatchResponse>, Status> {
        // All at once: Raft puts them in as few log appends as it can.
        let proposals = request.into_inner().commands.into_iter().map(|command| {
            let node = self.node.clone();
            async move {
                let request = command
                    .request
                    .ok_or_else(|| Status::invalid_argument("etcdserver: empty proposal"))?;
                node.propose(request).await.map(applied_to_wire)
            }
        });
        let outcomes = futures::future::join_all(proposals)
            .await
            .into_iter()
            .map(to_outcome)
            .collect();
        Ok(Response::new(ProposeBatchResponse { outcomes }))
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
