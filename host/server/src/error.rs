//! etcd's errors as gRPC statuses: the exact codes and messages that etcd clients match on.

use conclave_store::{RequestError, StoreError};
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
