//! `txn-put`: one Txn per request with no compares and --txn-ops puts on consecutive keys in
//! its success branch.

use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use tonic::transport::Channel;

use super::{Op, Workload, op_from};
use crate::keys::{KeySpace, Rng};

pub struct TxnPut {
    keys: KeySpace,
    val_size: usize,
    ops: u64,
}

impl TxnPut {
    pub fn new(keys: KeySpace, val_size: usize, ops: usize) -> anyhow::Result<Self> {
        let ops = ops as u64;
        if ops == 0 {
            anyhow::bail!("--txn-ops must be at least 1");
        }
        // A txn may not name a key twice ("duplicate key given in txn request").
        if ops > keys.size() {
            anyhow::bail!(
                "--txn-ops {ops} is more than --key-space-size {}: keys in a txn must differ",
                keys.size()
            );
        }
        Ok(Self {
            keys,
            val_size,
            ops,
        })
    }
}

impl Workload for TxnPut {
    fn kinds(&self) -> &'static [&'static str] {
        &["txn-put"]
    }

    async fn op(&self, kv: &mut KvClient<Channel>, rng: &mut Rng, seq: u64) -> Op {
        // Sequential keys: request n puts keys n*ops .. n*ops+ops-1 (mod the key space).
        let size = self.keys.size();
        let first = self.keys.pick(seq.wrapping_mul(self.ops), rng);
        let success = (0..self.ops)
            .map(|j| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: self.keys.key((first + j) % size),
                    value: rng.bytes(self.val_size),
                    ..Default::default()
                })),
            })
            .collect();
        let request = TxnRequest {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        };
        op_from(0, kv.txn(request).await)
    }
}
