//! conclave's Raft layer, over openraft: the type configuration, the log and vote on fjall,
//! the state machine that drives the store's apply interface, and the QUIC transport between
//! members. It knows the store; the server knows it. Nothing here speaks the client API.

pub mod codec;
mod force_new_cluster;
mod log_store;
mod network;
mod snapshot;
mod state_machine;
pub mod types;

pub use force_new_cluster::force_sole_member;
pub use log_store::{LogReader, LogStore};
pub use network::{
    MemberCallError, MemberClient, MemberService, NetworkError, PeerNetwork, PeerNetworkFactory,
    PeerTransport,
};
pub use snapshot::SnapshotSource;
pub use state_machine::{ApplyListener, Raft, StateMachine};
pub use types::{Member, TypeConfig};
