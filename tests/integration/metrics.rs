//! Prometheus metrics as etcd's monitoring expects them: etcd's family names, types and
//! buckets on the client port's `/metrics` and on `--listen-metrics-urls` (which serves the
//! probes too, and not the API), values that follow the member's state, and etcd's own
//! `etcdctl check datascale`, which reads `process_resident_memory_bytes` from it.

use crate::common;

use std::collections::HashMap;

use common::{Server, free_port, stdout_ok};

/// A scrape's samples by series (`name{labels}`), and each family's declared type.
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = HashMap::new();
        let mut types = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
                samples.insert(series.to_string(), value);
            }
        }
        Scrape { samples, types }
    }

    /// The value of the series of `name` whose labels include every pair of `labels`.
    fn labelled(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(series, _)| {
                series.strip_prefix(name).is_some_and(|rest| {
                    rest.starts_with('{') && wanted.iter().all(|w| rest.contains(w.as_str()))
                })
            })
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "one series of {name} with {labels:?}");
        found[0]
    }

    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series}"))
    }
}

fn scrape(port: u16) -> Scrape {
    let resp = common::http_at(port, "GET", "/metrics");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        resp.headers
    );
    Scrape::parse(&resp.body)
}

/// The families etcd's alert rules and Grafana dashboard read that conclave has, with the
/// type etcd gives them.
const FAMILIES: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_server_id", "gauge"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    // conclave's own.
    ("conclave_raft_log_group_entries", "histogram"),
    ("conclave_raft_log_group_writes", "histogram"),
];

#[test]
fn the_client_port_serves_etcds_families_with_live_values() {
    let server = Server::start();
    for i in 0..20 {
        stdout_ok(&server.etcdctl(&["put", &format!("k{i}"), "v"]));
    }
    let m = scrape(server.port());
    for (family, kind) in FAMILIES {
        assert_eq!(
            m.types.get(*family).map(String::as_str),
            Some(*kind),
            "{family}"
        );
    }
    assert_eq!(m.value("etcd_server_has_leader"), 1.0);
    assert_eq!(m.value("etcd_server_is_leader"), 1.0);
    assert_eq!(m.value("etcd_server_leader_changes_seen_total"), 1.0);
    assert_eq!(m.value("etcd_server_quota_backend_bytes"), 2147483648.0);
    assert_eq!(
        m.value("etcd_server_version{server_version=\"3.5.0\"}"),
        1.0
    );
    assert!(m.value("etcd_server_proposals_applied_total") >= 20.0);
    assert_eq!(m.value("etcd_debugging_mvcc_keys_total"), 20.0);
    assert!(m.value("etcd_mvcc_db_total_size_in_bytes") > 0.0);
    assert!(m.value("process_resident_memory_bytes") > 1e6);
    // Every put was fsynced in the log: etcd's buckets, 1 ms doubling to 8.192 s.
    assert!(m.value("etcd_disk_wal_fsync_duration_seconds_count") >= 20.0);
    // Each put went through a log group that appended at least one entry.
    assert!(m.value("conclave_raft_log_group_entries_sum") >= 20.0);
    assert!(
        m.samples
            .contains_key("conclave_raft_log_group_entries_bucket{le=\"4096\"}"),
        "count buckets for group sizes"
    );
    assert!(
        m.samples
            .contains_key("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"}"),
        "{:?}",
        m.samples
            .keys()
            .filter(|k| k.contains("fsync"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_metrics_port_serves_metrics_and_probes_only() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = Server::start_with(&["--listen-metrics-urls", &url]);
    let m = scrape(port);
    assert_eq!(m.value("etcd_server_has_leader"), 1.0);
    assert_eq!(common::http_at(port, "GET", "/health").status, 200);
    assert_eq!(common::http_at(port, "GET", "/readyz").status, 200);
    assert_eq!(common::http_at(port, "GET", "/v3/kv/range").status, 404);
    drop(server);
}

/// etcd's own tool reads the server's memory from /metrics.
#[test]
fn etcdctl_check_datascale_passes() {
    let server = Server::start();
    let out = server.etcdctl(&["check", "datascale"]);
    let text = stdout_ok(&out);
    assert!(text.contains("PASS"), "{text}");
}

/// go-grpc-prometheus' families: every method and code from the start, the calls as they
/// end, with `--metrics extensive` their latency.
#[test]
fn grpc_calls_are_counted_by_method_and_code() {
    let server = Server::start_with(&["--metrics", "extensive"]);
    for i in 0..5 {
        stdout_ok(&server.etcdctl(&["put", &format!("k{i}"), "v"]));
    }
    let refused = server.etcdctl(&["put", "", "v"]);
    assert!(!refused.status.success());
    let m = scrape(server.port());
    let put = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
    ];
    let with = |code: &'static str| {
        let mut labels = put.to_vec();
        labels.push(("grpc_code", code));
        labels
    };
    assert_eq!(m.labelled("grpc_server_started_total", &put), 6.0);
    assert_eq!(m.labelled("grpc_server_handled_total", &with("OK")), 5.0);
    assert_eq!(
        m.labelled("grpc_server_handled_total", &with("InvalidArgument")),
        1.0
    );
    // Created before any call, as etcd's are.
    let compact = [("grpc_method", "Compact"), ("grpc_code", "Unavailable")];
    assert_eq!(m.labelled("grpc_server_handled_total", &compact), 0.0);
    assert_eq!(m.labelled("grpc_server_handling_seconds_count", &put), 6.0);
    assert!(m.value("etcd_network_client_grpc_received_bytes_total") > 0.0);
    assert!(m.value("etcd_network_client_grpc_sent_bytes_total") > 0.0);
}
