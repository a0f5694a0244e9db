//! openraft's type configuration for conclave: a log entry carries a `conclavepb.Command`,
//! applying it answers the store's `Applied`, members are named by u64 IDs and described by
//! their name and URLs.

use std::fmt;

use conclave_proto::conclavepb::Command;
use conclave_store::Applied;
use openraft::type_config::alias;

/// A member as the cluster knows it: what `etcdctl member list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Where other members reach it: `https://host:port`, a UDP port (QUIC).
    pub peer_urls: Vec<String>,
    /// Where clients reach it (gRPC and the JSON gateway).
    pub client_urls: Vec<String>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.name, self.peer_urls)
    }
}

openraft::declare_raft_types!(
    /// conclave's Raft types.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = Member,
);

pub type LogId = alias::LogIdOf<TypeConfig>;
pub type Vote = alias::VoteOf<TypeConfig>;
pub type Entry = alias::EntryOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, Member>;
pub type StoredMembership = alias::StoredMembershipOf<TypeConfig>;
