//! Real TLS 1.3 handshakes between members' configurations, in memory and over loopback TCP:
//! members of one CA connect and learn each other's names; a certificate from another CA, or
//! one not made for the expected member, is refused.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use conclave_tls::{
    PEER_ALPN, PeerTls, TlsError, init_certs, peer_member_name, read_certs, read_key,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConnection};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn member(dir: &Path, name: &str) -> PeerTls {
    match PeerTls::load(
        &dir.join(format!("{name}.crt")),
        &dir.join(format!("{name}.key")),
        &dir.join("ca.crt"),
    ) {
        Ok(tls) => tls,
        Err(e) => panic!("load {name}: {e}"),
    }
}

fn cluster(list: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    init_certs(dir.path(), &names(list), &[], false).unwrap();
    dir
}

#[derive(Debug, PartialEq)]
enum Side {
    Client,
    Server,
}

/// Moves every pending TLS record from one end to the other.
fn transfer(from: &mut dyn FnMut(&mut Vec<u8>), to: &mut dyn FnMut(&mut &[u8])) {
    let mut buf = Vec::new();
    from(&mut buf);
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to(&mut rest);
    }
}

/// Drives a handshake between a client and a server configuration in memory: the connections
/// once both are done, or which end failed and why.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    server_name: &str,
) -> Result<(ClientConnection, ServerConnection), (Side, rustls::Error)> {
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut c = ClientConnection::new(client, name).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..16 {
        transfer(
            &mut |buf| {
                while c.wants_write() {
                    c.write_tls(buf).unwrap();
                }
            },
            &mut |rest| {
                s.read_tls(rest).unwrap();
            },
        );
        s.process_new_packets().map_err(|e| (Side::Server, e))?;
        transfer(
            &mut |buf| {
                while s.wants_write() {
                    s.write_tls(buf).unwrap();
                }
            },
            &mut |rest| {
                c.read_tls(rest).unwrap();
            },
        );
        c.process_new_packets().map_err(|e| (Side::Client, e))?;
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            return Ok((c, s));
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn members_of_one_ca_connect_and_know_each_other() {
    let dir = cluster(&["n1", "n2", "n3"]);
    let (n1, n2) = (member(dir.path(), "n1"), member(dir.path(), "n2"));
    assert_eq!(n1.member_name(), "n1");
    for server_name in ["n2", "localhost", "127.0.0.1", "::1"] {
        let (mut c, mut s) = handshake(
            n1.client_config().clone(),
            n2.server_config().clone(),
            server_name,
        )
        .unwrap_or_else(|e| panic!("{server_name}: {e:?}"));
        assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(c.alpn_protocol(), Some(PEER_ALPN));
        assert_eq!(s.alpn_protocol(), Some(PEER_ALPN));
        assert_eq!(
            peer_member_name(s.peer_certificates().unwrap()).unwrap(),
            "n1"
        );
        assert_eq!(
            peer_member_name(c.peer_certificates().unwrap()).unwrap(),
            "n2"
        );

        c.writer().write_all(b"append").unwrap();
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut got = [0u8; 6];
        s.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"append");
    }
}

#[test]
fn the_server_refuses_a_client_from_another_ca() {
    let ours = cluster(&["n1", "n2"]);
    let theirs = cluster(&["n1"]);
    let n2 = member(ours.path(), "n2");
    // An outsider that knows our CA (it is no secret) and presents its own certificate.
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&ours.path().join("ca.crt")).unwrap() {
        roots.add(ca).unwrap();
    }
    let outsider =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                read_certs(&theirs.path().join("n1.crt")).unwrap(),
                read_key(&theirs.path().join("n1.key")).unwrap(),
            )
            .unwrap();
    let mut outsider = outsider;
    outsider.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let err = handshake(Arc::new(outsider), n2.server_config().clone(), "n2").unwrap_err();
    assert_eq!(err.0, Side::Server, "{err:?}");
    assert!(
        matches!(
            err.1,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );

    // And a client with no certificate at all.
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&ours.path().join("ca.crt")).unwrap() {
        roots.add(ca).unwrap();
    }
    let mut anonymous =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    anonymous.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let err = handshake(Arc::new(anonymous), n2.server_config().clone(), "n2").unwrap_err();
    assert_eq!(err.0, Side::Server, "{err:?}");
    assert!(
        matches!(err.1, rustls::Error::NoCertificatesPresented),
        "{err:?}"
    );
}

#[test]
fn the_client_refuses_a_server_from_another_ca() {
    let ours = cluster(&["n1", "n2"]);
    let theirs = cluster(&["n2"]);
    let n1 = member(ours.path(), "n1");
    let impostor = member(theirs.path(), "n2");
    let err = handshake(
        n1.client_config().clone(),
        impostor.server_config().clone(),
        "n2",
    )
    .unwrap_err();
    assert_eq!(err.0, Side::Client, "{err:?}");
    assert!(
        matches!(
            err.1,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
}

#[test]
fn the_client_refuses_a_certificate_made_for_another_member() {
    let dir = cluster(&["n1", "n2", "n3"]);
    let (n1, n2) = (member(dir.path(), "n1"), member(dir.path(), "n2"));
    for expected in ["n3", "10.0.0.9"] {
        let err = handshake(
            n1.client_config().clone(),
            n2.server_config().clone(),
            expected,
        )
        .unwrap_err();
        assert_eq!(err.0, Side::Client, "{err:?}");
        assert!(
            matches!(
                err.1,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{expected}: {err:?}"
        );
    }
}

#[test]
fn loading_checks_the_certificate_against_the_ca_and_the_key() {
    let ours = cluster(&["n1", "n2"]);
    let theirs = cluster(&["n1"]);
    let (o, t) = (ours.path(), theirs.path());

    let err = PeerTls::load(&t.join("n1.crt"), &t.join("n1.key"), &o.join("ca.crt")).unwrap_err();
    assert!(matches!(err, TlsError::Rustls { .. }), "{err}");
    assert!(
        err.to_string().contains("is not accepted by the CA in"),
        "{err}"
    );

    let err = PeerTls::load(&o.join("n1.crt"), &o.join("n2.key"), &o.join("ca.crt")).unwrap_err();
    assert!(err.to_string().contains("n2.key"), "{err}");

    let err = PeerTls::load(&o.join("n9.crt"), &o.join("n1.key"), &o.join("ca.crt")).unwrap_err();
    assert!(
        matches!(err, TlsError::Io { .. }) && err.to_string().contains("n9.crt"),
        "{err}"
    );

    let err = PeerTls::load(&o.join("n1.crt"), &o.join("n1.crt"), &o.join("ca.crt")).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

    let err = PeerTls::load(&o.join("n1.crt"), &o.join("n1.key"), &o.join("ca.key")).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
}

#[test]
fn a_handshake_over_loopback_tcp() {
    let dir = cluster(&["n1", "n2"]);
    let (n1, n2) = (member(dir.path(), "n1"), member(dir.path(), "n2"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_config = n2.server_config().clone();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        let conn = ServerConnection::new(server_config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let mut line = [0u8; 4];
        tls.read_exact(&mut line).unwrap();
        let who = peer_member_name(tls.conn.peer_certificates().unwrap()).unwrap();
        tls.write_all(format!("hi {who}").as_bytes()).unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        line
    });
    let socket = TcpStream::connect(addr).unwrap();
    let conn = ClientConnection::new(
        n1.client_config().clone(),
        ServerName::try_from("n2").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, socket);
    tls.write_all(b"ping").unwrap();
    let mut reply = String::new();
    tls.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "hi n1");
    assert_eq!(&server.join().unwrap(), b"ping");
}
