//! How making, loading and checking peer certificates fails: one error type, every variant
//! naming the file or the input at fault, so an operator can act on the message alone. The
//! underlying error is part of the message rather than a `source()`, so that printing a chain
//! does not repeat it.

use std::io;
use std::path::PathBuf;

/// A failure of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{action} {path}: {error}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },

    /// A member name that cannot serve as a DNS label (it is the certificate's CN and a DNS
    /// subject alternative name, and names the files).
    #[error("invalid member name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// The same member name given twice.
    #[error("member name {0:?} is given more than once")]
    DuplicateName(String),

    /// `init_certs` without any member.
    #[error("no member names given")]
    NoNames,

    /// An extra host that is neither an IP address nor a DNS name.
    #[error("invalid host {0:?}: not an IP address or a DNS name")]
    InvalidHost(String),

    /// A file that would be replaced when replacing was not asked for.
    #[error("{path} already exists; refusing to overwrite it{hint}", path = path.display())]
    Exists { path: PathBuf, hint: &'static str },

    /// A PEM file that cannot be parsed.
    #[error("{path}: not a valid PEM file: {reason}", path = path.display())]
    Pem { path: PathBuf, reason: String },

    /// A PEM file without any certificate in it.
    #[error("{path}: no certificate in the file", path = path.display())]
    NoCertificate { path: PathBuf },

    /// A PEM file without a private key in it.
    #[error("{path}: no private key in the file", path = path.display())]
    NoPrivateKey { path: PathBuf },

    /// rcgen could not build or sign a certificate, or read a key or certificate.
    #[error("{context}: {error}")]
    Rcgen {
        context: String,
        error: rcgen::Error,
    },

    /// The CA key does not belong to the CA certificate.
    #[error("{key} is not the private key of the CA certificate {cert}", key = key.display(), cert = cert.display())]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },

    /// A certificate file that is not a valid X.509 certificate.
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    BadCertificate { what: String, reason: String },

    /// rustls refused the certificate, the key or the configuration.
    #[error("{context}: {error}")]
    Rustls {
        context: String,
        error: rustls::Error,
    },

    /// The trusted CA file cannot make a client verifier.
    #[error("{path}: cannot verify peers with these CA certificates: {error}", path = path.display())]
    Verifier {
        path: PathBuf,
        error: rustls::server::VerifierBuilderError,
    },

    /// An established connection without a peer certificate (never the case with the
    /// configurations of [`crate::PeerTls`], which require one on both ends).
    #[error("the peer presented no certificate")]
    NoPeerCertificate,

    /// A certificate whose subject has no common name (CN).
    #[error("{0}: the certificate's subject has no common name (CN)")]
    NoCommonName(String),

    /// A TLS directory left half made: some of the CA and member files are there, not all.
    #[error("{dir}: {reason}", dir = dir.display())]
    Incomplete { dir: PathBuf, reason: String },
}

impl TlsError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        TlsError::Io {
            action,
            path: path.into(),
            error,
        }
    }

    pub(crate) fn rcgen(context: impl Into<String>, error: rcgen::Error) -> Self {
        TlsError::Rcgen {
            context: context.into(),
            error,
        }
    }

    pub(crate) fn rustls(context: impl Into<String>, error: rustls::Error) -> Self {
        TlsError::Rustls {
            context: context.into(),
            error,
        }
    }
}

/// The result of this crate's operations.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;
