//! TLS on the client port, with etcd's flags: `--cert-file` and `--key-file` (the server's
//! certificate), `--trusted-ca-file` (the CA client certificates must come from) and
//! `--client-cert-auth` (require one; its CN is then the user, as in etcd). Handshakes run in
//! their own tasks, so a slow or hostile client never holds up the accept loop. Members never
//! call each other here (they use the peer transport), so this is the server side only.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::Listener;
use conclave_tls::{peer_member_name, read_certs, read_key};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::auth::ClientIdentity;
use crate::authority::{AuthorityFix, AuthorityListener};
use crate::config::Config;
use crate::http_serve::ClientListener;

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 128;

/// The client port's TLS settings.
#[derive(Clone)]
pub struct ClientTls {
    pub server: Arc<rustls::ServerConfig>,
}

impl ClientTls {
    /// From the flags; None when no certificate is given.
    pub fn load(config: &Config) -> anyhow::Result<Option<ClientTls>> {
        let https = config.client_urls().any(|u| u.starts_with("https://"));
        let (cert, key) = match (&config.cert_file, &config.key_file) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) if config.auto_tls && https => {
                let own = conclave_tls::dev_certs(&config.data_dir(), &config.name, &[])
                    .context("--auto-tls: cannot make a certificate")?;
                tracing::warn!(
                    ca = %own.ca.display(),
                    "--auto-tls: clients get a certificate conclave made itself; they must skip \
                     verification or trust its CA"
                );
                (own.cert, own.key)
            }
            (None, None) => {
                if config.client_cert_auth || config.trusted_ca_file.is_some() {
                    bail!(
                        "--client-cert-auth and --trusted-ca-file need --cert-file and --key-file"
                    );
                }
                return Ok(None);
            }
            _ => bail!("--cert-file and --key-file go together"),
        };
        let chain = read_certs(&cert).with_context(|| format!("--cert-file {}", cert.display()))?;
        let private = read_key(&key).with_context(|| format!("--key-file {}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match (&config.trusted_ca_file, config.client_cert_auth) {
            (Some(ca), true) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                        .build()
                        .with_context(|| format!("--trusted-ca-file {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            (None, true) => bail!("--client-cert-auth needs --trusted-ca-file"),
            (_, false) => builder.with_no_client_auth(),
        };
        let mut server = builder
            .with_single_cert(chain, private)
            .with_context(|| format!("{} with the key {}", cert.display(), key.display()))?;
        // gRPC speaks HTTP/2; the JSON gateway also HTTP/1.1.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(ClientTls {
            server: Arc::new(server),
        }))
    }
}

fn roots(ca: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca).with_context(|| format!("--trusted-ca-file {}", ca.display()))? {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
    }
    Ok(roots)
}

/// Accepts TCP connections and hands on the ones whose TLS handshake succeeds.
pub struct TlsListener {
    accepted: mpsc::Receiver<(AuthorityFix<TlsStream<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            let mut tcp = AuthorityListener::new(tcp);
            loop {
                let (stream, addr) = Listener::accept(&mut tcp).await;
                if tx.is_closed() {
                    return;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let tcp = stream.into_inner();
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((AuthorityFix::new(tls), addr)).await;
                        }
                        Ok(Err(e)) => debug!(%addr, error = %e, "TLS handshake refused"),
                        Err(_) => debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local })
    }
}

impl Listener for TlsListener {
    type Io = AuthorityFix<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept task ends only with the listener; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl ClientListener for TlsListener {
    fn identity(io: &Self::Io) -> ClientIdentity {
        let (_, session) = io.get_ref().get_ref();
        ClientIdentity(
            session
                .peer_certificates()
                .and_then(|chain| peer_member_name(chain).ok()),
        )
    }
}

impl ClientListener for AuthorityListener {
    fn identity(_: &Self::Io) -> ClientIdentity {
        ClientIdentity(None)
    }
}
