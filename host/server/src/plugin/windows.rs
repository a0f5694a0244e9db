//! Which window each input belongs to, and when a window may close: the bookkeeping that makes
//! a rule's output exactly-once across leaders. An input's time is its revision's commit time
//! raised to the end of the last flushed window, so an input that commits after its window
//! was flushed counts in the next one instead of being lost; a new leader that replays history
//! from the flush mark computes the very same times, hence the very same windows.

use std::collections::BTreeMap;

/// An open window's first revision while it holds samples only.
const NO_REVISION: i64 = i64::MAX;

/// The start of the window holding `time_ms`: windows are aligned to multiples of the
/// resolution since the Unix epoch.
pub fn window_start(time_ms: i64, resolution_ms: i64) -> i64 {
    time_ms.div_euclid(resolution_ms) * resolution_ms
}

#[derive(Debug, Clone)]
pub struct Windows {
    resolution_ms: i64,
    lateness_ms: i64,
    /// The end of the last flushed window: no input's time is before it.
    floor_ms: i64,
    /// Windows with inputs not flushed yet: start -> the first revision in it (`NO_REVISION`
    /// for a window of samples only: history need not be replayed for it).
    open: BTreeMap<i64, i64>,
}

impl Windows {
    pub fn new(resolution_ms: u64, lateness_ms: u64, floor_ms: i64) -> Self {
        Self {
            resolution_ms: i64::try_from(resolution_ms).unwrap_or(i64::MAX).max(1),
            lateness_ms: i64::try_from(lateness_ms).unwrap_or(i64::MAX),
            floor_ms,
            open: BTreeMap::new(),
        }
    }

    /// Places a KV input of `revision`, committed at `commit_ms`: its time as the plugin sees
    /// it.
    pub fn place(&mut self, revision: i64, commit_ms: i64) -> i64 {
        let time = commit_ms.max(self.floor_ms);
        let first = self.open_window(time);
        *first = (*first).min(revision);
        time
    }

    /// Places an ingested sample by its own time; None if its window was flushed already
    /// (it came later than the allowed lateness: M3 drops such samples too).
    pub fn place_sample(&mut self, time_ms: i64) -> Option<i64> {
        if time_ms < self.floor_ms {
            return None;
        }
        self.open_window(time_ms);
        Some(time_ms)
    }

    /// The first revision of the window holding `time` (`NO_REVISION` while it has only
    /// samples), opening the window if need be.
    fn open_window(&mut self, time: i64) -> &mut i64 {
        let start = window_start(time, self.resolution_ms);
        self.open.entry(start).or_insert(NO_REVISION)
    }

    /// The oldest open window, if it may close at `now_ms` (its end plus the allowed lateness
    /// has passed).
    pub fn due(&self, now_ms: i64) -> Option<(i64, i64)> {
        let (&start, _) = self.open.first_key_value()?;
        let end = start.saturating_add(self.resolution_ms);
        (now_ms >= end.saturating_add(self.lateness_ms)).then_some((start, end))
    }

    /// When the oldest open window becomes due, if any is open.
    pub fn next_due_ms(&self) -> Option<i64> {
        let (&start, _) = self.open.first_key_value()?;
        Some(
            start
                .saturating_add(self.resolution_ms)
                .saturating_add(self.lateness_ms),
        )
    }

    /// Where a replay must start once the windows up to `end_ms` are flushed: the first
    /// revision of a later open window, or `next_revision` (the first one not read yet).
    pub fn replay_from_after(&self, end_ms: i64, next_revision: i64) -> i64 {
        self.open
            .range(end_ms..)
            .map(|(_, rev)| *rev)
            .filter(|rev| *rev != NO_REVISION)
            .min()
            .unwrap_or(next_revision)
    }

    /// The windows before `end_ms` were flushed.
    pub fn flushed(&mut self, end_ms: i64) {
        self.open = self.open.split_off(&end_ms);
        self.floor_ms = self.floor_ms.max(end_ms);
    }

    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_resolution() {
        assert_eq!(window_start(10_999, 10_000), 10_000);
        assert_eq!(window_start(10_000, 10_000), 10_000);
        assert_eq!(window_start(-1, 10_000), -10_000);
    }

    #[test]
    fn an_input_after_a_flush_counts_in_the_next_window() {
        let mut w = Windows::new(1000, 200, 0);
        assert_eq!(w.place(5, 1500), 1500);
        assert_eq!(w.due(2100), None, "lateness not over");
        assert_eq!(w.due(2200), Some((1000, 2000)));
        assert_eq!(w.replay_from_after(2000, 6), 6);
        w.flushed(2000);
        // Committed at 1900 but after the flush: it belongs to the window after.
        assert_eq!(w.place(7, 1900), 2000);
        assert_eq!(w.due(3200), Some((2000, 3000)));
    }

    #[test]
    fn samples_keep_their_time_and_late_ones_are_refused() {
        let mut w = Windows::new(1000, 0, 2000);
        assert_eq!(w.place_sample(1999), None, "its window was flushed");
        assert_eq!(w.place_sample(2500), Some(2500));
        // A window of samples only needs no history replayed.
        assert_eq!(w.replay_from_after(2000, 9), 9);
        w.place(7, 2600);
        assert_eq!(w.replay_from_after(2000, 9), 7);
        assert_eq!(w.due(3000), Some((2000, 3000)));
    }

    #[test]
    fn replay_starts_at_the_first_unflushed_window() {
        let mut w = Windows::new(1000, 0, 0);
        w.place(3, 1100);
        w.place(4, 2100);
        w.place(5, 2500);
        w.place(6, 3100);
        assert_eq!(w.replay_from_after(2000, 7), 4);
        w.flushed(2000);
        assert_eq!(w.due(3000), Some((2000, 3000)));
        assert_eq!(w.replay_from_after(3000, 7), 6);
        // A replay from revision 4 with the floor at 2000 rebuilds the same open windows.
        let mut replay = Windows::new(1000, 0, 2000);
        for (rev, t) in [(4, 2100), (5, 2500), (6, 3100)] {
            replay.place(rev, t);
        }
        assert_eq!(replay.open, w.open);
    }
}
