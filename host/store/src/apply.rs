//! The apply interface: a batch of committed commands, in log order, becomes one atomic disk
//! write together with the applied log position. Single-node mode calls it directly; Raft
//! calls it with committed entries. Re-applying an entry at or below the applied position is
//! a no-op, so replay after a crash is safe.

use conclave_proto::conclavepb::{AuthChanged, Command, PluginChanged, command::Request};
use conclave_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse,
    LeaseGrantResponse, LeaseRevokeResponse, PutResponse, TxnResponse,
};
use conclave_proto::mvccpb::Event;

use crate::error::RequestError;

/// One committed log entry. `command` is `None` for entries that change no keys (Raft's blank
/// and membership entries) but still advance the applied position.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub command: Option<Command>,
}

impl Entry {
    /// An entry without a leader's time stamp (its revision keeps the previous one's time).
    pub fn new(index: u64, term: u64, request: Request) -> Self {
        Self::stamped(index, term, request, 0)
    }

    /// An entry as a leader proposes it: `stamp_ms` is its clock, ms since the Unix epoch.
    pub fn stamped(index: u64, term: u64, request: Request, stamp_ms: i64) -> Self {
        Self {
            index,
            term,
            command: Some(Command {
                request: Some(request),
                stamp_ms,
                checked_for: None,
            }),
        }
    }
}

/// What a write command answers. The response headers carry only the revision; the server
/// fills in cluster, member and term.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// A plugin registry command's answer: deploy, remove, rollback or flush.
    Plugin(PluginChanged),
    /// The alarms an alarm command raised or cleared.
    Alarm(AlarmResponse),
    /// An auth change's answer.
    Auth(AuthChanged),
    /// An entry without a command.
    Empty,
}

/// A write's answer was not the kind its request gets: a bug, reported, never guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store answered {got} to a request that gets {expected}")]
pub struct UnexpectedResponse {
    pub expected: &'static str,
    pub got: &'static str,
}

impl Response {
    /// The variant's name, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Put(_) => "Put",
            Response::DeleteRange(_) => "DeleteRange",
            Response::Txn(_) => "Txn",
            Response::Compaction(_) => "Compaction",
            Response::LeaseGrant(_) => "LeaseGrant",
            Response::LeaseRevoke(_) => "LeaseRevoke",
            Response::LeaseCheckpoint(_) => "LeaseCheckpoint",
            Response::Plugin(_) => "Plugin",
            Response::Alarm(_) => "Alarm",
            Response::Auth(_) => "Auth",
            Response::Empty => "Empty",
        }
    }
}

/// `PutResponse::try_from(response)` and the like: what a caller that knows its request's
/// kind takes out of the store's answer.
macro_rules! response_conversions {
    ($($variant:ident => $answer:ty),* $(,)?) => {
        $(impl TryFrom<Response> for $answer {
            type Error = UnexpectedResponse;

            fn try_from(response: Response) -> std::result::Result<Self, UnexpectedResponse> {
                match response {
                    Response::$variant(answer) => Ok(answer),
                    other => Err(UnexpectedResponse {
                        expected: stringify!($variant),
                        got: other.kind(),
                    }),
                }
            }
        })*
    };
}

response_conversions!(
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    LeaseCheckpoint => LeaseCheckpointResponse,
    Plugin => PluginChanged,
    Alarm => AlarmResponse,
    Auth => AuthChanged,
);

/// The outcome of one entry.
#[derive(Debug, Clone)]
pub struct Applied {
    pub index: u64,
    /// The store revision after this entry.
    pub revision: i64,
    pub result: Result<Response, RequestError>,
    /// The changes this entry made, in order: what watchers are told.
    pub events: Vec<Event>,
    /// The changes to leases it made: what each member's lessor keeps time by.
    pub leases: Vec<LeaseChange>,
}

/// A change to a lease that an applied entry made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// Granted for `ttl` seconds.
    Granted { id: i64, ttl: i64 },
    /// The leader recorded that `remaining` seconds were left.
    Checkpointed { id: i64, remaining: i64 },
    /// Revoked (by a client, or by the leader when it expired).
    Revoked { id: i64 },
}

/// How far a batch must reach the disk before `apply` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before returning: the store is the durability point (a single node without a log).
    Sync,
    /// Handed to the LSM's journal buffer, not even written to the OS yet: a durable log in
    /// front replays what a crash loses (the journal drops a torn last batch on recovery, and
    /// the applied position travels in each batch, so the replay starts where the disk ends).
    /// This saves a write(2) per batch; [`crate::Store::persist`] reaches the disk on demand.
    Buffered,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_converts_to_its_own_kind_only() {
        let put = PutResponse::default();
        assert_eq!(PutResponse::try_from(Response::Put(put.clone())), Ok(put));
        assert_eq!(
            PutResponse::try_from(Response::Empty),
            Err(UnexpectedResponse {
                expected: "Put",
                got: "Empty"
            })
        );
        assert_eq!(
            TxnResponse::try_from(Response::Put(PutResponse::default()))
                .unwrap_err()
                .to_string(),
            "the store answered Put to a request that gets Txn"
        );
    }
}
