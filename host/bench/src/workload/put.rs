//! `put`: one Put per request, a fresh random value each time; also the preload of the other loads.

use conclave_proto::etcdserverpb::PutRequest;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use super::{Op, Workload, op_from};
use crate::keys::{KeySpace, Rng};

pub struct Put {
    keys: KeySpace,
    val_size: usize,
}

impl Put {
    pub fn new(keys: KeySpace, val_size: usize) -> Self {
        Self { keys, val_size }
    }
}

impl Workload for Put {
    fn kinds(&self) -> &'static [&'static str] {
        &["put"]
    }

    async fn op(&self, kv: &mut KvClient<Channel>, rng: &mut Rng, seq: u64) -> Op {
        let key = self.keys.key(self.keys.pick(seq, rng));
        let value = rng.bytes(self.val_size);
        let request = PutRequest {
            key,
            value,
            ..Default::default()
        };
        op_from(0, kv.put(request).await)
    }
}
