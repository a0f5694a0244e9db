//! `rollup`: samples through a `rollup` rule deployed on conclave (`conclavectl plugin deploy`
//! with `"ingest": true` and `count` among its aggregations). Clients send --total requests,
//! each an Ingest batch of --batch samples or one Put; then the load reads the rule's rollups
//! until their counts hold every sample, so the figure is end to end: taken, aggregated,
//! flushed through Raft.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use conclave_proto::conclavepb::{IngestRequest, IngestSample, ingest_client::IngestClient};
use conclave_proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use conclave_proto::prefix_range_end;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::args::{RollupArgs, Via};
use crate::pool::{self, endpoint_urls};
use crate::stats::{Recorder, Report, RunInfo};

const KINDS: &[&str] = &["send"];

#[derive(Debug, Serialize, Deserialize)]
pub struct RollupReport {
    pub via: Via,
    /// The requests' latencies and rate.
    pub send: Report,
    /// Samples in requests that succeeded.
    pub samples: u64,
    pub samples_per_sec_sent: f64,
    /// Samples the rollups counted (beyond what they held before the run).
    pub counted: u64,
    /// From the first request until the rollups counted every sample.
    pub end_to_end_secs: f64,
    pub end_to_end_samples_per_sec: f64,
}

impl RollupReport {
    pub fn to_text(&self) -> String {
        format!(
            "{}rollup via {:?}: {} samples sent at {:.0}/s; counted {} after {:.2}s: {:.0} samples/s end to end\n",
            self.send.to_text(),
            self.via,
            self.samples,
            self.samples_per_sec_sent,
            self.counted,
            self.end_to_end_secs,
            self.end_to_end_samples_per_sec
        )
    }
}

/// The sum of the "count" fields of every rollup under `prefix`.
async fn counted(kv: &mut KvClient<Channel>, prefix: &str) -> anyhow::Result<u64> {
    let resp = kv
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_range_end(prefix.as_bytes()),
            ..Default::default()
        })
        .await
        .context("read the rollups")?
        .into_inner();
    let mut sum = 0;
    for kv in resp.kvs {
        let value: serde_json::Value = serde_json::from_slice(&kv.value)
            .with_context(|| format!("a rollup that is not JSON: {:?}", kv.key))?;
        sum += value["count"].as_u64().context(
            "rollups without a count: deploy rollup with \"count\" among its aggregations",
        )?;
    }
    Ok(sum)
}

pub async fn run(args: &RollupArgs) -> anyhow::Result<RollupReport> {
    let load = &args.load;
    let bounds = load.bounds()?;
    if load.rate != 0.0 {
        bail!("rollup sends as fast as answers come: --rate is not supported");
    }
    if args.batch == 0 || args.series == 0 {
        bail!("--batch and --series must be at least 1");
    }
    let per_request = match args.via {
        Via::Ingest => args.batch as u64,
        Via::Put => 1,
    };
    let urls = endpoint_urls(&load.endpoints)?;
    let mut channels = Vec::with_capacity(load.conns);
    for url in urls.iter().cycle().take(load.conns) {
        channels.push(pool::connect(url, Some(load.timeout)).await?);
    }
    let mut reader = KvClient::new(channels[0].clone()).max_decoding_message_size(usize::MAX);
    let before = counted(&mut reader, &args.target_prefix).await?;
    let names: Arc<Vec<String>> = Arc::new(
        (0..args.series)
            .map(|n| format!("{}s{n}", args.source_prefix))
            .collect(),
    );

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = bounds.duration.and_then(|d| started.checked_add(d));
    let mut tasks = Vec::with_capacity(load.clients);
    for c in 0..load.clients {
        let channel = channels[c % channels.len()].clone();
        let (next, names) = (next.clone(), names.clone());
        let (total, via, batch) = (bounds.total, args.via, args.batch);
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(KINDS);
            let mut ingest =
                IngestClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
            let mut kv = KvClient::new(channel);
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total || deadline.is_some_and(|d| Instant::now() >= d) {
                    return rec;
                }
                let sent = Instant::now();
                let result = match via {
                    Via::Ingest => {
                        let samples = (0..batch)
                            .map(|i| IngestSample {
                                series: names[(seq as usize * batch + i) % names.len()].clone(),
                                value: 1.0,
                                time_ms: 0,
                            })
                            .collect();
                        ingest.push(IngestRequest { samples }).await.map(|_| ())
                    }
                    Via::Put => kv
                        .put(PutRequest {
                            key: names[seq as usize % names.len()].clone().into_bytes(),
                            value: b"1".to_vec(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                };
                match result {
                    Ok(()) => rec.ok(0, sent.elapsed()),
                    Err(e) => rec.error(0, e.message()),
                }
            }
        }));
    }
    let mut all = Recorder::new(KINDS);
    for task in tasks {
        all.merge(task.await.context("a sending client")?);
    }
    let sent_elapsed = started.elapsed();
    let send = Report::new(
        RunInfo {
            workload: "rollup-send",
            endpoints: &urls,
            clients: load.clients,
            conns: load.conns,
            elapsed: sent_elapsed,
        },
        &all,
    );
    let samples = send.ok * per_request;
    let settle_until = Instant::now() + args.settle;
    let counted = loop {
        let now_counted = counted(&mut reader, &args.target_prefix)
            .await?
            .saturating_sub(before);
        if now_counted >= samples || Instant::now() >= settle_until {
            break now_counted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let end_to_end = started.elapsed();
    Ok(RollupReport {
        via: args.via,
        samples_per_sec_sent: samples as f64 / sent_elapsed.as_secs_f64(),
        samples,
        counted,
        end_to_end_secs: end_to_end.as_secs_f64(),
        end_to_end_samples_per_sec: counted as f64 / end_to_end.as_secs_f64(),
        send,
    })
}
