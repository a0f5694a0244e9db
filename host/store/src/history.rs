//! Reading history back as events: what a watcher that starts in the past, or fell behind,
//! is sent before it joins the live stream. Records are keyed by revision, so this is one
//! ordered scan of the `kv` keyspace from a consistent view.

use std::sync::atomic::Ordering;

use conclave_proto::mvccpb::{Event, event::EventType};
use fjall::Readable;

use crate::backend::Record;
use crate::error::{RequestError, Result, StoreError};
use crate::revision::Revision;
use crate::store::{Store, failed};

/// A stretch of history: every event at revisions `from..next`, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
    /// Beside each event, the commit time of its revision (ms since the Unix epoch; 0 for
    /// revisions written without a leader's stamp). Never decreasing.
    pub times: Vec<i64>,
    /// The first revision not read: where the next read starts.
    pub next: i64,
    /// The store's revision when this was read; `next > revision` means this reached the end.
    pub revision: i64,
}

impl Store {
    /// The events from revision `from` on, up to the newest visible one, in revision order;
    /// at most about `max_events` of them, but never part of a revision (its events go to a
    /// watcher together). `Compacted` if `from` is below the compacted revision.
    pub fn history(&self, from: i64, max_events: usize) -> Result<History> {
        let (view, revision) = {
            let g = self.state.read();
            if g.failed {
                return Err(failed());
            }
            // As etcd: the compacted revision itself is still readable.
            if from < g.state.compacted {
                return Err(RequestError::Compacted.into());
            }
            (
                self.backend.db.snapshot(),
                self.visible.load(Ordering::Acquire),
            )
        };
        let mut events = Vec::new();
        let mut times = Vec::new();
        let mut next = from.max(1);
        if next > revision {
            return Ok(History {
                events,
                times,
                next,
                revision,
            });
        }
        let start = Revision::new(next, 0).to_key();
        let mut full = false;
        for guard in view.range(&self.backend.kv, start..) {
            let (key, value) = guard.into_inner()?;
            let rev = Revision::from_key(&key)
                .ok_or_else(|| StoreError::Corrupt("a record key is not a revision".into()))?;
            if rev.main > revision {
                break;
            }
            // Stop between revisions, never inside one.
            if rev.main != next - 1 && events.len() >= max_events {
                full = true;
                break;
            }
            let record = Record::decode(rev, &value)?;
            let kind = if record.tombstone {
                EventType::Delete
            } else {
                EventType::Put
            };
            events.push(Event {
                r#type: kind as i32,
                kv: Some(record.kv),
                prev_kv: None,
            });
            times.push(record.time);
            next = rev.main + 1;
        }
        if !full {
            // Read to the end: every revision up to `revision` is covered.
            next = revision + 1;
        }
        Ok(History {
            events,
            times,
            next,
            revision,
        })
    }
}
