//! `defrag`: put latency while a member defragments. etcd's defragment rewrites its bbolt file
//! and holds writes for the whole run (etcd #9222); conclave's major-compacts its LSM beside
//! the live tables. Both run the same steps: garbage written, deleted and compacted, then puts
//! for --duration with one Defragment call a third of the way in, timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, DeleteRangeRequest};
use serde::{Deserialize, Serialize};

use crate::args::DefragArgs;
use crate::keys::KeySpace;
use crate::pool::{self, Pool};
use crate::runner::{self, Plan};
use crate::stats::{Report, RunInfo};
use crate::workload::put::Put;

#[derive(Debug, Serialize, Deserialize)]
pub struct DefragReport {
    /// The puts that ran meanwhile (before, during and after the defragment).
    pub puts: Report,
    /// How long the Defragment call took.
    pub defrag_ms: f64,
    /// Garbage keys written, deleted and compacted before the run.
    pub garbage_keys: u64,
}

impl DefragReport {
    pub fn to_text(&self) -> String {
        format!(
            "defragment took {:.1} ms (after {} keys of garbage)\nputs meanwhile:\n{}",
            self.defrag_ms,
            self.garbage_keys,
            self.puts.to_text()
        )
    }
}

const GARBAGE_PREFIX: &str = "defrag-garbage/";

pub async fn run(a: &DefragArgs, json: bool) -> anyhow::Result<DefragReport> {
    let bounds = a.load.bounds()?;
    let Some(duration) = bounds.duration else {
        bail!("defrag needs --duration: the defragment starts a third of the way in");
    };
    let pool = Pool::connect(&a.load.endpoints, a.load.conns, a.load.timeout).await?;
    let urls = pool::endpoint_urls(&a.load.endpoints)?;

    let mut garbage = a.keys.clone();
    garbage.key_prefix = GARBAGE_PREFIX.into();
    garbage.key_size = garbage.key_size.max(GARBAGE_PREFIX.len() + 8);
    if a.garbage > 0 {
        crate::fill(&pool, &urls, &a.load, &garbage, a.garbage, json).await?;
        let mut kv = pool.kv(0);
        let prefix = GARBAGE_PREFIX.as_bytes().to_vec();
        let deleted = kv
            .delete_range(DeleteRangeRequest {
                range_end: conclave_proto::prefix_range_end(&prefix),
                key: prefix,
                ..Default::default()
            })
            .await
            .context("deleting the garbage")?
            .into_inner();
        let revision = deleted.header.map_or(0, |h| h.revision);
        kv.compact(CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .context("compacting the garbage away")?;
    }

    let channel = pool::connect(&urls[0], Some(Duration::from_secs(600))).await?;
    let defrag = tokio::spawn(async move {
        tokio::time::sleep(duration / 3).await;
        let started = Instant::now();
        pool::maintenance(channel)
            .defragment(DefragmentRequest {})
            .await
            .map(|_| started.elapsed())
    });
    let plan = Plan {
        label: "puts while defragmenting",
        bounds,
        rate: a.load.rate,
        clients: a.load.clients,
        progress: !json,
    };
    let put = Put::new(KeySpace::new(&a.keys)?, a.keys.val_size);
    let outcome = runner::run(&pool, Arc::new(put), &plan).await?;
    let took = defrag
        .await
        .context("the defragment task")?
        .context("defragment")?;
    let puts = Report::new(
        RunInfo {
            workload: "put",
            endpoints: &urls,
            clients: a.load.clients,
            conns: a.load.conns,
            elapsed: outcome.elapsed,
        },
        &outcome.recorder,
    );
    Ok(DefragReport {
        puts,
        defrag_ms: took.as_secs_f64() * 1000.0,
        garbage_keys: a.garbage,
    })
}
