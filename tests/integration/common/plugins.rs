//! Plugins for the tests: built from `plugins/` for wasm32-wasip2 (once per test process;
//! cargo does nothing when they are up to date), and deployed with the real `conclavectl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use etcd_client::{GetOptions, WatchOptions};

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
use super::{stdout_ok, wait_until};

/// `plugin status NAME -w json` as JSON.
pub fn plugin_status(endpoint: &str, name: &str) -> serde_json::Value {
    let out = conclavectl(endpoint, &["plugin", "status", name, "-w", "json"]);
    let text = stdout_ok(&out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
}

/// `conclavectl plugin deploy NAME plugins/WASM --config CONFIG`: what it printed.
pub fn deploy(endpoint: &str, name: &str, wasm: &str, config: &str) -> String {
    let path = plugin_path(wasm);
    let out = conclavectl(
        endpoint,
        &[
            "plugin",
            "deploy",
            name,
            path.to_str().expect("UTF-8 path"),
            "--config",
            config,
        ],
    );
    stdout_ok(&out)
}

/// Waits until plugin `name` runs.
pub fn wait_running(endpoint: &str, name: &str) {
    wait_until(
        &format!("plugin {name} running"),
        Duration::from_secs(30),
        || plugin_status(endpoint, name)["state"] == "running",
    );
}

/// Every key under `prefix` with its value, version and lease.
pub async fn read_prefix(
    client: &mut etcd_client::Client,
    prefix: &str,
) -> BTreeMap<String, (String, i64, i64)> {
    let resp = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("range");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("UTF-8 key").to_string(),
                (
                    kv.value_str().expect("UTF-8 value").to_string(),
                    kv.version(),
                    kv.lease(),
                ),
            )
        })
        .collect()
}

/// The values of every put under `prefix` that committed, from history.
pub async fn committed_values(client: &mut etcd_client::Client, prefix: &str) -> Vec<f64> {
    // The newest change under the prefix: history is read up to it.
    let current = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("range")
        .kvs()
        .iter()
        .map(|kv| kv.mod_revision())
        .max()
        .expect("something was put");
    let mut stream = client
        .watch(
            prefix,
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await
        .expect("watch history");
    let mut values = Vec::new();
    let mut last = 0;
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("history arrives")
            .expect("watch")
            .expect("a response");
        for event in resp.events() {
            let kv = event.kv().expect("kv");
            last = kv.mod_revision();
            if event.event_type() == etcd_client::EventType::Put {
                values.push(kv.value_str().expect("UTF-8").parse().expect("a number"));
            }
        }
        if last >= current {
            return values;
        }
    }
}
