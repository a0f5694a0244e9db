//! Watchers beside the workload, one on each member, on the workload's prefix from revision 1
//! with prev_kv, resuming after the last revision they saw whenever their stream breaks (their
//! member killed, cut off, restarted); and the checks of what they saw against etcd's watch
//! guarantees: ordered and unique (revisions only grow), reliable (every member's watcher saw
//! the same events, and every acknowledged write among them, with its value at its revision),
//! resumable (the resumed streams continue without a gap or a repeat), atomic (the events of
//! one revision, a txn's, arrive in one response), bookmarkable, and prev_kv correct.
//! The events, from revision 1, also say what the prefix held at every revision: each
//! paginated list must have read exactly that at its revision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::time::Instant;

use super::history::{Op, Operation, Outcome};
use super::workload::List;

/// One event as a watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub revision: i64,
    pub key: String,
    /// None for a delete.
    pub value: Option<String>,
    /// prev_kv: the value and mod_revision the key had before.
    pub prev: Option<(String, i64)>,
}

/// How far every watcher must have seen before it stops: set once the workload ended.
/// Also how far each watcher has seen, so that history is compacted only below what every
/// watcher already has (a watcher resuming below a compaction would lose events for good).
pub struct Goal {
    revision: AtomicI64,
    seen: Vec<AtomicI64>,
}

impl Goal {
    pub fn new(watchers: usize) -> Arc<Self> {
        Arc::new(Self {
            revision: AtomicI64::new(i64::MAX),
            seen: (0..watchers).map(|_| AtomicI64::new(0)).collect(),
        })
    }

    /// The newest revision every watcher has seen: history below it may be compacted.
    pub fn compactable(&self) -> i64 {
        self.seen
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(0)
    }

    pub fn set(&self, revision: i64) {
        self.revision.store(revision, Ordering::SeqCst);
    }

    fn reached(&self, seen: i64) -> bool {
        let goal = self.revision.load(Ordering::SeqCst);
        goal != i64::MAX && seen >= goal
    }
}

/// What one watcher saw.
pub struct Watched {
    /// The events, in order.
    pub seen: Vec<Seen>,
    /// When each was received (since the run's start).
    pub received: Vec<Duration>,
    /// Which response of the watcher's (counted from 0 across its streams) brought each.
    pub responses: Vec<usize>,
    /// Progress notifications answering its progress requests: how many events had arrived
    /// before each, and the revision it named.
    pub bookmarks: Vec<(usize, i64)>,
}

/// How often a watcher asks for progress (etcd's WatchProgressRequest).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Watches `prefix` through `client` until `goal` is reached (or `deadline` passes), asking
/// for progress now and then. It is watcher `me` of `goal`; times are since `start`.
pub async fn watch(
    mut client: Client,
    prefix: &str,
    goal: Arc<Goal>,
    me: usize,
    deadline: Instant,
    start: Instant,
) -> Watched {
    let mut seen: Vec<Seen> = Vec::new();
    let mut received: Vec<Duration> = Vec::new();
    let mut responses: Vec<usize> = Vec::new();
    let mut response = 0;
    let mut bookmarks: Vec<(usize, i64)> = Vec::new();
    let mut next = 1;
    while Instant::now() < deadline && !goal.reached(next - 1) {
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(next);
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), client.watch(prefix, Some(options))).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut asked = Instant::now();
        loop {
            if goal.reached(next - 1) || Instant::now() >= deadline {
                break;
            }
            if asked.elapsed() >= PROGRESS_EVERY {
                asked = Instant::now();
                if stream.request_progress().await.is_err() {
                    break;
                }
            }
            let message = match tokio::time::timeout(Duration::from_secs(1), stream.message()).await
            {
                // Quiet for a second: look at the goal again.
                Err(_) => continue,
                Ok(Ok(Some(message))) => message,
                // The stream broke: resume after the last revision seen.
                Ok(_) => break,
            };
            if message.canceled() {
                break;
            }
            // A progress notification: no events, not the creation answer.
            if message.events().is_empty() && !message.created() {
                if let Some(header) = message.header() {
                    bookmarks.push((seen.len(), header.revision()));
                }
                continue;
            }
            response += 1;
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                let value = match event.event_type() {
                    EventType::Put => Some(String::from_utf8_lossy(kv.value()).into_owned()),
                    EventType::Delete => None,
                };
                seen.push(Seen {
                    revision: kv.mod_revision(),
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value,
                    prev: event.prev_kv().map(|p| {
                        (
                            String::from_utf8_lossy(p.value()).into_owned(),
                            p.mod_revision(),
                        )
                    }),
                });
                received.push(start.elapsed());
                responses.push(response);
                next = next.max(kv.mod_revision() + 1);
                goal.seen[me].store(next - 1, Ordering::SeqCst);
            }
        }
    }
    Watched {
        seen,
        received,
        responses,
        bookmarks,
    }
}

/// Atomic: every event of one revision (a txn's) came in the same response, so that a
/// client never acts on half a transaction.
pub fn judge_atomic(member: usize, watched: &Watched) {
    for (i, pair) in watched.seen.windows(2).enumerate() {
        assert!(
            pair[0].revision != pair[1].revision
                || watched.responses[i] == watched.responses[i + 1],
            "member {member}'s watcher: the events of revision {} came in two responses",
            pair[0].revision
        );
    }
}

/// Bookmarkable: a progress notification at revision R comes after every event up to R and
/// before every event after it, so a client may resume from R + 1. Every watcher must have
/// had some (the requests are answered).
pub fn judge_bookmarks(member: usize, watched: &Watched) {
    assert!(
        !watched.bookmarks.is_empty(),
        "member {member}'s watcher asked for progress every {PROGRESS_EVERY:?} and never heard"
    );
    for &(at, revision) in &watched.bookmarks {
        let before = watched.seen[..at].last().map(|s| s.revision);
        let after = watched.seen.get(at).map(|s| s.revision);
        assert!(
            before.is_none_or(|b| b <= revision) && after.is_none_or(|a| a > revision),
            "member {member}'s watcher: a progress notification at revision {revision} between \
             events at {before:?} and {after:?}"
        );
    }
}

/// Checks each watcher's events, and all of them against each other and the history.
pub fn judge(watchers: &[(usize, Vec<Seen>)], history: &[Operation], goal: i64) {
    for (member, seen) in watchers {
        // Ordered and unique: each event at a later revision than the one before, or at the
        // same one (a txn's) on a key not yet seen at it.
        let mut at_revision: Vec<&str> = Vec::new();
        let mut last = 0;
        for event in seen {
            assert!(
                event.revision > last
                    || (event.revision == last && !at_revision.contains(&event.key.as_str())),
                "member {member}'s watcher: revision {} of {} after revision {last} of {:?}",
                event.revision,
                event.key,
                at_revision
            );
            if event.revision > last {
                at_revision.clear();
            }
            at_revision.push(&event.key);
            last = event.revision;
        }
        assert!(
            seen.last().is_some_and(|s| s.revision >= goal),
            "member {member}'s watcher stopped at {:?}, short of revision {goal}",
            seen.last().map(|s| s.revision)
        );
        // prev_kv: what the key held before, as the events before said.
        let mut keys: BTreeMap<&str, (String, i64)> = BTreeMap::new();
        for event in seen {
            let before = keys.get(event.key.as_str()).cloned();
            assert_eq!(
                event.prev, before,
                "member {member}'s watcher: wrong prev_kv at revision {} of {}",
                event.revision, event.key
            );
            match &event.value {
                Some(v) => keys.insert(event.key.as_str(), (v.clone(), event.revision)),
                None => keys.remove(event.key.as_str()),
            };
        }
    }
    // Reliable: every member's watcher saw the same events up to the goal.
    let upto = |seen: &[Seen]| -> Vec<Seen> {
        seen.iter()
            .filter(|s| s.revision <= goal)
            .cloned()
            .collect()
    };
    if let Some((first_member, first)) = watchers.first() {
        let first = upto(first);
        for (member, seen) in &watchers[1..] {
            let seen = upto(seen);
            let differs = first.iter().zip(&seen).position(|(a, b)| a != b);
            assert!(
                first.len() == seen.len() && differs.is_none(),
                "the watchers on members {first_member} and {member} saw different events \
                 ({} and {}; first difference at {differs:?})",
                first.len(),
                seen.len()
            );
        }
        // Every acknowledged write, at its revision with its value.
        let by_revision: BTreeMap<(i64, &str), &Seen> = first
            .iter()
            .map(|s| ((s.revision, s.key.as_str()), s))
            .collect();
        for operation in history {
            let (value, revision) = match (&operation.op, &operation.outcome) {
                (Op::Put { value }, Outcome::Written { revision }) => (value, *revision),
                (
                    Op::SwapIfValue { value, .. } | Op::SwapIfRevision { value, .. },
                    Outcome::Swapped {
                        succeeded: true,
                        revision,
                    },
                ) => (value, *revision),
                _ => continue,
            };
            let event = by_revision.get(&(revision, operation.key.as_str()));
            assert!(
                event.is_some_and(|e| e.value.as_ref() == Some(value)),
                "the acknowledged write of {value} to {} at revision {revision} is not among \
                 the watched events (found {event:?})",
                operation.key
            );
        }
    }
}

/// Each list read what the events say the prefix held at its revision, and counted it.
pub fn judge_lists(lists: &[List], events: &[Seen]) {
    let mut lists: Vec<&List> = lists.iter().collect();
    lists.sort_by_key(|l| l.revision);
    let mut held: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    let mut events = events.iter().peekable();
    for list in lists {
        while let Some(event) = events.next_if(|e| e.revision <= list.revision) {
            match &event.value {
                Some(v) => held.insert(event.key.as_str(), (v.as_str(), event.revision)),
                None => held.remove(event.key.as_str()),
            };
        }
        let expected: Vec<(String, String, i64)> = held
            .iter()
            .map(|(k, (v, r))| (k.to_string(), v.to_string(), *r))
            .collect();
        if !list.count_only {
            assert_eq!(
                list.kvs, expected,
                "client {}'s list at revision {} is not what the prefix held then",
                list.client, list.revision
            );
        }
        assert_eq!(
            list.count,
            expected.len() as i64,
            "client {}'s list at revision {} counted wrong",
            list.client,
            list.revision
        );
    }
}

#[cfg(test)]
mod tests {
    //! The watch checks' self-test: a repeat, a gap, a wrong prev_kv and a lost acknowledged
    //! write must be caught.

    use std::panic::catch_unwind;

    use super::*;

    fn put(revision: i64, value: &str, prev: Option<(&str, i64)>) -> Seen {
        put_to("k", revision, value, prev)
    }

    fn put_to(key: &str, revision: i64, value: &str, prev: Option<(&str, i64)>) -> Seen {
        Seen {
            revision,
            key: key.to_string(),
            value: Some(value.to_string()),
            prev: prev.map(|(v, r)| (v.to_string(), r)),
        }
    }

    fn acknowledged(value: &str, revision: i64) -> Operation {
        Operation {
            client: 0,
            key: "k".to_string(),
            op: Op::Put {
                value: value.to_string(),
            },
            outcome: Outcome::Written { revision },
            invoked: Duration::ZERO,
            returned: Some(Duration::from_millis(1)),
        }
    }

    fn passes(watchers: Vec<(usize, Vec<Seen>)>, history: Vec<Operation>, goal: i64) -> bool {
        catch_unwind(|| judge(&watchers, &history, goal)).is_ok()
    }

    #[test]
    fn what_etcd_promises_passes_and_each_breach_is_caught() {
        let good = vec![put(2, "a", None), put(3, "b", Some(("a", 2)))];
        let history = vec![acknowledged("a", 2), acknowledged("b", 3)];
        assert!(passes(
            vec![(0, good.clone()), (1, good.clone())],
            history.clone(),
            3
        ));
        let repeated = vec![good[0].clone(), good[0].clone(), good[1].clone()];
        assert!(!passes(vec![(0, repeated)], history.clone(), 3));
        let gap = vec![(0, good.clone()), (1, vec![good[1].clone()])];
        assert!(!passes(gap, history.clone(), 3));
        let wrong_prev = vec![put(2, "a", None), put(3, "b", None)];
        assert!(!passes(vec![(0, wrong_prev)], history.clone(), 3));
        let lost = vec![put(2, "a", None), put(4, "c", Some(("a", 2)))];
        assert!(!passes(vec![(0, lost)], history, 4));
        // A txn's two keys at one revision pass; the same key twice at one revision does not.
        let txn = vec![put(2, "a", None), put_to("j", 2, "a", None)];
        assert!(passes(vec![(0, txn)], Vec::new(), 2));
        let twice = vec![put(2, "a", None), put(2, "a", None)];
        assert!(!passes(vec![(0, twice)], Vec::new(), 2));
    }

    #[test]
    fn a_txns_events_must_come_in_one_response() {
        let watched = |responses: Vec<usize>| Watched {
            seen: vec![
                put(2, "a", None),
                put_to("j", 2, "a", None),
                put(3, "b", None),
            ],
            received: vec![Duration::ZERO; 3],
            responses,
            bookmarks: Vec::new(),
        };
        let judged = |w: Watched| catch_unwind(|| judge_atomic(0, &w)).is_ok();
        assert!(judged(watched(vec![1, 1, 2])));
        assert!(judged(watched(vec![1, 1, 1])));
        assert!(!judged(watched(vec![1, 2, 2])), "revision 2 split in two");
    }

    #[test]
    fn a_bookmark_must_fall_between_the_events_it_separates() {
        let watched = |bookmarks: Vec<(usize, i64)>| Watched {
            seen: vec![put(2, "a", None), put(5, "b", Some(("a", 2)))],
            received: vec![Duration::ZERO; 2],
            responses: vec![1, 2],
            bookmarks,
        };
        let judged = |w: Watched| catch_unwind(|| judge_bookmarks(0, &w)).is_ok();
        assert!(judged(watched(vec![(1, 3), (2, 5), (0, 1)])));
        // Revision 5 announced before the event at 5 arrived: a client resuming from 6 loses it.
        assert!(!judged(watched(vec![(1, 5)])));
        // Going back behind an event already delivered.
        assert!(!judged(watched(vec![(2, 4)])));
        assert!(
            !judged(watched(Vec::new())),
            "no answer to progress requests"
        );
    }

    #[test]
    fn a_list_must_read_what_the_prefix_held_at_its_revision() {
        let events = vec![put(2, "a", None), put(3, "b", Some(("a", 2)))];
        let list = |revision, value: &str, at| List {
            client: 0,
            revision,
            count: 1,
            count_only: false,
            kvs: vec![("k".to_string(), value.to_string(), at)],
        };
        let judged = |l: List| catch_unwind(|| judge_lists(&[l], &events)).is_ok();
        assert!(judged(list(2, "a", 2)));
        assert!(judged(list(3, "b", 3)));
        // A page read at revision 3 that saw the value of revision 2: not pinned.
        assert!(!judged(list(3, "a", 2)));
        let miscounted = List {
            count: 2,
            ..list(3, "b", 3)
        };
        assert!(!judged(miscounted));
        let count_only = |count| List {
            client: 0,
            revision: 3,
            count,
            count_only: true,
            kvs: Vec::new(),
        };
        assert!(judged(count_only(1)));
        assert!(!judged(count_only(0)), "a count-only range counted wrong");
    }
}
