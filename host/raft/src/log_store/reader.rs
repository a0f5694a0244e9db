//! Reading the log: what openraft's replication tasks and the state-machine worker use,
//! concurrently with the writer. Entries come from the pending tail in memory first, then
//! from fjall (in `spawn_blocking`).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::{OptionalSend, RaftLogReader};

use super::disk::Shared;
use crate::types::{Entry, TypeConfig, Vote};

/// A cheap, cloneable reader of the log.
#[derive(Clone)]
pub struct LogReader {
    pub(super) shared: Arc<Shared>,
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// What one replication read returns at most (from disk; the in-memory tail is added only
/// when the disk part was read whole), so a lagging follower gets its log in pieces of a
/// bounded size rather than one message holding all of it.
const REPLICATION_READ_BYTES: usize = 8 << 20;

impl LogReader {
    /// The entries at `range` that the log holds, in order.
    pub async fn entries(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
        let (start, end) = bounds(&range);
        self.read(start, end, usize::MAX).await
    }

    /// The entries from `start`, in order: all of `start..end` that the log holds, or a
    /// non-empty prefix of it when more than `max_bytes` would come from disk.
    async fn read(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<Entry>> {
        if start >= end {
            return Ok(Vec::new());
        }
        // Pending first, then disk: the writer drops an entry from pending only after fjall
        // has it, so an entry missed here is found below. Pending is a contiguous tail, so
        // disk is read only below its first index.
        let tail: Vec<Entry> = self
            .shared
            .pending
            .read()
            .range(start..end)
            .map(|(_, p)| p.entry.clone())
            .collect();
        let disk_end = match tail.first() {
            Some(first) if first.log_id.index == start => return Ok(tail),
            Some(first) => first.log_id.index,
            None => end,
        };
        let shared = self.shared.clone();
        let mut entries =
            tokio::task::spawn_blocking(move || shared.read_range(start, disk_end, max_bytes))
                .await
                .map_err(io::Error::other)??;
        // Cut short by the size limit, the tail would leave a hole after the disk part.
        let cut_short = entries
            .last()
            .is_some_and(|last| last.log_id.index.saturating_add(1) < disk_end);
        if !cut_short {
            entries.extend(tail);
        }
        Ok(entries)
    }

    /// The last durable vote.
    pub fn vote(&self) -> Option<Vote> {
        *self.shared.vote.read()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> io::Result<Vec<Entry>>
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        self.entries(range).await
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        self.read(start, end, REPLICATION_READ_BYTES).await
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.vote())
    }
}
