//! The member's quinn endpoint and its connections to the other members: QUIC transport
//! settings, dialing with a deadline and a backoff, and the cache that keeps one connection per
//! pair of members, whichever end dialed it, used by both ends for their RPCs.
//!
//! Both members of a pair may dial at once; then the connection dialed by the member with the
//! smaller name is the one both use, and the other member closes its own after a grace period
//! (so RPCs already on it finish). A connection whose peer stops answering at the QUIC level
//! (nothing received while an RPC timed out) is dropped at once rather than after the idle
//! timeout: that is how a restarted peer is noticed, since it cannot answer for connections of
//! its previous life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conclave_proto::conclavepb::{MemberRequest, MemberResponse};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use parking_lot::Mutex;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::rustls::pki_types::CertificateDer;
use quinn::{Connection, ConnectionError, Endpoint, IdleTimeout, TransportConfig, VarInt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::frame::code;
use super::{NetworkError, server};
use crate::state_machine::Raft;

/// What answers other members' calls on this member; the server crate provides it.
pub trait MemberService: Send + Sync + 'static {
    /// Answers `request` from the member named `peer` (the name its certificate carries).
    fn call(&self, peer: String, request: MemberRequest) -> BoxFuture<'static, MemberResponse>;
}

/// QUIC keep-alive: an idle connection still carries a packet this often, so neither end's
/// idle timer fires while both are up.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A connection that hears nothing for this long is closed: a few election timeouts at etcd's
/// defaults, so a silently dead peer is forgotten well after an election would notice it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a dial may take. RPCs never wait this long: they wait at most their own
/// timeout, while the dial goes on in the background for the next ones.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed dial, RPCs to that peer fail at once for this long, doubling per failure up
/// to the maximum; any connection from that peer ends it.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(100);
const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a peer must stay silent through timed-out RPCs before its connection is dropped.
const SILENCE: Duration = Duration::from_millis(250);
/// How long a redundant connection stays open for the RPCs already on it.
const REDUNDANT_GRACE: Duration = Duration::from_secs(5);
/// Streams a peer may have open at once: every RPC is one.
const MAX_STREAMS: u32 = 1024;
/// How long shutdown waits for the peers to be told and the accept loop to end. Connections
/// to live peers drain in a few round trips; a dial still under way would take seconds and
/// is not waited for.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Why there is no connection to a peer. Cloned to every RPC waiting on the same dial.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

impl ConnectError {
    fn new(message: impl Into<String>) -> Self {
        ConnectError(message.into())
    }
}

/// What incoming RPCs are served into; set by `PeerTransport::serve`.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) raft: Raft,
    pub(crate) snapshots: PathBuf,
}

type Dial = SharedFuture<BoxFuture<'static, Result<Connection, ConnectError>>>;

/// Everything known about one peer: its live connections (usually one), the dial under way,
/// and the backoff after failed dials.
#[derive(Default)]
struct Slot {
    conns: Vec<PeerConn>,
    dialing: Option<Dial>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<ConnectError>,
}

struct PeerConn {
    conn: Connection,
    dialed_by_us: bool,
    /// Set when an RPC timed out with nothing received: the datagram count then, and when.
    silent: Option<(u64, Instant)>,
}

impl Slot {
    fn prune(&mut self) {
        self.conns.retain(|c| c.conn.close_reason().is_none());
    }

    /// The connection to use: the one dialed by the smaller-named member of the pair if it
    /// is up, else the newest.
    fn pick(&mut self, prefer_ours: bool) -> Option<Connection> {
        self.prune();
        self.conns
            .iter()
            .rev()
            .find(|c| c.dialed_by_us == prefer_ours)
            .or(self.conns.last())
            .map(|c| c.conn.clone())
    }
}

/// The transport's state, shared by the transport, its network clients and its tasks.
pub(crate) struct Shared {
    /// Our member name, the CN of our certificate.
    name: String,
    local_addr: SocketAddr,
    /// Taken at shutdown, so the socket is released once the tasks still running let go.
    endpoint: Mutex<Option<Endpoint>>,
    client_config: quinn::ClientConfig,
    peers: Mutex<HashMap<String, Slot>>,
    service: watch::Sender<Option<Service>>,
    /// What answers member calls, once the server has set it.
    members: watch::Sender<Option<Arc<dyn MemberService>>>,
    shut_down: watch::Sender<bool>,
    /// Accept loops running (at most one unless `serve` is called twice).
    accepting: watch::Sender<usize>,
    /// Our Raft node id, for openraft's timeout errors; learnt in `serve`.
    node_id: OnceLock<u64>,
    downloads: AtomicU64,
    /// When a leader last replicated to this member (append entries it accepted), in ms
    /// after `born`; 0 for never. Raft's metrics keep naming a dead leader while this member
    /// only pre-votes, so "has a leader" is judged by this as well.
    leader_contact: AtomicU64,
    born: std::time::Instant,
}

fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(
            IDLE_TIMEOUT.as_millis() as u32,
        ))))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    transport
}

impl Shared {
    /// Notes that a leader's append entries were just accepted here.
    pub(crate) fn leader_contact(&self) {
        let ms = self.born.elapsed().as_millis() as u64 + 1;
        self.leader_contact
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long ago a leader last replicated to this member; None if none ever has.
    /// The round-trip time QUIC estimates on the connection with member `name`, if there
    /// is one open.
    pub(crate) fn round_trip(&self, name: &str) -> Option<Duration> {
        let conn = self.peers.lock().get_mut(name)?.pick(true)?;
        Some(conn.rtt())
    }

    pub(crate) fn since_leader_contact(&self) -> Option<Duration> {
        match self
            .leader_contact
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            ms => Some(
                self.born
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }
    pub(crate) fn bind(
        addr: SocketAddr,
        tls: &conclave_tls::PeerTls,
    ) -> Result<Arc<Self>, NetworkError> {
        let transport = Arc::new(transport_config());
        // conclave-tls already refuses 0-RTT on both ends (replayable; docs/ARCHITECTURE.md, decision 2),
        // and nothing here asks quinn for it.
        let server_crypto = QuicServerConfig::try_from(tls.server_config().clone())
            .map_err(|e| NetworkError::Tls(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config
            .transport_config(transport.clone())
            .migration(false);
        let client_crypto = QuicClientConfig::try_from(tls.client_config().clone())
            .map_err(|e| NetworkError::Tls(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport);

        let endpoint = Endpoint::server(server_config, addr)
            .map_err(|source| NetworkError::Bind { addr, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| NetworkError::Bind { addr, source })?;
        info!(member = tls.member_name(), %local_addr, "peer transport bound (QUIC, UDP)");
        Ok(Arc::new(Shared {
            name: tls.member_name().to_string(),
            local_addr,
            endpoint: Mutex::new(Some(endpoint)),
            client_config,
            peers: Mutex::new(HashMap::new()),
            service: watch::channel(None).0,
            members: watch::channel(None).0,
            shut_down: watch::channel(false).0,
            accepting: watch::channel(0).0,
            node_id: OnceLock::new(),
            downloads: AtomicU64::new(0),
            leader_contact: AtomicU64::new(0),
            born: std::time::Instant::now(),
        }))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn node_id(&self) -> u64 {
        self.node_id.get().copied().unwrap_or_default()
    }

    /// A number for a received snapshot's temporary file, unique in this process.
    pub(crate) fn next_download(&self) -> u64 {
        self.downloads.fetch_add(1, Ordering::Relaxed)
    }

    fn is_shut_down(&self) -> bool {
        *self.shut_down.borrow()
    }

    /// The Raft to serve into, once `serve` has been called; `None` once shut down.
    pub(crate) async fn service(&self) -> Option<Service> {
        let mut service = self.service.subscribe();
        let mut shut_down = self.shut_down.subscribe();
        tokio::select! {
            s = service.wait_for(|s| s.is_some()) => s.ok().and_then(|s| s.clone()),
            _ = shut_down.wait_for(|down| *down) => None,
        }
    }

    /// What answers member calls, once set; `None` once shut down.
    pub(crate) async fn member_service(&self) -> Option<Arc<dyn MemberService>> {
        let mut members = self.members.subscribe();
        let mut shut_down = self.shut_down.subscribe();
        tokio::select! {
            s = members.wait_for(|s| s.is_some()) => s.ok().and_then(|s| s.clone()),
            _ = shut_down.wait_for(|down| *down) => None,
        }
    }

    pub(crate) fn set_member_service(&self, service: Arc<dyn MemberService>) {
        self.members.send_replace(Some(service));
    }

    pub(crate) fn serve(
        self: &Arc<Self>,
        raft: Raft,
        snapshots: PathBuf,
    ) -> tokio::task::JoinHandle<()> {
        let _ = self.node_id.set(*raft.node_id());
        server::remove_downloads(&snapshots);
        self.service.send_replace(Some(Service { raft, snapshots }));
        let endpoint = self.endpoint.lock().clone();
        self.accepting.send_modify(|n| *n += 1);
        let guard = AcceptGuard(self.clone());
        tokio::spawn(async move {
            if let Some(endpoint) = endpoint {
                server::accept_loop(guard.0.clone(), endpoint).await;
            }
            drop(guard);
        })
    }

    /// A connection to member `name`, reached at `url` if a dial is needed. Concurrent
    /// callers share one dial; after a failed dial, callers fail at once until the backoff
    /// ends.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        name: &str,
        url: &str,
    ) -> Result<Connection, ConnectError> {
        if self.is_shut_down() {
            return Err(ConnectError::new("the peer transport is shut down"));
        }
        let dial = {
            let mut peers = self.peers.lock();
            let slot = peers.entry(name.to_string()).or_default();
            if let Some(conn) = slot.pick(self.name.as_str() < name) {
                return Ok(conn);
            }
            match &slot.dialing {
                Some(dial) => dial.clone(),
                None => {
                    let now = Instant::now();
                    if let Some(at) = slot.retry_at
                        && at > now
                    {
                        let last = slot
                            .last_error
                            .as_ref()
                            .map_or_else(String::new, |e| format!(" ({e})"));
                        return Err(ConnectError::new(format!(
                            "{name} is unreachable{last}; next attempt in {:?}",
                            at - now
                        )));
                    }
                    let dial = self.clone().start_dial(name.to_string(), url.to_string());
                    slot.dialing = Some(dial.clone());
                    dial
                }
            }
        };
        dial.await
    }

    /// Dials in a task of its own, so the dial finishes (and its outcome is recorded) even
    /// when every RPC waiting on it has given up.
    fn start_dial(self: Arc<Self>, name: String, url: String) -> Dial {
        let task = tokio::spawn(self.dial(name, url));
        async move {
            task.await
                .unwrap_or_else(|e| Err(ConnectError::new(format!("the dial failed: {e}"))))
        }
        .boxed()
        .shared()
    }

    async fn dial(self: Arc<Self>, name: String, url: String) -> Result<Connection, ConnectError> {
        let result = self.handshake(&name, &url).await;
        let first_failure = {
            let mut peers = self.peers.lock();
            let slot = peers.entry(name.clone()).or_default();
            slot.dialing = None;
            match &result {
                Ok(_) => false,
                Err(e) => {
                    let first = slot.last_error.is_none();
                    slot.backoff = (slot.backoff * 2).clamp(DIAL_BACKOFF_MIN, DIAL_BACKOFF_MAX);
                    slot.retry_at = Some(Instant::now() + slot.backoff);
                    slot.last_error = Some(e.clone());
                    first
                }
            }
        };
        match &result {
            Ok(conn) => {
                info!(peer = %name, addr = %conn.remote_address(), "connected to peer");
                self.register(conn.clone(), name, true);
            }
            // A peer that is down fails every dial: say so once, then quietly.
            Err(e) if first_failure => warn!(peer = %name, error = %e, "cannot reach peer"),
            Err(e) => debug!(peer = %name, error = %e, "cannot reach peer"),
        }
        result
    }

    async fn handshake(&self, name: &str, url: &str) -> Result<Connection, ConnectError> {
        let addr = resolve(url, self.local_addr)
            .await
            .map_err(|e| ConnectError::new(format!("{name}: {e}")))?;
        let connecting = {
            let endpoint = self.endpoint.lock();
            let endpoint = endpoint
                .as_ref()
                .ok_or_else(|| ConnectError::new("the peer transport is shut down"))?;
            endpoint
                .connect_with(self.client_config.clone(), addr, name)
                .map_err(|e| ConnectError::new(format!("cannot dial {name} at {addr}: {e}")))?
        };
        let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(ConnectError::new(format!(
                    "cannot connect to {name} at {addr}: {}: {e}",
                    handshake_failure(&e)
                )));
            }
            Err(_) => {
                return Err(ConnectError::new(format!(
                    "cannot connect to {name} at {addr}: no handshake within {HANDSHAKE_TIMEOUT:?}"
                )));
            }
        };
        match peer_name(&conn) {
            Ok(peer) if peer == name => Ok(conn),
            // Dialled by host (a member not yet named): TLS checked that the CA certified
            // this peer for that host, and whichever member it is, it is the one at the URL.
            Ok(_) if super::address::url_host(url) == name => Ok(conn),
            Ok(peer) => {
                conn.close(code::WRONG_PEER, b"not the member dialed");
                Err(ConnectError::new(format!(
                    "{addr} answered as member {peer:?}, not {name:?}"
                )))
            }
            Err(e) => {
                conn.close(code::WRONG_PEER, b"no member name");
                Err(ConnectError::new(format!("{name} at {addr}: {e}")))
            }
        }
    }

    /// Takes an established connection with member `name` into the cache and serves the
    /// streams the peer opens on it.
    pub(crate) fn register(self: &Arc<Self>, conn: Connection, name: String, dialed_by_us: bool) {
        if self.is_shut_down() {
            conn.close(code::SHUTDOWN, b"shutting down");
            return;
        }
        let redundant: Vec<Connection> = {
            let mut peers = self.peers.lock();
            let slot = peers.entry(name.clone()).or_default();
            slot.prune();
            slot.conns.push(PeerConn {
                conn: conn.clone(),
                dialed_by_us,
                silent: None,
            });
            slot.retry_at = None;
            slot.backoff = Duration::ZERO;
            slot.last_error = None;
            // Of two connections, the larger-named member gives up the one it dialed.
            if self.name > name && slot.conns.iter().any(|c| !c.dialed_by_us) {
                slot.conns
                    .iter()
                    .filter(|c| c.dialed_by_us)
                    .map(|c| c.conn.clone())
                    .collect()
            } else {
                Vec::new()
            }
        };
        for extra in redundant {
            tokio::spawn(self.clone().retire(name.clone(), extra));
        }
        tokio::spawn(server::serve_connection(self.clone(), conn, name));
    }

    async fn retire(self: Arc<Self>, name: String, conn: Connection) {
        let mut shut_down = self.shut_down.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(REDUNDANT_GRACE) => {}
            _ = conn.closed() => return,
            _ = shut_down.wait_for(|down| *down) => return,
        }
        let still_redundant = {
            let mut peers = self.peers.lock();
            match peers.get_mut(&name) {
                Some(slot) => {
                    slot.prune();
                    let other = slot.conns.iter().any(|c| !c.dialed_by_us);
                    if other {
                        slot.conns
                            .retain(|c| c.conn.stable_id() != conn.stable_id());
                    }
                    other
                }
                None => false,
            }
        };
        if still_redundant {
            debug!(peer = %name, "closing a redundant peer connection");
            conn.close(code::REDUNDANT, b"redundant connection");
        }
    }

    /// Drops a closed connection from the cache.
    pub(crate) fn forget(&self, name: &str, conn: &Connection) {
        if let Some(slot) = self.peers.lock().get_mut(name) {
            slot.conns
                .retain(|c| c.conn.stable_id() != conn.stable_id());
        }
    }

    /// A connection with `name` has closed for `reason`. One the peer refused on TLS grounds
    /// counts as a failed dial: with TLS 1.3 a client learns that its certificate was refused
    /// only after its side of the handshake is done.
    pub(crate) fn closed(&self, name: &str, conn: &Connection, reason: &ConnectionError) {
        let mut peers = self.peers.lock();
        let Some(slot) = peers.get_mut(name) else {
            return;
        };
        slot.conns
            .retain(|c| c.conn.stable_id() != conn.stable_id());
        if is_tls_failure(reason) && slot.conns.is_empty() {
            slot.backoff = (slot.backoff * 2).clamp(DIAL_BACKOFF_MIN, DIAL_BACKOFF_MAX);
            slot.retry_at = Some(Instant::now() + slot.backoff);
            slot.last_error = Some(ConnectError::new(format!(
                "{}: {reason}",
                handshake_failure(reason)
            )));
        }
    }

    /// An RPC on `conn` timed out and nothing at all came back from the peer meanwhile. If
    /// the peer has stayed silent since an earlier such timeout, at least [`SILENCE`] ago, it
    /// is gone (or restarted, and cannot answer for this connection): the connection is
    /// dropped, so the next RPC dials instead of waiting out the idle timeout. A live peer
    /// acknowledges packets within milliseconds, whatever its Raft is doing.
    pub(crate) fn silent(&self, name: &str, conn: &Connection) {
        let received = conn.stats().udp_rx.datagrams;
        let now = Instant::now();
        let gone = {
            let mut peers = self.peers.lock();
            let Some(entry) = peers.get_mut(name).and_then(|slot| {
                slot.conns
                    .iter_mut()
                    .find(|c| c.conn.stable_id() == conn.stable_id())
            }) else {
                return;
            };
            match entry.silent {
                Some((count, since)) if count == received => now.duration_since(since) >= SILENCE,
                _ => {
                    entry.silent = Some((received, now));
                    false
                }
            }
        };
        if gone {
            info!(peer = %name, "peer does not answer; dropping its connection");
            conn.close(code::UNRESPONSIVE, b"no answer");
            self.forget(name, conn);
        }
    }

    pub(crate) async fn shutdown(&self) {
        let Some(endpoint) = self.close() else {
            return;
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, endpoint.wait_idle()).await;
        drop(endpoint);
        let mut accepting = self.accepting.subscribe();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, accepting.wait_for(|n| *n == 0)).await;
        info!(member = %self.name, "peer transport shut down");
    }

    /// Closes every connection and the endpoint without waiting; hands back the endpoint to
    /// wait on, the first time only.
    pub(crate) fn close(&self) -> Option<Endpoint> {
        if self.shut_down.send_replace(true) {
            return None;
        }
        let conns: Vec<Connection> = self
            .peers
            .lock()
            .drain()
            .flat_map(|(_, slot)| slot.conns.into_iter().map(|c| c.conn))
            .collect();
        for conn in conns {
            conn.close(code::SHUTDOWN, b"shutting down");
        }
        // Lets go of the Raft: incoming RPCs get nothing more from it.
        self.service.send_replace(None);
        let endpoint = self.endpoint.lock().take();
        if let Some(endpoint) = &endpoint {
            endpoint.close(code::SHUTDOWN, b"shutting down");
        }
        endpoint
    }
}

/// Counts an accept loop as running for as long as its task lives, even if it is aborted.
struct AcceptGuard(Arc<Shared>);

impl Drop for AcceptGuard {
    fn drop(&mut self) {
        self.0.accepting.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The member name of the peer of an established connection: the CN of its certificate,
/// which the cluster CA signed.
pub(crate) fn peer_name(conn: &Connection) -> Result<String, String> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| "the peer presented no certificate".to_string())?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "the peer's identity is not a certificate chain".to_string())?;
    conclave_tls::peer_member_name(&chain).map_err(|e| e.to_string())
}

/// Whether a connection failed on TLS: QUIC carries TLS alerts as transport error codes
/// 0x100..=0x1ff.
pub(crate) fn is_tls_failure(error: &ConnectionError) -> bool {
    let is_tls = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match error {
        ConnectionError::TransportError(e) => is_tls(e.code),
        ConnectionError::ConnectionClosed(c) => is_tls(c.error_code),
        _ => false,
    }
}

/// Why a handshake failed, in words an operator can act on.
pub(crate) fn handshake_failure(error: &ConnectionError) -> &'static str {
    let is_tls = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match error {
        ConnectionError::TransportError(e) if is_tls(e.code) => {
            "the TLS handshake failed (the peer's certificate is not from the cluster CA, or \
             not for the member expected)"
        }
        ConnectionError::ConnectionClosed(c) if is_tls(c.error_code) => {
            "the peer refused the TLS handshake (our certificate is not from its CA?)"
        }
        _ => "the handshake did not complete",
    }
}

/// Whether a connection ended for a reason worth no more than a debug line.
pub(crate) fn ordinary_close(error: &ConnectionError) -> bool {
    match error {
        ConnectionError::LocallyClosed => true,
        ConnectionError::ApplicationClosed(close) => {
            close.error_code == code::SHUTDOWN || close.error_code == code::REDUNDANT
        }
        _ => false,
    }
}

/// The socket address of a peer URL (`https://host:port`; any scheme, or none), preferring
/// the address family we are bound to.
async fn resolve(url: &str, local: SocketAddr) -> Result<SocketAddr, String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("peer URL {url:?} has no host:port"));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("cannot resolve peer URL {url:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("peer URL {url:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peer_urls() {
        let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            resolve("https://127.0.0.1:12380", v4).await.unwrap(),
            "127.0.0.1:12380".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1:7/", v4).await.unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        assert_eq!(
            resolve("https://[::1]:2380", v4).await.unwrap(),
            "[::1]:2380".parse().unwrap()
        );
        assert!(resolve("https://", v4).await.is_err());
        assert!(resolve("https://127.0.0.1", v4).await.is_err());
    }
}
