//! etcd's `--force-new-cluster`: disaster recovery after quorum is lost for good. This member
//! becomes the only voter of its cluster, keeping its data, and the other members are dropped
//! from the configuration.
//!
//! etcd does it by appending configuration changes to its own log outside consensus. Here it
//! is one membership entry naming this member alone, appended after the last entry of the
//! log before Raft starts. openraft takes a member's configuration from the last membership
//! entry in its log, committed or not, so the restarted member sees itself as a cluster of
//! one. It elects itself and commits everything its log holds. That includes entries no
//! quorum had acknowledged, which a new leader would commit the same way, so no write
//! acknowledged to a client is lost. The entry carries the last entry's leader ID, as if that
//! leader had appended it, so the log stays ordered by leader.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use openraft::LogIdOptionExt;
use openraft::entry::EntryPayload;
use openraft::storage::{IOFlushed, RaftLogStorage};

use crate::log_store::LogStore;
use crate::types::{Entry, LogId, Member, Membership};

/// Appends to `log` a configuration with member `id` (described by `me`) as the only voter,
/// durably. Answers the entry's log ID, or None for a log with nothing in it (a member that
/// never joined a cluster has nothing to recover: it starts as its flags say).
pub async fn force_sole_member(
    log: &mut LogStore,
    id: u64,
    me: Member,
) -> io::Result<Option<LogId>> {
    let state = log.get_log_state().await?;
    let Some(last) = state.last_log_id else {
        return Ok(None);
    };
    let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, me)]))
        .map_err(io::Error::other)?;
    let log_id = LogId {
        leader_id: last.leader_id,
        index: state.last_log_id.next_index(),
    };
    let entry = Entry {
        log_id,
        payload: EntryPayload::Membership(membership),
    };
    log.append([entry], IOFlushed::noop()).await?;
    log.flush().await?;
    Ok(Some(log_id))
}
