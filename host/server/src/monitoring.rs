//! Prometheus metrics under etcd's names, types, labels and buckets, so that etcd's Grafana
//! dashboard and alert rules work against conclave unchanged. Code records through the
//! `metrics` facade (the store and the Raft log record their own disk timings); the
//! exporter renders Prometheus' classic text format, which Prometheus and `etcdctl check
//! datascale` both parse. What is state rather than events (the leader, Raft indexes, sizes,
//! the process) is read when scraped, not tracked on every change.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tracing::info;

use crate::cluster_view::ClusterView;
use crate::config::{ETCD_API_VERSION, MetricsLevel};
use crate::node::Node;

/// etcd's disk histograms: 1 ms to 8 s, doubling (prometheus.ExponentialBuckets(0.001, 2, 14)).
fn disk_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

/// etcd's peer round-trip histogram: 0.1 ms to 3.3 s, doubling
/// (prometheus.ExponentialBuckets(0.0001, 2, 16)).
fn round_trip_buckets() -> Vec<f64> {
    (0..16).map(|i| 0.0001 * f64::from(1u32 << i)).collect()
}

/// Counts (Raft log group sizes): 1 to 4096, doubling.
fn count_buckets() -> Vec<f64> {
    (0..13).map(|i| f64::from(1u32 << i)).collect()
}

/// How often each peer's round-trip time is sampled (etcd's prober: every few seconds).
const PEER_PROBE: Duration = Duration::from_secs(2);

/// Go's prometheus.DefBuckets, for every other histogram.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the exporter folds recorded samples into its histograms.
const UPKEEP: Duration = Duration::from_secs(5);

/// The installed exporter; cheap to clone into handlers.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
}

impl Metrics {
    /// Installs the process-wide recorder. Call before anything records: a handle taken
    /// earlier stays bound to the no-op recorder.
    pub fn install(level: MetricsLevel) -> anyhow::Result<Metrics> {
        let builder = PrometheusBuilder::new()
            .set_buckets(&DEFAULT_BUCKETS)?
            .set_buckets_for_metric(Matcher::Prefix("etcd_disk_".to_string()), &disk_buckets())?
            .set_buckets_for_metric(
                Matcher::Full("etcd_network_peer_round_trip_time_seconds".to_string()),
                &round_trip_buckets(),
            )?
            .set_buckets_for_metric(
                Matcher::Prefix("conclave_raft_log_group_".to_string()),
                &count_buckets(),
            )?;
        let handle = builder.install_recorder()?;
        describe();
        let process = Arc::new(metrics_process::Collector::default());
        process.describe();
        gauge!("etcd_server_version", "server_version" => ETCD_API_VERSION).set(1.0);
        info!(?level, "metrics on /metrics");
        Ok(Metrics { handle, process })
    }

    /// Folds recorded samples in now and then, so that memory stays bounded between scrapes.
    pub fn spawn_upkeep(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP).await;
                handle.run_upkeep();
            }
        });
    }

    /// Counts leader changes as this member sees them, for the member's life.
    pub fn spawn_leader_watch(cluster: ClusterView) {
        tokio::spawn(async move {
            let mut changes = cluster.leadership_changes();
            let mut last = None;
            loop {
                let leader = cluster.leader_id();
                if leader.is_some() && leader != last {
                    counter!("etcd_server_leader_changes_seen_total").increment(1);
                }
                last = leader;
                if !changes.changed().await {
                    return;
                }
            }
        });
    }

    /// Samples the round-trip time to every other member, as etcd's prober does, for the
    /// member's life. QUIC measures it on the connection's own traffic (acknowledgements and
    /// keep-alives), so this sends nothing: it only reads the estimate.
    pub fn spawn_peer_probe(node: Arc<Node>) {
        tokio::spawn(async move {
            // Woken by leadership changes too, only to notice that Raft stopped.
            let mut changes = node.cluster.leadership_changes();
            let mut ticks = tokio::time::interval(PEER_PROBE);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    changed = changes.changed() => match changed {
                        true => continue,
                        false => return,
                    },
                }
                for (id, member) in node.cluster.others() {
                    if let Some(rtt) = node.cluster.round_trip(&member) {
                        histogram!(
                            "etcd_network_peer_round_trip_time_seconds",
                            "To" => format!("{id:x}")
                        )
                        .record(rtt.as_secs_f64());
                    }
                }
            }
        });
    }

    /// The text a scrape gets.
    pub fn render(&self, node: &Node) -> String {
        self.process.collect();
        record_state(node);
        self.handle.render()
    }

    /// `GET /metrics`, for the client port and `--listen-metrics-urls`.
    pub fn router(self, node: Arc<Node>) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state((self, node))
    }
}

async fn scrape(State((metrics, node)): State<(Metrics, Arc<Node>)>) -> Response {
    let body = metrics.render(&node);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The gauges that are state: read now from Raft's metrics and the store.
fn record_state(node: &Node) {
    let status = node.cluster.status();
    let (leader, is_learner, applied) = (status.leader, status.is_learner, status.applied_index);
    let committed = status.committed_index;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge!("etcd_server_has_leader").set(flag(leader.is_some()));
    gauge!("etcd_server_is_leader").set(flag(leader == Some(node.identity.member_id)));
    gauge!("etcd_server_is_learner").set(flag(is_learner));
    gauge!("etcd_server_proposals_committed_total").set(committed as f64);
    gauge!("etcd_server_proposals_applied_total").set(applied as f64);
    gauge!("etcd_server_id", "server_id" => format!("{:x}", node.identity.member_id)).set(1.0);
    gauge!("etcd_server_quota_backend_bytes").set(node.router.quota().map_or(0.0, |q| q as f64));
    let status = node.store.status();
    let size = status.disk_bytes as f64;
    // etcd reports the bbolt file and the pages in use; fjall's files are both.
    gauge!("etcd_mvcc_db_total_size_in_bytes").set(size);
    gauge!("etcd_debugging_mvcc_db_total_size_in_bytes").set(size);
    gauge!("etcd_mvcc_db_total_size_in_use_in_bytes").set(size);
    gauge!("etcd_debugging_mvcc_keys_total").set(status.keys as f64);
    gauge!("etcd_debugging_mvcc_current_revision").set(status.revision as f64);
    gauge!("etcd_debugging_mvcc_compact_revision").set(status.compacted as f64);
    if let Ok(open) = std::fs::read_dir("/proc/self/fd") {
        gauge!("os_fd_used").set(open.count() as f64);
    }
}

/// etcd's help texts.
fn describe() {
    describe_gauge!(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not."
    );
    describe_gauge!(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise."
    );
    describe_gauge!(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise."
    );
    describe_counter!(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen."
    );
    describe_gauge!(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed."
    );
    describe_gauge!(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied."
    );
    describe_gauge!(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit."
    );
    describe_counter!(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen."
    );
    describe_gauge!(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes."
    );
    describe_gauge!(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version."
    );
    describe_gauge!(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID."
    );
    describe_counter!(
        "etcd_server_health_success",
        "The total number of successful health checks"
    );
    describe_counter!(
        "etcd_server_health_failures",
        "The total number of failed health checks"
    );
    describe_gauge!(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    );
    describe_gauge!(
        "etcd_debugging_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    );
    describe_gauge!(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes."
    );
    describe_gauge!("etcd_debugging_mvcc_keys_total", "Total number of keys.");
    describe_gauge!(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store."
    );
    describe_gauge!(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store."
    );
    describe_gauge!("os_fd_used", "The number of used file descriptors.");
    describe_histogram!(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL."
    );
    describe_histogram!(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend."
    );
    describe_histogram!(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers."
    );
    describe_counter!(
        "etcd_network_peer_sent_failures_total",
        "The total number of send failures from peers."
    );
    describe_histogram!(
        "conclave_raft_log_group_writes",
        "Writes (appends, votes, purges) coalesced into one Raft log group write."
    );
    describe_histogram!(
        "conclave_raft_log_group_entries",
        "Raft log entries appended by one group write (one fsync)."
    );
    describe_counter!(
        "conclave_plugin_calls_total",
        "Calls into a plugin by this member's runtime (as leader)."
    );
    describe_histogram!(
        "conclave_plugin_call_duration_seconds",
        "How long one call into a plugin took."
    );
    describe_counter!(
        "conclave_plugin_events_in_total",
        "Events delivered to a plugin."
    );
    describe_counter!(
        "conclave_plugin_outputs_total",
        "Outputs a plugin returned."
    );
    describe_counter!(
        "conclave_plugin_failures_total",
        "Plugin runs that failed (trap, timeout, out of memory, refused proposal)."
    );
    describe_counter!(
        "conclave_plugin_restarts_total",
        "Plugin restarts after a failure."
    );
    describe_gauge!(
        "conclave_plugin_running",
        "1 while this member runs the plugin and it is not failed."
    );
    describe_gauge!(
        "conclave_plugin_flushed_until_timestamp_seconds",
        "The end of the plugin's last committed window; time() minus it is the flush lag."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_buckets_are_etcds() {
        let b = disk_buckets();
        assert_eq!(b.len(), 14);
        assert_eq!(b[0], 0.001);
        assert!((b[13] - 8.192).abs() < 1e-9);
    }

    #[test]
    fn round_trip_buckets_are_etcds() {
        let b = round_trip_buckets();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], 0.0001);
        assert!((b[15] - 3.2768).abs() < 1e-9);
    }
}
