//! Leases on real processes through the etcd-client crate: client-chosen IDs, and what a
//! leader change does to a lease's clock (it must neither restart nor lose it).

use crate::common;

use std::time::{Duration, Instant};

use common::Server;
use common::cluster::Cluster;
use etcd_client::{LeaseGrantOptions, PutOptions};

/// When `key` was first seen gone from `client`'s member (serializable reads every 50 ms, so
/// a member that lost its leader still answers); fails after 30 s.
async fn when_gone(client: &mut etcd_client::Client, key: &str) -> Instant {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{key} was never removed"
        );
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_secs(1),
            client.get(
                key,
                Some(etcd_client::GetOptions::new().with_serializable()),
            ),
        )
        .await
            && resp.kvs().is_empty()
        {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 3-member cluster with a lease of `ttl` seconds, granted through the leader or a
/// follower, and the key "session" under it.
struct Session {
    c: Cluster,
    leader: usize,
    follower: usize,
    /// Connected to the member the lease was granted through.
    client: etcd_client::Client,
    lease: i64,
    /// Just before the grant was sent, and once it was answered.
    sent: Instant,
    granted: Instant,
}

async fn session(ttl: i64, through_leader: bool) -> Session {
    let mut c = Cluster::start(3);
    let leader = tokio::task::block_in_place(|| c.leader());
    let follower = tokio::task::block_in_place(|| c.followers())[0];
    let mut client = c
        .client(if through_leader { leader } else { follower })
        .await;
    let sent = Instant::now();
    let lease = client.lease_grant(ttl, None).await.expect("grant").id();
    let granted = Instant::now();
    client
        .put(
            "session",
            "alive",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("put with the lease");
    Session {
        c,
        leader,
        follower,
        client,
        lease,
        sent,
        granted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_ids_are_kept_and_taken_ones_refused() {
    let server = Server::start();
    let mut client = server.client().await;
    let granted = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x7e57)))
        .await
        .expect("grant with an ID");
    assert_eq!(granted.id(), 0x7e57);
    assert_eq!(granted.ttl(), 30);
    let again = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x7e57)))
        .await
        .expect_err("the ID is taken");
    assert!(
        again
            .to_string()
            .contains("etcdserver: lease already exists"),
        "{again}"
    );
    let ttl = client
        .lease_time_to_live(0x7e57, None)
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 30);
}

/// etcd #9395: a new leader restarted every lease's TTL. Here every member keeps each lease's
/// deadline from the grants and checkpoints it applies, so a 10 s lease whose keep-alives
/// stop, with its leader killed 5 s later, ends 10 s after the last keep-alive: never before,
/// and within a second after (not 15 s, nor the 12.4 s of a new leader that restarted each
/// lease's checkpointed remaining TTL when it took over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_neither_restarts_nor_drops_a_lease() {
    let Session {
        mut c,
        leader,
        follower,
        mut client,
        lease,
        ..
    } = session(10, false).await;
    client
        .lease_keep_alive(lease)
        .await
        .expect("keep-alive")
        .0
        .keep_alive()
        .await
        .expect("one keep-alive");
    let last_keep_alive = Instant::now();

    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| c.kill9(leader));

    let survivor = (0..3)
        .find(|&i| i != leader && i != follower)
        .expect("a third member");
    let mut watcher = c.client(survivor).await;
    let gone = when_gone(&mut watcher, "session").await - last_keep_alive;
    eprintln!("the key went {gone:?} after the last keep-alive");
    // The new leader took over long before the deadline (the election takes 1-2.5 s), so the
    // key goes at 10 s plus a lessor tick, a revoke's commit and a 50 ms poll. The
    // client took its instant after the keep-alive's answer, a moment after the renewal.
    assert!(
        gone >= Duration::from_millis(9_800) && gone < Duration::from_secs(11),
        "the key went {gone:?} after the last keep-alive; expected 10-11 s"
    );
}

/// The case: an 8 s lease, never renewed, its leader paused (SIGSTOP: it neither
/// answers nor closes its connections) 2 s after the grant. The others elect a leader, which
/// revokes the lease at 8 s: not before, and by 9 s. The old leader, resumed, steps down and
/// revives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ends_on_time_when_its_leader_is_paused() {
    let Session {
        mut c,
        leader,
        mut client,
        lease,
        sent: before_grant,
        granted,
        ..
    } = session(8, false).await;
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(granted.elapsed())).await;
    tokio::task::block_in_place(|| c.pause(leader, true));

    let gone = when_gone(&mut client, "session").await;
    tokio::task::block_in_place(|| c.pause(leader, false));
    let (earliest, latest) = (gone - before_grant, gone - granted);
    eprintln!("the key went {earliest:?} after the grant was sent, {latest:?} after its answer");
    assert!(
        earliest >= Duration::from_secs(8),
        "the lease ended early: {earliest:?} after the grant was sent"
    );
    assert!(
        latest < Duration::from_secs(9),
        "the lease ended late: {latest:?} after the grant was answered"
    );
    // The resumed member steps down and agrees the lease is gone.
    let new_leader = tokio::task::block_in_place(|| c.wait_for_leader(&[leader]));
    assert_ne!(new_leader, leader);
    let mut old = c.client(leader).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(resp) = old.get("session", None).await {
            assert!(
                resp.kvs().is_empty(),
                "the resumed old leader revived the key"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed member never answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ttl = old
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live from the resumed member");
    assert_eq!(ttl.ttl(), -1, "the lease is gone everywhere");
}

/// etcd 3.5's case for confirming leadership before a renewal: a leader cut off from the
/// others (its peer port dropped) while its client still reaches it. The client renews an
/// 8 s lease through that leader every second; 2.5 s after the grant (half a second after a
/// renewal, so that the others have heard it committed) the leader is isolated. From then on
/// its renewals must fail (it commits nothing), and the others' new leader ends the lease 8 s
/// after the last renewal that succeeded: never before, and by a second after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_renews_no_lease() {
    use std::sync::{Arc, Mutex};

    let Session {
        c,
        leader,
        follower,
        client,
        lease,
        ..
    } = session(8, true).await;

    // Renewals through the leader, one a second for 12 s, each on a fresh stream (a failed
    // one may leave its stream broken): when each one that succeeded was sent and answered.
    let renewed: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let failures = Arc::new(Mutex::new(0u32));
    let renewer = {
        let (renewed, failures) = (renewed.clone(), failures.clone());
        let mut client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(12) {
                let sent = Instant::now();
                if common::renewed(&mut client, lease, Duration::from_millis(1500)).await {
                    renewed.lock().unwrap().push((sent, Instant::now()));
                } else {
                    *failures.lock().unwrap() += 1;
                }
                tokio::time::sleep(Duration::from_secs(1).saturating_sub(sent.elapsed())).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let partition = tokio::task::block_in_place(|| c.isolate(leader));
    let isolated = Instant::now();
    let mut majority = c.client(follower).await;
    let gone = when_gone(&mut majority, "session").await;
    renewer.await.expect("the renewals ran");
    drop(partition);

    let renewed = renewed.lock().unwrap().clone();
    let failures = *failures.lock().unwrap();
    let &(last_sent, last_answered) = renewed.last().expect("renewals before the partition");
    eprintln!(
        "{} renewals succeeded, {failures} failed; the last was sent {:?} after the isolation; \
         the key went {:?} after it was sent",
        renewed.len(),
        last_sent.saturating_duration_since(isolated),
        gone - last_sent
    );
    assert!(
        last_sent < isolated,
        "the isolated leader renewed a lease {:?} after it was cut off",
        last_sent - isolated
    );
    assert!(
        failures >= 3,
        "renewals through the isolated leader must fail"
    );
    assert!(
        gone - last_sent >= Duration::from_secs(8),
        "the lease ended early: {:?} after the last renewal the client was told of",
        gone - last_sent
    );
    assert!(
        gone - last_answered < Duration::from_secs(9),
        "the lease ended late: {:?} after the last renewal was answered",
        gone - last_answered
    );
}

/// One keep-alive of `lease` on a raw gRPC stream to `url` (etcd-client turns TTL 0 into an
/// error like any other): the TTL answered (0: the lease is gone), or None for an error or no
/// answer within 10 s.
async fn raw_renewal(url: String, lease: i64) -> Option<i64> {
    use conclave::proto::etcdserverpb::{LeaseKeepAliveRequest, lease_client::LeaseClient};
    let ask = async {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .ok()?
            .connect()
            .await
            .ok()?;
        let request = tokio_stream::iter([LeaseKeepAliveRequest { id: lease }]);
        let mut answers = LeaseClient::new(channel)
            .lease_keep_alive(request)
            .await
            .ok()?
            .into_inner();
        answers.message().await.ok()?.map(|answer| answer.ttl)
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .ok()
        .flatten()
}

/// Found by the long robustness profile: a leader paused past its leases' deadlines wakes up
/// still believing it leads, with clocks that jumped, and revokes what it finds expired. Those
/// revokes must die with its term: forwarded to the new leader, they ended a lease its client
/// was renewing there. A 5 s lease renewed every half second through a follower; the leader
/// paused for 7 s, then resumed while the renewals go on: the key must stay. And a client of
/// the old leader, whose keep-alive it reads as it wakes, must not hear the lease is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_leader_revokes_no_lease_it_no_longer_leads_for() {
    let Session {
        mut c,
        leader,
        client,
        lease,
        ..
    } = session(5, false).await;
    tokio::task::block_in_place(|| c.pause(leader, true));
    let paused = Instant::now();
    let renew = |mut client: etcd_client::Client| async move {
        common::renewed(&mut client, lease, Duration::from_secs(2)).await
    };
    let mut last_renewed = None;
    while paused.elapsed() < Duration::from_secs(7) {
        if renew(client.clone()).await {
            last_renewed = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last = last_renewed.expect("renewals went through the new leader while the old slept");
    assert!(
        last.elapsed() < Duration::from_secs(2),
        "the renewals stopped going through"
    );
    // Sent while it sleeps: read when it wakes.
    let woken_answer = tokio::spawn(raw_renewal(c.url(leader), lease));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| c.pause(leader, false));
    let resumed = Instant::now();
    while resumed.elapsed() < Duration::from_secs(3) {
        assert!(
            renew(client.clone()).await,
            "a renewal after the old leader woke failed"
        );
        let mut reader = client.clone();
        let got = reader
            .get(
                "session",
                Some(etcd_client::GetOptions::new().with_serializable()),
            )
            .await
            .expect("a read");
        assert_eq!(
            got.kvs().len(),
            1,
            "the key of a lease being renewed went {:?} after the old leader woke",
            resumed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let woken_answer = woken_answer.await.expect("the old leader's client");
    eprintln!("the woken leader answered a keep-alive with TTL {woken_answer:?}");
    assert_ne!(
        woken_answer,
        Some(0),
        "the woken leader told its client that a lease being renewed was gone"
    );
}
