//! etcd's errors as gRPC statuses: the exact codes and messages that etcd clients match on.

use conclave_proto::conclavepb::Failure;
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
/// etcd's words for a change of voters that --strict-reconfig-check refuses.
pub const UNHEALTHY_CLUSTER: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: unhealthy cluster");
/// conclave's own: a member that publishes its attributes before it is in the membership.
pub const NOT_A_MEMBER_YET: EtcdError =
    EtcdError::new(Code::Unavailable, "conclave: not in the membership yet");
/// conclave's own: a proposal with no request in it (only a confused member sends one).
pub const EMPTY_PROPOSAL: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: empty proposal");

/// Why a write was not applied: what the core (`Router::propose*`, forwarding, the leader's
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

/// What a core error says to a client: one of etcd's errors, a refusal of the store's, or
/// words of another member or of our own. [`ProposeError`], [`ClusterError`] and
/// [`AuthError`] all say it this way, so that each error has one text and one status, both
/// decided here.
enum Said<'a> {
    /// One of etcd's errors.
    Etcd(EtcdError),
    Refused(&'a RequestError),
    /// Another member's answer, as it travelled (`Failure`): its gRPC code and message.
    Member(Code, &'a str),
    /// A condition this member cannot meet, in its own words.
    Precondition(&'a str),
    /// What should not happen.
    Internal(&'a str),
}

impl std::fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Said::Etcd(etcd) => f.write_str(etcd.message),
            Said::Refused(e) => e.fmt(f),
            Said::Member(_, message) => f.write_str(message),
            Said::Precondition(what) | Said::Internal(what) => write!(f, "etcdserver: {what}"),
        }
    }
}

impl From<Said<'_>> for Status {
    fn from(said: Said<'_>) -> Self {
        match said {
            Said::Etcd(etcd) => etcd.into(),
            Said::Refused(r) => request_status(r),
            Said::Member(code, message) => Status::new(code, message),
            Said::Precondition(_) => Status::failed_precondition(said.to_string()),
            Said::Internal(_) => Status::internal(said.to_string()),
        }
    }
}

/// `Display`, `Error` and the gRPC status of an error that says itself with [`Said`].
macro_rules! said_as_text_and_status {
    ($error:ty) => {
        impl std::fmt::Display for $error {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.said().fmt(f)
            }
        }

        impl std::error::Error for $error {}

        impl From<$error> for Status {
            fn from(e: $error) -> Self {
                e.said().into()
            }
        }
    };
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

said_as_text_and_status!(ProposeError);

impl From<RequestError> for ProposeError {
    fn from(e: RequestError) -> Self {
        ProposeError::Refused(e)
    }
}

/// Why a member could not do its part in a read, a membership change or a call to another
/// member (`Router::linearize`, `read_index`, `Node::change_membership`, `ClusterView::ask_leader`), turned into
/// a gRPC status once, by `From`, at the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterError {
    NoLeader,
    /// The leader lost its leadership, or went away, while it had the request.
    LeaderChanged,
    TimedOut,
    /// Raft stopped on this member.
    Stopped,
    /// Refused for the store's state: a CORRUPT alarm stands.
    Refused(RequestError),
    /// --strict-reconfig-check: the change would leave the cluster without a working quorum.
    Unhealthy,
    /// Raft refused a membership change for another reason than leadership; the text is
    /// for people.
    MembershipRefused(String),
    /// This member is not in the membership yet (it cannot publish itself).
    NotAMember,
    /// Another member refused the call: its answer for the client, as it travelled.
    Member(Failure),
    /// A member answered nonsense; the text is for people.
    Internal(String),
    /// A write this member made for the request (a lease renewal's checkpoint) failed.
    Write(ProposeError),
}

impl From<ProposeError> for ClusterError {
    fn from(e: ProposeError) -> Self {
        ClusterError::Write(e)
    }
}

impl ClusterError {
    fn said(&self) -> Said<'_> {
        match self {
            ClusterError::NoLeader => Said::Etcd(NO_LEADER),
            ClusterError::LeaderChanged => Said::Etcd(LEADER_CHANGED),
            ClusterError::TimedOut => Said::Etcd(REQUEST_TIMED_OUT),
            ClusterError::Stopped => Said::Etcd(STOPPED),
            ClusterError::Refused(e) => Said::Refused(e),
            ClusterError::Unhealthy => Said::Etcd(UNHEALTHY_CLUSTER),
            ClusterError::MembershipRefused(what) => Said::Precondition(what),
            ClusterError::NotAMember => Said::Etcd(NOT_A_MEMBER_YET),
            ClusterError::Member(f) => Said::Member(Code::from_i32(f.code), &f.message),
            ClusterError::Internal(what) => Said::Internal(what),
            ClusterError::Write(e) => e.said(),
        }
    }
}

said_as_text_and_status!(ClusterError);

/// Why a caller may not do what it asks (`auth::Caller`'s checks) or could not log in
/// (`Authenticator`), turned into a gRPC status once, by `From`, at the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthError {
    /// One of etcd's auth errors: no token, an invalid or stale one, a failed login, ...
    Etcd(EtcdError),
    /// The auth state refuses it (permission denied, ...), in the words apply would use.
    Refused(RequestError),
    /// This member cannot sign tokens; the text says what to do.
    CannotSign(&'static str),
    /// What should not happen (bcrypt failed, no randomness); the text is for people.
    Internal(String),
}

impl AuthError {
    fn said(&self) -> Said<'_> {
        match self {
            AuthError::Etcd(etcd) => Said::Etcd(*etcd),
            AuthError::Refused(e) => Said::Refused(e),
            AuthError::CannotSign(what) => Said::Precondition(what),
            AuthError::Internal(what) => Said::Internal(what),
        }
    }
}

said_as_text_and_status!(AuthError);

impl From<EtcdError> for AuthError {
    fn from(e: EtcdError) -> Self {
        AuthError::Etcd(e)
    }
}

impl From<RequestError> for AuthError {
    fn from(e: RequestError) -> Self {
        AuthError::Refused(e)
    }
}

/// Store work run off the async workers (`Node::blocking`) that failed.
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn every_propose_error() -> Vec<ProposeError> {
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
    fn cluster_and_auth_errors_reach_clients_in_etcds_words() {
        let status = |s: Status| (s.code(), s.message().to_string());
        assert_eq!(
            status(ClusterError::Unhealthy.into()),
            (Code::Unavailable, "etcdserver: unhealthy cluster".into())
        );
        assert_eq!(
            status(ClusterError::Refused(RequestError::Corrupt).into()),
            (Code::DataLoss, RequestError::Corrupt.to_string())
        );
        // Another member's refusal reaches the client as that member gave it.
        let theirs = Failure {
            code: Code::NotFound as i32,
            message: "etcdserver: member not found".into(),
        };
        assert_eq!(
            status(ClusterError::Member(theirs).into()),
            (Code::NotFound, "etcdserver: member not found".into())
        );
        assert_eq!(
            status(ClusterError::MembershipRefused("no".into()).into()),
            (Code::FailedPrecondition, "etcdserver: no".into())
        );
        assert_eq!(
            status(AuthError::Refused(RequestError::PermissionDenied).into()),
            (
                Code::PermissionDenied,
                "etcdserver: permission denied".into()
            )
        );
        let clusters = [
            ClusterError::NoLeader,
            ClusterError::LeaderChanged,
            ClusterError::TimedOut,
            ClusterError::Stopped,
            ClusterError::NotAMember,
            ClusterError::Internal("odd".into()),
        ];
        for e in clusters {
            assert_eq!(Status::from(e.clone()).message(), e.to_string());
        }
        for e in [
            AuthError::CannotSign("no key"),
            AuthError::Internal("odd".into()),
        ] {
            assert_eq!(Status::from(e.clone()).message(), e.to_string());
        }
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
