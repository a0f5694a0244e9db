//! Every lease's deadline by this member's clock, kept on every member from what apply tells
//! (grants, checkpoints, revokes), as the watch hub hears of key changes. A member that becomes
//! leader already knows when each lease ends, from the last grant or checkpoint it applied,
//! instead of starting every lease's remaining TTL over from when it took over; and the leader
//! never polls the store for leases.
//!
//! A deadline moves only later (a keep-alive renews a lease on the leader). The leader
//! announces a moved deadline with a checkpoint once it is a tenth of the TTL (at least a
//! second) past the one the others know, at a moment when the remaining TTL, rounded up to
//! whole seconds as the checkpoint carries it, is less than a tick above the exact one: so the
//! others' deadlines are never before the leader's, and at most a tick after it (plus the time
//! the checkpoint takes to reach them).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conclave_proto::etcdserverpb::LeaseCheckpoint;
use conclave_raft::ApplyListener;
use conclave_store::{Applied, LeaseChange, Store};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cluster_view::ClusterView;

/// A checkpoint goes out only when the remaining TTL rounded up to whole seconds is less than
/// this above the exact one: the leader's lessor looks every this often, so each lease meets
/// the bound within a second of looks.
pub const ROUNDING_SLACK: Duration = Duration::from_millis(250);

/// One lease's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The TTL it was granted, in seconds.
    ttl: i64,
    /// When it expires, by this member's clock.
    deadline: Instant,
    /// The deadline the replicated state gives it (its grant, its last checkpoint), as this
    /// member applied them: what another member taking over would go by.
    announced: Instant,
    /// Until when a revoke proposed for it is awaited before it is proposed again.
    revoking_until: Option<Instant>,
}

impl Clock {
    fn new(ttl: i64, deadline: Instant) -> Self {
        Self {
            ttl,
            deadline,
            announced: deadline,
            revoking_until: None,
        }
    }
}

/// The clocks of every lease; an apply listener.
pub struct LeaseClocks {
    store: Arc<Store>,
    leases: Mutex<HashMap<i64, Clock>>,
    /// Set once Raft runs: whether this member leads with its own term applied, in which
    /// case the checkpoints it applies are its own.
    cluster: OnceLock<ClusterView>,
}

/// `secs` seconds (never negative) after `from`.
fn after(from: Instant, secs: i64) -> Instant {
    from + Duration::from_secs(secs.max(0) as u64)
}

/// Whole seconds, rounded up, as etcd reports remaining TTLs: a lease with 0.2 s left has 1 s.
pub fn seconds(d: Duration) -> i64 {
    d.as_millis().div_ceil(1000) as i64
}

impl LeaseClocks {
    /// Every lease in `store`, each ending its recorded remaining TTL (or its TTL) from now.
    pub fn load(store: Arc<Store>) -> Arc<Self> {
        let clocks = Arc::new(Self {
            store,
            leases: Mutex::new(HashMap::new()),
            cluster: OnceLock::new(),
        });
        clocks.reload();
        clocks
    }

    /// Tells the clocks about Raft, once it runs.
    pub fn set_cluster(&self, cluster: ClusterView) {
        let _ = self.cluster.set(cluster);
    }

    fn reload(&self) {
        let now = Instant::now();
        let leases = self
            .store
            .leases()
            .into_iter()
            .map(|l| {
                let left = if l.remaining > 0 { l.remaining } else { l.ttl };
                (l.id, Clock::new(l.ttl, after(now, left)))
            })
            .collect();
        *self.leases.lock() = leases;
    }

    /// The time lease `id` has left, if it exists.
    pub fn remaining(&self, id: i64) -> Option<Duration> {
        let now = Instant::now();
        self.leases
            .lock()
            .get(&id)
            .map(|c| c.deadline.saturating_duration_since(now))
    }

    /// Renews lease `id` for its whole TTL from now (the leader's keep-alive); its TTL, or
    /// None if it does not exist.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut leases = self.leases.lock();
        let clock = leases.get_mut(&id)?;
        clock.deadline = after(Instant::now(), clock.ttl);
        Some(clock.ttl)
    }

    /// Up to `limit` leases past their deadline, the longest expired first. Each is held for
    /// `retry`: until its revoke applies, it is not handed out again.
    pub fn take_expired(&self, limit: usize, retry: Duration) -> Vec<i64> {
        let now = Instant::now();
        let mut leases = self.leases.lock();
        let mut expired: Vec<(Instant, i64)> = leases
            .iter()
            .filter(|(_, c)| c.deadline <= now && c.revoking_until.is_none_or(|t| t <= now))
            .map(|(id, c)| (c.deadline, *id))
            .collect();
        expired.sort();
        expired.truncate(limit);
        for (_, id) in &expired {
            if let Some(clock) = leases.get_mut(id) {
                clock.revoking_until = Some(now + retry);
            }
        }
        expired.into_iter().map(|(_, id)| id).collect()
    }

    /// Checkpoints of the leases whose deadline moved a tenth of their TTL (at least a
    /// second) past the announced one, taken now if the rounding to whole seconds is within
    /// [`ROUNDING_SLACK`] (otherwise at a later look).
    pub fn moved(&self) -> Vec<LeaseCheckpoint> {
        let now = Instant::now();
        self.leases
            .lock()
            .iter()
            .filter_map(|(&id, c)| {
                let exact = c.deadline.checked_duration_since(now)?;
                let left = seconds(exact);
                let tolerance = Duration::from_secs((c.ttl / 10).max(1) as u64);
                let rounding = Duration::from_secs(left as u64).saturating_sub(exact);
                (c.deadline >= c.announced + tolerance && rounding < ROUNDING_SLACK).then_some(
                    LeaseCheckpoint {
                        id,
                        remaining_ttl: left,
                    },
                )
            })
            .collect()
    }

    fn learn(&self, changes: impl Iterator<Item = LeaseChange>) {
        // The leader's own checkpoints say what its clocks already hold (rounded up to whole
        // seconds): they only move what is announced. Anyone else's move a deadline later,
        // never earlier, as a lease's end only moves later (a keep-alive).
        let own = self
            .cluster
            .get()
            .is_some_and(|c| c.leading_with_own_term_applied().is_some());
        let now = Instant::now();
        let mut leases = self.leases.lock();
        for change in changes {
            match change {
                LeaseChange::Granted { id, ttl } => {
                    leases.insert(id, Clock::new(ttl, after(now, ttl)));
                }
                LeaseChange::Checkpointed { id, remaining } => {
                    if let Some(clock) = leases.get_mut(&id) {
                        let announced = after(now, remaining);
                        clock.announced = clock.announced.max(announced);
                        if !own {
                            clock.deadline = clock.deadline.max(announced);
                        }
                    }
                }
                LeaseChange::Revoked { id } => {
                    leases.remove(&id);
                }
            }
        }
    }
}

impl ApplyListener for LeaseClocks {
    fn applied(&self, outcomes: &[Applied]) {
        if outcomes.iter().all(|o| o.leases.is_empty()) {
            return;
        }
        self.learn(outcomes.iter().flat_map(|o| o.leases.iter().copied()));
    }

    /// A snapshot replaced the store: its leases start over from what it recorded.
    fn installed(&self, _revision: i64) {
        self.reload();
    }
}

#[cfg(test)]
mod tests {
    use conclave_store::Response;

    use super::*;

    fn applied(changes: Vec<LeaseChange>) -> Applied {
        Applied {
            index: 1,
            revision: 1,
            result: Ok(Response::Empty),
            events: Vec::new(),
            leases: changes,
        }
    }

    fn clocks() -> (tempfile::TempDir, Arc<LeaseClocks>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Arc::new(Store::open(dir.path()).expect("a store"));
        (dir, LeaseClocks::load(store))
    }

    fn left(clocks: &LeaseClocks, id: i64) -> Duration {
        clocks.remaining(id).expect("the lease is known")
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_keeps_a_deadline_from_grants_and_checkpoints_never_moving_it_earlier() {
        let (_dir, clocks) = clocks();
        clocks.applied(&[applied(vec![LeaseChange::Granted { id: 7, ttl: 10 }])]);
        assert_eq!(left(&clocks, 7), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(3)).await;
        // A checkpoint that says less than this member knows (a rounding, a lagging apply)
        // does not bring the end forward.
        clocks.applied(&[applied(vec![LeaseChange::Checkpointed {
            id: 7,
            remaining: 5,
        }])]);
        assert_eq!(left(&clocks, 7), Duration::from_secs(7));
        // A keep-alive on the leader, announced: the end moves later.
        clocks.applied(&[applied(vec![LeaseChange::Checkpointed {
            id: 7,
            remaining: 10,
        }])]);
        assert_eq!(left(&clocks, 7), Duration::from_secs(10));
        clocks.applied(&[applied(vec![LeaseChange::Revoked { id: 7 }])]);
        assert_eq!(clocks.remaining(7), None);
        // A checkpoint of a lease this member does not know makes none up.
        clocks.applied(&[applied(vec![LeaseChange::Checkpointed {
            id: 8,
            remaining: 4,
        }])]);
        assert_eq!(clocks.remaining(8), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_is_announced_once_it_moved_a_tenth_of_the_ttl_and_rounds_closely() {
        let (_dir, clocks) = clocks();
        clocks.applied(&[applied(vec![LeaseChange::Granted { id: 1, ttl: 30 }])]);
        assert!(clocks.moved().is_empty(), "nothing moved yet");
        // Renewed 2 s later: moved 2 s, under the 3 s tolerance.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clocks.renew(1), Some(30));
        assert!(clocks.moved().is_empty());
        // Renewed again 2 s later: moved 4 s past the announced end.
        tokio::time::advance(Duration::from_secs(2)).await;
        clocks.renew(1);
        // 29.6 s left would round up to 30 s, 0.4 s late: not yet.
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(
            clocks.moved().is_empty(),
            "rounding too far from the exact end"
        );
        // 28.9 s left rounds up to 29 s, 0.1 s late: announced.
        tokio::time::advance(Duration::from_millis(700)).await;
        let moved = clocks.moved();
        assert_eq!(moved.len(), 1);
        assert_eq!((moved[0].id, moved[0].remaining_ttl), (1, 29));
        // Applied (as a follower would): announced, so not proposed again.
        clocks.applied(&[applied(vec![LeaseChange::Checkpointed {
            id: 1,
            remaining: 29,
        }])]);
        assert!(clocks.moved().is_empty());
        assert_eq!(clocks.renew(99), None, "an unknown lease renews nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_leases_go_oldest_first_within_the_limit_and_wait_for_their_revoke() {
        let (_dir, clocks) = clocks();
        clocks.applied(&[applied(vec![
            LeaseChange::Granted { id: 1, ttl: 3 },
            LeaseChange::Granted { id: 2, ttl: 2 },
            LeaseChange::Granted { id: 3, ttl: 60 },
        ])]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(clocks.take_expired(10, Duration::from_secs(5)).is_empty());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clocks.take_expired(1, Duration::from_secs(5)), vec![2]);
        assert_eq!(clocks.take_expired(10, Duration::from_secs(5)), vec![1]);
        // Awaiting their revokes: not handed out again until the retry is due.
        assert!(clocks.take_expired(10, Duration::from_secs(5)).is_empty());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clocks.take_expired(10, Duration::from_secs(5)), vec![2, 1]);
        // An expired lease is never announced as moved.
        assert!(clocks.moved().is_empty());
    }
}
