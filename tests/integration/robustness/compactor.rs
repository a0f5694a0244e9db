//! Kubernetes' compactor, as kube-apiserver runs it against etcd: every few seconds a txn on
//! the key `compact_rev_key` (if its version is the one this compactor last saw, put the
//! revision to compact at, so that of several apiservers only one compacts each time; else
//! read it and learn its version), then, if the txn succeeded, Compact at that revision.
//! Here the revision is the newest every watcher has seen: a watcher resuming below a
//! compaction would lose events for good (etcd's watchers must then relist, ours judge).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::time::Instant;

use super::watches::Goal;

/// Kubernetes' key, outside the workload's prefix.
const KEY: &str = "compact_rev_key";
/// kube-apiserver's default is 5 minutes; a run is 24 s.
const EVERY: Duration = Duration::from_secs(4);
/// One request's bound: a member may be down.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Compacts as Kubernetes does every [`EVERY`] until `until`, below what every watcher of
/// `goal` has seen. How many compactions it made.
pub async fn run(mut client: Client, goal: Arc<Goal>, until: Instant) -> usize {
    let mut version = 0;
    let mut compacted = 0;
    let mut made = 0;
    loop {
        tokio::time::sleep(EVERY).await;
        if Instant::now() >= until {
            return made;
        }
        let revision = goal.compactable();
        if revision <= compacted {
            continue;
        }
        let txn = Txn::new()
            .when([Compare::version(KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(KEY, revision.to_string(), None)])
            .or_else([TxnOp::get(KEY, None)]);
        let Ok(Ok(answer)) = tokio::time::timeout(TIMEOUT, client.txn(txn)).await else {
            continue;
        };
        if !answer.succeeded() {
            // Another compactor's turn (or our own put whose answer was lost): its version.
            version = answer
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    etcd_client::TxnOpResponse::Get(get) => Some(get.kvs().first()?.version()),
                    _ => None,
                })
                .unwrap_or(0);
            continue;
        }
        version += 1;
        if let Ok(Ok(())) = tokio::time::timeout(TIMEOUT, compact(&mut client, revision)).await {
            compacted = revision;
            made += 1;
        }
    }
}

/// Compacts history at `revision`, one every watcher has seen (so never a future one); done
/// also if it was compacted there or later already (etcd's OutOfRange, "required revision has
/// been compacted").
pub async fn compact(client: &mut Client, revision: i64) -> Result<(), etcd_client::Error> {
    match client.compact(revision, None).await {
        Ok(_) => Ok(()),
        Err(etcd_client::Error::GRpcStatus(status)) if status.code() == tonic::Code::OutOfRange => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
