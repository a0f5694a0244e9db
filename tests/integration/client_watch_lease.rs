//! The root crate's client (conclave::Client) for leases and watches, on real processes: a
//! keeper holds a short lease for longer than its TTL and lets it go when dropped; a watch
//! over two members keeps going when the one serving it is killed, without gap or repeat.

use crate::common;

use std::time::{Duration, Instant};

use common::Server;
use common::cluster::Cluster;
use conclave::{Client, GetOptions, PutOptions, WatchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_holds_a_lease_past_its_ttl_and_dropping_it_lets_go() {
    let s = Server::start();
    let client = Client::connect([s.endpoint()]).await.expect("connect");
    let lease = client.lease_grant(2, 0).await.expect("grant");
    client
        .put("session", "here", PutOptions::new().with_lease(lease.id))
        .await
        .expect("put");
    let keeper = client.lease_keep_alive(lease.id).await.expect("keep alive");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(keeper.ttl(), Some(2));
    let got = client.get("session", GetOptions::new()).await.expect("get");
    assert_eq!(
        got.kvs.len(),
        1,
        "the key outlived its TTL while kept alive"
    );

    drop(keeper);
    let dropped = Instant::now();
    loop {
        let got = client.get("session", GetOptions::new()).await.expect("get");
        if got.kvs.is_empty() {
            break;
        }
        assert!(
            dropped.elapsed() < Duration::from_secs(10),
            "the lease was never let go"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A keeper reports a lease revoked under it.
    let lease = client.lease_grant(30, 0).await.expect("grant");
    let keeper = client.lease_keep_alive(lease.id).await.expect("keep alive");
    client.lease_revoke(lease.id).await.expect("revoke");
    tokio::time::timeout(Duration::from_secs(30), keeper.lost())
        .await
        .expect("the keeper notices");
    assert_eq!(keeper.ttl(), None);
}

/// Appends the (revision, key) of the events of the watch's next response.
async fn next_events(watch: &mut conclave::WatchStream, seen: &mut Vec<(i64, Vec<u8>)>) {
    let resp = tokio::time::timeout(Duration::from_secs(60), watch.message())
        .await
        .expect("a response in time")
        .expect("the watch goes on")
        .expect("a healthy response");
    for e in resp.events {
        let kv = e.kv.expect("kv");
        seen.push((kv.mod_revision, kv.key));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_survives_each_of_its_members_being_killed() {
    const WRITES: usize = 240;
    let mut c = Cluster::start(3);
    let (a, b, writer_member) = (0, 1, 2);
    let watcher = Client::connect([c.endpoint(a), c.endpoint(b)])
        .await
        .expect("connect the watcher");
    let writer = Client::connect([c.endpoint(writer_member)])
        .await
        .expect("connect the writer");
    let first = writer
        .put("w/start", "0", PutOptions::new())
        .await
        .expect("put")
        .header
        .expect("header")
        .revision;
    let mut watch = watcher
        .watch(
            "w/",
            WatchOptions::new().with_prefix().with_start_revision(first),
        )
        .await
        .expect("watch");

    let writes = tokio::spawn(async move {
        for n in 1..=WRITES {
            // Writes go on through the kills: retry what failed.
            loop {
                match writer
                    .put(format!("w/{n:04}"), n.to_string(), PutOptions::new())
                    .await
                {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let mut seen: Vec<(i64, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_a = false;
    let mut killed_b = false;
    let last_key = format!("w/{WRITES:04}").into_bytes();
    while !seen.iter().any(|s| s.1 == last_key) {
        assert!(
            Instant::now() < deadline,
            "the watch saw {} events",
            seen.len()
        );
        next_events(&mut watch, &mut seen).await;
        // Kill one member of the two, then (after bringing it back) the other: the watch's
        // stream was on one of them at least once.
        if !killed_a && seen.len() >= WRITES / 3 {
            killed_a = true;
            tokio::task::block_in_place(|| c.kill9(a));
            tokio::task::block_in_place(|| c.restart(a));
        } else if !killed_b && seen.len() >= 2 * WRITES / 3 {
            killed_b = true;
            tokio::task::block_in_place(|| c.kill9(b));
        }
    }
    writes.await.expect("the writer");
    // The truth: one watch over the whole history, on the member still up.
    let survivor = Client::connect([c.endpoint(a)]).await.expect("connect");
    let mut history = survivor
        .watch(
            "w/",
            WatchOptions::new().with_prefix().with_start_revision(first),
        )
        .await
        .expect("watch the history");
    let mut truth: Vec<(i64, Vec<u8>)> = Vec::new();
    while !truth.iter().any(|s| s.1 == last_key) {
        next_events(&mut history, &mut truth).await;
    }
    assert_eq!(seen, truth, "every event once, in order");
}
