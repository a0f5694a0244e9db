//! `rollup-probe`: puts samples under a rule's source prefix, round-robin over the endpoints,
//! until the rule has written a rollup of a window that started at or after a given moment;
//! the comparison script uses it for deploy-to-first-output and for leader kill to resumed
//! flushing (a window open at the kill can only be flushed by the next leader).

use std::time::Duration;

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{PutRequest, RangeRequest};
use conclave_proto::prefix_range_end;
use serde::{Deserialize, Serialize};

use crate::args::RollupProbeArgs;
use crate::pool::{endpoint_urls, lazy_kv_clients};
use crate::write_probe::unix_ns;

#[derive(Debug, Serialize, Deserialize)]
pub struct RollupProbeReport {
    /// From --since-unix-ns (or the start) until the rollup was read.
    pub elapsed_ms: f64,
    /// The rollup's key.
    pub key: String,
    pub puts: u64,
    pub failed_requests: u64,
}

impl RollupProbeReport {
    pub fn to_text(&self) -> String {
        format!(
            "{} after {:.1} ms ({} puts, {} failed requests)\n",
            self.key, self.elapsed_ms, self.puts, self.failed_requests
        )
    }
}

/// The window start in a rollup key `<prefix><series>/<start ms>`.
fn window_of(key: &[u8], prefix: &str) -> Option<i64> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    let slash = rest.iter().rposition(|b| *b == b'/')?;
    std::str::from_utf8(&rest[slash + 1..]).ok()?.parse().ok()
}

pub async fn probe(args: &RollupProbeArgs) -> anyhow::Result<RollupProbeReport> {
    if args.attempt_timeout.is_zero() || args.resolution.is_zero() {
        bail!("--attempt-timeout and --resolution must be more than 0");
    }
    let since = args.since_unix_ns.unwrap_or_else(unix_ns);
    let resolution = i64::try_from(args.resolution.as_millis()).context("--resolution")?;
    let since_ms = i64::try_from(since / 1_000_000).context("--since-unix-ns")?;
    let first_window = since_ms - since_ms.rem_euclid(resolution);
    let urls = endpoint_urls(&args.endpoints)?;
    let clients = lazy_kv_clients(&urls, args.attempt_timeout)?;
    let range = RangeRequest {
        key: args.target_prefix.as_bytes().to_vec(),
        range_end: prefix_range_end(args.target_prefix.as_bytes()),
        keys_only: true,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + args.give_up_after;
    let (mut puts, mut failed) = (0u64, 0u64);
    for turn in 0.. {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no rollup of a window from {first_window} on within {:?}",
                args.give_up_after
            );
        }
        let mut client = clients[turn % clients.len()].clone();
        let put = PutRequest {
            key: args.key.clone().into_bytes(),
            value: b"1".to_vec(),
            ..Default::default()
        };
        match client.put(put).await {
            Ok(_) => puts += 1,
            Err(_) => failed += 1,
        }
        match client.range(range.clone()).await {
            Ok(resp) => {
                let found = resp.into_inner().kvs.into_iter().find(|kv| {
                    window_of(&kv.key, &args.target_prefix).is_some_and(|w| w >= first_window)
                });
                if let Some(kv) = found {
                    return Ok(RollupProbeReport {
                        elapsed_ms: unix_ns().saturating_sub(since) as f64 / 1e6,
                        key: String::from_utf8_lossy(&kv.key).into_owned(),
                        puts,
                        failed_requests: failed,
                    });
                }
            }
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the probe ran out of turns")
}

#[cfg(test)]
mod tests {
    use super::window_of;

    #[test]
    fn window_starts_from_rollup_keys() {
        assert_eq!(window_of(b"/r/cpu/1000", "/r/"), Some(1000));
        assert_eq!(window_of(b"/r/a/b/2000", "/r/"), Some(2000));
        assert_eq!(window_of(b"/r/cpu", "/r/"), None);
        assert_eq!(window_of(b"/x/cpu/1000", "/r/"), None);
    }
}
