//! The log's layout on its fjall database, and the state shared by the store, its readers
//! and its writer thread:
//! - `entries_<n>`, one keyspace per segment of [`SEGMENT_ENTRIES`] indexes (segment `n` holds
//!   `n * SEGMENT_ENTRIES..(n + 1) * SEGMENT_ENTRIES`): log index (8 bytes, big-endian, so keys
//!   sort by index) -> `conclavepb.LogEntry`.
//! - `meta`: `format`, `vote` (`conclavepb.Vote`), `committed` and `last_purged`
//!   (`conclavepb.LogId`).
//!
//! Segments are what make a purge cheap, as etcd's WAL files are: a purge records
//! `last_purged` and deletes the keyspaces of the segments wholly behind it, in O(1) each,
//! where deleting entry by entry wrote a tombstone per entry (95k of them after a snapshot at
//! etcd's default count stalled every member's log writer for about 100 ms, and fjall then
//! flushed and compacted them). Entries at or below `last_purged` in the segment it falls in
//! stay until that segment goes; nothing reads below `first`.
//!
//! Every function here blocks on disk: callers run them on the writer thread or in
//! `spawn_blocking`, never on an async worker.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
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

/// Bumped when the layout changes in a way an older build could misread. Format 1 kept every
/// entry in one `entries` keyspace; `open` moves such a log into segments.
const FORMAT: u8 = 2;
const FORMAT_ONE_ENTRIES: &str = "entries";

/// Indexes per segment keyspace. A purge leaves fewer than this many purged entries behind.
pub(super) const SEGMENT_ENTRIES: u64 = 4096;
const SEGMENT_PREFIX: &str = "entries_";

/// An entry appended but not yet in fjall, tagged with the append it came from so that the
/// writer drops it from memory only if no later append replaced it.
pub(super) struct Pending {
    pub seq: u64,
    pub entry: Entry,
}

/// What the store, its readers and the writer thread share.
pub(super) struct Shared {
    pub db: Database,
    /// The segments by number; only the writer thread adds and removes them.
    pub segments: RwLock<BTreeMap<u64, Keyspace>>,
    pub meta: Keyspace,
    /// The highest segment [`Shared::prepare_segment`] was asked for.
    pub preparing: AtomicU64,
    /// The lowest index a read may return (one past `last_purged`): purged entries may still
    /// be on disk below it.
    pub first: AtomicU64,
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
/// A segment's memtable bound: its 4096 entries fit unless they are large.
const LOG_MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;
/// fjall's smallest journal bound: memtables of segments not yet purged are flushed once the
/// journals reach it, which bounds the log's memory (fjall's default is 512 MiB).
const LOG_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// The segment that holds `index`.
pub(super) fn segment_of(index: u64) -> u64 {
    index / SEGMENT_ENTRIES
}

fn segment_name(segment: u64) -> String {
    format!("{SEGMENT_PREFIX}{segment}")
}

fn segment_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(LOG_MEMTABLE_BYTES)
}

/// Opens segment keyspace `segment`, creating it if absent.
fn open_segment(db: &Database, segment: u64) -> io::Result<Keyspace> {
    db.keyspace(&segment_name(segment), segment_options)
        .map_err(fjall_err)
}

/// Records this build's format, fsynced.
fn write_format(db: &Database, meta: &Keyspace) -> io::Result<()> {
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    batch.insert(meta, META_FORMAT, [FORMAT].as_slice());
    batch.commit().map_err(fjall_err)
}

impl Shared {
    /// Opens (or creates) the database at `path` and reads back the log's state.
    pub fn open(path: &Path) -> io::Result<Loaded> {
        // Entries are written once, read back only while a follower catches up, and purged
        // behind each snapshot: a small cache, not fjall's default of 32 MiB, which would
        // add to the member's resident memory for nothing.
        let db = Database::builder(path)
            .cache_size(LOG_CACHE_BYTES)
            .max_journaling_size(LOG_JOURNAL_BYTES)
            .open()
            .map_err(fjall_err)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(fjall_err)?;

        match meta.get(META_FORMAT).map_err(fjall_err)? {
            Some(v) if v.as_ref() == [FORMAT] => {}
            Some(v) if v.as_ref() == [1] => into_segments(&db, &meta)?,
            Some(v) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "raft log format {:?}, this build reads {FORMAT}",
                        v.as_ref()
                    ),
                ));
            }
            None => write_format(&db, &meta)?,
        }

        let mut segments = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let Some(number) = name.strip_prefix(SEGMENT_PREFIX) else {
                continue;
            };
            let number: u64 = number
                .parse()
                .map_err(|_| corrupt(format!("keyspace `{name}` is not a segment")))?;
            let keyspace = db.keyspace(&name, segment_options).map_err(fjall_err)?;
            segments.insert(number, keyspace);
        }

        let vote: Option<Vote> = decode_meta(&meta, META_VOTE)?;
        let committed: Option<LogId> = decode_meta(&meta, META_COMMITTED)?;
        let last_purged: Option<LogId> = decode_meta(&meta, META_LAST_PURGED)?;
        let live_from = last_purged.map_or(0, |p| p.index.saturating_add(1));

        // Purged entries may linger in the segment `last_purged` falls in (or in a segment
        // whose deletion a crash undid): the log starts after `last_purged` whatever is there.
        let first = segments
            .values()
            .find_map(|ks| ks.range(index_key(live_from)..).next())
            .map(|guard| guard.key().map_err(fjall_err).and_then(|k| key_index(&k)))
            .transpose()?;
        // The highest segment may be empty (a truncation removed all it held).
        let last = match segments.values().rev().find_map(|ks| ks.last_key_value()) {
            None => None,
            Some(guard) => {
                let (key, value) = guard.into_inner().map_err(fjall_err)?;
                Some(decode_entry(&key, &value)?.log_id)
            }
        };
        let last_log_id = last.filter(|l| l.index >= live_from).or(last_purged);
        let first = first.unwrap_or_else(|| last_log_id.map_or(0, |l| l.index.saturating_add(1)));

        Ok(Loaded {
            shared: Shared {
                db,
                segments: RwLock::new(segments),
                meta,
                preparing: AtomicU64::new(0),
                first: AtomicU64::new(live_from),
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

    /// The segment keyspace for `segment`, created if absent. Creating one takes fjall 5 to
    /// 10 ms (directories and fsyncs): the writer asks for the next segment ahead of time with
    /// [`Shared::prepare_segment`] so that appends do not wait on it.
    pub fn segment(&self, segment: u64) -> io::Result<Keyspace> {
        if let Some(keyspace) = self.segments.read().get(&segment) {
            return Ok(keyspace.clone());
        }
        // fjall hands back the existing keyspace if another thread made it meanwhile.
        let keyspace = open_segment(&self.db, segment)?;
        self.segments
            .write()
            .entry(segment)
            .or_insert_with(|| keyspace.clone());
        Ok(keyspace)
    }

    /// Creates `segment` on a thread of its own unless it exists or is being made.
    pub fn prepare_segment(self: &Arc<Self>, segment: u64) {
        if self.segments.read().contains_key(&segment)
            || self.preparing.fetch_max(segment, Ordering::AcqRel) >= segment
        {
            return;
        }
        let shared = self.clone();
        on_own_thread("raft-log-segment", move || {
            // A failure here shows again, and stops the log, when the writer needs it.
            if let Err(e) = shared.segment(segment) {
                tracing::warn!(segment, error = %e, "could not prepare a raft log segment");
            }
        });
    }

    /// Forgets the segments numbered below `end` and deletes them on a thread of their own
    /// (fjall takes about 5 ms per keyspace). Called once the purge that covers them is
    /// durable; a deletion lost to a crash or an error leaves purged entries that nothing
    /// reads, and the next purge deletes them.
    pub fn drop_segments_below(self: &Arc<Self>, end: u64) {
        let doomed: Vec<Keyspace> = {
            let mut segments = self.segments.write();
            let kept = segments.split_off(&end);
            std::mem::replace(&mut *segments, kept)
                .into_values()
                .collect()
        };
        if doomed.is_empty() {
            return;
        }
        let shared = self.clone();
        on_own_thread("raft-log-purge", move || {
            for keyspace in doomed {
                if let Err(e) = shared.db.delete_keyspace(keyspace) {
                    tracing::warn!(error = %e, "could not delete a purged raft log segment");
                }
            }
        });
    }

    /// The entries at `start..end` that fjall holds, in order, stopping after the first entry
    /// that brings their encoded size to `max_bytes`.
    pub fn read_range(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<Entry>> {
        let start = start.max(self.first.load(Ordering::Acquire));
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let segments: Vec<Keyspace> = self
            .segments
            .read()
            .range(segment_of(start)..=segment_of(end - 1))
            .map(|(_, ks)| ks.clone())
            .collect();
        let mut bytes = 0;
        for keyspace in segments {
            for guard in keyspace.range(index_key(start)..index_key(end)) {
                let (key, value) = guard.into_inner().map_err(fjall_err)?;
                out.push(decode_entry(&key, &value)?);
                bytes += value.len();
                if bytes >= max_bytes {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

/// Runs `chore` on a thread of its own, off the writer's path; it holds the database open
/// until it ends.
fn on_own_thread(name: &str, chore: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(chore) {
        tracing::warn!(thread = name, error = %e, "could not start a raft log thread");
    }
}

/// Moves a format-1 log (every entry in one keyspace) into segments, then records format 2;
/// a crash part way leaves format 1 and the old keyspace, and the move starts over.
fn into_segments(db: &Database, meta: &Keyspace) -> io::Result<()> {
    if db.keyspace_exists(FORMAT_ONE_ENTRIES) {
        let old = db
            .keyspace(FORMAT_ONE_ENTRIES, KeyspaceCreateOptions::default)
            .map_err(fjall_err)?;
        let mut segments: BTreeMap<u64, Keyspace> = BTreeMap::new();
        let mut batch = db.batch();
        for guard in old.iter() {
            let (key, value) = guard.into_inner().map_err(fjall_err)?;
            let segment = segment_of(key_index(&key)?);
            let keyspace = match segments.entry(segment) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(open_segment(db, segment)?)
                }
            };
            batch.insert(keyspace, key, value);
            if batch.len() >= 4096 {
                batch.commit().map_err(fjall_err)?;
                batch = db.batch();
            }
        }
        batch.commit().map_err(fjall_err)?;
        db.persist(PersistMode::SyncAll).map_err(fjall_err)?;
        db.delete_keyspace(old).map_err(fjall_err)?;
    }
    write_format(db, meta)
}
