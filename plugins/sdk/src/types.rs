//! Conveniences on the generated ABI types, so plugins build outputs and read events in one line.

use crate::{Event, EventKind, KvEvent, Output, Put, Spec};

impl Output {
    /// A put with no lease.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Output {
        Output::Put(Put {
            key: key.into(),
            value: value.into(),
            ttl_seconds: None,
        })
    }

    /// A put under a lease of `ttl_seconds`, so the key expires (retention).
    pub fn put_with_ttl(
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl_seconds: Option<u32>,
    ) -> Output {
        Output::Put(Put {
            key: key.into(),
            value: value.into(),
            ttl_seconds,
        })
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<Vec<u8>>) -> Output {
        Output::Delete(key.into())
    }
}

impl Event {
    /// When the input happened, ms since the Unix epoch: a KV event's commit time, or a
    /// sample's own time. This is the time that places it in a window.
    pub fn time_ms(&self) -> i64 {
        match self {
            Event::Kv(e) => e.time_ms,
            Event::Sample(s) => s.time_ms,
        }
    }
}

impl KvEvent {
    /// Whether the event is a put (otherwise a delete).
    pub fn is_put(&self) -> bool {
        self.kind == EventKind::Put
    }
}

impl Spec {
    /// KV events under `prefixes`, no samples, windows of `resolution_ms`, no lateness.
    pub fn kv(prefixes: &[&[u8]], resolution_ms: u64) -> Spec {
        Spec {
            source_prefixes: prefixes.iter().map(|p| p.to_vec()).collect(),
            ingest_prefixes: Vec::new(),
            resolution_ms,
            allowed_lateness_ms: 0,
        }
    }
}
