//! The lessor: when leases expire. Only the leader keeps time for leases; it renews them on
//! keep-alives, revokes expired ones through Raft (paced, so that a mass expiry does not
//! stall writes: etcd #8097, #12105), and checkpoints their remaining TTLs through Raft, so
//! that the next leader neither restores every lease to its full TTL (etcd #9395) nor lets
//! them all expire at once. Followers send keep-alives and TTL questions to the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::conclavepb::member_request::Call;
use conclave_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use conclave_store::RequestError;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::ClusterError;
use crate::node::Node;

/// How often the leader looks for expired leases and drifted checkpoints.
const TICK: Duration = Duration::from_millis(250);
/// etcd's lease revocation rate: at most this many per second.
const REVOKES_PER_SECOND: usize = 1000;
/// Checkpoints go out at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Leases per checkpoint proposal.
const CHECKPOINTS_PER_PROPOSAL: usize = 1000;
/// A revoke that has not taken effect after this long is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(5);

pub struct Lessor {
    node: Arc<Node>,
    state: Mutex<Clock>,
}

/// The leader's clock for leases: each lease's deadline, for one term of leadership.
#[derive(Default)]
struct Clock {
    /// The term the deadlines are for; None while this member does not lead.
    term: Option<u64>,
    deadlines: HashMap<i64, Instant>,
    last_checkpoint: Option<Instant>,
}

/// `secs` seconds (never negative) after `from`.
fn after(from: Instant, secs: i64) -> Instant {
    from + Duration::from_secs(secs.max(0) as u64)
}

fn seconds(d: Duration) -> i64 {
    // Round up, as etcd reports remaining TTLs: a lease with 0.2 s left has 1 s left.
    d.as_millis().div_ceil(1000) as i64
}

impl Lessor {
    pub fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self {
            node,
            state: Mutex::new(Clock::default()),
        })
    }

    /// The leader's bookkeeping, started fresh for a new term: a lease's deadline is its
    /// checkpointed remaining TTL from now, or its whole TTL if none was checkpointed.
    fn clock(&self) -> parking_lot::MutexGuard<'_, Clock> {
        let mut clock = self.state.lock();
        let term = self
            .node
            .cluster
            .is_leader()
            .then(|| self.node.cluster.term());
        if clock.term != term {
            clock.deadlines.clear();
            clock.last_checkpoint = None;
            clock.term = term;
            if term.is_some() {
                let now = Instant::now();
                let leases = self.node.store.leases();
                info!(
                    leases = leases.len(),
                    "leading: taking over the leases' clocks"
                );
                for lease in leases {
                    let left = if lease.remaining > 0 {
                        lease.remaining
                    } else {
                        lease.ttl
                    };
                    clock.deadlines.insert(lease.id, after(now, left));
                }
            }
        }
        clock
    }

    /// Renews a lease for its whole TTL; the TTL, or 0 for a lease that does not exist.
    pub async fn keep_alive(&self, id: i64) -> Result<i64, ClusterError> {
        if !self.node.cluster.is_leader() {
            return self.forward_keep_alive(id).await;
        }
        let Some(ttl) = self.node.store.lease_ttl(id) else {
            return Ok(0);
        };
        let mut clock = self.clock();
        if clock.term.is_none() {
            return Err(ClusterError::LeaderChanged);
        }
        clock.deadlines.insert(id, after(Instant::now(), ttl));
        Ok(ttl)
    }

    async fn forward_keep_alive(&self, id: i64) -> Result<i64, ClusterError> {
        let resp: LeaseKeepAliveResponse = self
            .node
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
            return self.node.ask_leader(Call::LeaseTimeToLive(req)).await;
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
        let deadline = self.clock().deadlines.get(&req.id).copied();
        let ttl = match deadline {
            Some(d) => seconds(d.saturating_duration_since(Instant::now())),
            None => granted_ttl,
        };
        Ok(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    /// Starts the leader's clock for a lease just granted here.
    pub fn granted(&self, id: i64, ttl: i64) {
        let mut clock = self.clock();
        if clock.term.is_some() {
            clock.deadlines.insert(id, after(Instant::now(), ttl));
        }
    }

    /// Runs for as long as the member does: on the leader, revokes expired leases and
    /// checkpoints remaining TTLs.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let (expired, checkpoints) = self.due();
            if !expired.is_empty() {
                self.revoke(expired).await;
            }
            for chunk in checkpoints.chunks(CHECKPOINTS_PER_PROPOSAL) {
                let request = Request::LeaseCheckpoint(LeaseCheckpointRequest {
                    checkpoints: chunk.to_vec(),
                });
                if let Err(e) = self.node.propose(request).await {
                    debug!(error = %e, "lease checkpoint not committed; the next one will be");
                }
            }
        }
    }

    /// What is due this tick: leases to revoke (at most a tick's share of the rate), and
    /// checkpoints of leases whose remaining TTL drifted from the last one recorded.
    fn due(&self) -> (Vec<i64>, Vec<LeaseCheckpoint>) {
        let mut clock = self.clock();
        if clock.term.is_none() {
            return (Vec::new(), Vec::new());
        }
        let now = Instant::now();
        // Reconcile with the replicated state: leases granted elsewhere, leases revoked.
        let leases = self.node.store.leases();
        let live: HashMap<i64, (i64, i64)> = leases
            .iter()
            .map(|l| (l.id, (l.ttl, l.remaining)))
            .collect();
        clock.deadlines.retain(|id, _| live.contains_key(id));
        for (&id, &(ttl, _)) in &live {
            clock.deadlines.entry(id).or_insert_with(|| after(now, ttl));
        }

        let per_tick = (REVOKES_PER_SECOND * TICK.as_millis() as usize / 1000).max(1);
        let mut expired: Vec<(Instant, i64)> = clock
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, d)| (*d, *id))
            .collect();
        expired.sort();
        expired.truncate(per_tick);
        for (_, id) in &expired {
            // Until the revoke applies, do not propose it again.
            clock.deadlines.insert(*id, now + REVOKE_RETRY);
        }

        let mut checkpoints = Vec::new();
        let checkpoint_due = clock
            .last_checkpoint
            .is_none_or(|t| now.duration_since(t) >= CHECKPOINT_EVERY);
        if checkpoint_due {
            clock.last_checkpoint = Some(now);
            for (&id, deadline) in &clock.deadlines {
                let Some(&(ttl, recorded)) = live.get(&id) else {
                    continue;
                };
                let left = seconds(deadline.saturating_duration_since(now));
                let recorded = if recorded > 0 { recorded } else { ttl };
                // Within a tenth of the TTL (at least a second) is close enough: a new leader
                // errs by that much at most, and long leases are checkpointed rarely.
                let tolerance = (ttl / 10).max(1);
                if left > 0 && (left - recorded).abs() >= tolerance {
                    checkpoints.push(LeaseCheckpoint {
                        id,
                        remaining_ttl: left,
                    });
                }
            }
        }
        (expired.into_iter().map(|(_, id)| id).collect(), checkpoints)
    }

    async fn revoke(&self, ids: Vec<i64>) {
        info!(leases = ids.len(), "revoking expired leases");
        let proposals = ids.into_iter().map(|id| async move {
            let request = Request::LeaseRevoke(LeaseRevokeRequest { id });
            match self
                .node
                .propose(request)
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
