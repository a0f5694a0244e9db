//! Drives a workload: `--clients` tasks, each sending one request at a time, until `--total`
//! requests have been sent or `--duration` has passed; an optional global `--rate`; a progress
//! bar on stderr; per-client results merged at the end.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Bounds;
use crate::keys::Rng;
use crate::pool::Pool;
use crate::stats::Recorder;
use crate::workload::Workload;

pub struct Plan<'a> {
    /// Shown on the progress bar.
    pub label: &'a str,
    pub bounds: Bounds,
    /// Requests per second over all clients; 0 for no limit.
    pub rate: f64,
    pub clients: usize,
    /// Whether to draw a progress bar at all (it is also hidden when stderr is not a terminal).
    pub progress: bool,
}

pub struct Outcome {
    pub recorder: Recorder,
    pub elapsed: Duration,
}

pub async fn run<W: Workload>(
    pool: &Pool,
    workload: Arc<W>,
    plan: &Plan<'_>,
) -> anyhow::Result<Outcome> {
    let total = plan.bounds.total;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = plan.bounds.duration.and_then(|d| start.checked_add(d));
    let interval = (plan.rate > 0.0).then(|| 1.0 / plan.rate);

    let bar = progress_bar(plan)?;
    let ticker = {
        let bar = bar.clone();
        let done = done.clone();
        let by_time = total == u64::MAX;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                if by_time {
                    bar.set_position(start.elapsed().as_millis() as u64);
                    bar.set_message(format!("{n} requests"));
                } else {
                    bar.set_position(n);
                }
            }
        })
    };

    let mut clients = JoinSet::new();
    for c in 0..plan.clients {
        let mut kv = pool.kv(c);
        let workload = workload.clone();
        let next = next.clone();
        let done = done.clone();
        clients.spawn(async move {
            let mut rec = Recorder::new(workload.kinds());
            let mut rng = Rng::seeded(c as u64);
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                if let Some(interval) = interval {
                    // Request n goes out no earlier than n/rate after the start.
                    let at = Duration::try_from_secs_f64(seq as f64 * interval)
                        .ok()
                        .and_then(|offset| start.checked_add(offset));
                    match at {
                        Some(at) if deadline.is_none_or(|d| at < d) => {
                            tokio::time::sleep_until(at).await
                        }
                        _ => break,
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let sent = Instant::now();
                let op = workload.op(&mut kv, &mut rng, seq).await;
                let took = sent.elapsed();
                match op.result {
                    Ok(()) => rec.ok(op.kind, took),
                    Err(message) => rec.error(op.kind, &message),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            rec
        });
    }

    let mut recorder = Recorder::new(workload.kinds());
    let mut failure = None;
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(rec) => recorder.merge(rec),
            Err(e) => failure = Some(e),
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e).context("a client task failed");
    }
    Ok(Outcome { recorder, elapsed })
}

fn progress_bar(plan: &Plan<'_>) -> anyhow::Result<ProgressBar> {
    if !plan.progress || !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let target = ProgressDrawTarget::stderr_with_hz(10);
    let bar = if plan.bounds.total == u64::MAX {
        let millis = plan.bounds.duration.map_or(0, |d| d.as_millis() as u64);
        ProgressBar::with_draw_target(Some(millis), target).with_style(
            ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {msg}")?,
        )
    } else {
        ProgressBar::with_draw_target(Some(plan.bounds.total), target).with_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta}",
            )?,
        )
    };
    Ok(bar.with_prefix(plan.label.to_string()))
}
