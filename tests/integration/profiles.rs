//! `--enable-pprof`: CPU and heap profiles in pprof's format at etcd's paths, a CPU profile
//! bounded and one at a time, root only with auth on, and nothing there without the flag.

use crate::common;

use std::time::Duration;

use common::{Server, stdout_ok};

#[test]
fn a_cpu_profile_is_served_in_pprofs_format() {
    let server = Server::start_with(&["--enable-pprof"]);
    // Something to sample while the profile runs.
    let busy = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            for i in 0..50 {
                stdout_ok(&server.etcdctl(&["put", &format!("k{i}"), "v"]));
            }
        });
        let profile = server.http("GET", "/debug/pprof/profile?seconds=2", None);
        load.join().expect("the load");
        profile
    });
    assert_eq!(busy.status, 200, "{}", busy.body);
    // A pprof Profile: protobuf whose first field is sample_type (field 1, length-delimited).
    assert!(!busy.bytes.is_empty());
    assert_eq!(busy.bytes[0], 0x0a, "not a pprof profile");

    assert_eq!(
        server
            .http("GET", "/debug/pprof/profile?seconds=0", None)
            .status,
        400
    );
    assert_eq!(
        server
            .http("GET", "/debug/pprof/profile?seconds=100000", None)
            .status,
        400
    );
    assert_eq!(server.http("GET", "/debug/pprof/", None).status, 200);
}

/// The heap profile is jemalloc's, sampled since start-up: gzipped pprof protobuf (as Go
/// serves it) of the memory in use, by allocating stack, in this binary's mappings.
#[test]
fn a_heap_profile_is_served_in_pprofs_format() {
    use pprof::protos::Message;
    use std::io::Read;

    let server = Server::start_with(&["--enable-pprof"]);
    for i in 0..50 {
        stdout_ok(&server.etcdctl(&["put", &format!("k{i}"), &"v".repeat(10_000)]));
    }
    let heap = server.http("GET", "/debug/pprof/heap", None);
    assert_eq!(heap.status, 200, "{}", heap.body);
    assert_eq!(&heap.bytes[..2], &[0x1f, 0x8b], "not gzip");
    let mut encoded = Vec::new();
    flate2::read::GzDecoder::new(&heap.bytes[..])
        .read_to_end(&mut encoded)
        .expect("gunzip");
    let profile = pprof::protos::Profile::decode(&encoded[..]).expect("a pprof Profile");
    let string = |i: i64| profile.string_table[i as usize].as_str();
    let kind = &profile.sample_type[0];
    assert_eq!(
        (string(kind.ty), string(kind.unit)),
        ("inuse_space", "bytes")
    );
    // A server holds megabytes (the store's caches and memtable, the runtime): sampled every
    // 512 KiB, some of it must show, weighted back up to its size.
    let in_use: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(in_use > 1 << 20, "{in_use} bytes in use in the profile");
    assert!(
        profile
            .mapping
            .iter()
            .any(|m| string(m.filename).ends_with("/conclave")),
        "no mapping of the conclave binary: {:?}",
        profile
            .mapping
            .iter()
            .map(|m| string(m.filename))
            .collect::<Vec<_>>()
    );
}

#[test]
fn one_profile_runs_at_a_time() {
    let server = Server::start_with(&["--enable-pprof"]);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| server.http("GET", "/debug/pprof/profile?seconds=3", None));
        common::wait_until("the first profile to start", Duration::from_secs(5), || {
            let index = server.http("GET", "/debug/pprof/", None);
            index.body.contains("a profile is running")
        });
        let second = server.http("GET", "/debug/pprof/profile?seconds=1", None);
        assert_eq!(second.status, 429, "{}", second.body);
        assert_eq!(first.join().expect("the first profile").status, 200);
    });
}

#[test]
fn with_auth_on_only_root_profiles() {
    let server = Server::start_with(&["--enable-pprof"]);
    for args in common::ROOT_AND_ALICE {
        stdout_ok(&server.etcdctl(args));
    }
    stdout_ok(&server.etcdctl(&["auth", "enable"]));
    let anonymous = server.http("GET", "/debug/pprof/profile?seconds=1", None);
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("user name is empty"),
        "{}",
        anonymous.body
    );
    let anonymous_heap = server.http("GET", "/debug/pprof/heap", None);
    assert_eq!(anonymous_heap.status, 403, "{}", anonymous_heap.body);
    let token = |name: &str, password: &str| {
        let (code, body) = server.post_json(
            "/v3/auth/authenticate",
            &serde_json::json!({"name": name, "password": password}),
        );
        assert_eq!(code, 200, "{body}");
        body["token"].as_str().expect("a token").to_string()
    };
    let alice = token("alice", "alicepw");
    let refused = server.http_with_headers(
        "GET",
        "/debug/pprof/profile?seconds=1",
        None,
        &[("Authorization", alice.as_str())],
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused_heap = server.http_with_headers(
        "GET",
        "/debug/pprof/heap",
        None,
        &[("Authorization", alice.as_str())],
    );
    assert_eq!(refused_heap.status, 403, "{}", refused_heap.body);
    let root = token("root", "rootpw");
    let allowed = server.http_with_headers(
        "GET",
        "/debug/pprof/profile?seconds=1",
        None,
        &[("Authorization", root.as_str())],
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let allowed_heap = server.http_with_headers(
        "GET",
        "/debug/pprof/heap",
        None,
        &[("Authorization", root.as_str())],
    );
    assert_eq!(allowed_heap.status, 200, "{}", allowed_heap.body);
}

#[test]
fn without_the_flag_there_is_no_profiler() {
    let server = Server::start();
    assert_eq!(
        server
            .http("GET", "/debug/pprof/profile?seconds=1", None)
            .status,
        404
    );
    assert_eq!(server.http("GET", "/debug/pprof/heap", None).status, 404);
}
