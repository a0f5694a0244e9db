//! The store's errors. `RequestError`s are the deterministic answers a request can get (every
//! member gives the same one, so they are safe to return from apply); `StoreError` adds the
//! failures of the disk underneath, which stop the member rather than diverge it.

use conclave_proto::conclavepb::RequestErrorCode;
use thiserror::Error;

/// What a well-formed request can be refused for. The messages are etcd's, byte for byte;
/// the plugin registry's (conclave's own) start with `conclave:`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("conclave: plugin not found")]
    PluginNotFound,
    #[error("conclave: plugin has no previous version")]
    NoPreviousVersion,
    /// A flush that does not follow the mark in place: already applied, or another leader's
    /// flush came first.
    #[error("conclave: plugin flush mark moved")]
    FlushMarkMoved,
    #[error("conclave: plugin name must be 1 to 1024 bytes")]
    PluginNameInvalid,
    #[error("conclave: plugin digest is not the SHA-256 of its component")]
    PluginDigestMismatch,
    #[error("conclave: plugin flush ops may only put or delete")]
    FlushOpInvalid,
    /// A NOSPACE alarm is up: the store takes no write that would grow it.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is up: members disagree on their data, and nothing is served.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthManagement,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
}

/// A code no variant has: a member of a newer version answered, or the message was damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown request error code {0}")]
pub struct UnknownRequestErrorCode(pub i32);

/// One table for both ways across members (`RequestErrorCode` in
/// proto/conclave/internal.proto): a new variant does not compile until it has a code.
macro_rules! request_error_codes {
    ($($variant:ident => $code:ident),* $(,)?) => {
        impl From<&RequestError> for RequestErrorCode {
            fn from(e: &RequestError) -> Self {
                match e {
                    $(RequestError::$variant => RequestErrorCode::$code,)*
                }
            }
        }

        impl TryFrom<i32> for RequestError {
            type Error = UnknownRequestErrorCode;

            fn try_from(code: i32) -> std::result::Result<Self, UnknownRequestErrorCode> {
                match RequestErrorCode::try_from(code) {
                    $(Ok(RequestErrorCode::$code) => Ok(RequestError::$variant),)*
                    Ok(RequestErrorCode::Unspecified) | Err(_) => {
                        Err(UnknownRequestErrorCode(code))
                    }
                }
            }
        }
    };
}

request_error_codes!(
    Compacted => Compacted,
    FutureRevision => FutureRevision,
    LeaseNotFound => LeaseNotFound,
    KeyNotFound => KeyNotFound,
    LeaseExists => LeaseExists,
    PluginNotFound => PluginNotFound,
    NoPreviousVersion => NoPreviousVersion,
    FlushMarkMoved => FlushMarkMoved,
    PluginNameInvalid => PluginNameInvalid,
    PluginDigestMismatch => PluginDigestMismatch,
    FlushOpInvalid => FlushOpInvalid,
    NoSpace => NoSpace,
    Corrupt => Corrupt,
    RootUserNotExist => RootUserNotExist,
    RootRoleNotExist => RootRoleNotExist,
    UserAlreadyExist => UserAlreadyExist,
    UserEmpty => UserEmpty,
    UserNotFound => UserNotFound,
    RoleAlreadyExist => RoleAlreadyExist,
    RoleNotFound => RoleNotFound,
    RoleEmpty => RoleEmpty,
    PermissionNotGiven => PermissionNotGiven,
    RoleNotGranted => RoleNotGranted,
    PermissionNotGranted => PermissionNotGranted,
    InvalidAuthManagement => InvalidAuthManagement,
    PermissionDenied => PermissionDenied,
);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("bbolt: {0}")]
    Bolt(#[from] bbolt_rs::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("{0} already holds data; restore into an empty or new directory")]
    Exists(String),
    #[error("entry {index} applied out of order (last applied {applied})")]
    OutOfOrder { index: u64, applied: u64 },
}

impl StoreError {
    /// The request-level error inside, if this is one.
    pub fn as_request(&self) -> Option<&RequestError> {
        match self {
            StoreError::Request(e) => Some(e),
            _ => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_error_code_reads_back_as_its_error() {
        let mut seen = 0;
        for code in 0..64 {
            match RequestError::try_from(code) {
                Ok(e) => {
                    assert_eq!(RequestErrorCode::from(&e) as i32, code, "{e}");
                    seen += 1;
                }
                Err(UnknownRequestErrorCode(c)) => assert_eq!(c, code),
            }
        }
        // Every code but UNSPECIFIED names an error, and no two the same one.
        assert_eq!(seen, RequestErrorCode::PermissionDenied as i32);
        assert!(RequestError::try_from(0).is_err());
    }
}
