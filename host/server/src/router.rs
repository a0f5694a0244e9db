//! Where a write goes and what a linearizable read waits for. A write is admitted once, on the
//! member the client asked (size, alarms, quota), then proposed to this member's Raft when it
//! leads, or forwarded to the leader over the peer transport (as etcd forwards proposals over
//! its peer links), and answered once this member has applied it too. A linearizable read
//! waits for a read index confirmed by a quorum, shared by the reads arriving meanwhile.

use std::sync::Arc;

use conclave_proto::conclavepb::{
    Command, ReadIndexRequest, ReadIndexResponse, command::Request, member_request::Call,
};
use conclave_proto::etcdserverpb::{AlarmRequest, AlarmType, alarm_request::AlarmAction};
use conclave_raft::{Member, MemberClient, Raft, TypeConfig};
use conclave_store::{Applied, RequestError, Store};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ReadPolicy;
use prost::Message;
use tracing::{debug, warn};

use crate::auth::Caller;
use crate::batch::ReadBatch;
use crate::cluster_view::ClusterView;
use crate::error::{ClusterError, ProposeError};
use crate::forward::{Forward, Forwarder};
use crate::limits::{REQUEST_TIMEOUT, RequestLimits};
use crate::propose::Proposer;
use crate::wire::applied_from_wire;

// Handles resolved once (at the first proposal, after `serve::run` installed the recorder),
// so that a proposal costs two atomic adds, not a registry lookup.
static PROPOSALS_PENDING: std::sync::LazyLock<metrics::Gauge> =
    std::sync::LazyLock::new(|| metrics::gauge!("etcd_server_proposals_pending"));
static PROPOSALS_FAILED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("etcd_server_proposals_failed_total"));

pub struct Router {
    store: Arc<Store>,
    cluster: ClusterView,
    /// This member.
    member_id: u64,
    /// Raft, for this member's own proposals and read indexes as the leader.
    raft: Raft,
    /// Calls to other members, over the peer transport.
    members: MemberClient,
    /// Batches this member's writes to the leader while it is a follower.
    forwarder: Forwarder,
    /// This member's own writes into Raft, batched.
    proposer: Proposer,
    /// Linearizable reads waiting for a shared read index.
    reads: ReadBatch,
    /// --quota-backend-bytes: the store size past which writes that grow it raise NOSPACE.
    quota: Option<u64>,
    /// --max-request-bytes, which a proposal is held to.
    limits: RequestLimits,
}

impl Router {
    pub fn new(
        store: Arc<Store>,
        cluster: ClusterView,
        raft: Raft,
        members: MemberClient,
        quota: Option<u64>,
        limits: RequestLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            member_id: cluster.me(),
            store,
            cluster,
            proposer: Proposer::spawn(raft.clone()),
            raft,
            members,
            forwarder: Forwarder::spawn(),
            reads: ReadBatch::default(),
            quota,
            limits,
        })
    }

    /// The backend quota in bytes (None: no quota).
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// What the alarms and the quota say of a write before it is proposed: refused while an
    /// alarm forbids it, and a write that would take the store past its quota raises this
    /// member's NOSPACE alarm (as etcd's quota check does) and is refused.
    async fn admit(&self, request: &Request, cost: usize) -> Result<(), ProposeError> {
        if let Some(refused) = self.store.alarm_refuses(request) {
            return Err(refused.into());
        }
        let Some(quota) = self.quota else {
            return Ok(());
        };
        if !conclave_store::grows(request) {
            return Ok(());
        }
        let size = self.store.disk_bytes();
        if size + cost as u64 <= quota {
            return Ok(());
        }
        warn!(
            quota,
            size, "the store is past its quota; raising a NOSPACE alarm"
        );
        let alarm = Command {
            request: Some(Request::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            })),
            stamp_ms: 0,
            checked_for: None,
        };
        let raised = self.propose_routed(alarm, Route::AnyLeader);
        if let Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, raised).await {
            warn!(error = %e, "could not raise the NOSPACE alarm");
        }
        Err(RequestError::NoSpace.into())
    }

    /// Proposes one of this member's own writes that any leader may apply (a lease renewal,
    /// an alarm, a compaction) and waits until it is applied on this member. It is held to
    /// [`Router::proposal_limit`].
    pub async fn propose(&self, request: Request) -> Result<Applied, ProposeError> {
        self.propose_own(request, Route::AnyLeader).await
    }

    /// Proposes a decision only the leader of `term` may take (a lease it found expired, a
    /// plugin's output): into this member's own Raft while it leads in that term, never
    /// forwarded. A leader that was paused or cut off still believes it leads when it wakes,
    /// with clocks that jumped; forwarded, its stale decision would be applied by the next
    /// leader (a lease revoked while its client renewed it there). Proposed here, it cannot
    /// commit without a quorum in its term, and fails.
    pub async fn propose_as_leader(
        &self,
        request: Request,
        term: u64,
    ) -> Result<Applied, ProposeError> {
        self.propose_own(request, Route::OwnRaftIn(term)).await
    }

    /// One of this member's own writes along `route`: no client's permissions to recheck.
    async fn propose_own(&self, request: Request, route: Route) -> Result<Applied, ProposeError> {
        let command = Command {
            request: Some(request),
            ..Default::default()
        };
        self.propose_checked(command, route).await
    }

    /// Proposes a client's write, checked for `caller` already: apply checks it again
    /// against the auth state it meets (see `CheckedFor`).
    pub async fn propose_for(
        &self,
        caller: &Caller,
        request: Request,
    ) -> Result<Applied, ProposeError> {
        self.propose_checked(
            Command {
                request: Some(request),
                checked_for: Some(caller.checked_for()),
                ..Default::default()
            },
            Route::AnyLeader,
        )
        .await
    }

    /// Proposes `command` along `route` once it is admitted: within its size limit, and
    /// neither an alarm nor the quota refuses it. The member a client asked checks this,
    /// once, as etcd checks on the member a request arrives at; apply checks the alarms again
    /// (they may have been raised meanwhile).
    async fn propose_checked(
        &self,
        command: Command,
        route: Route,
    ) -> Result<Applied, ProposeError> {
        let Some(request) = &command.request else {
            return Err(ProposeError::EmptyProposal);
        };
        let limit = self.proposal_limit(request);
        let cost = command.encoded_len();
        if cost > limit {
            return Err(ProposeError::TooLarge);
        }
        self.admit(request, cost).await?;
        self.propose_admitted(command, route).await
    }

    /// On the leader: a follower's write, admitted by the follower; it keeps whom it was
    /// checked for, and only this member's clock dates it.
    pub async fn propose_forwarded(&self, command: Command) -> Result<Applied, ProposeError> {
        if command.request.is_none() {
            return Err(ProposeError::EmptyProposal);
        }
        self.propose_admitted(command, Route::AnyLeader).await
    }

    async fn propose_admitted(
        &self,
        command: Command,
        route: Route,
    ) -> Result<Applied, ProposeError> {
        let command = Command {
            stamp_ms: 0,
            ..command
        };
        let pending = &*PROPOSALS_PENDING;
        pending.increment(1.0);
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, self.propose_routed(command, route))
            .await
            .map_err(|_| ProposeError::TimedOut)
            .and_then(|routed| routed);
        pending.decrement(1.0);
        // A proposal that was not applied (timed out, lost to a leader change): etcd's
        // failed proposals. A request refused at apply was applied.
        if outcome.is_err() {
            PROPOSALS_FAILED.increment(1);
        }
        outcome
    }

    /// The size limit a proposal is held to: --max-request-bytes, or for a plugin deploy,
    /// which carries a whole component, the deploy limit.
    pub fn proposal_limit(&self, request: &Request) -> usize {
        match request {
            Request::PluginDeploy(_) => {
                crate::limits::MAX_PLUGIN_BYTES.saturating_add(self.limits.max_request_bytes)
            }
            _ => self.limits.max_request_bytes,
        }
    }

    async fn propose_routed(
        &self,
        command: Command,
        route: Route,
    ) -> Result<Applied, ProposeError> {
        if let Route::OwnRaftIn(term) = route {
            if !self.cluster.is_leader() || self.cluster.term() != term {
                return Err(ProposeError::LeaderChanged);
            }
            return match self.proposer.write(stamped(&command)).await {
                Ok(applied) => Ok(applied),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    Err(ProposeError::LeaderChanged)
                }
                Err(e) => Err(refused_by_raft(e)),
            };
        }
        loop {
            // A follower that knows the leader forwards at once, without asking its Raft core.
            let (leader_id, leader) = match self.cluster.leader_peer() {
                Some((id, member)) if id != self.member_id => (id, member),
                _ => match self.proposer.write(stamped(&command)).await {
                    Ok(applied) => return Ok(applied),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        match (f.leader_id, f.leader_node) {
                            (Some(id), Some(m)) if !m.peer_urls.is_empty() => (id, m),
                            // No leader yet: wait for the next change, within the request's
                            // deadline.
                            _ => {
                                self.cluster.leader_change_from(f.leader_id).await;
                                continue;
                            }
                        }
                    }
                    Err(e) => return Err(refused_by_raft(e)),
                },
            };
            match self
                .forward_propose(leader_id, &leader, command.clone())
                .await
            {
                // The request never reached the leader (it is down): retry once another is
                // known, until the request's deadline, as etcd keeps a proposal waiting until
                // it times out. Anything that may have reached it is not retried: a write must
                // not apply twice.
                Err(Forward::Unreached) => self.cluster.leader_change_from(Some(leader_id)).await,
                Err(Forward::Failed(e)) => return Err(e),
                Ok(applied) => return Ok(applied),
            }
        }
    }

    async fn forward_propose(
        &self,
        leader_id: u64,
        leader: &Member,
        command: Command,
    ) -> Result<Applied, Forward> {
        debug!(leader = %leader.name, "forwarding a write to the leader");
        let forwarded =
            self.forwarder
                .forward(leader_id, leader.clone(), self.members.clone(), command);
        // The write may have reached a leader that died with it: etcd's "leader changed".
        let resp = tokio::select! {
            resp = forwarded => resp?,
            () = self.cluster.leader_gone(leader_id) => {
                return Err(Forward::Failed(ProposeError::LeaderChanged));
            }
        };
        let applied = applied_from_wire(resp).map_err(Forward::Failed)?;
        // Answer only once this member has applied the write as well, so that a read here
        // right after sees it (as etcd's followers answer after their own apply).
        self.cluster
            .wait_applied(applied.index)
            .await
            .map_err(|_| Forward::Failed(ProposeError::TimedOut))?;
        Ok(applied)
    }

    /// Makes the next local read linearizable: waits for a read index obtained after this
    /// call began (shared with the reads arriving meanwhile, see `batch`), then until
    /// this member has applied up to it.
    pub async fn linearize(self: &Arc<Self>) -> Result<(), ClusterError> {
        let (answer, start) = self.reads.join(());
        if start {
            let router = self.clone();
            tokio::spawn(async move { router.reads.run(|_| router.confirm_read_index()).await });
        }
        let index = tokio::time::timeout(REQUEST_TIMEOUT, answer)
            .await
            .map_err(|_| ClusterError::TimedOut)?
            .map_err(|_| ClusterError::LeaderChanged)??;
        self.cluster.wait_applied(index).await
    }

    /// One read index: on the leader, confirmed by a quorum; on a follower, the leader's.
    async fn confirm_read_index(&self) -> Result<u64, ClusterError> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            loop {
                let leader = self.cluster.leader_id();
                if leader == Some(self.member_id) {
                    match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                        Ok(read) => return Ok(read.log_id().index),
                        Err(RaftError::Fatal(_)) => return Err(ClusterError::Stopped),
                        Err(RaftError::APIError(e)) => {
                            debug!(error = %e, "read index refused; waiting for a leader");
                            self.cluster.leader_change_from(leader).await;
                        }
                    }
                    continue;
                }
                if self.cluster.leader_peer().is_none() {
                    self.cluster.leader_change_from(leader).await;
                    continue;
                }
                let answer: ReadIndexResponse = self
                    .cluster
                    .ask_leader(Call::ReadIndex(ReadIndexRequest {}))
                    .await?;
                return Ok(answer.index);
            }
        })
        .await
        .map_err(|_| ClusterError::TimedOut)?
    }

    /// On the leader: the index a linearizable read must wait for (for a follower's read).
    pub async fn read_index(&self) -> Result<u64, ClusterError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.log_id().index),
            Err(RaftError::Fatal(_)) => Err(ClusterError::Stopped),
            Err(RaftError::APIError(_)) => Err(ClusterError::LeaderChanged),
        }
    }
}

/// A write this member's Raft refused for another reason than another member leading.
fn refused_by_raft(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ProposeError {
    match e {
        RaftError::Fatal(e) => {
            warn!(error = %e, "raft stopped");
            ProposeError::Stopped
        }
        RaftError::APIError(e) => ProposeError::Internal(e.to_string()),
    }
}

/// Where a proposal may go.
#[derive(Clone, Copy)]
enum Route {
    /// To whichever member leads: forwarded if it is another (a client's write).
    AnyLeader,
    /// Into this member's own Raft, only while it leads in this term (a leader's decision).
    OwnRaftIn(u64),
}

/// `command` as this member proposes it as the leader: dated by its clock, which apply turns
/// into the revision's commit time (never below the previous revision's). Done here, at the
/// one place a member hands a write to its own Raft (forwarded writes included), so that
/// followers never date a write.
fn stamped(command: &Command) -> Command {
    Command {
        stamp_ms: crate::clock::now_ms(),
        ..command.clone()
    }
}
