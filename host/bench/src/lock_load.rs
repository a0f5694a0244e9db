//! `lock`: clients contend for one lock through etcd's v3lock service: each acquires it
//! (Lock, under a lease of its own) and releases it (Unlock) again and again. A cycle is one
//! acquire plus release; with one lock, cycles are hand-overs, one at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, lease_client::LeaseClient,
};
use conclave_proto::v3lockpb::{LockRequest, UnlockRequest, lock_client::LockClient};

use crate::args::LockArgs;
use crate::pool::{self, endpoint_urls};
use crate::stats::{Recorder, Report, RunInfo};

const KINDS: &[&str] = &["lock-cycle"];
/// Long enough that no lease expires during a run.
const LEASE_TTL: i64 = 600;

pub async fn run(args: &LockArgs) -> anyhow::Result<Report> {
    let load = &args.load;
    let bounds = load.bounds()?;
    if load.rate != 0.0 {
        bail!("lock cycles as fast as hand-overs allow: --rate is not supported");
    }
    let urls = endpoint_urls(&load.endpoints)?;
    let mut channels = Vec::with_capacity(load.conns);
    for url in urls.iter().cycle().take(load.conns) {
        // No per-request timeout on the channel: waiting for the lock is the point.
        channels.push(pool::connect(url, None).await?);
    }
    let mut leases = Vec::with_capacity(load.clients);
    for c in 0..load.clients {
        let channel = channels[c % channels.len()].clone();
        let id = LeaseClient::new(channel.clone())
            .lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL,
                id: 0,
            })
            .await
            .context("grant a lease")?
            .into_inner()
            .id;
        leases.push((channel, id));
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let deadline = bounds.duration.and_then(|d| started.checked_add(d));
    let mut tasks = Vec::with_capacity(load.clients);
    for (channel, lease) in leases.iter().cloned() {
        let next = next.clone();
        let (total, timeout, name) = (bounds.total, load.timeout, args.name.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(KINDS);
            let mut locks = LockClient::new(channel);
            while next.fetch_add(1, Ordering::Relaxed) < total
                && deadline.is_none_or(|d| tokio::time::Instant::now() < d)
            {
                let began = tokio::time::Instant::now();
                let cycle = async {
                    let key = locks
                        .lock(LockRequest {
                            name: name.clone().into_bytes(),
                            lease,
                        })
                        .await?
                        .into_inner()
                        .key;
                    locks.unlock(UnlockRequest { key }).await?;
                    Ok::<_, tonic::Status>(())
                };
                match tokio::time::timeout(timeout, cycle).await {
                    Ok(Ok(())) => rec.ok(0, began.elapsed()),
                    Ok(Err(status)) => rec.error(0, status.message()),
                    Err(_) => rec.error(0, "no lock within the timeout"),
                }
            }
            rec
        }));
    }
    let mut all = Recorder::new(KINDS);
    for task in tasks {
        all.merge(task.await.context("a lock client")?);
    }
    let elapsed = started.elapsed();
    for (channel, id) in leases {
        let _ = LeaseClient::new(channel)
            .lease_revoke(LeaseRevokeRequest { id })
            .await;
    }
    Ok(Report::new(
        RunInfo {
            workload: "lock",
            endpoints: &urls,
            clients: load.clients,
            conns: load.conns,
            elapsed,
        },
        &all,
    ))
}
