//! The JSON gateway's request decoding (proto3 JSON through pbjson): whatever the body, an
//! error or a message, never a panic. The first byte picks the request type.
#![no_main]

use conclave_proto::etcdserverpb::{
    AuthenticateRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    TxnRequest, WatchRequest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => drop(serde_json::from_slice::<RangeRequest>(body)),
        1 => drop(serde_json::from_slice::<PutRequest>(body)),
        2 => drop(serde_json::from_slice::<DeleteRangeRequest>(body)),
        3 => drop(serde_json::from_slice::<TxnRequest>(body)),
        4 => drop(serde_json::from_slice::<WatchRequest>(body)),
        5 => drop(serde_json::from_slice::<LeaseGrantRequest>(body)),
        _ => drop(serde_json::from_slice::<AuthenticateRequest>(body)),
    }
});
