//! Backups: the whole state written to one file (every key with its history, leases, users
//! and roles, plugins; a SHA-256 at the end), in etcd's snapshot format or the store's own.
//! Served by Maintenance.Snapshot (`etcdctl snapshot save` gets etcd's format), written on a
//! schedule by the leader (--backup-dir, --backup-interval, --backup-retain; the store's
//! format), and restored from, in either format, with `conclavectl snapshot restore` or
//! --restore-from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use conclave_store::{SnapshotInfo, Store};
use tracing::{info, warn};

use crate::leader_ticks::LeaderTicks;
use crate::node::Node;

/// Backup files the schedule writes start with this, and end with [`BACKUP_EXT`].
const BACKUP_PREFIX: &str = "conclave-backup-";
const BACKUP_EXT: &str = ".snap";

static TEMP_FILES: AtomicU64 = AtomicU64::new(0);

/// The file formats a snapshot is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// etcd's: a bbolt file with etcd's buckets, which etcdctl and etcd read.
    Etcd,
    /// The store's own stream: written without building a B+tree, and it keeps each
    /// revision's commit time, which plugin windows use.
    Conclave,
}

impl Format {
    /// The format a client asked for in [`SNAPSHOT_FORMAT_METADATA`]; etcd's when it asked
    /// for none, so that etcd's tools get what they read.
    ///
    /// [`SNAPSHOT_FORMAT_METADATA`]: conclave_proto::SNAPSHOT_FORMAT_METADATA
    pub fn requested(value: Option<&[u8]>) -> Option<Self> {
        match value {
            None | Some(b"etcd") => Some(Format::Etcd),
            Some(b"conclave") => Some(Format::Conclave),
            Some(_) => None,
        }
    }
}

/// Writes the store's current state to `path`, durably: a temporary file beside it, fsynced,
/// then renamed into place, so that `path` is either absent or whole.
pub fn write_file(store: &Store, path: &Path, format: Format) -> std::io::Result<SnapshotInfo> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(dir);
    let outcome = (|| {
        let info = match format {
            Format::Conclave => {
                let file = std::fs::File::create(&tmp)?;
                let mut out = std::io::BufWriter::new(file);
                let info = store
                    .write_backup(&mut out)
                    .map_err(std::io::Error::other)?;
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                info
            }
            // Written, checksummed and fsynced by the store.
            Format::Etcd => store
                .write_etcd_snapshot(&tmp)
                .map_err(std::io::Error::other)?,
        };
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(info)
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome
}

/// A fresh temporary file name in `dir` (`.tmp`: the snapshot directory's clean-up at start
/// removes ones a crash left).
pub fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(
        "backup-{}-{}.tmp",
        std::process::id(),
        TEMP_FILES.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The scheduled backups' settings.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    pub interval: Duration,
    /// How many backups to keep (the newest).
    pub retain: usize,
}

/// Runs for the member's life: while it leads, a backup every interval.
pub async fn run(node: Arc<Node>, schedule: Schedule) {
    info!(dir = %schedule.dir.display(), every = ?schedule.interval, retain = schedule.retain, "scheduled backups on");
    let mut ticks = LeaderTicks::new(node.clone(), schedule.interval);
    loop {
        ticks.next().await;
        let store = node.store.clone();
        let schedule = schedule.clone();
        match tokio::task::spawn_blocking(move || back_up(&store, &schedule)).await {
            Ok(Ok((path, info))) => info!(
                path = %path.display(),
                revision = info.revision,
                bytes = info.bytes,
                "backup written"
            ),
            Ok(Err(e)) => warn!(error = %e, "backup failed; will try at the next interval"),
            Err(e) => warn!(error = %e, "backup task failed"),
        }
    }
}

/// One scheduled backup, then the oldest ones beyond `retain` removed.
fn back_up(store: &Store, schedule: &Schedule) -> std::io::Result<(PathBuf, SnapshotInfo)> {
    std::fs::create_dir_all(&schedule.dir)?;
    // UTC time in the name, so that names sort oldest first.
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let revision = store.current_revision();
    let path = schedule
        .dir
        .join(format!("{BACKUP_PREFIX}{stamp}-rev{revision}{BACKUP_EXT}"));
    let info = write_file(store, &path, Format::Conclave)?;
    let mut backups: Vec<PathBuf> = std::fs::read_dir(&schedule.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(BACKUP_PREFIX) && n.ends_with(BACKUP_EXT))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(schedule.retain.max(1));
    for old in &backups[..excess] {
        match std::fs::remove_file(old) {
            Ok(()) => info!(path = %old.display(), "removed an old backup"),
            Err(e) => warn!(path = %old.display(), error = %e, "cannot remove an old backup"),
        }
    }
    Ok((path, info))
}

/// --restore-from: fills an empty store directory from a snapshot file before the member
/// starts. A directory that already holds a store is left alone (a restart with the same
/// flags must not restore again).
pub fn restore_if_empty(file: &Path, store_dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let occupied = std::fs::read_dir(store_dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        info!(
            file = %file.display(),
            "the data dir holds a store already; --restore-from is ignored"
        );
        return Ok(());
    }
    let info = Store::restore(store_dir, file)
        .with_context(|| format!("cannot restore from {}", file.display()))?;
    info!(
        file = %file.display(),
        revision = info.revision,
        records = info.records,
        "restored the store from a snapshot; this member forms a new cluster"
    );
    Ok(())
}
