//! The Raft state machine: committed entries go to the store's apply interface, in order, in
//! one batch per call, with openraft's applied log id and membership written in the same atomic
//! batch (the store's "raft state"). Snapshots are the store's own snapshot stream, kept as
//! files under the snapshot directory beside a small metadata file.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conclave_store::{Applied, Durability, Entry as StoreEntry, Response, Store};
use futures::{Stream, TryStreamExt};
use openraft::EntryPayload;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use tracing::{info, warn};

use crate::codec::{self, RaftState};
use crate::types::{LogId, StoredMembership, TypeConfig};

pub use crate::codec::SnapshotMeta;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>;

/// A snapshot's data: a file in the snapshot directory, in the store's snapshot format. The
/// transport streams it from here, and writes a received one to a file of its own.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
}

/// Told about every applied batch, after it is applied: the watch hub, leases and plugins
/// hang off this.
pub trait ApplyListener: Send + Sync + 'static {
    fn applied(&self, outcomes: &[Applied]);
}

pub struct StateMachine {
    store: Arc<Store>,
    snapshots: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    listener: Option<Arc<dyn ApplyListener>>,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, std::io::Error> + Send + 'static,
) -> Result<T, std::io::Error> {
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}

impl StateMachine {
    /// Opens the state machine over `store`, keeping snapshots in `snapshots`.
    pub fn new(
        store: Arc<Store>,
        snapshots: &Path,
        listener: Option<Arc<dyn ApplyListener>>,
    ) -> Result<Self, std::io::Error> {
        std::fs::create_dir_all(snapshots)?;
        let state = match store.raft_state().map_err(io_err)? {
            Some(bytes) => codec::decode::<RaftState>(&bytes).map_err(io_err)?,
            None => RaftState::default(),
        };
        Ok(Self {
            store,
            snapshots: snapshots.to_path_buf(),
            applied: state.applied,
            membership: state.membership,
            listener,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
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
        let store = self.store.clone();
        let outcomes = blocking(move || {
            store
                .apply_with_state(&store_entries, Some(&state), Durability::Buffered)
                .map_err(io_err)
        })
        .await?;
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
                }));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), std::io::Error> {
        let store = self.store.clone();
        let dir = self.snapshots.clone();
        let meta_owned = meta.clone();
        let installed = blocking(move || {
            let file = std::fs::File::open(&snapshot.path)?;
            let info = store
                .install_snapshot(&mut BufReader::new(file))
                .map_err(io_err)?;
            keep_as_current(&dir, &meta_owned, &snapshot.path)?;
            Ok(info)
        })
        .await?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        info!(
            revision = installed.revision,
            records = installed.records,
            last_log = ?meta.last_log_id,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, std::io::Error> {
        let dir = self.snapshots.clone();
        blocking(move || current_snapshot(&dir)).await
    }
}

pub struct SnapshotBuilder {
    store: Arc<Store>,
    snapshots: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let store = self.store.clone();
        let dir = self.snapshots.clone();
        blocking(move || {
            let tmp = dir.join(format!("building-{}.snap", std::process::id()));
            let info = {
                let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
                let info = store.write_snapshot(&mut out).map_err(io_err)?;
                std::io::Write::flush(&mut out)?;
                out.into_inner().map_err(io_err)?.sync_all()?;
                info
            };
            // The snapshot's own raft state, not the state machine's current one: apply may
            // have moved on while the snapshot was written.
            let state = match info.raft_state {
                Some(bytes) => codec::decode::<RaftState>(&bytes).map_err(io_err)?,
                None => RaftState::default(),
            };
            let meta = SnapshotMeta {
                last_log_id: state.applied,
                last_membership: state.membership,
            };
            let path = keep_as_current(&dir, &meta, &tmp)?;
            info!(
                revision = info.revision,
                records = info.records,
                bytes = info.bytes,
                last_log = ?meta.last_log_id,
                "built a snapshot"
            );
            Ok(Snapshot {
                meta,
                snapshot: SnapshotFile { path },
            })
        })
        .await
    }
}

/// A snapshot's file name: the log position it covers. Two snapshots at one position hold the
/// same state, so the newer may replace the older.
fn snapshot_name(meta: &SnapshotMeta) -> String {
    match meta.last_log_id {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "0-0-0".to_string(),
    }
}

const DATA_EXT: &str = "snap";
const META_EXT: &str = "meta";

/// Makes `data` the current snapshot: moves it to `<id>.snap`, writes `<id>.meta` beside it
/// (data first, so a meta file always has its data), then removes every older snapshot.
fn keep_as_current(
    dir: &Path,
    meta: &SnapshotMeta,
    data: &Path,
) -> Result<PathBuf, std::io::Error> {
    let id = &snapshot_name(meta);
    let data_path = dir.join(format!("{id}.{DATA_EXT}"));
    let meta_path = dir.join(format!("{id}.{META_EXT}"));
    if data != data_path {
        std::fs::rename(data, &data_path)?;
    }
    let tmp_meta = dir.join(format!("{id}.{META_EXT}.tmp"));
    std::fs::write(&tmp_meta, codec::encode(meta))?;
    std::fs::rename(&tmp_meta, &meta_path)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let stem_is_current = path.file_stem().is_some_and(|s| s == id.as_str());
        // Only finished snapshots and their meta files; the transport's partial downloads
        // live here too and are not ours to remove.
        let ours = path
            .extension()
            .is_some_and(|e| e == DATA_EXT || e == META_EXT);
        if ours
            && !stem_is_current
            && path != data_path
            && let Err(e) = std::fs::remove_file(&path)
        {
            warn!(path = %path.display(), error = %e, "cannot remove an old snapshot file");
        }
    }
    Ok(data_path)
}

/// The snapshot `keep_as_current` left, if any.
fn current_snapshot(dir: &Path) -> Result<Option<Snapshot>, std::io::Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == META_EXT) {
            let meta: SnapshotMeta = codec::decode(&std::fs::read(&path)?).map_err(io_err)?;
            let data = path.with_extension(DATA_EXT);
            if data.exists() {
                return Ok(Some(Snapshot {
                    meta,
                    snapshot: SnapshotFile { path: data },
                }));
            }
        }
    }
    Ok(None)
}
