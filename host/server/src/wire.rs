//! What crosses between members, typed on both sides, and each conversion once: the member
//! calls and the answers they expect ([`ask_with`]), a write's answer (`Applied` <->
//! `ProposeResponse`), a forwarded batch's outcomes, a refused write (`ProposeError` <->
//! `ProposeFailure`, a code, never its text), a refusal of another call (`Failure`, the
//! gRPC status the client gets) and a member's entry. Nothing here decides anything.

use std::time::Duration;

use conclave_proto::conclavepb::{
    Failure, IngestResponse, MemberRequest, PluginListResponse, PluginLogsResponse,
    PluginStatusResponse, ProposeBatchResponse, ProposeErrorCode, ProposeFailure, ProposeOutcome,
    ProposeResponse, PublishMemberResponse, RaftMember, ReadIndexResponse, RequestErrorCode,
    member_request::Call, member_response::Result as Answer, propose_outcome, propose_response,
};
use conclave_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveResponse, MemberAddResponse,
    MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse,
};
use conclave_raft::{Member, MemberCallError, MemberClient};
use conclave_store::{Applied, RequestError, Response};
use tonic::Status;

use crate::error::{ClusterError, ProposeError};

/// A response type a member call answers with.
pub trait Answered: Sized {
    fn from_answer(answer: Answer) -> Option<Self>;
}

macro_rules! answered {
    ($($variant:ident => $response:ty),* $(,)?) => {
        $(impl Answered for $response {
            fn from_answer(answer: Answer) -> Option<Self> {
                match answer {
                    Answer::$variant(r) => Some(r),
                    _ => None,
                }
            }
        })*
    };
}

answered!(
    ProposeBatch => ProposeBatchResponse,
    ReadIndex => ReadIndexResponse,
    LeaseKeepAlive => LeaseKeepAliveResponse,
    LeaseTimeToLive => LeaseTimeToLiveResponse,
    PublishMember => PublishMemberResponse,
    MemberAdd => MemberAddResponse,
    MemberRemove => MemberRemoveResponse,
    MemberUpdate => MemberUpdateResponse,
    MemberPromote => MemberPromoteResponse,
    PluginList => PluginListResponse,
    PluginStatus => PluginStatusResponse,
    PluginLogs => PluginLogsResponse,
    Ingest => IngestResponse,
    HashKv => HashKvResponse,
);

/// What a member call came to: the answering member's response or refusal (inner), or no
/// answer at all (outer).
pub type Asked<R> = Result<Result<R, ClusterError>, MemberCallError>;

/// Calls `member` with `members` and waits at most `timeout` for the answer.
pub async fn ask_with<R: Answered>(
    members: &MemberClient,
    member: &Member,
    call: Call,
    timeout: Duration,
) -> Asked<R> {
    let request = MemberRequest { call: Some(call) };
    let response = members.call(member, &request, timeout).await?;
    Ok(match response.result {
        Some(Answer::Failed(f)) => Err(ClusterError::Member(f)),
        Some(answer) => R::from_answer(answer).ok_or_else(|| {
            ClusterError::Internal(format!("{} answered another call", member.name))
        }),
        None => Err(ClusterError::Internal(format!(
            "{} answered with nothing",
            member.name
        ))),
    })
}

pub fn member_to_wire(m: &Member) -> RaftMember {
    RaftMember {
        name: m.name.clone(),
        peer_urls: m.peer_urls.clone(),
        client_urls: m.client_urls.clone(),
    }
}

pub fn member_from_wire(m: RaftMember) -> Member {
    Member {
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
    }
}

/// The leader's answer to a forwarded write, as the store would have given it.
pub fn applied_from_wire(resp: ProposeResponse) -> Result<Applied, ProposeError> {
    use propose_response::Result as R;
    let result = match resp.result {
        Some(R::Put(r)) => Ok(Response::Put(r)),
        Some(R::DeleteRange(r)) => Ok(Response::DeleteRange(r)),
        Some(R::Txn(r)) => Ok(Response::Txn(r)),
        Some(R::Compaction(r)) => Ok(Response::Compaction(r)),
        Some(R::LeaseGrant(r)) => Ok(Response::LeaseGrant(r)),
        Some(R::LeaseRevoke(r)) => Ok(Response::LeaseRevoke(r)),
        Some(R::LeaseCheckpoint(r)) => Ok(Response::LeaseCheckpoint(r)),
        Some(R::Plugin(r)) => Ok(Response::Plugin(r)),
        Some(R::Alarm(r)) => Ok(Response::Alarm(r)),
        Some(R::Auth(r)) => Ok(Response::Auth(r)),
        Some(R::Error(code)) => Err(RequestError::try_from(code)
            .map_err(|e| ProposeError::Internal(format!("the leader answered an {e}")))?),
        None => Ok(Response::Empty),
    };
    Ok(Applied {
        index: resp.index,
        revision: resp.revision,
        result,
        events: Vec::new(),
        leases: Vec::new(),
    })
}

/// The store's answer to a write, for a follower that forwarded it.
pub fn applied_to_wire(applied: Applied) -> ProposeResponse {
    use propose_response::Result as R;
    let result = match applied.result {
        Ok(Response::Put(r)) => Some(R::Put(r)),
        Ok(Response::DeleteRange(r)) => Some(R::DeleteRange(r)),
        Ok(Response::Txn(r)) => Some(R::Txn(r)),
        Ok(Response::Compaction(r)) => Some(R::Compaction(r)),
        Ok(Response::LeaseGrant(r)) => Some(R::LeaseGrant(r)),
        Ok(Response::LeaseRevoke(r)) => Some(R::LeaseRevoke(r)),
        Ok(Response::LeaseCheckpoint(r)) => Some(R::LeaseCheckpoint(r)),
        Ok(Response::Plugin(r)) => Some(R::Plugin(r)),
        Ok(Response::Alarm(r)) => Some(R::Alarm(r)),
        Ok(Response::Auth(r)) => Some(R::Auth(r)),
        Ok(Response::Empty) => None,
        Err(e) => Some(R::Error(RequestErrorCode::from(&e) as i32)),
    };
    ProposeResponse {
        revision: applied.revision,
        index: applied.index,
        result,
    }
}

/// A forwarded write's outcome, as the follower reads it.
pub fn from_outcome(outcome: ProposeOutcome) -> Result<ProposeResponse, ProposeError> {
    match outcome.outcome {
        Some(propose_outcome::Outcome::Applied(response)) => Ok(response),
        Some(propose_outcome::Outcome::Failed(f)) => Err(f.into()),
        None => Err(ProposeError::Internal(
            "the leader answered a forwarded write with nothing".to_string(),
        )),
    }
}

/// The leader's side: one outcome per proposed write.
pub fn to_outcome(result: Result<ProposeResponse, ProposeError>) -> ProposeOutcome {
    let outcome = match result {
        Ok(response) => propose_outcome::Outcome::Applied(response),
        Err(e) => propose_outcome::Outcome::Failed((&e).into()),
    };
    ProposeOutcome {
        outcome: Some(outcome),
    }
}

/// The only way a `ProposeError` crosses between members (the leader's answer to a
/// forwarded write): a code, never its text.
impl From<&ProposeError> for ProposeFailure {
    fn from(e: &ProposeError) -> Self {
        let (code, refused, detail) = match e {
            ProposeError::EmptyProposal => (ProposeErrorCode::EmptyProposal, None, ""),
            ProposeError::TooLarge => (ProposeErrorCode::TooLarge, None, ""),
            ProposeError::Refused(r) => (ProposeErrorCode::Refused, Some(r), ""),
            ProposeError::TimedOut => (ProposeErrorCode::TimedOut, None, ""),
            ProposeError::LeaderChanged => (ProposeErrorCode::LeaderChanged, None, ""),
            ProposeError::Stopped => (ProposeErrorCode::Stopped, None, ""),
            ProposeError::Internal(what) => (ProposeErrorCode::Internal, None, what.as_str()),
        };
        ProposeFailure {
            code: code as i32,
            refused: refused.map_or(0, |r| RequestErrorCode::from(r) as i32),
            detail: detail.to_string(),
        }
    }
}

impl From<ProposeFailure> for ProposeError {
    fn from(f: ProposeFailure) -> Self {
        match ProposeErrorCode::try_from(f.code) {
            Ok(ProposeErrorCode::EmptyProposal) => ProposeError::EmptyProposal,
            Ok(ProposeErrorCode::TooLarge) => ProposeError::TooLarge,
            Ok(ProposeErrorCode::Refused) => match RequestError::try_from(f.refused) {
                Ok(e) => ProposeError::Refused(e),
                Err(unknown) => ProposeError::Internal(format!("the leader answered an {unknown}")),
            },
            Ok(ProposeErrorCode::TimedOut) => ProposeError::TimedOut,
            Ok(ProposeErrorCode::LeaderChanged) => ProposeError::LeaderChanged,
            Ok(ProposeErrorCode::Stopped) => ProposeError::Stopped,
            Ok(ProposeErrorCode::Internal) => ProposeError::Internal(f.detail),
            Ok(ProposeErrorCode::Unspecified) | Err(_) => ProposeError::Internal(format!(
                "the leader answered an unknown failure code {}",
                f.code
            )),
        }
    }
}

/// A refusal as it travels between members: the gRPC status the caller's client gets. The
/// answering member makes one from the status its answer came to; the asking member keeps
/// it as [`ClusterError::Member`].
pub fn failure(status: &Status) -> Failure {
    Failure {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_propose_error() -> Vec<ProposeError> {
        crate::error::tests::every_propose_error()
    }

    #[test]
    fn a_propose_error_crosses_members_as_itself() {
        for e in every_propose_error() {
            let wire = ProposeFailure::from(&e);
            assert_eq!(ProposeError::from(wire), e);
        }
        // A code this member does not know is an internal error, not a guess.
        let unknown = ProposeFailure {
            code: 99,
            ..Default::default()
        };
        assert!(matches!(
            ProposeError::from(unknown),
            ProposeError::Internal(_)
        ));
        let unknown_refusal = ProposeFailure {
            code: ProposeErrorCode::Refused as i32,
            refused: 999,
            detail: String::new(),
        };
        assert!(matches!(
            ProposeError::from(unknown_refusal),
            ProposeError::Internal(_)
        ));
    }
}
