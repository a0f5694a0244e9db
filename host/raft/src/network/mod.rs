//! The QUIC transport between members (docs/ARCHITECTURE.md, decision 2): one quinn endpoint per member,
//! acting as server and client, with mutual TLS from the cluster CA; one connection per pair of
//! members, used in both directions; one stream per RPC, one long-lived stream per replication
//! session, and snapshots on a stream of their own at a lower priority, so votes and heartbeats
//! never queue behind them.
//!
//! - [`PeerTransport`]: binds the peer port, accepts peers and serves their RPCs into the local
//!   `Raft`, and hands out the [`PeerNetworkFactory`] openraft dials the others with.
//! - `endpoint`: the quinn configuration and the connection cache (dialing, backoff, the one
//!   connection per pair).
//! - `frame`: the wire format (stream kinds, length-prefixed frames, replies).
//! - `client` / `server`: the two ends of every RPC.
//! - `member`: calls between members besides Raft's (forwarded writes, read indexes, ...),
//!   answered by the server crate.

mod address;
mod client;
mod endpoint;
mod frame;
mod member;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use self::client::{PeerNetwork, PeerNetworkFactory};
pub use self::endpoint::MemberService;
pub use self::member::{MemberCallError, MemberClient};
use crate::state_machine::Raft;

/// Why the peer transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The member's rustls configuration cannot carry QUIC (it lacks TLS 1.3's
    /// AES-128-GCM-SHA256, which QUIC's initial packets need).
    #[error("the peer TLS configuration cannot be used for QUIC: {0}")]
    Tls(String),
    #[error("cannot bind the peer port {addr} (UDP): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A member's QUIC endpoint: accepts the other members' connections and dials them, one
/// connection per pair whichever end dialed it.
///
/// Dropping it closes the endpoint and every connection, as [`Self::shutdown`] does without
/// waiting: keep it for as long as the member runs, whatever else holds its network.
pub struct PeerTransport {
    shared: Arc<endpoint::Shared>,
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl PeerTransport {
    /// Binds the UDP socket for `--listen-peer-urls`, with the member's TLS. Must be called
    /// inside a tokio runtime. Peers that connect before [`PeerTransport::serve`] wait (their
    /// streams are queued) until it is called.
    pub fn bind(addr: SocketAddr, tls: &conclave_tls::PeerTls) -> Result<Self, NetworkError> {
        Ok(PeerTransport {
            shared: endpoint::Shared::bind(addr, tls)?,
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr()
    }

    /// The factory openraft uses to reach other members: `Member.peer_urls[0]`
    /// (`https://host:port`, a UDP port) is dialed with the member's name as the TLS server
    /// name, so a peer is checked by who it is, not by where it happens to be.
    pub fn network(&self) -> PeerNetworkFactory {
        PeerNetworkFactory::new(self.shared.clone())
    }

    /// Accepts peer connections and serves their RPCs into `raft` until [`Self::shutdown`]:
    /// received snapshots are written to temporary files in `snapshots_dir` (the state
    /// machine's snapshot directory) and handed to `raft` when complete. The handle ends when
    /// the endpoint is closed.
    pub fn serve(&self, raft: Raft, snapshots_dir: PathBuf) -> tokio::task::JoinHandle<()> {
        self.shared.serve(raft, snapshots_dir)
    }

    /// Makes calls to other members besides Raft's own, over the same connections.
    pub fn members(&self) -> MemberClient {
        MemberClient::new(self.shared.clone())
    }

    /// Answers other members' calls with `service` from now on; calls that arrive before
    /// wait for it (within their callers' deadlines).
    pub fn serve_members(&self, service: Arc<dyn MemberService>) {
        self.shared.set_member_service(service);
    }

    /// Closes every connection and the endpoint, and waits (briefly) for the peers to be told.
    /// RPCs in flight fail; later ones fail at once. The UDP port is free once the Raft that
    /// used [`Self::network`] has stopped too.
    pub async fn shutdown(&self) {
        self.shared.shutdown().await
    }
}
