//! etcdctl 3.4's `watch` against a real conclave server: --prefix, --rev (history replay),
//! --prev-kv, -w json, interactive mode (-i), and a start revision that was compacted.
//!
//! Every test runs against a lone server (`single::`) and through a follower of a 3-member
//! cluster (`cluster_follower::`): any member serves watches. Watches start at an explicit
//! revision, so what they print does not depend on when the stream was set up.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::target::Target;
use common::{etcdctl_at, spawn_etcdctl, stdout_ok};
use serde_json::Value;

/// How long a watch may take to print what it is expected to.
const PATIENCE: Duration = Duration::from_secs(20);

single_and_cluster!(
    watch_prefix_with_prev_kv,
    watch_from_a_past_revision_replays_history,
    watch_json_output,
    interactive_watches,
    watch_from_a_compacted_revision_is_canceled,
);

/// A running `etcdctl watch`, its stdout read line by line.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    _stdin: Option<ChildStdin>,
}

impl Watching {
    fn start(target: &Target, args: &[&str], stdin: Option<&str>) -> Self {
        // Interactive mode exits at the end of its input: the pipe stays open.
        let (mut child, stdin) = spawn_etcdctl(&target.endpoint(), args, stdin);
        Self {
            lines: read_lines(child.stdout.take().expect("stdout")),
            stderr: read_lines(child.stderr.take().expect("stderr")),
            child,
            _stdin: stdin,
        }
    }

    /// The next `n` lines it prints (fails after PATIENCE).
    fn lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!(
                    "etcdctl watch printed {got:?}, {} lines short; stderr: {:?}",
                    n - got.len(),
                    self.stderr.try_iter().collect::<Vec<_>>()
                ),
            }
        }
        got
    }

    /// Asserts it prints nothing more for a moment.
    fn quiet(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            panic!("etcdctl watch printed an unexpected line: {line:?}");
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

fn watch_prefix_with_prev_kv(t: &Target) {
    t.ok(&["put", "job/1", "queued"]);
    let from = (t.revision() + 1).to_string();
    let w = Watching::start(
        t,
        &["watch", "job/", "--prefix", "--prev-kv", "--rev", &from],
        None,
    );
    t.ok(&["put", "job/1", "running"]);
    t.ok(&["put", "other", "ignored"]);
    t.ok(&["put", "job/2", "queued"]);
    t.ok(&["del", "job/1"]);
    // etcdctl prints each event's type, then the previous pair (if any), then the pair.
    assert_eq!(
        w.lines(13),
        strings(&[
            "PUT", "job/1", "queued", "job/1", "running", //
            "PUT", "job/2", "queued", //
            "DELETE", "job/1", "running", "job/1", "",
        ])
    );
    w.quiet();
}

fn watch_from_a_past_revision_replays_history(t: &Target) {
    let first = t.revision() + 1;
    for v in ["1", "2", "3"] {
        t.ok(&["put", "counter", v]);
    }
    // A multi-key revision: its events come together.
    let txn = "\nput counter 4\nput counter-shadow 4\n\n\n";
    stdout_ok(&etcdctl_at(&t.endpoint(), &["txn"], Some(txn)));
    let w = Watching::start(t, &["watch", "counter", "--rev", &first.to_string()], None);
    assert_eq!(
        w.lines(12),
        strings(&[
            "PUT", "counter", "1", "PUT", "counter", "2", "PUT", "counter", "3", "PUT", "counter",
            "4",
        ])
    );
    // Then it follows live writes.
    t.ok(&["put", "counter", "5"]);
    assert_eq!(w.lines(3), strings(&["PUT", "counter", "5"]));
    w.quiet();
}

fn watch_json_output(t: &Target) {
    let from = t.revision() + 1;
    let w = Watching::start(
        t,
        &[
            "watch",
            "j",
            "--prefix",
            "--rev",
            &from.to_string(),
            "-w",
            "json",
        ],
        None,
    );
    t.ok(&["put", "j1", "a"]);
    let v: Value = serde_json::from_str(&w.lines(1)[0]).expect("one JSON response per line");
    let event = &v["Events"][0];
    assert_eq!(event["kv"]["key"], "ajE=", "{v}");
    assert_eq!(event["kv"]["value"], "YQ==", "{v}");
    assert_eq!(event["kv"]["mod_revision"].as_i64(), Some(from), "{v}");
    assert_eq!(event["kv"]["create_revision"].as_i64(), Some(from), "{v}");
    assert_eq!(event["kv"]["version"].as_i64(), Some(1), "{v}");
    assert_eq!(v["Header"]["revision"].as_i64(), Some(from), "{v}");
    assert_eq!(v["Canceled"], false);
    assert_eq!(v["CompactRevision"].as_i64(), Some(0));
}

fn interactive_watches(t: &Target) {
    let from = (t.revision() + 1).to_string();
    let commands = format!("watch a --rev {from}\nwatch b --prefix --rev {from}\n");
    let w = Watching::start(t, &["watch", "-i"], Some(&commands));
    t.ok(&["put", "a", "1"]);
    t.ok(&["put", "b1", "2"]);
    t.ok(&["put", "c", "3"]);
    // Two watches on one stream, each printing its own events, in revision order.
    assert_eq!(w.lines(6), strings(&["PUT", "a", "1", "PUT", "b1", "2"]));
    w.quiet();
}

fn watch_from_a_compacted_revision_is_canceled(t: &Target) {
    let first = t.revision() + 1;
    for v in ["1", "2", "3"] {
        t.ok(&["put", "old", v]);
    }
    let last = t.revision();
    t.ok(&["compact", &last.to_string()]);
    let out = etcdctl_at(
        &t.endpoint(),
        &["watch", "old", "--rev", &first.to_string()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "stdout {stdout:?}, stderr {stderr:?}"
    );
    // etcdctl 3.4 says it on stderr, as it does against etcd.
    assert_eq!(
        stderr,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n",
        "stdout {stdout:?}"
    );
    // From the compacted revision on, the history is still there.
    let w = Watching::start(t, &["watch", "old", "--rev", &last.to_string()], None);
    assert_eq!(w.lines(3), strings(&["PUT", "old", "3"]));
}
