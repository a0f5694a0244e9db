//! A small filesystem for one member's data dir: a tmpfs of a given size that the test mounts
//! (as root) over the data dir before the member starts, so that the member meets a full
//! disk; remounted larger to let it recover; unmounted when dropped. Only the mount the test
//! made is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` at `path` (created if missing).
    pub fn mount(path: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).expect("create the mount point");
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={bytes}"),
            "tmpfs",
            &path.to_string_lossy(),
        ]);
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Writes a file into it until no byte is left (the member sees ENOSPC on its next
    /// write).
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).expect("create the filler");
        let chunk = vec![0u8; 1 << 20];
        // A bounded loop: the disk is small, and a write into a full one fails.
        for _ in 0..(64 << 10) {
            match file.write(&chunk) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        panic!("{} never filled up", self.path.display());
    }

    /// Removes what [`SmallDisk::fill`] wrote.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }

    fn filler(&self) -> PathBuf {
        self.path.join("test-filler")
    }

    /// Makes it `bytes` large, keeping what it holds.
    pub fn resize(&self, bytes: u64) {
        mount(&[
            "-o",
            &format!("remount,size={bytes}"),
            &self.path.to_string_lossy(),
        ]);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a member that is still being reaped may hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn mount(args: &[&str]) {
    let out = Command::new("mount")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
    assert!(
        out.status.success(),
        "mount {} failed (the test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
