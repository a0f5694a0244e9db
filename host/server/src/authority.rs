//! The client port's TCP listener: every connection goes through `conclave_authority`'s
//! `:authority` repair, with Nagle's algorithm off.

use std::io;
use std::net::SocketAddr;

use axum::serve::Listener;
pub use conclave_authority::AuthorityFix;
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// A TCP listener whose connections repair etcdctl's `:authority` (see `conclave_authority`) and
/// have Nagle's algorithm off, since small RPCs must not wait for it.
#[derive(Debug)]
pub struct AuthorityListener {
    inner: TcpListener,
}

impl AuthorityListener {
    pub fn new(inner: TcpListener) -> Self {
        AuthorityListener { inner }
    }
}

impl Listener for AuthorityListener {
    type Io = AuthorityFix<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's accept loop logs and retries accept errors.
        let (tcp, addr) = Listener::accept(&mut self.inner).await;
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, %addr, "cannot set TCP_NODELAY");
        }
        (AuthorityFix::new(tcp), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
