//! Backup and disaster recovery with real processes: `etcdctl snapshot save` against conclave,
//! then a new 3-member cluster restored from the file (--restore-from) holding every key, its
//! history, the leases, users and roles, with equal HashKV everywhere; `conclavectl snapshot
//! save|status|restore` round trip through a stopped member's data dir; scheduled backups that
//! keep the newest N; and a damaged snapshot refused.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::cluster::Cluster;
use common::{Server, conclavectl, etcdctl_at, stdout_ok, wait_until};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    let text = stdout_ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn snapshot_status(file: &Path) -> Value {
    let file = file.to_str().expect("a UTF-8 path");
    json(&conclavectl(
        "127.0.0.1:1",
        &["snapshot", "status", file, "-w", "json"],
    ))
}

#[test]
fn etcdctl_snapshot_save_restores_into_a_new_three_member_cluster() {
    let server = Server::start();
    for i in 0..50 {
        stdout_ok(&server.etcdctl(&["put", &format!("key/{i:02}"), &format!("v{i}")]));
    }
    stdout_ok(&server.etcdctl(&["put", "key/00", "second"]));
    let lease = json(&server.etcdctl(&["lease", "grant", "600", "-w", "json"]));
    let lease_id = format!("{:x}", lease["ID"].as_i64().expect("a lease ID"));
    stdout_ok(&server.etcdctl(&["put", "leased", "x", "--lease", &lease_id]));
    stdout_ok(&server.etcdctl(&["user", "add", "carol:carolpw"]));
    stdout_ok(&server.etcdctl(&["role", "add", "auditor"]));
    let revision = json(&server.etcdctl(&["get", "leased", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .expect("a revision");
    let old_cluster =
        json(&server.etcdctl(&["get", "leased", "-w", "json"]))["header"]["cluster_id"]
            .as_u64()
            .expect("a cluster ID");

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("backup.db");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let saved = stdout_ok(&server.etcdctl(&["snapshot", "save", file_arg]));
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let status = snapshot_status(&file);
    assert_eq!(status["revision"], revision);
    assert!(status["totalKey"].as_u64().expect("a count") >= 52);
    assert_eq!(status["checksum"].as_str().map(str::len), Some(64));
    drop(server);

    let cluster = Cluster::builder(3)
        .flags(&["--restore-from", file_arg])
        .start();
    for i in 0..3 {
        assert!(
            cluster
                .log(i)
                .contains("restored the store from a snapshot"),
            "member {i} did not restore"
        );
        let got = json(&cluster.etcdctl(i, &["get", "key/", "--prefix", "-w", "json"]));
        assert_eq!(got["count"], 50, "member {i}");
        assert!(got["header"]["revision"].as_i64().expect("a revision") >= revision);
        assert_ne!(got["header"]["cluster_id"].as_u64(), Some(old_cluster));
        // History came too.
        let old =
            stdout_ok(&cluster.etcdctl(i, &["get", "key/00", "--rev", "2", "--print-value-only"]));
        assert_eq!(old.trim(), "v0");
    }
    assert_eq!(stdout_ok(&cluster.etcdctl(2, &["user", "list"])), "carol\n");
    assert_eq!(
        stdout_ok(&cluster.etcdctl(2, &["role", "list"])),
        "auditor\n"
    );
    let leases = stdout_ok(&cluster.etcdctl(0, &["lease", "list"]));
    assert!(leases.contains(&lease_id), "lease list: {leases}");
    let ttl = stdout_ok(&cluster.etcdctl(0, &["lease", "timetolive", &lease_id, "--keys"]));
    assert!(ttl.contains("leased"), "timetolive: {ttl}");
    // Every member holds the same data.
    let endpoints = cluster.endpoints().join(",");
    let hashes = json(&etcdctl_at(
        &endpoints,
        &["endpoint", "hashkv", "-w", "json"],
        None,
    ));
    let hashes: Vec<u64> = hashes
        .as_array()
        .expect("one entry per endpoint")
        .iter()
        .map(|e| e["HashKV"]["hash"].as_u64().expect("a hash"))
        .collect();
    assert_eq!(hashes.len(), 3);
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    // And the new cluster takes writes.
    stdout_ok(&cluster.etcdctl(1, &["put", "after", "restore"]));
}

#[test]
fn conclavectl_snapshot_round_trips_through_a_data_dir() {
    let mut server = Server::start();
    for i in 0..20 {
        stdout_ok(&server.etcdctl(&["put", &format!("k{i}"), "v"]));
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("snap.db");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let saved = stdout_ok(&conclavectl(
        &server.endpoint(),
        &["snapshot", "save", file_arg],
    ));
    assert!(
        saved.starts_with(&format!("Snapshot saved at {file_arg}")),
        "{saved}"
    );
    assert!(!dir.path().join("snap.db.part").exists());
    server.stop();

    let data_dir = server.data_dir();
    let data_arg = data_dir.to_str().expect("a UTF-8 path");
    // A data dir that holds a store is not overwritten.
    let out = conclavectl(
        "127.0.0.1:1",
        &["snapshot", "restore", file_arg, "--data-dir", data_arg],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds data"));
    std::fs::remove_dir_all(&data_dir).expect("clear the data dir");
    let restored = stdout_ok(&conclavectl(
        "127.0.0.1:1",
        &["snapshot", "restore", file_arg, "--data-dir", data_arg],
    ));
    assert!(restored.contains("restored snapshot"), "{restored}");
    server.restart();
    let got = json(&server.etcdctl(&["get", "k", "--prefix", "-w", "json"]));
    assert_eq!(got["count"], 20);

    // A damaged file is refused by status and by restore.
    let mut bytes = std::fs::read(&file).expect("read the snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, bytes).expect("write the damaged copy");
    let damaged_arg = damaged.to_str().expect("a UTF-8 path");
    let out = conclavectl("127.0.0.1:1", &["snapshot", "status", damaged_arg]);
    assert!(!out.status.success());
    let other = dir.path().join("other");
    let out = conclavectl(
        "127.0.0.1:1",
        &[
            "snapshot",
            "restore",
            damaged_arg,
            "--data-dir",
            other.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(!out.status.success(), "a damaged snapshot was restored");
    assert!(
        !other.join("store").exists(),
        "a half-restored store was left behind"
    );
}

#[test]
fn scheduled_backups_keep_the_newest_and_restore() {
    let backups = tempfile::tempdir().expect("a temp dir");
    let server = Server::start_with(&[
        "--backup-dir",
        backups.path().to_str().expect("a UTF-8 path"),
        "--backup-interval",
        "300ms",
        "--backup-retain",
        "2",
    ]);
    stdout_ok(&server.etcdctl(&["put", "scheduled", "yes"]));
    let list = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(backups.path())
            .expect("list the backups")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "snap"))
            .collect();
        files.sort();
        files
    };
    wait_until("old backups removed", Duration::from_secs(30), || {
        server.log().contains("removed an old backup")
    });
    let files = list();
    assert!(files.len() <= 2, "{files:?}");
    let newest = files.last().expect("a backup");
    let status = snapshot_status(newest);
    assert!(status["revision"].as_i64().expect("a revision") >= 2);

    // A member started from it on an empty data dir has the data.
    let restored = Server::start_with(&["--restore-from", newest.to_str().expect("a UTF-8 path")]);
    let got = stdout_ok(&restored.etcdctl(&["get", "scheduled", "--print-value-only"]));
    assert_eq!(got.trim(), "yes");
}
