//! etcd's health endpoints on the client port, answered as etcd answers them, because probes
//! (Kubernetes, load balancers, Patroni, etcd's own tooling) judge a member by them:
//!
//! - `GET /health` (etcd 3.4 and 3.5): JSON `{"health","reason"}`; unhealthy on an alarm (less
//!   those named by `?exclude=`), with no leader, or when a read fails; `?serializable=true`
//!   reads locally and needs no leader.
//! - `GET /livez` and `GET /readyz` (etcd 3.5.11+ and 3.6): named checks, plain text `ok`,
//!   every check's line with `?verbose`, `?exclude=NAME` to skip one, and `/livez/NAME`,
//!   `/readyz/NAME` for one alone; a failure is a 503 listing what failed.
//! - `GET /version`: `{"etcdserver","etcdcluster"}`.
//!
//! Checks read as etcd's do, as root: no token is needed and auth cannot make a member look
//! down.

use std::sync::Arc;

use crate::error::{BlockingError, ClusterError};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use conclave_proto::etcdserverpb::{AlarmType, RangeRequest};
use serde::Serialize;

use crate::config::ETCD_API_VERSION;
use crate::limits::REQUEST_TIMEOUT;
use crate::node::Node;

/// The handlers' state.
type Node_ = State<Arc<Node>>;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/livez",
            get(|s: Node_, q: RawQuery| all_checks(s, q, LIVEZ)),
        )
        .route(
            "/livez/{check}",
            get(|s: Node_, p: Path<String>, q: RawQuery| one_check(s, p, q, LIVEZ)),
        )
        .route(
            "/readyz",
            get(|s: Node_, q: RawQuery| all_checks(s, q, READYZ)),
        )
        .route(
            "/readyz/{check}",
            get(|s: Node_, p: Path<String>, q: RawQuery| one_check(s, p, q, READYZ)),
        )
        .route("/version", get(version))
        .with_state(node)
}

/// A query string's `name=value` pairs, in order; a name without `=` has an empty value.
/// Values here are alarm and check names, which need no percent-decoding.
fn query_pairs(query: &Option<String>) -> Vec<(&str, &str)> {
    query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn values<'a>(pairs: &[(&'a str, &'a str)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| *v)
        .collect()
}

/// Why a probe read failed.
#[derive(Debug, thiserror::Error)]
enum ReadFailed {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Store(#[from] BlockingError),
}

/// A local read of one key, keys only, as etcd's checks make; linearizable first unless
/// `serializable`. Bounded by the request timeout.
async fn read(node: &Arc<Node>, serializable: bool) -> Result<(), ReadFailed> {
    let attempt = async {
        if !serializable {
            node.router.linearize().await?;
        }
        let probe = RangeRequest {
            key: b"health".to_vec(),
            keys_only: true,
            limit: 1,
            ..Default::default()
        };
        node.blocking(move |store| store.range(&probe)).await?;
        Ok::<_, ReadFailed>(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(ClusterError::TimedOut.into()))
}

#[derive(Serialize)]
struct Health {
    health: &'static str,
    reason: String,
}

async fn health(State(node): State<Arc<Node>>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(&query);
    let excluded = values(&pairs, "exclude");
    let serializable = pairs.contains(&("serializable", "true"));
    let verdict = async {
        for alarm in node.store.alarms(AlarmType::None) {
            let kind = AlarmType::try_from(alarm.alarm).unwrap_or(AlarmType::None);
            if excluded.contains(&kind.as_str_name()) {
                continue;
            }
            return Err(match kind {
                AlarmType::Nospace => "ALARM NOSPACE".to_string(),
                AlarmType::Corrupt => "ALARM CORRUPT".to_string(),
                AlarmType::None => "ALARM UNKNOWN".to_string(),
            });
        }
        if !serializable && node.cluster.status().leader.is_none() {
            return Err("RAFT NO LEADER".to_string());
        }
        read(&node, serializable)
            .await
            .map_err(|e| format!("RANGE ERROR:{}", e))
    };
    let verdict = verdict.await;
    // etcd's counters of /health answers.
    match verdict {
        Ok(()) => metrics::counter!("etcd_server_health_success").increment(1),
        Err(_) => metrics::counter!("etcd_server_health_failures").increment(1),
    }
    let (code, body) = match verdict {
        Ok(()) => (
            StatusCode::OK,
            Health {
                health: "true",
                reason: String::new(),
            },
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                health: "false",
                reason,
            },
        ),
    };
    (code, axum::Json(body)).into_response()
}

/// The checks of `/livez` and `/readyz`, by etcd's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

const LIVEZ: &[Check] = &[Check::SerializableRead];
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
];

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    /// Why the check fails, in etcd's words.
    async fn run(self, node: &Arc<Node>) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if node.store.alarms(AlarmType::Corrupt).is_empty() {
                    Ok(())
                } else {
                    Err("alarm activated: CORRUPT".to_string())
                }
            }
            Check::SerializableRead => read(node, true).await.map_err(|e| e.to_string()),
            Check::LinearizableRead => read(node, false).await.map_err(|e| e.to_string()),
            Check::NonLearner => {
                if node.cluster.status().is_learner {
                    Err("not supported for learner".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Runs `checks` in order: every check's line, and whether all passed.
async fn run_checks(node: &Arc<Node>, checks: &[Check], verbose: bool) -> Response {
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        match check.run(node).await {
            Ok(()) => lines.push_str(&format!("[+]{} ok\n", check.name())),
            Err(why) => {
                failed = true;
                lines.push_str(&format!("[-]{} failed: {why}\n", check.name()));
            }
        }
    }
    let text = |code, body: String| {
        (
            code,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response()
    };
    if failed {
        // etcd answers with http.Error, which ends the text with a newline of its own.
        return text(StatusCode::SERVICE_UNAVAILABLE, lines + "\n");
    }
    let body = if verbose {
        lines + "ok\n"
    } else {
        "ok\n".into()
    };
    text(StatusCode::OK, body)
}

async fn all_checks(
    State(node): State<Arc<Node>>,
    RawQuery(query): RawQuery,
    checks: &'static [Check],
) -> Response {
    let pairs = query_pairs(&query);
    let excluded = values(&pairs, "exclude");
    let verbose = pairs.iter().any(|(name, _)| *name == "verbose");
    let chosen: Vec<Check> = checks
        .iter()
        .copied()
        .filter(|c| !excluded.contains(&c.name()))
        .collect();
    run_checks(&node, &chosen, verbose).await
}

async fn one_check(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    checks: &'static [Check],
) -> Response {
    let verbose = query_pairs(&query).iter().any(|(n, _)| *n == "verbose");
    match checks.iter().find(|c| c.name() == name) {
        Some(&check) => run_checks(&node, &[check], verbose).await,
        None => crate::gateway::page_not_found(),
    }
}

/// What etcd's mux answers for a check it does not have.
/// `GET /version`. conclave claims etcd 3.5.0 for both: it speaks the 3.5 API (clients gate
/// 3.5 features on the cluster version), and etcd reports a cluster version as major.minor.0.
async fn version() -> Response {
    #[derive(Serialize)]
    struct Version {
        etcdserver: &'static str,
        etcdcluster: &'static str,
    }
    axum::Json(Version {
        etcdserver: ETCD_API_VERSION,
        etcdcluster: ETCD_API_VERSION,
    })
    .into_response()
}
