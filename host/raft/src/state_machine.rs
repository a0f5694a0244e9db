//! The Raft state machine: committed entries go to the store's apply interface, in order, in
//! one batch per call, with openraft's applied log id and membership written in the same atomic
//! batch (the store's "raft state"). Snapshots are the durable store itself (see `snapshot`).

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::command::Request;
use conclave_store::{Applied, Durability, Entry as StoreEntry, Response, Store};
use futures::{Stream, TryStreamExt};
use openraft::EntryPayload;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use tracing::{info, warn};

use crate::codec::{self, RaftState};
use crate::snapshot::{Outgoing, SnapshotSource, decode_state, io_err};
use crate::types::{LogId, StoredMembership, TypeConfig};

pub use crate::codec::SnapshotMeta;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotSource>;

/// Told about every applied batch, after it is applied: the watch hub, leases and plugins
/// hang off this.
pub trait ApplyListener: Send + Sync + 'static {
    fn applied(&self, outcomes: &[Applied]);

    /// The store was replaced by a snapshot from the leader, now at `revision`: the changes
    /// since the last applied batch were never announced.
    fn installed(&self, revision: i64) {
        let _ = revision;
    }
}

/// The Raft instance a member runs: conclave's type configuration over this state machine.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

pub struct StateMachine {
    store: Arc<Store>,
    outgoing: Arc<Outgoing>,
    applied: Option<LogId>,
    membership: StoredMembership,
    listener: Option<Arc<dyn ApplyListener>>,
    /// An apply slower than this is logged (etcd's --experimental-warning-apply-duration).
    slow_apply: Duration,
}

/// etcd's default for --experimental-warning-apply-duration.
const DEFAULT_SLOW_APPLY: Duration = Duration::from_millis(100);

/// Batches of puts and lease grants (one key each, bounded work) are applied on the async
/// worker itself while they stay under these bounds: sending them to a blocking thread and
/// back cost two thread switches and an eventfd wake-up per batch, more than the write (a
/// memtable insert and a buffered journal append per put, a few microseconds). The bounds keep
/// the worker's stall to about a millisecond. Anything that may touch many keys (deletes,
/// txns, revokes, compactions) goes to a blocking thread.
const INLINE_APPLY_MAX_ENTRIES: usize = 256;
const INLINE_APPLY_MAX_BYTES: usize = 1 << 20;

fn apply_inline(entries: &[StoreEntry]) -> bool {
    let mut bytes = 0;
    entries.len() <= INLINE_APPLY_MAX_ENTRIES
        && entries.iter().all(
            |e| match e.command.as_ref().and_then(|c| c.request.as_ref()) {
                None | Some(Request::LeaseGrant(_)) => true,
                Some(Request::Put(put)) => {
                    bytes += put.key.len() + put.value.len();
                    bytes <= INLINE_APPLY_MAX_BYTES
                }
                Some(_) => false,
            },
        )
}

/// What a batch applied, for a slow-apply warning: each request kind with its count.
fn request_kinds(entries: &[StoreEntry]) -> String {
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for e in entries {
        let kind = match e.command.as_ref().and_then(|c| c.request.as_ref()) {
            None => "raft",
            Some(Request::Put(_)) => "put",
            Some(Request::DeleteRange(_)) => "delete_range",
            Some(Request::Txn(_)) => "txn",
            Some(Request::Compaction(_)) => "compaction",
            Some(Request::LeaseGrant(_)) => "lease_grant",
            Some(Request::LeaseRevoke(_)) => "lease_revoke",
            Some(Request::LeaseCheckpoint(_)) => "lease_checkpoint",
            Some(Request::Alarm(_)) => "alarm",
            Some(Request::Auth(_)) => "auth",
            Some(_) => "plugin",
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(kind, n)| format!("{kind}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, std::io::Error> + Send + 'static,
) -> Result<T, std::io::Error> {
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}

impl StateMachine {
    /// Opens the state machine over `store`, writing snapshots for followers in `snapshots`.
    pub fn new(
        store: Arc<Store>,
        snapshots: &Path,
        listener: Option<Arc<dyn ApplyListener>>,
    ) -> Result<Self, std::io::Error> {
        let state = decode_state(store.raft_state().map_err(io_err)?.as_deref())?;
        Ok(Self {
            outgoing: Arc::new(Outgoing::new(store.clone(), snapshots)?),
            store,
            applied: state.applied,
            membership: state.membership,
            listener,
            slow_apply: DEFAULT_SLOW_APPLY,
        })
    }

    /// Logs a warning for every apply slower than `after`.
    pub fn warn_slow_applies(mut self, after: Duration) -> Self {
        self.slow_apply = after;
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotSource;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), std::io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), std::io::Error>
    where
        Strm: Stream<Item = Result<openraft::storage::EntryResponder<TypeConfig>, std::io::Error>>
            + Unpin
            + Send,
    {
        let batch: Vec<_> = entries.try_collect().await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut store_entries = Vec::with_capacity(batch.len());
        for (entry, _) in &batch {
            let log_id = entry.log_id;
            let command = match &entry.payload {
                EntryPayload::Normal(command) => Some(command.clone()),
                EntryPayload::Blank => None,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m.clone());
                    None
                }
            };
            self.applied = Some(log_id);
            store_entries.push(StoreEntry {
                index: log_id.index,
                term: log_id.leader_id.term,
                command,
            });
        }
        let state = codec::encode(&RaftState {
            applied: self.applied,
            membership: self.membership.clone(),
        });
        let started = std::time::Instant::now();
        let (outcomes, store_entries) = if apply_inline(&store_entries) {
            let outcomes = self
                .store
                .apply_with_state(&store_entries, Some(&state), Durability::Buffered)
                .map_err(io_err)?;
            (outcomes, store_entries)
        } else {
            let store = self.store.clone();
            // The entries come back, for the slow-apply warning.
            blocking(move || {
                let outcomes = store
                    .apply_with_state(&store_entries, Some(&state), Durability::Buffered)
                    .map_err(io_err)?;
                Ok((outcomes, store_entries))
            })
            .await?
        };
        let took = started.elapsed();
        if took > self.slow_apply {
            warn!(
                took = ?took,
                expected_duration = ?self.slow_apply,
                entries = store_entries.len(),
                first_index = store_entries.first().map_or(0, |e| e.index),
                requests = %request_kinds(&store_entries),
                "apply request took too long"
            );
        }
        if let Some(listener) = &self.listener {
            listener.applied(&outcomes);
        }
        // The store answers per index; entries it had applied before (a replay) get no answer
        // from it, but nobody waits on those.
        let mut outcomes = outcomes.into_iter().peekable();
        for (entry, responder) in batch {
            let index = entry.log_id.index;
            while outcomes.peek().is_some_and(|o| o.index < index) {
                outcomes.next();
            }
            let outcome = match outcomes.peek() {
                Some(o) if o.index == index => outcomes.next(),
                _ => None,
            };
            if let Some(responder) = responder {
                responder.send(outcome.unwrap_or(Applied {
                    index,
                    revision: self.store.current_revision(),
                    result: Ok(Response::Empty),
                    events: Vec::new(),
                    leases: Vec::new(),
                }));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            outgoing: self.outgoing.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotSource,
    ) -> Result<(), std::io::Error> {
        if snapshot.is_store(&self.store) {
            // openraft installs get_current_snapshot's snapshot at start-up when it is ahead
            // of the applied position; ours never is, and this store already holds it.
            return Ok(());
        }
        let file = snapshot.open(meta.last_log_id).await?;
        let store = self.store.clone();
        let installed = blocking(move || {
            store
                .install_snapshot(&mut BufReader::new(file))
                .map_err(io_err)
        })
        .await?;
        // Installed, the store holds it: a download is no longer needed.
        if let Some(path) = snapshot.received_path()
            && let Err(e) = std::fs::remove_file(path)
        {
            warn!(path = %path.display(), error = %e, "cannot remove an installed snapshot");
        }
        if let Some(listener) = &self.listener {
            listener.installed(installed.revision);
        }
        // The data may be ahead of `meta` (see the snapshot module): openraft replays the log
        // from `meta`, and the store skips what it already holds.
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        info!(
            revision = installed.revision,
            records = installed.records,
            "installed a snapshot from the leader at log index {}",
            log_index(meta)
        );
        Ok(())
    }

    /// The applied position, with the store's current state as its data (written out only
    /// when the transport sends it).
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, std::io::Error> {
        if self.applied.is_none() {
            return Ok(None);
        }
        Ok(Some(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            snapshot: SnapshotSource::local(self.outgoing.clone()),
        }))
    }
}

/// "Builds" a snapshot by making the store durable up to its applied position.
pub struct SnapshotBuilder {
    store: Arc<Store>,
    outgoing: Arc<Outgoing>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotSource;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let store = self.store.clone();
        let meta = blocking(move || {
            // The position first, then the fsync: what is durable afterwards covers it, so
            // openraft may purge the log up to it. Apply may move on meanwhile.
            let state = decode_state(store.raft_state().map_err(io_err)?.as_deref())?;
            store.persist().map_err(io_err)?;
            Ok(SnapshotMeta {
                last_log_id: state.applied,
                last_membership: state.membership,
            })
        })
        .await?;
        info!(
            "snapshot at log index {}: the store is durable up to it, so the log behind it may be purged",
            log_index(&meta)
        );
        Ok(Snapshot {
            meta,
            snapshot: SnapshotSource::local(self.outgoing.clone()),
        })
    }
}

/// The log index a snapshot covers, 0 for none; the logs and tests name snapshots by it.
fn log_index(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.map_or(0, |l| l.index)
}
