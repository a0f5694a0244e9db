//! WASM plugins in a real 3-member cluster: deployed at runtime with `conclavectl`, their
//! outputs checked exactly, window by window; every window written exactly once while the
//! leader is killed again and again; bad plugins stopped and reported while the cluster keeps
//! serving. The plugins are built from `plugins/` for wasm32-wasip2.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cluster::Cluster;
use common::plugins::{
    committed_values, conclavectl, deploy, plugin_path, plugin_status, read_prefix, wait_running,
};
use common::{stdout_ok, wait_until};
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

const ROLLUP_1S: &str = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
    "resolution": "1s", "allowed_lateness": "200ms", "retention": "2d",
    "aggregations": ["sum", "count", "min", "max", "mean", "p99"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_writes_each_window_exactly() {
    let mut c = Cluster::start(3);
    let follower = tokio::task::block_in_place(|| c.followers())[0];
    let endpoint = c.endpoint(follower);
    let deployed = tokio::task::block_in_place(|| deploy(&endpoint, "rollup", "rollup", ROLLUP_1S));
    assert!(deployed.contains("version 1"), "{deployed}");
    tokio::task::block_in_place(|| wait_running(&endpoint, "rollup"));
    let mut client = c.client(follower).await;

    let mut windows = Vec::new();
    let bursts: [&[(&str, &str)]; 3] = [
        &[("cpu", "1"), ("cpu", "2"), ("cpu", "3"), ("mem", "10")],
        &[("cpu", "4.5"), ("mem", "not a number"), ("mem", "-2")],
        &[("cpu", "7")],
    ];
    for burst in bursts {
        // Put a burst well inside one window (the leader's clock is this machine's).
        let window = loop {
            let now = now_ms();
            let fresh = windows.last().is_none_or(|&w: &i64| now - now % 1000 > w);
            if !fresh || now % 1000 < 100 || now % 1000 > 400 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            for (series, value) in burst {
                client
                    .put(format!("/metrics/{series}"), *value, None)
                    .await
                    .expect("put a sample");
            }
            let after = now_ms();
            assert_eq!(after / 1000, now / 1000, "a burst took more than 600 ms");
            break now - now % 1000;
        };
        windows.push(window);
    }
    let expected: BTreeMap<String, String> = [
        (
            format!("/rollup/cpu/{}", windows[0]),
            r#"{"sum":6,"count":3,"min":1,"max":3,"mean":2,"p99":3}"#,
        ),
        (
            format!("/rollup/mem/{}", windows[0]),
            r#"{"sum":10,"count":1,"min":10,"max":10,"mean":10,"p99":10}"#,
        ),
        (
            format!("/rollup/cpu/{}", windows[1]),
            r#"{"sum":4.5,"count":1,"min":4.5,"max":4.5,"mean":4.5,"p99":4.5}"#,
        ),
        (
            format!("/rollup/mem/{}", windows[1]),
            r#"{"sum":-2,"count":1,"min":-2,"max":-2,"mean":-2,"p99":-2}"#,
        ),
        (
            format!("/rollup/cpu/{}", windows[2]),
            r#"{"sum":7,"count":1,"min":7,"max":7,"mean":7,"p99":7}"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let written = loop {
        let written = read_prefix(&mut client, "/rollup/").await;
        if written.len() >= expected.len() || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let values: BTreeMap<String, String> = written
        .iter()
        .map(|(k, (v, _, _))| (k.clone(), v.clone()))
        .collect();
    assert_eq!(values, expected, "the rollup windows");
    for (key, (_, version, lease)) in &written {
        assert_eq!(*version, 1, "{key} was written more than once");
        assert_ne!(*lease, 0, "{key} has no retention lease");
    }
    // The retention is the lease's TTL.
    let (_, (_, _, lease)) = written.iter().next().expect("a rollup");
    let ttl = client
        .lease_time_to_live(*lease, None)
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 2 * 86_400);

    // Every member reads the same outputs (they went through Raft).
    for i in 0..3 {
        let mut member = c.client(i).await;
        let seen = read_prefix(&mut member, "/rollup/").await;
        assert_eq!(seen.len(), expected.len(), "member {i}");
    }
    let status = tokio::task::block_in_place(|| plugin_status(&endpoint, "rollup"));
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["spec"]["version"], "1", "{status}");
    let logs = tokio::task::block_in_place(|| {
        stdout_ok(&conclavectl(&endpoint, &["plugin", "logs", "rollup"]))
    });
    assert!(
        logs.contains("not a finite number"),
        "the bad sample is in the log: {logs} {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_is_written_once_while_leaders_are_killed() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let endpoint = c.endpoint((leader + 1) % 3);
    tokio::task::block_in_place(|| deploy(&endpoint, "rollup", "rollup", ROLLUP_1S));
    tokio::task::block_in_place(|| wait_running(&endpoint, "rollup"));
    let endpoints = c.endpoints();
    let mut writer = etcd_client::Client::connect(&endpoints, None)
        .await
        .expect("connect");

    let mut next = 1u64;
    for round in 0..3 {
        // Writes for a while, then kill -9 the leader mid-window and keep writing through
        // the failover; puts that fail may or may not have committed (history tells).
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let _ = writer.put("/metrics/load", next.to_string(), None).await;
            next += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let leader = tokio::task::block_in_place(|| c.leader());
        c.kill9(leader);
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                writer.put("/metrics/load", next.to_string(), None),
            )
            .await;
            next += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::block_in_place(|| {
            c.wait_for_leader(&[leader]);
            c.restart(leader);
        });
        eprintln!("round {round}: {} puts tried", next - 1);
    }
    let leader = tokio::task::block_in_place(|| c.leader());
    let mut client = c.client(leader).await;
    let values = committed_values(&mut client, "/metrics/load").await;
    let count = values.len() as u64;
    let sum: f64 = values.iter().sum();
    assert!(count > 100, "only {count} puts committed");

    // Wait for the last windows to close, then every committed put is in exactly one window.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (rolled_count, rolled_sum, written) = loop {
        let written = read_prefix(&mut client, "/rollup/load/").await;
        let mut rolled_count = 0u64;
        let mut rolled_sum = 0f64;
        for (value, _, _) in written.values() {
            let v: Value = serde_json::from_str(value).expect("JSON");
            rolled_count += v["count"].as_u64().expect("count");
            rolled_sum += v["sum"].as_f64().expect("sum");
        }
        if rolled_count >= count || Instant::now() > deadline {
            break (rolled_count, rolled_sum, written);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rolled_count, count, "every committed sample counted once");
    assert_eq!(rolled_sum, sum, "every committed sample summed once");
    for (key, (_, version, _)) in &written {
        assert_eq!(*version, 1, "{key} was written more than once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_are_stopped_and_reported_and_the_cluster_serves() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let endpoint = c.endpoint(leader);
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "looper", "loop_forever", "{}");
        deploy(&endpoint, "bomb", "alloc_bomb", "{}");
        deploy(&endpoint, "trapper", "trap", "{}");
        deploy(&endpoint, "rollup", "rollup", ROLLUP_1S);
        wait_running(&endpoint, "rollup");
    });
    let mut client = c.client(leader).await;
    for key in ["/loop/x", "/bomb/x", "/trap/x"] {
        client.put(key, "1", None).await.expect("put");
    }
    let expectations = [
        ("looper", "timed out"),
        ("bomb", "out of memory"),
        ("trapper", "trapped"),
    ];
    for (name, reason) in expectations {
        tokio::task::block_in_place(|| {
            wait_until(&format!("{name} failed"), Duration::from_secs(30), || {
                let s = plugin_status(&endpoint, name);
                s["state"] == "failed"
                    && s["last_error"].as_str().is_some_and(|e| e.contains(reason))
            })
        });
    }
    // The cluster serves, and the good plugin still works.
    client.put("/metrics/ok", "5", None).await.expect("put");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let written = read_prefix(&mut client, "/rollup/ok/").await;
        if let Some((value, _, _)) = written.values().next() {
            assert!(value.contains(r#""sum":5"#), "{value}");
            break;
        }
        assert!(Instant::now() < deadline, "the good plugin wrote nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same, as Prometheus sees it on the leader.
    let metric = |series: &str| {
        let scrape = c.http(leader, "GET", "/metrics").body;
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    tokio::task::block_in_place(|| {
        for name in ["looper", "bomb", "trapper"] {
            let failures = format!("conclave_plugin_failures_total{{plugin=\"{name}\"}}");
            assert!(metric(&failures) >= Some(1.0), "{failures}");
            let restarts = format!("conclave_plugin_restarts_total{{plugin=\"{name}\"}}");
            wait_until(&restarts, Duration::from_secs(30), || {
                metric(&restarts) >= Some(1.0)
            });
        }
        let calls = metric(r#"conclave_plugin_calls_total{plugin="rollup"}"#);
        assert!(calls >= Some(1.0), "rollup calls: {calls:?}");
        let events = metric(r#"conclave_plugin_events_in_total{plugin="rollup"}"#);
        assert!(events >= Some(1.0), "rollup events: {events:?}");
        assert_eq!(
            metric(r#"conclave_plugin_running{plugin="rollup"}"#),
            Some(1.0)
        );
        let flushed = metric(r#"conclave_plugin_flushed_until_timestamp_seconds{plugin="rollup"}"#);
        assert!(
            flushed.is_some_and(|t| t > 1.6e9),
            "rollup's flush mark: {flushed:?}"
        );
    });
    let list =
        tokio::task::block_in_place(|| stdout_ok(&conclavectl(&endpoint, &["plugin", "list"])));
    for name in ["looper", "bomb", "trapper", "rollup"] {
        assert!(list.contains(name), "{list}");
    }
    // Removing a failed plugin stops it.
    tokio::task::block_in_place(|| {
        stdout_ok(&conclavectl(&endpoint, &["plugin", "remove", "looper"]));
        let out = conclavectl(&endpoint, &["plugin", "status", "looper"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("plugin not found"));
    });
    // A member stopped while its plugins fail and restart stops them first, cleanly.
    tokio::task::block_in_place(|| c.stop(leader));
    let log = c.log(leader);
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_refused_and_nothing_is_stored() {
    let mut c = Cluster::start(3);
    let follower = tokio::task::block_in_place(|| c.followers())[0];
    let endpoint = c.endpoint(follower);
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let rollup = plugin_path("rollup");
    let cases: [(&str, &str, &str); 4] = [
        (garbage.to_str().unwrap(), "{}", "not a WebAssembly binary"),
        (core.to_str().unwrap(), "{}", "not a component"),
        (
            rollup.to_str().unwrap(),
            r#"{"source_prefix": "/m/"}"#,
            "config rejected",
        ),
        (rollup.to_str().unwrap(), "{not json", "not JSON"),
    ];
    tokio::task::block_in_place(|| {
        for (file, config, reason) in cases {
            let out = conclavectl(
                &endpoint,
                &["plugin", "deploy", "bad", file, "--config", config],
            );
            assert!(!out.status.success(), "{file} with {config} was accepted");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(reason), "{file} with {config}: {err}");
        }
        let list = stdout_ok(&conclavectl(&endpoint, &["plugin", "list", "-w", "json"]));
        assert_eq!(list.trim(), "[]", "nothing stored");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_and_rollback_goes_back() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let endpoint = c.endpoint(leader);
    let v2_config = ROLLUP_1S.replace(r#""/rollup/""#, r#""/rollup-v2/""#);
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "rollup", "rollup", ROLLUP_1S);
        wait_running(&endpoint, "rollup");
        let out = deploy(&endpoint, "rollup", "rollup", &v2_config);
        assert!(out.contains("version 2"), "{out}");
    });
    let mut client = c.client(leader).await;
    // Once version 2 runs, new windows go to its target prefix.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.put("/metrics/v", "1", None).await.expect("put");
        if !read_prefix(&mut client, "/rollup-v2/").await.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "version 2 never took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rolled = tokio::task::block_in_place(|| {
        stdout_ok(&conclavectl(&endpoint, &["plugin", "rollback", "rollup"]))
    });
    assert!(rolled.contains("version 1"), "{rolled}");
    let status = tokio::task::block_in_place(|| plugin_status(&endpoint, "rollup"));
    assert_eq!(status["spec"]["version"], "1", "{status}");
    let out =
        tokio::task::block_in_place(|| conclavectl(&endpoint, &["plugin", "rollback", "rollup"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no previous version"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The audit key's lines, as JSON (none while no member answers).
async fn audit_lines(client: &mut etcd_client::Client) -> Vec<Value> {
    let Ok(resp) = client.get("/audit/leaders", None).await else {
        return Vec::new();
    };
    resp.kvs()
        .first()
        .map(|kv| {
            kv.value_str()
                .expect("UTF-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the audit has a line for which `found` holds, reading from running members.
async fn wait_audit(c: &Cluster, what: &str, found: impl Fn(&Value) -> bool) -> Vec<Value> {
    let endpoints: Vec<String> = c.running().into_iter().map(|i| c.endpoint(i)).collect();
    let mut client = etcd_client::Client::connect(endpoints, None)
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = audit_lines(&mut client).await;
        if lines.iter().any(&found) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line for {what}: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_hook_audits_leaders_and_steers_leadership() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let preferred = (leader + 1) % 3;
    let preferred_name = c.name(preferred).to_string();
    let endpoint = c.endpoint(leader);
    let config = format!(r#"{{"key": "/audit/leaders", "prefer": "{preferred_name}"}}"#);
    // Version 1 is an aggregator; version 2, of the other world, takes its place at once.
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "audit", "rollup", ROLLUP_1S);
        wait_running(&endpoint, "audit");
        deploy(&endpoint, "audit", "leader_audit", &config)
    });

    // The hook prefers another member: leadership moves there, and each leader audits its term.
    tokio::task::block_in_place(|| {
        wait_until(
            "leadership moves to the preferred member",
            Duration::from_secs(30),
            || c.current_leader() == preferred,
        )
    });
    let lines = wait_audit(&c, "the preferred member's term", |l| {
        l["leader"] == preferred_name.as_str()
    })
    .await;
    let first = &lines[0];
    assert_eq!(first["leader"], c.name(leader), "{lines:?}");
    let terms: Vec<u64> = lines.iter().filter_map(|l| l["term"].as_u64()).collect();
    assert!(
        terms.windows(2).all(|w| w[0] < w[1]),
        "one line per term: {lines:?}"
    );

    // A named election of the Election API: its new leaders are audited.
    let client = conclave::Client::connect(c.endpoints())
        .await
        .expect("connect");
    let alice = client
        .campaign("jobs", "alice", 10)
        .await
        .expect("campaign");
    wait_audit(&c, "alice leading jobs", |l| {
        l["election"] == "jobs" && l["leader"] == "alice"
    })
    .await;
    alice.resign().await.expect("resign");
    wait_audit(&c, "nobody leading jobs", |l| {
        l["election"] == "jobs" && l["leader"].is_null()
    })
    .await;

    // kill -9 the preferred leader: another member leads and audits its term; once the
    // preferred member is back and caught up, leadership returns to it.
    c.kill9(preferred);
    let interim = tokio::task::block_in_place(|| c.wait_for_leader(&[preferred]));
    let interim_name = c.name(interim).to_string();
    let after_kill = wait_audit(&c, "the interim leader's term", |l| {
        l["leader"] == interim_name.as_str() && l["term"].as_u64() > terms.last().copied()
    })
    .await;
    tokio::task::block_in_place(|| {
        c.restart(preferred);
        wait_until(
            "leadership returns to the preferred member",
            Duration::from_secs(30),
            || c.current_leader() == preferred,
        )
    });
    let last_term = after_kill.iter().filter_map(|l| l["term"].as_u64()).max();
    wait_audit(&c, "the preferred member's new term", |l| {
        l["leader"] == preferred_name.as_str() && l["term"].as_u64() > last_term
    })
    .await;
    let status = tokio::task::block_in_place(|| plugin_status(&c.endpoint(preferred), "audit"));
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["spec"]["world"], "election-hook", "{status}");
}

/// `/counts/<service>` as a number, if written.
async fn count_of(client: &mut etcd_client::Client, service: &str) -> Option<u64> {
    let resp = client
        .get(format!("/counts/{service}"), None)
        .await
        .expect("get");
    resp.kvs()
        .first()
        .map(|kv| kv.value_str().expect("UTF-8").parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_count_follows_registrations_and_their_leases() {
    let mut c = Cluster::start(3);
    let follower = tokio::task::block_in_place(|| c.followers())[0];
    let endpoint = c.endpoint(follower);
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "counts", "instance_count", "{}");
        wait_running(&endpoint, "counts");
    });
    let mut client = c.client(follower).await;
    let short = client.lease_grant(2, None).await.expect("lease").id();
    let long = client.lease_grant(60, None).await.expect("lease").id();
    for (key, lease) in [
        ("/services/pay/1", long),
        ("/services/pay/2", long),
        ("/services/pay/3", short),
        ("/services/web/1", long),
    ] {
        let options = etcd_client::PutOptions::new().with_lease(lease);
        client.put(key, "addr", Some(options)).await.expect("put");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    // pay: 3 while the short lease lives, then 2 once it expires and takes its key along.
    loop {
        let counts = (
            count_of(&mut client, "pay").await,
            count_of(&mut client, "web").await,
        );
        if seen.last() != Some(&counts) {
            seen.push(counts);
        }
        if counts == (Some(2), Some(1)) && seen.iter().any(|s| s.0 == Some(3)) {
            break;
        }
        assert!(Instant::now() < deadline, "counts went {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .delete("/services/web/1", None)
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_of(&mut client, "web").await != Some(0) {
        assert!(Instant::now() < deadline, "web's count did not drop to 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sample(series: &str, value: f64, time_ms: i64) -> conclave::proto::conclavepb::IngestSample {
    conclave::proto::conclavepb::IngestSample {
        series: series.to_string(),
        value,
        time_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_samples_reach_every_member_and_outlive_the_leader() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let follower = (leader + 1) % 3;
    let endpoint = c.endpoint(follower);
    let config = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/", "ingest": true,
        "resolution": "5s", "allowed_lateness": "500ms", "aggregations": ["sum", "count"]}"#;
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "rollup", "rollup", config);
        wait_running(&endpoint, "rollup");
    });
    let ingest = conclave::Client::connect([c.endpoint(leader)])
        .await
        .expect("connect");

    // Samples of the next window, sent to the leader; then it dies before the window closes.
    // The new leader has them too (the leader passed them on), and flushes the window.
    let window = now_ms() - now_ms() % 5000 + 5000;
    let samples: Vec<_> = (1..=100)
        .map(|i| sample("/metrics/ingested", f64::from(i), window + i64::from(i)))
        .collect();
    let resp = ingest.ingest(samples).await.expect("ingest");
    assert_eq!((resp.accepted, resp.members), (100, 3));
    // And one the member dates itself.
    ingest
        .ingest(vec![sample("/metrics/dated", 2.5, 0)])
        .await
        .expect("ingest");
    c.kill9(leader);
    tokio::task::block_in_place(|| c.wait_for_leader(&[leader]));

    let mut client = c.client(follower).await;
    let key = format!("/rollup/ingested/{window}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let written = read_prefix(&mut client, "/rollup/").await;
        if written.contains_key(&key) && written.keys().any(|k| k.starts_with("/rollup/dated/")) {
            break written;
        }
        assert!(Instant::now() < deadline, "rollups so far: {written:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (value, version, _) = &written[&key];
    assert_eq!(value, r#"{"sum":5050,"count":100}"#);
    assert_eq!(*version, 1);
    let (_, (dated, _, _)) = written
        .iter()
        .find(|(k, _)| k.starts_with("/rollup/dated/"))
        .expect("the dated sample's window");
    assert_eq!(dated, r#"{"sum":2.5,"count":1}"#);

    // A sample for a window already flushed is late: dropped, and said so in the log.
    let ingest = conclave::Client::connect([c.endpoint(follower)])
        .await
        .expect("connect");
    ingest
        .ingest(vec![sample("/metrics/ingested", 1000.0, window + 1)])
        .await
        .expect("ingest");
    tokio::task::block_in_place(|| {
        wait_until("the late sample is logged", Duration::from_secs(10), || {
            let logs = stdout_ok(&conclavectl(&endpoint, &["plugin", "logs", "rollup"]));
            logs.contains("dropped 1 samples whose window was flushed already")
        })
    });
    let after = read_prefix(&mut client, "/rollup/ingested/").await;
    assert_eq!(after[&key].0, r#"{"sum":5050,"count":100}"#, "unchanged");
    let refused = ingest
        .ingest(vec![sample("", 1.0, 0)])
        .await
        .expect_err("a sample without a series");
    assert!(refused.to_string().contains("series name"), "{refused}");
}

/// A member keeps what it takes before passing it on: the leader taking samples late in their
/// 1 s window (no lateness) while a follower is paused waits for that follower (200-450 ms
/// here) past the window's close; had it kept them only once the others answered, its rule
/// would have dropped them as late (robustness::windows found it so; this failed on that code
/// in 7 of 9 runs: now and then the call to the paused member fails at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_the_leader_takes_count_while_a_follower_is_paused() {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let endpoint = c.endpoint(leader);
    let config = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/", "ingest": true,
        "resolution": "1s", "allowed_lateness": "0ms", "aggregations": ["sum", "count"]}"#;
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "rollup", "rollup", config);
        wait_running(&endpoint, "rollup");
    });
    let ingest = conclave::Client::connect([endpoint.clone()])
        .await
        .expect("connect");
    // Once with every member up, so that the leader's connections to the others are open.
    let warm = ingest.ingest(vec![sample("/metrics/warm", 1.0, 0)]).await;
    assert_eq!(warm.expect("ingest").members, 3);
    let follower = tokio::task::block_in_place(|| c.followers())[0];
    c.pause(follower, true);
    let samples = (1..=5)
        .map(|i| sample("/metrics/paused", f64::from(i), 0))
        .collect();
    // 900-950 ms into a second: the window closes 50-100 ms later.
    while !(900..950).contains(&(now_ms() % 1000)) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resp = ingest.ingest(samples).await.expect("ingest");
    c.pause(follower, false);
    assert_eq!(
        (resp.accepted, resp.members),
        (5, 2),
        "the paused follower did not take them"
    );
    let mut client = c.client(leader).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let written = loop {
        let written = read_prefix(&mut client, "/rollup/paused/").await;
        if !written.is_empty() || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let values: Vec<&str> = written.values().map(|(v, _, _)| v.as_str()).collect();
    assert_eq!(
        values,
        [r#"{"sum":15,"count":5}"#],
        "the samples the leader took, counted once"
    );
}
