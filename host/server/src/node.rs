//! A member: the store, the Raft instance in front of it, and the peer transport. Writes are
//! proposed through Raft on the leader; a follower forwards them to the leader (over the peer
//! transport, as etcd forwards proposals over its peer links) and answers once it has applied
//! them too. Linearizable reads wait for a read index confirmed by a quorum.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::{
    Command, PublishMemberRequest, PublishMemberResponse, ReadIndexRequest, ReadIndexResponse,
    command::Request, member_request::Call,
};
use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvResponse, ResponseHeader, alarm_request::AlarmAction,
};
use conclave_raft::{Member, MemberCallError, MemberClient, Raft};
use conclave_store::{Applied, RequestError, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ReadPolicy;
use prost::Message;
use tracing::{debug, info, warn};

use crate::auth::{Authenticator, Caller};
use crate::cluster_view::{ClusterView, MembershipChange};
use crate::error::{BlockingError, ClusterError, ProposeError};
use crate::forward::{Forward, Forwarder};
use crate::limits::{REQUEST_TIMEOUT, RequestLimits};
use crate::propose::Proposer;
use crate::read_batch::ReadBatch;
use crate::wire::{Answered, Asked, applied_from_wire, ask_with, member_to_wire};

// Handles resolved once (at the first proposal, after `serve::run` installed the recorder),
// so that a proposal costs two atomic adds, not a registry lookup.
static PROPOSALS_PENDING: std::sync::LazyLock<metrics::Gauge> =
    std::sync::LazyLock::new(|| metrics::gauge!("etcd_server_proposals_pending"));
static PROPOSALS_FAILED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("etcd_server_proposals_failed_total"));

/// Who this member is.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

pub struct Node {
    pub store: Arc<Store>,
    /// Raft: proposals, read indexes and membership changes go through it here; everything
    /// else reads it through `cluster`.
    raft: Raft,
    /// What this member knows of the cluster.
    pub cluster: ClusterView,
    pub identity: Identity,
    /// This member as it should appear in the membership.
    pub me: Member,
    /// The cluster token: member IDs derive from it.
    pub token: String,
    /// Calls to other members over the peer transport (see `member_calls`).
    pub(crate) members: MemberClient,
    /// Serializes membership changes (see [`Node::change_membership`]).
    membership_changes: tokio::sync::Mutex<()>,
    /// Batches this member's writes to the leader while it is a follower.
    forwarder: Forwarder,
    /// This member's own writes into Raft, batched.
    proposer: Proposer,
    /// Linearizable reads waiting for a shared read index.
    reads: ReadBatch,
    /// --quota-backend-bytes: the store size past which writes that grow it raise NOSPACE.
    quota: Option<u64>,
    /// --strict-reconfig-check.
    strict_reconfig: bool,
    /// Who calls, and what they may do.
    pub auth: Authenticator,
    /// What one client request may carry.
    pub limits: RequestLimits,
}

/// A member's settings from its flags.
pub struct Settings {
    /// The cluster token: member IDs derive from it.
    pub token: String,
    /// --quota-backend-bytes (None: no quota).
    pub quota: Option<u64>,
    /// --auth-token-ttl.
    pub token_ttl: Duration,
    /// --auth-token.
    pub token_kind: crate::tokens::TokenKind,
    /// --bcrypt-cost.
    pub bcrypt_cost: u32,
    /// Calls to other members, over the peer transport.
    pub members: MemberClient,
    /// --max-request-bytes and --max-txn-ops.
    pub limits: RequestLimits,
    /// --strict-reconfig-check: refuse changes of voters that would break quorum.
    pub strict_reconfig: bool,
}

impl Node {
    pub fn new(
        store: Arc<Store>,
        raft: Raft,
        identity: Identity,
        me: Member,
        settings: Settings,
    ) -> Arc<Self> {
        let Settings {
            token,
            quota,
            token_ttl,
            token_kind,
            bcrypt_cost,
            members,
            limits,
            strict_reconfig,
        } = settings;
        let cluster = ClusterView::new(raft.clone(), identity.member_id, members.clone());
        Arc::new(Self {
            auth: Authenticator::new(store.clone(), token_ttl, token_kind, bcrypt_cost),
            members,
            store,
            identity,
            me,
            token,
            membership_changes: tokio::sync::Mutex::new(()),
            forwarder: Forwarder::spawn(),
            proposer: Proposer::spawn(raft.clone()),
            cluster,
            raft,
            reads: ReadBatch::default(),
            quota,
            limits,
            strict_reconfig,
        })
    }

    /// The backend quota in bytes (None: no quota).
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// Refuses reads while a CORRUPT alarm stands, as etcd stops serving a corrupt cluster.
    pub fn check_readable(&self) -> Result<(), ClusterError> {
        if self.store.alarms(AlarmType::Corrupt).is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Refused(RequestError::Corrupt))
        }
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
                member_id: self.identity.member_id,
                alarm: AlarmType::Nospace as i32,
            })),
            stamp_ms: 0,
            checked_for: None,
        };
        if let Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, self.propose_routed(alarm)).await {
            warn!(error = %e, "could not raise the NOSPACE alarm");
        }
        Err(RequestError::NoSpace.into())
    }

    /// Proposes one of this member's own writes (an expired lease, a plugin's output, an
    /// alarm) and waits until it is applied on this member. It is held to
    /// [`Node::proposal_limit`].
    pub async fn propose(&self, request: Request) -> Result<Applied, ProposeError> {
        self.propose_command(Command {
            request: Some(request),
            ..Default::default()
        })
        .await
    }

    /// Proposes a client's write, checked for `caller` already: apply checks it again
    /// against the auth state it meets (see `CheckedFor`).
    pub async fn propose_for(
        &self,
        caller: &Caller,
        request: Request,
    ) -> Result<Applied, ProposeError> {
        self.propose_command(Command {
            request: Some(request),
            checked_for: Some(caller.checked_for()),
            ..Default::default()
        })
        .await
    }

    /// Proposes `command` once it is admitted: within its size limit, and neither an alarm
    /// nor the quota refuses it. The member a client asked checks this, once, as etcd checks
    /// on the member a request arrives at; apply checks the alarms again (they may have been
    /// raised meanwhile).
    async fn propose_command(&self, command: Command) -> Result<Applied, ProposeError> {
        let Some(request) = &command.request else {
            return Err(ProposeError::EmptyProposal);
        };
        let limit = self.proposal_limit(request);
        let cost = command.encoded_len();
        if cost > limit {
            return Err(ProposeError::TooLarge);
        }
        self.admit(request, cost).await?;
        self.propose_admitted(command).await
    }

    /// On the leader: a follower's write, admitted by the follower; it keeps whom it was
    /// checked for, and only this member's clock dates it.
    pub async fn propose_forwarded(&self, command: Command) -> Result<Applied, ProposeError> {
        if command.request.is_none() {
            return Err(ProposeError::EmptyProposal);
        }
        self.propose_admitted(command).await
    }

    async fn propose_admitted(&self, command: Command) -> Result<Applied, ProposeError> {
        let command = Command {
            stamp_ms: 0,
            ..command
        };
        let pending = &*PROPOSALS_PENDING;
        pending.increment(1.0);
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, self.propose_routed(command))
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

    async fn propose_routed(&self, command: Command) -> Result<Applied, ProposeError> {
        loop {
            // A follower that knows the leader forwards at once, without asking its Raft core.
            let (leader_id, leader) = match self.cluster.leader_peer() {
                Some((id, member)) if id != self.identity.member_id => (id, member),
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
                    Err(RaftError::APIError(e)) => {
                        return Err(ProposeError::Internal(e.to_string()));
                    }
                    Err(RaftError::Fatal(e)) => {
                        warn!(error = %e, "raft stopped");
                        return Err(ProposeError::Stopped);
                    }
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
    /// call began (shared with the reads arriving meanwhile, see `read_batch`), then until
    /// this member has applied up to it.
    pub async fn linearize(self: &Arc<Self>) -> Result<(), ClusterError> {
        let (answer, start) = self.reads.join();
        if start {
            let node = self.clone();
            tokio::spawn(async move { node.reads.run(|| node.confirm_read_index()).await });
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
                if leader == Some(self.identity.member_id) {
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

    /// On the leader: changes the membership, one change at a time (openraft refuses a
    /// change while another is under way, so changes made here queue instead).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ClusterError> {
        let _queued = self.membership_changes.lock().await;
        if self.strict_reconfig {
            self.check_reconfig(&change)?;
        }
        // `retain: false`: a removed voter leaves the nodes too, rather than staying a learner.
        match self.raft.change_membership(change.to_raft(), false).await {
            Ok(_) => Ok(()),
            Err(RaftError::Fatal(_)) => Err(ClusterError::Stopped),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ClusterError::LeaderChanged)
            }
            Err(RaftError::APIError(e)) => Err(ClusterError::MembershipRefused(e.to_string())),
        }
    }

    /// --strict-reconfig-check on the leader (elsewhere Raft refuses the change anyway):
    /// voters are in touch when they acknowledged this leader within etcd's health interval.
    fn check_reconfig(&self, change: &MembershipChange) -> Result<(), ClusterError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let Some(heartbeat) = &m.heartbeat else {
            return Ok(());
        };
        let voters = m.membership_config.membership().voter_ids().collect();
        let mut active: std::collections::BTreeSet<u64> = heartbeat
            .iter()
            .filter(|(_, at)| {
                at.as_ref().is_some_and(|at| {
                    openraft::Instant::elapsed(&**at) < crate::reconfig::HEALTH_INTERVAL
                })
            })
            .map(|(id, _)| *id)
            .collect();
        active.insert(self.identity.member_id);
        crate::reconfig::check(change, &voters, &active)
    }

    /// On the leader: sets a member's entry in the membership.
    pub async fn set_member(&self, id: u64, member: Member) -> Result<(), ClusterError> {
        self.change_membership(MembershipChange::SetMember(id, member))
            .await
    }

    /// Keeps this member's name and client URLs in the membership, as etcd publishes a
    /// member's attributes once it has joined: followers need the leader's client URL to
    /// forward to it, and `member list` shows them. Runs until published.
    pub async fn publish_self(self: Arc<Self>) {
        let me_id = self.identity.member_id;
        let mut backoff = Duration::from_millis(100);
        loop {
            let leader = self.cluster.leader_id();
            let current = self.cluster.membership().members.remove(&me_id);
            if current.as_ref() == Some(&self.me) {
                info!(name = %self.me.name, "member attributes published");
                return;
            }
            let outcome = match leader {
                // Not a member (yet): a learner added by `member add` is in the membership,
                // so this only waits for the first replication.
                _ if current.is_none() => Err(ClusterError::NotAMember),
                Some(l) if l == me_id => self.set_member(me_id, self.me.clone()).await,
                Some(_) => self
                    .ask_leader::<PublishMemberResponse>(Call::PublishMember(
                        PublishMemberRequest {
                            id: me_id,
                            member: Some(member_to_wire(&self.me)),
                        },
                    ))
                    .await
                    .map(|_| ()),
                None => Err(ClusterError::NoLeader),
            };
            if let Err(e) = outcome {
                debug!(error = %e, "publishing member attributes; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// A response header for the given store revision.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: self.identity.member_id,
            revision,
            raft_term: self.cluster.term(),
        })
    }

    /// This member's HashKV at `revision` (0: the current one), as the Maintenance service and
    /// the leader's corruption check ask for it.
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, BlockingError> {
        let h = self.blocking(move |s| s.hash_kv(revision)).await?;
        Ok(HashKvResponse {
            header: self.header(self.store.current_revision()),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        })
    }

    /// Runs blocking store work (reads, waits) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, conclave_store::StoreError> + Send + 'static,
    ) -> Result<T, BlockingError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
    }
}

/// Calls to other members.
impl Node {
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
    pub async fn ask_leader<R: Answered>(&self, call: Call) -> Result<R, ClusterError> {
        let (leader_id, leader) = self.cluster.leader_peer().ok_or(ClusterError::NoLeader)?;
        let asked = tokio::select! {
            asked = self.ask(&leader, call, REQUEST_TIMEOUT) => asked,
            () = self.cluster.leader_gone(leader_id) => return Err(ClusterError::LeaderChanged),
        };
        match asked {
            Ok(answer) => answer,
            Err(MemberCallError::Timeout { .. }) => Err(ClusterError::TimedOut),
            Err(e) => {
                debug!(leader = %leader.name, error = %e, "a call to the leader failed");
                Err(ClusterError::LeaderChanged)
            }
        }
    }
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
