//! The root crate's lock guard and election on real processes: workers increment a counter
//! under the lock with every write fenced, and the count comes out exact; a campaign waits
//! for the leader to resign, and observers see each leader in turn.

use crate::common;

use std::time::Duration;

use common::cluster::Cluster;
use conclave::{Client, GetOptions, PutOptions, Txn, TxnOp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_under_a_fenced_lock_count_exactly() {
    const WORKERS: usize = 8;
    const ROUNDS: usize = 10;
    let mut c = Cluster::start(3);
    let endpoints = c.endpoints();
    let _ = tokio::task::block_in_place(|| c.leader());
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        // Each worker talks to one member: followers forward.
        let client = Client::connect([endpoints[w % endpoints.len()].clone()])
            .await
            .expect("connect");
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = client.lock("counter-lock", 5).await.expect("lock");
                let now: u64 = client
                    .get("counter", GetOptions::new())
                    .await
                    .expect("get")
                    .kvs
                    .first()
                    .map_or(0, |kv| {
                        String::from_utf8_lossy(&kv.value).parse().unwrap_or(0)
                    });
                let txn = Txn::new().when([guard.fence()]).and_then([TxnOp::put(
                    "counter",
                    (now + 1).to_string(),
                    PutOptions::new(),
                )]);
                assert!(
                    client.txn(txn).await.expect("txn").succeeded,
                    "the fenced write failed while holding the lock"
                );
                guard.unlock().await.expect("unlock");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("the workers finish")
            .expect("a worker");
    }
    let client = Client::connect(endpoints).await.expect("connect");
    let count = client.get("counter", GetOptions::new()).await.expect("get");
    assert_eq!(
        count.kvs[0].value,
        (WORKERS * ROUNDS).to_string().into_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_resign_and_observers_see_each_leader() {
    let c = Cluster::start(3);
    let client = Client::connect(c.endpoints()).await.expect("connect");
    let mut observe = client.observe("svc-leader").await.expect("observe");
    let first = client
        .campaign("svc-leader", "a", 10)
        .await
        .expect("campaign a");
    let second_client = client.clone();
    let second = tokio::spawn(async move { second_client.campaign("svc-leader", "b", 10).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "b leads while a does");
    let leader = client.election_leader("svc-leader").await.expect("leader");
    assert_eq!(leader.expect("a leader").value, b"a");
    first.proclaim("a2").await.expect("proclaim");
    first.resign().await.expect("resign");
    let b = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("b leads after a resigns")
        .expect("b's task")
        .expect("b's campaign");
    let mut values = Vec::new();
    while values.len() < 3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), observe.message())
            .await
            .expect("an observed change")
            .expect("observing goes on");
        values.push(String::from_utf8_lossy(&resp.kv.expect("kv").value).into_owned());
    }
    assert_eq!(values, ["a", "a2", "b"]);
    drop(b);
    // Dropping the leadership revokes its lease: nobody leads.
    let mut nobody = false;
    for _ in 0..50 {
        if client
            .election_leader("svc-leader")
            .await
            .expect("leader")
            .is_none()
        {
            nobody = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nobody, "a dropped leadership still leads");
}
