//! The watch hub: every batch the state machine applies, fanned out to the watch streams. A
//! broadcast ring of fixed size sits between them, so the apply path never waits for a
//! watcher and memory stays bounded: a stream that falls a whole ring behind learns that it
//! lagged and catches its watchers up from the store's history instead.

use std::sync::Arc;

use conclave_proto::mvccpb::Event;
use conclave_raft::ApplyListener;
use conclave_store::Applied;
use tokio::sync::broadcast;

/// Applied batches kept for streams that are a little behind. Past this, a stream reads the
/// store's history instead (cheaper than holding more here for the slowest stream).
const RING: usize = 256;

/// What one applied batch changed.
#[derive(Debug)]
pub struct Batch {
    /// Every event, in revision order (an event's revision is its kv's mod_revision).
    pub events: Vec<Event>,
    /// The store's revision after the batch.
    pub revision: i64,
    /// The store was replaced (a snapshot from the leader was installed): the events in
    /// between are in its history, not here.
    pub replaced: bool,
}

pub struct WatchHub {
    ring: broadcast::Sender<Arc<Batch>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> Self {
        let (ring, _) = broadcast::channel(RING);
        Self { ring }
    }

    /// Batches applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.ring.subscribe()
    }

    fn publish(&self, batch: Batch) {
        // No receiver: no watch stream is open; nothing to do.
        let _ = self.ring.send(Arc::new(batch));
    }
}

impl ApplyListener for WatchHub {
    fn applied(&self, outcomes: &[Applied]) {
        // With no stream open there is nobody to copy the events for. A stream that opens
        // after this check reads the store's revision after subscribing, so it covers this
        // batch.
        if self.ring.receiver_count() == 0 {
            return;
        }
        let events: Vec<Event> = outcomes
            .iter()
            .flat_map(|o| o.events.iter().cloned())
            .collect();
        if events.is_empty() {
            return;
        }
        let revision = outcomes.iter().map(|o| o.revision).max().unwrap_or(0);
        self.publish(Batch {
            events,
            revision,
            replaced: false,
        });
    }

    fn installed(&self, revision: i64) {
        self.publish(Batch {
            events: Vec::new(),
            revision,
            replaced: true,
        });
    }
}
