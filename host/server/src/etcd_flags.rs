//! etcd's server flags (3.4 and 3.5) that conclave takes without acting on them as etcd would,
//! so that a unit file, Helm chart or test harness written for etcd starts conclave unchanged.
//! Each is accepted by its etcd name and its `ETCD_*` variable and has one of three fates:
//! a startup warning saying why it has no effect here, nothing at all when conclave always
//! does what the flag asks (with a warning if it asks for the opposite), or a refusal to
//! start when ignoring it would be unsafe (a security restriction conclave cannot enforce, a
//! way of bootstrapping it does not have). The flags conclave implements live in `config`.

use clap::{Arg, ArgAction, ArgMatches, Command, parser::ValueSource};

/// How a flag takes its value, as Go's flag package does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// `--flag`, `--flag=true`, `--flag=false` (never `--flag false`).
    Bool,
    Value,
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Accepted; a warning says why it changes nothing.
    NoEffect(&'static str),
    /// A bool flag for something conclave always does: silent when true, a warning when false.
    AlwaysOn(&'static str),
    /// conclave refuses to start: running without what the flag asks would be unsafe.
    Refused(&'static str),
}

struct Flag {
    name: &'static str,
    takes: Takes,
    fate: Fate,
}

const fn flag(name: &'static str, takes: Takes, fate: Fate) -> Flag {
    Flag { name, takes, fate }
}

use Fate::{AlwaysOn, NoEffect, Refused};
use Takes::{Bool, Value};

const FJALL: &str = "conclave's store is fjall (an LSM tree), not bbolt";
const NO_V2: &str = "conclave serves only the v3 API";
const NO_PROXY: &str = "conclave has no v2 proxy mode";
const NO_TRACING: &str = "conclave exports no OpenTelemetry traces";
const NO_DOWNGRADE: &str = "conclave has no cluster downgrade";
const MEMBER_CLIENT: &str =
    "conclave members never call each other's client ports; peers use --peer-cert-file";
const NO_ROTATION: &str =
    "conclave does not rotate its own logs; use logrotate or journald, or --log-outputs";
const CHECKED_PEERS: &str = "conclave checks every peer against the cluster CA and its member name";

/// Every etcd flag conclave accepts without implementing it as etcd does.
const FLAGS: &[Flag] = &[
    flag("backend-batch-interval", Value, NoEffect(FJALL)),
    flag("backend-batch-limit", Value, NoEffect(FJALL)),
    flag("backend-bbolt-freelist-type", Value, NoEffect(FJALL)),
    flag(
        "experimental-backend-bbolt-freelist-type",
        Value,
        NoEffect(FJALL),
    ),
    flag(
        "experimental-bootstrap-defrag-threshold-megabytes",
        Value,
        NoEffect(FJALL),
    ),
    flag(
        "experimental-txn-mode-write-with-shared-buffer",
        Bool,
        NoEffect(FJALL),
    ),
    flag(
        "experimental-compaction-batch-limit",
        Value,
        NoEffect("conclave's MVCC compaction batches its deletes itself"),
    ),
    flag(
        "experimental-compaction-sleep-interval",
        Value,
        NoEffect("conclave's MVCC compaction batches its deletes itself"),
    ),
    flag(
        "experimental-stop-grpc-service-on-defrag",
        Bool,
        NoEffect("conclave keeps serving while it defragments"),
    ),
    flag(
        "experimental-memory-mlock",
        Bool,
        NoEffect("conclave does not lock its memory"),
    ),
    flag(
        "discovery",
        Value,
        Refused("conclave has no discovery service: list the members with --initial-cluster"),
    ),
    flag(
        "discovery-srv",
        Value,
        Refused("conclave does not look members up in DNS: list them with --initial-cluster"),
    ),
    flag(
        "discovery-fallback",
        Value,
        NoEffect("used only with --discovery"),
    ),
    flag(
        "discovery-proxy",
        Value,
        NoEffect("used only with --discovery"),
    ),
    flag(
        "discovery-srv-name",
        Value,
        NoEffect("used only with --discovery-srv"),
    ),
    flag("enable-v2", Bool, NoEffect(NO_V2)),
    flag("experimental-enable-v2v3", Value, NoEffect(NO_V2)),
    flag("v2-deprecation", Value, NoEffect(NO_V2)),
    flag(
        "enable-grpc-gateway",
        Bool,
        AlwaysOn("the JSON gateway is always served on the client port"),
    ),
    flag("proxy", Value, NoEffect(NO_PROXY)),
    flag("proxy-dial-timeout", Value, NoEffect(NO_PROXY)),
    flag("proxy-failure-wait", Value, NoEffect(NO_PROXY)),
    flag("proxy-read-timeout", Value, NoEffect(NO_PROXY)),
    flag("proxy-refresh-interval", Value, NoEffect(NO_PROXY)),
    flag("proxy-write-timeout", Value, NoEffect(NO_PROXY)),
    flag(
        "experimental-enable-distributed-tracing",
        Bool,
        NoEffect(NO_TRACING),
    ),
    flag(
        "experimental-distributed-tracing-address",
        Value,
        NoEffect(NO_TRACING),
    ),
    flag(
        "experimental-distributed-tracing-instance-id",
        Value,
        NoEffect(NO_TRACING),
    ),
    flag(
        "experimental-distributed-tracing-sampling-rate",
        Value,
        NoEffect(NO_TRACING),
    ),
    flag(
        "experimental-distributed-tracing-service-name",
        Value,
        NoEffect(NO_TRACING),
    ),
    flag(
        "experimental-enable-lease-checkpoint",
        Bool,
        AlwaysOn("conclave always keeps a lease's remaining TTL across leader changes"),
    ),
    flag(
        "experimental-enable-lease-checkpoint-persist",
        Bool,
        AlwaysOn("conclave always keeps a lease's remaining TTL across leader changes"),
    ),
    flag(
        "experimental-peer-skip-client-san-verification",
        Bool,
        NoEffect(CHECKED_PEERS),
    ),
    flag(
        "experimental-downgrade-check-time",
        Value,
        NoEffect(NO_DOWNGRADE),
    ),
    flag(
        "next-cluster-version-compatible",
        Bool,
        NoEffect(NO_DOWNGRADE),
    ),
    flag(
        "experimental-compact-hash-check-enabled",
        Bool,
        NoEffect("conclave compares whole-store hashes instead: --experimental-corrupt-check-time"),
    ),
    flag(
        "experimental-compact-hash-check-time",
        Value,
        NoEffect("conclave compares whole-store hashes instead: --experimental-corrupt-check-time"),
    ),
    flag(
        "socket-reuse-address",
        Bool,
        AlwaysOn("listeners always set SO_REUSEADDR, as Go's and Rust's do on Unix"),
    ),
    flag(
        "grpc-keepalive-min-time",
        Value,
        NoEffect(
            "clients' pings are answered however often they come (no ping policy in HTTP/2 here)",
        ),
    ),
    flag(
        "host-whitelist",
        Value,
        NoEffect("conclave serves no v2 API and sends no CORS headers, which is what it guards"),
    ),
    flag(
        "cors",
        Value,
        NoEffect("conclave sends no CORS headers: pages from other origins cannot call it"),
    ),
    flag(
        "initial-election-tick-advance",
        Bool,
        NoEffect("openraft runs its own election timer"),
    ),
    flag(
        "pre-vote",
        Bool,
        AlwaysOn("a member always pre-votes before it campaigns"),
    ),
    flag(
        "max-snapshots",
        Value,
        NoEffect("conclave keeps one snapshot and trims its own Raft log"),
    ),
    flag(
        "max-wals",
        Value,
        NoEffect("conclave keeps one snapshot and trims its own Raft log"),
    ),
    flag(
        "wal-dir",
        Value,
        NoEffect("conclave keeps its Raft log inside --data-dir"),
    ),
    flag(
        "unsafe-no-fsync",
        Bool,
        NoEffect("conclave always syncs its log before acknowledging a write"),
    ),
    flag(
        "raft-read-timeout",
        Value,
        NoEffect("the peer transport is QUIC with its own timeouts"),
    ),
    flag(
        "raft-write-timeout",
        Value,
        NoEffect("the peer transport is QUIC with its own timeouts"),
    ),
    flag(
        "self-signed-cert-validity",
        Value,
        NoEffect("the certificates conclave makes itself are valid for ten years"),
    ),
    flag("client-cert-file", Value, NoEffect(MEMBER_CLIENT)),
    flag("client-key-file", Value, NoEffect(MEMBER_CLIENT)),
    flag("peer-client-cert-file", Value, NoEffect(MEMBER_CLIENT)),
    flag("peer-client-key-file", Value, NoEffect(MEMBER_CLIENT)),
    flag("peer-client-cert-auth", Bool, AlwaysOn(CHECKED_PEERS)),
    flag(
        "client-crl-file",
        Value,
        Refused("conclave does not check certificate revocation lists"),
    ),
    flag(
        "peer-crl-file",
        Value,
        Refused("conclave does not check certificate revocation lists"),
    ),
    flag(
        "client-cert-allowed-hostname",
        Value,
        Refused("conclave cannot restrict client certificates by hostname"),
    ),
    flag(
        "peer-cert-allowed-cn",
        Value,
        Refused("conclave checks peers by the cluster CA and member name, not by a CN you give"),
    ),
    flag(
        "peer-cert-allowed-hostname",
        Value,
        Refused("conclave checks peers by the cluster CA and member name, not by a hostname"),
    ),
    flag(
        "cipher-suites",
        Value,
        NoEffect("rustls offers only its own modern suites (TLS 1.2 AEAD and TLS 1.3)"),
    ),
    flag(
        "tls-min-version",
        Value,
        NoEffect("rustls speaks TLS 1.2 and 1.3 only"),
    ),
    flag(
        "tls-max-version",
        Value,
        NoEffect("rustls speaks TLS 1.2 and 1.3 only"),
    ),
    flag(
        "log-package-levels",
        Value,
        NoEffect("use --log-level with tracing directives"),
    ),
    flag("enable-log-rotation", Bool, NoEffect(NO_ROTATION)),
    flag("log-rotation-config-json", Value, NoEffect(NO_ROTATION)),
];

/// The environment variable etcd reads for a flag.
pub fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.replace('-', "_").to_uppercase())
}

/// Go's flag package reads bools as `--flag` or `--flag=VALUE`; clap, told so.
pub fn go_bool(arg: Arg) -> Arg {
    arg.num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .action(ArgAction::Set)
        .value_parser(clap::builder::BoolishValueParser::new())
}

/// conclave's own flags that are Go bools in etcd (the derive cannot say so itself).
const GO_BOOLS: &[&str] = &[
    "client_cert_auth",
    "debug",
    "force_new_cluster",
    "strict_reconfig_check",
    "socket_reuse_port",
    "experimental_initial_corrupt_check",
    "auto_tls",
    "peer_auto_tls",
    "enable_pprof",
];

/// `command` with every flag of the table added, hidden from `--help` (docs/OPERATIONS.md
/// lists them), and the implemented Go bools read as Go reads them.
pub fn augment(command: Command) -> Command {
    let command = GO_BOOLS.iter().fold(command, |command, id| {
        if command.get_arguments().any(|a| a.get_id() == id) {
            command.mut_arg(*id, go_bool)
        } else {
            command
        }
    });
    command.args(FLAGS.iter().map(|f| {
        let arg = Arg::new(f.name)
            .long(f.name)
            .env(env_name(f.name))
            .hide(true);
        match f.takes {
            Bool => go_bool(arg),
            // Go's repeated flags: the last one given counts.
            Value => arg
                .action(ArgAction::Set)
                .num_args(1)
                .overrides_with(f.name),
        }
    }))
}

/// What the flags given ask of the operator.
#[derive(Debug, Default)]
pub struct Notices {
    /// One line each, to log as warnings once logging is set up.
    pub warnings: Vec<String>,
    /// Why conclave must not start, if it must not.
    pub refusals: Vec<String>,
}

/// Reads which of the table's flags were given (on the command line, in the config file or
/// in the environment) and what each means for this run.
pub fn notices(matches: &ArgMatches) -> Notices {
    let mut out = Notices::default();
    for f in FLAGS {
        let source = matches.value_source(f.name);
        if !matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let given = match f.takes {
            Bool => matches
                .get_one::<bool>(f.name)
                .copied()
                .unwrap_or(true)
                .to_string(),
            Value => matches
                .get_one::<String>(f.name)
                .cloned()
                .unwrap_or_default(),
        };
        let shown = format!("--{}={given}", f.name);
        match f.fate {
            NoEffect(why) => out.warnings.push(format!(
                "{shown} is accepted for etcd's sake and has no effect: {why}"
            )),
            AlwaysOn(_) if given == "true" => {}
            AlwaysOn(why) => out
                .warnings
                .push(format!("{shown} cannot be turned off in conclave: {why}")),
            Refused(why) => out.refusals.push(format!("{shown}: {why}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Notices {
        let command = augment(Command::new("t").no_binary_name(true));
        notices(&command.try_get_matches_from(args).expect("parses"))
    }

    #[test]
    fn go_style_bools_and_values_parse_with_their_fates() {
        let n = parse(&[
            "--enable-v2",
            "--wal-dir",
            "/w",
            "--peer-client-cert-auth=true",
        ]);
        assert_eq!(n.warnings.len(), 2, "{:?}", n.warnings);
        assert!(
            n.warnings
                .iter()
                .any(|w| w.starts_with("--wal-dir=/w is accepted")),
            "{:?}",
            n.warnings
        );
        assert!(
            n.warnings.iter().any(|w| w.starts_with("--enable-v2=true")),
            "{:?}",
            n.warnings
        );
        assert!(n.refusals.is_empty());

        let n = parse(&["--peer-client-cert-auth=false", "--client-crl-file=/crl"]);
        assert_eq!(n.warnings.len(), 1);
        assert!(n.warnings[0].contains("cannot be turned off"));
        assert_eq!(n.refusals.len(), 1);
        assert!(n.refusals[0].starts_with("--client-crl-file=/crl"));
    }

    #[test]
    fn every_flag_has_a_unique_name_and_etcds_variable() {
        let mut names: Vec<&str> = FLAGS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a flag is listed twice");
        assert_eq!(env_name("wal-dir"), "ETCD_WAL_DIR");
    }
}

#[cfg(test)]
mod documented {
    /// docs/OPERATIONS.md lists every flag of the table, so an operator finds why it does
    /// nothing without reading the code.
    #[test]
    fn every_flag_is_in_the_operations_guide() {
        let guide = include_str!("../../../docs/OPERATIONS.md");
        for f in super::FLAGS {
            assert!(
                guide.contains(&format!("`--{}`", f.name)),
                "docs/OPERATIONS.md does not list --{}",
                f.name
            );
        }
    }
}
