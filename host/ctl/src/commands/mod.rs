//! One module per command: its flags, how they map to a request (with etcdctl's checks and
//! messages), running it, and printing the answer.

pub mod certs;
pub mod compaction;
pub mod del;
pub mod endpoint;
pub mod get;
pub mod plugin;
pub mod put;
pub mod snapshot;
pub mod txn;
