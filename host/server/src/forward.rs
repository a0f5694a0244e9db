//! A follower's writes on their way to the leader, batched: the writes that arrive while
//! earlier batches are in flight go to the leader together, in one Internal.ProposeBatch call,
//! so that forwarding costs one HTTP/2 request per batch instead of one per write (etcd sends
//! its followers' proposals over its peer streams in batches for the same reason).

use std::sync::Arc;

use conclave_proto::conclavepb::{
    Command, Failure, ProposeBatchRequest, ProposeOutcome, ProposeResponse,
    internal_client::InternalClient, propose_outcome,
};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::error::LEADER_CHANGED;

/// Batches on the way at once; more writes wait and go in the next batch. Two keep the leader
/// busy while the next batch fills.
const BATCHES_IN_FLIGHT: usize = 2;
/// A batch stops growing past this many writes or bytes (one write may take it beyond).
const MAX_BATCH_WRITES: usize = 1024;
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Why a forwarded write has no answer.
#[derive(Debug)]
pub enum Forward {
    /// It never reached the leader: safe to send again.
    Unreached,
    /// It may have reached the leader, or the leader refused it.
    Failed(Status),
}

struct Pending {
    leader: u64,
    channel: Channel,
    /// The forwarding member's proof of membership (see `auth`).
    stamp: Option<AsciiMetadataValue>,
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

    /// Sends `command` to `leader` (reached over `channel`) with whatever else is waiting, and
    /// returns the leader's answer to it.
    pub async fn forward(
        &self,
        leader: u64,
        channel: Channel,
        stamp: Option<AsciiMetadataValue>,
        command: Command,
    ) -> Result<ProposeResponse, Forward> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            leader,
            channel,
            stamp,
            command,
            reply,
        };
        if self.queue.send(pending).is_err() {
            return Err(Forward::Unreached);
        }
        // A batch that ended without answering (its task was cancelled) may have been sent.
        answer
            .await
            .unwrap_or_else(|_| Err(Forward::Failed(LEADER_CHANGED.into())))
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
                Ok(p) if p.leader != batch[0].leader => {
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
    let channel = batch[0].channel.clone();
    let stamp = batch[0].stamp.clone();
    let (commands, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let sent = commands.len();
    let mut request = tonic::Request::new(ProposeBatchRequest { commands });
    if let Some(stamp) = stamp {
        request
            .metadata_mut()
            .insert(crate::auth::MEMBER_METADATA, stamp);
    }
    let answer = InternalClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
        .propose_batch(request)
        .await;
    match answer {
        Ok(response) => {
            let outcomes = response.into_inner().outcomes;
            if outcomes.len() != sent {
                let status = Status::internal(format!(
                    "the leader answered {} of {sent} forwarded writes",
                    outcomes.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(Forward::Failed(status.clone())));
                }
                return;
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(from_outcome(outcome));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(from_transport_error(&status)));
            }
        }
    }
}

fn from_outcome(outcome: ProposeOutcome) -> Result<ProposeResponse, Forward> {
    match outcome.outcome {
        Some(propose_outcome::Outcome::Applied(response)) => Ok(response),
        Some(propose_outcome::Outcome::Failed(f)) => Err(Forward::Failed(Status::new(
            Code::from_i32(f.code),
            f.message,
        ))),
        None => Err(Forward::Failed(Status::internal(
            "the leader answered a forwarded write with nothing",
        ))),
    }
}

/// A call that failed as a whole: unreached if the connection could not even be made (the
/// writes were never sent), otherwise the leader may have them and lost its leadership.
fn from_transport_error(status: &Status) -> Forward {
    match status.code() {
        Code::Unavailable if is_connect_failure(status) => Forward::Unreached,
        Code::Unavailable | Code::Unknown => Forward::Failed(LEADER_CHANGED.into()),
        _ => Forward::Failed(status.clone()),
    }
}

/// Whether a transport status means the connection could not be made at all, so the request
/// was never sent.
pub fn is_connect_failure(status: &Status) -> bool {
    let text = format!("{status:?}").to_ascii_lowercase();
    text.contains("connect") || text.contains("dns error")
}

/// The leader's side: one outcome per proposed write.
pub fn to_outcome(result: Result<ProposeResponse, Status>) -> ProposeOutcome {
    let outcome = match result {
        Ok(response) => propose_outcome::Outcome::Applied(response),
        Err(status) => propose_outcome::Outcome::Failed(Failure {
            code: status.code() as i32,
            message: status.message().to_string(),
        }),
    };
    ProposeOutcome {
        outcome: Some(outcome),
    }
}
