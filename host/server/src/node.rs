//! A member: its store, what it knows of the cluster (`cluster_view`), where its writes go
//! (`router`), who may do what (`auth`), and the membership changes it makes as the leader.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::{
    PublishMemberRequest, PublishMemberResponse, member_request::Call,
};
use conclave_proto::etcdserverpb::{AlarmType, HashKvResponse, ResponseHeader};
use conclave_raft::{Member, MemberClient, Raft};
use conclave_store::{RequestError, Store};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use tracing::{debug, info};

use crate::auth::Authenticator;
use crate::cluster_view::{ClusterView, MembershipChange};
use crate::error::{BlockingError, ClusterError};
use crate::limits::RequestLimits;
use crate::router::Router;
use crate::wire::member_to_wire;

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
    /// Where writes go (proposed here or forwarded to the leader), and the read index
    /// linearizable reads wait for.
    pub router: Arc<Router>,
    /// Serializes membership changes (see [`Node::change_membership`]).
    membership_changes: tokio::sync::Mutex<()>,
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
        let router = Router::new(
            store.clone(),
            cluster.clone(),
            raft.clone(),
            members,
            quota,
            limits,
        );
        Arc::new(Self {
            auth: Authenticator::new(store.clone(), token_ttl, token_kind, bcrypt_cost),
            store,
            identity,
            me,
            token,
            router,
            membership_changes: tokio::sync::Mutex::new(()),
            cluster,
            raft,
            limits,
            strict_reconfig,
        })
    }

    /// Refuses reads while a CORRUPT alarm stands, as etcd stops serving a corrupt cluster.
    pub fn check_readable(&self) -> Result<(), ClusterError> {
        if self.store.alarms(AlarmType::Corrupt).is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Refused(RequestError::Corrupt))
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
                    .cluster
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
