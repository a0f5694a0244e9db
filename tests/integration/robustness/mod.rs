//! conclave's own robustness suite (issue 23): clients on every member run a mix of operations
//! on a few keys while faults strike the cluster; every operation is recorded with when it was
//! invoked and when it returned (`history`, `workload`); then the history is judged:
//! linearizable key by key (`linearizability`, with its self-test), serializable reads never
//! going back in revision on one connection, watchers on every member seeing what etcd's watch
//! guarantees (`watches`), and every member's HashKV equal at one revision.

mod history;
mod linearizability;
mod watches;
mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::common::cluster::Cluster;
use history::by_key;
use linearizability::Verdict;
use workload::Recorded;

/// Keys the clients share: few, so that operations collide.
const KEYS: u64 = 4;
/// Clients per member.
const CLIENTS_PER_MEMBER: usize = 2;

/// Judges what the clients recorded: panics with the first violation found.
fn judge(recorded: &Recorded) {
    let history = recorded.history.lock().unwrap().clone();
    let unknown = history.iter().filter(|o| o.returned.is_none()).count();
    eprintln!(
        "history: {} operations ({unknown} of unknown outcome)",
        history.len()
    );
    for (key, ops) in by_key(&history) {
        match linearizability::check(&ops) {
            Verdict::Linearizable => {}
            Verdict::TooHard => panic!("{key}: the checker gave up on {} operations", ops.len()),
            Verdict::Violation { deepest } => {
                let mut shown: Vec<_> = ops.iter().collect();
                shown.sort_by_key(|o| o.invoked);
                let linearized: Vec<String> = deepest.iter().map(|&i| ops[i].describe()).collect();
                let around = deepest.len().saturating_sub(5)..(deepest.len() + 10).min(shown.len());
                let nearby: Vec<String> = shown[around].iter().map(|o| o.describe()).collect();
                panic!(
                    "{key}: not linearizable ({} operations). Longest order found:\n{}\n\
                     Operations around its end, by invocation:\n{}",
                    ops.len(),
                    linearized.join("\n"),
                    nearby.join("\n")
                );
            }
        }
    }
    // A member answers serializable reads from what it applied, which only grows.
    let mut last: BTreeMap<usize, i64> = BTreeMap::new();
    for read in recorded.serializable.lock().unwrap().iter() {
        let before = last.insert(read.client, read.revision).unwrap_or(0);
        assert!(
            read.revision >= before,
            "client {}: a serializable read at revision {} after one at {before}",
            read.client,
            read.revision
        );
    }
}

/// Every member's HashKV at the newest revision, once each has applied it: equal. That
/// revision.
async fn hashes_agree(c: &Cluster) -> i64 {
    let mut first = c.client(0).await;
    let revision = first
        .status()
        .await
        .expect("status")
        .header()
        .expect("a header")
        .revision();
    let mut hashes = Vec::new();
    for i in c.running() {
        let mut client = c.client(i).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let hash = loop {
            match client.hash_kv(revision).await {
                Ok(h) if h.header().is_some_and(|hd| hd.revision() >= revision) => break h.hash(),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("member {i}: no HashKV at revision {revision}: {other:?}"),
            }
        };
        hashes.push((i, hash));
    }
    eprintln!("HashKV at revision {revision}: {hashes:?}");
    assert!(
        hashes.windows(2).all(|w| w[0].1 == w[1].1),
        "the members' stores differ at revision {revision}: {hashes:?}"
    );
    revision
}

/// The workload on a 3-member cluster for 24 s: the leader is killed with SIGKILL at 4 s and
/// restarted at 7 s; the next leader is cut off from the others (its peer port) at 12 s and
/// let back at 16 s. The history must be linearizable, the watchers must see what etcd
/// promises, and the members must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_stay_linearizable_through_a_killed_and_a_partitioned_leader() {
    let mut c = Cluster::start(3);
    let start = Instant::now();
    let until = start + Duration::from_secs(24);
    let recorded = Arc::new(Recorded::default());
    let goal = watches::Goal::new();
    let mut watchers = Vec::new();
    for member in 0..3 {
        let client = c.client(member).await;
        let watcher = watches::watch(
            client,
            "/robustness/",
            goal.clone(),
            until + Duration::from_secs(60),
        );
        watchers.push((member, tokio::spawn(watcher)));
    }
    let mut clients = Vec::new();
    for member in 0..3 {
        for n in 0..CLIENTS_PER_MEMBER {
            let id = member * CLIENTS_PER_MEMBER + n;
            let client = c.client(member).await;
            clients.push(tokio::spawn(workload::run(
                id,
                client,
                KEYS,
                start,
                until,
                recorded.clone(),
            )));
        }
    }

    tokio::time::sleep_until(start + Duration::from_secs(4)).await;
    let killed = tokio::task::block_in_place(|| c.leader());
    tokio::task::block_in_place(|| c.kill9(killed));
    eprintln!("{:?}: killed member {killed}, the leader", start.elapsed());
    tokio::time::sleep_until(start + Duration::from_secs(7)).await;
    tokio::task::block_in_place(|| c.restart(killed));
    eprintln!("{:?}: member {killed} is back", start.elapsed());

    tokio::time::sleep_until(start + Duration::from_secs(12)).await;
    let isolated = tokio::task::block_in_place(|| c.leader());
    let partition = c.isolate(isolated);
    eprintln!(
        "{:?}: cut member {isolated}, the leader, off",
        start.elapsed()
    );
    tokio::time::sleep_until(start + Duration::from_secs(16)).await;
    drop(partition);
    eprintln!("{:?}: member {isolated} let back", start.elapsed());

    for client in clients {
        client.await.expect("a workload client");
    }
    // The last word on every key, from every member once the cluster settled.
    tokio::task::block_in_place(|| c.leader());
    for member in 0..3 {
        let mut client = c.client(member).await;
        for k in 0..KEYS {
            workload::final_read(
                100 + member,
                &mut client,
                &workload::key(k),
                start,
                &recorded,
            )
            .await
            .unwrap_or_else(|e| panic!("member {member}: final read of key {k}: {e}"));
        }
    }
    judge(&recorded);
    let revision = hashes_agree(&c).await;
    goal.set(revision);
    let mut seen = Vec::new();
    for (member, watcher) in watchers {
        seen.push((member, watcher.await.expect("a watcher")));
    }
    eprintln!(
        "watchers saw {:?} events",
        seen.iter().map(|(_, s)| s.len()).collect::<Vec<_>>()
    );
    watches::judge(&seen, &recorded.history.lock().unwrap(), revision);
}
