//! conclave's member-to-member service on the client port: a follower's forwarded writes,
//! read-index requests and member attributes, served by the leader.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    ProposeBatchRequest, ProposeBatchResponse, PublishMemberRequest, PublishMemberResponse,
    ReadIndexRequest, ReadIndexResponse, internal_server::Internal,
};
use conclave_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use openraft::async_runtime::WatchReceiver;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::forward::to_outcome;
use crate::lease::Lessor;
use crate::node::{Node, applied_to_wire, member_from_wire};

#[derive(Clone)]
pub struct InternalService {
    node: Arc<Node>,
    lessor: Arc<Lessor>,
}

impl InternalService {
    pub fn new(node: Arc<Node>, lessor: Arc<Lessor>) -> Self {
        Self { node, lessor }
    }
}

/// Only members call these (with auth on, a user's token is not enough: a forwarded write was
/// checked by the member that forwarded it, and is not checked again).
fn member_only<T>(node: &Node, request: &Request<T>) -> Result<(), Status> {
    match node.auth.caller(request)? {
        Caller::Anyone | Caller::Member => Ok(()),
        Caller::User { .. } => Err(crate::auth::PERMISSION_DENIED.into()),
    }
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn propose_batch(
        &self,
        request: Request<ProposeBatchRequest>,
    ) -> Result<Response<ProposeBatchResponse>, Status> {
        member_only(&self.node, &request)?;
        // All at once: Raft puts them in as few log appends as it can.
        let proposals = request.into_inner().commands.into_iter().map(|command| {
            let node = self.node.clone();
            async move {
                // Only the request is taken: `propose` stamps it with this (the leader's)
                // clock when it hands it to Raft, whatever a follower may have put there.
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

    async fn lease_keep_alive(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        member_only(&self.node, &request)?;
        let id = request.into_inner().id;
        // Only a leader answers: a follower forwarding here would loop.
        if !self.node.is_leader() {
            return Err(crate::error::LEADER_CHANGED.into());
        }
        let ttl = self.lessor.keep_alive(id).await?;
        Ok(Response::new(LeaseKeepAliveResponse {
            header: self.node.header(self.node.store.current_revision()),
            id,
            ttl,
        }))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        member_only(&self.node, &request)?;
        if !self.node.is_leader() {
            return Err(crate::error::LEADER_CHANGED.into());
        }
        Ok(Response::new(
            self.lessor.time_to_live(request.into_inner()).await?,
        ))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        member_only(&self.node, &request)?;
        let index = self.node.read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn publish_member(
        &self,
        request: Request<PublishMemberRequest>,
    ) -> Result<Response<PublishMemberResponse>, Status> {
        member_only(&self.node, &request)?;
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
