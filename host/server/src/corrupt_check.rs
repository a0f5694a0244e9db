//! Corruption checks. The leader's periodic one (etcd's --experimental-corrupt-check-time)
//! asks every other member for its HashKV at the leader's revision and raises a CORRUPT alarm
//! for a member whose hash differs at the same compaction point. The initial one (etcd's
//! --experimental-initial-corrupt-check) compares a starting member with its peers before it
//! serves clients, and stops it if it differs. Members that applied the same log hold the
//! same records, so a difference is damage (a disk, a bug), and the cluster stops serving
//! rather than spread it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::conclavepb::member_request::Call;
use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, HashKvResponse, alarm_request::AlarmAction,
};
use conclave_raft::Member;
use conclave_store::KvHash;
use tracing::{debug, error, info};

use crate::leader_ticks::LeaderTicks;
use crate::node::Node;

/// How long a member gets to hash its store.
const HASH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer gets at start-up, as etcd's initial check gives its peers a request
/// timeout: a peer that is down must not hold the member back for long.
const INITIAL_HASH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs for the member's life, checking every `every` while it leads.
pub async fn run(node: Arc<Node>, every: Duration) {
    info!(every = ?every, "periodic corruption check on");
    let mut ticks = LeaderTicks::new(node.clone(), every);
    loop {
        ticks.next().await;
        if let Err(e) = check(&node).await {
            debug!(error = %e, "corruption check incomplete; will retry");
        }
    }
}

/// One round: compares every other member's HashKV with this member's.
pub async fn check(node: &Arc<Node>) -> anyhow::Result<()> {
    let mine = node.blocking(|s| s.hash_kv(0)).await?;
    for (id, member, theirs) in differing(node, &mine, HASH_TIMEOUT).await {
        error!(
            member = %member.name,
            revision = mine.hash_revision,
            leader_hash = mine.hash,
            member_hash = theirs.hash,
            "a member's data differs from the leader's; raising a CORRUPT alarm"
        );
        node.router
            .propose(Request::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: id,
                alarm: AlarmType::Corrupt as i32,
            }))
            .await?;
    }
    Ok(())
}

/// etcd's --experimental-initial-corrupt-check: this member's HashKV against every peer's at
/// this member's revision, before it serves clients. A peer that differs at the same
/// compaction point stops the start; one that cannot answer (down, behind, compacted
/// further) is skipped, as etcd skips it.
pub async fn initial_check(node: &Arc<Node>) -> anyhow::Result<()> {
    let mine = node
        .blocking(|s| s.hash_kv(0))
        .await
        .context("hashing the store")?;
    if let Some((id, member, theirs)) = differing(node, &mine, INITIAL_HASH_TIMEOUT)
        .await
        .into_iter()
        .next()
    {
        anyhow::bail!(
            "found data inconsistency with peers: at revision {} this member's hash is {}, \
             member {} ({id:x}) has {}",
            mine.hash_revision,
            mine.hash,
            member.name,
            theirs.hash
        );
    }
    info!(
        revision = mine.hash_revision,
        "initial corruption check passed"
    );
    Ok(())
}

/// The other members whose HashKV at `mine`'s revision differs from `mine` at the same
/// compaction point. Members that give no hash within `timeout` are left out.
async fn differing(
    node: &Arc<Node>,
    mine: &KvHash,
    timeout: Duration,
) -> Vec<(u64, Member, HashKvResponse)> {
    let mut differ = Vec::new();
    for (id, member) in node.cluster.others() {
        let call = Call::HashKv(HashKvRequest {
            revision: mine.hash_revision,
        });
        let theirs: HashKvResponse = match node.cluster.ask(&member, call, timeout).await {
            Ok(Ok(r)) => r,
            // Behind (a future revision to it), compacted further, or down.
            Ok(Err(e)) => {
                debug!(member = %member.name, error = %e, "no hash from a member");
                continue;
            }
            Err(e) => {
                debug!(member = %member.name, error = %e, "no hash from a member");
                continue;
            }
        };
        if theirs.compact_revision == mine.compact_revision && theirs.hash != mine.hash {
            differ.push((id, member, theirs));
        }
    }
    differ
}
