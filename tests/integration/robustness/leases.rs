//! Leases in the workload: each client now and then holds a session, a 2 s lease with one key
//! under it, renews it a few times, then revokes it or lets it lapse. What was promised is
//! recorded (when the grant and each answered renewal were sent), and the watchers say when
//! each key went. A key seen gone before its lease's TTL ran out from the last promise, and
//! not revoked by its client, ended early; one still there long after, ended late.

use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use tokio::time::Instant;

/// A session's lease TTL: etcd's minimum with its default election timeout.
pub const TTL: i64 = 2;
/// How much later than promised a lease may end across the faults the scenarios strike (an
/// election, a paused leader's wake-up): a bound for leases that never end, not a target.
const LATE: Duration = Duration::from_secs(10);
/// How long one lease call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One session's record.
#[derive(Debug, Clone)]
pub struct Session {
    pub client: usize,
    pub key: String,
    /// When the grant and every renewal answered with the TTL were sent: the lease lives at
    /// least `TTL` after each.
    pub promised: Vec<Duration>,
    /// When the client asked to revoke it, if it did.
    pub revoked: Option<Duration>,
}

/// A client's session in progress.
pub struct Live {
    lease: i64,
    record: usize,
    renewals_left: u64,
}

#[derive(Default)]
pub struct Sessions {
    pub records: Mutex<Vec<Session>>,
}

/// One step of client `id`'s session: start one, renew it, or end it. `choice` is a random
/// number below 100.
pub async fn step(
    client: &mut Client,
    id: usize,
    seq: u64,
    choice: u64,
    live: &mut Option<Live>,
    start: Instant,
    sessions: &Sessions,
) {
    let Some(current) = live else {
        *live = begin(client, id, seq, choice % 5, start, sessions).await;
        return;
    };
    if current.renewals_left == 0 {
        if choice < 50 {
            let sent = start.elapsed();
            sessions.records.lock().unwrap()[current.record].revoked = Some(sent);
            let _ = tokio::time::timeout(CALL_TIMEOUT, client.lease_revoke(current.lease)).await;
        }
        // Revoked, or left to lapse.
        *live = None;
        return;
    }
    current.renewals_left -= 1;
    let sent = start.elapsed();
    if crate::common::renewed(client, current.lease, CALL_TIMEOUT).await {
        sessions.records.lock().unwrap()[current.record]
            .promised
            .push(sent);
    } else {
        // Gone, or no answer: stop renewing and let it end when it ends.
        *live = None;
    }
}

async fn begin(
    client: &mut Client,
    id: usize,
    seq: u64,
    renewals: u64,
    start: Instant,
    sessions: &Sessions,
) -> Option<Live> {
    let sent = start.elapsed();
    let lease = tokio::time::timeout(CALL_TIMEOUT, client.lease_grant(TTL, None))
        .await
        .ok()?
        .ok()?
        .id();
    let key = format!("{}lease/c{id}-{seq}", super::workload::PREFIX);
    let options = PutOptions::new().with_lease(lease);
    tokio::time::timeout(
        CALL_TIMEOUT,
        client.put(key.as_str(), "held", Some(options)),
    )
    .await
    .ok()?
    .ok()?;
    let mut records = sessions.records.lock().unwrap();
    records.push(Session {
        client: id,
        key,
        promised: vec![sent],
        revoked: None,
    });
    Some(Live {
        lease,
        record: records.len() - 1,
        renewals_left: renewals,
    })
}

/// Judges every session against when its key was first seen gone (by any watcher) and the
/// time the watchers stopped.
pub fn judge(
    sessions: &[Session],
    gone: &dyn Fn(&str) -> Option<Duration>,
    watched_until: Duration,
) {
    let ttl = Duration::from_secs(TTL as u64);
    let mut ended = 0;
    for s in sessions {
        let Some(&last) = s.promised.iter().max() else {
            continue;
        };
        let promised_until = last + ttl;
        match gone(&s.key) {
            Some(seen) => {
                ended += 1;
                // Seen gone is after it went: seen before the promise ran out is early for
                // sure, unless its client revoked it first.
                let revoked_first = s.revoked.is_some_and(|r| r <= seen);
                assert!(
                    revoked_first || seen >= promised_until,
                    "client {}'s lease for {} ended early: seen gone at {seen:?}, promised \
                     until {promised_until:?}",
                    s.client,
                    s.key
                );
                assert!(
                    seen <= promised_until + LATE,
                    "client {}'s lease for {} ended late: at {seen:?}, promised until \
                     {promised_until:?}",
                    s.client,
                    s.key
                );
            }
            None => assert!(
                promised_until + LATE > watched_until,
                "client {}'s lease for {} never ended (promised until {promised_until:?}, \
                 watched until {watched_until:?})",
                s.client,
                s.key
            ),
        }
    }
    eprintln!("{} lease sessions, {ended} seen ending", sessions.len());
}

#[cfg(test)]
mod tests {
    //! The lease checks' self-test: a key gone before its promise, one never gone, must be
    //! caught; a revoke excuses an early end.

    use std::panic::catch_unwind;

    use super::*;

    fn session(promised: &[u64], revoked: Option<u64>) -> Session {
        Session {
            client: 0,
            key: "k".to_string(),
            promised: promised
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            revoked: revoked.map(Duration::from_millis),
        }
    }

    fn passes(s: Session, gone_at: Option<u64>, watched_until: u64) -> bool {
        catch_unwind(|| {
            judge(
                std::slice::from_ref(&s),
                &|_| gone_at.map(Duration::from_millis),
                Duration::from_millis(watched_until),
            )
        })
        .is_ok()
    }

    #[test]
    fn early_and_never_ending_leases_are_caught() {
        // Granted at 0, renewed at 1000: promised until 3000.
        let renewed = || session(&[0, 1000], None);
        assert!(passes(renewed(), Some(3100), 20_000));
        assert!(!passes(renewed(), Some(2500), 20_000), "early");
        assert!(!passes(renewed(), Some(14_000), 20_000), "late");
        assert!(!passes(renewed(), None, 20_000), "never ended");
        assert!(
            passes(renewed(), None, 5_000),
            "not over yet when watching stopped"
        );
        // Revoked by its client at 1500: gone at 1600 is not early.
        assert!(passes(session(&[0, 1000], Some(1500)), Some(1600), 20_000));
    }
}
