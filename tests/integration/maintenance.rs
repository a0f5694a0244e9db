//! Maintenance against real servers: the backend quota and its NOSPACE alarm (writes refused
//! in etcd's words; reads, deletes and compaction still served; writes again after compact,
//! defrag and `alarm disarm`), HashKV equal on every member, the leader's corruption check
//! raising CORRUPT for a member whose store was damaged on disk, and auto-compaction.

use crate::common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{Server, etcdctl_error, stdout_ok, wait_until};
use serde_json::Value;

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn json(out: &std::process::Output) -> Value {
    let text = stdout_ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn past_the_quota_only_reads_deletes_and_compaction_pass_until_disarmed() {
    let server = Server::start_with(&["--quota-backend-bytes", "4194304"]);
    // Under the 128 KiB a single command-line argument may have; etcdctl reads it from stdin.
    let value = "x".repeat(100 * 1024);
    // Fill: every put of the same key keeps its old versions as history.
    let mut refused = None;
    for _ in 0..200 {
        let out = server.etcdctl_with_stdin(&["put", "big"], &value);
        if !out.status.success() {
            refused = Some(etcdctl_error(&out));
            break;
        }
    }
    let refused = refused.expect("200 puts of 100 KiB never reached a 4 MiB quota");
    assert_eq!(refused, format!("Error: {NOSPACE}"));

    let alarms = stdout_ok(&server.etcdctl(&["alarm", "list"]));
    assert!(alarms.contains("alarm:NOSPACE"), "alarm list: {alarms}");
    let status = json(&server.etcdctl(&["endpoint", "status", "-w", "json"]));
    let errors = status[0]["Status"]["errors"].to_string();
    assert!(errors.contains("alarm:NOSPACE"), "status errors: {errors}");
    // etcdctl 3.4 predates the quota field; the gateway shows it.
    let (code, status) = server.post_json("/v3/maintenance/status", &serde_json::json!({}));
    assert_eq!(code, 200);
    assert_eq!(status["dbSizeQuota"], "4194304", "{status}");

    // Writes that grow the store are refused, even small ones and in a txn.
    assert_eq!(
        etcdctl_error(&server.etcdctl(&["put", "small", "v"])),
        format!("Error: {NOSPACE}")
    );
    assert_eq!(
        etcdctl_error(&server.etcdctl(&["lease", "grant", "60"])),
        format!("Error: failed to grant lease ({NOSPACE})")
    );
    // Reads, deletes and compaction are served.
    let got = stdout_ok(&server.etcdctl(&["get", "big", "--print-value-only"]));
    assert_eq!(got.trim_end(), value);
    assert_eq!(stdout_ok(&server.etcdctl(&["del", "big"])).trim(), "1");
    let rev = json(&server.etcdctl(&["get", "big", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .expect("a revision");
    stdout_ok(&server.etcdctl(&["compact", &rev.to_string(), "--physical"]));
    let defrag = stdout_ok(&server.etcdctl(&["defrag"]));
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
    // Still refused until the alarm is disarmed, as in etcd.
    assert_eq!(
        etcdctl_error(&server.etcdctl(&["put", "small", "v"])),
        format!("Error: {NOSPACE}")
    );
    let disarmed = stdout_ok(&server.etcdctl(&["alarm", "disarm"]));
    assert!(
        disarmed.contains("alarm:NOSPACE"),
        "alarm disarm: {disarmed}"
    );
    assert_eq!(stdout_ok(&server.etcdctl(&["alarm", "list"])), "");
    assert_eq!(
        stdout_ok(&server.etcdctl(&["put", "small", "v"])).trim(),
        "OK"
    );
}

#[test]
fn hashkv_is_equal_on_every_member_and_follows_the_revision() {
    let cluster = Cluster::start(3);
    for i in 0..20 {
        stdout_ok(&cluster.etcdctl(i % 3, &["put", &format!("k{i}"), &format!("v{i}")]));
    }
    stdout_ok(&cluster.etcdctl(0, &["del", "k3"]));
    // Linearizable through every member: each has applied the last write.
    for i in 0..3 {
        stdout_ok(&cluster.etcdctl(i, &["get", "k0"]));
    }
    let endpoints = cluster.endpoints().join(",");
    let hashes = |rev: &str| -> Vec<(u64, i64)> {
        let out = common::etcdctl_at(
            &endpoints,
            &["endpoint", "hashkv", "--rev", rev, "-w", "json"],
            None,
        );
        json(&out)
            .as_array()
            .expect("one entry per endpoint")
            .iter()
            .map(|e| {
                (
                    e["HashKV"]["hash"].as_u64().expect("a hash"),
                    e["HashKV"]["compact_revision"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    };
    let now = hashes("0");
    assert_eq!(now.len(), 3);
    assert!(now.iter().all(|h| *h == now[0]), "hashes differ: {now:?}");
    let earlier = hashes("5");
    assert!(earlier.iter().all(|h| *h == earlier[0]), "{earlier:?}");
    assert_ne!(
        earlier[0], now[0],
        "history up to revision 5 hashed like all of it"
    );
    // A future revision is refused as etcd refuses it.
    let out = cluster.etcdctl(0, &["endpoint", "hashkv", "--rev", "100000"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("required revision is a future revision"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flips the last byte of the newest record in a stopped member's store, as a bad disk would.
fn damage_newest_record(store_dir: &std::path::Path) {
    let db = fjall::Database::builder(store_dir)
        .open()
        .expect("open the member's store");
    let kv = db
        .keyspace("kv", fjall::KeyspaceCreateOptions::default)
        .expect("the kv keyspace");
    let newest = kv.last_key_value().expect("a record");
    let (key, value) = newest.into_inner().expect("read the newest record");
    let mut damaged = value.to_vec();
    let last = damaged.last_mut().expect("a non-empty record");
    *last ^= 0x01;
    kv.insert(key, damaged).expect("write the damaged record");
    db.persist(fjall::PersistMode::SyncAll)
        .expect("persist the damage");
}

/// A 3-member cluster with `flags`, five keys written through the leader and read back on a
/// follower: (cluster, leader, that follower).
fn with_keys_on_a_follower(flags: &[&str]) -> (Cluster, usize, usize) {
    let mut cluster = Cluster::builder(3).flags(flags).start();
    let leader = cluster.leader();
    let victim = cluster.followers()[0];
    for i in 0..5 {
        stdout_ok(&cluster.etcdctl(leader, &["put", &format!("k{i}"), "value"]));
    }
    stdout_ok(&cluster.etcdctl(victim, &["get", "k4"]));
    (cluster, leader, victim)
}

#[test]
fn the_corruption_check_raises_corrupt_for_a_damaged_member_and_stops_serving() {
    let (mut cluster, _, victim) =
        with_keys_on_a_follower(&["--experimental-corrupt-check-time", "500ms"]);
    cluster.stop(victim);
    damage_newest_record(&cluster.data_dir(victim).join("store"));
    // Not `restart`: that waits for every member to be healthy, and with a check every
    // 500ms the CORRUPT alarm may already be raised (so none is healthy) by then.
    cluster.restart_no_wait(victim);
    // Normally the damaged member is named; were it to lead meanwhile, its view is the odd
    // one out and the others are named. Either way the cluster stops serving.
    let want = "alarm:CORRUPT";
    // Every member holds the alarm once it has applied it.
    for i in 0..3 {
        wait_until(
            "a CORRUPT alarm on every member",
            Duration::from_secs(30),
            || {
                let out = cluster.etcdctl(i, &["alarm", "list"]);
                String::from_utf8_lossy(&out.stdout).contains(want)
            },
        );
    }
    for i in 0..3 {
        assert_eq!(
            etcdctl_error(&cluster.etcdctl(i, &["put", "after", "v"])),
            "Error: etcdserver: corrupt cluster"
        );
        assert_eq!(
            etcdctl_error(&cluster.etcdctl(i, &["get", "k0"])),
            "Error: etcdserver: corrupt cluster"
        );
    }
}

#[test]
fn periodic_auto_compaction_keeps_the_retention_window() {
    let server = Server::start_with(&[
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "2s",
    ]);
    stdout_ok(&server.etcdctl(&["put", "k", "v1"]));
    stdout_ok(&server.etcdctl(&["put", "k", "v2"]));
    // Right away, revision 2 is still readable.
    let old = stdout_ok(&server.etcdctl(&["get", "k", "--rev", "2", "--print-value-only"]));
    assert_eq!(old.trim(), "v1");
    wait_until(
        "history compacted past revision 2",
        Duration::from_secs(20),
        || {
            let out = server.etcdctl(&["get", "k", "--rev", "2"]);
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr)
                    .contains("etcdserver: mvcc: required revision has been compacted")
        },
    );
    assert!(server.log().contains("auto-compacted history"));
}

#[test]
fn the_initial_corruption_check_stops_a_damaged_member_before_it_serves() {
    let (mut cluster, leader, victim) =
        with_keys_on_a_follower(&["--experimental-initial-corrupt-check"]);
    // An undamaged member passes the check on a restart.
    cluster.stop(victim);
    cluster.restart(victim);
    assert!(
        cluster
            .log(victim)
            .contains("initial corruption check passed")
    );
    stdout_ok(&cluster.etcdctl(victim, &["get", "k4"]));

    cluster.stop(victim);
    damage_newest_record(&cluster.data_dir(victim).join("store"));
    cluster.restart_no_wait(victim);
    let mut status = None;
    wait_until(
        "the damaged member to refuse to start",
        Duration::from_secs(30),
        || {
            status = cluster.exit_status(victim);
            status.is_some()
        },
    );
    assert!(!status.expect("an exit status").success());
    assert!(
        cluster
            .log(victim)
            .contains("found data inconsistency with peers"),
        "{}",
        cluster.log(victim)
    );
    // It served nothing, and the others go on.
    stdout_ok(&cluster.etcdctl(leader, &["put", "after", "v"]));
}
