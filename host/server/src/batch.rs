//! Requests that share one round: every request that arrives while a round is under way waits
//! for the next one, which serves all of them at once. Linearizable reads share a read index,
//! so a burst of reads costs one quorum round (and, on a follower, one call to the leader)
//! instead of one each, as etcd's linearizable read loop does: a read index obtained after a
//! read arrived is as good as one of its own. Lease renewals share one checkpoint proposal.

use std::future::Future;
use std::mem;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::ClusterError;

/// What a request waits on: its round's outcome.
pub type Answer<T, E> = oneshot::Receiver<Result<T, E>>;

/// Linearizable reads, sharing read indexes.
pub type ReadBatch = Batch<(), u64, ClusterError>;

/// Requests carrying an `I` each, served in rounds whose outcome (`T` or `E`) every request
/// of the round gets.
pub struct Batch<I, T, E> {
    state: Mutex<State<I, T, E>>,
    /// Requests per round at most; the rest wait for the next round.
    per_round: usize,
}

struct State<I, T, E> {
    /// Whether a task is running rounds.
    running: bool,
    /// Requests that arrived since the current round started: they wait for the next one.
    waiting: Vec<(I, oneshot::Sender<Result<T, E>>)>,
}

impl<I, T, E> Default for Batch<I, T, E> {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl<I, T, E> Batch<I, T, E> {
    /// Rounds of at most `per_round` requests (at least one).
    pub fn new(per_round: usize) -> Self {
        Self {
            state: Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            }),
            per_round: per_round.max(1),
        }
    }
}

impl<I, T: Clone, E: Clone> Batch<I, T, E> {
    /// Joins the next round with `item`. When the second value is true, no task is running
    /// rounds: the caller must start one with [`Batch::run`] (on a task of its own, so that
    /// no request waits on other requests' rounds).
    pub fn join(&self, item: I) -> (Answer<T, E>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock();
        state.waiting.push((item, tx));
        let start = !mem::replace(&mut state.running, true);
        (rx, start)
    }

    /// Runs rounds until no request waits: each takes the waiting requests (the oldest, up to
    /// the limit) and serves all of them with one call of `round`.
    pub async fn run<F, Fut>(&self, mut round: F)
    where
        F: FnMut(Vec<I>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // If this task dies, the next request starts another; the requests of the round drop
        // their answers and fail.
        struct Stopped<'a, I, T, E>(&'a Mutex<State<I, T, E>>);
        impl<I, T, E> Drop for Stopped<'_, I, T, E> {
            fn drop(&mut self) {
                self.0.lock().running = false;
            }
        }
        let _stopped = Stopped(&self.state);
        loop {
            let batch = {
                let mut state = self.state.lock();
                if state.waiting.is_empty() {
                    return;
                }
                let taken = state.waiting.len().min(self.per_round);
                let rest = state.waiting.split_off(taken);
                mem::replace(&mut state.waiting, rest)
            };
            let (items, waiters): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
            let result = round(items).await;
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn reads_that_arrive_during_a_round_share_the_next() {
        let batch = Arc::new(Batch::<(), u64, ClusterError>::default());
        let rounds = Arc::new(AtomicU64::new(0));
        let (first, start) = batch.join(());
        assert!(start);
        // Two more reads arrive before the round runs: they join the same first round.
        let (second, start_again) = batch.join(());
        assert!(!start_again);
        let (third, _) = batch.join(());
        let counter = rounds.clone();
        batch
            .run(|_| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(n * 10) }
            })
            .await;
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        for answer in [first, second, third] {
            assert_eq!(answer.await.expect("answered").expect("index"), 10);
        }
        // The rounds stopped: the next read starts them again.
        let (_, start) = batch.join(());
        assert!(start);
    }

    #[tokio::test]
    async fn errors_reach_every_read_of_the_round() {
        let batch = Batch::<(), u64, ClusterError>::default();
        let (a, _) = batch.join(());
        let (b, _) = batch.join(());
        batch
            .run(|_| async { Err(ClusterError::LeaderChanged) })
            .await;
        for answer in [a, b] {
            let err = answer.await.expect("answered").expect_err("an error");
            assert_eq!(err, ClusterError::LeaderChanged);
        }
    }

    #[tokio::test]
    async fn a_round_takes_its_items_in_order_up_to_its_limit() {
        let batch = Batch::<u32, usize, ClusterError>::new(2);
        let answers: Vec<_> = (1..=5).map(|i| batch.join(i).0).collect();
        let rounds = parking_lot::Mutex::new(Vec::new());
        batch
            .run(|items| {
                let n = items.len();
                rounds.lock().push(items);
                async move { Ok(n) }
            })
            .await;
        assert_eq!(*rounds.lock(), vec![vec![1, 2], vec![3, 4], vec![5]]);
        let sizes: Vec<usize> = futures::future::join_all(answers)
            .await
            .into_iter()
            .map(|a| a.expect("answered").expect("a size"))
            .collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 1]);
    }
}
