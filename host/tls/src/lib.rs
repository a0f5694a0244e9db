//! conclave's peer TLS (docs/ARCHITECTURE.md, decision 2): the cluster CA and the member certificates,
//! made with rcgen, and the mutual-TLS rustls configurations (ring provider, TLS 1.3 only) the
//! QUIC transport between members is built on.
//!
//! Every member of a cluster holds a certificate signed by the cluster CA, whose CN and DNS
//! subject alternative name are its member name, usable for both ends of a connection; every
//! member trusts that CA only. A peer whose certificate comes from another CA is refused by
//! either end.

mod certs;
mod error;
mod files;
mod names;
mod peer;
mod unauthenticated;

pub use certs::{CertFiles, DevCerts, MemberFiles, add_member_cert, dev_certs, init_certs};
pub use error::{Result, TlsError};
pub use files::{CA_CERT, CA_KEY, member_cert_path, member_key_path, read_certs, read_key};
pub use names::validate_member_name;
pub use peer::{PEER_ALPN, PeerTls, peer_member_name};
