//! What `scripts/compare-etcd` tells the report about its run, in `<work>/run.json`: the machine,
//! the systems compared, how many requests each load sent, and the command lines it ran, as
//! shown to a reader (paths relative to the checkout).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The system every table compares with its baselines.
pub const CONCLAVE: &str = "conclave";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// BENCH_SCALE: every --total was multiplied by it; below 1 the run is only a smoke run.
    pub scale: f64,
    pub machine: Machine,
    /// The etcd builds conclave is compared with, in column order. Results of a load are in
    /// `<id>.<key>.json` for each, and `<id>.conclave.json`.
    pub baselines: Vec<Baseline>,
    pub conclave: Conclave,
    pub counts: Counts,
    /// Loads run in alternating rounds (`<id>.r<n>.<system>.json`), by load id: the table
    /// shows each system's median round and lists every round.
    #[serde(default)]
    pub rounds: BTreeMap<String, u32>,
    /// Every load's command line, in the order they ran.
    pub commands: Vec<CommandLine>,
    pub servers: Servers,
    pub plugins: Plugins,
    /// `conclave-bench stat` as run after the loads (with placeholders for pid and data dir).
    pub stat_command: String,
    /// `conclave-bench write-probe` as run after each leader kill.
    pub probe_command: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    /// When the report was written, as the script's clock says.
    pub date: String,
    pub cpu: String,
    pub cores: u32,
    pub memory_gib: f64,
    pub kernel: String,
    /// File system of the data dirs, and its device.
    pub filesystem: String,
    /// From the first server started to the report, in seconds.
    pub elapsed_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    /// The system's name in result files and command lists (`etcd`).
    pub key: String,
    /// `etcd --version`'s version (3.4.23).
    pub version: String,
    /// The API version the server reports in Maintenance.Status (3.4).
    pub api_version: String,
    /// The binary, as found on the PATH or given.
    pub binary: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Conclave {
    /// `conclave --version`.
    pub version: String,
    /// `git describe --always --dirty` of the checkout.
    pub git: String,
}

/// Requests (or keys, rounds) per load, after BENCH_SCALE.
#[derive(Debug, Clone, Deserialize)]
pub struct Counts {
    pub put_latency: u64,
    pub put_throughput: u64,
    pub put_1000: u64,
    pub range: u64,
    pub watch: u64,
    pub keepalive: u64,
    pub lock: u64,
    pub elections: u64,
    pub garbage: u64,
    pub ingest: u64,
    pub rollup_puts: u64,
    pub failover_rounds: u32,
    pub plugin_failover_rounds: u32,
    pub big_range_keys: u64,
    pub big_ranges: u64,
    pub big_keys: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommandLine {
    /// The load's id (`put-latency`, `c3-put-100.r2`).
    pub id: String,
    /// `conclave` or a baseline's key.
    pub system: String,
    pub command: String,
}

/// The servers' command lines, baselines first.
#[derive(Debug, Clone, Deserialize)]
pub struct Servers {
    /// The single members the first loads ran against.
    pub single: Vec<String>,
    /// The 3-member clusters, every member's command.
    pub cluster: Vec<String>,
    /// The fresh single members of the large-data loads.
    pub big: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Plugins {
    /// `conclavectl plugin deploy` for each plugin on the single member.
    pub deploys: Vec<String>,
    /// The in-process overhead bench: its command and the markdown table it printed.
    pub overhead_command: String,
    pub overhead_table: String,
    /// How often the hostile plugin was restarted during its load.
    pub hostile_restarts: u64,
    /// Deploying the probe rule on the cluster, and the probe that waits for its output.
    pub probe_deploy_command: String,
    pub rollup_probe_command: String,
}

impl Manifest {
    /// A smoke run's figures show only that the plumbing works: no goal is judged on them.
    pub fn is_smoke(&self) -> bool {
        self.scale != 1.0
    }

    /// The systems in column order: the baselines' keys, then `conclave`.
    pub fn systems(&self) -> Vec<&str> {
        self.baselines
            .iter()
            .map(|b| b.key.as_str())
            .chain(std::iter::once(CONCLAVE))
            .collect()
    }

    /// The commands of these loads, in this order, each load's in column order (a load run in
    /// rounds ran the same command every round, listed once by its first).
    pub fn commands_for(&self, ids: &[&str]) -> Vec<&str> {
        let systems = self.systems();
        let mut out = Vec::new();
        for id in ids {
            let first_round = format!("{id}.r1");
            for system in &systems {
                out.extend(
                    self.commands
                        .iter()
                        .filter(|c| c.system == *system && (c.id == *id || c.id == first_round))
                        .map(|c| c.command.as_str()),
                );
            }
        }
        out
    }
}
