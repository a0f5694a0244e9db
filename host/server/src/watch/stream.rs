//! One Watch RPC stream: its watchers, the requests that create and cancel them, and the
//! responses they get. One task per stream owns all of it. Live batches come from the hub;
//! a watcher that starts in the past, or a stream that fell a whole ring behind, reads the
//! store's history until it reaches the present, then follows the live batches again. Every
//! event is sent once, in revision order, a revision's events in one response (etcd's
//! ordered, unique, atomic and reliable guarantees).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::etcdserverpb::{
    RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_request::RequestUnion,
};
use conclave_proto::mvccpb::Event;
use conclave_store::RequestError;
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::debug;

use super::hub::{Batch, WatchHub};
use super::watcher::{Watcher, is_create, revision_of};
use crate::auth::Caller;
use crate::node::Node;
use conclave_store::Access;

/// Events read from history per step of a catch-up: the stream answers requests between steps.
const HISTORY_STEP: usize = 1000;

/// etcd's answer to a watch ID the stream already has.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// The watch ID of responses for the whole stream (progress) or for no watcher (refusals).
const NO_WATCHER: i64 = -1;

#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// How often watchers created with progress_notify hear the current revision when idle.
    pub progress_interval: Duration,
}

/// Why the stream ended: the client went away, or the server is shutting the stream.
type Closed = ();

pub struct WatchStream {
    node: Arc<Node>,
    /// Who opened the stream: each watcher is checked against it when created.
    caller: Caller,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    /// The next watch ID given to a watcher created without one; etcd's start at 0.
    next_auto_id: i64,
    /// A progress request waits until every watcher has caught up.
    progress_requested: bool,
}

impl WatchStream {
    pub fn new(
        node: Arc<Node>,
        caller: Caller,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
    ) -> Self {
        Self {
            node,
            caller,
            out,
            watchers: BTreeMap::new(),
            next_auto_id: 0,
            progress_requested: false,
        }
    }

    /// Serves the stream until the client closes it or stops reading for good.
    pub async fn run<S>(mut self, hub: Arc<WatchHub>, mut requests: S, config: StreamConfig)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
    {
        // Subscribed before anything is read from the store, so no batch falls in between.
        let mut live = hub.subscribe();
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + config.progress_interval,
            config.progress_interval,
        );
        loop {
            let catching_up = self.watchers.values().any(|w| !w.synced);
            let step: Result<(), Closed> = tokio::select! {
                biased;
                request = requests.next() => match request {
                    Some(Ok(request)) => self.handle(request).await,
                    // The client closed its side, or the connection broke.
                    Some(Err(_)) | None => Err(()),
                },
                batch = live.recv() => match batch {
                    Ok(batch) => self.deliver(&batch).await,
                    Err(RecvError::Lagged(missed)) => {
                        debug!(missed, "watch stream fell behind; catching up from history");
                        self.unsync_all();
                        Ok(())
                    }
                    Err(RecvError::Closed) => Err(()),
                },
                _ = ticker.tick() => self.progress_tick().await,
                // The client is gone (its responses are no longer read): stop now rather
                // than at the next event.
                () = self.out.closed() => Err(()),
                () = std::future::ready(()), if catching_up => self.catch_up_step().await,
            };
            if step.is_err() {
                return;
            }
            if self.progress_requested
                && self.watchers.values().all(|w| w.synced)
                && self.send_progress().await.is_err()
            {
                return;
            }
        }
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd answers a cancel of an unknown watcher with nothing.
                if self.watchers.remove(&cancel.watch_id).is_none() {
                    return Ok(());
                }
                let header = self.node.header(self.node.store.current_revision());
                self.send(WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_requested = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, req: WatchCreateRequest) -> Result<(), Closed> {
        let current = self.node.store.current_revision();
        let header = self.node.header(current);
        let refuse = |reason: String| WatchResponse {
            header,
            watch_id: NO_WATCHER,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        if req.start_revision < 0 {
            return self.send(refuse(RequestError::Compacted.to_string())).await;
        }
        if let Err(denied) = self.caller.check(&req.key, &req.range_end, Access::Read) {
            let denied = tonic::Status::from(denied);
            // etcd puts the whole gRPC error in the reason.
            let reason = format!(
                "rpc error: code = {:?} desc = {}",
                denied.code(),
                denied.message()
            );
            return self.send(refuse(reason)).await;
        }
        let id = if req.watch_id != 0 {
            if self.watchers.contains_key(&req.watch_id) {
                return self.send(refuse(DUPLICATE_ID.to_string())).await;
            }
            req.watch_id
        } else {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id += 1;
            self.next_auto_id - 1
        };
        // From now (0), from the future (wait for it), or from the past (history first).
        let (next, synced) = match req.start_revision {
            0 => (current + 1, true),
            start if start > current => (start, true),
            start => (start, false),
        };
        self.watchers
            .insert(id, Watcher::new(id, &req, next, synced));
        self.send(WatchResponse {
            header,
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await
    }

    /// Sends a live batch to the watchers that follow the live batches.
    async fn deliver(&mut self, batch: &Batch) -> Result<(), Closed> {
        if batch.replaced {
            self.unsync_all();
            return Ok(());
        }
        let ids: Vec<i64> = self
            .watchers
            .values()
            .filter(|w| w.synced)
            .map(|w| w.id)
            .collect();
        for id in ids {
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            let events = w.select(&batch.events);
            w.next = w.next.max(batch.revision + 1);
            if !events.is_empty() {
                self.send_events(id, events, batch.revision).await?;
            }
        }
        Ok(())
    }

    fn unsync_all(&mut self) {
        for w in self.watchers.values_mut() {
            w.synced = false;
        }
    }

    /// Reads the next stretch of history for one watcher that is catching up.
    async fn catch_up_step(&mut self) -> Result<(), Closed> {
        let Some((id, from)) = self
            .watchers
            .values()
            .filter(|w| !w.synced)
            .min_by_key(|w| w.next)
            .map(|w| (w.id, w.next))
        else {
            return Ok(());
        };
        let read = self
            .node
            .blocking(move |store| store.history(from, HISTORY_STEP))
            .await;
        let history = match read {
            Ok(history) => history,
            Err(e) if e.as_request() == Some(&RequestError::Compacted) => {
                // etcd cancels a watcher whose start has been compacted away, saying from
                // where it could resume.
                self.watchers.remove(&id);
                let compacted = self.node.store.status().compacted;
                return self
                    .send(WatchResponse {
                        header: self.node.header(self.node.store.current_revision()),
                        watch_id: id,
                        canceled: true,
                        compact_revision: compacted,
                        ..Default::default()
                    })
                    .await;
            }
            Err(e) => {
                debug!(error = %e, "reading history for a watcher failed");
                return self.send_status(e.into()).await;
            }
        };
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(());
        };
        let events = w.select(&history.events);
        w.next = w.next.max(history.next);
        if history.next > history.revision {
            w.synced = true;
        }
        if events.is_empty() {
            return Ok(());
        }
        self.send_events(id, events, history.revision).await
    }

    /// Tells idle watchers created with progress_notify how far they are.
    async fn progress_tick(&mut self) -> Result<(), Closed> {
        let due: Vec<(i64, i64)> = self
            .watchers
            .values()
            .filter(|w| w.progress_notify && w.synced && !w.sent_since_tick)
            .map(|w| (w.id, w.next - 1))
            .collect();
        for w in self.watchers.values_mut() {
            w.sent_since_tick = false;
        }
        for (id, revision) in due {
            self.send(WatchResponse {
                header: self.node.header(revision),
                watch_id: id,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Answers a progress request: every event up to the header's revision has been sent.
    async fn send_progress(&mut self) -> Result<(), Closed> {
        self.progress_requested = false;
        let revision = self
            .watchers
            .values()
            .map(|w| w.next - 1)
            .min()
            .unwrap_or_else(|| self.node.store.current_revision());
        self.send(WatchResponse {
            header: self.node.header(revision),
            watch_id: NO_WATCHER,
            ..Default::default()
        })
        .await
    }

    async fn send_events(
        &mut self,
        id: i64,
        mut events: Vec<Event>,
        revision: i64,
    ) -> Result<(), Closed> {
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(());
        };
        w.sent_since_tick = true;
        let fragment = w.fragment;
        if w.prev_kv {
            events = self.with_prev_kvs(events).await;
        }
        let response = WatchResponse {
            header: self.node.header(revision),
            watch_id: id,
            events,
            ..Default::default()
        };
        if fragment {
            for piece in fragments(response, self.node.limits.max_request_bytes) {
                self.send(piece).await?;
            }
            Ok(())
        } else {
            self.send(response).await
        }
    }

    /// Fills in each event's previous value, read at the revision before it (as etcd does);
    /// one that can no longer be read (compacted meanwhile) is left out.
    async fn with_prev_kvs(&self, events: Vec<Event>) -> Vec<Event> {
        let read = self
            .node
            .blocking(move |store| {
                let mut events = events;
                for e in events.iter_mut().filter(|e| !is_create(e)) {
                    let Some(kv) = &e.kv else { continue };
                    let req = RangeRequest {
                        key: kv.key.clone(),
                        revision: revision_of(e) - 1,
                        ..Default::default()
                    };
                    if let Ok(resp) = store.range(&req) {
                        e.prev_kv = resp.kvs.into_iter().next();
                    }
                }
                Ok(events)
            })
            .await;
        read.unwrap_or_default()
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(response)).await.map_err(|_| ())
    }

    async fn send_status(&self, status: Status) -> Result<(), Closed> {
        let _ = self.out.send(Err(status)).await;
        Err(())
    }
}

/// `response` cut into pieces of whole events, each under `limit` bytes encoded where one
/// event allows, all but the last marked `fragment`. Linear in the events: each event's size
/// is taken once, never the growing piece's (a DeleteRange of 60k keys once took seconds of a
/// worker thread here).
fn fragments(mut response: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if response.events.len() < 2 || response.encoded_len() < limit {
        return vec![response];
    }
    let events = std::mem::take(&mut response.events);
    response.fragment = true;
    // A repeated field's element costs its tag (one byte: `events` is field 11), its length
    // and itself.
    let head = response.encoded_len();
    let size = |e: &Event| {
        let len = e.encoded_len();
        1 + prost::length_delimiter_len(len) + len
    };
    let mut pieces = Vec::new();
    let mut piece = Vec::new();
    let mut piece_bytes = head;
    for event in events {
        let bytes = size(&event);
        if !piece.is_empty() && piece_bytes + bytes >= limit {
            pieces.push(WatchResponse {
                events: std::mem::take(&mut piece),
                ..response.clone()
            });
            piece_bytes = head;
        }
        piece_bytes += bytes;
        piece.push(event);
    }
    response.events = piece;
    response.fragment = false;
    pieces.push(response);
    pieces
}

#[cfg(test)]
mod tests {
    use conclave_proto::mvccpb::KeyValue;

    use super::*;

    fn event(key: &str, value_len: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![b'x'; value_len],
                mod_revision: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn small_responses_are_not_fragmented() {
        let r = WatchResponse {
            events: vec![event("a", 10), event("b", 10)],
            ..Default::default()
        };
        let pieces = fragments(r.clone(), 1024);
        assert_eq!(pieces, vec![r]);
    }

    #[test]
    fn large_responses_split_into_fragments_of_whole_events() {
        let events: Vec<Event> = (0..10).map(|i| event(&format!("k{i}"), 300)).collect();
        let r = WatchResponse {
            watch_id: 7,
            events: events.clone(),
            ..Default::default()
        };
        let pieces = fragments(r, 1000);
        assert!(pieces.len() > 1, "{} pieces", pieces.len());
        let (last, rest) = pieces.split_last().expect("pieces");
        assert!(rest.iter().all(|p| p.fragment && p.watch_id == 7));
        assert!(!last.fragment);
        let joined: Vec<Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn every_fragment_is_under_the_limit_and_sized_as_sent() {
        let events: Vec<Event> = (0..5000)
            .map(|i| event(&format!("key/{i}"), i % 97))
            .collect();
        let r = WatchResponse {
            watch_id: 3,
            events: events.clone(),
            ..Default::default()
        };
        let limit = 16 * 1024;
        let pieces = fragments(r, limit);
        assert!(pieces.len() > 10, "{} pieces", pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            assert!(
                p.encoded_len() < limit,
                "piece {i} is {} bytes",
                p.encoded_len()
            );
            // Full: the next event would not have fitted.
            if let Some(next) = pieces.get(i + 1).and_then(|n| n.events.first()) {
                let mut grown = p.clone();
                grown.events.push(next.clone());
                assert!(
                    grown.encoded_len() >= limit,
                    "piece {i} could have taken more"
                );
            }
        }
        let joined: Vec<Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn one_huge_event_is_sent_whole() {
        let r = WatchResponse {
            events: vec![event("big", 5000)],
            ..Default::default()
        };
        assert_eq!(fragments(r.clone(), 1000), vec![r]);
    }
}
