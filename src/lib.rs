//! conclave: an etcd-compatible coordination store with WebAssembly plugins.
//!
//! This crate is the public face: the async client ([`Client`]) and the etcd v3 message types
//! ([`proto`]). The server and the command-line tools live in the `conclave` and
//! `conclavectl` binaries of this package.

pub use conclave_client::*;
pub use conclave_proto as proto;
