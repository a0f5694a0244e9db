//! The server's command line, with etcd's flag names so that etcd's docs and scripts carry over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

/// The etcd API version conclave speaks; clients use it to decide which features to use.
pub const ETCD_API_VERSION: &str = "3.5.0";
/// etcd's bcrypt cost (--bcrypt-cost's default).
pub const BCRYPT_COST: u32 = 10;
/// etcd's default backend quota.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "conclave",
    version,
    about = "An etcd-compatible coordination store. With no flags: one member serving on 127.0.0.1:2379, data in ./default.conclave."
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// Human-readable name for this member.
    #[arg(long, default_value = "default", env = "ETCD_NAME")]
    pub name: String,

    /// Path to the data directory [default: ./<name>.conclave].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Comma-separated URLs to listen on for client traffic (gRPC and the JSON gateway).
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379",
        env = "ETCD_LISTEN_CLIENT_URLS",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,

    /// Comma-separated client URLs to advertise to the rest of the cluster [default: the listen URLs].
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,

    /// Comma-separated URLs to listen on for peer traffic: `https://host:port`, a UDP port
    /// (members talk QUIC).
    #[arg(
        long,
        default_value = "https://127.0.0.1:2380",
        env = "ETCD_LISTEN_PEER_URLS",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,

    /// Comma-separated peer URLs to advertise to the rest of the cluster [default: the listen peer URLs].
    #[arg(long, env = "ETCD_INITIAL_ADVERTISE_PEER_URLS", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,

    /// The members of a new cluster: `name=https://host:port,...` [default: this member alone].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// `new` to start a new cluster, `existing` to join one (after `member add`).
    #[arg(long, value_enum, default_value_t = ClusterState::New, env = "ETCD_INITIAL_CLUSTER_STATE")]
    pub initial_cluster_state: ClusterState,

    /// This member's peer certificate [default: made in the data dir, single member only].
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,

    /// The key of --peer-cert-file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,

    /// The cluster CA every peer certificate must be signed by.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,

    /// Time between leader heartbeats, in milliseconds.
    #[arg(long, default_value_t = 100, env = "ETCD_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: u64,

    /// Time without a heartbeat before a follower campaigns, in milliseconds.
    #[arg(long, default_value_t = 1000, env = "ETCD_ELECTION_TIMEOUT")]
    pub election_timeout: u64,

    /// Applied entries between two snapshots (after which the log behind it is purged).
    #[arg(long, default_value_t = 10_000, env = "ETCD_SNAPSHOT_COUNT")]
    pub snapshot_count: u64,

    /// Log entries kept behind a snapshot for slow members to catch up from, before they
    /// need the whole snapshot (etcd 3.6's flag, same default).
    #[arg(
        long,
        default_value_t = 5_000,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES"
    )]
    pub experimental_snapshot_catchup_entries: u64,

    /// How often an idle watcher created with progress_notify hears the current revision
    /// (e.g. 10m, 30s; etcd 3.4/3.5 call it --experimental-watch-progress-notify-interval).
    #[arg(
        long,
        default_value = "10m",
        value_parser = humantime::parse_duration,
        alias = "experimental-watch-progress-notify-interval",
        env = "ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL"
    )]
    pub watch_progress_notify_interval: Duration,

    /// Initial cluster token; part of the member and cluster IDs.
    #[arg(
        long,
        default_value = "etcd-cluster",
        env = "ETCD_INITIAL_CLUSTER_TOKEN"
    )]
    pub initial_cluster_token: String,

    /// The store size past which a NOSPACE alarm stops writes that would grow it, in bytes
    /// (0: etcd's default, 2 GiB; below 0: no quota).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        env = "ETCD_QUOTA_BACKEND_BYTES"
    )]
    pub quota_backend_bytes: i64,

    /// How --auto-compaction-retention is read: `periodic` (a duration) or `revision` (a count).
    #[arg(long, value_enum, default_value_t = AutoCompactionMode::Periodic, env = "ETCD_AUTO_COMPACTION_MODE")]
    pub auto_compaction_mode: AutoCompactionMode,

    /// History the leader keeps before compacting it: for `periodic`, a duration (`30m`, `2h`;
    /// a bare number is hours), for `revision`, a number of revisions. 0: no auto-compaction.
    #[arg(long, default_value = "0", env = "ETCD_AUTO_COMPACTION_RETENTION")]
    pub auto_compaction_retention: String,

    /// How often the leader compares every member's HashKV with its own, raising a CORRUPT
    /// alarm for a member that differs (e.g. 5m; 0: never).
    #[arg(
        long,
        default_value = "0s",
        value_parser = humantime::parse_duration,
        env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME"
    )]
    pub experimental_corrupt_check_time: Duration,

    /// Before serving clients, compare this member's HashKV with every peer's at its revision,
    /// and refuse to start if one differs (etcd's flag).
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        default_value = "false"
    )]
    pub experimental_initial_corrupt_check: bool,

    /// Serve CPU and heap profiles in pprof's format at /debug/pprof/profile and
    /// /debug/pprof/heap on the client port (etcd's flag; root only when auth is on).
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_ENABLE_PPROF", default_value = "false")]
    pub enable_pprof: bool,

    /// Ping a client connection idle this long, to see whether it is alive (etcd's flag).
    #[arg(
        long,
        default_value = "2h",
        value_parser = humantime::parse_duration,
        env = "ETCD_GRPC_KEEPALIVE_INTERVAL"
    )]
    pub grpc_keepalive_interval: Duration,

    /// Close a client connection whose ping goes unanswered this long (etcd's flag).
    #[arg(
        long,
        default_value = "20s",
        value_parser = humantime::parse_duration,
        env = "ETCD_GRPC_KEEPALIVE_TIMEOUT"
    )]
    pub grpc_keepalive_timeout: Duration,

    /// Streams (RPCs, watch and keep-alive streams) one client connection may have open at
    /// once; more wait for one to end (etcd's flag; unlimited by default, as etcd's).
    #[arg(long, default_value_t = u32::MAX, env = "ETCD_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: u32,

    /// An apply of committed entries that takes longer than this is logged as a warning,
    /// with what it applied (etcd's "apply request took too long").
    #[arg(
        long,
        default_value = "100ms",
        value_parser = humantime::parse_duration,
        env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION"
    )]
    pub experimental_warning_apply_duration: Duration,

    /// SO_REUSEPORT on the client and metrics listeners (etcd's flag): several processes may
    /// listen on one port.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_SOCKET_REUSE_PORT", default_value = "false")]
    pub socket_reuse_port: bool,

    /// On an empty data dir, first restore the store from this snapshot file (from `etcdctl
    /// snapshot save`, `conclavectl snapshot save` or --backup-dir); ignored once the data
    /// dir holds a store. The member then forms a new cluster from its flags.
    #[arg(long, env = "CONCLAVE_RESTORE_FROM")]
    pub restore_from: Option<PathBuf>,

    /// Write a snapshot of the whole state to this directory every --backup-interval, from
    /// the leader.
    #[arg(long, env = "CONCLAVE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Time between two scheduled backups (e.g. 1h, 15m).
    #[arg(
        long,
        default_value = "1h",
        value_parser = humantime::parse_duration,
        env = "CONCLAVE_BACKUP_INTERVAL"
    )]
    pub backup_interval: Duration,

    /// How many scheduled backups to keep: the newest; older ones are removed.
    #[arg(long, default_value_t = 24, env = "CONCLAVE_BACKUP_RETAIN")]
    pub backup_retain: usize,

    /// The largest client request, in bytes (etcd's flag): writes over it are refused with
    /// "etcdserver: request is too large".
    #[arg(long, default_value_t = crate::limits::MAX_REQUEST_BYTES, env = "ETCD_MAX_REQUEST_BYTES")]
    pub max_request_bytes: usize,

    /// The most operations one txn may run, nested txns counted (etcd's flag).
    #[arg(long, default_value_t = crate::limits::MAX_TXN_OPS, env = "ETCD_MAX_TXN_OPS")]
    pub max_txn_ops: usize,

    /// What tokens are (etcd's flag): `simple` (opaque tokens signed with the cluster's key),
    /// or `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|PS256|ES256|EdDSA|HS256|...
    /// [,ttl=5m]` (JSON Web Tokens with etcd's claims).
    #[arg(long, default_value = "simple", env = "ETCD_AUTH_TOKEN")]
    pub auth_token: String,

    /// The bcrypt cost of password hashes made from now on (etcd's flag, 4 to 31); existing
    /// hashes keep theirs.
    #[arg(
        long,
        default_value_t = BCRYPT_COST,
        value_parser = clap::value_parser!(u32).range(4..=31),
        env = "ETCD_BCRYPT_COST"
    )]
    pub bcrypt_cost: u32,

    /// How long an auth token is valid, in seconds (etcd's simple-token TTL).
    #[arg(long, default_value_t = 300, env = "ETCD_AUTH_TOKEN_TTL")]
    pub auth_token_ttl: u64,

    /// The client port's TLS certificate (https:// client URLs need it).
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,

    /// The key of --cert-file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// The CA client certificates must be signed by (with --client-cert-auth).
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,

    /// Require a client certificate from --trusted-ca-file; with auth on, its CN is the user.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false")]
    pub client_cert_auth: bool,

    /// With https:// client URLs and no --cert-file: serve a certificate conclave makes itself
    /// (etcd's flag). Clients cannot verify it: they skip verification (etcdctl:
    /// `--insecure-transport=false --insecure-skip-tls-verify`) or trust `<data-dir>/tls/ca.crt`.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false")]
    pub auto_tls: bool,

    /// Without --peer-cert-file: each member makes its own certificate, and peers encrypt but
    /// do NOT authenticate each other (etcd's flag): anyone who reaches the peer port can
    /// join. For a cluster you trust, give members certificates from one CA.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false")]
    pub peer_auto_tls: bool,

    /// More URLs to listen on for clients (etcd serves only HTTP, not gRPC, on these; conclave
    /// serves both, as on --listen-client-urls).
    #[arg(long, env = "ETCD_LISTEN_CLIENT_HTTP_URLS", value_delimiter = ',')]
    pub listen_client_http_urls: Vec<String>,

    /// etcd's YAML configuration file (etcd's keys). When given, the command line's other
    /// flags and the ETCD_* variables are ignored, as etcd ignores them.
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// `zap` writes JSON log lines with etcd's field names (level, ts, caller, msg);
    /// `capnslog` (etcd 3.4's old logger) and the default write text.
    #[arg(long, value_enum, env = "ETCD_LOGGER")]
    pub logger: Option<Logger>,

    /// Where logs go: `default` or `stderr`, `stdout`, or file paths (appended to),
    /// comma-separated (etcd's flag; 3.4's --log-output too).
    #[arg(
        long,
        default_value = "default",
        env = "ETCD_LOG_OUTPUTS",
        value_delimiter = ',',
        alias = "log-output"
    )]
    pub log_outputs: Vec<String>,

    /// `basic` or `extensive` (adds per-method gRPC latency histograms), as etcd's.
    #[arg(long, value_enum, default_value_t = MetricsLevel::Basic, env = "ETCD_METRICS")]
    pub metrics: MetricsLevel,

    /// More URLs serving `/metrics` and the health probes (etcd's flag), e.g.
    /// `http://127.0.0.1:2381` for a Prometheus kept off the client port.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", value_delimiter = ',')]
    pub listen_metrics_urls: Vec<String>,

    /// Disaster recovery after quorum is lost for good: this member becomes a cluster of one,
    /// keeping its data (etcd's flag). Keep the other members stopped; remove the flag once
    /// it runs, and add members back with `member add`.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false")]
    pub force_new_cluster: bool,

    /// Refuse member changes that would leave the cluster without a working quorum (etcd's
    /// flag, on by default): adding a voter while one is out of touch, or removing one that is
    /// in touch when the rest are too few.
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true")]
    pub strict_reconfig_check: bool,

    /// Debug-level logs (etcd's flag: the same as --log-level debug).
    // A Go bool (`--flag`, `--flag=false`): etcd_flags::augment makes it one.
    #[arg(long, env = "ETCD_DEBUG", default_value = "false")]
    pub debug: bool,

    /// Threads that run the async runtime (requests, Raft, replication); 0 picks one fewer
    /// than the machine's cores, at least one, leaving a core to the Raft log's writer thread,
    /// state-machine applies and the store's compactions, which run on threads of their own.
    #[arg(long, default_value_t = 0, env = "CONCLAVE_WORKER_THREADS")]
    pub worker_threads: usize,

    /// Log level filter (error, warn, info, debug, trace, or a tracing filter directive).
    #[arg(long, default_value = "info", env = "CONCLAVE_LOG")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subcommand {
    /// Start a local cluster of N members on loopback, for trying things out.
    Dev(DevArgs),
}

/// `conclave dev`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// How many members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Where the members' data dirs and the certificates go.
    #[arg(long, default_value = "conclave-dev")]
    pub dir: PathBuf,
}

/// `--metrics`: etcd's `basic`, or `extensive` with per-method gRPC latency histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsLevel {
    Basic,
    Extensive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoCompactionMode {
    Periodic,
    Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Logger {
    Zap,
    Capnslog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The configuration, and what the etcd flags given ask of the operator.
pub struct Loaded {
    pub config: Config,
    pub notices: crate::etcd_flags::Notices,
}

impl Config {
    /// Reads the command line (or `--config-file`, which then replaces it and the
    /// environment) with every etcd flag accepted. Exits with clap's message on bad flags.
    pub fn load() -> Loaded {
        Self::load_from(std::env::args_os()).unwrap_or_else(|e| match e.downcast::<clap::Error>() {
            Ok(clap_error) => clap_error.exit(),
            Err(other) => {
                eprintln!("conclave: {other:#}");
                std::process::exit(2);
            }
        })
    }

    pub fn load_from<I, T>(args: I) -> anyhow::Result<Loaded>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let command = crate::etcd_flags::augment(Config::command());
        let mut matches = command.clone().try_get_matches_from(args)?;
        let mut file_warnings = Vec::new();
        if let Some(path) = matches.get_one::<PathBuf>("config_file").cloned() {
            let known = |name: &str| {
                name != "config-file"
                    && command.get_arguments().any(|a| {
                        a.get_long() == Some(name)
                            || a.get_all_aliases().is_some_and(|al| al.contains(&name))
                    })
            };
            let (file_args, warnings) = crate::config_file::arguments(&path, &known)?;
            file_warnings = warnings;
            let without_env = command.mut_args(|a| a.env(None::<&str>));
            let argv = std::iter::once("conclave".to_string()).chain(file_args);
            matches = without_env.try_get_matches_from(argv)?;
        }
        let config = Config::from_arg_matches(&matches)?;
        let mut notices = crate::etcd_flags::notices(&matches);
        notices.warnings.extend(file_warnings);
        Ok(Loaded { config, notices })
    }

    /// Every URL clients are served on.
    pub fn client_urls(&self) -> impl Iterator<Item = &String> {
        self.listen_client_urls
            .iter()
            .chain(&self.listen_client_http_urls)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.conclave", self.name)))
    }

    pub fn advertise_peer_urls(&self) -> Vec<String> {
        if self.initial_advertise_peer_urls.is_empty() {
            self.listen_peer_urls.clone()
        } else {
            self.initial_advertise_peer_urls.clone()
        }
    }

    /// The initial members by name, with their peer URLs, in the order given.
    pub fn initial_members(&self) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let Some(spec) = &self.initial_cluster else {
            return Ok(vec![(self.name.clone(), self.advertise_peer_urls())]);
        };
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .with_context(|| format!("--initial-cluster: {part:?} is not name=url"))?;
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => members.push((name.to_string(), vec![url.to_string()])),
            }
        }
        if !members.iter().any(|(n, _)| *n == self.name) {
            bail!(
                "--initial-cluster does not name this member ({}): {spec}",
                self.name
            );
        }
        Ok(members)
    }

    /// The backend quota in bytes; None for no quota.
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            0 => Some(DEFAULT_QUOTA_BYTES),
            q if q < 0 => None,
            q => Some(q as u64),
        }
    }

    pub fn advertise_client_urls(&self) -> Vec<String> {
        if self.advertise_client_urls.is_empty() {
            self.listen_client_urls.clone()
        } else {
            self.advertise_client_urls.clone()
        }
    }
}

/// The socket address an `http://host:port` URL names; `localhost` resolves to loopback.
pub async fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => bail!("{url}: URL must start with http:// or https://"),
    }
    resolve(url, &uri).await
}

/// The UDP address a peer URL names: `https://host:port` (QUIC is always encrypted).
pub async fn peer_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("{url}: a peer URL must start with https:// (members talk QUIC with mutual TLS)");
    }
    resolve(url, &uri).await
}

async fn resolve(url: &str, uri: &http::Uri) -> anyhow::Result<SocketAddr> {
    let host = uri.host().with_context(|| format!("{url}: no host"))?;
    let port = uri.port_u16().with_context(|| format!("{url}: no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("{url}: cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{url}: {host} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_client_urls() {
        assert_eq!(
            socket_addr("http://127.0.0.1:2379").await.unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert!(
            socket_addr("http://localhost:2379")
                .await
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert!(socket_addr("127.0.0.1:2379").await.is_err());
        assert!(socket_addr("http://127.0.0.1").await.is_err());
    }

    #[test]
    fn go_bools_read_as_go_reads_them() {
        let load = |args: &[&str]| {
            let argv = std::iter::once("conclave").chain(args.iter().copied());
            Config::load_from(argv).unwrap().config
        };
        assert!(!load(&[]).client_cert_auth);
        assert!(load(&["--client-cert-auth"]).client_cert_auth);
        assert!(load(&["--client-cert-auth=true"]).client_cert_auth);
        assert!(!load(&["--client-cert-auth=false"]).client_cert_auth);
        assert!(load(&["--debug"]).debug);
        assert!(!load(&["--debug=false"]).debug);
    }

    #[test]
    fn defaults_are_etcds() {
        let c = Config::parse_from(["conclave"]);
        assert_eq!(c.data_dir(), PathBuf::from("default.conclave"));
        assert_eq!(
            c.advertise_client_urls(),
            vec!["http://127.0.0.1:2379".to_string()]
        );
    }
}
