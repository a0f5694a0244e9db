//! `mixed`: single-key ranges and puts over one key space, each request a read with
//! probability --read-ratio; reads and writes are reported apart.

use conclave_proto::etcdserverpb::PutRequest;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use super::{Op, Workload, status_message};
use crate::args::Consistency;
use crate::keys::{KeySpace, Rng};

const RANGE: usize = 0;
const PUT: usize = 1;

pub struct Mixed {
    keys: KeySpace,
    val_size: usize,
    read_ratio: f64,
    serializable: bool,
    preloaded: u64,
}

impl Mixed {
    pub fn new(
        keys: KeySpace,
        val_size: usize,
        read_ratio: f64,
        consistency: Consistency,
        preloaded: u64,
    ) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&read_ratio) {
            anyhow::bail!("--read-ratio must be between 0 and 1");
        }
        Ok(Self {
            keys,
            val_size,
            read_ratio,
            serializable: consistency == Consistency::Serializable,
            preloaded,
        })
    }
}

impl Workload for Mixed {
    fn kinds(&self) -> &'static [&'static str] {
        &["range", "put"]
    }

    async fn op(&self, kv: &mut KvClient<Channel>, rng: &mut Rng, seq: u64) -> Op {
        let read = rng.unit() < self.read_ratio;
        let index = self.keys.pick(seq, rng);
        let key = self.keys.key(index);
        if read {
            // Puts may have overwritten a key, never removed one: preloaded keys must be found.
            let result =
                super::range::get(kv, key, self.serializable, index < self.preloaded).await;
            Op {
                kind: RANGE,
                result,
            }
        } else {
            let request = PutRequest {
                key,
                value: rng.bytes(self.val_size),
                ..Default::default()
            };
            let result = kv
                .put(request)
                .await
                .map(|_| ())
                .map_err(|s| status_message(&s));
            Op { kind: PUT, result }
        }
    }
}
