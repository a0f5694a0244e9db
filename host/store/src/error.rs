//! The store's errors. `RequestError`s are the deterministic answers a request can get (every
//! member gives the same one, so they are safe to return from apply); `StoreError` adds the
//! failures of the disk underneath, which stop the member rather than diverge it.

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

impl RequestError {
    /// Every variant, for mapping messages back.
    const ALL: [RequestError; 26] = [
        RequestError::Compacted,
        RequestError::FutureRevision,
        RequestError::LeaseNotFound,
        RequestError::KeyNotFound,
        RequestError::LeaseExists,
        RequestError::PluginNotFound,
        RequestError::NoPreviousVersion,
        RequestError::FlushMarkMoved,
        RequestError::PluginNameInvalid,
        RequestError::PluginDigestMismatch,
        RequestError::FlushOpInvalid,
        RequestError::NoSpace,
        RequestError::Corrupt,
        RequestError::RootUserNotExist,
        RequestError::RootRoleNotExist,
        RequestError::UserAlreadyExist,
        RequestError::UserEmpty,
        RequestError::UserNotFound,
        RequestError::RoleAlreadyExist,
        RequestError::RoleNotFound,
        RequestError::RoleEmpty,
        RequestError::PermissionNotGiven,
        RequestError::RoleNotGranted,
        RequestError::PermissionNotGranted,
        RequestError::InvalidAuthManagement,
        RequestError::PermissionDenied,
    ];

    /// The error whose message this is: a member that forwarded a write reads the leader's
    /// answer back this way.
    pub fn from_message(message: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.to_string() == message)
    }
}

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
    fn every_request_error_reads_back_from_its_message() {
        // Exhaustive on purpose: a new variant stops compiling here until it is in ALL too.
        match RequestError::Compacted {
            RequestError::Compacted
            | RequestError::FutureRevision
            | RequestError::LeaseNotFound
            | RequestError::KeyNotFound
            | RequestError::LeaseExists
            | RequestError::PluginNotFound
            | RequestError::NoPreviousVersion
            | RequestError::FlushMarkMoved
            | RequestError::PluginNameInvalid
            | RequestError::PluginDigestMismatch
            | RequestError::FlushOpInvalid
            | RequestError::NoSpace
            | RequestError::Corrupt
            | RequestError::RootUserNotExist
            | RequestError::RootRoleNotExist
            | RequestError::UserAlreadyExist
            | RequestError::UserEmpty
            | RequestError::UserNotFound
            | RequestError::RoleAlreadyExist
            | RequestError::RoleNotFound
            | RequestError::RoleEmpty
            | RequestError::PermissionNotGiven
            | RequestError::RoleNotGranted
            | RequestError::PermissionNotGranted
            | RequestError::InvalidAuthManagement
            | RequestError::PermissionDenied => {}
        }
        for e in RequestError::ALL {
            assert_eq!(RequestError::from_message(&e.to_string()), Some(e.clone()));
        }
        assert_eq!(
            RequestError::from_message("etcdserver: something else"),
            None
        );
    }
}
