//! Every lease's deadline by this member's clock, kept on every member from what apply tells
//! (grants, checkpoints, revokes), as the watch hub hears of key changes. A member that becomes
//! leader already knows when each lease ends, from the last grant or checkpoint it applied,
//! instead of starting every lease's remaining TTL over from when it took over; and the leader
//! never polls the store for leases.
//!
//! A deadline moves only later. A keep-alive is a checkpoint of the whole TTL, committed before
//! the client hears of it: each member that applies it moves the deadline to the TTL from its
//! own apply, which comes after the client sent the keep-alive. So no member's deadline is ever
//! before the one the client was promised, whichever member acts on it next; and a leader cut
//! off from a quorum renews nothing, since it commits nothing. While a renewal is under way,
//! the leader does not revoke the lease: a revoke committed behind the renewal would end the
//! lease the client was just told lives on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use conclave_raft::ApplyListener;
use conclave_store::{Applied, LeaseChange, Store};
use parking_lot::Mutex;
use tokio::time::Instant;

/// One lease's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The TTL it was granted, in seconds.
    ttl: i64,
    /// When it expires, by this member's clock.
    deadline: Instant,
    /// Until when a revoke proposed for it is awaited before it is proposed again.
    revoking_until: Option<Instant>,
    /// Renewals proposed and not yet answered: while there are any, it is not revoked.
    renewing: u32,
}

impl Clock {
    fn new(ttl: i64, deadline: Instant) -> Self {
        Self {
            ttl,
            deadline,
            revoking_until: None,
            renewing: 0,
        }
    }
}

/// What a keep-alive finds.
pub enum Renewal {
    /// No such lease (never granted, or revoked): etcd answers TTL 0.
    Unknown,
    /// Past its deadline, its revoke due or under way: too late to renew, TTL 0 as well.
    Expired,
    /// Renewable: propose a checkpoint of `ttl` seconds; the lease is not revoked until the
    /// guard is dropped.
    Renewing { ttl: i64, guard: RenewalGuard },
}

/// Holds a lease's revoke back while its renewal is under way (also if the keep-alive is
/// dropped halfway, when its client goes away).
pub struct RenewalGuard {
    clocks: Arc<LeaseClocks>,
    id: i64,
}

impl Drop for RenewalGuard {
    fn drop(&mut self) {
        if let Some(clock) = self.clocks.leases.lock().get_mut(&self.id) {
            clock.renewing = clock.renewing.saturating_sub(1);
        }
    }
}

/// The clocks of every lease; an apply listener.
pub struct LeaseClocks {
    store: Arc<Store>,
    leases: Mutex<HashMap<i64, Clock>>,
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
        });
        clocks.reload();
        clocks
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

    /// Starts a renewal of lease `id` (the leader's keep-alive): renewable while it lives.
    pub fn begin_renewal(self: &Arc<Self>, id: i64) -> Renewal {
        let now = Instant::now();
        let mut leases = self.leases.lock();
        let Some(clock) = leases.get_mut(&id) else {
            return Renewal::Unknown;
        };
        if clock.deadline <= now || clock.revoking_until.is_some() {
            return Renewal::Expired;
        }
        clock.renewing += 1;
        Renewal::Renewing {
            ttl: clock.ttl,
            guard: RenewalGuard {
                clocks: self.clone(),
                id,
            },
        }
    }

    /// Up to `limit` leases past their deadline, the longest expired first. Each is held for
    /// `retry`: until its revoke applies, it is not handed out again.
    pub fn take_expired(&self, limit: usize, retry: Duration) -> Vec<i64> {
        let now = Instant::now();
        let mut leases = self.leases.lock();
        let mut expired: Vec<(Instant, i64)> = leases
            .iter()
            .filter(|(_, c)| {
                c.deadline <= now && c.renewing == 0 && c.revoking_until.is_none_or(|t| t <= now)
            })
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

    fn learn(&self, changes: impl Iterator<Item = LeaseChange>) {
        // A checkpoint moves a deadline later, never earlier: a lease's end only moves later.
        let now = Instant::now();
        let mut leases = self.leases.lock();
        for change in changes {
            match change {
                LeaseChange::Granted { id, ttl } => {
                    leases.insert(id, Clock::new(ttl, after(now, ttl)));
                }
                LeaseChange::Checkpointed { id, remaining } => {
                    if let Some(clock) = leases.get_mut(&id) {
                        clock.deadline = clock.deadline.max(after(now, remaining));
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
        // A keep-alive, committed: the end moves later.
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
    async fn a_lease_being_renewed_is_not_revoked_and_a_late_renewal_is_refused() {
        let (_dir, clocks) = clocks();
        clocks.applied(&[applied(vec![LeaseChange::Granted { id: 1, ttl: 2 }])]);
        assert!(matches!(clocks.begin_renewal(99), Renewal::Unknown));
        let Renewal::Renewing { ttl, guard } = clocks.begin_renewal(1) else {
            panic!("a live lease is renewable");
        };
        assert_eq!(ttl, 2);
        // Its deadline passes while the renewal commits: it is not handed out for revoking.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(clocks.take_expired(10, Duration::from_secs(5)).is_empty());
        // The renewal's checkpoint applies: the lease lives on for its TTL from then.
        clocks.applied(&[applied(vec![LeaseChange::Checkpointed {
            id: 1,
            remaining: 2,
        }])]);
        drop(guard);
        assert_eq!(left(&clocks, 1), Duration::from_secs(2));
        // A renewal that fails (no quorum) leaves the old deadline, which then ends it.
        let Renewal::Renewing { guard, .. } = clocks.begin_renewal(1) else {
            panic!("still live");
        };
        drop(guard);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(clocks.begin_renewal(1), Renewal::Expired));
        assert_eq!(clocks.take_expired(10, Duration::from_secs(5)), vec![1]);
        // Its revoke under way: still too late.
        assert!(matches!(clocks.begin_renewal(1), Renewal::Expired));
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
    }
}
