//! The samples this member holds for the rules' open windows: every member keeps every
//! ingested sample (the Ingest service passes each one to every member) until the leader's
//! flush marks cover its time, so that a new leader has the samples of the windows the old
//! one had open. Numbered in arrival order, so that a rule reads on from where it was.
//! Bounded: past the limit the oldest go, and the loss is counted and logged.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The most samples a member holds (~48 bytes each plus the series names, which are shared
/// between a request's samples of one series).
pub const MAX_SAMPLES: usize = 4_000_000;

/// One ingested sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: Arc<str>,
    pub value: f64,
    pub time_ms: i64,
}

struct Inner {
    /// The number of the first sample held.
    first: u64,
    samples: VecDeque<Sample>,
    /// Samples pushed out by the limit before any rule could read them, since start.
    dropped: u64,
}

pub struct SampleBuffer {
    inner: Mutex<Inner>,
    limit: usize,
    /// The number the next sample will get: rules wait on it.
    next: watch::Sender<u64>,
}

impl Default for SampleBuffer {
    fn default() -> Self {
        Self::with_limit(MAX_SAMPLES)
    }
}

impl SampleBuffer {
    pub fn with_limit(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                first: 0,
                samples: VecDeque::new(),
                dropped: 0,
            }),
            limit: limit.max(1),
            next: watch::channel(0).0,
        }
    }

    /// Adds samples; how many older ones the limit pushed out to make room.
    pub fn push(&self, samples: impl IntoIterator<Item = Sample>) -> u64 {
        let mut inner = self.inner.lock();
        inner.samples.extend(samples);
        let excess = inner.samples.len().saturating_sub(self.limit);
        inner.samples.drain(..excess);
        inner.first += excess as u64;
        inner.dropped += excess as u64;
        let next = inner.first + inner.samples.len() as u64;
        drop(inner);
        self.next.send_replace(next);
        excess as u64
    }

    /// Up to `max` samples from number `from` on (or from the first held, if `from` went
    /// already), and the number to read from next time.
    pub fn read(&self, from: u64, max: usize) -> (Vec<Sample>, u64) {
        let inner = self.inner.lock();
        let start = from.max(inner.first);
        let skip = usize::try_from(start - inner.first).unwrap_or(usize::MAX);
        let read: Vec<Sample> = inner.samples.iter().skip(skip).take(max).cloned().collect();
        let next = start + read.len() as u64;
        (read, next)
    }

    /// The number the next sample will get: a reader that wants none skips to it.
    pub fn next(&self) -> u64 {
        *self.next.borrow()
    }

    /// The number of the oldest sample held: where a rule that starts reads from.
    pub fn first(&self) -> u64 {
        self.inner.lock().first
    }

    /// The number the next sample will get, to wait on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.next.subscribe()
    }

    /// Forgets the oldest samples while their time is before `floor_ms` (every rule has
    /// flushed it). Samples are held in arrival order, so a late one behind newer ones stays
    /// until they go; the limit bounds what that can cost.
    pub fn forget_before(&self, floor_ms: i64) {
        let mut inner = self.inner.lock();
        let old = inner
            .samples
            .iter()
            .take_while(|s| s.time_ms < floor_ms)
            .count();
        inner.samples.drain(..old);
        inner.first += old as u64;
    }

    /// Samples held, and samples the limit pushed out since start. Only tests read it yet:
    /// the samples pushed out are not reported anywhere (issue 24's ingest will count them).
    #[cfg(test)]
    pub fn stats(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (inner.samples.len(), inner.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time_ms: i64) -> Sample {
        Sample {
            series: "s".into(),
            value: time_ms as f64,
            time_ms,
        }
    }

    fn times(samples: &[Sample]) -> Vec<i64> {
        samples.iter().map(|s| s.time_ms).collect()
    }

    #[test]
    fn readers_go_on_from_where_they_were() {
        let b = SampleBuffer::with_limit(100);
        b.push([sample(1), sample(2), sample(3)]);
        let (first, next) = b.read(0, 2);
        assert_eq!((times(&first), next), (vec![1, 2], 2));
        b.push([sample(4)]);
        let (rest, next) = b.read(next, 10);
        assert_eq!((times(&rest), next), (vec![3, 4], 4));
        assert_eq!((*b.subscribe().borrow(), b.next()), (4, 4));
    }

    #[test]
    fn the_limit_and_flushed_windows_push_the_oldest_out() {
        let b = SampleBuffer::with_limit(3);
        assert_eq!(b.push((1..=5).map(sample)), 2);
        assert_eq!(b.first(), 2);
        // A reader that was behind reads on from the oldest held.
        let (read, next) = b.read(0, 10);
        assert_eq!((times(&read), next), (vec![3, 4, 5], 5));
        b.forget_before(5);
        assert_eq!(b.first(), 4);
        assert_eq!(b.stats(), (1, 2));
        let (read, _) = b.read(0, 10);
        assert_eq!(times(&read), vec![5]);
    }
}
