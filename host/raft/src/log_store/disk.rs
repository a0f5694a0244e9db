//! The log's layout on its fjall database, and the state shared by the store, its readers
//! and its writer thread:
//! - `entries`: log index (8 bytes, big-endian, so keys sort by index) -> `conclavepb.LogEntry`.
//! - `meta`: `format`, `vote` (`conclavepb.Vote`), `committed` and `last_purged`
//!   (`conclavepb.LogId`).
//!
//! Every function here blocks on disk: callers run them on the writer thread or in
//! `spawn_blocking`, never on an async worker.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::codec::{self, Wire};
use crate::types::{Entry, LogId, Vote};

pub(super) const META_FORMAT: &[u8] = b"format";
pub(super) const META_VOTE: &[u8] = b"vote";
pub(super) const META_COMMITTED: &[u8] = b"committed";
pub(super) const META_LAST_PURGED: &[u8] = b"last_purged";

/// Bumped when the layout changes in a way an older build could misread.
const FORMAT: u8 = 1;

/// An entry appended but not yet in fjall, tagged with the append it came from so that the
/// writer drops it from memory only if no later append replaced it.
pub(super) struct Pending {
    pub seq: u64,
    pub entry: Entry,
}

/// What the store, its readers and the writer thread share.
pub(super) struct Shared {
    pub db: Database,
    pub entries: Keyspace,
    pub meta: Keyspace,
    /// Appended entries the writer has not committed to fjall yet: always a contiguous tail of
    /// the log. openraft may read an entry as soon as `append` returns, before its group is
    /// written, so readers look here first.
    pub pending: RwLock<BTreeMap<u64, Pending>>,
    /// The last vote made durable: what `read_vote` answers.
    pub vote: RwLock<Option<Vote>>,
    pub stats: Stats,
    /// Dropped after every field above, the database among them: its receivers learn that
    /// the database is closed and may be opened again.
    pub closed: watch::Sender<()>,
}

/// Counters of the writer's work, for metrics and tests.
#[derive(Default)]
pub(super) struct Stats {
    pub appends: AtomicU64,
    pub groups: AtomicU64,
    pub syncs: AtomicU64,
}

/// What the writer has done since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Appends completed (callbacks fired).
    pub appends: u64,
    /// Batches committed to fjall.
    pub groups: u64,
    /// fsyncs: with group commit, fewer than appends under load.
    pub syncs: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> LogStats {
        LogStats {
            appends: self.appends.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }
}

/// The state found on disk at open.
pub(super) struct Loaded {
    pub shared: Shared,
    /// The index of the first entry, or where the next append may start if there is none.
    pub first: u64,
    pub last_purged: Option<LogId>,
    pub last_log_id: Option<LogId>,
    pub committed: Option<LogId>,
}

pub(super) fn fjall_err(e: fjall::Error) -> io::Error {
    match e {
        fjall::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("raft log: {what}"))
}

pub(super) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt(format!("entry key of {} bytes, not 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The entry stored under `key`, checked against it.
fn decode_entry(key: &[u8], value: &[u8]) -> io::Result<Entry> {
    let index = key_index(key)?;
    let entry: Entry =
        codec::decode(value).map_err(|e| corrupt(format!("entry at index {index}: {e}")))?;
    if entry.log_id.index != index {
        return Err(corrupt(format!(
            "entry stored at index {index} says it is at {}",
            entry.log_id.index
        )));
    }
    Ok(entry)
}

fn decode_meta<T: Wire>(meta: &Keyspace, key: &'static [u8]) -> io::Result<Option<T>> {
    match meta.get(key).map_err(fjall_err)? {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes)
            .map(Some)
            .map_err(|e| corrupt(format!("meta `{}`: {e}", String::from_utf8_lossy(key)))),
    }
}

const LOG_CACHE_BYTES: u64 = 4 * 1024 * 1024;
const LOG_MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

impl Shared {
    /// Opens (or creates) the database at `path` and reads back the log's state.
    pub fn open(path: &Path) -> io::Result<Loaded> {
        // Entries are written once, read back only while a follower catches up, and purged
        // behind each snapshot: a small cache and memtable, not fjall's defaults (32 MiB and
        // 64 MiB), which would double the member's resident memory for nothing.
        let db = Database::builder(path)
            .cache_size(LOG_CACHE_BYTES)
            .open()
            .map_err(fjall_err)?;
        let entries = db
            .keyspace("entries", || {
                KeyspaceCreateOptions::default().max_memtable_size(LOG_MEMTABLE_BYTES)
            })
            .map_err(fjall_err)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(fjall_err)?;

        match meta.get(META_FORMAT).map_err(fjall_err)? {
            Some(v) if v.as_ref() == [FORMAT] => {}
            Some(v) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "raft log format {:?}, this build reads {FORMAT}",
                        v.as_ref()
                    ),
                ));
            }
            None => {
                let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
                batch.insert(&meta, META_FORMAT, [FORMAT].as_slice());
                batch.commit().map_err(fjall_err)?;
            }
        }

        let vote: Option<Vote> = decode_meta(&meta, META_VOTE)?;
        let committed: Option<LogId> = decode_meta(&meta, META_COMMITTED)?;
        let last_purged: Option<LogId> = decode_meta(&meta, META_LAST_PURGED)?;

        let first = match entries.first_key_value() {
            None => None,
            Some(guard) => Some(key_index(&guard.key().map_err(fjall_err)?)?),
        };
        let last = match entries.last_key_value() {
            None => None,
            Some(guard) => {
                let (key, value) = guard.into_inner().map_err(fjall_err)?;
                Some(decode_entry(&key, &value)?.log_id)
            }
        };
        // A purge deletes entries and records `last_purged` in one batch: an entry at or below
        // it means the database is not what this store wrote.
        if let (Some(first), Some(purged)) = (first, &last_purged)
            && first <= purged.index
        {
            return Err(corrupt(format!(
                "entry {first} survives the purge up to {}",
                purged.index
            )));
        }
        let last_log_id = last.or(last_purged);
        let first = first.unwrap_or_else(|| last_log_id.map_or(0, |l| l.index.saturating_add(1)));

        Ok(Loaded {
            shared: Shared {
                db,
                entries,
                meta,
                pending: RwLock::new(BTreeMap::new()),
                vote: RwLock::new(vote),
                stats: Stats::default(),
                closed: watch::channel(()).0,
            },
            first,
            last_purged,
            last_log_id,
            committed,
        })
    }

    /// The entries at `start..end` that fjall holds, in order, stopping after the first entry
    /// that brings their encoded size to `max_bytes`.
    pub fn read_range(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for guard in self.entries.range(index_key(start)..index_key(end)) {
            let (key, value) = guard.into_inner().map_err(fjall_err)?;
            out.push(decode_entry(&key, &value)?);
            bytes += value.len();
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }
}
