//! The reads a plugin may make, answered from this member's store at a revision.

use std::sync::Arc;

use conclave_plugin::{KeyValue, Reads};
use conclave_proto::etcdserverpb::RangeRequest;
use conclave_proto::mvccpb;
use conclave_store::Store;

pub struct StoreReads(pub Arc<Store>);

pub(super) fn to_plugin(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

impl Reads for StoreReads {
    fn get(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, String> {
        Ok(self.range(key, &[], revision, 1)?.into_iter().next())
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        revision: i64,
        limit: u32,
    ) -> Result<Vec<KeyValue>, String> {
        let resp = self
            .0
            .range(&RangeRequest {
                key: start.to_vec(),
                range_end: end.to_vec(),
                revision,
                limit: i64::from(limit),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        Ok(resp.kvs.into_iter().map(to_plugin).collect())
    }
}
