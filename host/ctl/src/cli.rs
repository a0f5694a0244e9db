//! The command line: global flags as etcdctl names them (also read from `ETCDCTL_*`
//! variables, as etcdctl does) and the commands.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    certs::CertsCommand, compaction::CompactionArgs, del::DelArgs, endpoint::EndpointCommand,
    get::GetArgs, plugin::PluginCommand, put::PutArgs, snapshot::SnapshotCommand, txn::TxnArgs,
};
use crate::gofmt::parse_duration;

/// A command line client for conclave and other etcd v3 servers, in the manner of etcdctl.
#[derive(Parser, Debug)]
#[command(
    name = "conclavectl",
    version,
    infer_subcommands = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// gRPC endpoints (comma-separated)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        env = "ETCDCTL_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration, env = "ETCDCTL_DIAL_TIMEOUT")]
    pub dial_timeout: Duration,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration, env = "ETCDCTL_COMMAND_TIMEOUT")]
    pub command_timeout: Duration,
    /// set the output format (simple, json, table)
    #[arg(
        short = 'w',
        long,
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, env = "ETCDCTL_HEX")]
    pub hex: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Get(GetArgs),
    Put(PutArgs),
    Del(DelArgs),
    Txn(TxnArgs),
    Compaction(CompactionArgs),
    /// Endpoint related commands
    #[command(subcommand, arg_required_else_help = true)]
    Endpoint(EndpointCommand),
    /// Manages snapshots: save, status, restore
    #[command(subcommand, arg_required_else_help = true)]
    Snapshot(SnapshotCommand),
    /// Peer TLS certificates for a conclave cluster
    #[command(subcommand, arg_required_else_help = true)]
    Certs(CertsCommand),
    /// WASM plugins in a running conclave cluster
    #[command(subcommand, arg_required_else_help = true)]
    Plugin(PluginCommand),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(std::iter::once("conclavectl").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn globals_have_etcdctl_defaults() {
        let cli = parse(&["get", "k"]);
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(cli.global.dial_timeout, Duration::from_secs(2));
        assert_eq!(cli.global.command_timeout, Duration::from_secs(5));
        assert_eq!(cli.global.write_out, "simple");
    }

    #[test]
    fn globals_go_anywhere() {
        let cli = parse(&[
            "get",
            "k",
            "--endpoints=a:1,b:2",
            "-w",
            "json",
            "--dial-timeout",
            "500ms",
        ]);
        assert_eq!(cli.global.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(cli.global.write_out, "json");
        assert_eq!(cli.global.dial_timeout, Duration::from_millis(500));
    }

    #[test]
    fn commands_take_their_flags() {
        let cli = parse(&["put", "k", "v", "--prev-kv", "--lease", "1f"]);
        assert!(matches!(cli.command, Command::Put(ref p) if p.prev_kv && p.lease == "1f"));
        let cli = parse(&["del", "k", "--prefix", "--prev-kv"]);
        assert!(matches!(cli.command, Command::Del(ref d) if d.prefix && d.prev_kv));
        let cli = parse(&["txn", "-i"]);
        assert!(matches!(cli.command, Command::Txn(ref t) if t.interactive));
        let cli = parse(&["compaction", "5", "--physical"]);
        assert!(matches!(cli.command, Command::Compaction(ref c) if c.physical));
        let cli = parse(&["endpoint", "health"]);
        assert!(matches!(
            cli.command,
            Command::Endpoint(EndpointCommand::Health)
        ));
        let cli = parse(&["get", "k", "--limit", "-1", "--sort-by=VALUE"]);
        assert!(
            matches!(cli.command, Command::Get(ref g) if g.limit == -1 && g.sort_by == "VALUE")
        );
    }

    #[test]
    fn values_after_double_dash_may_start_with_a_dash() {
        let cli = parse(&["put", "k", "--", "-v"]);
        assert!(matches!(cli.command, Command::Put(ref p) if p.args.len() == 2));
    }
}
