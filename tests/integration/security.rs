//! Attacks on a real server, each as an attacker with a client and an afternoon would try it
//! (docs/SECURITY.md): forged and re-dated tokens, the names of keys a user may not read
//! through a lease, samples fed to rules without permission, a txn whose nesting multiplies
//! its operations past the limit, and unknown HTTP paths that must not look healthy.

use crate::common;

use common::{Server, b64, etcdctl_error, stdout_ok};
use conclave::proto::conclavepb::{IngestRequest, IngestSample, ingest_client::IngestClient};
use conclave::proto::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, kv_client::KvClient, request_op,
};
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;

const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
const ROOT: &str = "--user=root:rootpw";

/// root, and alice who may read and write /alice/ only; then auth on.
fn set_up(server: &Server) {
    set_up_with(|args| server.etcdctl(args));
}

/// [`set_up`] through any etcdctl (a cluster member's, say).
fn set_up_with(etcdctl: impl Fn(&[&str]) -> std::process::Output) {
    for args in common::ROOT_AND_ALICE
        .iter()
        .chain([&["auth", "enable"][..]].iter())
    {
        stdout_ok(&etcdctl(args));
    }
}

/// A token for `name` from the gateway.
fn token(server: &Server, name: &str, password: &str) -> String {
    let (code, body) = server.post_json(
        "/v3/auth/authenticate",
        &json!({"name": name, "password": password}),
    );
    assert_eq!(code, 200, "{body}");
    body["token"].as_str().expect("a token").to_string()
}

/// A put of /alice/k through the gateway with `token`: the answer's status and body.
fn put_with(server: &Server, token: &str) -> (u16, String) {
    let body = json!({"key": b64("/alice/k"), "value": b64("v")}).to_string();
    let resp = server.http_with_headers(
        "POST",
        "/v3/kv/put",
        Some(&body),
        &[("Authorization", token)],
    );
    (resp.status, resp.body)
}

#[test]
fn a_token_cannot_be_cut_short_or_re_dated() {
    let server = Server::start();
    set_up(&server);
    let genuine = token(&server, "alice", "alicepw");
    assert_eq!(put_with(&server, &genuine).0, 200);

    // The token's last field is its tag. Its first byte alone must not do.
    let (signed, tag) = genuine.rsplit_once('.').expect("a signed token");
    let (status, body) = put_with(&server, &format!("{signed}.{}", &tag[..2]));
    assert!(body.contains(INVALID_TOKEN), "{status} {body}");

    // Re-dated a century ahead, then every one-byte tag: none may pass.
    let fields: Vec<&str> = signed.split('.').collect();
    assert_eq!(fields.len(), 3, "name.expiry.fingerprint: {signed}");
    let expiry: i64 = fields[1].parse().expect("an expiry in ms");
    let later = expiry + 100 * 365 * 24 * 3600 * 1000;
    let redated = format!("{}.{later}.{}", fields[0], fields[2]);
    for byte in 0..=255u8 {
        let (status, body) = put_with(&server, &format!("{redated}.{byte:02x}"));
        assert!(
            body.contains(INVALID_TOKEN),
            "a re-dated token with tag {byte:02x} was taken: {status} {body}"
        );
    }

    // A new key at each `auth enable`: tokens from before an off-and-on are void.
    stdout_ok(&server.etcdctl(&[ROOT, "auth", "disable"]));
    stdout_ok(&server.etcdctl(&["auth", "enable"]));
    let (status, body) = put_with(&server, &genuine);
    assert!(body.contains(INVALID_TOKEN), "{status} {body}");
    let fresh = token(&server, "alice", "alicepw");
    assert_eq!(put_with(&server, &fresh).0, 200);
}

#[test]
fn a_lease_does_not_name_keys_its_caller_may_not_read() {
    let server = Server::start();
    set_up(&server);
    let ctl = |args: &[&str]| server.etcdctl(args);
    let granted = stdout_ok(&ctl(&[ROOT, "lease", "grant", "600"]));
    let id = granted.split_whitespace().nth(1).expect("a lease ID");
    stdout_ok(&ctl(&[
        ROOT,
        "put",
        "/secret/db-password",
        "x",
        "--lease",
        id,
    ]));

    // etcd's answer since CVE-2023-32082: refused as a whole, not a list with the name in it.
    let alice = ["--user=alice:alicepw", "lease", "timetolive", id];
    let out = ctl(&[&alice[..], &["--keys"]].concat());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("db-password"),
        "{out:?}"
    );
    assert_eq!(etcdctl_error(&out), "Error: etcdserver: permission denied");
    // Without the keys the TTL is anyone's to see, as in etcd; root sees the keys.
    assert!(stdout_ok(&ctl(&alice)).contains("remaining"));
    assert!(
        stdout_ok(&ctl(&[ROOT, "lease", "timetolive", id, "--keys"]))
            .contains("/secret/db-password")
    );
    // And a lease over keys alice may read names them to her.
    let granted = stdout_ok(&ctl(&[ROOT, "lease", "grant", "600"]));
    let mine = granted.split_whitespace().nth(1).expect("a lease ID");
    stdout_ok(&ctl(&[ROOT, "put", "/alice/session", "x", "--lease", mine]));
    assert!(
        stdout_ok(&ctl(&[
            "--user=alice:alicepw",
            "lease",
            "timetolive",
            mine,
            "--keys"
        ]))
        .contains("/alice/session")
    );
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "token",
        MetadataValue::try_from(token).expect("an ASCII token"),
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_needs_write_permission_on_the_series() {
    let server = Server::start();
    tokio::task::block_in_place(|| set_up(&server));
    let alice = tokio::task::block_in_place(|| token(&server, "alice", "alicepw"));
    let mut ingest = IngestClient::connect(server.url()).await.expect("connect");
    let sample = |series: &str| IngestSample {
        series: series.into(),
        value: 1.0,
        time_ms: 0,
    };

    let none = ingest
        .push(IngestRequest {
            samples: vec![sample("/alice/cpu")],
        })
        .await
        .expect_err("no credentials");
    assert_eq!(none.message(), "etcdserver: user name is empty");

    let outside = ingest
        .push(authorized(
            IngestRequest {
                samples: vec![sample("/alice/cpu"), sample("/metrics/cpu")],
            },
            &alice,
        ))
        .await
        .expect_err("a series alice may not write");
    assert_eq!(outside.code(), Code::PermissionDenied, "{outside:?}");

    let inside = ingest
        .push(authorized(
            IngestRequest {
                samples: vec![sample("/alice/cpu"), sample("/alice/mem")],
            },
            &alice,
        ))
        .await
        .expect("alice's own series")
        .into_inner();
    assert_eq!(inside.accepted, 2);
}

fn put_op(key: String) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    }
}

fn txn_op(success: Vec<RequestOp>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            success,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_is_bounded_as_a_whole_and_by_max_txn_ops() {
    let server = Server::start_with(&["--max-txn-ops", "200"]);
    let mut kv = KvClient::connect(server.url()).await.expect("connect");
    let too_many = "etcdserver: too many operations in txn request";

    // 40 nested txns of 40 puts: each level is within the limit, the whole is 1640 puts.
    let nested = TxnRequest {
        success: (0..40)
            .map(|i| txn_op((0..40).map(|j| put_op(format!("n/{i}/{j}"))).collect()))
            .collect(),
        ..Default::default()
    };
    let refused = kv.txn(nested).await.expect_err("1640 puts in one txn");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::InvalidArgument, too_many)
    );
    assert_eq!(
        kv.range(conclave::proto::etcdserverpb::RangeRequest {
            key: b"n/".to_vec(),
            range_end: b"n0".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner()
        .count,
        0
    );

    // --max-txn-ops 200 lets a flat txn of 200 puts through, and not 201.
    let flat = |n: usize| TxnRequest {
        success: (0..n).map(|i| put_op(format!("f/{i}"))).collect(),
        ..Default::default()
    };
    kv.txn(flat(200))
        .await
        .expect("200 puts with --max-txn-ops 200");
    let refused = kv.txn(flat(201)).await.expect_err("201 puts");
    assert_eq!(refused.message(), too_many);
    // Nested within the limit is fine.
    let within = TxnRequest {
        success: (0..4)
            .map(|i| txn_op((0..40).map(|j| put_op(format!("w/{i}/{j}"))).collect()))
            .collect(),
        ..Default::default()
    };
    kv.txn(within).await.expect("164 operations in all");
}

#[test]
fn unknown_http_paths_are_not_found() {
    let server = Server::start();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nothing-here"),
        ("GET", "/v3/kv/nope"),
        ("POST", "/v3/nope"),
        ("GET", "/etcdserverpb.KV/Nope"),
    ] {
        let body = (method == "POST").then_some("{}");
        let resp = server.http(method, path, body);
        assert_eq!(resp.status, 404, "{method} {path}: {resp:?}");
        assert!(
            resp.header("grpc-status").is_none(),
            "{method} {path}: {resp:?}"
        );
    }
    // What is there still answers.
    assert_eq!(server.http("GET", "/health", None).status, 200);
}

/// A unary gRPC call to `path` on `url`, whatever service it names.
async fn raw_call<Req, Resp>(
    url: String,
    path: &'static str,
    message: Req,
) -> Result<Resp, tonic::Status>
where
    Req: tonic_prost::prost::Message + Send + Sync + 'static,
    Resp: tonic_prost::prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("a URL")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        tonic::Request::new(message),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_member_only_answers_on_the_client_port() {
    use conclave::proto::conclavepb::{
        Command, ProposeBatchRequest, ProposeBatchResponse, PublishMemberRequest,
        PublishMemberResponse, RaftMember, command,
    };
    let server = Server::start();
    // What used to be the Internal service: a write straight into the log, and a member's
    // client URL pointed elsewhere. Neither may be there, with auth off as with it on.
    let planted = Command {
        request: Some(command::Request::Put(PutRequest {
            key: b"planted".to_vec(),
            value: b"by a stranger".to_vec(),
            ..Default::default()
        })),
        stamp_ms: 0,
        checked_for: None,
    };
    let propose = raw_call::<_, ProposeBatchResponse>(
        server.url(),
        "/conclavepb.Internal/ProposeBatch",
        ProposeBatchRequest {
            commands: vec![planted],
        },
    )
    .await
    .expect_err("no member service on the client port");
    assert_eq!(propose.code(), Code::Unimplemented, "{propose:?}");
    let publish = raw_call::<_, PublishMemberResponse>(
        server.url(),
        "/conclavepb.Internal/PublishMember",
        PublishMemberRequest {
            id: 1,
            member: Some(RaftMember {
                name: "evil".into(),
                peer_urls: vec![],
                client_urls: vec!["http://127.0.0.1:1".into()],
            }),
        },
    )
    .await
    .expect_err("no member service on the client port");
    assert_eq!(publish.code(), Code::Unimplemented, "{publish:?}");
    let mut kv = KvClient::connect(server.url()).await.expect("connect");
    let found = kv
        .range(conclave::proto::etcdserverpb::RangeRequest {
            key: b"planted".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(found.count, 0);
    // A member's word ("conclave-member" metadata, the old proof) counts for nothing: with
    // auth on, a request carrying only that is a request with no user.
    tokio::task::block_in_place(|| set_up(&server));
    let mut request = tonic::Request::new(PutRequest {
        key: b"/alice/x".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "conclave-member",
        MetadataValue::from_static("0123456789abcdef"),
    );
    let refused = kv.put(request).await.expect_err("not a user");
    assert_eq!(refused.message(), "etcdserver: user name is empty");
}

/// `component` with a custom section of `pad` bytes appended: still the same component to
/// wasmtime, and as large as a test needs.
fn padded(mut component: Vec<u8>, pad: usize) -> Vec<u8> {
    let name = b"conclave-test-padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.resize(payload.len() + pad, 0);
    component.push(0); // a custom section
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            component.push(byte);
            break;
        }
        component.push(byte | 0x80);
    }
    component.extend_from_slice(&payload);
    component
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_passes_on_membership_changes_and_large_deploys_with_auth_on() {
    use conclave::proto::conclavepb::{PluginDeployRequest, plugin_client::PluginClient};
    let mut cluster = tokio::task::block_in_place(|| common::cluster::Cluster::start(3));
    let follower = tokio::task::block_in_place(|| cluster.followers()[0]);
    let ctl = |args: &[&str]| cluster.etcdctl(follower, args);
    tokio::task::block_in_place(|| {
        stdout_ok(&ctl(&["user", "add", "root:rootpw"]));
        stdout_ok(&ctl(&["auth", "enable"]));
    });

    // etcd's member commands through a follower, as root.
    let added = tokio::task::block_in_place(|| {
        stdout_ok(&ctl(&[
            ROOT,
            "member",
            "add",
            "m4",
            "--learner",
            "--peer-urls=https://127.0.0.1:1",
        ]))
    });
    assert!(added.contains("added to cluster"), "{added}");
    let id = added
        .split_whitespace()
        .nth(1)
        .expect("the new member's ID")
        .to_string();
    let removed = tokio::task::block_in_place(|| stdout_ok(&ctl(&[ROOT, "member", "remove", &id])));
    assert!(removed.contains("removed from cluster"), "{removed}");
    // And not without root.
    let anonymous = tokio::task::block_in_place(|| {
        ctl(&["member", "add", "m5", "--peer-urls=https://127.0.0.1:2"])
    });
    assert_eq!(
        etcdctl_error(&anonymous),
        "Error: etcdserver: user name is empty"
    );

    // A deploy over the request limit (a 3 MiB component) through a follower.
    let (code, body) = tokio::task::block_in_place(|| {
        common::post_json_at(
            cluster.endpoint(follower).as_str(),
            "/v3/auth/authenticate",
            &json!({"name": "root", "password": "rootpw"}),
        )
    });
    assert_eq!(code, 200, "{body}");
    let root = body["token"].as_str().expect("a token").to_string();
    let wasm = std::fs::read(common::plugins::plugin_path("rollup")).expect("the rollup plugin");
    let wasm = padded(wasm, 3 << 20);
    let mut plugins = PluginClient::connect(cluster.url(follower))
        .await
        .expect("connect")
        .max_encoding_message_size(16 << 20);
    let config = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
        "resolution": "5s", "allowed_lateness": "500ms", "aggregations": ["sum"]}"#;
    let deployed = plugins
        .deploy(authorized(
            PluginDeployRequest {
                name: "big".into(),
                wasm,
                config: config.into(),
                ..Default::default()
            },
            &root,
        ))
        .await
        .expect("a 3 MiB deploy through a follower")
        .into_inner();
    assert_eq!(deployed.spec.expect("a spec").name, "big");
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// An HTTP/2 connection that sent the preface and the start of a HEADERS frame claiming
/// `claimed` bytes, of which it sent 9.
fn half_header(server: &Server, claimed: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(server.endpoint()).expect("connect");
    let len = (claimed as u32).to_be_bytes();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
    bytes.extend_from_slice(&[len[1], len[2], len[3], 0x1, 0x4, 0, 0, 0, 1]);
    bytes.extend_from_slice(&[0x82; 9]);
    tcp.write_all(&bytes).expect("send");
    tcp
}

/// Whether the server closed `tcp` within `within` (reading what it sent before).
fn closed_by_server(tcp: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        tcp.set_read_timeout(Some(left)).expect("timeout");
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn half_sent_header_frames_cost_what_was_sent_and_time_out() {
    let server = Server::start();
    let before = rss_kib(server.pid());
    // 400 connections each claiming a 1 MiB header frame: refused at once (h2's frame size
    // is 16 KiB), never a megabyte each.
    let mut refused = Vec::new();
    for _ in 0..400 {
        refused.push(half_header(&server, 1 << 20));
    }
    for tcp in refused.iter_mut().take(20) {
        assert!(
            closed_by_server(tcp, std::time::Duration::from_secs(5)),
            "a 1 MiB header frame was not refused"
        );
    }
    // 400 claiming a frame of the largest size h2 takes, 9 bytes of it sent: held, at the
    // cost of what arrived (and of the connection).
    let held: Vec<_> = (0..400).map(|_| half_header(&server, 16_384)).collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let during = rss_kib(server.pid());
    assert!(
        during < before + 128 * 1024,
        "RSS grew from {before} KiB to {during} KiB with 800 half-sent header frames"
    );
    // And the server goes on answering.
    assert_eq!(server.http("GET", "/health", None).status, 200);
    // A stalled frame ends its connection after 10 s.
    let mut first = held.into_iter().next().expect("a connection");
    assert!(
        closed_by_server(&mut first, std::time::Duration::from_secs(20)),
        "a connection stalled inside a header frame was kept open"
    );
    assert_eq!(server.http("GET", "/health", None).status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_get_etcds_errors_on_both_ports() {
    let server = Server::start();
    let mut kv = KvClient::connect(server.url())
        .await
        .expect("connect")
        .max_encoding_message_size(64 << 20);
    let put = |len: usize| PutRequest {
        key: b"big".to_vec(),
        value: vec![b'x'; len],
        ..Default::default()
    };
    // Over gRPC's receive limit (--max-request-bytes + 512 KiB): grpc-go's words and code.
    let refused = kv.put(put(3 << 20)).await.expect_err("a 3 MiB put");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "grpc: received message larger than max (3145738 vs. 2097152)"
    );
    // Between the request limit and the receive limit: etcd's own refusal.
    let refused = kv.put(put(1600 << 10)).await.expect_err("a 1.6 MiB put");
    assert_eq!(refused.message(), "etcdserver: request is too large");
    // The connection is still good.
    kv.put(put(10)).await.expect("a small put after");

    // The gateway: etcd's JSON error with RESOURCE_EXHAUSTED, as a 429.
    let body = json!({"key": b64("big"), "value": b64(vec![b'x'; 3 << 20])}).to_string();
    let resp = tokio::task::block_in_place(|| server.http("POST", "/v3/kv/put", Some(&body)));
    assert_eq!(
        resp.status,
        429,
        "{}",
        &resp.body[..resp.body.len().min(200)]
    );
    let error: serde_json::Value = serde_json::from_str(&resp.body).expect("a JSON error");
    assert_eq!(error["code"], 8, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("grpc: received message larger than max")),
        "{error}"
    );
}

/// An ES256 key pair as PEM files (PKCS#8 private key, SPKI public key) in `dir`.
fn jwt_keys(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pair = rcgen::KeyPair::generate().expect("an ECDSA P-256 key");
    let (private, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    std::fs::write(&private, pair.serialize_pem()).unwrap();
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    (private, public)
}

fn jwt_flag(private: &std::path::Path, public: &std::path::Path) -> String {
    format!(
        "jwt,pub-key={},priv-key={},sign-method=ES256,ttl=10m",
        public.display(),
        private.display()
    )
}

/// `--auth-token jwt`, as etcd has it: a token from one member works on every member and
/// after the leader is gone; a token signed with another key does not; an auth change makes
/// earlier tokens stale with etcd's words, and etcdctl logs in again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_hold_on_every_member_and_across_a_leader_change() {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = jwt_keys(keys.path(), "cluster");
    let flag = jwt_flag(&private, &public);
    let mut cluster = tokio::task::block_in_place(|| {
        common::cluster::Cluster::builder(3)
            .flags(&["--auth-token", &flag])
            .start()
    });
    let leader = tokio::task::block_in_place(|| cluster.leader());
    tokio::task::block_in_place(|| set_up_with(|args| cluster.etcdctl(leader, args)));
    let login = |i: usize| {
        let (code, body) = common::post_json_at(
            cluster.endpoint(i).as_str(),
            "/v3/auth/authenticate",
            &json!({"name": "alice", "password": "alicepw"}),
        );
        assert_eq!(code, 200, "{body}");
        body["token"].as_str().expect("a token").to_string()
    };
    let token = tokio::task::block_in_place(|| login(leader));
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let put = |i: usize, token: String| {
        let url = urls[i].clone();
        async move {
            let mut kv = KvClient::connect(url).await.expect("connect");
            kv.put(authorized(
                PutRequest {
                    key: b"/alice/k".to_vec(),
                    value: b"v".to_vec(),
                    ..Default::default()
                },
                &token,
            ))
            .await
        }
    };
    for i in 0..3 {
        put(i, token.clone())
            .await
            .unwrap_or_else(|e| panic!("the token on member {i}: {e:?}"));
    }

    // Signed with another key, the same claims are nobody's.
    let (other_private, other_public) = jwt_keys(keys.path(), "other");
    let forger =
        tokio::task::block_in_place(|| token_signed_with(&other_private, &other_public, "root"));
    let refused = put(leader, forger).await.expect_err("a foreign-key token");
    assert_eq!(refused.message(), INVALID_TOKEN, "{refused:?}");

    // The leader goes; the token still works on the members left.
    tokio::task::block_in_place(|| {
        cluster.kill9(leader);
        cluster.wait_for_leader(&[leader]);
    });
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    put(survivor, token.clone())
        .await
        .expect("the token after the leader changed");

    // An auth change makes it stale, in etcd's words; etcdctl logs in again and goes on.
    tokio::task::block_in_place(|| {
        stdout_ok(&cluster.etcdctl(survivor, &[ROOT, "user", "add", "bob:bobpw"]))
    });
    let stale = put(survivor, token).await.expect_err("a token from before");
    assert_eq!(
        stale.message(),
        "etcdserver: revision of auth store is old",
        "{stale:?}"
    );
    let out = tokio::task::block_in_place(|| {
        cluster.etcdctl(
            survivor,
            &["--user=alice:alicepw", "put", "/alice/k", "again"],
        )
    });
    stdout_ok(&out);
}

/// A JWT with etcd's claims for `user`, signed with the key pair given: what someone holding
/// a key that is not the cluster's could make.
fn token_signed_with(private: &std::path::Path, public: &std::path::Path, user: &str) -> String {
    // A one-member server with the other key signs it honestly: the closest thing to an
    // attacker's own signer, with the real claims.
    let server = Server::start_with(&["--auth-token", &jwt_flag(private, public)]);
    stdout_ok(&server.etcdctl(&["user", "add", &format!("{user}:pw")]));
    if user != "root" {
        stdout_ok(&server.etcdctl(&["user", "add", "root:rootpw"]));
    }
    stdout_ok(&server.etcdctl(&["auth", "enable"]));
    token(&server, user, "pw")
}

/// Members advertise only https client URLs, each with a certificate from a CA no other
/// member trusts: a follower still passes on writes, linearizable reads and lease keep-alives,
/// because it reaches the leader over the peer transport, never over the client port (etcd
/// needs no `--trusted-ca-file` for this either).
#[test]
fn a_follower_reaches_the_leader_whatever_its_client_urls() {
    let mut cluster = common::cluster::Cluster::builder(3).https_clients().start();
    let follower = cluster.followers()[0];
    let list = cluster.member_list(follower).expect("member list");
    let urls = list["members"].to_string();
    assert!(
        urls.contains("https://") && !urls.contains("http://"),
        "only https client URLs advertised: {urls}"
    );
    stdout_ok(&cluster.etcdctl(follower, &["put", "/through/follower", "v"]));
    let got = stdout_ok(&cluster.etcdctl(
        follower,
        &[
            "get",
            "/through/follower",
            "--consistency=l",
            "--print-value-only",
        ],
    ));
    assert_eq!(got.trim(), "v");
    let granted = stdout_ok(&cluster.etcdctl(follower, &["lease", "grant", "30"]));
    let id = granted.split_whitespace().nth(1).expect("a lease ID");
    let kept = stdout_ok(&cluster.etcdctl(follower, &["lease", "keep-alive", "--once", id]));
    assert!(kept.contains("keepalived with TTL"), "{kept}");
}

/// The Lock and Election services write as their caller: they need what etcd's recipes need
/// (read and write on the name's prefix), and their txns go through the same check at apply
/// as a client's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_elections_need_what_etcds_recipes_need() {
    use conclave::proto::v3electionpb::{CampaignRequest, election_client::ElectionClient};
    use conclave::proto::v3lockpb::{LockRequest, UnlockRequest, lock_client::LockClient};
    let server = Server::start();
    tokio::task::block_in_place(|| {
        set_up(&server);
        for args in [
            &[ROOT, "role", "add", "lock-writer"][..],
            &[
                ROOT,
                "role",
                "grant-permission",
                "lock-writer",
                "write",
                "/wlock/",
                "--prefix",
            ],
            &[ROOT, "user", "add", "bob:bobpw"],
            &[ROOT, "user", "grant-role", "bob", "lock-writer"],
        ] {
            stdout_ok(&server.etcdctl(args));
        }
    });
    let (alice, bob) = tokio::task::block_in_place(|| {
        (
            token(&server, "alice", "alicepw"),
            token(&server, "bob", "bobpw"),
        )
    });
    let mut locks = LockClient::connect(server.url()).await.expect("connect");
    let mut elections = ElectionClient::connect(server.url())
        .await
        .expect("connect");

    // Write alone on the prefix is not enough, as with etcd's recipe.
    let lock = |name: &str| LockRequest {
        name: name.as_bytes().to_vec(),
        lease: 0,
    };
    let refused = locks
        .lock(authorized(lock("/wlock/l"), &bob))
        .await
        .expect_err("a lock with write permission only");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = elections
        .campaign(authorized(
            CampaignRequest {
                name: b"/wlock/e".to_vec(),
                lease: 0,
                value: b"bob".to_vec(),
            },
            &bob,
        ))
        .await
        .expect_err("a campaign with write permission only");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Read and write: held, and released; nobody else may release it.
    let held = locks
        .lock(authorized(lock("/alice/l"), &alice))
        .await
        .expect("alice's lock")
        .into_inner();
    let unlock = |key: Vec<u8>| UnlockRequest { key };
    let refused = locks
        .unlock(authorized(unlock(held.key.clone()), &bob))
        .await
        .expect_err("bob releasing alice's lock");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    locks
        .unlock(authorized(unlock(held.key), &alice))
        .await
        .expect("alice releases her lock");
}
