//! conclave's MVCC store: etcd's data model (revisions, versions, history, compaction) on the
//! fjall LSM tree. It knows nothing of Raft or gRPC: reads come in as `RangeRequest`s, writes
//! as committed log entries through [`Store::apply`], which every member runs in log order.

mod alarm;
mod apply;
mod auth;
mod backend;
mod compact;
mod error;
mod etcd_db;
mod hash;
mod history;
mod index;
pub mod key_range;
mod lease;
mod plugin;
mod read;
mod revision;
mod snapshot;
mod store;
mod write;

pub use alarm::grows;
pub use apply::{Applied, Durability, Entry, LeaseChange, Response, UnexpectedResponse};
pub use auth::{Access, AuthState, ROOT};
pub use error::{RequestError, Result, StoreError, UnknownRequestErrorCode};
pub use hash::KvHash;
pub use history::History;
pub use key_range::{KeyRange, prefix_end};
pub use lease::LeaseInfo;
pub use revision::Revision;
pub use snapshot::{SnapshotInfo, inspect_backup, inspect_snapshot};
pub use store::{Store, StoreStatus};
