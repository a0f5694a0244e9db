//! `stat`: what a server costs at rest, read from outside it: resident memory from
//! /proc/PID/status and the size of its data directory; and restarting the peak resident
//! memory, so that a later `stat` shows the peak of the load in between.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct ProcStat {
    pub pid: u32,
    /// Resident memory now (VmRSS).
    pub rss_bytes: u64,
    /// Peak resident memory (VmHWM).
    pub rss_peak_bytes: u64,
    pub data_dir: PathBuf,
    /// Sum of file lengths.
    pub data_dir_bytes: u64,
    /// Blocks the files occupy on disk (what `du` reports); differs for sparse or preallocated files.
    pub data_dir_allocated_bytes: u64,
    pub data_dir_files: u64,
}

impl ProcStat {
    pub fn read(pid: u32, data_dir: &Path) -> anyhow::Result<Self> {
        let status_path = format!("/proc/{pid}/status");
        let status = fs::read_to_string(&status_path)
            .with_context(|| format!("cannot read {status_path}: is process {pid} running?"))?;
        let rss_bytes = status_field_bytes(&status, "VmRSS")
            .with_context(|| format!("{status_path} has no VmRSS line"))?;
        let rss_peak_bytes = status_field_bytes(&status, "VmHWM").unwrap_or(rss_bytes);
        let mut usage = DirUsage::default();
        usage
            .add(data_dir)
            .with_context(|| format!("cannot measure {}", data_dir.display()))?;
        Ok(Self {
            pid,
            rss_bytes,
            rss_peak_bytes,
            data_dir: data_dir.to_path_buf(),
            data_dir_bytes: usage.bytes,
            data_dir_allocated_bytes: usage.allocated,
            data_dir_files: usage.files,
        })
    }

    pub fn to_text(&self) -> String {
        format!(
            "pid {}: rss {} (peak {}); {}: {} in {} files ({} allocated)\n",
            self.pid,
            human(self.rss_bytes),
            human(self.rss_peak_bytes),
            self.data_dir.display(),
            human(self.data_dir_bytes),
            self.data_dir_files,
            human(self.data_dir_allocated_bytes),
        )
    }
}

/// Restarts the process's peak resident memory (VmHWM) from its current resident memory, by
/// writing 5 to /proc/PID/clear_refs (Linux 4.0 and later; we must own the process or be root).
pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    fs::write(&path, "5").with_context(|| format!("cannot reset the peak: write 5 to {path}"))
}

/// A `Name:   1234 kB` line of /proc/PID/status, in bytes.
fn status_field_bytes(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(name))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

#[derive(Default)]
struct DirUsage {
    bytes: u64,
    allocated: u64,
    files: u64,
}

impl DirUsage {
    /// Adds `path` and everything under it, not following symlinks. A store compacting while we
    /// walk removes files: those are skipped, not errors.
    fn add(&mut self, path: &Path) -> anyhow::Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
        };
        if meta.is_dir() {
            let entries = match fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("list {}", path.display())),
            };
            for entry in entries {
                match entry {
                    Ok(entry) => self.add(&entry.path())?,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("list {}", path.display())),
                }
            }
        } else if meta.is_file() {
            self.bytes += meta.len();
            self.allocated += meta.blocks() * 512;
            self.files += 1;
        }
        Ok(())
    }
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Checks the arguments before reading anything.
pub fn check(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.is_dir() {
        bail!("--data-dir {}: not a directory", data_dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tetcd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field_bytes(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(status_field_bytes(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(status_field_bytes(status, "VmSwap"), None);
        assert_eq!(status_field_bytes("VmRSS:\tlots kB\n", "VmRSS"), None);
    }

    #[test]
    fn reads_this_process() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("conclave-bench-stat-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub"))?;
        fs::write(dir.join("sub/f"), [0u8; 100])?;
        let stat = ProcStat::read(std::process::id(), &dir);
        fs::remove_dir_all(&dir)?;
        let stat = stat?;
        assert!(stat.rss_bytes > 0);
        assert_eq!(stat.data_dir_bytes, 100);
        assert_eq!(stat.data_dir_files, 1);
        Ok(())
    }

    #[test]
    fn resets_the_peak_of_this_process() -> anyhow::Result<()> {
        let peak = |status: &str| status_field_bytes(status, "VmHWM");
        // Touch 64 MiB, so that the peak is well above what stays resident once it is freed.
        let big = vec![1u8; 64 << 20];
        assert_eq!(big.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
        drop(big);
        let before = peak(&fs::read_to_string("/proc/self/status")?);
        reset_peak(std::process::id())?;
        let after = peak(&fs::read_to_string("/proc/self/status")?);
        assert!(
            after < before,
            "VmHWM {after:?} after the reset, {before:?} before"
        );
        Ok(())
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
