//! `--enable-pprof`: CPU and heap profiles in pprof's format at etcd's paths, for `go tool
//! pprof http://member:2379/debug/pprof/profile?seconds=30` and `.../debug/pprof/heap` (or
//! `pprof` from Google's Go-free build). CPU: sampled with the pprof crate (SIGPROF, 100 Hz)
//! for the seconds asked. Heap: jemalloc's own sampling profiler (the binary's allocator, see
//! src/bin/conclave.rs), which the flag switches on at start-up, read with jemalloc_pprof:
//! the memory in use now, by the stack that allocated it, one sample per 512 KiB as Go does.
//!
//! An attacker's view: a profile costs CPU for as long as it runs and shows what the server
//! does, so with auth on only root may take one (a token in `Authorization`, as the gateway
//! takes it), one CPU profile runs at a time, and it lasts at most five minutes; heap dumps
//! take turns on jemalloc's profiler lock.

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
             heap: memory in use by allocation site, sampled every 512 KiB on average; {heap}\n",
            heap = if heap_profiler().is_some() {
                "on"
            } else {
                "not available (this binary's allocator is not jemalloc with profiling)"
            }
        ),
    )
}

/// jemalloc's heap profiler, if this process allocates with it and it was built in.
fn heap_profiler() -> Option<&'static Arc<Mutex<jemalloc_pprof::JemallocProfCtl>>> {
    jemalloc_pprof::PROF_CTL.as_ref()
}

/// The environment variable jemalloc (as tikv-jemallocator builds it) reads its options from,
/// and the options that turn its heap profiler on from the first allocation.
const JEMALLOC_OPTIONS_ENV: &str = "_RJEM_MALLOC_CONF";
const HEAP_PROFILER_OPTIONS: &str = "prof:true,prof_active:true,lg_prof_sample:19";

/// Makes sure jemalloc's heap profiler runs in this process (`--enable-pprof`).
///
/// jemalloc reads its options once, before the first allocation, and its profiler can only be
/// switched on then. Built in but idle it still cost 3-4% of put throughput (docs/BENCHMARKS.md),
/// so the binary starts without it, and a member asked for profiles execs itself again, same
/// process, arguments and environment, with the profiler's options added: before anything is
/// opened, bound or logged. Returns only if no exec was needed or it failed; a member that
/// cannot get the profiler serves CPU profiles and answers 501 for the heap.
pub fn ensure_heap_profiler() {
    let asked = std::env::var(JEMALLOC_OPTIONS_ENV).unwrap_or_default();
    // Already on, or asked for once already (an allocator that is not jemalloc ignores it):
    // never exec twice.
    if heap_profiler().is_some() || asked.contains(HEAP_PROFILER_OPTIONS) {
        start_heap_sampling();
        return;
    }
    let options = if asked.is_empty() {
        HEAP_PROFILER_OPTIONS.to_string()
    } else {
        format!("{asked},{HEAP_PROFILER_OPTIONS}")
    };
    let failed = match std::env::current_exe() {
        Ok(exe) => {
            use std::os::unix::process::CommandExt;
            let mut args = std::env::args_os();
            let mut command = std::process::Command::new(exe);
            if let Some(arg0) = args.next() {
                command.arg0(arg0);
            }
            command.args(args).env(JEMALLOC_OPTIONS_ENV, options).exec()
        }
        Err(e) => e,
    };
    tracing::warn!(error = %failed, "--enable-pprof: could not restart with jemalloc's heap profiler");
}

/// Turns sampling on where the profiler is built in but idle (options given by hand).
fn start_heap_sampling() {
    let Some(profiler) = heap_profiler() else {
        tracing::warn!(
            "--enable-pprof: this binary's allocator has no heap profiler; /debug/pprof/heap \
             will answer 501"
        );
        return;
    };
    let mut profiler = profiler.blocking_lock();
    if !profiler.activated()
        && let Err(e) = profiler.activate()
    {
        tracing::warn!(error = %e, "--enable-pprof: jemalloc's heap profiler did not start");
    }
}

async fn heap(State(p): State<Profiler>, headers: HeaderMap) -> Response {
    if let Err(status) = root_only(&p.node, &headers) {
        return text(StatusCode::FORBIDDEN, &format!("{}\n", status.message()));
    }
    let Some(profiler) = heap_profiler() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "heap profiles need jemalloc's profiler, which this binary's allocator lacks: \
             use /debug/pprof/profile for CPU, and process_resident_memory_bytes\n",
        );
    };
    let mut profiler = profiler.clone().lock_owned().await;
    if !profiler.activated() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "heap sampling is not running\n",
        );
    }
    // The dump writes and parses a file and reads /proc/self/maps: off the async workers.
    match tokio::task::spawn_blocking(move || profiler.dump_pprof()).await {
        Ok(Ok(gzipped)) => profile_file("heap", gzipped),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
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
        Ok(Ok(bytes)) => profile_file("profile", bytes),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

/// With auth on, only root may profile (the gateway's `Authorization` token).
fn root_only(node: &Node, headers: &HeaderMap) -> Result<(), tonic::Status> {
    Ok(node
        .auth
        .caller(&crate::gateway::with_token(headers, ()))?
        .require_root()?)
}

/// A profile as Go's handlers send it: binary, as a file named `name`.
fn profile_file(name: &'static str, bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

fn text(code: StatusCode, body: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}
