//! `status`: Maintenance.Status of each endpoint (server version, db size, revision); with
//! --wait it retries until every endpoint answers, so scripts can wait for a server to be up.

use std::time::Duration;

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::StatusRequest;
use serde::Serialize;
use tokio::time::Instant;

use crate::pool::{self, endpoint_urls};

#[derive(Debug, Serialize)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub version: String,
    pub db_size: i64,
    pub leader: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

pub async fn statuses(endpoints: &[String], wait: Duration) -> anyhow::Result<Vec<EndpointStatus>> {
    let urls = endpoint_urls(endpoints)?;
    // A wait too long to add to the clock is a wait without end, as asked.
    let deadline = Instant::now().checked_add(wait);
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        loop {
            match status(&url).await {
                Ok(s) => {
                    out.push(s);
                    break;
                }
                Err(e) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    if wait.is_zero() {
                        return Err(e);
                    }
                    return Err(e).context(format!("{url} did not answer within {wait:?}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(out)
}

async fn status(url: &str) -> anyhow::Result<EndpointStatus> {
    let channel = pool::connect(url, Some(Duration::from_secs(5))).await?;
    let response = pool::maintenance(channel)
        .status(StatusRequest {})
        .await
        .with_context(|| format!("{url}: status"))?
        .into_inner();
    let header = response.header.unwrap_or_default();
    if !response.errors.is_empty() {
        bail!(
            "{url}: server reports errors: {}",
            response.errors.join("; ")
        );
    }
    Ok(EndpointStatus {
        endpoint: url.to_string(),
        version: response.version,
        db_size: response.db_size,
        leader: response.leader,
        member_id: header.member_id,
        revision: header.revision,
        raft_term: header.raft_term,
    })
}

pub fn to_text(statuses: &[EndpointStatus]) -> String {
    statuses
        .iter()
        .map(|s| {
            format!(
                "{}: version {}, db size {}, revision {}, member {:x}, leader {:x}, raft term {}\n",
                s.endpoint,
                s.version,
                crate::procstat::human(u64::try_from(s.db_size).unwrap_or(0)),
                s.revision,
                s.member_id,
                s.leader,
                s.raft_term
            )
        })
        .collect()
}
