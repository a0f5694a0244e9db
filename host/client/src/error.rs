//! The client's error type: bad endpoints, failed connections, timeouts, and the gRPC status an
//! etcd server answered with, keeping its code and its `etcdserver: ...` message for matching.

use std::error::Error as StdError;
use std::time::Duration;

pub use tonic::Code;

/// Everything a [`Client`](crate::Client) call can fail with.
///
/// Server-side failures arrive as [`Error::Status`], which keeps the gRPC code and the message
/// exactly as the server sent them, so callers can match on etcd's errors:
///
/// ```
/// use conclave_client::{Code, Error, messages};
///
/// fn is_compacted(e: &Error) -> bool {
///     matches!(e, Error::Status { code: Code::OutOfRange, message }
///         if message == messages::COMPACTED)
/// }
/// # assert!(is_compacted(&Error::Status {
/// #     code: Code::OutOfRange,
/// #     message: messages::COMPACTED.into(),
/// # }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No endpoint was given to [`Client::connect`](crate::Client::connect).
    #[error("no endpoints given")]
    NoEndpoints,

    /// An endpoint is not a usable `host:port` or `http://host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },

    /// None of the endpoints could be reached when connecting.
    #[error("cannot connect to {}", join_failures(.failures))]
    Connect {
        /// Each endpoint with the reason it could not be reached.
        failures: Vec<(String, String)>,
    },

    /// A request did not complete within the request timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),

    /// The server (or the transport, for `Unavailable`) answered with a gRPC error status.
    ///
    /// For etcd's own errors `message` is byte-exact, e.g. `etcdserver: key is not provided`;
    /// see [`messages`](crate::messages).
    #[error("{}", status_display(*.code, .message))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message as the server sent it (with the transport's cause appended for
        /// errors that never reached a server).
        message: String,
    },
}

impl Error {
    /// The gRPC code, for errors that carry one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's error message when it is one of etcd's (it starts with `etcdserver: `).
    pub fn etcd_message(&self) -> Option<&str> {
        match self {
            Error::Status { message, .. } if message.starts_with("etcdserver: ") => Some(message),
            _ => None,
        }
    }

    /// Turns a tonic status into an error, keeping code and message; a status made locally by
    /// the transport (no server involved) gets its underlying cause appended to the message.
    pub fn from_status(status: tonic::Status) -> Self {
        let mut message = status.message().to_string();
        let mut source = StdError::source(&status);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            source = cause.source();
        }
        Error::Status {
            code: status.code(),
            message,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::from_status(status)
    }
}

/// etcd's own errors print as their message alone, as etcd's Go client prints them; any other
/// status prints the way grpc-go formats one.
fn status_display(code: Code, message: &str) -> String {
    if message.starts_with("etcdserver: ") {
        message.to_string()
    } else {
        format!("rpc error: code = {} desc = {message}", go_code_name(code))
    }
}

/// gRPC code names as grpc-go spells them (note "Canceled").
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

fn join_failures(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(endpoint, reason)| format!("{endpoint} ({reason})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// etcd's error messages, byte for byte, for matching against [`Error::Status`]'s `message`.
pub mod messages {
    /// OutOfRange: the requested revision was compacted away.
    pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    /// OutOfRange: the requested revision is ahead of the store.
    pub const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";
    /// InvalidArgument: an empty key.
    pub const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
    /// InvalidArgument: `ignore_value` on a key that does not exist.
    pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
    /// InvalidArgument: `ignore_value` together with a value.
    pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
    /// InvalidArgument: `ignore_lease` together with a lease.
    pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
    /// NotFound: the lease does not exist.
    pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
    /// InvalidArgument: more than 128 operations in a txn.
    pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
    /// InvalidArgument: a key written twice in one txn branch.
    pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
    /// InvalidArgument: the request is over the size limit.
    pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
    /// PermissionDenied.
    pub const PERMISSION_DENIED: &str = "etcdserver: permission denied";
    /// Unavailable: the cluster has no leader.
    pub const NO_LEADER: &str = "etcdserver: no leader";
    /// Unknown: nobody leads the election asked about. etcd's wire protocol says so by this
    /// message alone (its Go client compares the same text).
    pub const ELECTION_NO_LEADER: &str = "election: no leader";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_display_as_their_message() {
        let e = Error::from(tonic::Status::out_of_range(messages::COMPACTED));
        assert_eq!(e.to_string(), messages::COMPACTED);
        assert_eq!(e.code(), Some(Code::OutOfRange));
        assert_eq!(e.etcd_message(), Some(messages::COMPACTED));
    }

    #[test]
    fn other_statuses_display_like_grpc_go() {
        let e = Error::from(tonic::Status::cancelled("bye"));
        assert_eq!(e.to_string(), "rpc error: code = Canceled desc = bye");
        assert_eq!(e.etcd_message(), None);
    }

    #[test]
    fn connect_failures_list_every_endpoint() {
        let e = Error::Connect {
            failures: vec![
                ("a:1".into(), "refused".into()),
                ("b:2".into(), "timed out".into()),
            ],
        };
        assert_eq!(
            e.to_string(),
            "cannot connect to a:1 (refused), b:2 (timed out)"
        );
    }
}
