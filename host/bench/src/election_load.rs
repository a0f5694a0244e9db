//! `election-failover`: how long an election takes to move on when its leader dies. Each
//! round a leader campaigns under a lease it keeps alive, a candidate campaigns behind it,
//! then the leader stops keeping its lease alive (as a killed process would): the time is
//! from that moment to the candidate's campaign returning. It is bounded below by the TTL.

use std::time::Duration;

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, lease_client::LeaseClient,
};
use conclave_proto::v3electionpb::{CampaignRequest, election_client::ElectionClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::args::ElectionFailoverArgs;
use crate::pool::{self, endpoint_urls};
use crate::stats::{Recorder, Report, RunInfo};

const KINDS: &[&str] = &["failover"];

/// A lease kept alive by a task until the task is aborted.
async fn kept_lease(
    channel: Channel,
    ttl: i64,
) -> anyhow::Result<(i64, tokio::task::JoinHandle<()>)> {
    let mut leases = LeaseClient::new(channel);
    let id = leases
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .context("grant a lease")?
        .into_inner()
        .id;
    let every = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
    let task = tokio::spawn(async move {
        let (tx, rx) = mpsc::channel(1);
        // Before the call: an etcd server answers the call's headers with its first response.
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return;
        }
        let Ok(resp) = leases.lease_keep_alive(ReceiverStream::new(rx)).await else {
            return;
        };
        let mut answers = resp.into_inner();
        while let Ok(Some(_)) = answers.message().await {
            tokio::time::sleep(every).await;
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return;
            }
        }
    });
    Ok((id, task))
}

pub async fn run(args: &ElectionFailoverArgs) -> anyhow::Result<Report> {
    if args.rounds == 0 || args.ttl < 1 {
        bail!("--rounds must be at least 1 and --ttl at least 1 s");
    }
    let urls = endpoint_urls(&args.endpoints)?;
    let leader_channel = pool::connect(&urls[0], None).await?;
    let candidate_channel = pool::connect(&urls[urls.len() - 1], None).await?;
    let mut rec = Recorder::new(KINDS);
    let started = tokio::time::Instant::now();
    for round in 0..args.rounds {
        let name = format!("bench-election-{round}-{}", std::process::id()).into_bytes();
        let (leader_lease, keeper) = kept_lease(leader_channel.clone(), args.ttl).await?;
        ElectionClient::new(leader_channel.clone())
            .campaign(CampaignRequest {
                name: name.clone(),
                lease: leader_lease,
                value: b"leader".to_vec(),
            })
            .await
            .context("the leader's campaign")?;
        let (candidate_lease, candidate_keeper) =
            kept_lease(candidate_channel.clone(), args.ttl).await?;
        let mut elections = ElectionClient::new(candidate_channel.clone());
        let campaign = tokio::spawn(async move {
            elections
                .campaign(CampaignRequest {
                    name,
                    lease: candidate_lease,
                    value: b"candidate".to_vec(),
                })
                .await
        });
        // Let the candidate get in line, then the leader "dies".
        tokio::time::sleep(Duration::from_millis(300)).await;
        let died = tokio::time::Instant::now();
        keeper.abort();
        let limit = Duration::from_secs(args.ttl as u64 * 10 + 10);
        match tokio::time::timeout(limit, campaign).await {
            Ok(Ok(Ok(_))) => rec.ok(0, died.elapsed()),
            Ok(Ok(Err(status))) => rec.error(0, status.message()),
            Ok(Err(e)) => rec.error(0, &e.to_string()),
            Err(_) => rec.error(0, "the candidate was never elected"),
        }
        candidate_keeper.abort();
        let mut leases = LeaseClient::new(candidate_channel.clone());
        let _ = leases
            .lease_revoke(LeaseRevokeRequest {
                id: candidate_lease,
            })
            .await;
    }
    Ok(Report::new(
        RunInfo {
            workload: "election-failover",
            endpoints: &urls,
            clients: 2,
            conns: 2,
            elapsed: started.elapsed(),
        },
        &rec,
    ))
}
