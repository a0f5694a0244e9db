//! What plugins return, as the store's operations: for a rule, a closed window's outputs as one
//! Raft proposal with the rule's new flush mark, all or nothing; for a hook, a transaction.

use std::collections::BTreeMap;

use conclave_plugin::Output;
use conclave_proto::conclavepb::PluginFlush;
use conclave_proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RequestOp, request_op,
};

use super::error::RunError;

/// The flush mark a flush follows and sets.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub previous_end_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub replay_from: i64,
}

/// A plugin's outputs as store operations: the puts and deletes in order, and the leases their
/// TTLs need (one per distinct TTL, IDs from `new_lease_id`), to be granted first. Refuses
/// outputs the store would refuse anyway, so that the reason names the plugin.
pub fn output_ops(
    outputs: Vec<Output>,
    mut new_lease_id: impl FnMut() -> i64,
) -> Result<(Vec<LeaseGrantRequest>, Vec<RequestOp>), RunError> {
    let mut leases: BTreeMap<u32, i64> = BTreeMap::new();
    let mut ops = Vec::with_capacity(outputs.len());
    for output in outputs {
        let request = match output {
            Output::Put(put) => {
                if put.key.is_empty() {
                    return Err(RunError::BadOutput("an output put has an empty key"));
                }
                let lease = match put.ttl_seconds {
                    Some(0) => {
                        return Err(RunError::BadOutput("an output asks for a TTL of 0 seconds"));
                    }
                    Some(ttl) => *leases.entry(ttl).or_insert_with(&mut new_lease_id),
                    None => 0,
                };
                request_op::Request::RequestPut(PutRequest {
                    key: put.key,
                    value: put.value,
                    lease,
                    ..Default::default()
                })
            }
            Output::Delete(key) => {
                if key.is_empty() {
                    return Err(RunError::BadOutput("an output delete has an empty key"));
                }
                request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
            }
        };
        ops.push(RequestOp {
            request: Some(request),
        });
    }
    let leases = leases
        .into_iter()
        .map(|(ttl, id)| LeaseGrantRequest {
            ttl: i64::from(ttl),
            id,
        })
        .collect();
    Ok((leases, ops))
}

/// The proposal for a closed window's `outputs`: its operations and the rule's new mark.
pub fn flush_proposal(
    name: &str,
    version: u64,
    window: Window,
    outputs: Vec<Output>,
    new_lease_id: impl FnMut() -> i64,
) -> Result<PluginFlush, RunError> {
    let (leases, ops) = output_ops(outputs, new_lease_id)?;
    Ok(PluginFlush {
        name: name.to_string(),
        version,
        previous_end_ms: window.previous_end_ms,
        start_ms: window.start_ms,
        end_ms: window.end_ms,
        replay_from: window.replay_from,
        leases,
        ops,
    })
}
