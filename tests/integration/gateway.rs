//! The JSON gateway with plain HTTP/1.1 requests, as curl or a browser would send them:
//! proto3 JSON in and out (bytes as base64, 64-bit integers as strings, etcd's field names),
//! grpc-gateway's error bodies, and `GET /health` (the rest of the probes: tests/integration/health.rs).

use crate::common;

use common::{Server, b64, unb64};
use serde_json::{Value, json};

fn text(v: &Value) -> String {
    String::from_utf8(unb64(
        v.as_str().unwrap_or_else(|| panic!("{v} is not a string")),
    ))
    .expect("UTF-8")
}

/// POSTs and expects 200.
fn ok(s: &Server, path: &str, body: Value) -> Value {
    let (status, got) = s.post_json(path, &body);
    assert_eq!(status, 200, "POST {path} {body}: {got}");
    got
}

fn assert_header(h: &Value, revision: i64) {
    for field in ["cluster_id", "member_id", "raft_term"] {
        let v = h[field]
            .as_str()
            .unwrap_or_else(|| panic!("header.{field} is a JSON string: {h}"));
        assert_ne!(v.parse::<u64>().expect("a uint64"), 0, "header.{field}");
    }
    assert_eq!(h["revision"], json!(revision.to_string()), "{h}");
}

#[test]
fn put_range_and_delete_range() {
    let s = Server::start();
    let put = ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64("foo"), "value": b64("bar")}),
    );
    assert_header(&put["header"], 2);
    assert!(put.get("prev_kv").is_none());

    let put = ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64("foo"), "value": b64("baz"), "prev_kv": true}),
    );
    assert_header(&put["header"], 3);
    assert_eq!(text(&put["prev_kv"]["value"]), "bar");
    assert_eq!(put["prev_kv"]["mod_revision"], "2");

    // Binary keys and values go through base64 untouched.
    let binary_key = [0u8, 159, 146, 150, 255];
    let binary_value = [255u8, 0, 1, 2, 254];
    ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64(binary_key), "value": b64(binary_value)}),
    );

    let got = ok(&s, "/v3/kv/range", json!({"key": b64("foo")}));
    assert_header(&got["header"], 4);
    assert_eq!(got["count"], "1");
    let kv = &got["kvs"][0];
    assert_eq!(text(&kv["key"]), "foo");
    assert_eq!(text(&kv["value"]), "baz");
    assert_eq!(kv["create_revision"], "2");
    assert_eq!(kv["mod_revision"], "3");
    assert_eq!(kv["version"], "2");
    // Default values are left out, as grpc-gateway leaves them out.
    assert!(kv.get("lease").is_none(), "{kv}");
    assert!(got.get("more").is_none(), "{got}");

    let got = ok(&s, "/v3/kv/range", json!({"key": b64(binary_key)}));
    assert_eq!(
        unb64(got["kvs"][0]["value"].as_str().expect("value")),
        binary_value
    );

    // All keys, with a limit given as a JSON number and as a string: proto3 JSON takes both.
    for limit in [json!(1), json!("1")] {
        let got = ok(
            &s,
            "/v3/kv/range",
            json!({"key": b64([0u8]), "range_end": b64([0u8]), "limit": limit}),
        );
        assert_eq!(got["count"], "2");
        assert_eq!(got["more"], true);
        assert_eq!(got["kvs"].as_array().expect("kvs").len(), 1);
    }
    // History, and the sort options by name.
    let got = ok(
        &s,
        "/v3/kv/range",
        json!({"key": b64("foo"), "revision": "2"}),
    );
    assert_eq!(text(&got["kvs"][0]["value"]), "bar");
    let got = ok(
        &s,
        "/v3/kv/range",
        json!({"key": b64([0u8]), "range_end": b64([0u8]), "sort_target": "MOD",
               "sort_order": "DESCEND", "keys_only": true}),
    );
    let kvs = got["kvs"].as_array().expect("kvs");
    assert_eq!(unb64(kvs[0]["key"].as_str().expect("key")), binary_key);
    assert_eq!(text(&kvs[1]["key"]), "foo");
    assert!(kvs[1].get("value").is_none());
    let got = ok(
        &s,
        "/v3/kv/range",
        json!({"key": b64("foo"), "count_only": true}),
    );
    assert_eq!(got["count"], "1");
    assert!(got.get("kvs").is_none());

    let del = ok(
        &s,
        "/v3/kv/deleterange",
        json!({"key": b64("foo"), "prev_kv": true}),
    );
    assert_header(&del["header"], 5);
    assert_eq!(del["deleted"], "1");
    assert_eq!(text(&del["prev_kvs"][0]["value"]), "baz");
    // Nothing to delete: zero is a default, so it is left out; no new revision.
    let del = ok(&s, "/v3/kv/deleterange", json!({"key": b64("foo")}));
    assert_header(&del["header"], 5);
    assert!(
        del.get("deleted").is_none() || del["deleted"] == "0",
        "{del}"
    );
    let got = ok(&s, "/v3/kv/range", json!({"key": b64("foo")}));
    assert!(got.get("kvs").is_none());
    assert!(got.get("count").is_none() || got["count"] == "0");
}

#[test]
fn txn_both_branches() {
    let s = Server::start();
    ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64("k"), "value": b64("v1")}),
    );
    let txn = |expect: &str| {
        json!({
            "compare": [{"key": b64("k"), "target": "VALUE", "result": "EQUAL",
                         "value": b64(expect)},
                        {"key": b64("k"), "target": "VERSION", "result": "GREATER",
                         "version": "0"}],
            "success": [{"request_put": {"key": b64("then"), "value": b64("yes")}},
                        {"request_range": {"key": b64("k")}}],
            // grpc-gateway also takes the lowerCamelCase JSON names.
            "failure": [{"requestPut": {"key": b64("else"), "value": b64("no")}},
                        {"request_delete_range": {"key": b64("k"), "prev_kv": true}}],
        })
    };

    let r = ok(&s, "/v3/kv/txn", txn("v1"));
    assert_eq!(r["succeeded"], true);
    assert_header(&r["header"], 3);
    let responses = r["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0]["response_put"]["header"]["revision"], "3");
    let range = &responses[1]["response_range"];
    assert_eq!(text(&range["kvs"][0]["value"]), "v1");
    assert_eq!(range["count"], "1");

    let r = ok(&s, "/v3/kv/txn", txn("nope"));
    assert!(
        r.get("succeeded").is_none() || r["succeeded"] == false,
        "{r}"
    );
    assert_header(&r["header"], 4);
    let responses = r["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 2);
    assert!(responses[0].get("response_put").is_some(), "{r}");
    let del = &responses[1]["response_delete_range"];
    assert_eq!(del["deleted"], "1");
    assert_eq!(text(&del["prev_kvs"][0]["value"]), "v1");

    let got = ok(
        &s,
        "/v3/kv/range",
        json!({"key": b64("a"), "range_end": b64("z")}),
    );
    let keys: Vec<String> = got["kvs"]
        .as_array()
        .expect("kvs")
        .iter()
        .map(|kv| text(&kv["key"]))
        .collect();
    assert_eq!(keys, ["else", "then"]);
}

#[test]
fn compaction_and_status() {
    let s = Server::start();
    for v in ["a", "b", "c"] {
        ok(&s, "/v3/kv/put", json!({"key": b64("k"), "value": b64(v)}));
    }
    let r = ok(&s, "/v3/kv/compaction", json!({"revision": "3"}));
    assert_header(&r["header"], 4);

    let (status, err) = s.post_json("/v3/kv/range", &json!({"key": b64("k"), "revision": "2"}));
    assert_eq!(status, 400, "{err}");
    let msg = "etcdserver: mvcc: required revision has been compacted";
    assert_eq!(err, json!({"error": msg, "code": 11, "message": msg}));
    let (status, err) = s.post_json("/v3/kv/range", &json!({"key": b64("k"), "revision": "9"}));
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], 11);
    assert_eq!(
        err["message"],
        "etcdserver: mvcc: required revision is a future revision"
    );
    let got = ok(&s, "/v3/kv/range", json!({"key": b64("k"), "revision": 3}));
    assert_eq!(text(&got["kvs"][0]["value"]), "b");

    let st = ok(&s, "/v3/maintenance/status", json!({}));
    assert_header(&st["header"], 4);
    assert_eq!(st["leader"], st["header"]["member_id"]);
    for field in ["raftIndex", "raftTerm", "raftAppliedIndex", "dbSize"] {
        let v = st[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a JSON string: {st}"));
        assert!(v.parse::<i64>().expect("an integer") > 0, "{field}: {st}");
    }
    assert!(!st["version"].as_str().expect("version").is_empty());
    // An empty body is an empty request.
    let resp = s.http("POST", "/v3/maintenance/status", None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
}

#[test]
fn errors_as_grpc_gateway_bodies() {
    let s = Server::start();
    let msg = "etcdserver: key is not provided";
    for (path, body) in [
        ("/v3/kv/put", json!({"key": "", "value": b64("v")})),
        ("/v3/kv/put", json!({"value": b64("v")})),
        ("/v3/kv/range", json!({})),
        ("/v3/kv/deleterange", json!({"key": ""})),
    ] {
        let (status, err) = s.post_json(path, &body);
        assert_eq!(status, 400, "{path} {body}: {err}");
        assert_eq!(
            err,
            json!({"error": msg, "code": 3, "message": msg}),
            "{path} {body}"
        );
    }
    let (status, err) = s.post_json(
        "/v3/kv/put",
        &json!({"key": b64("k"), "value": b64("v"), "lease": "1234"}),
    );
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["code"], 5);
    assert_eq!(err["message"], "etcdserver: requested lease not found");

    // Malformed JSON is refused as an invalid argument, not a crash.
    let resp = s.http("POST", "/v3/kv/put", Some("{not json"));
    assert_eq!(resp.status, 400, "{}", resp.body);
    let err: Value = serde_json::from_str(&resp.body).expect("a JSON error body");
    assert_eq!(err["code"], 3);
    // The server is still fine, and nothing was written.
    let got = ok(&s, "/v3/kv/range", json!({"key": b64("k")}));
    assert_header(&got["header"], 1);
}

#[test]
fn health() {
    let s = Server::start();
    let resp = s.http("GET", "/health", None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body: Value = serde_json::from_str(&resp.body).expect("JSON health");
    assert_eq!(body["health"], "true", "{body}");
}

#[test]
fn leases_over_the_gateway() {
    let s = Server::start();
    // etcd's JSON names for the lease messages are its proto names: ID, TTL, grantedTTL.
    let granted = ok(&s, "/v3/lease/grant", json!({"TTL": "60", "ID": "4096"}));
    assert_eq!(granted["ID"], json!("4096"), "{granted}");
    assert_eq!(granted["TTL"], json!("60"), "{granted}");
    ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64("svc/x"), "value": b64("1"), "lease": "4096"}),
    );
    let ttl = ok(
        &s,
        "/v3/lease/timetolive",
        json!({"ID": "4096", "keys": true}),
    );
    assert_eq!(ttl["grantedTTL"], json!("60"), "{ttl}");
    assert_eq!(ttl["keys"], json!([b64("svc/x")]), "{ttl}");
    let kept = ok(&s, "/v3/lease/keepalive", json!({"ID": "4096"}));
    assert_eq!(kept["result"]["TTL"], json!("60"), "{kept}");
    let leases = ok(&s, "/v3/lease/leases", json!({}));
    assert_eq!(leases["leases"], json!([{"ID": "4096"}]), "{leases}");
    ok(&s, "/v3/lease/revoke", json!({"ID": "4096"}));
    let gone = ok(&s, "/v3/kv/range", json!({"key": b64("svc/x")}));
    assert!(gone.get("kvs").is_none(), "{gone}");
    let (status, err) = s.post_json("/v3/lease/revoke", &json!({"ID": "4096"}));
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["message"],
        json!("etcdserver: requested lease not found")
    );
}

#[test]
fn locks_and_elections_over_the_gateway() {
    let s = Server::start();
    let lease = ok(&s, "/v3/lease/grant", json!({"TTL": "60"}));
    let id = lease["ID"].as_str().expect("a lease ID").to_string();
    let locked = ok(
        &s,
        "/v3/lock/lock",
        json!({"name": b64("gw-lock"), "lease": id}),
    );
    let key = text(&locked["key"]);
    assert!(key.starts_with("gw-lock/"), "{locked}");
    ok(&s, "/v3/lock/unlock", json!({"key": locked["key"]}));
    let gone = ok(&s, "/v3/kv/range", json!({"key": locked["key"]}));
    assert!(gone.get("kvs").is_none(), "{gone}");

    let won = ok(
        &s,
        "/v3/election/campaign",
        json!({"name": b64("gw-vote"), "lease": id, "value": b64("me")}),
    );
    let leader = ok(&s, "/v3/election/leader", json!({"name": b64("gw-vote")}));
    assert_eq!(text(&leader["kv"]["value"]), "me", "{leader}");
    ok(
        &s,
        "/v3/election/proclaim",
        json!({"leader": won["leader"], "value": b64("still me")}),
    );
    let leader = ok(&s, "/v3/election/leader", json!({"name": b64("gw-vote")}));
    assert_eq!(text(&leader["kv"]["value"]), "still me", "{leader}");
    ok(&s, "/v3/election/resign", json!({"leader": won["leader"]}));
    let (status, err) = s.post_json("/v3/election/leader", &json!({"name": b64("gw-vote")}));
    assert_ne!(status, 200, "{err}");
    assert_eq!(err["message"], json!("election: no leader"));
}

/// Reads a streaming HTTP response until `want` appears in it (or fails after a while).
fn read_until(stream: &mut std::net::TcpStream, seen: &mut String, want: &str) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in the watch stream: {seen}"
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!("the watch stream ended: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the watch stream: {e}"),
        }
    }
}

#[test]
fn watch_streams_json_lines_over_the_gateway() {
    use std::io::Write;
    let s = Server::start();
    let body = json!({"create_request": {"key": b64("gw/"), "range_end": b64("gw0")}}).to_string();
    let mut stream = std::net::TcpStream::connect(s.endpoint()).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    write!(
        stream,
        "POST /v3/watch HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        s.endpoint(),
        body.len()
    )
    .expect("send the watch");
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"created\":true");
    ok(
        &s,
        "/v3/kv/put",
        json!({"key": b64("gw/a"), "value": b64("streamed")}),
    );
    // One {"result": WatchResponse} line per response, as etcd's grpc-gateway sends them.
    read_until(&mut stream, &mut seen, &b64("streamed"));
    assert!(seen.contains("{\"result\":"), "{seen}");
}
