//! The store's errors. `RequestError`s are the deterministic answers a request can get (every
//! member gives the same one, so they are safe to return from apply); `StoreError` adds the
//! failures of the disk underneath, which stop the member rather than diverge it.

use thiserror::Error;

/// What a well-formed request can be refused for. The messages are etcd's, byte for byte.
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
}

impl RequestError {
    /// Every variant, for mapping messages back.
    const ALL: [RequestError; 5] = [
        RequestError::Compacted,
        RequestError::FutureRevision,
        RequestError::LeaseNotFound,
        RequestError::KeyNotFound,
        RequestError::LeaseExists,
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
    #[error("corrupt record: {0}")]
    Corrupt(String),
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
