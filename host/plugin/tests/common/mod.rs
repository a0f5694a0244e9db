//! What the plugin host's tests and benchmarks share: the plugins of `plugins/`, built for
//! wasm32-wasip2 once per process (cargo skips the work when nothing changed), and a store
//! that has nothing in it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use conclave_plugin::{KeyValue, Reads};

/// The component of plugin `name` (its crate name with `_` for `-`), built from `plugins/`.
pub fn plugin(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("plugins/Cargo.toml"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building plugins/ failed");
        root.join("plugins/target/wasm32-wasip2/release")
    });
    std::fs::read(dir.join(format!("{name}.wasm"))).expect("the plugin was built")
}

/// No store here: these plugins never read.
pub struct NoReads;

impl Reads for NoReads {
    fn get(&self, _: &[u8], _: i64) -> Result<Option<KeyValue>, String> {
        Err("no store in this test".into())
    }
    fn range(&self, _: &[u8], _: &[u8], _: i64, _: u32) -> Result<Vec<KeyValue>, String> {
        Err("no store in this test".into())
    }
}
