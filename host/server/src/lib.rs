//! The conclave server: etcd's v3 API over gRPC and its JSON gateway, served over the
//! conclave store. Handlers are thin: validate, then read from the store or propose a write.

mod auth;
mod authority;
mod auto_compact;
mod backup;
mod batch;
mod client_tls;
mod clock;
mod cluster_view;
mod config;
mod config_file;
mod corrupt_check;
mod dev;
mod error;
mod etcd_flags;
mod forward;
mod gateway;
mod grpc_limit;
mod grpc_metrics;
mod health;
mod http_serve;
mod ids;
#[cfg(test)]
mod layers;
mod leader_ticks;
mod lease;
mod limits;
mod logs;
mod member_calls;
mod monitoring;
mod node;
mod plugin;
mod pprof;
mod propose;
mod recipe;
mod reconfig;
mod router;
mod serve;
mod service;
mod tokens;
mod validate;
mod watch;
mod wire;

pub use config::Config;
pub use serve::run;

use std::process::ExitCode;

/// The async runtime with `workers` threads (0: one fewer than the cores, at least one). On
/// 2 cores one worker beat two by a tenth in put throughput (docs/BENCHMARKS.md): with two,
/// every write bounced between workers as well as to the log's writer thread.
///
/// Without a LIFO slot: with it, a task woken by the running one runs next, so when a batch of
/// answers wakes its gRPC handlers, each handler's response woke the HTTP/2 connection task
/// into the slot, and every response went out in its own write. Without it the connection
/// task queues behind the other handlers and writes their responses together: by hand (3
/// members, 100 clients, 100k puts) writev calls fell from 1.2 to 0.33 per put, context
/// switches by a fifth, server CPU per put by 15%, and 1-client latency did not suffer.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        n => n,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).enable_all();
    // The option is unstable in tokio; .cargo/config.toml sets the cfg.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}

/// The `conclave` binary: parse etcd-style flags, set up logs, run until a signal.
pub fn main() -> ExitCode {
    let config::Loaded { config, notices } = Config::load();
    if let Err(e) = logs::init(&config) {
        eprintln!("conclave: {e:#}");
        return ExitCode::FAILURE;
    }
    // First, before anything else is done: it may exec this process again.
    if config.enable_pprof {
        pprof::ensure_heap_profiler();
    }
    for warning in &notices.warnings {
        tracing::warn!("{warning}");
    }
    if !notices.refusals.is_empty() {
        for refusal in &notices.refusals {
            tracing::error!("{refusal}");
        }
        tracing::error!("not starting: remove the flags above (docs/OPERATIONS.md, etcd flags)");
        return ExitCode::FAILURE;
    }
    let runtime = match runtime(config.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conclave: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match config.command.clone() {
        Some(config::Subcommand::Dev(args)) => runtime.block_on(dev::run(args)),
        None => runtime.block_on(run(config)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "conclave stopped with an error");
            ExitCode::FAILURE
        }
    }
}
