//! A rule plugin loaded into a running cluster: deploy `rollup`, write samples, and watch its
//! rollups appear, one key per series and window, written exactly once by the leader.
//!
//! Against a local cluster (`cargo run --release --bin conclave -- dev --members 3`):
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --release --manifest-path plugins/Cargo.toml --target wasm32-wasip2
//! cargo run --example rollup -- deploy plugins/target/wasm32-wasip2/release/rollup.wasm
//! cargo run --example rollup -- watch &      # prints each rollup as it commits
//! cargo run --example rollup -- samples 30   # puts to /metrics/cpu and /metrics/mem for 30 s
//! ```
//!
//! `deploy` takes the window length as an optional last argument (default 2s). Kill the
//! cluster's leader meanwhile: the next leader resumes at the next window, none lost, none
//! written twice. Endpoints come from CONCLAVE_ENDPOINTS (comma-separated), by default the
//! dev cluster's.

use std::time::{Duration, Instant};

use conclave::{Client, DeployOptions, PutOptions, WatchOptions};

const DEV_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";
const PLUGIN: &str = "rollup";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoints = std::env::var("CONCLAVE_ENDPOINTS").unwrap_or_else(|_| DEV_ENDPOINTS.into());
    let client = Client::connect(endpoints.split(',')).await?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["deploy", file] => deploy(&client, file, "2s").await,
        ["deploy", file, resolution] => deploy(&client, file, resolution).await,
        ["samples", seconds] => samples(&client, seconds.parse()?).await,
        ["watch"] => watch(&client).await,
        _ => {
            eprintln!("usage: rollup deploy FILE.wasm [RESOLUTION] | samples SECONDS | watch");
            std::process::exit(2);
        }
    }
}

/// Deploys the plugin and waits until the leader runs it.
async fn deploy(
    client: &Client,
    file: &str,
    resolution: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let wasm = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let config = serde_json::json!({
        "source_prefix": "/metrics/",
        "target_prefix": "/rollup/",
        "resolution": resolution,
        "retention": "1h",
        "aggregations": ["count", "sum", "min", "max", "mean", "p99"],
    });
    let options = DeployOptions::new().with_config(config.to_string());
    let spec = client.plugin_deploy(PLUGIN, wasm, options).await?;
    println!("deployed {PLUGIN} version {}", spec.version);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.plugin_status(PLUGIN).await?;
        if status.state == "running" {
            println!("{PLUGIN} is running on {}", status.leader);
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{PLUGIN} is {} ({})", status.state, status.last_error).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts a sample to each series every 100 ms for `seconds`, going on through a failover.
async fn samples(client: &Client, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut written = 0u64;
    let mut failed = 0u64;
    let mut i = 0u64;
    while Instant::now() < until {
        for (series, value) in [("cpu", (i % 10) as f64 / 10.0), ("mem", (i % 7) as f64)] {
            // A put that fails during a failover may still have committed: only those that
            // were acknowledged are counted here, and the rollups may hold a few more.
            match client
                .put(
                    format!("/metrics/{series}"),
                    value.to_string(),
                    PutOptions::new(),
                )
                .await
            {
                Ok(_) => written += 1,
                Err(e) => {
                    failed += 1;
                    eprintln!("put failed: {e}");
                }
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("wrote {written} samples ({failed} puts failed)");
    Ok(())
}

/// Prints each rollup as it commits: `rollup SERIES WINDOW_START_MS {"count":..}`.
async fn watch(client: &Client) -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = client
        .watch("/rollup/", WatchOptions::new().with_prefix())
        .await?;
    println!("watching /rollup/");
    while let Some(resp) = stream.message().await {
        for event in resp?.events {
            let Some(kv) = event.kv else { continue };
            if kv.value.is_empty() {
                continue; // a rollup expiring (its retention lease ended)
            }
            let key = String::from_utf8_lossy(&kv.key);
            let Some((series, window)) = key
                .strip_prefix("/rollup/")
                .and_then(|rest| rest.rsplit_once('/'))
            else {
                continue;
            };
            println!(
                "rollup {series} {window} {}",
                String::from_utf8_lossy(&kv.value)
            );
        }
    }
    Ok(())
}
