//! `lease-keepalive`: each client grants a lease of its own, then sends keep-alives on its
//! own stream, one at a time, until --total have been sent over all clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, lease_client::LeaseClient,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::args::LeaseKeepaliveArgs;
use crate::pool::{self, endpoint_urls};
use crate::stats::{Recorder, Report, RunInfo};

const KINDS: &[&str] = &["keepalive"];
/// Long enough that no lease expires during a run.
const LEASE_TTL: i64 = 600;

pub async fn run(args: &LeaseKeepaliveArgs) -> anyhow::Result<Report> {
    let args = &args.load;
    let bounds = args.bounds()?;
    if args.rate != 0.0 {
        bail!("lease-keepalive sends as fast as answers come: --rate is not supported");
    }
    let urls = endpoint_urls(&args.endpoints)?;
    let mut channels = Vec::with_capacity(args.conns);
    for url in urls.iter().cycle().take(args.conns) {
        channels.push(pool::connect(url, None).await?);
    }
    let mut leases = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let mut client = LeaseClient::new(channels[c % channels.len()].clone());
        let granted = client
            .lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL,
                id: 0,
            })
            .await
            .context("grant a lease")?
            .into_inner();
        leases.push((client, granted.id));
    }

    let next = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let deadline = bounds.duration.and_then(|d| started.checked_add(d));
    let mut tasks = Vec::with_capacity(args.clients);
    for (client, id) in leases.iter().cloned() {
        let next = next.clone();
        let total = bounds.total;
        let timeout = args.timeout;
        let mut client = client;
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(KINDS);
            let more = || {
                next.fetch_add(1, Ordering::Relaxed) < total
                    && deadline.is_none_or(|d| tokio::time::Instant::now() < d)
            };
            if !more() {
                return rec;
            }
            // The first keep-alive goes in before the call: etcd answers the call's headers
            // with its first response, so waiting for them first would wait forever.
            let (tx, rx) = mpsc::channel(1);
            let mut sent = tokio::time::Instant::now();
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return rec;
            }
            let mut responses = match client.lease_keep_alive(ReceiverStream::new(rx)).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    rec.error(0, &format!("open the stream: {}", e.message()));
                    return rec;
                }
            };
            loop {
                match tokio::time::timeout(timeout, responses.next()).await {
                    Ok(Some(Ok(resp))) if resp.ttl > 0 => rec.ok(0, sent.elapsed()),
                    Ok(Some(Ok(_))) => rec.error(0, "the lease is gone (TTL 0)"),
                    Ok(Some(Err(e))) => {
                        rec.error(0, e.message());
                        return rec;
                    }
                    Ok(None) => {
                        rec.error(0, "the stream ended");
                        return rec;
                    }
                    Err(_) => {
                        rec.error(0, "no answer in time");
                        return rec;
                    }
                }
                if !more() {
                    return rec;
                }
                sent = tokio::time::Instant::now();
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    rec.error(0, "the stream closed");
                    return rec;
                }
            }
        }));
    }
    let mut all = Recorder::new(KINDS);
    for task in tasks {
        all.merge(task.await.context("a keep-alive client")?);
    }
    let elapsed = started.elapsed();
    for (mut client, id) in leases {
        let _ = client.lease_revoke(LeaseRevokeRequest { id }).await;
    }
    Ok(Report::new(
        RunInfo {
            workload: "lease-keepalive",
            endpoints: &urls,
            clients: args.clients,
            conns: args.conns,
            elapsed,
        },
        &all,
    ))
}
