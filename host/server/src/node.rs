//! A single member without Raft: it owns the store and a writer thread that applies proposals
//! in arrival order. Proposals that arrive while a batch is being written wait and go in the
//! next batch together, so many clients share one fsync (group commit). The cluster issue
//! replaces this writer with the Raft log; the services see the same `propose`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use conclave_proto::conclavepb::{Command, command::Request};
use conclave_proto::etcdserverpb::ResponseHeader;
use conclave_store::{Applied, Durability, Entry, Store, StoreError};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use crate::error::{REQUEST_TOO_LARGE, STOPPED, store_status};

/// etcd's --max-request-bytes default: the largest write proposal.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Proposals written in one batch at most.
const MAX_BATCH: usize = 1024;
/// The term a lone member reports: it is leader of its own first term.
const SINGLE_NODE_TERM: u64 = 1;

/// Who this member is.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

type Reply = oneshot::Sender<Result<Applied, tonic::Status>>;

pub struct Node {
    pub store: Arc<Store>,
    pub identity: Identity,
    proposals: mpsc::Sender<(Command, Reply)>,
    stopped: Arc<AtomicBool>,
}

impl Node {
    /// Starts the writer thread over an opened store.
    pub fn start(store: Arc<Store>, identity: Identity) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let stopped = Arc::new(AtomicBool::new(false));
        let writer_store = store.clone();
        let writer_stopped = stopped.clone();
        std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || write_loop(&writer_store, rx, &writer_stopped))
            .map_err(|e| error!(error = %e, "cannot start the applier thread"))
            .ok();
        Arc::new(Self {
            store,
            identity,
            proposals: tx,
            stopped,
        })
    }

    /// Proposes a write and waits until it is applied and durable.
    pub async fn propose(&self, request: Request) -> Result<Applied, tonic::Status> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(STOPPED.into());
        }
        let command = Command {
            request: Some(request),
        };
        if command.encoded_len() > MAX_REQUEST_BYTES {
            return Err(REQUEST_TOO_LARGE.into());
        }
        let (reply, answer) = oneshot::channel();
        self.proposals
            .send((command, reply))
            .await
            .map_err(|_| tonic::Status::from(STOPPED))?;
        answer.await.map_err(|_| tonic::Status::from(STOPPED))?
    }

    /// Runs blocking store work (reads, waits) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, tonic::Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| tonic::Status::internal(format!("etcdserver: {e}")))?
            .map_err(store_status)
    }

    pub fn term(&self) -> u64 {
        SINGLE_NODE_TERM
    }

    /// A response header for the given store revision.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: self.identity.member_id,
            revision,
            raft_term: self.term(),
        })
    }

    /// Stops taking proposals; those already queued are still written.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

fn write_loop(store: &Store, mut rx: mpsc::Receiver<(Command, Reply)>, stopped: &AtomicBool) {
    let mut next_index = store.status().applied_index + 1;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (command, reply) in batch {
            entries.push(Entry {
                index: next_index,
                term: SINGLE_NODE_TERM,
                command: Some(command),
            });
            next_index += 1;
            replies.push(reply);
        }
        match store.apply(&entries, Durability::Sync) {
            Ok(applied) => {
                for (outcome, reply) in applied.into_iter().zip(replies) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                error!(error = %e, "writing to the store failed; this member stops taking writes");
                stopped.store(true, Ordering::Relaxed);
                for reply in replies {
                    let _ = reply.send(Err(store_status(StoreError::Corrupt(e.to_string()))));
                }
                break;
            }
        }
    }
    info!("applier stopped");
}
