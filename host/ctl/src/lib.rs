//! conclavectl: a command-line client for conclave and any etcd v3 server, following etcdctl
//! 3.4's commands, flags, output (simple, json, table) and exit codes, so scripts written for
//! etcdctl keep working.

mod cli;
mod commands;
mod context;
mod error;
mod gofmt;
mod json;
mod output;
mod table;
mod txn_input;

use std::ffi::OsString;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::context::{Context, Io};
use crate::error::{CtlError, exit};

/// The `conclavectl` binary: runs [`run`] on the process's arguments and standard streams.
pub fn main() -> ExitCode {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut stdout = BufWriter::new(io::stdout().lock());
    let mut stderr = io::stderr().lock();
    let code = run(std::env::args_os(), &mut stdin, &mut stdout, &mut stderr);
    let code = match stdout.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe && code == exit::SUCCESS => {
            let _ = writeln!(stderr, "Error: {e}");
            exit::ERROR
        }
        _ => code,
    };
    ExitCode::from(code)
}

/// Runs one command line (`args` includes the program name) against the given streams and
/// returns the exit code, as etcdctl's: 0 success, 1 request error, 2 no connection, 3 bad
/// txn input, 4 unsupported flag value, 128 bad arguments.
pub fn run<I, T>(
    args: I,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, stdout, stderr),
    };
    let mut io = Io {
        stdin,
        stdout,
        stderr,
    };
    let result = Context::new(&cli.global).and_then(|ctx| match &cli.command {
        Command::Get(args) => commands::get::run(&ctx, args, &mut io),
        Command::Put(args) => commands::put::run(&ctx, args, &mut io),
        Command::Del(args) => commands::del::run(&ctx, args, &mut io),
        Command::Txn(args) => commands::txn::run(&ctx, args, &mut io),
        Command::Compaction(args) => commands::compaction::run(&ctx, args, &mut io),
        Command::Endpoint(cmd) => commands::endpoint::run(&ctx, cmd, &mut io),
        Command::Certs(cmd) => commands::certs::run(cmd, &mut io),
        Command::Snapshot(cmd) => commands::snapshot::run(&ctx, cmd, &mut io),
        Command::Plugin(cmd) => commands::plugin::run(&ctx, cmd, &mut io),
    });
    match result {
        Ok(()) => exit::SUCCESS,
        Err(CtlError { code, message }) => {
            // Whatever was printed before the error comes first, as with etcdctl's unbuffered
            // output.
            let _ = io.stdout.flush();
            if let Some(message) = message {
                let _ = writeln!(io.stderr, "Error: {message}");
            }
            code
        }
    }
}

/// Help and version go to stdout with success; usage errors to stderr as `Error: ...`.
fn usage_error(e: &clap::Error, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(stdout, "{text}");
            exit::SUCCESS
        }
        _ => {
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(stderr, "Error: {text}");
            exit::ERROR
        }
    }
}
