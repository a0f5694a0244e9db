//! `watch`: N watch streams on one prefix, then puts under it. Each put's value carries its
//! number and the time it was sent; every watcher records, per event, the time from send to
//! receipt, and the run records per put when its last watcher got it (the fan-out time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, kv_client::KvClient, watch_client::WatchClient,
    watch_request::RequestUnion,
};
use conclave_proto::prefix_range_end;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::args::WatchArgs;
use crate::pool::{self, endpoint_urls};
use crate::stats::{Latency, histogram};

#[derive(Debug, Serialize, Deserialize)]
pub struct WatchReport {
    pub workload: String,
    pub command: Vec<String>,
    pub endpoints: Vec<String>,
    pub watchers: usize,
    pub conns: usize,
    pub puts: u64,
    /// Events received over all watchers (puts x watchers when nothing is lost).
    pub deliveries: u64,
    pub elapsed_secs: f64,
    /// From a put being sent to one watcher receiving it.
    pub latency_ms: Latency,
    /// From a put being sent to the last watcher receiving it.
    pub all_watchers_ms: Latency,
    /// Seconds to open every watch stream.
    pub setup_secs: f64,
}

impl WatchReport {
    pub fn to_text(&self) -> String {
        format!(
            "watch: {} puts to {} watchers ({} deliveries) in {:.2}s\n  \
             put -> a watcher:   p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n  \
             put -> all watchers: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n  \
             (watchers set up in {:.2}s)\n",
            self.puts,
            self.watchers,
            self.deliveries,
            self.elapsed_secs,
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.all_watchers_ms.p50,
            self.all_watchers_ms.p99,
            self.all_watchers_ms.max,
            self.setup_secs,
        )
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What the watchers share: latencies, deliveries, and each put's latest arrival.
struct Seen {
    latency: Mutex<Histogram<u64>>,
    deliveries: AtomicU64,
    /// Per put: the latest send-to-receipt time so far, in microseconds.
    slowest: Vec<AtomicU64>,
}

pub async fn run(args: &WatchArgs) -> anyhow::Result<WatchReport> {
    if args.watchers == 0 || args.conns == 0 || args.total == 0 {
        bail!("--watchers, --conns and --total must be at least 1");
    }
    if args.val_size < 16 {
        bail!("--val-size must be at least 16 (the put's number and time travel in it)");
    }
    let urls = endpoint_urls(&args.endpoints)?;
    let mut channels = Vec::with_capacity(args.conns);
    for url in urls.iter().cycle().take(args.conns) {
        // No per-request timeout: it would cut the watch streams.
        channels.push(pool::connect(url, None).await?);
    }
    let prefix = args.key_prefix.as_bytes().to_vec();
    let seen = Arc::new(Seen {
        latency: Mutex::new(histogram()),
        deliveries: AtomicU64::new(0),
        slowest: (0..args.total).map(|_| AtomicU64::new(0)).collect(),
    });

    let setup = tokio::time::Instant::now();
    let mut readers = Vec::with_capacity(args.watchers);
    for w in 0..args.watchers {
        let channel = channels[w % channels.len()].clone();
        let (tx, rx) = mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.clone(),
                range_end: prefix_range_end(&prefix),
                ..Default::default()
            })),
        })
        .await
        .context("queue a watch")?;
        let mut stream = WatchClient::new(channel)
            .watch(ReceiverStream::new(rx))
            .await
            .with_context(|| format!("open watch stream {w}"))?
            .into_inner();
        // The first response says the watcher exists: only then may puts start.
        match stream.next().await {
            Some(Ok(resp)) if resp.created && !resp.canceled => {}
            other => bail!("watch {w} was not created: {other:?}"),
        }
        let seen = seen.clone();
        let total = args.total;
        readers.push(tokio::spawn(async move {
            let _keep_open = tx;
            let mut got = 0;
            while got < total {
                let Some(Ok(resp)) = stream.next().await else {
                    return got;
                };
                let arrived = now_nanos();
                for event in resp.events {
                    let Some(kv) = event.kv else { continue };
                    let Some((n, sent)) = decode(&kv.value) else {
                        continue;
                    };
                    let micros = arrived.saturating_sub(sent) / 1000;
                    if let Ok(mut h) = seen.latency.lock() {
                        h.saturating_record(micros.max(1));
                    }
                    if let Some(slot) = seen.slowest.get(n as usize) {
                        slot.fetch_max(micros.max(1), Ordering::Relaxed);
                    }
                    seen.deliveries.fetch_add(1, Ordering::Relaxed);
                    got += 1;
                }
            }
            got
        }));
    }
    let setup_secs = setup.elapsed().as_secs_f64();

    let started = tokio::time::Instant::now();
    let mut kv = KvClient::new(channels[0].clone());
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    for n in 0..args.total {
        if let Some(every) = interval {
            tokio::time::sleep_until(started + every * n as u32).await;
        }
        let mut value = Vec::with_capacity(args.val_size);
        value.extend_from_slice(&n.to_le_bytes());
        value.extend_from_slice(&now_nanos().to_le_bytes());
        value.resize(args.val_size, b'v');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{n:08}").as_bytes());
        kv.put(PutRequest {
            key,
            value,
            ..Default::default()
        })
        .await
        .with_context(|| format!("put {n}"))?;
    }
    let waited = tokio::time::timeout(args.timeout, futures::future::join_all(readers)).await;
    let elapsed = started.elapsed();
    let Ok(results) = waited else {
        bail!(
            "the watchers had {} of {} events {:?} after the last put",
            seen.deliveries.load(Ordering::Relaxed),
            args.total * args.watchers as u64,
            args.timeout
        );
    };
    for result in results {
        let got = result.context("a watcher task")?;
        if got < args.total {
            bail!("a watch stream ended after {got} of {} events", args.total);
        }
    }
    let mut all = histogram();
    for slot in &seen.slowest {
        all.saturating_record(slot.load(Ordering::Relaxed).max(1));
    }
    let latency = match seen.latency.lock() {
        Ok(h) => Latency::of(&h),
        Err(poisoned) => Latency::of(&poisoned.into_inner()),
    };
    Ok(WatchReport {
        workload: "watch".to_string(),
        command: std::env::args().collect(),
        endpoints: urls,
        watchers: args.watchers,
        conns: args.conns,
        puts: args.total,
        deliveries: seen.deliveries.load(Ordering::Relaxed),
        elapsed_secs: elapsed.as_secs_f64(),
        latency_ms: latency,
        all_watchers_ms: Latency::of(&all),
        setup_secs,
    })
}

/// The put's number and send time, from the first 16 bytes of its value.
fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let n = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let sent = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((n, sent))
}
