//! TLS on the client port with etcdctl 3.4: certificates from `conclavectl certs init`
//! (rcgen), `--cert-file --key-file --trusted-ca-file --client-cert-auth`; etcdctl with
//! `--cacert --cert --key` works, a client without a certificate or with one from another CA
//! is refused, and with auth on a certificate's CN is the user, as in etcd.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Server, conclavectl, etcdctl_at, etcdctl_error, free_port, stdout_ok};

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    foreign: PathBuf,
}

impl Pki {
    /// A CA with certificates for `server`, `root` and `alice`, made by conclavectl, and
    /// another CA with one for `mallory`.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("pki");
        stdout_ok(&conclavectl(
            "127.0.0.1:1",
            &[
                "certs",
                "init",
                "--out",
                out.to_str().unwrap(),
                "--names",
                "server,root,alice",
            ],
        ));
        let foreign = dir.path().join("foreign");
        stdout_ok(&conclavectl(
            "127.0.0.1:1",
            &[
                "certs",
                "init",
                "--out",
                foreign.to_str().unwrap(),
                "--names",
                "mallory",
            ],
        ));
        Pki {
            ca: out.clone(),
            foreign,
            _dir: dir,
        }
    }

    fn file(dir: &Path, name: &str) -> String {
        dir.join(name).to_str().expect("a UTF-8 path").to_string()
    }

    /// The server's flags: an https client URL beside the harness's http one.
    fn server_flags(&self, port: u16, client_cert_auth: bool) -> Vec<String> {
        let mut flags = vec![
            "--listen-client-urls".to_string(),
            format!("https://127.0.0.1:{port}"),
            "--cert-file".into(),
            Self::file(&self.ca, "server.crt"),
            "--key-file".into(),
            Self::file(&self.ca, "server.key"),
            "--trusted-ca-file".into(),
            Self::file(&self.ca, "ca.crt"),
        ];
        if client_cert_auth {
            flags.push("--client-cert-auth".into());
        }
        flags
    }

    /// etcdctl over TLS as `who` (a certificate name; None for no client certificate).
    fn etcdctl(&self, port: u16, who: Option<(&Path, &str)>, args: &[&str]) -> Output {
        let mut all = vec![format!("--cacert={}", Self::file(&self.ca, "ca.crt"))];
        if let Some((dir, name)) = who {
            all.push(format!(
                "--cert={}",
                Self::file(dir, &format!("{name}.crt"))
            ));
            all.push(format!("--key={}", Self::file(dir, &format!("{name}.key"))));
        }
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl_at(&format!("https://127.0.0.1:{port}"), &all, None)
    }
}

fn start(pki: &Pki, client_cert_auth: bool) -> (Server, u16) {
    let port = free_port();
    let flags = pki.server_flags(port, client_cert_auth);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (Server::start_with(&flags), port)
}

#[test]
fn etcdctl_speaks_tls_with_client_certificates_and_strangers_are_refused() {
    let pki = Pki::new();
    let (_server, port) = start(&pki, true);
    let alice = Some((pki.ca.as_path(), "alice"));
    assert_eq!(
        stdout_ok(&pki.etcdctl(port, alice, &["put", "over-tls", "yes"])).trim(),
        "OK"
    );
    assert_eq!(
        stdout_ok(&pki.etcdctl(port, alice, &["get", "over-tls", "--print-value-only"])).trim(),
        "yes"
    );
    stdout_ok(&pki.etcdctl(port, alice, &["endpoint", "health"]));
    // No client certificate, or one from another CA: no connection.
    // Short timeouts: the answer is the refusal, which etcdctl would retry until they pass.
    let quick = [
        "--dial-timeout=2s",
        "--command-timeout=2s",
        "get",
        "over-tls",
    ];
    let out = pki.etcdctl(port, None, &quick);
    assert!(
        !out.status.success(),
        "a client without a certificate was served"
    );
    let stranger = Some((pki.foreign.as_path(), "mallory"));
    let out = pki.etcdctl(port, stranger, &quick);
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );
}

#[test]
fn without_client_cert_auth_a_server_certificate_is_enough() {
    let pki = Pki::new();
    let (_server, port) = start(&pki, false);
    assert_eq!(
        stdout_ok(&pki.etcdctl(port, None, &["put", "k", "v"])).trim(),
        "OK"
    );
}

#[test]
fn with_auth_on_the_certificate_cn_is_the_user() {
    let pki = Pki::new();
    let (server, port) = start(&pki, true);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "own"],
        &[
            "role",
            "grant-permission",
            "own",
            "readwrite",
            "/alice/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "own"],
        &["auth", "enable"],
    ] {
        stdout_ok(&server.etcdctl(args));
    }
    let alice = Some((pki.ca.as_path(), "alice"));
    assert_eq!(
        stdout_ok(&pki.etcdctl(port, alice, &["put", "/alice/k", "v"])).trim(),
        "OK"
    );
    assert_eq!(
        etcdctl_error(&pki.etcdctl(port, alice, &["put", "/other", "v"])),
        "Error: etcdserver: permission denied"
    );
    let root = Some((pki.ca.as_path(), "root"));
    assert_eq!(
        stdout_ok(&pki.etcdctl(port, root, &["user", "list"])),
        "alice\nroot\n"
    );
    // A certificate whose CN is no user proves nothing.
    let server_cert = Some((pki.ca.as_path(), "server"));
    assert_eq!(
        etcdctl_error(&pki.etcdctl(port, server_cert, &["get", "/alice/k"])),
        "Error: etcdserver: invalid auth token"
    );
}
