//! The Raft codec decoding what a peer (or a damaged disk) hands it: every message kind a
//! member decodes must refuse bad bytes with an error, never a panic.
#![no_main]

use conclave_raft::codec::{self, SnapshotHeader};
use conclave_raft::types::{Entry, TypeConfig};
use libfuzzer_sys::fuzz_target;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, StreamAppendResult, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 8 {
        0 => drop(codec::decode::<AppendEntriesRequest<TypeConfig>>(bytes)),
        1 => drop(codec::decode::<AppendEntriesResponse<TypeConfig>>(bytes)),
        2 => drop(codec::decode::<VoteRequest<TypeConfig>>(bytes)),
        3 => drop(codec::decode::<VoteResponse<TypeConfig>>(bytes)),
        4 => drop(codec::decode::<SnapshotHeader>(bytes)),
        5 => drop(codec::decode::<StreamAppendResult<TypeConfig>>(bytes)),
        6 => drop(codec::decode::<TransferLeaderRequest<TypeConfig>>(bytes)),
        _ => drop(codec::decode::<Entry>(bytes)),
    }
});
