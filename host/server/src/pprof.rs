//! `--enable-pprof`: CPU profiles in pprof's format at etcd's path, for `go tool pprof
//! http://member:2379/debug/pprof/profile?seconds=30` (or `pprof` from Google's Go-free
//! build). Sampled with the pprof crate (SIGPROF, 100 Hz) for the seconds asked.
//!
//! An attacker's view: a profile costs CPU for as long as it runs and shows what the server
//! does, so with auth on only root may take one (a token in `Authorization`, as the gateway
//! takes it), one profile runs at a time, and a profile lasts at most five minutes. Heap
//! profiles need an allocator that records allocations (jemalloc's profiling); conclave runs
//! mimalloc, which keeps no such record, so `/debug/pprof/heap` says so instead of answering
//! with nothing.

use std::sync::Arc;
use std::time::Duration;

use ::pprof::protos::Message;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Mutex;

use crate::node::Node;

/// Go's default for `seconds`.
const DEFAULT_SECONDS: u64 = 30;
/// The longest profile one request may ask for.
const MAX_SECONDS: u64 = 300;
/// Samples per second, as Go's CPU profiler.
const FREQUENCY: i32 = 100;

#[derive(Clone)]
struct Profiler {
    node: Arc<Node>,
    /// Held while a profile runs: the sampler is process-wide.
    running: Arc<Mutex<()>>,
}

/// The `/debug/pprof` routes.
pub fn router(node: Arc<Node>) -> Router {
    let profiler = Profiler {
        node,
        running: Arc::new(Mutex::new(())),
    };
    Router::new()
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/heap", get(heap))
        .with_state(profiler)
}

/// What there is, and whether a CPU profile is being taken now.
async fn index(State(p): State<Profiler>) -> Response {
    let now = if p.running.try_lock().is_err() {
        "a profile is running"
    } else {
        "idle"
    };
    text(
        StatusCode::OK,
        &format!(
            "/debug/pprof/\n\nprofile: CPU profile, ?seconds=N (default 30, at most 300); {now}\n\
             heap: not available (conclave's allocator, mimalloc, records no heap profile)\n"
        ),
    )
}

async fn heap() -> Response {
    text(
        StatusCode::NOT_IMPLEMENTED,
        "heap profiles need an allocator that records allocations; conclave's, mimalloc, \
         does not: use /debug/pprof/profile for CPU, and process_resident_memory_bytes\n",
    )
}

async fn profile(
    State(p): State<Profiler>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(status) = root_only(&p.node, &headers) {
        return text(StatusCode::FORBIDDEN, &format!("{}\n", status.message()));
    }
    let asked = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="));
    let seconds = match asked.map(str::parse::<u64>) {
        None => DEFAULT_SECONDS,
        Some(Ok(n)) => n,
        Some(Err(_)) => 0,
    };
    if seconds == 0 || seconds > MAX_SECONDS {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("seconds must be 1 to {MAX_SECONDS}\n"),
        );
    }
    let Ok(_running) = p.running.try_lock() else {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            "a profile is already running; try again when it ends\n",
        );
    };
    let guard = match ::pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(guard) => guard,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Symbolizing walks the debug info: off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let report = guard.report().build()?;
        Ok::<_, ::pprof::Error>(report.pprof()?.encode_to_vec())
    })
    .await;
    match encoded {
        Ok(Ok(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

/// With auth on, only root may profile (the gateway's `Authorization` token).
fn root_only(node: &Node, headers: &HeaderMap) -> Result<(), tonic::Status> {
    node.auth
        .caller(&crate::gateway::with_token(headers, ()))?
        .require_root()
}

fn text(code: StatusCode, body: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}
