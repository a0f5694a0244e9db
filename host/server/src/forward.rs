//! A follower's writes on their way to the leader, batched: the writes that arrive while
//! earlier batches are in flight go to the leader together, in one ProposeBatch member call
//! over the peer transport, so that forwarding costs one stream per batch instead of one per
//! write (etcd sends its followers' proposals over its peer streams in batches for the same
//! reason).

use std::sync::Arc;

use conclave_proto::conclavepb::{
    Command, ProposeBatchRequest, ProposeBatchResponse, ProposeResponse, member_request::Call,
};
use conclave_raft::Member;
use conclave_raft::{MemberCallError, MemberClient};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::ProposeError;
use crate::limits::{MAX_BATCH_BYTES, REQUEST_TIMEOUT};
use crate::wire::{Asked, ask_with, from_outcome};

/// Batches on the way at once; more writes wait and go in the next batch. Two keep the leader
/// busy while the next batch fills.
const BATCHES_IN_FLIGHT: usize = 2;
/// A batch stops growing past this many writes, or at [`MAX_BATCH_BYTES`] (one write may take
/// it beyond).
const MAX_BATCH_WRITES: usize = 1024;

/// Why a forwarded write has no answer.
#[derive(Debug, Clone)]
pub enum Forward {
    /// It never reached the leader: safe to send again.
    Unreached,
    /// It may have reached the leader, or the leader refused it.
    Failed(ProposeError),
}

struct Pending {
    leader_id: u64,
    leader: Member,
    members: MemberClient,
    command: Command,
    reply: oneshot::Sender<Result<ProposeResponse, Forward>>,
}

/// Hands writes to the batching task; cheap to share.
pub struct Forwarder {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Forwarder {
    /// Starts the batching task on the current runtime; it ends when the forwarder is dropped.
    pub fn spawn() -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Self { queue }
    }

    /// Sends `command` to `leader` (reached with `members`) with whatever else is waiting,
    /// and returns the leader's answer to it.
    pub async fn forward(
        &self,
        leader_id: u64,
        leader: Member,
        members: MemberClient,
        command: Command,
    ) -> Result<ProposeResponse, Forward> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            leader_id,
            leader,
            members,
            command,
            reply,
        };
        if self.queue.send(pending).is_err() {
            return Err(Forward::Unreached);
        }
        // A batch that ended without answering (its task was cancelled) may have been sent.
        answer
            .await
            .unwrap_or(Err(Forward::Failed(ProposeError::LeaderChanged)))
    }
}

async fn run(mut queue: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Waiting for a slot is what lets the next batch grow.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.command.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                // A batch goes to one leader; a write for another starts the next batch.
                Ok(p) if p.leader_id != batch[0].leader_id => {
                    carried = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.command.encoded_len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(async move {
            send(batch).await;
            drop(slot);
        });
    }
}

async fn send(batch: Vec<Pending>) {
    let leader = batch[0].leader.clone();
    let members = batch[0].members.clone();
    let (commands, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let sent = commands.len();
    let call = Call::ProposeBatch(ProposeBatchRequest { commands });
    let answer: Asked<ProposeBatchResponse> =
        ask_with(&members, &leader, call, REQUEST_TIMEOUT).await;
    // Either one outcome per write, or one failure for all of them.
    let failed = match answer {
        Ok(Ok(response)) if response.outcomes.len() == sent => {
            for (reply, outcome) in replies.into_iter().zip(response.outcomes) {
                let _ = reply.send(from_outcome(outcome).map_err(Forward::Failed));
            }
            return;
        }
        Ok(Ok(response)) => Forward::Failed(ProposeError::Internal(format!(
            "the leader answered {} of {sent} forwarded writes",
            response.outcomes.len()
        ))),
        // The leader refused the call as a whole (it answers each write on its own, so only
        // a malformed call gets here): nothing to retry, the text for the log.
        Ok(Err(refused)) => Forward::Failed(ProposeError::Internal(format!(
            "the leader refused the forwarded writes: {refused}"
        ))),
        Err(e) => from_call_error(&e),
    };
    for reply in replies {
        let _ = reply.send(Err(failed.clone()));
    }
}

/// A call that failed as a whole: unreached if the leader certainly did not act on it (there
/// was no connection, or it refused before reading), otherwise the leader may have the writes
/// and lost its leadership, or is too slow.
fn from_call_error(e: &MemberCallError) -> Forward {
    match e {
        _ if e.never_sent() => Forward::Unreached,
        MemberCallError::Timeout { .. } => Forward::Failed(ProposeError::TimedOut),
        _ => Forward::Failed(ProposeError::LeaderChanged),
    }
}
