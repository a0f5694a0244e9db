//! Crash and restart: every write the server acknowledged survives SIGKILL right after the
//! acknowledgement, a clean SIGTERM/SIGINT stop, and a restart on the same data dir;
//! compaction survives too; concurrent writers lose nothing they were told was written.
//! SIGKILL leaves the OS page cache intact, so these tests prove crash consistency of the
//! process, not that fsync reaches the disk (that needs power-loss emulation).

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Server;
use etcd_client::{Client, CompactionOptions, GetOptions, Txn, TxnOp};

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("a response header").revision()
}

async fn current_revision(c: &mut Client) -> i64 {
    revision_of(c.get("any-key", None).await.expect("get").header())
}

/// Every key under `prefix` with its value and mod revision.
async fn dump(c: &mut Client, prefix: &str) -> HashMap<String, (String, i64)> {
    let resp = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get the prefix");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("UTF-8 key").to_string(),
                (
                    kv.value_str().expect("UTF-8 value").to_string(),
                    kv.mod_revision(),
                ),
            )
        })
        .collect()
}

fn assert_compacted<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>) {
    match result {
        Err(etcd_client::Error::GRpcStatus(s)) => assert_eq!(
            (format!("{:?}", s.code()), s.message()),
            (
                "OutOfRange".to_string(),
                "etcdserver: mvcc: required revision has been compacted"
            )
        ),
        other => panic!("expected the compacted error, got {other:?}"),
    }
}

#[tokio::test]
async fn kill9_right_after_acknowledgements_loses_nothing() {
    let mut s = Server::start();
    let mut c = s.client().await;
    const N: usize = 300;
    let mut acked = HashMap::new();
    for i in 0..N {
        let key = format!("key/{i:04}");
        let value = format!("value-{i}");
        let resp = c
            .put(key.as_str(), value.as_str(), None)
            .await
            .expect("put");
        acked.insert(key, (value, revision_of(resp.header())));
    }
    // A delete and a multi-key txn, acknowledged too.
    let resp = c.delete("key/0000", None).await.expect("delete");
    assert_eq!(resp.deleted(), 1);
    assert_eq!(revision_of(resp.header()), N as i64 + 2);
    acked.remove("key/0000");
    let resp = c
        .txn(Txn::new().and_then([
            TxnOp::put("key/0001", "rewritten", None),
            TxnOp::put("key/new", "in-txn", None),
        ]))
        .await
        .expect("txn");
    let last = revision_of(resp.header());
    acked.insert("key/0001".into(), ("rewritten".into(), last));
    acked.insert("key/new".into(), ("in-txn".into(), last));
    let status = c.status().await.expect("status");
    let member = status.header().expect("header").member_id();
    let raft_index = status.raft_index();
    assert_eq!(last, N as i64 + 3);

    s.kill9();
    s.restart();

    let mut c = s.client().await;
    assert_eq!(dump(&mut c, "key/").await, acked);
    assert_eq!(current_revision(&mut c).await, last);
    let status = c.status().await.expect("status");
    assert_eq!(status.header().expect("header").member_id(), member);
    assert!(
        status.raft_index() >= raft_index,
        "the applied index went back from {raft_index} to {}",
        status.raft_index()
    );
    // History survived too, and new writes continue the revision sequence.
    let old = c
        .get("key/0000", Some(GetOptions::new().with_revision(2)))
        .await
        .expect("history");
    assert_eq!(old.kvs()[0].value(), b"value-0");
    let resp = c.put("after", "restart", None).await.expect("put");
    assert_eq!(revision_of(resp.header()), last + 1);
}

// Multi-threaded so that the client's connection tasks keep running while `stop()` blocks:
// the server's graceful shutdown waits for connections to close after its GOAWAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_sigterm_stop_and_restart() {
    let mut s = Server::start();
    let mut c = s.client().await;
    for i in 0..50 {
        c.put(format!("k{i:02}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    let before = dump(&mut c, "k").await;
    let revision = current_revision(&mut c).await;
    let header = c.status().await.expect("status").header().cloned();
    let ids = header.map(|h| (h.cluster_id(), h.member_id()));
    drop(c);

    s.stop();
    assert!(
        s.log().contains("stopped"),
        "the server logs its clean stop:\n{}",
        s.log()
    );
    s.restart();

    let mut c = s.client().await;
    assert_eq!(dump(&mut c, "k").await, before);
    assert_eq!(current_revision(&mut c).await, revision);
    let header = c.status().await.expect("status").header().cloned();
    assert_eq!(
        header.map(|h| (h.cluster_id(), h.member_id())),
        ids,
        "the same member after a restart"
    );

    // And a second cycle straight after, stopped with SIGINT (Ctrl-C) this time.
    c.put("k99", "late", None).await.expect("put");
    drop(c);
    s.stop_with("INT");
    s.restart();
    let mut c = s.client().await;
    let got = c.get("k99", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"late");
    assert_eq!(current_revision(&mut c).await, revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_survives_restart() {
    let mut s = Server::start();
    let mut c = s.client().await;
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        c.put("k", v, None).await.expect("put");
    }
    c.put("other", "o", None).await.expect("put");
    // Revisions 2..=7.
    c.compact(4, None).await.expect("compact");
    drop(c);

    s.kill9();
    s.restart();

    let mut c = s.client().await;
    let at = |r: i64| Some(GetOptions::new().with_revision(r));
    assert_compacted(c.get("k", at(3)).await);
    assert_compacted(c.compact(4, None).await);
    let got = c.get("k", at(4)).await.expect("the compaction point");
    assert_eq!(got.kvs()[0].value(), b"v3");
    let got = c.get("k", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v5");
    assert_eq!(got.kvs()[0].version(), 5);
    assert_eq!(got.kvs()[0].create_revision(), 2);
    assert_eq!(
        c.get("other", None).await.expect("get").kvs()[0].value(),
        b"o"
    );
    assert_eq!(current_revision(&mut c).await, 7);

    // A physical compaction, then a clean stop.
    c.compact(6, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("physical compaction");
    drop(c);
    s.stop();
    s.restart();

    let mut c = s.client().await;
    assert_compacted(c.get("k", at(5)).await);
    let got = c.get("k", at(6)).await.expect("the compaction point");
    assert_eq!(got.kvs()[0].value(), b"v5");
    assert_eq!(current_revision(&mut c).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_killed_midway_lose_nothing_acknowledged() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 200;
    const KILL_AFTER: usize = 400;

    let mut s = Server::start();
    let client = s.client().await;
    let acked_total = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = client.clone();
        let acked_total = acked_total.clone();
        let reached = reached.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_WRITER {
                let key = format!("w{w}/{i:03}");
                let value = format!("value-{w}-{i}");
                // The first failure is the kill: stop there, so that nothing is written
                // after the restart.
                let Ok(resp) = c.put(key.as_str(), value.as_str(), None).await else {
                    break;
                };
                acked.push((key, value, revision_of(resp.header())));
                if acked_total.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    reached.notify_one();
                }
            }
            acked
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), reached.notified())
        .await
        .expect("the writers reached the kill point");
    s.kill9();

    let mut acked = Vec::new();
    for writer in writers {
        let mine = tokio::time::timeout(Duration::from_secs(120), writer)
            .await
            .expect("a writer stops once the server is gone")
            .expect("a writer task");
        acked.extend(mine);
    }
    drop(client);
    assert!(acked.len() >= KILL_AFTER);
    assert!(
        acked.len() < WRITERS * PER_WRITER,
        "every write finished before the kill; the test did not kill mid-way"
    );

    s.restart();
    let mut c = s.client().await;
    let present = dump(&mut c, "w").await;
    for (key, value, revision) in &acked {
        assert_eq!(
            present.get(key),
            Some(&(value.clone(), *revision)),
            "acknowledged write of {key} at revision {revision}"
        );
    }
    // Each put made one revision: whatever else survived (written but not acknowledged), the
    // history has no holes.
    let current = current_revision(&mut c).await;
    assert_eq!(present.len() as i64, current - 1);
    let max_acked = acked.iter().map(|(_, _, r)| *r).max().unwrap_or(0);
    assert!(current >= max_acked);
    // Writing goes on from there.
    let resp = c.put("after", "restart", None).await.expect("put");
    assert_eq!(revision_of(resp.header()), current + 1);
}
