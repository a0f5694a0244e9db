//! The files: writing PEM so that a crash never leaves half a key and a key is never readable
//! by others, and reading certificates and keys back with errors that name the file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Result, TlsError};

/// The CA certificate's file name in a certificate directory.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file name in a certificate directory.
pub const CA_KEY: &str = "ca.key";

/// `<dir>/<name>.crt`
pub fn member_cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.crt"))
}

/// `<dir>/<name>.key`
pub fn member_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key"))
}

/// Creates `dir` and its parents; the ones created are private to the owner (keys live there).
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| TlsError::io("cannot create directory", dir, e))
}

/// Writes `contents` to `path` through a temporary file renamed over it, so readers see the old
/// file or the whole new one. A `private` file (a key) is created with mode 0600: the mode is
/// set when the temporary file is created, so the key is never readable by others, even when
/// it replaces a file that was.
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    let tmp = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        path.with_file_name(name)
    };
    // A temporary file left by a crash is ours to replace; create_new below then guarantees
    // the mode we ask for.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TlsError::io("cannot remove", &tmp, e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file: File = options
        .open(&tmp)
        .map_err(|e| TlsError::io("cannot create", &tmp, e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError::io("cannot write", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| TlsError::io("cannot write", path, e))?;
    if let Some(dir) = path.parent() {
        // Make the rename durable; a directory that cannot be opened (some platforms) is not
        // worth failing for.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Reads a whole text file.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| TlsError::io("cannot read", path, e))
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    match e {
        pem::Error::Io(source) => TlsError::io("cannot read", path, source),
        other => TlsError::Pem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Every certificate in a PEM file, in order (the member's own first, then any
/// intermediates); at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn keys_are_private_even_over_a_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&path, "new", true).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert!(!dir.path().join("k.key.tmp").exists());
    }

    #[test]
    fn reading_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let err = read_certs(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.crt"), "{err}");
        let empty = dir.path().join("empty.crt");
        fs::write(&empty, "not pem\n").unwrap();
        assert!(matches!(
            read_certs(&empty),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            read_key(&empty),
            Err(TlsError::NoPrivateKey { .. })
        ));
    }
}
