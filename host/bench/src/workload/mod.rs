//! The loads. Each file builds one kind of request from a request number and the client's
//! random generator; `Workload` is all the runner needs to drive any of them.

pub mod delete;
pub mod mixed;
pub mod put;
pub mod range;
pub mod txn_put;

use std::future::Future;

use conclave_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use crate::keys::Rng;

/// The outcome of one request: which kind it was (an index into `Workload::kinds`) and
/// whether it succeeded, with the error message if not.
pub struct Op {
    pub kind: usize,
    pub result: Result<(), String>,
}

pub trait Workload: Send + Sync + 'static {
    /// Names of the kinds of request this load sends (most send one kind).
    fn kinds(&self) -> &'static [&'static str];

    /// Sends request number `seq` and waits for its response.
    fn op(
        &self,
        kv: &mut KvClient<Channel>,
        rng: &mut Rng,
        seq: u64,
    ) -> impl Future<Output = Op> + Send;
}

/// How a failed request is counted: gRPC code and server message, e.g.
/// `ResourceExhausted: etcdserver: mvcc: database space exceeded`.
pub fn status_message(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// `Op` for a single-kind load's gRPC result.
pub fn op_from<T>(kind: usize, result: Result<T, tonic::Status>) -> Op {
    Op {
        kind,
        result: result.map(|_| ()).map_err(|s| status_message(&s)),
    }
}
