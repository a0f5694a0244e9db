//! The command line: one subcommand per load, the flags every load shares, and the helpers
//! (`stat`, `status`) the comparison script uses around the loads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Requests in a run when neither `--total` nor `--duration` is given.
pub const DEFAULT_TOTAL: u64 = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "conclave-bench",
    version,
    about = "A load generator for the etcd v3 gRPC API: drives conclave and etcd alike."
)]
pub struct Cli {
    /// Print the result as one JSON object on stdout (the progress bar is hidden).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put keys: latency and throughput of writes.
    Put(PutArgs),
    /// Range over one key (or a prefix) after an optional preload: read throughput.
    Range(RangeArgs),
    /// Txn whose success branch puts --txn-ops keys, with no compares.
    TxnPut(TxnPutArgs),
    /// DeleteRange of one key per request (preload keys to delete something real).
    Delete(DeleteArgs),
    /// A mix of single-key ranges and puts, chosen at random by --read-ratio.
    Mixed(MixedArgs),
    /// Resident memory of a server process and the size of its data dir; can restart the
    /// process's peak resident memory afterwards (--reset-peak).
    Stat(StatArgs),
    /// Maintenance.Status of each endpoint (server version, db size); can wait until they answer.
    Status(StatusArgs),
    /// Watchers on one prefix, and puts under it: latency from each put to each watcher, and
    /// how long each put takes to reach every watcher (--watchers 10000 --total 1: fan-out).
    Watch(WatchArgs),
    /// Lease keep-alives, each client on its own stream with its own lease: throughput and
    /// latency of a keep-alive.
    LeaseKeepalive(LeaseKeepaliveArgs),
    /// Clients contend for one lock (etcd's v3lock): acquire and release, again and again.
    Lock(LockArgs),
    /// An election's leader stops renewing its lease: time until the next candidate leads.
    ElectionFailover(ElectionFailoverArgs),
    /// Puts one key again and again until a put succeeds: how long a cluster took to accept
    /// writes again, e.g. after its leader was killed.
    WriteProbe(WriteProbeArgs),
    Defrag(DefragArgs),
    /// Samples through a `rollup` rule (conclave only): sent to the Ingest service in batches,
    /// or as one KV put each; then the time until the rule's windows count every one.
    Rollup(RollupArgs),
    /// Puts samples under a rule's source prefix until a rollup of a window that started at
    /// or after a moment appears (conclave only): deploy-to-first-output, or leader kill to
    /// resumed flushing.
    RollupProbe(RollupProbeArgs),
    /// Writes docs/BENCHMARKS.md from the results `scripts/compare-etcd` left in its work dir
    /// (`run.json` and each load's JSON), keeping the report's "Before and after" section.
    Report(ReportArgs),
}

/// Flags every load shares: where to send requests, how many at once, and when to stop.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Comma-separated gRPC endpoints (host:port or http://host:port), used round-robin by the connections.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Concurrent in-flight requests (each client sends its next request when its last one returns).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,

    /// gRPC connections shared by the clients (client i uses connection i mod conns).
    #[arg(long, default_value_t = 1)]
    pub conns: usize,

    /// Requests to send [default: 10000 when --duration is not given either].
    #[arg(long)]
    pub total: Option<u64>,

    /// Stop sending after this long (e.g. 30s, 500ms, 2m; a bare number is seconds). With
    /// --total, whichever comes first.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Limit on requests per second over all clients; 0 means no limit.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// Give up on one request after this long; it counts as an error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
}

/// What the keys and values look like.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Key size in bytes: --key-prefix then the key's index as zero-padded decimal.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Value size in bytes (random bytes, fresh for every request, so nothing compresses).
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,

    /// Number of distinct keys the load picks from.
    #[arg(long, default_value_t = 100_000)]
    pub key_space_size: u64,

    /// Take keys in order (request n uses key n mod key-space-size) instead of at random.
    #[arg(long)]
    pub sequential_keys: bool,

    /// A prefix for every key; it counts towards --key-size.
    #[arg(long, default_value = "")]
    pub key_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable: the server confirms it is up to date (read index) before answering.
    #[value(name = "l", alias = "linearizable")]
    Linearizable,
    /// Serializable: answered from the member's local state.
    #[value(name = "s", alias = "serializable")]
    Serializable,
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,

    /// Most keys a range returns; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,

    /// Range over every key under --key-prefix (every key at all when it is empty) instead of one key.
    #[arg(long)]
    pub prefix: bool,

    /// Put keys 0..N (sequentially, untimed) before the run, so that ranges find something.
    #[arg(long, default_value_t = 0)]
    pub preload: u64,

    /// Keys 0..N exist already (an earlier load put them): check the ranges find them, as
    /// after --preload N, without putting them again.
    #[arg(long, default_value_t = 0, conflicts_with = "preload")]
    pub existing: u64,
}

#[derive(Debug, Clone, Args)]
pub struct TxnPutArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Puts in each transaction (distinct, consecutive keys).
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Put keys 0..N (sequentially, untimed) before the run, so that deletes remove something.
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
}

#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Fraction of requests that are reads (single-key ranges); the rest are puts.
    #[arg(long, default_value_t = 0.5)]
    pub read_ratio: f64,

    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,

    /// Put keys 0..N (sequentially, untimed) before the run.
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The work dir of a `scripts/compare-etcd` run (BENCH_KEEP=1 keeps it).
    #[arg(long)]
    pub work: PathBuf,

    /// The report to write.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct StatArgs {
    /// Process id of the server.
    #[arg(long)]
    pub pid: u32,

    /// The server's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,

    /// After reading, restart the process's peak resident memory (VmHWM) from its current
    /// resident memory, so that the next `stat` shows the peak since this one.
    #[arg(long)]
    pub reset_peak: bool,
}

/// Put latency while a member defragments: fills the store with --garbage keys, deletes and
/// compacts them so that the defragment has something to rewrite, then puts from --clients for
/// --duration and asks the first endpoint to defragment a third of the way in.
#[derive(Debug, Clone, Args)]
pub struct DefragArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub keys: KeyArgs,

    /// Keys of --val-size written, deleted and compacted away before the run.
    #[arg(long, default_value_t = 100_000)]
    pub garbage: u64,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Comma-separated gRPC endpoints (host:port or http://host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Keep trying for this long until every endpoint answers (e.g. 10s); 0 tries once.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub wait: Duration,
}

/// When a run stops: after `total` requests, or at `duration`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub total: u64,
    pub duration: Option<Duration>,
}

impl LoadArgs {
    /// Checks the flags that clap cannot, and says when the run ends.
    pub fn bounds(&self) -> anyhow::Result<Bounds> {
        if self.endpoints.iter().all(|e| e.trim().is_empty()) {
            bail!("--endpoints: give at least one endpoint");
        }
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        if self.conns == 0 {
            bail!("--conns must be at least 1");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be a number >= 0 (0 means no limit)");
        }
        if self.timeout.is_zero() {
            bail!("--timeout must be more than 0");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be more than 0");
        }
        let total = match (self.total, self.duration) {
            (Some(0), _) => bail!("--total must be at least 1"),
            (Some(t), _) => t,
            (None, Some(_)) => u64::MAX,
            (None, None) => DEFAULT_TOTAL,
        };
        Ok(Bounds {
            total,
            duration: self.duration,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Comma-separated gRPC endpoints; watchers and puts spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Watch streams, one watcher each, all on --key-prefix.
    #[arg(long, default_value_t = 1)]
    pub watchers: usize,

    /// Connections the watch streams share.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,

    /// Puts to send (one at a time, from one client).
    #[arg(long, default_value_t = 100)]
    pub total: u64,

    /// Puts per second; 0 sends each as soon as the previous one is acknowledged.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Value size in bytes (at least 16: the put's number and send time travel in it).
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,

    /// The watched prefix; the puts' keys are under it.
    #[arg(long, default_value = "bench-watch/")]
    pub key_prefix: String,

    /// Give up if the watchers have not seen every put this long after the last one.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// Each client is a keep-alive stream with a lease of its own; --rate is not supported.
#[derive(Debug, Clone, Args)]
pub struct LeaseKeepaliveArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How `rollup` sends its samples.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// conclave's Ingest service, --batch samples per request.
    Ingest,
    /// One etcd Put per sample, under the rule's source prefix.
    Put,
}

#[derive(Debug, Clone, Args)]
pub struct RollupArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// How samples are sent.
    #[arg(long, value_enum, default_value = "ingest")]
    pub via: Via,

    /// Samples per Ingest request (with --via put, each put is one sample).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,

    /// Distinct series the samples are spread over.
    #[arg(long, default_value_t = 100)]
    pub series: usize,

    /// The rule's source prefix: series are named `<prefix>s<n>`.
    #[arg(long, default_value = "/metrics/")]
    pub source_prefix: String,

    /// The rule's target prefix, whose rollups' "count" fields are summed.
    #[arg(long, default_value = "/rollup/")]
    pub target_prefix: String,

    /// How long to wait, after the last request, for the rollups to count every sample.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub settle: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// The lock's name.
    #[arg(long, default_value = "bench-lock")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ElectionFailoverArgs {
    /// Comma-separated gRPC endpoints: the leader uses the first, the candidate the last.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Failovers to time.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,

    /// The leases' TTL in seconds (the failover cannot be faster).
    #[arg(long, default_value_t = 2)]
    pub ttl: i64,
}

#[derive(Debug, Clone, Args)]
pub struct WriteProbeArgs {
    /// Comma-separated gRPC endpoints, tried in turn, one attempt each.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Count from this moment (nanoseconds since the Unix epoch, as `date +%s%N` prints it),
    /// e.g. when the leader was killed; the default is when the probe starts.
    #[arg(long)]
    pub since_unix_ns: Option<u128>,

    /// Give up on one attempt after this long and try the next endpoint; this bounds how
    /// precisely the moment of the first successful write is known.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub attempt_timeout: Duration,

    /// Fail if no put has succeeded after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub give_up_after: Duration,

    /// The key to put.
    #[arg(long, default_value = "write-probe")]
    pub key: String,
}

#[derive(Debug, Clone, Args)]
pub struct RollupProbeArgs {
    /// Comma-separated gRPC endpoints, tried in turn.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Count from this moment (nanoseconds since the Unix epoch, as `date +%s%N` prints it);
    /// only rollups of windows that started at or after its window count.
    #[arg(long)]
    pub since_unix_ns: Option<u128>,

    /// The rule's window length.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub resolution: Duration,

    /// The key the samples are put to (under the rule's source prefix).
    #[arg(long, default_value = "/probe/s")]
    pub key: String,

    /// Where the rule writes: rollups are `<prefix><series>/<window start ms>`.
    #[arg(long, default_value = "/probe-rollup/")]
    pub target_prefix: String,

    /// Give up on one request after this long and try the next endpoint.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub attempt_timeout: Duration,

    /// Fail if no such rollup appeared after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub give_up_after: Duration,
}

/// Parses `250ms`, `30s`, `2m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("invalid duration {s:?}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => bail!("invalid duration {s:?}: unknown unit {other:?} (use ms, s, m or h)"),
    };
    Duration::try_from_secs_f64(seconds).with_context(|| format!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2").ok(), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("1.5m").ok(), Some(Duration::from_secs(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn bounds() {
        let cli = Cli::parse_from(["conclave-bench", "put"]);
        let Command::Put(put) = cli.command else {
            panic!("parsed as another subcommand");
        };
        let b = put.load.bounds().ok();
        assert_eq!(b.map(|b| b.total), Some(DEFAULT_TOTAL));

        let cli = Cli::parse_from(["conclave-bench", "put", "--duration", "1s"]);
        let Command::Put(put) = cli.command else {
            panic!("parsed as another subcommand");
        };
        assert_eq!(put.load.bounds().ok().map(|b| b.total), Some(u64::MAX));

        let cli = Cli::parse_from(["conclave-bench", "put", "--clients", "0"]);
        let Command::Put(put) = cli.command else {
            panic!("parsed as another subcommand");
        };
        assert!(put.load.bounds().is_err());
    }
}
