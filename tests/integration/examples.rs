//! The examples as real processes against a real 3-member cluster, as their docs show them:
//! clients are killed with kill -9 and the others must notice (service discovery, leader
//! election) or stay correct (the fenced lock); the rollup walkthrough counts every sample once.

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::plugins::plugin_path;

/// An example's binary: cargo builds examples beside the tests (target/<profile>/examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// A running example, its stdout as lines.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(c: &Cluster, name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .env("CONCLAVE_ENDPOINTS", c.endpoints().join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text`; the time it took.
    fn expect_line(&mut self, text: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(i) = self.seen.iter().position(|l| l.contains(text)) {
                self.seen.drain(..=i);
                return started.elapsed();
            }
            let left = within.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line with {text:?} within {within:?}; got {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Everything printed so far (and until it exits, if it is exiting).
    fn drain(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(&mut self, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn service_discovery_sees_a_killed_instance_leave_within_its_ttl() {
    let c = Cluster::start(3);
    let mut instances: Vec<Running> = (1..=3)
        .map(|i| {
            Running::start(
                &c,
                "service_discovery",
                &["register", &format!("pay-{i}"), &format!("10.0.0.{i}:8443")],
            )
        })
        .collect();
    for r in &mut instances {
        r.expect_line("registered payments/", Duration::from_secs(30));
    }
    let mut watcher = Running::start(&c, "service_discovery", &["watch"]);
    for i in 1..=3 {
        watcher.expect_line(
            &format!("up pay-{i} 10.0.0.{i}:8443"),
            Duration::from_secs(30),
        );
    }
    watcher.expect_line("watching", Duration::from_secs(30));
    instances[1].kill9();
    // A 5 s lease: gone within about 5 s (the leader revokes within a tick).
    let took = watcher.expect_line("down pay-2", Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "pay-2 left after {took:?}");

    // A cluster member dies: the watcher's stream may have been on it; it goes on elsewhere
    // and still sees the next instance leave.
    let mut c = c;
    let follower = c.followers()[0];
    c.kill9(follower);
    instances[2].kill9();
    watcher.expect_line("down pay-3", Duration::from_secs(20));
}

/// The one of `among` that says it was elected (fails if none does in time, or several do).
fn elected(candidates: &mut [Running], among: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "nobody was elected among {among:?}"
        );
        let won: Vec<usize> = among
            .iter()
            .copied()
            .filter(|&i| {
                let lines = candidates[i].drain();
                let won = lines.iter().any(|l| l.contains(": elected"));
                candidates[i].seen = lines;
                won
            })
            .collect();
        match won.as_slice() {
            [] => std::thread::sleep(Duration::from_millis(100)),
            [one] => return *one,
            many => panic!("several leaders at once: {many:?}"),
        }
    }
}

#[test]
fn leader_election_moves_on_when_the_leader_is_killed() {
    let c = Cluster::start(3);
    let mut candidates: Vec<Running> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| Running::start(&c, "leader_election", &[n]))
        .collect();
    // Exactly one is elected; all observe it.
    let leader = elected(&mut candidates, &[0, 1, 2], Duration::from_secs(30));
    candidates[leader].kill9();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let next = elected(&mut candidates, &others, Duration::from_secs(20));
    // The other survivor observes the new leader.
    let observer = others
        .into_iter()
        .find(|&i| i != next)
        .expect("an observer");
    let names = ["alice", "bob", "carol"];
    candidates[observer].expect_line(
        &format!("leader is {} (leading)", names[next]),
        Duration::from_secs(10),
    );

    // A cluster member dies too, then the new leader: the last candidate takes over and
    // says so, its calls having moved to the members still up.
    let mut c = c;
    let follower = c.followers()[0];
    c.kill9(follower);
    candidates[next].kill9();
    candidates[observer].expect_line(": elected", Duration::from_secs(30));
}

#[test]
fn fenced_lock_workers_never_double_count_when_one_is_killed() {
    const ROUNDS: &str = "15";
    let c = Cluster::start(3);
    let mut workers: Vec<Running> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| Running::start(&c, "lock", &[n, ROUNDS]))
        .collect();
    // Kill w2 once it has counted a few times (it may well hold the lock at that moment),
    // then a cluster member the workers talk to.
    workers[1].expect_line("w2: counter", Duration::from_secs(60));
    workers[1].kill9();
    workers[0].expect_line("w1: counter", Duration::from_secs(60));
    let mut c = c;
    let follower = c.followers()[0];
    c.kill9(follower);
    for i in [0, 2] {
        assert!(
            workers[i].wait(Duration::from_secs(120)),
            "worker {i} did not finish"
        );
    }
    let mut counted = Vec::new();
    for w in &mut workers {
        for line in w.drain() {
            if let Some(n) = line.split("counter ").nth(1) {
                let n: u64 = n
                    .split_whitespace()
                    .next()
                    .expect("n")
                    .parse()
                    .expect("a count");
                counted.push(n);
            }
        }
    }
    // Mutual exclusion with fencing: no two writes ever produced the same count.
    let distinct: HashSet<u64> = counted.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        counted.len(),
        "a count was written twice: {counted:?}"
    );
    let alive = c.running()[0];
    let out = c.etcdctl(alive, &["get", "counter", "--print-value-only"]);
    let final_count: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("counter");
    // Every printed count happened. A write whose answer was lost (w2 killed after writing,
    // or a member killed under a worker's txn) counts without being printed: at most once
    // for w2 and once for the member kill, as each worker re-reads before writing again.
    let max_printed = counted.iter().copied().max().unwrap_or(0);
    assert!(
        (max_printed..=max_printed + 2).contains(&final_count),
        "final count {final_count}, highest printed {max_printed}"
    );
    assert!(
        final_count >= 30,
        "the two surviving workers counted 15 each"
    );
}

#[test]
fn rollup_walkthrough_deploys_and_every_sample_lands_in_one_window() {
    let c = Cluster::start(3);
    let wasm = plugin_path("rollup");
    let mut deploy = Running::start(
        &c,
        "rollup",
        &["deploy", wasm.to_str().expect("UTF-8 path"), "1s"],
    );
    deploy.expect_line("deployed rollup version 1", Duration::from_secs(60));
    deploy.expect_line("rollup is running", Duration::from_secs(30));
    let mut watcher = Running::start(&c, "rollup", &["watch"]);
    watcher.expect_line("watching /rollup/", Duration::from_secs(30));
    let mut samples = Running::start(&c, "rollup", &["samples", "4"]);
    assert!(samples.wait(Duration::from_secs(60)), "samples did not end");
    let summary = samples
        .drain()
        .into_iter()
        .find(|l| l.starts_with("wrote "))
        .expect("a summary line");
    assert!(summary.ends_with("(0 puts failed)"), "{summary}");
    let written: u64 = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(written >= 40, "{summary}");

    // Every acknowledged sample is counted in exactly one printed window.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut windows = HashSet::new();
    let mut counted = 0u64;
    while counted < written {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = watcher
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{counted} of {written} samples rolled up"));
        let Some(rest) = line.strip_prefix("rollup ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (series, window, json) = (parts.next(), parts.next(), parts.next());
        let json: serde_json::Value =
            serde_json::from_str(json.expect("a value")).expect("JSON rollup");
        assert!(
            windows.insert((series.map(str::to_string), window.map(str::to_string))),
            "{line} printed twice"
        );
        counted += json["count"].as_u64().expect("a count");
    }
    assert_eq!(counted, written);
}
