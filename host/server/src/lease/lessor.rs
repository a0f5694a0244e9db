//! The lessor: when leases expire. Every member keeps each lease's deadline from what it
//! applies (`clocks`); only the leader acts on them, once it has applied its own term's first
//! entry (its clocks then hold everything committed before it led). It renews a lease on a
//! keep-alive by committing a checkpoint of its whole TTL before answering, the keep-alives
//! arriving meanwhile sharing one proposal, so that every member, and so the next leader,
//! knows the renewal the client was told of (etcd #9395), and a leader cut off from a quorum
//! renews nothing (etcd 3.5 confirms its leadership before a renewal for the same reason).
//! It revokes expired leases through Raft, paced, so that a mass expiry does not stall
//! writes (etcd #8097, #12105). Followers send keep-alives and TTL questions to the leader.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::conclavepb::member_request::Call;
use conclave_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use conclave_store::RequestError;
use tracing::{info, warn};

use super::clocks::{LeaseClocks, Renewal, seconds};
use crate::batch::Batch;
use crate::error::{ClusterError, ProposeError};
use crate::node::Node;

/// How often the leader looks for expired leases.
const TICK: Duration = Duration::from_millis(250);
/// etcd's lease revocation rate: at most this many per second.
const REVOKES_PER_SECOND: usize = 1000;
/// Leases per checkpoint proposal (about 20 bytes each, far below --max-request-bytes).
const CHECKPOINTS_PER_PROPOSAL: usize = 1000;
/// A revoke that has not taken effect after this long is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(5);

pub struct Lessor {
    node: Arc<Node>,
    clocks: Arc<LeaseClocks>,
    /// Keep-alives on the leader, as (lease, TTL): each round commits one checkpoint of all.
    renewals: Batch<(i64, i64), (), ProposeError>,
}

impl Lessor {
    pub fn new(node: Arc<Node>, clocks: Arc<LeaseClocks>) -> Arc<Self> {
        Arc::new(Self {
            node,
            clocks,
            renewals: Batch::new(CHECKPOINTS_PER_PROPOSAL),
        })
    }

    /// The term this member leads in with its own term's first entry applied (its clocks
    /// then hold every grant and checkpoint committed before); None otherwise.
    fn acting_term(&self) -> Option<u64> {
        self.node.cluster.leading_with_own_term_applied()
    }

    /// Renews a lease for its whole TTL; the TTL, or 0 for a lease that does not exist (or
    /// expired). Answered once the renewal is committed.
    pub async fn keep_alive(self: &Arc<Self>, id: i64) -> Result<i64, ClusterError> {
        if !self.node.cluster.is_leader() {
            return self.forward_keep_alive(id).await;
        }
        if self.acting_term().is_none() {
            // Leading, but before its own term's first entry applied: not yet.
            return Err(ClusterError::LeaderChanged);
        }
        let renewal = match self.clocks.begin_renewal(id) {
            // Gone by this member's clocks, which a leader that just woke from a pause (or
            // was cut off) reads stale: its monotonic clock ran on while the member leading
            // now renewed the lease. TTL 0 would end a client's living session for good, so
            // it is said only once a quorum confirmed this member still leads and it applied
            // what was committed by then; else the client hears the leader changed, and
            // retries.
            Renewal::Unknown | Renewal::Expired => {
                let index = self.node.router.read_index().await?;
                self.node.cluster.wait_applied(index).await?;
                self.clocks.begin_renewal(id)
            }
            renewing => renewing,
        };
        // Held until answered: the lease is not revoked behind its renewal.
        let (ttl, _renewing) = match renewal {
            Renewal::Unknown | Renewal::Expired => return Ok(0),
            Renewal::Renewing { ttl, guard } => (ttl, guard),
        };
        let (answer, start) = self.renewals.join((id, ttl));
        if start {
            let lessor = self.clone();
            tokio::spawn(async move {
                lessor
                    .renewals
                    .run(|leases| lessor.checkpoint(leases))
                    .await
            });
        }
        answer.await.map_err(|_| ClusterError::LeaderChanged)??;
        // Revoked by a client while the renewal committed: gone after all.
        Ok(if self.clocks.remaining(id).is_some() {
            ttl
        } else {
            0
        })
    }

    /// Commits one checkpoint renewing each of `leases` (lease, TTL) for its whole TTL.
    async fn checkpoint(&self, leases: Vec<(i64, i64)>) -> Result<(), ProposeError> {
        let request = Request::LeaseCheckpoint(LeaseCheckpointRequest {
            checkpoints: leases
                .into_iter()
                .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                .collect(),
        });
        let applied = self.node.router.propose(request).await?;
        applied.result.map(|_| ()).map_err(ProposeError::Refused)
    }

    async fn forward_keep_alive(&self, id: i64) -> Result<i64, ClusterError> {
        let resp: LeaseKeepAliveResponse = self
            .node
            .cluster
            .ask_leader(Call::LeaseKeepAlive(LeaseKeepAliveRequest { id }))
            .await?;
        Ok(resp.ttl)
    }

    /// The remaining TTL (by the leader's clock), granted TTL and, if asked, keys of a lease;
    /// TTL -1 for one that does not exist.
    pub async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ClusterError> {
        if !self.node.cluster.is_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::LeaseTimeToLive(req))
                .await;
        }
        let header = self.node.header(self.node.store.current_revision());
        // The keys are copied only when asked for.
        let found = if req.keys {
            self.node.store.lease(req.id).map(|l| (l.ttl, l.keys))
        } else {
            self.node
                .store
                .lease_ttl(req.id)
                .map(|ttl| (ttl, Vec::new()))
        };
        let Some((granted_ttl, keys)) = found else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                ..Default::default()
            });
        };
        let ttl = self.clocks.remaining(req.id).map_or(granted_ttl, seconds);
        Ok(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    /// Runs for as long as the member does: on the leader, revokes expired leases.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut acting = None;
        loop {
            ticker.tick().await;
            let term = self.acting_term();
            if term.is_some() && term != acting {
                info!("leading: the leases' clocks are this member's to act on");
            }
            acting = term;
            if term.is_none() {
                continue;
            }
            let per_tick = (REVOKES_PER_SECOND * TICK.as_millis() as usize / 1000).max(1);
            let expired = self.clocks.take_expired(per_tick, REVOKE_RETRY);
            if let (Some(term), false) = (term, expired.is_empty()) {
                self.revoke(expired, term).await;
            }
        }
    }

    /// Revokes leases this member, leading in `term`, found expired: never forwarded to
    /// another leader, whose clocks may say otherwise (`Router::propose_as_leader`).
    async fn revoke(&self, ids: Vec<i64>, term: u64) {
        info!(leases = ids.len(), "revoking expired leases");
        let proposals = ids.into_iter().map(|id| async move {
            let request = Request::LeaseRevoke(LeaseRevokeRequest { id });
            match self
                .node
                .router
                .propose_as_leader(request, term)
                .await
                .map(|applied| applied.result)
            {
                // Revoked by a client meanwhile, or by this very proposal.
                Ok(Ok(_) | Err(RequestError::LeaseNotFound)) => {}
                Ok(Err(e)) => {
                    warn!(lease = id, error = %e, "revoking an expired lease was refused")
                }
                Err(e) => {
                    warn!(lease = id, error = %e, "revoking an expired lease failed; will retry")
                }
            }
        });
        futures::future::join_all(proposals).await;
    }
}
