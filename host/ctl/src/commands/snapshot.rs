//! `snapshot save|status|restore`: backups of a whole cluster's state, as etcdctl's snapshot
//! commands. `save` streams Maintenance.Snapshot to a file (with a progress bar on a
//! terminal) and checks it; `status` reads a file and checks its checksum; `restore` makes a
//! data dir from one, from which a member forms a new cluster with all the data. Files are
//! conclave's format or etcd's (`save --format etcd`); `status` and `restore` read both, and
//! etcd's own snapshots and data dirs' `member/snap/db` too: the way in from etcd.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use conclave_client::proto::etcdserverpb::SnapshotRequest;
use conclave_store::{SnapshotInfo, Store, inspect_backup};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use crate::context::{Context, Io};
use crate::error::{CtlError, exit};
use crate::output::Format;
use crate::table;

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores a snapshot of the whole state to a file
    Save(SaveArgs),
    /// Gets the revision, record count, size and checksum of a snapshot file
    Status(StatusArgs),
    /// Makes a data dir from a snapshot file, for a member of a new cluster
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    #[arg(value_name = "FILENAME")]
    pub file: PathBuf,
    /// File format: conclave's (keeps every revision's commit time) or etcd's (a bbolt file
    /// that `etcdctl snapshot status|restore` and etcd read)
    #[arg(long, value_enum, default_value_t = SnapshotFormat::Conclave)]
    pub format: SnapshotFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFormat {
    Conclave,
    Etcd,
}

impl SnapshotFormat {
    fn metadata(self) -> &'static str {
        match self {
            SnapshotFormat::Conclave => "conclave",
            SnapshotFormat::Etcd => "etcd",
        }
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(value_name = "FILENAME")]
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[arg(value_name = "FILENAME")]
    pub file: PathBuf,
    /// Path to the data directory [default: ./<name>.conclave]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Initial cluster configuration for the restore bootstrap (name=https://host:port,...)
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long)]
    pub initial_advertise_peer_urls: Option<String>,
}

pub fn run(ctx: &Context, cmd: &SnapshotCommand, io: &mut Io<'_>) -> Result<(), CtlError> {
    match cmd {
        SnapshotCommand::Save(args) => save(ctx, args, io),
        SnapshotCommand::Status(args) => status(ctx.format, &args.file, io),
        SnapshotCommand::Restore(args) => restore(args, io),
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> CtlError {
    CtlError::new(exit::ERROR, format!("{what}: {e}"))
}

/// Streams the snapshot into `FILE.part`, fsyncs, renames, then reads it back to check it.
fn save(ctx: &Context, args: &SaveArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    let file = &args.file;
    let client = ctx.client()?;
    let part = PathBuf::from(format!("{}.part", file.display()));
    let mut request = tonic::Request::new(SnapshotRequest {});
    request.metadata_mut().insert(
        conclave_client::proto::SNAPSHOT_FORMAT_METADATA,
        tonic::metadata::MetadataValue::from_static(args.format.metadata()),
    );
    let outcome = ctx.block_on(async {
        let mut stream = client
            .maintenance_client()
            .snapshot(request)
            .await
            .map_err(|e| failed("snapshot", e.message()))?
            .into_inner();
        let mut out = std::fs::File::create(&part).map_err(|e| failed("create", e))?;
        let mut bar: Option<ProgressBar> = None;
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|e| failed("snapshot", e.message()))?
        {
            let bar = bar.get_or_insert_with(|| {
                let total = msg.remaining_bytes + msg.blob.len() as u64;
                let bar = ProgressBar::new(total);
                if let Ok(style) = ProgressStyle::with_template(
                    "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
                ) {
                    bar.set_style(style);
                }
                bar
            });
            out.write_all(&msg.blob).map_err(|e| failed("write", e))?;
            bar.inc(msg.blob.len() as u64);
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        out.sync_all().map_err(|e| failed("fsync", e))?;
        Ok::<_, CtlError>(())
    });
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    let info = inspect(&part).inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    })?;
    std::fs::rename(&part, file).map_err(|e| failed("rename", e))?;
    writeln!(
        io.stdout,
        "Snapshot saved at {} (revision {}, {})",
        file.display(),
        info.revision,
        HumanBytes(info.bytes)
    )?;
    Ok(())
}

fn inspect(file: &Path) -> Result<SnapshotInfo, CtlError> {
    inspect_backup(file).map_err(|e| failed("snapshot", e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn status(format: Format, file: &Path, io: &mut Io<'_>) -> Result<(), CtlError> {
    let info = inspect(file)?;
    let checksum = hex(&info.checksum);
    match format {
        Format::Simple => writeln!(
            io.stdout,
            "{checksum}, {}, {}, {}",
            info.revision,
            info.records,
            HumanBytes(info.bytes)
        )?,
        Format::Json => writeln!(
            io.stdout,
            "{}",
            serde_json::json!({
                "checksum": checksum,
                "revision": info.revision,
                "totalKey": info.records,
                "totalSize": info.bytes,
            })
        )?,
        Format::Table => table::render(
            io.stdout,
            &["CHECKSUM (SHA-256)", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                checksum,
                info.revision.to_string(),
                info.records.to_string(),
                HumanBytes(info.bytes).to_string(),
            ]],
        )?,
    }
    Ok(())
}

fn restore(args: &RestoreArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    if let Some(cluster) = &args.initial_cluster {
        let named = cluster
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(name, _)| name == args.name);
        if !named {
            return Err(CtlError::bad_args(format!(
                "--initial-cluster does not name this member ({}): {cluster}",
                args.name
            )));
        }
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.conclave", args.name)));
    let info =
        Store::restore(&data_dir.join("store"), &args.file).map_err(|e| failed("restore", e))?;
    writeln!(
        io.stdout,
        "restored snapshot {} (revision {}, {} records) into {}",
        args.file.display(),
        info.revision,
        info.records,
        data_dir.display()
    )?;
    writeln!(
        io.stdout,
        "start the member with --name {} --data-dir {}{} --initial-cluster-state new: it forms a new cluster",
        args.name,
        data_dir.display(),
        args.initial_cluster
            .as_ref()
            .map(|c| format!(
                " --initial-cluster {c} --initial-cluster-token {}",
                args.initial_cluster_token
            ))
            .unwrap_or_default()
    )?;
    Ok(())
}
