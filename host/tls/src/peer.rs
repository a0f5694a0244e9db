//! The rustls configurations of the peer transport: both ends present their member
//! certificate and accept only certificates from the cluster CA (mutual TLS), TLS 1.3 only,
//! the ring provider, ALPN `conclave-peer/1`; and who is on the other end of a connection.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::error::{Result, TlsError};
use crate::files::{read_certs, read_key};
use crate::unauthenticated::AnyPeer;

/// How a dialling member checks the member it reaches.
enum Verify {
    /// Against the cluster CA.
    Roots(Arc<RootCertStore>),
    /// Not at all (`--peer-auto-tls`).
    Anyone(Arc<AnyPeer>),
}

/// The ALPN protocol of the peer transport; a connection that does not speak it is refused.
pub const PEER_ALPN: &[u8] = b"conclave-peer/1";

/// One member's peer TLS: the server configuration that accepts peers and the client
/// configuration that dials them, both from the same certificate and the same CA.
///
/// A dialling member should name the member it expects as the server name (its member name is
/// a DNS subject alternative name of its certificate), so a peer is checked by who it is, not
/// by the address it happens to have.
#[derive(Clone, Debug)]
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: String,
}

impl PeerTls {
    /// Loads the member's certificate chain (`--peer-cert-file`, its own certificate first),
    /// its key (`--peer-key-file`) and the cluster CA (`--peer-trusted-ca-file`, one or more
    /// certificates). Fails early, naming the file, if the key is not the certificate's or the
    /// certificate is not signed by the CA for client authentication.
    pub fn load(cert_file: &Path, key_file: &Path, trusted_ca_file: &Path) -> Result<PeerTls> {
        let chain = read_certs(cert_file)?;
        let key = read_key(key_file)?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(trusted_ca_file)? {
            roots.add(ca).map_err(|e| {
                TlsError::rustls(
                    format!("{}: not a usable CA certificate", trusted_ca_file.display()),
                    e,
                )
            })?;
        }
        let roots = Arc::new(roots);
        let provider = crypto_provider();
        let name =
            peer_member_name(&chain).map_err(|e| with_what(e, &cert_file.display().to_string()))?;

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|error| TlsError::Verifier {
                path: trusted_ca_file.to_path_buf(),
                error,
            })?;
        // Our own certificate must pass the check every peer will make of it: better a clear
        // error at start than every peer refusing us.
        let (end_entity, intermediates) = chain.split_first().ok_or(TlsError::NoCertificate {
            path: cert_file.to_path_buf(),
        })?;
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|e| {
                TlsError::rustls(
                    format!(
                        "{} is not accepted by the CA in {}",
                        cert_file.display(),
                        trusted_ca_file.display()
                    ),
                    e,
                )
            })?;

        Self::build(
            chain,
            key,
            name,
            verifier,
            Verify::Roots(roots),
            cert_file,
            key_file,
        )
    }

    /// etcd's `--peer-auto-tls`: this member's own certificate (`cert_file`, `key_file`,
    /// made for it), and peers accepted whatever certificate they show. Connections are
    /// encrypted, but peers are not authenticated (see `unauthenticated`).
    pub fn load_unauthenticated(cert_file: &Path, key_file: &Path) -> Result<PeerTls> {
        let chain = read_certs(cert_file)?;
        let key = read_key(key_file)?;
        let name =
            peer_member_name(&chain).map_err(|e| with_what(e, &cert_file.display().to_string()))?;
        let any = AnyPeer::new(crypto_provider());
        Self::build(
            chain,
            key,
            name,
            any.clone(),
            Verify::Anyone(any),
            cert_file,
            key_file,
        )
    }

    /// Both configurations from the member's certificate and how peers are checked.
    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
        name: String,
        verifier: Arc<dyn ClientCertVerifier>,
        servers: Verify,
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<PeerTls> {
        let provider = crypto_provider();
        let key_context = || {
            format!(
                "{} with the key {}",
                cert_file.display(),
                key_file.display()
            )
        };
        let mut server = builder_error(
            ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13]),
        )?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| TlsError::rustls(key_context(), e))?;
        server.alpn_protocols = vec![PEER_ALPN.to_vec()];
        // No 0-RTT: early data can be replayed (docs/ARCHITECTURE.md, decision 2).
        server.max_early_data_size = 0;

        let client = builder_error(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13]),
        )?;
        let client = match servers {
            Verify::Roots(roots) => client.with_root_certificates(roots),
            Verify::Anyone(any) => client.dangerous().with_custom_certificate_verifier(any),
        };
        let mut client = client
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::rustls(key_context(), e))?;
        client.alpn_protocols = vec![PEER_ALPN.to_vec()];
        client.enable_early_data = false;

        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
            name,
        })
    }

    /// Accepts peers: requires a client certificate from the cluster CA.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// Dials peers: verifies the server against the cluster CA and presents our certificate.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.client
    }

    /// Our own member name: the CN of our certificate.
    pub fn member_name(&self) -> &str {
        &self.name
    }
}

/// The member name of the peer of an established connection: the common name (CN) of the
/// first certificate of the chain it presented (rustls' `peer_certificates()`; quinn's
/// `Connection::peer_identity()` downcast to `Vec<CertificateDer>`). The chain has been
/// verified against the cluster CA by then, so the name can be trusted.
pub fn peer_member_name(chain: &[CertificateDer<'_>]) -> Result<String> {
    let cert = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    let what = "the peer certificate";
    let (_, x509) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::BadCertificate {
            what: what.into(),
            reason: e.to_string(),
        })?;
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .ok_or_else(|| TlsError::NoCommonName(what.into()))?;
    let cn = cn.as_str().map_err(|e| TlsError::BadCertificate {
        what: what.into(),
        reason: format!("common name: {e}"),
    })?;
    Ok(cn.to_string())
}

/// Names the file in an error about "the peer certificate".
fn with_what(e: TlsError, what: &str) -> TlsError {
    match e {
        TlsError::BadCertificate { reason, .. } => TlsError::BadCertificate {
            what: what.into(),
            reason,
        },
        TlsError::NoCommonName(_) => TlsError::NoCommonName(what.into()),
        other => other,
    }
}

fn builder_error<T>(result: std::result::Result<T, rustls::Error>) -> Result<T> {
    result.map_err(|e| TlsError::rustls("the ring provider does not support TLS 1.3", e))
}

/// ring, explicitly: never whichever provider happens to be the process default.
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
