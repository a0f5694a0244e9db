//! Calls between members over the peer transport (`proto/conclave/internal.proto`), both
//! ends: [`Node::ask`] and [`Node::ask_leader`] make one and turn its answer into the
//! response the caller expects; [`MemberCalls`] answers the calls other members make of this
//! one. Only members reach this: the peer transport takes only certificates from the cluster
//! CA, and nothing of it listens on the client port. A member passes on a client's request
//! only after checking the client itself, so the answering member does not check again.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::{
    Failure, IngestResponse, MemberRequest, MemberResponse, PluginListResponse, PluginLogsResponse,
    PluginStatusResponse, ProposeBatchResponse, PublishMemberResponse, ReadIndexResponse,
    member_request::Call, member_response::Result as Answer,
};
use conclave_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveResponse, MemberAddResponse,
    MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse,
};
use conclave_raft::Member;
use conclave_raft::network::{MemberCallError, MemberClient, MemberService};
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use tonic::{Code, Status};
use tracing::debug;

use crate::error::{LEADER_CHANGED, NO_LEADER, REQUEST_TIMED_OUT};
use crate::lease::Lessor;
use crate::node::{Node, REQUEST_TIMEOUT, applied_to_wire, member_from_wire};
use crate::service::{ClusterService, IngestService, PluginService};

/// A response type a member call answers with.
pub trait Answered: Sized {
    fn from_answer(answer: Answer) -> Option<Self>;
}

macro_rules! answered {
    ($($variant:ident => $response:ty),* $(,)?) => {
        $(impl Answered for $response {
            fn from_answer(answer: Answer) -> Option<Self> {
                match answer {
                    Answer::$variant(r) => Some(r),
                    _ => None,
                }
            }
        })*
    };
}

answered!(
    ProposeBatch => ProposeBatchResponse,
    ReadIndex => ReadIndexResponse,
    LeaseKeepAlive => LeaseKeepAliveResponse,
    LeaseTimeToLive => LeaseTimeToLiveResponse,
    PublishMember => PublishMemberResponse,
    MemberAdd => MemberAddResponse,
    MemberRemove => MemberRemoveResponse,
    MemberUpdate => MemberUpdateResponse,
    MemberPromote => MemberPromoteResponse,
    PluginList => PluginListResponse,
    PluginStatus => PluginStatusResponse,
    PluginLogs => PluginLogsResponse,
    Ingest => IngestResponse,
    HashKv => HashKvResponse,
);

/// A refusal as it travels between members: the gRPC status the caller's client gets.
pub fn failure(status: &Status) -> Failure {
    Failure {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

pub fn status_of(failure: Failure) -> Status {
    Status::new(Code::from_i32(failure.code), failure.message)
}

/// What a member call came to: the answering member's response or refusal (inner), or no
/// answer at all (outer).
pub type Asked<R> = Result<Result<R, Status>, MemberCallError>;

/// Calls `member` with `members` and waits at most `timeout` for the answer.
pub async fn ask_with<R: Answered>(
    members: &MemberClient,
    member: &Member,
    call: Call,
    timeout: Duration,
) -> Asked<R> {
    let request = MemberRequest { call: Some(call) };
    let response = members.call(member, &request, timeout).await?;
    Ok(match response.result {
        Some(Answer::Failed(f)) => Err(status_of(f)),
        Some(answer) => R::from_answer(answer)
            .ok_or_else(|| Status::internal(format!("{} answered another call", member.name))),
        None => Err(Status::internal(format!(
            "{} answered with nothing",
            member.name
        ))),
    })
}

impl Node {
    /// Resolves once this member no longer sees `leader_id` as the leader. A leader killed
    /// mid-call never answers, and its QUIC connection is only declared dead after the idle
    /// timeout; Raft notices within an election timeout, so a call to the leader races this.
    /// Never resolves if the leader stays for the whole request timeout (the call's own
    /// timeout decides then).
    pub async fn leader_gone(&self, leader_id: u64) {
        let changed = self
            .raft
            .wait(Some(REQUEST_TIMEOUT))
            .metrics(
                move |m| m.current_leader != Some(leader_id),
                "the leader changes",
            )
            .await;
        if changed.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Calls `member` and waits at most `timeout` for the answer.
    pub async fn ask<R: Answered>(
        &self,
        member: &Member,
        call: Call,
        timeout: Duration,
    ) -> Asked<R> {
        ask_with(&self.members, member, call, timeout).await
    }

    /// Passes `call` on to the leader (a follower's part in a request only the leader can
    /// answer) within etcd's request timeout. A leader that is gone or going is "leader
    /// changed", which etcd's clients retry.
    pub async fn ask_leader<R: Answered>(&self, call: Call) -> Result<R, Status> {
        let (leader_id, leader) = self.leader_peer().ok_or_else(|| Status::from(NO_LEADER))?;
        let asked = tokio::select! {
            asked = self.ask(&leader, call, REQUEST_TIMEOUT) => asked,
            () = self.leader_gone(leader_id) => return Err(LEADER_CHANGED.into()),
        };
        match asked {
            Ok(answer) => answer,
            Err(MemberCallError::Timeout { .. }) => Err(REQUEST_TIMED_OUT.into()),
            Err(e) => {
                debug!(leader = %leader.name, error = %e, "a call to the leader failed");
                Err(LEADER_CHANGED.into())
            }
        }
    }
}

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
    fn require_leader(&self) -> Result<(), Status> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(LEADER_CHANGED.into())
        }
    }

    async fn answer(&self, call: Call) -> Result<Answer, Status> {
        let node = &self.node;
        Ok(match call {
            Call::ProposeBatch(batch) => {
                // All at once: Raft puts them in as few log appends as it can.
                // Each as it came, with whom it was checked for; `propose_command` dates it
                // with this (the leader's) clock, whatever a follower may have put there.
                let proposals = batch.commands.into_iter().map(|command| async move {
                    node.propose_command(command).await.map(applied_to_wire)
                });
                let outcomes = futures::future::join_all(proposals)
                    .await
                    .into_iter()
                    .map(crate::forward::to_outcome)
                    .collect();
                Answer::ProposeBatch(ProposeBatchResponse { outcomes })
            }
            Call::ReadIndex(_) => Answer::ReadIndex(ReadIndexResponse {
                index: node.read_index().await?,
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
                let known = node
                    .raft
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .get_node(&req.id)
                    .is_some();
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
            Call::Ingest(req) => Answer::Ingest(self.ingest.keep(req)),
            Call::HashKv(req) => Answer::HashKv(node.hash_kv(req.revision).await?),
        })
    }
}
