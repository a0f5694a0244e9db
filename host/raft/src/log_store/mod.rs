//! The Raft log and vote, on their own fjall database (the server gives it
//! `<data-dir>/raft`): openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! The log is the durability point (docs/ARCHITECTURE.md, decision 4): an append is acknowledged to
//! openraft (its `IOFlushed` callback) only once fsynced, and appends share fsyncs (group
//! commit, see `writer`). `append` itself never touches the disk: it puts the entries in an
//! in-memory pending tail, where readers find them at once (openraft may read an entry as
//! soon as `append` returns), and queues them for the writer thread. Votes, truncations and
//! purges go through the same queue, so all writes keep openraft's order, and return once
//! fsynced. No fjall call runs on an async worker: writes are on the writer thread, disk
//! reads in `spawn_blocking`.

mod disk;
mod reader;
mod writer;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use tokio::sync::{oneshot, watch};

pub use self::disk::LogStats;
use self::disk::{META_COMMITTED, META_LAST_PURGED, META_VOTE, Pending, Shared, segment_of};
pub use self::reader::LogReader;
use self::writer::{Done, Op};
use crate::codec;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// The Raft log storage. One per node; openraft owns it and calls it from one task.
pub struct LogStore {
    shared: Arc<Shared>,
    reader: LogReader,
    closed: watch::Receiver<()>,
    /// The log's bounds as openraft last set them (applied to `pending` at once and queued for
    /// disk): only this handle changes them, so they need no lock. The log holds entries
    /// `first..=last_log_id`, none if `last_log_id == last_purged`.
    first: u64,
    last_purged: Option<LogId>,
    last_log_id: Option<LogId>,
    committed: Option<LogId>,
    /// Whether `committed` changed since it last went to the writer: it rides with the next
    /// write rather than waking the writer thread on its own (see `save_committed`).
    committed_unsent: bool,
    /// Numbers appends, so the writer can tell an entry it wrote from a later replacement.
    next_seq: u64,
    /// To the writer thread, which ends (after writing what is queued) once this is dropped.
    /// Last, so it is dropped after the store's handles on the database: the writer thread
    /// then usually holds the last one and closes the database there, not on an async worker.
    tx: Sender<Op>,
}

fn writer_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the raft log writer thread has stopped",
    )
}

impl LogStore {
    /// Opens the log at `path`, creating it if absent, and starts its writer thread.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || Shared::open(&path))
            .await
            .map_err(io::Error::other)??;
        let shared = Arc::new(loaded.shared);
        let (tx, rx) = writer::channel();
        // Detached: it ends on its own once the store is dropped, and `closed` tells when.
        writer::spawn(shared.clone(), rx)?;
        Ok(LogStore {
            reader: LogReader {
                shared: shared.clone(),
            },
            closed: shared.closed.subscribe(),
            shared,
            tx,
            first: loaded.first,
            last_purged: loaded.last_purged,
            last_log_id: loaded.last_log_id,
            committed: loaded.committed,
            committed_unsent: false,
            next_seq: 1,
        })
    }

    /// A reader that sees every entry appended through this store.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// Resolves once the database is closed: after this store is dropped (the writer thread
    /// then writes what is queued and ends) and every reader with it. Only then can the log
    /// be opened again in this process.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        // Nothing is ever sent: `changed` fails exactly when the sender, the last field of
        // the shared state, is dropped.
        async move { while closed.changed().await.is_ok() {} }
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> LogStats {
        self.shared.stats.get()
    }

    /// The index the next append starts at.
    fn next_index(&self) -> u64 {
        // Saturating: indexes come from disk, and a corrupt one must not panic.
        self.last_log_id.map_or(0, |l| l.index.saturating_add(1))
    }

    /// Queues `op`, with the committed mark if it changed since it was last queued.
    fn send(&mut self, mut op: Op) -> io::Result<()> {
        if std::mem::take(&mut self.committed_unsent) {
            op.meta
                .push((META_COMMITTED, self.committed.as_ref().map(codec::encode)));
        }
        self.tx.send(op).map_err(|_| writer_gone())
    }

    /// Waits until everything queued before is durable.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.write(Op::new(Done::Nothing)).await
    }

    /// Queues `op` and waits until it is durable.
    async fn write(&mut self, mut op: Op) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        op.done = Done::Reply(tx);
        self.send(op)?;
        rx.await.map_err(|_| writer_gone())?
    }
}

impl Drop for LogStore {
    /// Hands the writer the committed mark still held back, so that a clean stop keeps it.
    fn drop(&mut self) {
        if self.committed_unsent {
            // The writer may be gone already (it failed): then there is nothing to keep.
            let _ = self.send(Op::new(Done::Nothing));
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> io::Result<Vec<Entry>>
    where
        RB: std::ops::RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend,
    {
        self.reader.entries(range).await
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.reader.vote())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: self.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut op = Op::new(Done::Nothing);
        op.meta.push((META_VOTE, Some(codec::encode(vote))));
        self.write(op).await?;
        *self.shared.vote.write() = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Neither waited for nor sent on its own: openraft calls this on every commit, and
        // waking the writer thread for each cost two thread switches per write at low load.
        // The mark goes with the next write queued (so after the entries it points at, which
        // were queued before it) and is durable with that write's fsync; one never written
        // (the last before a crash) only means openraft learns it again from the leader, or
        // re-applies from the state machine's applied position. Dropping the store sends it.
        self.committed = committed;
        self.committed_unsent = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            // Nothing to write; the callback still completes after the writes queued before it.
            return self.send(Op::new(Done::Flushed(callback)));
        };
        let (first, last) = (first.log_id.index, last.log_id);

        // openraft truncates before it overwrites and appends right after the last entry; an
        // append anywhere else would leave a hole or a stale tail, so refuse it. An empty log
        // may start anywhere after what was purged (openraft's storage suite starts at 1).
        let expected = self.next_index();
        let empty = self.last_log_id == self.last_purged;
        let consecutive = entries
            .windows(2)
            .all(|w| w[0].log_id.index.checked_add(1) == Some(w[1].log_id.index));
        if !consecutive || first < expected || (first > expected && !empty) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "raft log append of {first}..={} is not consecutive from index {expected}",
                    last.index
                ),
            ));
        }

        let seq = self.next_seq;
        self.next_seq += 1;
        let put = entries
            .iter()
            .map(|e| (e.log_id.index, codec::encode(e)))
            .collect();
        {
            let mut pending = self.shared.pending.write();
            for entry in entries {
                pending.insert(entry.log_id.index, Pending { seq, entry });
            }
        }
        if empty {
            self.first = first;
        }
        self.last_log_id = Some(last);

        self.send(Op {
            put,
            appended: first..last.index.saturating_add(1),
            seq,
            ..Op::new(Done::Flushed(callback))
        })
    }

    async fn truncate_after(&mut self, after: Option<LogId>) -> io::Result<()> {
        let from = after
            .map_or(0, |l| l.index.saturating_add(1))
            .max(self.first);
        let next = self.next_index();
        if from >= next {
            return Ok(());
        }
        let mut op = Op::new(Done::Nothing);
        op.remove = from..next;
        self.write(op).await?;

        drop(self.shared.pending.write().split_off(&from));
        self.last_log_id = if from > self.first {
            after
        } else {
            self.last_purged
        };
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        if self.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let mut op = Op::new(Done::Nothing);
        let end = log_id.index.saturating_add(1);
        // Whole segments go; purged entries in the segment `log_id` falls in stay until it
        // does, below the `first` that reads keep to.
        op.drop_segments_below = Some(segment_of(end));
        op.meta
            .push((META_LAST_PURGED, Some(codec::encode(&log_id))));
        self.write(op).await?;

        {
            let mut pending = self.shared.pending.write();
            *pending = pending.split_off(&end);
        }
        self.shared.first.fetch_max(end, Ordering::AcqRel);
        self.last_purged = Some(log_id);
        self.first = self.first.max(end);
        if self.last_log_id.is_none_or(|l| l.index < log_id.index) {
            self.last_log_id = Some(log_id);
        }
        Ok(())
    }
}
