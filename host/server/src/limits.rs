//! What one request may carry and how long it may take: etcd's request limits and timeout,
//! and the bytes one batch of writes holds, shared by every part that bounds a request.

use std::time::Duration;

/// etcd's default --max-txn-ops.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's --max-request-bytes default: the largest write proposal.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// What one client request may carry (etcd's flags of the same names).
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// --max-request-bytes: the largest write proposal, and the watch fragment size.
    pub max_request_bytes: usize,
    /// --max-txn-ops: the operations one txn may run (see `validate::txn`).
    pub max_txn_ops: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: MAX_REQUEST_BYTES,
            max_txn_ops: MAX_TXN_OPS,
        }
    }
}

impl RequestLimits {
    /// gRPC's receive limit, as etcd sets it: the request limit plus room for framing, so that
    /// a request a little over the limit gets etcd's "request is too large" rather than a
    /// transport error.
    pub fn grpc_message_bytes(&self) -> usize {
        self.max_request_bytes.saturating_add(512 * 1024)
    }
}

/// How long a request may wait for a leader, a forward or an apply: etcd's request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest component a plugin deploy accepts (a Raft entry carries it, once).
pub const MAX_PLUGIN_BYTES: usize = 8 * 1024 * 1024;

/// The bytes one batch of writes holds, a follower's forwarded batch and the leader's log
/// append alike; a batch stops growing past it (one write may take it beyond).
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
