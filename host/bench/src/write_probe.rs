//! `write-probe`: puts one key until a put succeeds, cycling through the endpoints, and reports
//! when the first one succeeded; the comparison script uses it to time leader failover.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use conclave_proto::etcdserverpb::PutRequest;
use serde::{Deserialize, Serialize};

use crate::args::WriteProbeArgs;
use crate::pool::{endpoint_urls, lazy_kv_clients};

#[derive(Debug, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The endpoint whose put succeeded.
    pub endpoint: String,
    /// From --since-unix-ns (or the start) to the successful put's response.
    pub elapsed_ms: f64,
    /// Latency of the successful put alone.
    pub last_attempt_ms: f64,
    pub attempts: u64,
    pub failed_attempts: u64,
    /// The last error seen before the success, if any.
    pub last_error: Option<String>,
}

impl ProbeReport {
    pub fn to_text(&self) -> String {
        format!(
            "first successful put after {:.1} ms on {} ({} failed attempts{})\n",
            self.elapsed_ms,
            self.endpoint,
            self.failed_attempts,
            self.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )
    }
}

pub fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub async fn probe(args: &WriteProbeArgs) -> anyhow::Result<ProbeReport> {
    if args.attempt_timeout.is_zero() {
        bail!("--attempt-timeout must be more than 0");
    }
    let since = args.since_unix_ns.unwrap_or_else(unix_ns);
    let urls = endpoint_urls(&args.endpoints)?;
    let clients = lazy_kv_clients(&urls, args.attempt_timeout)?;

    let deadline = tokio::time::Instant::now() + args.give_up_after;
    let mut attempts = 0u64;
    let mut last_error = None;
    for turn in 0.. {
        let (url, client) = (&urls[turn % urls.len()], &clients[turn % clients.len()]);
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no put succeeded within {:?} ({attempts} attempts; last error: {})",
                args.give_up_after,
                last_error.as_deref().unwrap_or("none")
            );
        }
        attempts += 1;
        let started = tokio::time::Instant::now();
        let request = PutRequest {
            key: args.key.clone().into_bytes(),
            value: attempts.to_string().into_bytes(),
            ..Default::default()
        };
        match client.clone().put(request).await {
            Ok(_) => {
                let done = unix_ns();
                return Ok(ProbeReport {
                    endpoint: url.clone(),
                    elapsed_ms: done.saturating_sub(since) as f64 / 1e6,
                    last_attempt_ms: started.elapsed().as_secs_f64() * 1e3,
                    attempts,
                    failed_attempts: attempts - 1,
                    last_error,
                });
            }
            Err(status) => {
                last_error = Some(status.message().to_string());
                // A refused connection fails at once: do not spin on a dead endpoint.
                let spent = started.elapsed();
                if spent < Duration::from_millis(10) {
                    tokio::time::sleep(Duration::from_millis(10) - spent).await;
                }
            }
        }
    }
    bail!("the probe ran out of turns")
}
