//! The plugins' promise under faults (docs/PLUGINS.md): a rollup rule fed samples through
//! Ingest on every member and through puts, while its leader is killed, paused and cut off,
//! or while members' wall clocks jump.
//! Afterwards every window's output was written once; every committed put (history tells
//! which) is counted once; every Ingest request that every member took (`members` = 3) is
//! counted once, whole; a request fewer members took is counted whole or not at all; nothing
//! is counted twice.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave::proto::conclavepb::IngestSample;
use serde_json::Value;
use tokio::time::Instant;

use crate::common::cluster::{Cluster, ClusterBuilder};
use crate::common::plugins::{committed_values, deploy, read_prefix, wait_running};

/// Windows of a second, closed a second after their end (time for a sample to reach every
/// member, as M3's allowed lateness).
const RULE: &str = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
    "ingest": true, "resolution": "1s", "allowed_lateness": "1s",
    "aggregations": ["sum", "count"]}"#;
/// The key the puts go to: the series `kv`.
const PUT_KEY: &str = "/metrics/kv";
/// Samples per Ingest request. Each request is a series of its own, dated once by the member
/// that takes it, so it falls in one window whose count says what became of it.
const BATCH: u64 = 10;
/// The values of a request's samples are 1..=BATCH: their sum.
const BATCH_SUM: f64 = (BATCH * (BATCH + 1) / 2) as f64;
/// One call's bound: a member may be down or paused.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// One Ingest request and its answer.
struct Sent {
    series: String,
    /// When it was sent and answered, since the scenario began.
    sent: (Duration, Duration),
    /// How many members took it; None: no answer (an error or a timeout).
    members: Option<u32>,
}

/// Sends requests of [`BATCH`] samples to member `member` until `until`.
async fn ingest(
    member: usize,
    client: conclave::Client,
    start: Instant,
    until: Instant,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let series = format!("/metrics/ingest/m{member}-{n}");
        let samples = (1..=BATCH)
            .map(|i| IngestSample {
                series: series.clone(),
                value: i as f64,
                time_ms: 0,
            })
            .collect();
        let asked = start.elapsed();
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.ingest(samples)).await;
        let sent_at = (asked, start.elapsed());
        let members = match answer {
            Ok(Ok(resp)) => {
                assert_eq!(
                    resp.accepted, BATCH,
                    "member {member} took part of a request"
                );
                Some(resp.members)
            }
            _ => None,
        };
        sent.push(Sent {
            series,
            sent: sent_at,
            members,
        });
        let pause = if members.is_some() { 50 } else { 300 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    sent
}

/// Puts 1, 2, 3, ... to [`PUT_KEY`] until `until`, through any member.
async fn put(mut client: etcd_client::Client, until: Instant) {
    let mut next = 0u64;
    while Instant::now() < until {
        next += 1;
        let put = client.put(PUT_KEY, next.to_string(), None);
        if !matches!(tokio::time::timeout(CALL_TIMEOUT, put).await, Ok(Ok(_))) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the rule wrote, per series: (count, sum) over its windows; and every output key's
/// version.
fn rolled(written: &BTreeMap<String, (String, i64, i64)>) -> BTreeMap<String, (u64, f64)> {
    let mut series: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for (key, (value, _, _)) in written {
        let (name, _window) = key
            .strip_prefix("/rollup/")
            .and_then(|k| k.rsplit_once('/'))
            .unwrap_or_else(|| panic!("an output key not of the rule's shape: {key}"));
        let v: Value = serde_json::from_str(value).expect("a JSON window");
        let entry = series.entry(name.to_string()).or_default();
        entry.0 += v["count"].as_u64().expect("count");
        entry.1 += v["sum"].as_f64().expect("sum");
    }
    series
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What strikes the cluster while samples come.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillLeader,
    /// Starts the killed member again.
    Restart,
    PauseLeader,
    Resume,
    IsolateLeader,
    Heal,
    /// The leader's wall clock jumps an hour ahead.
    LeaderClockAhead,
    /// A follower's wall clock jumps an hour back.
    FollowerClockBack,
    /// Every wall clock back to the real time.
    ClocksBack,
}

/// 26 s of samples and puts into a rollup rule: its leader killed at 4 s (restarted at 7 s),
/// the next paused past the election timeout at 11 s (resumed at 14 s), the next cut off from
/// the others at 18 s (let back at 22 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_sample_is_counted_once_through_leader_faults() {
    use Fault::*;
    let faults = [
        (4, KillLeader),
        (7, Restart),
        (11, PauseLeader),
        (14, Resume),
        (18, IsolateLeader),
        (22, Heal),
    ];
    counted_once(Cluster::builder(3), &faults).await;
}

/// 26 s of samples and puts into a rollup rule while wall clocks jump (libfaketime, as NTP
/// steps would): the leader's an hour ahead at 4 s, a follower's an hour back at 8 s, that
/// leader killed at 12 s and every clock back at 14 s (an hour back for the one, ahead for the
/// other); the killed member back at 15 s; the leader's an hour ahead again at 19 s, and back
/// at 23 s. conclave's time follows a wall clock's step at 1%: windows close, commit times and
/// samples' dates go on as if no clock had jumped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_sample_is_counted_once_through_wall_clock_jumps() {
    use Fault::*;
    let faults = [
        (4, LeaderClockAhead),
        (8, FollowerClockBack),
        (12, KillLeader),
        (14, ClocksBack),
        (15, Restart),
        (19, LeaderClockAhead),
        (23, ClocksBack),
    ];
    counted_once(Cluster::builder(3).fake_clocks(), &faults).await;
}

/// The scenario: a cluster from `builder`, the rule, the senders, `faults` at their seconds;
/// then the judgement.
async fn counted_once(builder: ClusterBuilder, faults: &[(u64, Fault)]) {
    let mut c = builder.start();
    let endpoint = c.endpoint(0);
    tokio::task::block_in_place(|| {
        deploy(&endpoint, "rollup", "rollup", RULE);
        wait_running(&endpoint, "rollup");
    });
    let start = Instant::now();
    let until = start + secs(26);
    let mut senders = Vec::new();
    for member in 0..3 {
        let client = conclave::Client::connect([c.endpoint(member)])
            .await
            .expect("connect for Ingest");
        senders.push(tokio::spawn(ingest(member, client, start, until)));
    }
    let putter = tokio::spawn(put(c.client_of_all().await, until));

    let (mut killed, mut paused, mut partition) = (0, 0, None);
    for &(at, fault) in faults {
        tokio::time::sleep_until(start + secs(at)).await;
        tokio::task::block_in_place(|| match fault {
            Fault::KillLeader => {
                killed = c.leader();
                c.kill9(killed);
            }
            Fault::Restart => c.restart(killed),
            Fault::PauseLeader => {
                paused = c.leader();
                c.pause(paused, true);
            }
            Fault::Resume => c.pause(paused, false),
            Fault::IsolateLeader => {
                let leader = c.leader();
                partition = Some(c.isolate(leader));
            }
            Fault::Heal => drop(partition.take()),
            Fault::LeaderClockAhead => {
                let leader = c.leader();
                c.jump_clock(leader, "+3600s");
            }
            Fault::FollowerClockBack => {
                let follower = c.followers()[0];
                c.jump_clock(follower, "-3600s");
            }
            Fault::ClocksBack => {
                for i in 0..c.size() {
                    c.jump_clock(i, "+0");
                }
            }
        });
        eprintln!("{:?}: {fault:?}", start.elapsed());
    }
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.expect("an Ingest client"));
    }
    putter.await.expect("the put client");

    let leader = tokio::task::block_in_place(|| c.leader());
    let mut client = c.client(leader).await;
    let committed = committed_values(&mut client, PUT_KEY).await;
    let (put_count, put_sum) = (committed.len() as u64, committed.iter().sum::<f64>());
    let whole: Vec<&Sent> = sent.iter().filter(|s| s.members == Some(3)).collect();
    eprintln!(
        "{} Ingest requests: {} taken by every member, {} by fewer, {} unanswered; {put_count} \
         puts committed",
        sent.len(),
        whole.len(),
        sent.iter()
            .filter(|s| s.members.is_some_and(|m| m < 3))
            .count(),
        sent.iter().filter(|s| s.members.is_none()).count()
    );
    assert!(
        whole.len() > 100 && put_count > 100,
        "too little went through to judge"
    );

    // Every window closes within seconds of the run's end; wait until what must be counted
    // is, then a little longer, so that anything counted twice shows too.
    let deadline = Instant::now() + secs(30);
    loop {
        let series = rolled(&read_prefix(&mut client, "/rollup/").await);
        let done = series.get("kv").is_some_and(|&(n, _)| n >= put_count)
            && whole
                .iter()
                .all(|s| series.contains_key(&s.series["/metrics/".len()..]));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(secs(3)).await;
    let written = read_prefix(&mut client, "/rollup/").await;
    for (key, (_, version, _)) in &written {
        assert_eq!(*version, 1, "the window {key} was written more than once");
    }
    let mut series = rolled(&written);
    assert_eq!(
        series.remove("kv"),
        Some((put_count, put_sum)),
        "every committed put counted once (count, sum)"
    );
    let mut counted_of_fewer = 0;
    let mut lost = Vec::new();
    for s in &sent {
        let name = &s.series["/metrics/".len()..];
        let got = series.remove(name);
        match s.members {
            Some(3) => {
                if got != Some((BATCH, BATCH_SUM)) {
                    lost.push(format!("{} sent {:?}: counted {got:?}", s.series, s.sent));
                }
            }
            _ => {
                assert!(
                    got.is_none() || got == Some((BATCH, BATCH_SUM)),
                    "{} (taken by {:?} members): counted {got:?}, not whole or not once",
                    s.series,
                    s.members
                );
                counted_of_fewer += usize::from(got.is_some());
            }
        }
    }
    if !lost.is_empty() {
        let logs: Vec<String> = c
            .running()
            .into_iter()
            .map(|i| {
                let out = crate::common::conclavectl(&c.endpoint(i), &["plugin", "logs", "rollup"]);
                format!("member {i}: {}", String::from_utf8_lossy(&out.stdout))
            })
            .collect();
        panic!(
            "requests every member took, not counted once, whole:\n{}\nthe rule's logs:\n{}",
            lost.join("\n"),
            logs.join("\n")
        );
    }
    eprintln!("{counted_of_fewer} requests fewer members took were counted (whole, once)");
    assert!(
        series.is_empty(),
        "windows of series nobody sent: {series:?}"
    );
}
