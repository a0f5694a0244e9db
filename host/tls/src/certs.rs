//! Making the certificates: a cluster CA, and for each member a certificate signed by it that
//! serves both ends of mutual TLS. Used by `conclavectl certs`, by the server when it is given
//! no `--peer-*` files, and by `member add`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Result, TlsError};
use crate::files::{
    CA_CERT, CA_KEY, create_dir, member_cert_path, member_key_path, read_certs, read_text,
    write_file,
};
use crate::names::{member_sans, validate_member_name, validate_member_names};

/// How long the CA and the member certificates are valid: ten years, since a cluster has no
/// rotation yet and an expired peer certificate stops the cluster.
const VALIDITY: Duration = Duration::days(3653);
/// Certificates are valid from a little before they are made, so a member whose clock is
/// slightly behind the one that made them still accepts them.
const CLOCK_SKEW: Duration = Duration::hours(1);
/// The organisation in every subject.
const ORGANIZATION: &str = "conclave";

/// A member's certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFiles {
    /// The member name: the certificate's CN and a DNS subject alternative name.
    pub name: String,
    /// `<dir>/<name>.crt`
    pub cert: PathBuf,
    /// `<dir>/<name>.key` (mode 0600)
    pub key: PathBuf,
}

/// The files [`init_certs`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// `<dir>/ca.crt`: every member's `--peer-trusted-ca-file`.
    pub ca_cert: PathBuf,
    /// `<dir>/ca.key` (mode 0600): signs new members; keep it off the members if you can.
    pub ca_key: PathBuf,
    /// One entry per member name, in the order given.
    pub members: Vec<MemberFiles>,
}

impl CertFiles {
    /// Every file, CA first.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.ca_cert.as_path(), self.ca_key.as_path()];
        for member in &self.members {
            paths.push(&member.cert);
            paths.push(&member.key);
        }
        paths
    }
}

/// The peer TLS files of one member, as [`crate::PeerTls::load`] takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// The member's certificate (`--peer-cert-file`).
    pub cert: PathBuf,
    /// The member's key (`--peer-key-file`).
    pub key: PathBuf,
    /// The cluster CA's certificate (`--peer-trusted-ca-file`).
    pub ca: PathBuf,
    /// Whether any of them was made just now (worth a line in the log), rather than reused.
    pub created: bool,
}

/// Makes a cluster CA (self-signed, ECDSA P-256, ten years) in `out_dir`, and a certificate
/// for each of `names` signed by it: CN the name; subject alternative names the name, every
/// one of `hosts` (IP address or DNS name) and localhost, 127.0.0.1 and ::1; extended key
/// usages serverAuth and clientAuth, since one certificate serves both ends of mutual TLS.
///
/// Writes `ca.crt`, `ca.key`, `<name>.crt` and `<name>.key` (PEM; keys with mode 0600),
/// creating `out_dir` if needed. Refuses, before writing anything, if any of these files
/// exists, unless `overwrite`: replacing the CA means every member needs a new certificate.
pub fn init_certs(
    out_dir: &Path,
    names: &[String],
    hosts: &[String],
    overwrite: bool,
) -> Result<CertFiles> {
    validate_member_names(names)?;
    for name in names {
        member_sans(name, hosts)?;
    }
    let files = CertFiles {
        ca_cert: out_dir.join(CA_CERT),
        ca_key: out_dir.join(CA_KEY),
        members: names
            .iter()
            .map(|name| MemberFiles {
                name: name.clone(),
                cert: member_cert_path(out_dir, name),
                key: member_key_path(out_dir, name),
            })
            .collect(),
    };
    if !overwrite {
        for path in files.paths() {
            refuse_existing(
                path,
                " (replacing the cluster CA means every member needs a new certificate; \
                 ask to overwrite, e.g. `conclavectl certs init --force`, to do it)",
            )?;
        }
    }
    create_dir(out_dir)?;
    let (ca, ca_cert_pem) = Ca::generate()?;
    // Sign every member before writing anything, so a failure leaves no half-made directory.
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        signed.push(ca.sign_member(name, hosts)?);
    }
    write_file(&files.ca_cert, &ca_cert_pem, false)?;
    write_file(&files.ca_key, &ca.issuer.key().serialize_pem(), true)?;
    for (member, (cert_pem, key_pem)) in files.members.iter().zip(signed) {
        write_file(&member.cert, &cert_pem, false)?;
        write_file(&member.key, &key_pem, true)?;
    }
    Ok(files)
}

/// Signs a certificate for a new member `name` (as [`init_certs`] does) with the CA whose
/// `ca.crt` and `ca.key` are in `out_dir`, and writes `<name>.crt` and `<name>.key` there.
/// Refuses if either file exists: a member's certificate is made once.
pub fn add_member_cert(out_dir: &Path, name: &str, hosts: &[String]) -> Result<MemberFiles> {
    member_sans(name, hosts)?;
    let files = MemberFiles {
        name: name.to_string(),
        cert: member_cert_path(out_dir, name),
        key: member_key_path(out_dir, name),
    };
    let hint = " (a member's certificate is made once; remove its files to make it again)";
    refuse_existing(&files.cert, hint)?;
    refuse_existing(&files.key, hint)?;
    let ca = Ca::load(&out_dir.join(CA_CERT), &out_dir.join(CA_KEY))?;
    let (cert_pem, key_pem) = ca.sign_member(name, hosts)?;
    write_file(&files.cert, &cert_pem, false)?;
    write_file(&files.key, &key_pem, true)?;
    Ok(files)
}

/// The peer TLS files of a member started without `--peer-*` flags, in `<data_dir>/tls/`:
/// reused if `ca.crt`, `<name>.crt` and `<name>.key` are there; a new member certificate if
/// only the CA (with `ca.key`) is; otherwise a fresh CA and the member certificate.
///
/// Members of one cluster must share the CA, or they refuse each other. A fresh CA per data
/// directory is therefore right for a single node only: a multi-member dev cluster makes the
/// CA once with [`init_certs`] (every member's certificate at once) and hands each member its
/// files, as the server's `dev` command does.
pub fn dev_certs(data_dir: &Path, name: &str, hosts: &[String]) -> Result<DevCerts> {
    validate_member_name(name)?;
    let dir = data_dir.join("tls");
    let ca = dir.join(CA_CERT);
    let ca_key = dir.join(CA_KEY);
    let cert = member_cert_path(&dir, name);
    let key = member_key_path(&dir, name);
    let exists = |p: &Path| {
        p.try_exists()
            .map_err(|e| TlsError::io("cannot inspect", p, e))
    };
    let (has_ca, has_ca_key, has_cert, has_key) = (
        exists(&ca)?,
        exists(&ca_key)?,
        exists(&cert)?,
        exists(&key)?,
    );
    let incomplete = |reason: String| {
        Err(TlsError::Incomplete {
            dir: dir.clone(),
            reason,
        })
    };
    let created = match (has_ca, has_cert, has_key) {
        (true, true, true) => false,
        (true, true, false) => {
            return incomplete(format!(
                "{name}.crt is there but not {name}.key; remove the directory to start over"
            ));
        }
        (true, false, _) if has_ca_key => {
            add_member_cert(&dir, name, hosts)?;
            true
        }
        (true, false, _) => {
            return incomplete(format!(
                "{CA_CERT} is there but neither {name}.crt nor {CA_KEY} to make it; \
                 give the member its certificate (conclavectl certs add on the CA's directory)"
            ));
        }
        (false, _, _) if has_ca_key || has_cert || has_key => {
            return incomplete(format!(
                "{CA_CERT} is missing but other certificate files are there; \
                 remove the directory to start over"
            ));
        }
        (false, _, _) => {
            init_certs(&dir, &[name.to_string()], hosts, false)?;
            true
        }
    };
    Ok(DevCerts {
        cert,
        key,
        ca,
        created,
    })
}

fn refuse_existing(path: &Path, hint: &'static str) -> Result<()> {
    match path.try_exists() {
        Ok(false) => Ok(()),
        Ok(true) => Err(TlsError::Exists {
            path: path.to_path_buf(),
            hint,
        }),
        Err(e) => Err(TlsError::io("cannot inspect", path, e)),
    }
}

/// A CA that can sign member certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// No member certificate outlives its CA.
    not_after: OffsetDateTime,
}

impl Ca {
    /// A fresh CA, and its certificate in PEM.
    fn generate() -> Result<(Ca, String)> {
        let key = new_key()?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        // A CN of its own per CA, so a certificate from another cluster's CA is reported as
        // an unknown issuer rather than a bad signature.
        let id: String = key
            .public_key_raw()
            .iter()
            .skip(1)
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        params.distinguished_name = subject(&format!("conclave cluster CA {id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::rcgen("cannot make the CA certificate", e))?;
        let not_after = params.not_after;
        Ok((
            Ca {
                issuer: Issuer::new(params, key),
                not_after,
            },
            cert.pem(),
        ))
    }

    /// The CA in `cert_path` with its key in `key_path`, checked to belong together.
    fn load(cert_path: &Path, key_path: &Path) -> Result<Ca> {
        let der = read_certs(cert_path)?.swap_remove(0);
        let key_pem = read_text(key_path)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::rcgen(format!("{}", key_path.display()), e))?;
        let (_, x509) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason: e.to_string(),
            })?;
        if !x509.is_ca() {
            return Err(TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason: "not a CA certificate (no CA basic constraint)".into(),
            });
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::CaKeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        let not_after = x509.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| TlsError::rcgen(format!("{}", cert_path.display()), e))?;
        Ok(Ca { issuer, not_after })
    }

    /// A member certificate and its new key, both in PEM.
    fn sign_member(&self, name: &str, hosts: &[String]) -> Result<(String, String)> {
        let key = new_key()?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.subject_alt_names = member_sans(name, hosts)?;
        params.distinguished_name = subject(name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = (now + VALIDITY).min(self.not_after);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| TlsError::rcgen(format!("cannot sign the certificate of {name}"), e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::rcgen("cannot generate an ECDSA P-256 key", e))
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use std::fs;

    use x509_parser::extensions::GeneralName;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn init_writes_the_ca_and_one_pair_per_member() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let files = init_certs(
            &out,
            &names(&["n1", "n2"]),
            &names(&["10.0.0.7", "db.example"]),
            false,
        )
        .unwrap();
        let listed: Vec<_> = files
            .paths()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            listed,
            ["ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key"]
        );
        for path in files.paths() {
            assert!(
                path.starts_with(&out) && path.is_file(),
                "{}",
                path.display()
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&files.ca_key, &files.members[0].key, &files.members[1].key] {
                let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }

        let ca_der = read_certs(&files.ca_cert).unwrap().remove(0);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca.is_ca());
        let years =
            (ca.validity().not_after.to_datetime() - OffsetDateTime::now_utc()).whole_days() / 365;
        assert_eq!(years, 10);

        let der = read_certs(&files.members[1].cert).unwrap().remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!cert.is_ca());
        assert_eq!(cert.issuer(), ca.subject());
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "n2");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                    _ => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                },
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            [
                "n2",
                "10.0.0.7",
                "db.example",
                "localhost",
                "127.0.0.1",
                "::1"
            ]
        );
    }

    #[test]
    fn init_refuses_to_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let first = init_certs(dir.path(), &names(&["n1"]), &[], false).unwrap();
        let before = fs::read_to_string(&first.ca_cert).unwrap();
        let err = init_certs(dir.path(), &names(&["n1"]), &[], false).unwrap_err();
        assert!(
            matches!(&err, TlsError::Exists { path, .. } if *path == first.ca_cert),
            "{err}"
        );
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert_eq!(fs::read_to_string(&first.ca_cert).unwrap(), before);

        // A member file alone is enough to refuse too, and nothing is written.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("n2.key"), "mine").unwrap();
        let err = init_certs(other.path(), &names(&["n1", "n2"]), &[], false).unwrap_err();
        assert!(matches!(err, TlsError::Exists { .. }), "{err}");
        assert!(!other.path().join("ca.crt").exists());

        init_certs(dir.path(), &names(&["n1"]), &[], true).unwrap();
        assert_ne!(fs::read_to_string(&first.ca_cert).unwrap(), before);
    }

    #[test]
    fn init_refuses_bad_names_and_hosts_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        for (names, hosts) in [
            (names(&["n1", "bad.name"]), vec![]),
            (names(&["n1", "n1"]), vec![]),
            (vec![], vec![]),
            (names(&["n1"]), names(&["not a host"])),
        ] {
            let err = init_certs(dir.path(), &names, &hosts, false).unwrap_err();
            assert!(
                matches!(
                    err,
                    TlsError::InvalidName { .. }
                        | TlsError::DuplicateName(_)
                        | TlsError::NoNames
                        | TlsError::InvalidHost(_)
                ),
                "{err}"
            );
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn add_signs_with_the_existing_ca_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = init_certs(dir.path(), &names(&["n1"]), &[], false).unwrap();
        let ca_before = fs::read(&files.ca_cert).unwrap();
        let added = add_member_cert(dir.path(), "n4", &names(&["10.1.2.3"])).unwrap();
        assert_eq!(added.cert, dir.path().join("n4.crt"));
        assert_eq!(fs::read(&files.ca_cert).unwrap(), ca_before);
        let ca_der = read_certs(&files.ca_cert).unwrap().remove(0);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let der = read_certs(&added.cert).unwrap().remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        assert!(cert.validity().not_after <= ca.validity().not_after);

        let err = add_member_cert(dir.path(), "n4", &[]).unwrap_err();
        assert!(matches!(err, TlsError::Exists { .. }), "{err}");
        let err = add_member_cert(dir.path(), "ca", &[]).unwrap_err();
        assert!(matches!(err, TlsError::InvalidName { .. }), "{err}");
    }

    #[test]
    fn add_needs_a_ca_and_its_own_key() {
        let empty = tempfile::tempdir().unwrap();
        let err = add_member_cert(empty.path(), "n4", &[]).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");

        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_certs(a.path(), &names(&["n1"]), &[], false).unwrap();
        init_certs(b.path(), &names(&["n1"]), &[], false).unwrap();
        fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
        let err = add_member_cert(a.path(), "n4", &[]).unwrap_err();
        assert!(matches!(err, TlsError::CaKeyMismatch { .. }), "{err}");

        // A member certificate is no CA.
        fs::copy(a.path().join("n1.crt"), a.path().join("ca.crt")).unwrap();
        fs::copy(a.path().join("n1.key"), a.path().join("ca.key")).unwrap();
        let err = add_member_cert(a.path(), "n4", &[]).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn dev_certs_are_made_once_then_reused() {
        let data = tempfile::tempdir().unwrap();
        let made = dev_certs(data.path(), "n1", &[]).unwrap();
        assert!(made.created);
        assert_eq!(made.ca, data.path().join("tls/ca.crt"));
        assert_eq!(made.cert, data.path().join("tls/n1.crt"));
        assert_eq!(made.key, data.path().join("tls/n1.key"));
        let cert = fs::read(&made.cert).unwrap();

        let again = dev_certs(data.path(), "n1", &[]).unwrap();
        assert!(!again.created);
        assert_eq!(fs::read(&again.cert).unwrap(), cert);

        // Another name in the same directory gets a certificate from the same CA.
        let ca = fs::read(&made.ca).unwrap();
        let other = dev_certs(data.path(), "n2", &[]).unwrap();
        assert!(other.created);
        assert_eq!(fs::read(&other.ca).unwrap(), ca);

        fs::remove_file(&made.key).unwrap();
        let err = dev_certs(data.path(), "n1", &[]).unwrap_err();
        assert!(matches!(err, TlsError::Incomplete { .. }), "{err}");
    }

    #[test]
    fn dev_certs_use_a_shared_ca_without_its_key() {
        let shared = tempfile::tempdir().unwrap();
        let files = init_certs(shared.path(), &names(&["n1", "n2"]), &[], false).unwrap();
        let data = tempfile::tempdir().unwrap();
        let tls = data.path().join("tls");
        fs::create_dir(&tls).unwrap();
        fs::copy(&files.ca_cert, tls.join("ca.crt")).unwrap();
        fs::copy(&files.members[1].cert, tls.join("n2.crt")).unwrap();
        fs::copy(&files.members[1].key, tls.join("n2.key")).unwrap();
        let reused = dev_certs(data.path(), "n2", &[]).unwrap();
        assert!(!reused.created);
        let err = dev_certs(data.path(), "n3", &[]).unwrap_err();
        assert!(matches!(err, TlsError::Incomplete { .. }), "{err}");
    }
}
