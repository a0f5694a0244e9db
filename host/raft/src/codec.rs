//! The binary encoding of openraft's types, for the log on disk and the messages between
//! members: each type converts to and from a protobuf message of `proto/conclave/raft.proto`,
//! so neither the disk nor the wire depends on openraft's in-memory layouts (which change
//! between its versions) or on serde.
//!
//! One trait, [`Wire`], for every type; [`encode`] and [`decode`] for bytes. Decoding
//! never panics: bad bytes or a message missing a required part give a [`CodecError`].

use std::collections::{BTreeMap, BTreeSet};

use conclave_proto::conclavepb as pb;
use openraft::entry::EntryPayload;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError,
    StreamAppendResult, TransferLeaderError, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use prost::Message;

use crate::types::{Entry, LogId, Member, Membership, StoredMembership, TypeConfig, Vote};

/// What a snapshot covers: its last log id and the membership at that point.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// Why bytes did not decode into an openraft type.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A field the openraft type cannot do without (a vote's leader, an entry's log id, ...).
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A membership whose voters are not all in its node map.
    #[error("invalid membership: {0}")]
    Membership(String),
}

/// A type with a stable protobuf form.
pub trait Wire: Sized {
    type Proto: Message + Default;

    fn to_proto(&self) -> Self::Proto;

    /// Like [`Wire::to_proto`], without copying what `self` owns (entry payloads).
    fn into_proto(self) -> Self::Proto {
        self.to_proto()
    }

    fn from_proto(proto: Self::Proto) -> Result<Self, CodecError>;
}

/// `value` as protobuf bytes.
pub fn encode<T: Wire>(value: &T) -> Vec<u8> {
    value.to_proto().encode_to_vec()
}

/// `value` as protobuf bytes, consuming it to avoid copying payloads.
pub fn encode_owned<T: Wire>(value: T) -> Vec<u8> {
    value.into_proto().encode_to_vec()
}

/// A `T` from bytes written by [`encode`] (or by a newer version that only added fields).
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, CodecError> {
    T::from_proto(T::Proto::decode(bytes)?)
}

fn required<T>(field: Option<T>, name: &'static str) -> Result<T, CodecError> {
    field.ok_or(CodecError::Missing(name))
}

fn opt_from<T: Wire>(proto: Option<T::Proto>) -> Result<Option<T>, CodecError> {
    proto.map(T::from_proto).transpose()
}

fn req_from<T: Wire>(proto: Option<T::Proto>, name: &'static str) -> Result<T, CodecError> {
    T::from_proto(required(proto, name)?)
}

impl Wire for LogId {
    type Proto = pb::LogId;

    fn to_proto(&self) -> pb::LogId {
        pb::LogId {
            term: self.leader_id.term,
            node_id: self.leader_id.node_id,
            index: self.index,
        }
    }

    fn from_proto(p: pb::LogId) -> Result<Self, CodecError> {
        Ok(LogId::new(
            LeaderId {
                term: p.term,
                node_id: p.node_id,
            },
            p.index,
        ))
    }
}

impl Wire for Vote {
    type Proto = pb::Vote;

    fn to_proto(&self) -> pb::Vote {
        pb::Vote {
            term: self.leader_id.term,
            node_id: self.leader_id.node_id,
            committed: self.committed,
        }
    }

    fn from_proto(p: pb::Vote) -> Result<Self, CodecError> {
        Ok(Vote {
            leader_id: LeaderId {
                term: p.term,
                node_id: p.node_id,
            },
            committed: p.committed,
        })
    }
}

impl Wire for Member {
    type Proto = pb::RaftMember;

    fn to_proto(&self) -> pb::RaftMember {
        self.clone().into_proto()
    }

    fn into_proto(self) -> pb::RaftMember {
        pb::RaftMember {
            name: self.name,
            peer_urls: self.peer_urls,
            client_urls: self.client_urls,
        }
    }

    fn from_proto(p: pb::RaftMember) -> Result<Self, CodecError> {
        Ok(Member {
            name: p.name,
            peer_urls: p.peer_urls,
            client_urls: p.client_urls,
        })
    }
}

impl Wire for Membership {
    type Proto = pb::Membership;

    fn to_proto(&self) -> pb::Membership {
        pb::Membership {
            configs: self
                .get_joint_config()
                .iter()
                .map(|voters| pb::VoterSet {
                    ids: voters.iter().copied().collect(),
                })
                .collect(),
            nodes: self
                .nodes()
                .map(|(id, node)| (*id, node.to_proto()))
                .collect(),
        }
    }

    fn from_proto(p: pb::Membership) -> Result<Self, CodecError> {
        let configs: Vec<BTreeSet<u64>> = p
            .configs
            .into_iter()
            .map(|set| set.ids.into_iter().collect())
            .collect();
        let nodes = p
            .nodes
            .into_iter()
            .map(|(id, node)| Ok((id, Member::from_proto(node)?)))
            .collect::<Result<BTreeMap<u64, Member>, CodecError>>()?;
        // `new` checks that every voter has a node; an empty config list is openraft's own
        // "no membership yet" value and passes.
        Membership::new(configs, nodes).map_err(|e| CodecError::Membership(e.to_string()))
    }
}

impl Wire for StoredMembership {
    type Proto = pb::StoredMembership;

    fn to_proto(&self) -> pb::StoredMembership {
        pb::StoredMembership {
            log_id: self.log_id().as_ref().map(Wire::to_proto),
            membership: Some(self.membership().to_proto()),
        }
    }

    fn from_proto(p: pb::StoredMembership) -> Result<Self, CodecError> {
        Ok(StoredMembership::new(
            opt_from::<LogId>(p.log_id)?,
            req_from(p.membership, "StoredMembership.membership")?,
        ))
    }
}

/// What the state machine has applied, as it keeps it beside the store's own state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftState {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

impl Wire for RaftState {
    type Proto = pb::RaftState;

    fn to_proto(&self) -> pb::RaftState {
        pb::RaftState {
            applied: self.applied.as_ref().map(Wire::to_proto),
            membership: Some(self.membership.to_proto()),
        }
    }

    fn from_proto(p: pb::RaftState) -> Result<Self, CodecError> {
        Ok(RaftState {
            applied: opt_from::<LogId>(p.applied)?,
            membership: req_from(p.membership, "RaftState.membership")?,
        })
    }
}

impl Wire for Entry {
    type Proto = pb::LogEntry;

    fn to_proto(&self) -> pb::LogEntry {
        use pb::log_entry::Payload;
        pb::LogEntry {
            log_id: Some(self.log_id.to_proto()),
            payload: Some(match &self.payload {
                EntryPayload::Blank => Payload::Blank(pb::Blank {}),
                EntryPayload::Normal(command) => Payload::Normal(command.clone()),
                EntryPayload::Membership(m) => Payload::Membership(m.to_proto()),
            }),
        }
    }

    fn into_proto(self) -> pb::LogEntry {
        use pb::log_entry::Payload;
        pb::LogEntry {
            log_id: Some(self.log_id.to_proto()),
            payload: Some(match self.payload {
                EntryPayload::Blank => Payload::Blank(pb::Blank {}),
                EntryPayload::Normal(command) => Payload::Normal(command),
                EntryPayload::Membership(m) => Payload::Membership(m.to_proto()),
            }),
        }
    }

    fn from_proto(p: pb::LogEntry) -> Result<Self, CodecError> {
        use pb::log_entry::Payload;
        let payload = match required(p.payload, "LogEntry.payload")? {
            Payload::Blank(_) => EntryPayload::Blank,
            Payload::Normal(command) => EntryPayload::Normal(command),
            Payload::Membership(m) => EntryPayload::Membership(Membership::from_proto(m)?),
        };
        Ok(Entry {
            log_id: req_from(p.log_id, "LogEntry.log_id")?,
            payload,
        })
    }
}

impl Wire for AppendEntriesRequest<TypeConfig> {
    type Proto = pb::AppendEntriesRequest;

    fn to_proto(&self) -> pb::AppendEntriesRequest {
        pb::AppendEntriesRequest {
            vote: Some(self.vote.to_proto()),
            prev_log_id: self.prev_log_id.as_ref().map(Wire::to_proto),
            entries: self.entries.iter().map(Wire::to_proto).collect(),
            leader_commit: self.leader_commit.as_ref().map(Wire::to_proto),
        }
    }

    fn into_proto(self) -> pb::AppendEntriesRequest {
        pb::AppendEntriesRequest {
            vote: Some(self.vote.to_proto()),
            prev_log_id: self.prev_log_id.as_ref().map(Wire::to_proto),
            entries: self.entries.into_iter().map(Wire::into_proto).collect(),
            leader_commit: self.leader_commit.as_ref().map(Wire::to_proto),
        }
    }

    fn from_proto(p: pb::AppendEntriesRequest) -> Result<Self, CodecError> {
        Ok(AppendEntriesRequest {
            vote: req_from(p.vote, "AppendEntriesRequest.vote")?,
            prev_log_id: opt_from::<LogId>(p.prev_log_id)?,
            entries: p
                .entries
                .into_iter()
                .map(Entry::from_proto)
                .collect::<Result<_, _>>()?,
            leader_commit: opt_from::<LogId>(p.leader_commit)?,
        })
    }
}

impl Wire for AppendEntriesResponse<TypeConfig> {
    type Proto = pb::AppendEntriesResponse;

    fn to_proto(&self) -> pb::AppendEntriesResponse {
        use pb::append_entries_response::Result as R;
        let result = match self {
            AppendEntriesResponse::Success => R::Success(pb::Blank {}),
            AppendEntriesResponse::PartialSuccess(log_id) => {
                R::PartialSuccess(pb::PartialSuccess {
                    log_id: log_id.as_ref().map(Wire::to_proto),
                })
            }
            AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
            AppendEntriesResponse::HigherVote(vote) => R::HigherVote(vote.to_proto()),
        };
        pb::AppendEntriesResponse {
            result: Some(result),
        }
    }

    fn from_proto(p: pb::AppendEntriesResponse) -> Result<Self, CodecError> {
        use pb::append_entries_response::Result as R;
        Ok(match required(p.result, "AppendEntriesResponse.result")? {
            R::Success(_) => AppendEntriesResponse::Success,
            R::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(opt_from::<LogId>(p.log_id)?)
            }
            R::Conflict(_) => AppendEntriesResponse::Conflict,
            R::HigherVote(v) => AppendEntriesResponse::HigherVote(Vote::from_proto(v)?),
        })
    }
}

impl Wire for StreamAppendResult<TypeConfig> {
    type Proto = pb::StreamAppendResult;

    fn to_proto(&self) -> pb::StreamAppendResult {
        use pb::stream_append_result::Result as R;
        let result = match self {
            Ok(log_id) => R::Ok(pb::PartialSuccess {
                log_id: log_id.as_ref().map(Wire::to_proto),
            }),
            Err(StreamAppendError::Conflict(log_id)) => R::Conflict(log_id.to_proto()),
            Err(StreamAppendError::HigherVote(vote)) => R::HigherVote(vote.to_proto()),
        };
        pb::StreamAppendResult {
            result: Some(result),
        }
    }

    fn from_proto(p: pb::StreamAppendResult) -> Result<Self, CodecError> {
        use pb::stream_append_result::Result as R;
        Ok(match required(p.result, "StreamAppendResult.result")? {
            R::Ok(p) => Ok(opt_from::<LogId>(p.log_id)?),
            R::Conflict(log_id) => Err(StreamAppendError::Conflict(LogId::from_proto(log_id)?)),
            R::HigherVote(v) => Err(StreamAppendError::HigherVote(Vote::from_proto(v)?)),
        })
    }
}

impl Wire for VoteRequest<TypeConfig> {
    type Proto = pb::VoteRequest;

    fn to_proto(&self) -> pb::VoteRequest {
        pb::VoteRequest {
            vote: Some(self.vote.to_proto()),
            last_log_id: self.last_log_id.as_ref().map(Wire::to_proto),
            leadership_transfer: self.leadership_transfer,
        }
    }

    fn from_proto(p: pb::VoteRequest) -> Result<Self, CodecError> {
        Ok(VoteRequest {
            vote: req_from(p.vote, "VoteRequest.vote")?,
            last_log_id: opt_from::<LogId>(p.last_log_id)?,
            leadership_transfer: p.leadership_transfer,
        })
    }
}

impl Wire for VoteResponse<TypeConfig> {
    type Proto = pb::VoteResponse;

    fn to_proto(&self) -> pb::VoteResponse {
        pb::VoteResponse {
            vote: Some(self.vote.to_proto()),
            vote_granted: self.vote_granted,
            last_log_id: self.last_log_id.as_ref().map(Wire::to_proto),
        }
    }

    fn from_proto(p: pb::VoteResponse) -> Result<Self, CodecError> {
        Ok(VoteResponse {
            vote: req_from(p.vote, "VoteResponse.vote")?,
            vote_granted: p.vote_granted,
            last_log_id: opt_from::<LogId>(p.last_log_id)?,
        })
    }
}

impl Wire for SnapshotMeta {
    type Proto = pb::SnapshotMeta;

    fn to_proto(&self) -> pb::SnapshotMeta {
        pb::SnapshotMeta {
            last_log_id: self.last_log_id.as_ref().map(Wire::to_proto),
            last_membership: Some(self.last_membership.to_proto()),
        }
    }

    fn from_proto(p: pb::SnapshotMeta) -> Result<Self, CodecError> {
        Ok(SnapshotMeta {
            last_log_id: opt_from::<LogId>(p.last_log_id)?,
            last_membership: req_from(p.last_membership, "SnapshotMeta.last_membership")?,
        })
    }
}

/// What precedes a full snapshot's data on the wire: the arguments of
/// `Raft::install_full_snapshot` other than the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub vote: Vote,
    pub meta: SnapshotMeta,
}

impl Wire for SnapshotHeader {
    type Proto = pb::SnapshotHeader;

    fn to_proto(&self) -> pb::SnapshotHeader {
        pb::SnapshotHeader {
            vote: Some(self.vote.to_proto()),
            meta: Some(self.meta.to_proto()),
        }
    }

    fn from_proto(p: pb::SnapshotHeader) -> Result<Self, CodecError> {
        Ok(SnapshotHeader {
            vote: req_from(p.vote, "SnapshotHeader.vote")?,
            meta: req_from(p.meta, "SnapshotHeader.meta")?,
        })
    }
}

impl Wire for SnapshotResponse<TypeConfig> {
    type Proto = pb::SnapshotResponse;

    fn to_proto(&self) -> pb::SnapshotResponse {
        pb::SnapshotResponse {
            vote: Some(self.vote.to_proto()),
        }
    }

    fn from_proto(p: pb::SnapshotResponse) -> Result<Self, CodecError> {
        Ok(SnapshotResponse::new(req_from(
            p.vote,
            "SnapshotResponse.vote",
        )?))
    }
}

impl Wire for TransferLeaderRequest<TypeConfig> {
    type Proto = pb::TransferLeaderRequest;

    fn to_proto(&self) -> pb::TransferLeaderRequest {
        pb::TransferLeaderRequest {
            from_leader: Some(self.from_leader().to_proto()),
            to_node_id: *self.to_node_id(),
            last_log_id: self.last_log_id().map(Wire::to_proto),
        }
    }

    fn from_proto(p: pb::TransferLeaderRequest) -> Result<Self, CodecError> {
        Ok(TransferLeaderRequest::new(
            req_from(p.from_leader, "TransferLeaderRequest.from_leader")?,
            p.to_node_id,
            opt_from::<LogId>(p.last_log_id)?,
        ))
    }
}

impl Wire for TransferLeaderResponse<TypeConfig> {
    type Proto = pb::TransferLeaderResponse;

    fn to_proto(&self) -> pb::TransferLeaderResponse {
        use pb::transfer_leader_response::{LogNotFlushed, Result as R, VoteChanged};
        let result = match self {
            Ok(()) => R::Ok(pb::Blank {}),
            Err(TransferLeaderError::VoteChanged { expected, actual }) => {
                R::VoteChanged(VoteChanged {
                    expected: Some(expected.to_proto()),
                    actual: Some(actual.to_proto()),
                })
            }
            Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
                R::LogNotFlushed(LogNotFlushed {
                    expected: expected.as_ref().map(Wire::to_proto),
                    actual: actual.as_ref().map(Wire::to_proto),
                })
            }
        };
        pb::TransferLeaderResponse {
            result: Some(result),
        }
    }

    fn from_proto(p: pb::TransferLeaderResponse) -> Result<Self, CodecError> {
        use pb::transfer_leader_response::Result as R;
        Ok(match required(p.result, "TransferLeaderResponse.result")? {
            R::Ok(_) => Ok(()),
            R::VoteChanged(v) => Err(TransferLeaderError::VoteChanged {
                expected: req_from(v.expected, "VoteChanged.expected")?,
                actual: req_from(v.actual, "VoteChanged.actual")?,
            }),
            R::LogNotFlushed(l) => Err(TransferLeaderError::LogNotFlushed {
                expected: opt_from::<LogId>(l.expected)?,
                actual: opt_from::<LogId>(l.actual)?,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use conclave_proto::conclavepb::Command;
    use conclave_proto::conclavepb::command::Request;
    use conclave_proto::etcdserverpb::PutRequest;

    use super::*;

    fn round_trip<T: Wire + PartialEq + Debug>(value: T) {
        let bytes = encode(&value);
        let back: T = decode(&bytes).unwrap();
        assert_eq!(back, value);
    }

    fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id }, index)
    }

    fn member(name: &str) -> Member {
        Member {
            name: name.to_string(),
            peer_urls: vec![
                format!("https://{name}:2380"),
                format!("https://{name}:2381"),
            ],
            client_urls: vec![format!("http://{name}:2379")],
        }
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn nodes(ids: &[u64]) -> BTreeMap<u64, Member> {
        ids.iter()
            .map(|id| (*id, member(&format!("n{id}"))))
            .collect()
    }

    /// {1,2,3} -> {3,4,5} mid-change, with 6 and 7 as learners.
    fn joint_with_learners() -> Membership {
        Membership::new(
            vec![set(&[1, 2, 3]), set(&[3, 4, 5])],
            nodes(&[1, 2, 3, 4, 5, 6, 7]),
        )
        .unwrap()
    }

    fn put(key: &str) -> Command {
        Command {
            request: Some(Request::Put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: b"value".to_vec(),
                lease: 7,
                prev_kv: true,
                ignore_value: false,
                ignore_lease: false,
            })),
            stamp_ms: 1_700_000_000_123,
            checked_for: None,
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(1, 1, 2),
                payload: EntryPayload::Normal(put("a")),
            },
            Entry {
                log_id: log_id(2, 3, 3),
                payload: EntryPayload::Membership(joint_with_learners()),
            },
        ]
    }

    #[test]
    fn log_ids_and_votes() {
        round_trip(log_id(0, 0, 0));
        round_trip(log_id(u64::MAX, u64::MAX, u64::MAX));
        round_trip(Vote::new(3, 2));
        round_trip(Vote::new_committed(9, 1));
        round_trip(Vote::new(0, 0));
    }

    #[test]
    fn memberships() {
        round_trip(Membership::default());
        round_trip(Membership::new(vec![set(&[1])], nodes(&[1])).unwrap());
        round_trip(joint_with_learners());
        round_trip(StoredMembership::default());
        round_trip(StoredMembership::new(
            Some(log_id(2, 3, 3)),
            joint_with_learners(),
        ));
    }

    #[test]
    fn entries_of_every_payload() {
        for entry in entries() {
            round_trip(entry.clone());
            assert_eq!(
                decode::<Entry>(&encode_owned(entry.clone())).unwrap(),
                entry
            );
        }
    }

    #[test]
    fn append_entries() {
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 3),
            prev_log_id: Some(log_id(1, 1, 0)),
            entries: entries(),
            leader_commit: Some(log_id(1, 1, 2)),
        };
        let back: AppendEntriesRequest<TypeConfig> = decode(&encode(&req)).unwrap();
        // openraft's request has no PartialEq: compare its parts.
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.entries, req.entries);
        assert_eq!(back.leader_commit, req.leader_commit);

        let empty = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new(1, 1),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        let back: AppendEntriesRequest<TypeConfig> = decode(&encode_owned(empty)).unwrap();
        assert_eq!(back.prev_log_id, None);
        assert!(back.entries.is_empty());
        assert_eq!(back.leader_commit, None);

        round_trip(AppendEntriesResponse::<TypeConfig>::Success);
        round_trip(AppendEntriesResponse::<TypeConfig>::PartialSuccess(None));
        round_trip(AppendEntriesResponse::<TypeConfig>::PartialSuccess(Some(
            log_id(4, 2, 10),
        )));
        round_trip(AppendEntriesResponse::<TypeConfig>::Conflict);
        round_trip(AppendEntriesResponse::<TypeConfig>::HigherVote(
            Vote::new_committed(5, 2),
        ));

        round_trip::<StreamAppendResult<TypeConfig>>(Ok(None));
        round_trip::<StreamAppendResult<TypeConfig>>(Ok(Some(log_id(1, 2, 3))));
        round_trip::<StreamAppendResult<TypeConfig>>(Err(StreamAppendError::Conflict(log_id(
            1, 2, 3,
        ))));
        round_trip::<StreamAppendResult<TypeConfig>>(Err(StreamAppendError::HigherVote(
            Vote::new(7, 1),
        )));
    }

    #[test]
    fn votes() {
        round_trip(VoteRequest::<TypeConfig>::new(Vote::new(4, 1), None));
        round_trip(VoteRequest::<TypeConfig> {
            vote: Vote::new(4, 1),
            last_log_id: Some(log_id(3, 2, 17)),
            leadership_transfer: true,
        });
        round_trip(VoteResponse::<TypeConfig>::new(
            Vote::new_committed(4, 1),
            Some(log_id(3, 2, 17)),
            true,
        ));
        round_trip(VoteResponse::<TypeConfig>::new(
            Vote::new(5, 3),
            None,
            false,
        ));
    }

    #[test]
    fn snapshots() {
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(3, 1, 100)),
            last_membership: StoredMembership::new(Some(log_id(2, 3, 3)), joint_with_learners()),
        };
        round_trip(meta.clone());
        round_trip(SnapshotMeta::default());
        round_trip(SnapshotHeader {
            vote: Vote::new_committed(3, 1),
            meta,
        });
        round_trip(SnapshotResponse::<TypeConfig>::new(Vote::new_committed(
            3, 1,
        )));
    }

    #[test]
    fn transfer_leader() {
        round_trip(TransferLeaderRequest::<TypeConfig>::new(
            Vote::new_committed(3, 1),
            2,
            Some(log_id(3, 1, 50)),
        ));
        round_trip(TransferLeaderRequest::<TypeConfig>::new(
            Vote::new_committed(3, 1),
            2,
            None,
        ));
        round_trip::<TransferLeaderResponse<TypeConfig>>(Ok(()));
        round_trip::<TransferLeaderResponse<TypeConfig>>(Err(TransferLeaderError::VoteChanged {
            expected: Vote::new_committed(3, 1),
            actual: Vote::new(4, 2),
        }));
        round_trip::<TransferLeaderResponse<TypeConfig>>(Err(TransferLeaderError::LogNotFlushed {
            expected: Some(log_id(3, 1, 50)),
            actual: None,
        }));
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(
            decode::<Entry>(&[0xff, 0xff, 0xff]),
            Err(CodecError::Protobuf(_))
        ));
        // Empty bytes are a message with every field absent.
        assert!(matches!(
            decode::<Entry>(&[]),
            Err(CodecError::Missing("LogEntry.payload"))
        ));
        assert!(matches!(
            decode::<VoteRequest<TypeConfig>>(&[]),
            Err(CodecError::Missing("VoteRequest.vote"))
        ));
        assert!(matches!(
            decode::<AppendEntriesResponse<TypeConfig>>(&[]),
            Err(CodecError::Missing(_))
        ));
        // A voter without a node entry is no membership openraft would build.
        let bad = pb::Membership {
            configs: vec![pb::VoterSet { ids: vec![1, 2] }],
            nodes: [(1, member("n1").to_proto())].into_iter().collect(),
        };
        assert!(matches!(
            decode::<Membership>(&bad.encode_to_vec()),
            Err(CodecError::Membership(_))
        ));
        // Every truncation of a valid entry is an error or a shorter valid message, never a
        // panic.
        let full = encode(&entries()[2]);
        for len in 0..full.len() {
            let _ = decode::<Entry>(&full[..len]);
        }
    }
}
