//! The log's writer thread, where every write to the log's fjall database happens, in the
//! order openraft asked for it (a vote must never be reordered with the appends around it).
//!
//! Group commit: the thread takes everything queued, folds it into ONE fjall batch (so an
//! entry appended and truncated in the same group is never written), commits it with one
//! fsync, and only then completes each operation: appends' `IOFlushed` callbacks and the
//! replies awaited by `save_vote`, `truncate_after` and `purge`. While it fsyncs, new work
//! queues up and becomes the next group, so the fsync rate, not the proposal rate, bounds
//! the number of disk syncs.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use fjall::{Keyspace, PersistMode};
use openraft::storage::IOFlushed;
use tokio::sync::oneshot;

use super::disk::{Shared, Stats, fjall_err, index_key, segment_of};
use crate::types::TypeConfig;

/// A group stops growing at this many bytes of entries, to bound the batch held in memory.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// Who waits for an operation to be durable.
pub(super) enum Done {
    /// An append: openraft's callback.
    Flushed(IOFlushed<TypeConfig>),
    /// A vote, truncation or purge: the caller, which returns once it is durable.
    Reply(oneshot::Sender<io::Result<()>>),
    /// Nobody (the committed mark). It goes out with the next group's fsync; losing it in a
    /// crash only means openraft re-learns it from the leader.
    Nothing,
}

/// One queued write.
pub(super) struct Op {
    /// Entries to store: index and encoded `LogEntry`.
    pub put: Vec<(u64, Vec<u8>)>,
    /// The indexes of `put` and the append they came from, to drop them from `pending` once
    /// they are in fjall.
    pub appended: Range<u64>,
    pub seq: u64,
    /// Entry indexes to delete (truncation).
    pub remove: Range<u64>,
    /// Segments numbered below this to delete (purge), once the rest of the group is durable.
    pub drop_segments_below: Option<u64>,
    /// Meta records to set (`Some`) or delete (`None`).
    pub meta: Vec<(&'static [u8], Option<Vec<u8>>)>,
    pub done: Done,
}

impl Op {
    pub fn new(done: Done) -> Self {
        Op {
            put: Vec::new(),
            appended: 0..0,
            seq: 0,
            remove: 0..0,
            drop_segments_below: None,
            meta: Vec::new(),
            done,
        }
    }

    fn size(&self) -> usize {
        let removed = self
            .remove
            .end
            .saturating_sub(self.remove.start)
            .min(1 << 20);
        self.put.iter().map(|(_, v)| v.len() + 8).sum::<usize>() + removed as usize
    }

    fn complete(self, result: &Result<(), (io::ErrorKind, String)>) {
        let result = result
            .as_ref()
            .map(|_| ())
            .map_err(|(kind, msg)| io::Error::new(*kind, msg.clone()));
        match self.done {
            Done::Flushed(callback) => callback.io_completed(result),
            // The caller may have given up waiting; nothing to tell then.
            Done::Reply(tx) => {
                let _ = tx.send(result);
            }
            Done::Nothing => {}
        }
    }
}

pub(super) fn spawn(shared: Arc<Shared>, rx: Receiver<Op>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("raft-log-writer".into())
        // Owning `shared`, the thread is usually the last holder and closes the database here
        // rather than on an async worker.
        .spawn(move || run(&shared, &rx))
}

pub(super) fn channel() -> (Sender<Op>, Receiver<Op>) {
    std::sync::mpsc::channel()
}

/// Runs until every sender is gone, then finishes what is queued.
fn run(shared: &Arc<Shared>, rx: &Receiver<Op>) {
    // After a failed write the database and memory may disagree, and fjall refuses writes
    // once poisoned: every later operation fails with the first error, so openraft stops.
    let mut failed: Option<(io::ErrorKind, String)> = None;
    // Whether a group was committed without fsync (committed marks only) since the last sync.
    let mut unsynced = false;

    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bytes = group.iter().map(Op::size).sum::<usize>();
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += op.size();
                    group.push(op);
                }
                Err(_) => break,
            }
        }

        let result = match &failed {
            Some(err) => Err(err.clone()),
            None => write_group(shared, &mut group, &mut unsynced).map_err(|e| {
                tracing::error!(error = %e, "raft log write failed; the log refuses all writes now");
                (e.kind(), format!("raft log write failed: {e}"))
            }),
        };
        if let Err(err) = &result {
            failed = Some(err.clone());
        }
        let appends = group
            .iter()
            .filter(|op| matches!(op.done, Done::Flushed(_)))
            .count();
        Stats::add(&shared.stats.appends, appends as u64);
        for op in group {
            op.complete(&result);
        }
    }
}

/// Writes `group` as one batch (fsynced unless nobody waits on it) and drops its entries from
/// the pending map once fjall has them.
fn write_group(shared: &Arc<Shared>, group: &mut [Op], unsynced: &mut bool) -> io::Result<()> {
    // The net effect of the group, in order: a later write to a key replaces an earlier one.
    // One batch must not hold two writes to a key: fjall gives them the same sequence number.
    let mut entries: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
    let mut meta: BTreeMap<&'static [u8], Option<Vec<u8>>> = BTreeMap::new();
    let mut sync = false;
    let mut drop_below: Option<u64> = None;
    for op in group.iter_mut() {
        // The purge's `last_purged` must be on disk before the segments go: otherwise a crash
        // could leave a log that starts after a hole.
        if let Some(end) = op.drop_segments_below {
            drop_below = Some(drop_below.map_or(end, |d| d.max(end)));
            sync = true;
        }
        for index in op.remove.clone() {
            entries.insert(index, None);
        }
        for (index, bytes) in op.put.drain(..) {
            entries.insert(index, Some(bytes));
        }
        for (key, value) in op.meta.drain(..) {
            meta.insert(key, value);
        }
        sync |= !matches!(op.done, Done::Nothing);
    }

    let mut batch = shared.db.batch();
    // Entries come in index order: one segment lookup per segment, not per entry.
    let mut current: Option<(u64, Option<Keyspace>)> = None;
    for (index, value) in entries {
        let segment = segment_of(index);
        // A put needs the segment even where a delete before it found none.
        let stale = current
            .as_ref()
            .is_none_or(|(s, ks)| *s != segment || (ks.is_none() && value.is_some()));
        if stale {
            let keyspace = if value.is_some() {
                shared.prepare_segment(segment.saturating_add(1));
                Some(shared.segment(segment)?)
            } else {
                // Nothing to delete in a segment that does not exist.
                shared.segments.read().get(&segment).cloned()
            };
            current = Some((segment, keyspace));
        }
        let Some((_, Some(keyspace))) = &current else {
            continue;
        };
        let key = index_key(index);
        match value {
            Some(bytes) => batch.insert(keyspace, key.as_slice(), bytes),
            None => batch.remove(keyspace, key.as_slice()),
        }
    }
    for (key, value) in meta {
        match value {
            Some(bytes) => batch.insert(&shared.meta, key, bytes),
            None => batch.remove(&shared.meta, key),
        }
    }

    if batch.is_empty() {
        // Nothing of its own to write (an empty append): still, what it waits on must be on
        // disk before it completes.
        if sync && *unsynced {
            let started = std::time::Instant::now();
            shared
                .db
                .persist(PersistMode::SyncData)
                .map_err(fjall_err)?;
            record_fsync(started);
            Stats::add(&shared.stats.syncs, 1);
            *unsynced = false;
        }
    } else {
        let items = batch.len();
        // fdatasync, as etcd's WAL: the journal's bytes and length reach the disk, its
        // timestamps need not.
        let started = std::time::Instant::now();
        // The robustness build can make this write and its fsync fail (a failing disk).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("raft-log-fsync", sync, |_| {
            Err(io::Error::other(
                "failpoint raft-log-fsync: the write or its fsync failed",
            ))
        });
        batch
            .durability(sync.then_some(PersistMode::SyncData))
            .commit()
            .map_err(fjall_err)?;
        if sync {
            record_fsync(started);
        }
        let entries = group
            .iter()
            .map(|op| (op.appended.end.saturating_sub(op.appended.start)) as usize);
        record_group(group.len(), entries.sum());
        *unsynced = !sync;
        Stats::add(&shared.stats.groups, 1);
        Stats::add(&shared.stats.syncs, u64::from(sync));
        tracing::trace!(ops = group.len(), items, sync, "raft log group written");
    }
    if let Some(end) = drop_below {
        shared.drop_segments_below(end);
    }

    let mut pending = shared.pending.write();
    for op in group.iter() {
        for index in op.appended.clone() {
            // A later append (after a truncation) may have replaced the entry: keep that one.
            if pending.get(&index).is_some_and(|p| p.seq == op.seq) {
                pending.remove(&index);
            }
        }
    }
    Ok(())
}

/// How much one group write carried: the writes it coalesced (appends, votes, purges) and
/// the entries it appended. Together with the fsync histogram this shows what group commit
/// buys: entries per fsync.
fn record_group(ops: usize, entries: usize) {
    static OPS: std::sync::LazyLock<metrics::Histogram> =
        std::sync::LazyLock::new(|| metrics::histogram!("conclave_raft_log_group_writes"));
    static ENTRIES: std::sync::LazyLock<metrics::Histogram> =
        std::sync::LazyLock::new(|| metrics::histogram!("conclave_raft_log_group_entries"));
    OPS.record(ops as f64);
    ENTRIES.record(entries as f64);
}

/// etcd's WAL fsync histogram (`etcd_disk_wal_fsync_duration_seconds`): one group written and
/// synced, which is what etcd's WAL sync covers.
fn record_fsync(started: std::time::Instant) {
    // Resolved at the first fsync, after the server installed its recorder.
    static FSYNC: std::sync::LazyLock<metrics::Histogram> =
        std::sync::LazyLock::new(|| metrics::histogram!("etcd_disk_wal_fsync_duration_seconds"));
    FSYNC.record(started.elapsed().as_secs_f64());
}
