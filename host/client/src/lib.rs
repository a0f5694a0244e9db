//! conclave-client: an async client for the etcd v3 API, for conclave and any etcd server.
//!
//! [`Client`] wraps tonic's generated clients with options types that mirror etcd's Go client
//! ([`GetOptions`], [`PutOptions`], [`DeleteOptions`], [`WatchOptions`]), a [`Txn`] builder,
//! leases with a [`LeaseKeeper`] that keeps one alive while it lives, watches that resume on
//! another endpoint without gap or repeat ([`WatchStream`]), and a typed [`Error`] that keeps
//! etcd's gRPC code and message. Responses are the protobuf messages themselves, re-exported
//! from [`proto`].
//!
//! ```no_run
//! use conclave_client::{Client, Compare, GetOptions, PutOptions, Txn, TxnOp};
//!
//! # async fn demo() -> Result<(), conclave_client::Error> {
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! client.put("/config/mode", "fast", PutOptions::new()).await?;
//!
//! let resp = client.get("/config/", GetOptions::new().with_prefix()).await?;
//! println!("{} keys at revision {}", resp.count, resp.header.map_or(0, |h| h.revision));
//!
//! let txn = Txn::new()
//!     .when([Compare::value("/config/mode").eq("fast")])
//!     .and_then([TxnOp::put("/config/mode", "faster", PutOptions::new())])
//!     .or_else([TxnOp::get("/config/mode", GetOptions::new())]);
//! println!("swapped: {}", client.txn(txn).await?.succeeded);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod lease;
mod lock;
mod options;
mod plugin;
mod registry;
mod txn;
mod watch;

pub use client::{Client, ClientOptions, DEFAULT_CONNECT_TIMEOUT};
pub use error::{Code, Error, messages};
pub use lease::LeaseKeeper;
pub use lock::{Leadership, LockGuard, ObserveStream};
pub use options::{DeleteOptions, GetOptions, PutOptions, prefix_range_end};
pub use plugin::DeployOptions;
pub use registry::{Change, Discovery, Instance, Registration, ServiceRegistry};
pub use txn::{Compare, CompareInt, CompareValue, Txn, TxnOp};
pub use watch::{WatchOptions, WatchStream};

/// The etcd v3 protobuf types and generated tonic clients.
pub use conclave_proto as proto;

pub use conclave_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse,
    range_request::{SortOrder, SortTarget},
};
pub use conclave_proto::mvccpb::KeyValue;
