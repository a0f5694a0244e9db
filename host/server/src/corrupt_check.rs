//! The leader's periodic corruption check (etcd's --experimental-corrupt-check-time): it asks
//! every other member for its HashKV at the leader's revision and raises a CORRUPT alarm for a
//! member whose hash differs at the same compaction point. Members that applied the same log
//! hold the same records, so a difference is damage (a disk, a bug), and the cluster stops
//! serving rather than spread it.

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::conclavepb::member_request::Call;
use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, HashKvResponse, alarm_request::AlarmAction,
};
use conclave_raft::Member;
use openraft::async_runtime::WatchReceiver;
use tonic::Status;
use tracing::{debug, error, info};

use crate::leader_ticks::LeaderTicks;
use crate::node::Node;

/// How long a member gets to hash its store.
const HASH_TIMEOUT: Duration = Duration::from_secs(30);

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
pub async fn check(node: &Arc<Node>) -> Result<(), Status> {
    let mine = node.blocking(|s| s.hash_kv(0)).await?;
    let others: Vec<(u64, Member)> = {
        let metrics = node.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, n)| **id != node.identity.member_id && !n.peer_urls.is_empty())
            .map(|(id, n)| (*id, n.clone()))
            .collect()
    };
    for (id, member) in others {
        let call = Call::HashKv(HashKvRequest {
            revision: mine.hash_revision,
        });
        let theirs: HashKvResponse = match node.ask(&member, call, HASH_TIMEOUT).await {
            Ok(Ok(r)) => r,
            // Behind (a future revision to it), compacted further, or down: next round.
            Ok(Err(e)) => {
                debug!(member = %member.name, error = %e, "no hash from a member this round");
                continue;
            }
            Err(e) => {
                debug!(member = %member.name, error = %e, "no hash from a member this round");
                continue;
            }
        };
        if theirs.compact_revision != mine.compact_revision || theirs.hash == mine.hash {
            continue;
        }
        error!(
            member = %member.name,
            revision = mine.hash_revision,
            leader_hash = mine.hash,
            member_hash = theirs.hash,
            "a member's data differs from the leader's; raising a CORRUPT alarm"
        );
        node.propose(Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: id,
            alarm: AlarmType::Corrupt as i32,
        }))
        .await?;
    }
    Ok(())
}
