//! etcd's errors as gRPC statuses: the exact codes and messages that etcd clients match on.

use conclave_proto::conclavepb::{ProposeErrorCode, ProposeFailure, RequestErrorCode};
use conclave_store::{Applied, RequestError, Response, StoreError, UnexpectedResponse};
use tonic::{Code, Status};

/// An etcd error: its gRPC code and its message, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdError {
    pub code: Code,
    pub message: &'static str,
}

impl EtcdError {
    pub const fn new(code: Code, message: &'static str) -> Self {
        Self { code, message }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Self {
        Status::new(e.code, e.message)
    }
}

pub const EMPTY_KEY: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: key is not provided");
pub const TOO_MANY_OPS: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: too many operations in txn request",
);
pub const DUPLICATE_KEY: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: duplicate key given in txn request",
);
pub const REQUEST_TOO_LARGE: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: request is too large");
pub const VALUE_PROVIDED: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: value is provided");
pub const LEASE_PROVIDED: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: lease is provided");
pub const INVALID_SORT_OPTION: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: invalid sort option");
pub const STOPPED: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: server stopped");
pub const NO_LEADER: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: no leader");
pub const LEADER_CHANGED: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: leader changed");
pub const REQUEST_TIMED_OUT: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: request timed out");
/// conclave's own: a proposal with no request in it (only a confused member sends one).
pub const EMPTY_PROPOSAL: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: empty proposal");

/// Why a write was not applied: what the core (`Node::propose*`, forwarding, the leader's
/// answer to a follower) says, turned into a gRPC status once, by `From` below, at the edge.
/// A write the store refused at apply is not one of these: it was applied, and its
/// `Applied::result` holds the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    EmptyProposal,
    /// Over --max-request-bytes (or the deploy limit).
    TooLarge,
    /// Refused before it was proposed: an alarm stands, or the quota is reached.
    Refused(RequestError),
    TimedOut,
    /// It may have reached a leader that lost its leadership.
    LeaderChanged,
    /// Raft stopped on this member.
    Stopped,
    /// What should not happen (Raft refused for another reason, a member answered nonsense);
    /// the text is for people.
    Internal(String),
}

/// What a [`ProposeError`] says to a client.
enum Said<'a> {
    /// One of etcd's errors.
    Etcd(EtcdError),
    Refused(&'a RequestError),
    Internal(&'a str),
}

impl ProposeError {
    fn said(&self) -> Said<'_> {
        match self {
            ProposeError::EmptyProposal => Said::Etcd(EMPTY_PROPOSAL),
            ProposeError::TooLarge => Said::Etcd(REQUEST_TOO_LARGE),
            ProposeError::TimedOut => Said::Etcd(REQUEST_TIMED_OUT),
            ProposeError::LeaderChanged => Said::Etcd(LEADER_CHANGED),
            ProposeError::Stopped => Said::Etcd(STOPPED),
            ProposeError::Refused(e) => Said::Refused(e),
            ProposeError::Internal(what) => Said::Internal(what),
        }
    }
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.said() {
            Said::Etcd(etcd) => f.write_str(etcd.message),
            Said::Refused(e) => e.fmt(f),
            Said::Internal(what) => write!(f, "etcdserver: {what}"),
        }
    }
}

impl std::error::Error for ProposeError {}

impl From<RequestError> for ProposeError {
    fn from(e: RequestError) -> Self {
        ProposeError::Refused(e)
    }
}

impl From<ProposeError> for Status {
    fn from(e: ProposeError) -> Self {
        match e.said() {
            Said::Etcd(etcd) => etcd.into(),
            Said::Refused(r) => request_status(r),
            Said::Internal(_) => Status::internal(e.to_string()),
        }
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

/// Store work run off the async workers ([`crate::node::Node::blocking`]) that failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task panicked or was cancelled.
    #[error("etcdserver: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BlockingError {
    /// The request-level error inside, if this is one.
    pub fn as_request(&self) -> Option<&RequestError> {
        match self {
            BlockingError::Store(e) => e.as_request(),
            BlockingError::Task(_) => None,
        }
    }
}

impl From<BlockingError> for Status {
    fn from(e: BlockingError) -> Self {
        match e {
            BlockingError::Store(e) => store_status(e),
            task @ BlockingError::Task(_) => Status::internal(task.to_string()),
        }
    }
}

fn unexpected_status(e: UnexpectedResponse) -> Status {
    tracing::error!(error = %e, "a write got the wrong kind of answer");
    Status::internal(format!("etcdserver: {e}"))
}

/// A proposed write's answer as the response its request gets (`PutResponse`, ...), with the
/// store revision after it; a refusal at apply becomes etcd's status.
pub fn answer<T>(applied: Applied) -> Result<(T, i64), Status>
where
    T: TryFrom<Response, Error = UnexpectedResponse>,
{
    let response = applied.result.map_err(|e| request_status(&e))?;
    Ok((
        T::try_from(response).map_err(unexpected_status)?,
        applied.revision,
    ))
}

/// The status a store error becomes.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Request(r) => request_status(&r),
        other => {
            tracing::error!(error = %other, "storage failure");
            Status::internal(format!("etcdserver: storage failure: {other}"))
        }
    }
}

pub fn request_status(e: &RequestError) -> Status {
    let code = match e {
        RequestError::Compacted | RequestError::FutureRevision => Code::OutOfRange,
        RequestError::LeaseNotFound => Code::NotFound,
        RequestError::KeyNotFound => Code::InvalidArgument,
        RequestError::LeaseExists => Code::FailedPrecondition,
        RequestError::PluginNotFound => Code::NotFound,
        RequestError::NoPreviousVersion | RequestError::FlushMarkMoved => Code::FailedPrecondition,
        RequestError::PluginNameInvalid
        | RequestError::PluginDigestMismatch
        | RequestError::FlushOpInvalid => Code::InvalidArgument,
        RequestError::NoSpace => Code::ResourceExhausted,
        RequestError::Corrupt => Code::DataLoss,
        RequestError::UserEmpty
        | RequestError::RoleEmpty
        | RequestError::PermissionNotGiven
        | RequestError::InvalidAuthManagement => Code::InvalidArgument,
        RequestError::PermissionDenied => Code::PermissionDenied,
        RequestError::RootUserNotExist
        | RequestError::RootRoleNotExist
        | RequestError::UserAlreadyExist
        | RequestError::UserNotFound
        | RequestError::RoleAlreadyExist
        | RequestError::RoleNotFound
        | RequestError::RoleNotGranted
        | RequestError::PermissionNotGranted => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_propose_error() -> Vec<ProposeError> {
        vec![
            ProposeError::EmptyProposal,
            ProposeError::TooLarge,
            ProposeError::Refused(RequestError::NoSpace),
            ProposeError::Refused(RequestError::Corrupt),
            ProposeError::TimedOut,
            ProposeError::LeaderChanged,
            ProposeError::Stopped,
            ProposeError::Internal("raft said no".to_string()),
        ]
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

    #[test]
    fn a_propose_error_reaches_clients_in_etcds_words() {
        let status = |e: ProposeError| {
            let s = Status::from(e);
            (s.code(), s.message().to_string())
        };
        assert_eq!(
            status(ProposeError::TimedOut),
            (Code::Unavailable, "etcdserver: request timed out".into())
        );
        assert_eq!(
            status(ProposeError::LeaderChanged),
            (Code::Unavailable, "etcdserver: leader changed".into())
        );
        assert_eq!(
            status(ProposeError::TooLarge),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large".into()
            )
        );
        assert_eq!(
            status(ProposeError::Refused(RequestError::NoSpace)),
            (
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded".into()
            )
        );
        for e in every_propose_error() {
            assert_eq!(status(e.clone()).1, e.to_string());
        }
    }
}
