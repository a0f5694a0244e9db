//! What this member knows of the cluster, read from Raft: who leads and in which term, how far
//! the log is applied, the membership, how far the leader has replicated to each member; and
//! the two things that move leadership and wait for it; and calls to other members, the
//! leader above all. openraft's types stay behind this module: the rest of the server sees
//! plain IDs, indexes and `Member`s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_proto::conclavepb::member_request::Call;
use conclave_raft::{Member, MemberCallError, MemberClient, Raft, TypeConfig};
use openraft::async_runtime::WatchReceiver;
use openraft::metrics::RaftServerMetrics;
use openraft::type_config::alias::WatchReceiverOf;
use openraft::{ChangeMembers, RaftMetrics};
use tracing::debug;

use crate::error::ClusterError;
use crate::limits::REQUEST_TIMEOUT;
use crate::wire::{Answered, Asked, ask_with};

/// Raft figures for status reports.
#[derive(Debug, Clone, Copy)]
pub struct RaftStatus {
    /// The leader, if it is live (see [`ClusterView::status`]).
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub is_learner: bool,
}

/// The membership as this member sees it.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    pub voters: BTreeSet<u64>,
    /// Every member, voters and learners, by ID.
    pub members: BTreeMap<u64, Member>,
}

/// How far the leader has replicated its log (only a leader knows).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// This member's last log index.
    pub last_log_index: u64,
    /// The last index each other member is known to hold; none where nothing is known yet.
    matched: BTreeMap<u64, u64>,
    leading: bool,
}

impl Progress {
    /// The last index member `id` is known to hold (this member's own last index for itself,
    /// on the leader).
    pub fn matched(&self, id: u64) -> Option<u64> {
        self.matched.get(&id).copied()
    }

    /// Whether this member leads (and so knows the others' progress).
    pub fn is_leading(&self) -> bool {
        self.leading
    }
}

/// One change of the membership, as etcd's Cluster API asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// `member add --learner`.
    AddLearner(u64, Member),
    /// `member add`.
    AddVoter(u64, Member),
    /// `member promote`.
    Promote(u64),
    /// `member remove` of a voter.
    RemoveVoter(u64),
    /// `member remove` of a learner.
    RemoveLearner(u64),
    /// `member update`, or a member publishing its name and client URLs.
    SetMember(u64, Member),
}

impl MembershipChange {
    /// The change as openraft takes it.
    pub(crate) fn to_raft(&self) -> ChangeMembers<u64, Member> {
        let one = |id: u64| BTreeSet::from([id]);
        match self.clone() {
            MembershipChange::AddLearner(id, m) => {
                ChangeMembers::AddNodes(BTreeMap::from([(id, m)]))
            }
            MembershipChange::AddVoter(id, m) => {
                ChangeMembers::AddVoters(BTreeMap::from([(id, m)]))
            }
            MembershipChange::Promote(id) => ChangeMembers::AddVoterIds(one(id)),
            MembershipChange::RemoveVoter(id) => ChangeMembers::RemoveVoters(one(id)),
            MembershipChange::RemoveLearner(id) => ChangeMembers::RemoveNodes(one(id)),
            MembershipChange::SetMember(id, m) => {
                ChangeMembers::SetNodes(BTreeMap::from([(id, m)]))
            }
        }
    }
}

/// A change to wait for: see [`ClusterView::leadership_changes`] and
/// [`ClusterView::log_changes`].
pub enum Changes {
    /// Leadership, term or membership.
    Leadership(WatchReceiverOf<TypeConfig, RaftServerMetrics<TypeConfig>>),
    /// Everything, every append and apply included.
    Log(WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>),
}

impl Changes {
    /// Waits for the next change; false once Raft has stopped.
    pub async fn changed(&mut self) -> bool {
        match self {
            Changes::Leadership(rx) => rx.changed().await.is_ok(),
            Changes::Log(rx) => rx.changed().await.is_ok(),
        }
    }
}

/// This member's view of the cluster; cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    raft: Raft,
    me: u64,
    /// The peer transport: calls to other members, and when the leader was last heard from.
    members: MemberClient,
}

impl ClusterView {
    pub fn new(raft: Raft, me: u64, members: MemberClient) -> Self {
        Self { raft, me, members }
    }

    /// This member's ID.
    pub fn me(&self) -> u64 {
        self.me
    }

    /// The leader Raft names now (it may have died unnoticed; see [`ClusterView::status`]).
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.me)
    }

    /// The current leader and its membership entry, as far as reaching it over the peer
    /// transport needs: its peer URLs (it may not have published its client URLs yet).
    pub fn leader_peer(&self) -> Option<(u64, Member)> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let id = m.current_leader?;
        let member = m.membership_config.get_node(&id)?.clone();
        (!member.peer_urls.is_empty()).then_some((id, member))
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The term this member leads in, once it has applied an entry of that term: from then on
    /// its store holds everything committed before it led (plugins start then).
    pub fn leading_with_own_term_applied(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let applied_term = m.last_applied.map(|l| l.leader_id.term);
        (m.current_leader == Some(self.me) && applied_term == Some(m.current_term))
            .then_some(m.current_term)
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        RaftStatus {
            leader: self.live_leader(m.current_leader),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: m.local_committed.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            is_learner: !m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == self.me),
        }
    }

    /// The leader Raft names, if it is live. Raft's metrics keep naming a leader that died
    /// while this member only pre-votes (pre-votes change no state); a follower also needs
    /// to have been replicated to within two election timeouts, about when etcd's followers
    /// drop a silent leader to become pre-candidates.
    fn live_leader(&self, named: Option<u64>) -> Option<u64> {
        let id = named?;
        if id == self.me {
            return Some(id);
        }
        let silence = Duration::from_millis(self.raft.config().election_timeout_max * 2);
        self.members
            .since_leader_contact()
            .filter(|since| *since < silence)
            .map(|_| id)
    }

    pub fn membership(&self) -> Membership {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        Membership {
            voters: membership.voter_ids().collect(),
            members: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        }
    }

    /// Every other member that can be reached over the peer transport (it has peer URLs).
    pub fn others(&self) -> Vec<(u64, Member)> {
        self.membership()
            .members
            .into_iter()
            .filter(|(id, m)| *id != self.me && !m.peer_urls.is_empty())
            .collect()
    }

    pub fn progress(&self) -> Progress {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let mut matched: BTreeMap<u64, u64> = m
            .replication
            .iter()
            .flatten()
            .filter_map(|(id, log)| log.map(|l| (*id, l.index)))
            .collect();
        let leading = m.replication.is_some();
        if leading {
            matched.insert(self.me, last_log_index);
        }
        Progress {
            last_log_index,
            matched,
            leading,
        }
    }

    /// Changes of leadership, term or membership.
    pub fn leadership_changes(&self) -> Changes {
        Changes::Leadership(self.raft.server_metrics())
    }

    /// Every change, every append and apply included: for waits that need them.
    pub fn log_changes(&self) -> Changes {
        Changes::Log(self.raft.metrics())
    }

    /// Waits until the known leader differs from `current`, or half a second passes.
    pub async fn leader_change_from(&self, current: Option<u64>) {
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                if metrics.changed().await.is_err() {
                    return;
                }
                if metrics.borrow_and_update().current_leader != current {
                    return;
                }
            }
        })
        .await;
    }

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

    /// Waits until Raft stopped on this member by itself (a log or state machine write
    /// failed: a full disk, a failed fsync); what stopped it, for the log.
    pub async fn stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_watched().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "Raft is gone".to_string();
            }
        }
    }

    /// Waits until this member has applied the entry at `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        self.raft
            .wait(Some(REQUEST_TIMEOUT))
            .applied_index_at_least(Some(index), "apply")
            .await
            .map(|_| ())
            .map_err(|_| ClusterError::TimedOut)
    }

    /// Asks Raft to hand leadership to `target` (on the leader), without waiting.
    pub async fn ask_to_move_leadership(&self, target: u64) -> Result<(), ClusterError> {
        self.raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|_| ClusterError::Stopped)
    }

    /// Hands leadership to `target` and waits, at most `within`, until it leads.
    pub async fn move_leadership(&self, target: u64, within: Duration) -> Result<(), ClusterError> {
        self.ask_to_move_leadership(target).await?;
        self.raft
            .wait(Some(within))
            .current_leader(target, "move leadership")
            .await
            .map(|_| ())
            .map_err(|_| ClusterError::TimedOut)
    }
}

/// Calls to other members, and to whichever leads.
impl ClusterView {
    /// Calls `member` and waits at most `timeout` for the answer.
    pub async fn ask<R: Answered>(
        &self,
        member: &Member,
        call: Call,
        timeout: Duration,
    ) -> Asked<R> {
        ask_with(&self.members, member, call, timeout).await
    }

    /// The latest round trip to `member` over the peer transport, if one was measured.
    pub fn round_trip(&self, member: &Member) -> Option<Duration> {
        self.members.round_trip(member)
    }

    /// Passes `call` on to the leader (a follower's part in a request only the leader can
    /// answer) within etcd's request timeout. A leader that is gone or going is "leader
    /// changed", which etcd's clients retry.
    pub async fn ask_leader<R: Answered>(&self, call: Call) -> Result<R, ClusterError> {
        let (leader_id, leader) = self.leader_peer().ok_or(ClusterError::NoLeader)?;
        let asked = tokio::select! {
            asked = self.ask(&leader, call, REQUEST_TIMEOUT) => asked,
            () = self.leader_gone(leader_id) => return Err(ClusterError::LeaderChanged),
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
