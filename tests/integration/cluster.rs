//! Three real `conclave` members on loopback, talking QUIC with mutual TLS: writes through any
//! member are read on every member; a SIGKILLed leader is replaced and loses no acknowledged
//! write; a restarted member catches up, by snapshot when the log it needs was purged; a member
//! whose certificate comes from another CA is refused; and `etcdctl endpoint status --cluster`
//! sees three members, one leader and equal raft indexes.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{etcdctl_error, stdout_ok};
use etcd_client::{Client, GetOptions};
use serde_json::Value;
use tokio::sync::Mutex;

/// How long a condition the tests cannot be told about (a member applying, indexes converging)
/// gets.
const CONVERGE: Duration = Duration::from_secs(30);
/// Between two polls of such a condition.
const POLL: Duration = Duration::from_millis(50);
/// One write attempt: longer than the server's own request timeout (5 s), so the server's
/// answer ("leader changed", "request timed out") arrives before ours.
const WRITE_ATTEMPT: Duration = Duration::from_secs(8);

/// The harness blocks (processes, HTTP polls); inside the async tests it runs on a worker that
/// tokio is told about, so the writers keep running.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every key under `prefix` with its value, as one read of member `client` sees it.
async fn dump(client: &mut Client, prefix: &str, serializable: bool) -> BTreeMap<String, String> {
    let mut options = GetOptions::new().with_prefix();
    if serializable {
        options = options.with_serializable();
    }
    let resp = client
        .get(prefix, Some(options))
        .await
        .unwrap_or_else(|e| panic!("get --prefix {prefix}: {e}"));
    resp.kvs()
        .iter()
        .map(|kv| (text(kv.key()), text(kv.value())))
        .collect()
}

/// Polls serializable reads of `client` until they show exactly `want` under `prefix`.
async fn wait_serializable(
    client: &mut Client,
    who: &str,
    prefix: &str,
    want: &BTreeMap<String, String>,
) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = dump(client, prefix, true).await;
        if &got == want {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let wrong: Vec<(&String, &String, Option<&String>)> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .map(|(k, v)| (k, v, got.get(k)))
                .collect();
            panic!(
                "{who}: serializable reads of {prefix} did not converge within {CONVERGE:?}: \
                 {} keys, want {}; missing {missing:?}; wrong values {wrong:?}",
                got.len(),
                want.len()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One etcd-client connection per member, index by index.
async fn clients(c: &Cluster) -> Vec<Client> {
    let mut all = Vec::with_capacity(c.size());
    for i in 0..c.size() {
        all.push(c.client(i).await);
    }
    all
}

/// Puts `key` through `clients[start]`, moving to the next member after a failed attempt,
/// until one is acknowledged or `deadline` passes; the member that took it. Every attempt is
/// bounded (a request to a killed member hangs in the client until the attempt's timeout).
async fn put_with_retry(
    clients: &mut [Client],
    start: usize,
    key: &str,
    value: &str,
    deadline: Instant,
) -> Result<usize, String> {
    let mut errors = Vec::new();
    for attempt in 0.. {
        let i = (start + attempt) % clients.len();
        match tokio::time::timeout(WRITE_ATTEMPT, clients[i].put(key, value, None)).await {
            Ok(Ok(_)) => return Ok(i),
            Ok(Err(e)) => errors.push(format!("member {i}: {e}")),
            Err(_) => errors.push(format!("member {i}: no answer within {WRITE_ATTEMPT:?}")),
        }
        if Instant::now() > deadline {
            break;
        }
        // Each failed attempt took a round trip or a timeout; back off a little before the
        // next member so a cluster without a leader is not hammered.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = errors.len().saturating_sub(5);
    Err(format!(
        "put {key}: not acknowledged in {} attempts; the last: {:?}",
        errors.len(),
        &errors[shown..]
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_member_is_read_on_every_member() {
    let c = Cluster::start(3);
    let ids: Vec<u64> = blocking(|| (0..3).map(|i| c.member_id(i)).collect());
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "three distinct member IDs: {ids:x?}"
    );
    let mut clients = clients(&c).await;
    let mut want = BTreeMap::new();
    for i in 0..3 {
        let key = format!("from/{}", c.name(i));
        let value = format!("written through member {i}");
        let put = clients[i]
            .put(key.as_str(), value.as_str(), None)
            .await
            .unwrap_or_else(|e| panic!("put through member {i}: {e}"));
        let header = put.header().expect("a put header");
        assert_eq!(header.member_id(), ids[i], "the answering member's ID");
        // Revisions count writes cluster-wide: 1 is the empty store, each put adds one.
        let revision = 2 + i as i64;
        assert_eq!(header.revision(), revision, "put through member {i}");
        want.insert(key.clone(), value.clone());

        // Linearizable reads (the default) see an acknowledged write at once, on every member.
        for (j, client) in clients.iter_mut().enumerate() {
            let got = client
                .get(key.as_str(), None)
                .await
                .unwrap_or_else(|e| panic!("get through member {j}: {e}"));
            let h = got.header().expect("a range header");
            assert_eq!(h.member_id(), ids[j]);
            assert!(h.revision() >= revision, "member {j}: {h:?}");
            assert_eq!(got.kvs().len(), 1, "member {j} reading {key}");
            let kv = &got.kvs()[0];
            assert_eq!(text(kv.value()), value, "member {j} reading {key}");
            assert_eq!(kv.mod_revision(), revision);
            assert_eq!(kv.create_revision(), revision);
            assert_eq!(kv.version(), 1);
        }
        // The member that took the write answered after applying it: its local read sees it.
        assert_eq!(
            dump(&mut clients[i], &key, true).await.get(&key),
            Some(&value),
            "a serializable read on the member that took the write"
        );
    }
    // Serializable reads are local: each member shows all three once it has applied them.
    for (j, client) in clients.iter_mut().enumerate() {
        wait_serializable(client, &format!("member {j}"), "from/", &want).await;
        let got = client
            .get(
                "from/",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await
            .expect("serializable get");
        let revisions: Vec<i64> = got.kvs().iter().map(|kv| kv.mod_revision()).collect();
        assert_eq!(
            revisions,
            [2, 3, 4],
            "member {j}: same revisions everywhere"
        );
        assert_eq!(got.header().expect("header").revision(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_the_leader_loses_no_acknowledged_write_and_it_catches_up_on_restart() {
    const WRITERS: usize = 8;
    const WRITES: usize = 200;
    let mut c = Cluster::start(3);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(90);

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut own = clients(&c).await;
        let acked = acked.clone();
        let count = count.clone();
        writers.push(tokio::spawn(async move {
            // Writers start on different members, so leader and followers both take writes;
            // each stays with the member that last took one.
            let mut member = w % 3;
            for n in (w..WRITES).step_by(WRITERS) {
                let key = format!("load/{n:03}");
                let value = format!("v{n}-by-writer-{w}");
                member = put_with_retry(&mut own, member, &key, &value, deadline).await?;
                acked.lock().await.insert(key, value);
                count.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<(), String>(())
        }));
    }

    // Mid-way: kill the leader under load.
    let half = Instant::now() + CONVERGE;
    while count.load(Ordering::SeqCst) < WRITES / 2 {
        assert!(
            Instant::now() < half,
            "only {} writes acknowledged within {CONVERGE:?}",
            count.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut probe = clients(&c).await;
    // The leader as the members report it now (a quick look: the writes go on meanwhile).
    let old_leader = blocking(|| c.current_leader());
    blocking(|| c.kill9(old_leader));
    let killed_at = Instant::now();
    let acked_at_kill = count.load(Ordering::SeqCst);

    // A first write after the kill, timed from it, through a survivor: the time until a new
    // leader takes writes. Meanwhile, the time until the survivors agree on that leader.
    let survivor = (old_leader + 1) % 3;
    let first_write = tokio::spawn(async move {
        put_with_retry(&mut probe, survivor, "probe/after-kill", "1", deadline).await?;
        Ok::<Duration, String>(killed_at.elapsed())
    });
    let new_leader = blocking(|| c.wait_for_leader(&[old_leader]));
    let agreed = killed_at.elapsed();
    assert_ne!(new_leader, old_leader);
    let first_write = first_write
        .await
        .expect("the probe task")
        .unwrap_or_else(|e| panic!("no write succeeded after the leader was killed: {e}"));
    eprintln!(
        "kill -9 of member {old_leader} (leader) with {acked_at_kill} writes acknowledged: \
         member {new_leader} leads, agreed and healthy after {agreed:?}; first write through \
         member {survivor} after {first_write:?}"
    );

    for (w, writer) in writers.into_iter().enumerate() {
        writer
            .await
            .expect("a writer task")
            .unwrap_or_else(|e| panic!("writer {w}: {e}"));
    }
    let acked = acked.lock().await.clone();
    assert_eq!(
        acked.len(),
        WRITES,
        "every write was acknowledged in the end"
    );
    assert!(
        count.load(Ordering::SeqCst) > acked_at_kill,
        "writes succeed again after the kill"
    );

    // No acknowledged write is lost: the survivors hold every one, with its value.
    let survivors: Vec<usize> = (0..3).filter(|&i| i != old_leader).collect();
    for &i in &survivors {
        let mut client = c.client(i).await;
        let got = dump(&mut client, "load/", false).await;
        assert_eq!(got, acked, "member {i}: a linearizable read of every write");
        wait_serializable(&mut client, &format!("member {i}"), "load/", &acked).await;
    }

    // Restart the killed member on its data dir: it rejoins and catches up.
    blocking(|| c.restart(old_leader));
    let mut back = c.client(old_leader).await;
    wait_serializable(&mut back, "the restarted member", "load/", &acked).await;
    let probe_value = dump(&mut back, "probe/", true).await;
    assert_eq!(
        probe_value.get("probe/after-kill").map(String::as_str),
        Some("1")
    );
    // And it takes part again: a write through it is read back everywhere.
    back.put("after/restart", "ok", None)
        .await
        .expect("a write through the restarted member");
    for &i in &survivors {
        let mut client = c.client(i).await;
        let got = dump(&mut client, "after/", false).await;
        assert_eq!(got.get("after/restart").map(String::as_str), Some("ok"));
    }
    // Its raft log and state machine line up with the leader's.
    let leader = blocking(|| c.leader());
    let target = blocking(|| c.wait_status(leader)).applied_index;
    blocking(|| c.wait_applied(old_leader, target));
}

/// The log indexes a member's log names after `phrase` ("snapshot at log index 57: ...").
fn logged_indexes(log: &str, phrase: &str) -> Vec<u64> {
    log.match_indices(phrase)
        .filter_map(|(at, _)| {
            let rest = &log[at + phrase.len()..];
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

const SNAPSHOT_AT: &str = "snapshot at log index";
const INSTALLED_AT: &str = "installed a snapshot from the leader at log index";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_while_the_log_was_purged_catches_up_by_snapshot() {
    const KEYS: usize = 300;
    const SNAPSHOT_COUNT: u64 = 50;
    const CATCHUP_ENTRIES: u64 = 10;
    let mut c = Cluster::builder(3)
        .snapshot_count(SNAPSHOT_COUNT)
        .snapshot_catchup_entries(CATCHUP_ENTRIES)
        .start();
    let leader = blocking(|| c.leader());
    let lagging = blocking(|| c.followers())[0];
    let stopped_at = blocking(|| c.wait_status(lagging)).raft_index;
    blocking(|| c.stop(lagging));

    let mut clients = clients(&c).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut want = BTreeMap::new();
    let mut member = leader;
    for n in 0..KEYS {
        let key = format!("snap/{n:03}");
        let value = format!("value {n}");
        member = put_with_retry(&mut clients, member, &key, &value, deadline)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        want.insert(key, value);
    }

    // The leader's snapshot now covers well past what the stopped member has, plus the
    // entries kept behind it: the log that member needs is gone.
    let leader = blocking(|| c.leader());
    let needed = stopped_at + CATCHUP_ENTRIES + 1;
    let wait_from = Instant::now();
    while !logged_indexes(&c.log(leader), SNAPSHOT_AT)
        .iter()
        .any(|&i| i > needed)
    {
        assert!(
            wait_from.elapsed() < CONVERGE,
            "the leader (member {leader}) has no snapshot past index {needed}: {:?}",
            logged_indexes(&c.log(leader), SNAPSHOT_AT)
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        logged_indexes(&c.log(lagging), INSTALLED_AT).is_empty(),
        "the stopped member had installed no snapshot yet"
    );

    blocking(|| c.restart(lagging));
    let mut back = c.client(lagging).await;
    wait_serializable(&mut back, "the member that was down", "snap/", &want).await;
    let installed = logged_indexes(&c.log(lagging), INSTALLED_AT);
    assert!(
        installed.iter().any(|&i| i > needed),
        "the member that was down installed a snapshot past index {needed} (its log says so): {installed:?}"
    );

    // After the snapshot, ordinary replication goes on.
    back.put("snap/after", "replicated", None)
        .await
        .expect("a write through the caught-up member");
    want.insert("snap/after".into(), "replicated".into());
    for i in 0..3 {
        let mut client = c.client(i).await;
        wait_serializable(&mut client, &format!("member {i}"), "snap/", &want).await;
    }
}

#[test]
fn a_member_with_a_certificate_from_another_ca_is_refused() {
    let foreign = 2;
    let mut c = Cluster::builder(3).foreign_ca(foreign).start();
    let leader = c.leader();
    assert_ne!(leader, foreign, "the foreign member cannot lead");

    // The two members with the cluster's certificates are a quorum: they serve writes.
    for i in [0, 1] {
        let key = format!("k{i}");
        assert_eq!(stdout_ok(&c.etcdctl(i, &["put", &key, "v"])), "OK\n");
    }
    for i in [0, 1] {
        assert_eq!(
            stdout_ok(&c.etcdctl(i, &["get", "k", "--prefix"])),
            "k0\nv\nk1\nv\n"
        );
    }
    let target = c.wait_status(leader).applied_index;
    for i in [0, 1] {
        c.wait_applied(i, target);
        assert_eq!(
            stdout_ok(&c.etcdctl(i, &["get", "k", "--prefix", "--consistency=s"])),
            "k0\nv\nk1\nv\n"
        );
    }

    // The foreign member heard nothing: no leader, no log, no data; it says so.
    let st = c.wait_status(foreign);
    assert_eq!(st.leader, None, "{st:?}");
    assert_eq!(st.raft_index, 0, "{st:?}");
    assert_eq!(st.applied_index, 0, "{st:?}");
    assert!(
        st.errors.iter().any(|e| e == "etcdserver: no leader"),
        "{st:?}"
    );
    assert_eq!(
        stdout_ok(&c.etcdctl(foreign, &["get", "k", "--prefix", "--consistency=s"])),
        ""
    );
    assert!(!c.healthy(foreign), "the foreign member is not healthy");
    let err = etcdctl_error(&c.etcdctl(foreign, &["put", "through-foreign", "x"]));
    assert!(
        [
            "Error: etcdserver: no leader",
            "Error: etcdserver: request timed out",
            "Error: context deadline exceeded",
        ]
        .contains(&err.as_str()),
        "a write through the foreign member fails: {err}"
    );
    // Nor did that write reach the cluster.
    for i in [0, 1] {
        assert_eq!(stdout_ok(&c.etcdctl(i, &["get", "through-foreign"])), "");
    }
    // And the cluster still works, with the same leader.
    assert_eq!(stdout_ok(&c.etcdctl(1, &["put", "k2", "v"])), "OK\n");
    assert_eq!(c.leader(), leader);

    // The refusal is the TLS handshake's: the leader keeps trying to reach the foreign member
    // and one side or the other logs why; no connection with it ever completed.
    let name = c.name(foreign).to_string();
    let peer_field = format!("peer={name}");
    let refused = || {
        c.log(foreign).contains("refused a peer connection")
            || [0, 1].iter().any(|&i| {
                c.log(i)
                    .lines()
                    .any(|l| l.contains("cannot reach peer") && l.contains(&peer_field))
            })
    };
    common::wait_until("a log line about the refused peer", CONVERGE, refused);
    for i in 0..3 {
        let log = c.log(i);
        let connected: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("peer connected") || l.contains("connected to peer"))
            .filter(|l| i == foreign || l.contains(&peer_field))
            .collect();
        assert!(
            connected.is_empty(),
            "member {i} completed a connection with {name} or it with them: {connected:#?}"
        );
    }
}

/// etcdctl's JSON output.
fn etcdctl_json(c: &Cluster, i: usize, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-w", "json"]);
    let out = stdout_ok(&c.etcdctl(i, &all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl -w json gave {out:?}: {e}"))
}

/// The rows of an etcdctl table as maps from column title to cell.
fn table_rows(out: &str) -> Vec<BTreeMap<String, String>> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = out.lines().filter(|l| l.starts_with('|'));
    let titles = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("no table in {out:?}")),
    );
    lines
        .map(|l| titles.iter().cloned().zip(cells(l)).collect())
        .collect()
}

#[test]
fn endpoint_status_cluster_through_a_follower_shows_three_members_one_leader_equal_indexes() {
    let mut c = Cluster::start(3);
    let follower = c.followers()[0];
    for n in 0..20 {
        let key = format!("k{n}");
        assert_eq!(stdout_ok(&c.etcdctl(follower, &["put", &key, "v"])), "OK\n");
    }
    let ids: Vec<u64> = (0..3).map(|i| c.member_id(i)).collect();

    // `--cluster` reaches the members through the client URLs the member list gives.
    let list = etcdctl_json(&c, follower, &["member", "list"]);
    let members = list["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{list}");
    for (i, id) in ids.iter().enumerate() {
        let m = members
            .iter()
            .find(|m| m["ID"].as_u64() == Some(*id))
            .unwrap_or_else(|| panic!("member {i} ({id:x}) is listed: {list}"));
        assert_eq!(m["name"], c.name(i));
        assert_eq!(m["peerURLs"][0], c.peer_url(i));
        assert_eq!(m["clientURLs"][0], c.url(i), "{list}");
        assert!(m.get("isLearner").is_none() || m["isLearner"] == false);
    }

    // Heartbeats and the last apply may still be in flight: wait for equal indexes.
    let deadline = Instant::now() + CONVERGE;
    let statuses = loop {
        let st = etcdctl_json(&c, follower, &["endpoint", "status", "--cluster"]);
        let entries = st.as_array().expect("a list of endpoints").clone();
        let indexes: Vec<Option<u64>> = entries
            .iter()
            .map(|e| e["Status"]["raftIndex"].as_u64())
            .collect();
        if entries.len() == 3 && indexes.iter().all(|i| i.is_some() && *i == indexes[0]) {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "raft indexes did not converge within {CONVERGE:?}: {st}"
        );
        std::thread::sleep(POLL);
    };
    let mut endpoints: Vec<&str> = statuses
        .iter()
        .map(|e| e["Endpoint"].as_str().expect("Endpoint"))
        .collect();
    endpoints.sort_unstable();
    let mut urls: Vec<String> = (0..3).map(|i| c.url(i)).collect();
    urls.sort_unstable();
    assert_eq!(endpoints, urls);
    let leaders: Vec<u64> = statuses
        .iter()
        .map(|e| e["Status"]["leader"].as_u64().expect("leader"))
        .collect();
    assert!(
        leaders.iter().all(|l| *l == leaders[0]),
        "one leader: {leaders:x?}"
    );
    let leading: Vec<u64> = statuses
        .iter()
        .map(|e| {
            e["Status"]["header"]["member_id"]
                .as_u64()
                .expect("member_id")
        })
        .filter(|id| *id == leaders[0])
        .collect();
    assert_eq!(leading.len(), 1, "exactly one member is the leader");
    assert_eq!(leaders[0], ids[c.leader()]);
    for e in &statuses {
        let st = &e["Status"];
        assert_eq!(st["header"]["revision"], 21, "{e}");
        assert_eq!(st["raftTerm"], statuses[0]["Status"]["raftTerm"], "{e}");
        assert!(
            st.get("errors")
                .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty()))
        );
    }

    // The issue's own check, as a person would read it: the table.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let out = stdout_ok(&c.etcdctl(
            follower,
            &["endpoint", "status", "--cluster", "-w", "table"],
        ));
        let rows = table_rows(&out);
        assert_eq!(rows.len(), 3, "three members:\n{out}");
        let leaders = rows.iter().filter(|r| r["IS LEADER"] == "true").count();
        assert_eq!(leaders, 1, "one leader:\n{out}");
        let indexes: Vec<&String> = rows.iter().map(|r| &r["RAFT INDEX"]).collect();
        if indexes.iter().all(|i| *i == indexes[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "raft indexes in the table did not converge within {CONVERGE:?}:\n{out}"
        );
        std::thread::sleep(POLL);
    }
}
