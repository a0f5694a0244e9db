//! Plugins for the tests: built from `plugins/` for wasm32-wasip2 (once per test process;
//! cargo does nothing when they are up to date), and deployed with the real `conclavectl`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of a built plugin, e.g. `plugin_path("rollup")`.
pub fn plugin_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("plugins/Cargo.toml"))
            .status()
            .expect("run cargo to build plugins/");
        assert!(status.success(), "building plugins/ failed");
        root.join("plugins/target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub use super::conclavectl;

/// `plugin status NAME -w json` as JSON.
pub fn plugin_status(endpoint: &str, name: &str) -> serde_json::Value {
    let out = conclavectl(endpoint, &["plugin", "status", name, "-w", "json"]);
    let text = super::stdout_ok(&out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
}
