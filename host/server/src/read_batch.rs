//! Linearizable reads share read indexes: every read that arrives while a read index is being
//! confirmed waits for the next one, so a burst of reads costs one quorum round (and, on a
//! follower, one call to the leader) instead of one each, as etcd's linearizable read loop
//! does. A read index obtained after a read arrived is as good as one of its own.

use std::future::Future;
use std::mem;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::ClusterError;

pub type Answer = oneshot::Receiver<Result<u64, ClusterError>>;

#[derive(Default)]
pub struct ReadBatch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether a task is running rounds.
    running: bool,
    /// Reads that arrived since the current round started: they wait for the next one.
    waiting: Vec<oneshot::Sender<Result<u64, ClusterError>>>,
}

impl ReadBatch {
    /// Joins the next round. When the second value is true, no task is running rounds: the
    /// caller must start one with [`ReadBatch::run`] (on a task of its own, so that no read
    /// waits on other reads' rounds).
    pub fn join(&self) -> (Answer, bool) {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock();
        state.waiting.push(tx);
        let start = !mem::replace(&mut state.running, true);
        (rx, start)
    }

    /// Runs rounds until no read waits: each takes the waiting reads, then obtains one read
    /// index for all of them with `fetch`.
    pub async fn run<F, Fut>(&self, mut fetch: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<u64, ClusterError>>,
    {
        // If this task dies, the next read starts another; the reads of the round drop
        // their answers and fail.
        struct Stopped<'a>(&'a Mutex<State>);
        impl Drop for Stopped<'_> {
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
                mem::take(&mut state.waiting)
            };
            let result = fetch().await;
            for waiter in batch {
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
        let batch = Arc::new(ReadBatch::default());
        let rounds = Arc::new(AtomicU64::new(0));
        let (first, start) = batch.join();
        assert!(start);
        // Two more reads arrive before the round runs: they join the same first round.
        let (second, start_again) = batch.join();
        assert!(!start_again);
        let (third, _) = batch.join();
        let counter = rounds.clone();
        batch
            .run(|| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(n * 10) }
            })
            .await;
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        for answer in [first, second, third] {
            assert_eq!(answer.await.expect("answered").expect("index"), 10);
        }
        // The rounds stopped: the next read starts them again.
        let (_, start) = batch.join();
        assert!(start);
    }

    #[tokio::test]
    async fn errors_reach_every_read_of_the_round() {
        let batch = ReadBatch::default();
        let (a, _) = batch.join();
        let (b, _) = batch.join();
        batch
            .run(|| async { Err(ClusterError::LeaderChanged) })
            .await;
        for answer in [a, b] {
            let err = answer.await.expect("answered").expect_err("an error");
            assert_eq!(err, ClusterError::LeaderChanged);
        }
    }
}
