//! Raft snapshots over a durable state machine, as etcd makes them. The store is already on
//! disk, so "building" a snapshot only makes the store durable up to the applied position (one
//! fsync) and reports that position, which lets openraft purge the log behind it. The data a
//! lagging follower needs is written from the store's current state only when one needs it,
//! and may be ahead of the position it is sent with: the follower's store skips the entries
//! it already holds when the leader replays the log from that position, as etcd's backend does
//! with its consistent index.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use conclave_store::Store;
use tracing::{info, warn};

use crate::codec::{self, RaftState};
use crate::types::LogId;

/// A snapshot's data, as openraft passes it between the state machine and the transport.
#[derive(Debug, Clone)]
pub struct SnapshotSource(Source);

#[derive(Debug, Clone)]
enum Source {
    /// A snapshot received from the leader, in a file the transport downloaded.
    Received(PathBuf),
    /// This member's own store, written to a file when the transport asks for it.
    Local(Arc<Outgoing>),
}

impl SnapshotSource {
    /// A snapshot the transport downloaded to `path`.
    pub fn received(path: PathBuf) -> Self {
        Self(Source::Received(path))
    }

    pub(crate) fn local(outgoing: Arc<Outgoing>) -> Self {
        Self(Source::Local(outgoing))
    }

    /// The file a received snapshot is in; None for this member's own store.
    pub(crate) fn received_path(&self) -> Option<&Path> {
        match &self.0 {
            Source::Received(path) => Some(path),
            Source::Local(_) => None,
        }
    }

    /// Whether this is `store`'s own state.
    pub(crate) fn is_store(&self, store: &Arc<Store>) -> bool {
        matches!(&self.0, Source::Local(outgoing) if Arc::ptr_eq(&outgoing.store, store))
    }

    /// The snapshot's bytes, in the store's snapshot format, as an open file, for the
    /// transport to stream. For this member's own store, the file holds the state at `covers`
    /// or later; it is written now unless the last one written is recent enough.
    pub async fn open(&self, covers: Option<LogId>) -> std::io::Result<std::fs::File> {
        match &self.0 {
            Source::Received(path) => std::fs::File::open(path),
            Source::Local(outgoing) => outgoing.open(covers).await,
        }
    }
}

/// The store's state written out for followers: at most one file, replaced when a follower
/// needs a newer one.
pub(crate) struct Outgoing {
    store: Arc<Store>,
    dir: PathBuf,
    /// The file last written and the log position its state covers.
    last: tokio::sync::Mutex<Option<(PathBuf, Option<LogId>)>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("dir", &self.dir).finish()
    }
}

const OUTGOING_PREFIX: &str = "outgoing-";
const OUTGOING_EXT: &str = "snap";

impl Outgoing {
    /// Over `store`, writing its files in `dir`, where it first removes what an earlier run
    /// left (snapshot files of every kind except the transport's downloads, which it cleans
    /// itself).
    pub(crate) fn new(store: Arc<Store>, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            // Older versions kept a snapshot file and a meta file per snapshot.
            let stale = path
                .extension()
                .is_some_and(|e| e == OUTGOING_EXT || e == "meta" || e == "tmp");
            if stale && let Err(e) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove an old snapshot file");
            }
        }
        Ok(Self {
            store,
            dir: dir.to_path_buf(),
            last: tokio::sync::Mutex::new(None),
        })
    }

    async fn open(&self, covers: Option<LogId>) -> std::io::Result<std::fs::File> {
        // One writer at a time, so that followers needing a snapshot together share one file.
        let mut last = self.last.lock().await;
        if let Some((path, applied)) = last.as_ref()
            && *applied >= covers
        {
            // Open under the lock: the file may be replaced as soon as it is released.
            return std::fs::File::open(path);
        }
        let store = self.store.clone();
        let dir = self.dir.clone();
        let (path, applied) =
            tokio::task::spawn_blocking(move || write_outgoing(&store, &dir)).await??;
        if let Some((old, _)) = last.replace((path.clone(), applied))
            && old != path
            && let Err(e) = std::fs::remove_file(&old)
        {
            warn!(path = %old.display(), error = %e, "cannot remove an old snapshot file");
        }
        std::fs::File::open(&path)
    }
}

/// Writes the store's current state to a file in `dir`; returns the file and the log position
/// the state covers. Not fsynced: the file is for sending, and a crash only loses a copy.
fn write_outgoing(store: &Store, dir: &Path) -> std::io::Result<(PathBuf, Option<LogId>)> {
    let tmp = dir.join(format!("{OUTGOING_PREFIX}{}.tmp", std::process::id()));
    let info = {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let info = store.write_snapshot(&mut out).map_err(io_err)?;
        std::io::Write::flush(&mut out)?;
        info
    };
    let state = decode_state(info.raft_state.as_deref())?;
    let name = match state.applied {
        Some(l) => format!(
            "{OUTGOING_PREFIX}{}-{}.{OUTGOING_EXT}",
            l.leader_id.term, l.index
        ),
        None => format!("{OUTGOING_PREFIX}0-0.{OUTGOING_EXT}"),
    };
    let path = dir.join(name);
    std::fs::rename(&tmp, &path)?;
    info!(
        revision = info.revision,
        records = info.records,
        bytes = info.bytes,
        last_log = ?state.applied,
        "wrote the store out for a follower that needs a snapshot"
    );
    Ok((path, state.applied))
}

/// The consensus layer's state as the store keeps it; the default when it has none yet.
pub(crate) fn decode_state(bytes: Option<&[u8]>) -> std::io::Result<RaftState> {
    match bytes {
        Some(bytes) => codec::decode::<RaftState>(bytes).map_err(io_err),
        None => Ok(RaftState::default()),
    }
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
