//! One watcher of a watch stream: what it watches, how, and how far it has been sent.

use conclave_proto::etcdserverpb::WatchCreateRequest;
use conclave_proto::etcdserverpb::watch_create_request::FilterType;
use conclave_proto::mvccpb::{Event, event::EventType};
use conclave_store::KeyRange;

#[derive(Debug)]
pub struct Watcher {
    pub id: i64,
    range: KeyRange,
    no_put: bool,
    no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub fragment: bool,
    /// The first revision not yet sent: every event below it has been sent (or filtered out).
    pub next: i64,
    /// Whether it follows the live batches; if not, it is catching up from history.
    pub synced: bool,
    /// Whether it was sent events since the last progress tick (then it needs no notification).
    pub sent_since_tick: bool,
}

impl Watcher {
    /// A watcher for `req`, sent everything below `next`.
    pub fn new(id: i64, req: &WatchCreateRequest, next: i64, synced: bool) -> Self {
        // etcd: an empty key watches from the smallest key, "\0" as range_end means "and
        // everything after".
        let key: &[u8] = if req.key.is_empty() { &[0] } else { &req.key };
        Self {
            id,
            range: KeyRange::new(key, &req.range_end),
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            next,
            synced,
            sent_since_tick: false,
        }
    }

    /// The events of `events` (in revision order) this watcher has not been sent and wants.
    pub fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| revision_of(e) >= self.next && self.wants(e))
            .cloned()
            .map(|mut e| {
                // History and live batches carry no previous values; they are looked up for
                // watchers that ask (see the stream), as etcd does.
                e.prev_kv = None;
                e
            })
            .collect()
    }

    fn wants(&self, e: &Event) -> bool {
        let Some(kv) = &e.kv else {
            return false;
        };
        let filtered = if e.r#type == EventType::Delete as i32 {
            self.no_delete
        } else {
            self.no_put
        };
        !filtered && self.range.contains(&kv.key)
    }
}

/// The revision an event belongs to.
pub fn revision_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Whether the event created its key (a put whose create and mod revisions are the same): it
/// has no previous value.
pub fn is_create(e: &Event) -> bool {
    e.r#type == EventType::Put as i32
        && e.kv
            .as_ref()
            .is_some_and(|kv| kv.create_revision == kv.mod_revision)
}
