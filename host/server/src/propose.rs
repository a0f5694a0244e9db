//! Writes on their way into this member's Raft, batched: the writes handed in while the
//! batching task was busy go to Raft together, in one `client_write_many` message, so that its
//! core handles, appends and replicates them once instead of once per write (a follower's
//! forwarded batch arrives as hundreds of writes at once). A write that finds no other in flight
//! has nothing to share a message with and goes to Raft at once, without the two task hops the
//! batch costs: one client's latency stays what it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use conclave_proto::conclavepb::Command;
use conclave_raft::{Raft, TypeConfig};
use conclave_store::Applied;
use futures::StreamExt;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::limits::MAX_BATCH_BYTES;

/// A batch stops growing at this many writes, or at the forwarder's byte bound (one write may
/// take it beyond); the rest go in the next one. The bytes bound what one log append holds.
const MAX_BATCH_WRITES: usize = 1024;

/// What `Raft::client_write` answers, less the log position nobody here uses.
pub type WriteResult = Result<Applied, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

struct Pending {
    command: Command,
    reply: oneshot::Sender<WriteResult>,
}

/// Hands writes to the batching task; cheap to share.
pub struct Proposer {
    raft: Raft,
    queue: mpsc::UnboundedSender<Pending>,
    /// Writes handed in and not answered yet, either way.
    in_flight: Arc<AtomicUsize>,
}

/// Counts a write in flight until dropped (answered, or its caller gave up).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Proposer {
    /// Starts the batching task on the current runtime; it ends when the proposer is dropped.
    pub fn spawn(raft: Raft) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft.clone(), rx));
        Self {
            raft,
            queue,
            in_flight: Arc::default(),
        }
    }

    /// [`Raft::client_write`], sharing one Raft message with whatever else is waiting.
    pub async fn write(&self, command: Command) -> WriteResult {
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _counted = InFlight(self.in_flight.clone());
        if alone {
            return self
                .raft
                .client_write(command)
                .await
                .map(|response| response.data);
        }
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { command, reply }).is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }
}

async fn run(raft: Raft, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.command.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(p) => {
                    bytes += p.command.encoded_len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        let mut answers = match raft.client_write_many(commands).await {
            Ok(answers) => answers,
            Err(fatal) => {
                for reply in replies {
                    let _ = reply.send(Err(RaftError::Fatal(fatal.clone())));
                }
                continue;
            }
        };
        // The answers come in the order of the writes, as each is applied; handing them out
        // must not hold up the next batch.
        tokio::spawn(async move {
            let mut replies = replies.into_iter();
            while let Some(answer) = answers.next().await {
                let Some(reply) = replies.next() else { break };
                let _ = reply.send(match answer {
                    Ok(Ok(response)) => Ok(response.response),
                    Ok(Err(e)) => Err(RaftError::APIError(e)),
                    Err(fatal) => Err(RaftError::Fatal(fatal)),
                });
            }
            // A stream that ended early means Raft stopped.
            for reply in replies {
                let _ = reply.send(Err(RaftError::Fatal(Fatal::Stopped)));
            }
        });
    }
}
