//! A real Prometheus (Debian's `prometheus`, which scripts/test installs) scrapes a 3-member
//! cluster under `job_name: etcd`, and the expressions of etcd's alert rules evaluate against
//! what conclave exports, and change as members die: etcdMembersDown's `up`, etcdNoLeader's
//! `etcd_server_has_leader`, etcdHighFsyncDurations' histogram quantile.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{free_port, stdout_ok};
use serde_json::Value;

fn prometheus_binary() -> PathBuf {
    for candidate in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("no prometheus binary: scripts/test installs Debian's prometheus package");
}

/// A Prometheus scraping `targets` every second; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(prometheus_binary())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The result vector of an instant query; None until Prometheus answers.
    fn query(&self, expr: &str) -> Option<Vec<Value>> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        let resp = common::http_at(self.port, "GET", &format!("/api/v1/query?query={encoded}"));
        let body: Value = serde_json::from_str(&resp.body).ok()?;
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"].as_array().cloned()
    }

    /// The single value of a query that answers one number.
    fn number(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr)?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits (60 s at most) until `expr` answers `want`.
    fn wait_for(&self, expr: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.number(expr);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} did not become {want} within 60 s (last {got:?})"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn etcds_alert_expressions_evaluate_and_follow_dying_members() {
    let mut cluster = Cluster::start(3);
    let prometheus = Prometheus::start(&cluster.endpoints());
    prometheus.wait_for(r#"count(up{job="etcd"} == 1)"#, 3.0);
    for i in 0..20 {
        stdout_ok(&cluster.etcdctl(0, &["put", &format!("k{i}"), "v"]));
    }
    prometheus.wait_for(r#"sum(etcd_server_has_leader{job=~".*etcd.*"})"#, 3.0);
    prometheus.wait_for("count(etcd_server_is_leader == 1)", 1.0);

    // etcdHighFsyncDurations and etcdHighCommitDurations: a quantile per member.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fsync = prometheus
            .query(r#"histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{job=~".*etcd.*"}[1m]))"#)
            .unwrap_or_default();
        let finite = fsync
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .count();
        if finite == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "fsync quantiles: {fsync:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let commits = prometheus
        .query(r#"histogram_quantile(0.99, rate(etcd_disk_backend_commit_duration_seconds_bucket{job=~".*etcd.*"}[1m])) > 0.25"#)
        .expect("an answer");
    assert!(commits.is_empty(), "slow commits on loopback: {commits:?}");
    // etcdHighNumberOfFailedGRPCRequests evaluates (over calls that all succeeded).
    let failed = prometheus
        .query(r#"100 * sum(rate(grpc_server_handled_total{job=~".*etcd.*", grpc_code=~"Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"}[5m])) without (grpc_type, grpc_code) / sum(rate(grpc_server_handled_total{job=~".*etcd.*"}[5m])) without (grpc_type, grpc_code) > 1"#)
        .expect("an answer");
    assert!(failed.is_empty(), "{failed:?}");
    // etcdMemberCommunicationSlow: every member has a round-trip quantile to its two peers,
    // and none is slow on loopback.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rtt = prometheus
            .query(r#"histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{job=~".*etcd.*"}[1m]))"#)
            .unwrap_or_default();
        let finite: Vec<f64> = rtt
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect();
        if finite.len() == 6 {
            assert!(
                finite.iter().all(|&v| v < 0.15),
                "slow peers on loopback: {rtt:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "round-trip quantiles: {rtt:?}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // etcdMembersDown: a follower killed.
    let leader = cluster.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    cluster.kill9(follower);
    prometheus.wait_for(r#"count(up{job="etcd"} == 0)"#, 1.0);
    prometheus.wait_for(r#"sum(etcd_server_has_leader{job=~".*etcd.*"})"#, 2.0);
    // Its other half: the leader's sends to the dead member fail.
    prometheus.wait_for(
        r#"count(count without (To) (sum without (instance) (rate(etcd_network_peer_sent_failures_total{job=~".*etcd.*"}[120s])) > 0.01))"#,
        1.0,
    );
    // etcdNoLeader: the leader too; the last member has none.
    cluster.kill9(leader);
    prometheus.wait_for(
        r#"count(etcd_server_has_leader{job=~".*etcd.*"} == 0)"#,
        1.0,
    );
}
