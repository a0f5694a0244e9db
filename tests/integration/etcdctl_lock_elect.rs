//! etcdctl 3.4's `lock` and `elect` (client-side recipes over Txn, Watch and Lease) against a
//! real conclave server, as against etcd: a command run under the lock never overlaps
//! another's; a campaign prints its key and value, and a listener sees the leader.

use crate::common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::spawn_etcdctl;
use common::target::Target;

single_and_cluster!(lock_runs_commands_one_at_a_time, elect_and_listen);

fn lock_runs_commands_one_at_a_time(t: &Target) {
    // Each holder appends "start", waits, appends "end" to a shared file: with the lock held
    // around it, starts and ends alternate.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let script = format!(
        "echo start >> {0}; sleep 0.3; echo end >> {0}",
        log.display()
    );
    let runs: Vec<_> = (0..3)
        .map(|_| {
            spawn_etcdctl(
                &t.endpoint(),
                &["lock", "shared", "--", "sh", "-c", &script],
                None,
            )
        })
        .collect();
    for (child, _) in runs {
        let out = child.wait_with_output().expect("etcdctl lock");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(
        lines, "start\nend\nstart\nend\nstart\nend\n",
        "commands under the lock overlapped"
    );
}

fn elect_and_listen(t: &Target) {
    let (mut candidate, _) = spawn_etcdctl(&t.endpoint(), &["elect", "pool", "p1"], None);
    // The campaign prints the leader key and the proclaimed value once elected.
    let mut out = BufReader::new(candidate.stdout.take().expect("stdout"));
    let mut key = String::new();
    out.read_line(&mut key).expect("the leader key");
    assert!(key.starts_with("pool/"), "{key:?}");
    let mut value = String::new();
    out.read_line(&mut value).expect("the value");
    assert_eq!(value, "p1\n");

    let (mut listener, _) = spawn_etcdctl(&t.endpoint(), &["elect", "-l", "pool"], None);
    let mut heard = BufReader::new(listener.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < 2 && Instant::now() < deadline {
        let mut line = String::new();
        if heard.read_line(&mut line).expect("listen") == 0 {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines, [key, "p1\n".to_string()]);
    let _ = candidate.kill();
    let _ = listener.kill();
    let _ = candidate.wait();
    let _ = listener.wait();
}
