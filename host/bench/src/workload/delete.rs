//! `delete`: one DeleteRange of a single key per request.

use conclave_proto::etcdserverpb::DeleteRangeRequest;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use super::{Op, Workload, op_from};
use crate::keys::{KeySpace, Rng};

pub struct Delete {
    keys: KeySpace,
}

impl Delete {
    pub fn new(keys: KeySpace) -> Self {
        Self { keys }
    }
}

impl Workload for Delete {
    fn kinds(&self) -> &'static [&'static str] {
        &["delete"]
    }

    async fn op(&self, kv: &mut KvClient<Channel>, rng: &mut Rng, seq: u64) -> Op {
        let request = DeleteRangeRequest {
            key: self.keys.key(self.keys.pick(seq, rng)),
            ..Default::default()
        };
        op_from(0, kv.delete_range(request).await)
    }
}
