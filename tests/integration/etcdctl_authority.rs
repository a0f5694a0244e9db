//! etcdctl 3.4 given an endpoint with a scheme (`--endpoints=http://127.0.0.1:PORT`): grpc-go
//! then dials `passthrough:///http://...` for endpoint status, defrag, snapshot and move-leader
//! and sends `:authority: http://127.0.0.1:PORT`, which the client port must accept as etcd
//! does. The same port must still serve ordinary gRPC clients and HTTP/1.1 unchanged.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::{Server, b64, etcdctl_path, stdout_ok, unb64};
use serde_json::{Value, json};

/// etcdctl against `--endpoints=<url>`, the harness's environment rules otherwise.
fn etcdctl_url(server: &Server, args: &[&str]) -> Output {
    let mut cmd = Command::new(etcdctl_path());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.url()))
        .arg("--dial-timeout=10s")
        .arg("--command-timeout=30s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run etcdctl")
}

fn status(out: &str) -> Value {
    let all: Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("status -w json gave {out:?}: {e}"));
    let all = all.as_array().expect("a JSON array of endpoints");
    assert_eq!(all.len(), 1, "one endpoint: {all:?}");
    all[0].clone()
}

#[test]
fn endpoint_status_with_an_http_endpoint() {
    let s = Server::start();
    let got = status(&stdout_ok(&etcdctl_url(
        &s,
        &["endpoint", "status", "-w", "json"],
    )));
    assert_eq!(got["Endpoint"], json!(s.url()), "{got}");
    let member = got["Status"]["header"]["member_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("Status.header.member_id: {got}"));
    assert_ne!(member, 0);
    assert_eq!(got["Status"]["leader"].as_u64(), Some(member), "{got}");

    // The same member as through a scheme-less endpoint.
    let plain = status(&stdout_ok(
        &s.etcdctl(&["endpoint", "status", "-w", "json"]),
    ));
    assert_eq!(plain["Status"]["header"]["member_id"], json!(member));

    // defrag dials the endpoint the same way.
    let out = stdout_ok(&etcdctl_url(&s, &["defrag"]));
    assert_eq!(
        out,
        format!("Finished defragmenting etcd member[{}]\n", s.url())
    );
}

#[test]
fn kv_with_an_http_endpoint_and_the_gateway_over_http1() {
    let s = Server::start();
    assert_eq!(stdout_ok(&etcdctl_url(&s, &["put", "foo", "bar"])), "OK\n");
    assert_eq!(stdout_ok(&etcdctl_url(&s, &["get", "foo"])), "foo\nbar\n");
    // etcdctl 3.4 prints the health line on stderr.
    let out = etcdctl_url(&s, &["endpoint", "health"]);
    stdout_ok(&out);
    let health = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{} is healthy: successfully committed proposal", s.url());
    assert!(health.lines().any(|l| l.starts_with(&prefix)), "{health:?}");

    // A curl-style request on the same port passes untouched.
    let (status, got) = s.post_json("/v3/kv/range", &json!({"key": b64("foo")}));
    assert_eq!(status, 200, "{got}");
    let value = got["kvs"][0]["value"].as_str().expect("kvs[0].value");
    assert_eq!(unb64(value), b"bar");
    let resp = s.http("GET", "/health", None);
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains("\"health\":\"true\""), "{}", resp.body);
}

/// A Rust gRPC client (hyper's h2) indexes its headers in the HPACK dynamic table and refers
/// back to them on every later request: many requests on one connection must all arrive.
#[tokio::test(flavor = "multi_thread")]
async fn many_requests_on_one_grpc_connection() {
    let s = Server::start();
    let mut client = s.client().await;
    for i in 0..100 {
        client
            .put(format!("key/{i:03}"), format!("value {i}"), None)
            .await
            .expect("put");
    }
    for i in (0..100).step_by(7) {
        let got = client.get(format!("key/{i:03}"), None).await.expect("get");
        let kv = &got.kvs()[0];
        assert_eq!(kv.value_str().expect("UTF-8"), format!("value {i}"));
    }
    let all = client
        .get(
            "key/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .expect("count");
    assert_eq!(all.count(), 100);
}
