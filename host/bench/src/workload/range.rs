//! `range`: one Range per request, of a single key or of every key under the prefix,
//! linearizable or serializable, checking that preloaded keys are found (a prefix range must
//! return every one of them, up to --limit).

use conclave_proto::etcdserverpb::RangeRequest;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use tonic::transport::Channel;

use super::{Op, Workload, status_message};
use crate::args::Consistency;
use crate::keys::{KeySpace, Rng};

pub struct Range {
    keys: KeySpace,
    serializable: bool,
    limit: i64,
    /// `(key, range_end)` when ranging over the prefix, None for single keys.
    prefix: Option<(Vec<u8>, Vec<u8>)>,
    /// Keys `0..preloaded` exist, so a range that misses them has gone wrong.
    preloaded: u64,
}

impl Range {
    pub fn new(
        keys: KeySpace,
        consistency: Consistency,
        limit: i64,
        prefix: bool,
        preloaded: u64,
    ) -> anyhow::Result<Self> {
        if limit < 0 {
            anyhow::bail!("--limit must be >= 0 (0 means no limit)");
        }
        let prefix = prefix.then(|| keys.prefix_range());
        Ok(Self {
            keys,
            serializable: consistency == Consistency::Serializable,
            limit,
            prefix,
            preloaded,
        })
    }
}

/// One single-key range, shared with the `mixed` load.
pub async fn get(
    kv: &mut KvClient<Channel>,
    key: Vec<u8>,
    serializable: bool,
    must_exist: bool,
) -> Result<(), String> {
    let request = RangeRequest {
        key,
        serializable,
        ..Default::default()
    };
    let response = kv.range(request).await.map_err(|s| status_message(&s))?;
    if must_exist && response.get_ref().kvs.is_empty() {
        return Err("range found no value for a preloaded key".into());
    }
    Ok(())
}

impl Workload for Range {
    fn kinds(&self) -> &'static [&'static str] {
        &["range"]
    }

    async fn op(&self, kv: &mut KvClient<Channel>, rng: &mut Rng, seq: u64) -> Op {
        let result = match &self.prefix {
            None => {
                let index = self.keys.pick(seq, rng);
                let key = self.keys.key(index);
                get(kv, key, self.serializable, index < self.preloaded).await
            }
            Some((key, range_end)) => {
                let request = RangeRequest {
                    key: key.clone(),
                    range_end: range_end.clone(),
                    limit: self.limit,
                    serializable: self.serializable,
                    ..Default::default()
                };
                let expected = match self.limit {
                    0 => self.preloaded,
                    limit => self.preloaded.min(limit as u64),
                };
                match kv.range(request).await {
                    Err(s) => Err(status_message(&s)),
                    Ok(r) if (r.get_ref().kvs.len() as u64) < expected => Err(format!(
                        "prefix range returned {} keys, expected at least {expected}",
                        r.get_ref().kvs.len()
                    )),
                    Ok(_) => Ok(()),
                }
            }
        };
        Op { kind: 0, result }
    }
}
