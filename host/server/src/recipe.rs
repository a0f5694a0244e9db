//! etcd's queue-by-creation-revision recipe, which both v3lock's Lock and v3election's
//! Campaign run on the server: a contender creates `<name>/<lease in hex>` under its lease (or
//! finds the one it made before), and holds the lock (or leads) once no key under `<name>/`
//! with a smaller create revision is left. The key's create revision is the fencing token.
//! While it waits, the contender re-checks after every applied batch (the watch hub says when);
//! if its caller gives up, it deletes its key, as etcd's client recipe does.

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op,
};
use conclave_proto::mvccpb::KeyValue;
use conclave_proto::prefix_range_end;
use conclave_store::{RequestError, UnexpectedResponse};
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use crate::auth::Caller;
use crate::error::{AuthError, BlockingError, ProposeError, STOPPED, request_status};
use crate::node::Node;
use crate::watch::WatchHub;

/// Why a contender does not hold the lock or lead.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The caller may not read and write the name's keys.
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The contender's txn was refused at apply.
    #[error(transparent)]
    Refused(RequestError),
    #[error(transparent)]
    Unexpected(#[from] UnexpectedResponse),
    #[error(transparent)]
    Store(#[from] BlockingError),
    #[error("the contender's key vanished")]
    KeyVanished,
    /// Its lease expired while it waited, taking the key: etcd's words, its recipe checks
    /// the same.
    #[error("concurrency: session is expired")]
    SessionExpired,
    /// The member is stopping.
    #[error("etcdserver: server stopped")]
    Stopped,
}

impl From<RecipeError> for Status {
    fn from(e: RecipeError) -> Self {
        match e {
            RecipeError::Auth(e) => e.into(),
            RecipeError::Propose(e) => e.into(),
            RecipeError::Refused(e) => request_status(&e),
            RecipeError::Store(e) => e.into(),
            RecipeError::SessionExpired => Status::unknown(e.to_string()),
            RecipeError::Stopped => STOPPED.into(),
            RecipeError::Unexpected(_) | RecipeError::KeyVanished => {
                Status::internal(format!("etcdserver: {e}"))
            }
        }
    }
}

/// A contender's key once it holds the lock or leads.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: Vec<u8>,
    /// The key's create revision: the fencing token.
    pub revision: i64,
    pub header: Option<ResponseHeader>,
    /// False when the key was there already (a second campaign on the same lease).
    pub created: bool,
}

/// `<name>/<lease in hex>`, etcd's key for a contender.
pub fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The first key under `prefix` by create revision, if any (the holder, or the leader).
pub fn first_by_create(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        limit: 1,
        ..Default::default()
    }
}

fn range_op(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

/// Creates the contender's key (or finds it), then waits until it is first in line.
pub async fn acquire(
    node: &Arc<Node>,
    hub: &WatchHub,
    caller: &Caller,
    name: &[u8],
    lease: i64,
    value: Vec<u8>,
) -> Result<Held, RecipeError> {
    let key = contender_key(name, lease);
    let pfx = prefix(name);
    // Subscribed before the key exists, so no deletion can slip between check and wait.
    let mut applied = hub.subscribe();
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value,
                    lease,
                    ..Default::default()
                })),
            },
            range_op(first_by_create(&pfx)),
        ],
        failure: vec![
            range_op(RangeRequest {
                key: key.clone(),
                ..Default::default()
            }),
            range_op(first_by_create(&pfx)),
        ],
    };
    // The caller needs what etcd's recipe asks of its user, the txn's own reads and writes
    // (read and write on the name's prefix), checked here and again at apply.
    caller.check_txn(&txn)?;
    let created = node.router.propose_for(caller, Request::Txn(txn)).await?;
    let revision_after = created.revision;
    let resp = TxnResponse::try_from(created.result.map_err(RecipeError::Refused)?)?;
    // Both branches answer [put or get of the key, get of the first in line].
    let range_at = |i: usize| -> &[KeyValue] {
        match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
            Some(response_op::Response::ResponseRange(range)) => &range.kvs,
            _ => &[],
        }
    };
    let revision = if resp.succeeded {
        revision_after
    } else {
        range_at(0)
            .first()
            .map(|kv| kv.create_revision)
            .ok_or(RecipeError::KeyVanished)?
    };
    let owner = range_at(1).first().map(|kv| kv.create_revision);
    let held = Held {
        key: key.clone(),
        revision,
        header: node.header(revision_after),
        created: resp.succeeded,
    };
    if owner.is_none_or(|r| r == revision) {
        return Ok(held);
    }
    // Not first: wait, deleting the key if the caller gives up (its future is dropped).
    let mut cleanup = DeleteOnDrop {
        node: node.clone(),
        key: Some(key),
    };
    loop {
        let earlier = RangeRequest {
            max_create_revision: revision - 1,
            ..first_by_create(&pfx)
        };
        let waiting = node.blocking(move |store| store.range(&earlier)).await?;
        if waiting.kvs.is_empty() {
            // Still ours? A lease that expired meanwhile took the key with it.
            let mine = node
                .blocking({
                    let key = held.key.clone();
                    move |store| {
                        store.range(&RangeRequest {
                            key,
                            ..Default::default()
                        })
                    }
                })
                .await?;
            if mine.kvs.first().map(|kv| kv.create_revision) != Some(revision) {
                cleanup.key = None;
                return Err(RecipeError::SessionExpired);
            }
            cleanup.key = None;
            let now = node.store.current_revision();
            return Ok(Held {
                header: node.header(now),
                ..held
            });
        }
        match applied.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => {
                return Err(RecipeError::Stopped);
            }
        }
    }
}

/// Deletes a contender's key unless disarmed (`key = None`).
struct DeleteOnDrop {
    node: Arc<Node>,
    key: Option<Vec<u8>>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let node = self.node.clone();
            tokio::spawn(async move {
                let del = Request::DeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                });
                if let Err(e) = node.router.propose(del).await {
                    tracing::warn!(error = %e, "could not remove an abandoned contender's key");
                }
            });
        }
    }
}
