//! The answering end of the calls between members over the peer transport
//! (`proto/conclave/internal.proto`): [`MemberCalls`] answers the calls other members make of
//! this one, as the gRPC services answer clients (the asking end is `ClusterView::ask` and
//! `ClusterView::ask_leader`, the types on the wire are `wire.rs`'s). Only members reach this: the
//! peer transport takes only certificates from the cluster CA, and nothing of it listens on
//! the client port. A member passes on a client's request only after checking the client
//! itself, so the answering member does not check again.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    MemberRequest, MemberResponse, ProposeBatchResponse, PublishMemberResponse, ReadIndexResponse,
    member_request::Call, member_response::Result as Answer,
};
use conclave_proto::etcdserverpb::LeaseKeepAliveResponse;
use conclave_raft::MemberService;
use futures::future::BoxFuture;
use tonic::Status;
use tracing::debug;

use crate::error::ClusterError;
use crate::lease::Lessor;
use crate::node::Node;
use crate::service::{ClusterService, IngestService, PluginService};
use crate::wire::{applied_to_wire, failure, member_from_wire, to_outcome};

/// Answers other members' calls on this member.
#[derive(Clone)]
pub struct MemberCalls {
    pub node: Arc<Node>,
    pub lessor: Arc<Lessor>,
    pub cluster: ClusterService,
    pub plugins: PluginService,
    pub ingest: Arc<IngestService>,
}

impl MemberService for MemberCalls {
    fn call(&self, peer: String, request: MemberRequest) -> BoxFuture<'static, MemberResponse> {
        let this = self.clone();
        Box::pin(async move {
            let result = match request.call {
                Some(call) => this.answer(call).await,
                None => Err(Status::invalid_argument("conclave: an empty member call")),
            };
            if let Err(status) = &result {
                debug!(%peer, error = %status, "a member call was refused");
            }
            MemberResponse {
                result: Some(result.unwrap_or_else(|s| Answer::Failed(failure(&s)))),
            }
        })
    }
}

impl MemberCalls {
    /// Only a leader answers what a follower passes on to the leader: a member that lost its
    /// leadership meanwhile must not pass it on again.
    fn require_leader(&self) -> Result<(), ClusterError> {
        if self.node.cluster.is_leader() {
            Ok(())
        } else {
            Err(ClusterError::LeaderChanged)
        }
    }

    async fn answer(&self, call: Call) -> Result<Answer, Status> {
        let node = &self.node;
        Ok(match call {
            Call::ProposeBatch(batch) => {
                // All at once: Raft puts them in as few log appends as it can.
                // Each as it came, with whom it was checked for; `propose_forwarded` dates it
                // with this (the leader's) clock, whatever a follower may have put there.
                let proposals = batch.commands.into_iter().map(|command| async move {
                    node.router
                        .propose_forwarded(command)
                        .await
                        .map(applied_to_wire)
                });
                let outcomes = futures::future::join_all(proposals)
                    .await
                    .into_iter()
                    .map(to_outcome)
                    .collect();
                Answer::ProposeBatch(ProposeBatchResponse { outcomes })
            }
            Call::ReadIndex(_) => Answer::ReadIndex(ReadIndexResponse {
                index: node.router.read_index().await?,
            }),
            Call::LeaseKeepAlive(req) => {
                self.require_leader()?;
                let ttl = self.lessor.keep_alive(req.id).await?;
                Answer::LeaseKeepAlive(LeaseKeepAliveResponse {
                    header: node.header(node.store.current_revision()),
                    id: req.id,
                    ttl,
                })
            }
            Call::LeaseTimeToLive(req) => {
                self.require_leader()?;
                Answer::LeaseTimeToLive(self.lessor.time_to_live(req).await?)
            }
            Call::PublishMember(req) => {
                let member = req.member.ok_or_else(|| {
                    Status::invalid_argument("etcdserver: member is not provided")
                })?;
                let known = node.cluster.membership().members.contains_key(&req.id);
                if !known {
                    return Err(Status::not_found("etcdserver: member not found"));
                }
                node.set_member(req.id, member_from_wire(member)).await?;
                Answer::PublishMember(PublishMemberResponse {})
            }
            Call::MemberAdd(req) => {
                self.require_leader()?;
                Answer::MemberAdd(self.cluster.add(req).await?)
            }
            Call::MemberRemove(req) => {
                self.require_leader()?;
                Answer::MemberRemove(self.cluster.remove(req).await?)
            }
            Call::MemberUpdate(req) => {
                self.require_leader()?;
                Answer::MemberUpdate(self.cluster.update(req).await?)
            }
            Call::MemberPromote(req) => {
                self.require_leader()?;
                Answer::MemberPromote(self.cluster.promote(req).await?)
            }
            Call::PluginList(_) => Answer::PluginList(self.plugins.list_here().await?),
            Call::PluginStatus(req) => {
                Answer::PluginStatus(self.plugins.status_here(req.name).await?)
            }
            Call::PluginLogs(req) => Answer::PluginLogs(self.plugins.logs_here(req.name).await?),
            Call::Ingest(req) => Answer::Ingest(self.ingest.keep(&req)),
            Call::HashKv(req) => Answer::HashKv(node.hash_kv(req.revision).await?),
        })
    }
}
