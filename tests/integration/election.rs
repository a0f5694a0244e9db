//! etcd's v3election service on real processes, through the etcd-client crate: campaign in
//! line, proclaim, leader, observe (every change, in order), resign hands over at once, and
//! etcd's errors.

use crate::common;

use std::time::Duration;

use common::Server;
use etcd_client::{Client, ProclaimOptions, ResignOptions};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn next_value(observe: &mut etcd_client::ObserveStream) -> String {
    let resp = tokio::time::timeout(Duration::from_secs(10), observe.message())
        .await
        .expect("an observed change in time")
        .expect("the observe stream is healthy")
        .expect("the observe stream is open");
    text(resp.kv().expect("a leader kv").value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_proclaim_observe_and_resign() {
    let s = Server::start();
    let mut a: Client = s.client().await;
    let mut b: Client = s.client().await;
    let la = a.lease_grant(60, None).await.expect("grant").id();
    let lb = b.lease_grant(60, None).await.expect("grant").id();

    let err = a.leader("pool").await.expect_err("nobody leads yet");
    assert!(err.to_string().contains("election: no leader"), "{err}");

    let won = a.campaign("pool", "a1", la).await.expect("campaign");
    let leader_a = won.leader().expect("a leader key").clone();
    assert!(leader_a.key().starts_with(b"pool/"));
    let mut observe = s.client().await.observe("pool").await.expect("observe");
    assert_eq!(next_value(&mut observe).await, "a1");
    assert_eq!(
        text(
            a.leader("pool")
                .await
                .expect("leader")
                .kv()
                .expect("kv")
                .value()
        ),
        "a1"
    );

    // B waits in line behind A.
    let mut waiter = b.clone();
    let b_campaign = tokio::spawn(async move { waiter.campaign("pool", "b1", lb).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b_campaign.is_finished(), "B leads while A does");

    a.proclaim(
        "a2",
        Some(ProclaimOptions::new().with_leader(leader_a.clone())),
    )
    .await
    .expect("proclaim");
    assert_eq!(next_value(&mut observe).await, "a2");

    // Resign hands over at once; the old leader can no longer proclaim.
    a.resign(Some(ResignOptions::new().with_leader(leader_a.clone())))
        .await
        .expect("resign");
    let won_b = tokio::time::timeout(Duration::from_secs(10), b_campaign)
        .await
        .expect("B leads after A resigns")
        .expect("B's task")
        .expect("B's campaign");
    assert!(won_b.leader().expect("leader key").rev() > leader_a.rev());
    assert_eq!(next_value(&mut observe).await, "b1");
    let err = a
        .proclaim("a3", Some(ProclaimOptions::new().with_leader(leader_a)))
        .await
        .expect_err("A no longer leads");
    assert!(err.to_string().contains("election: not leader"), "{err}");
}
