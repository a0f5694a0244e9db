//! etcd's v3lock service on real processes, through the etcd-client crate: one holder at a
//! time, in line by creation revision; a holder whose lease ends releases the lock; a waiter
//! that gives up leaves nothing behind; and the lock key's create revision fences writes.

use crate::common;

use std::time::Duration;

use common::Server;
use common::cluster::Cluster;
use etcd_client::{Client, Compare, CompareOp, GetOptions, LockOptions, Txn, TxnOp};

async fn lease(client: &mut Client, ttl: i64) -> i64 {
    client.lease_grant(ttl, None).await.expect("grant").id()
}

async fn lock(client: &mut Client, name: &str, lease: i64) -> Vec<u8> {
    client
        .lock(name, Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("lock")
        .key()
        .to_vec()
}

async fn create_revision(client: &mut Client, key: &[u8]) -> i64 {
    client
        .get(key, None)
        .await
        .expect("get")
        .kvs()
        .first()
        .map(|kv| kv.create_revision())
        .unwrap_or(0)
}

/// A write guarded by the lock: it applies only while `key` is the one created at `fence`.
async fn fenced_put(client: &mut Client, key: &[u8], fence: i64, value: &str) -> bool {
    client
        .txn(
            Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, fence)])
                .and_then([TxnOp::put("counter", value, None)]),
        )
        .await
        .expect("txn")
        .succeeded()
}

async fn exclusion_and_fencing(mut a: Client, mut b: Client) {
    let la = lease(&mut a, 60).await;
    let lb = lease(&mut b, 60).await;
    let key_a = lock(&mut a, "job", la).await;
    assert!(key_a.starts_with(b"job/"), "{key_a:?}");
    let fence_a = create_revision(&mut a, &key_a).await;
    assert!(fenced_put(&mut a, &key_a, fence_a, "a").await);

    // B waits in line while A holds the lock.
    let mut waiter = b.clone();
    let waiting = tokio::spawn(async move { lock(&mut waiter, "job", lb).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "B got the lock while A held it");

    // A's lease ends (a crashed holder): B gets the lock, and A's fenced writes now fail.
    a.lease_revoke(la).await.expect("revoke A's lease");
    let key_b = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("B gets the lock once A's lease is gone")
        .expect("B's task");
    let fence_b = create_revision(&mut b, &key_b).await;
    assert!(fence_b > fence_a);
    assert!(!fenced_put(&mut a, &key_a, fence_a, "stale a").await);
    assert!(fenced_put(&mut b, &key_b, fence_b, "b").await);

    // Unlock hands it on at once.
    let la2 = lease(&mut a, 60).await;
    let mut again = a.clone();
    let next = tokio::spawn(async move { lock(&mut again, "job", la2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.unlock(key_b).await.expect("unlock");
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("A gets the lock after B unlocks")
        .expect("A's task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_fenced_writes_on_a_lone_server() {
    let s = Server::start();
    exclusion_and_fencing(s.client().await, s.client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_through_two_followers() {
    let mut c = Cluster::start(3);
    let followers = tokio::task::block_in_place(|| c.followers());
    exclusion_and_fencing(c.client(followers[0]).await, c.client(followers[1]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_leaves_no_key_behind() {
    let s = Server::start();
    let mut holder = s.client().await;
    let lh = lease(&mut holder, 60).await;
    lock(&mut holder, "queue", lh).await;
    let mut quitter = s.client().await;
    let lq = lease(&mut quitter, 60).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        quitter.lock("queue", Some(LockOptions::new().with_lease(lq))),
    )
    .await;
    assert!(gave_up.is_err(), "the waiter got a held lock");
    // The server notices the cancelled call and deletes the waiter's key.
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = holder
            .get("queue/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get")
            .kvs()
            .len();
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "only the holder's key is left");
}
