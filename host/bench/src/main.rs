//! `conclave-bench`: a load generator for etcd's v3 gRPC API, so that the same loads drive
//! conclave and etcd; see `args` for the command line.

mod args;
mod defrag_load;
mod election_load;
mod keys;
mod lease_load;
mod lock_load;
mod pool;
mod procstat;
mod report;
mod rollup_load;
mod rollup_probe;
mod runner;
mod stats;
mod status;
mod watch_load;
mod workload;
mod write_probe;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::Parser;

use args::{Cli, Command, KeyArgs, LoadArgs};
use keys::KeySpace;
use pool::Pool;
use runner::Plan;
use stats::{Report, RunInfo};
use workload::Workload;
use workload::delete::Delete;
use workload::mixed::Mixed;
use workload::put::Put;
use workload::range::Range;
use workload::txn_put::TxnPut;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conclave-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Put(a) => {
            let w = Put::new(KeySpace::new(&a.keys)?, a.keys.val_size);
            load("put", json, &a.load, &a.keys, 0, w).await
        }
        Command::Range(a) => {
            let w = Range::new(
                KeySpace::new(&a.keys)?,
                a.consistency,
                a.limit,
                a.prefix,
                a.preload.max(a.existing),
            )?;
            load("range", json, &a.load, &a.keys, a.preload, w).await
        }
        Command::TxnPut(a) => {
            let w = TxnPut::new(KeySpace::new(&a.keys)?, a.keys.val_size, a.txn_ops)?;
            load("txn-put", json, &a.load, &a.keys, 0, w).await
        }
        Command::Delete(a) => {
            let w = Delete::new(KeySpace::new(&a.keys)?);
            load("delete", json, &a.load, &a.keys, a.preload, w).await
        }
        Command::Mixed(a) => {
            let w = Mixed::new(
                KeySpace::new(&a.keys)?,
                a.keys.val_size,
                a.read_ratio,
                a.consistency,
                a.preload,
            )?;
            load("mixed", json, &a.load, &a.keys, a.preload, w).await
        }
        Command::Stat(a) => {
            procstat::check(&a.data_dir)?;
            let stat = procstat::ProcStat::read(a.pid, &a.data_dir)?;
            if a.reset_peak {
                procstat::reset_peak(a.pid)?;
            }
            print_result(json, &stat, stat.to_text())
        }
        Command::Status(a) => {
            let statuses = status::statuses(&a.endpoints, a.wait).await?;
            print_result(json, &statuses, status::to_text(&statuses))
        }
        Command::Watch(a) => {
            let report = watch_load::run(&a).await?;
            print_result(json, &report, report.to_text())
        }
        Command::LeaseKeepalive(a) => {
            let report = lease_load::run(&a).await?;
            print_result(json, &report, report.to_text())?;
            if report.ok == 0 {
                bail!("every keep-alive failed");
            }
            Ok(())
        }
        Command::Lock(a) => {
            let report = lock_load::run(&a).await?;
            print_result(json, &report, report.to_text())?;
            if report.ok == 0 {
                bail!("every lock cycle failed");
            }
            Ok(())
        }
        Command::ElectionFailover(a) => {
            let report = election_load::run(&a).await?;
            print_result(json, &report, report.to_text())?;
            if report.ok == 0 {
                bail!("no failover completed");
            }
            Ok(())
        }
        Command::Rollup(a) => {
            let report = rollup_load::run(&a).await?;
            print_result(json, &report, report.to_text())?;
            if report.counted < report.samples {
                bail!(
                    "the rollups counted {} of {} samples",
                    report.counted,
                    report.samples
                );
            }
            Ok(())
        }
        Command::RollupProbe(a) => {
            let report = rollup_probe::probe(&a).await?;
            print_result(json, &report, report.to_text())
        }
        Command::Defrag(a) => {
            let report = defrag_load::run(&a, json).await?;
            print_result(json, &report, report.to_text())
        }
        Command::Report(a) => report::run(&a),
        Command::WriteProbe(a) => {
            let report = write_probe::probe(&a).await?;
            print_result(json, &report, report.to_text())
        }
    }
}

/// Prints a result as one JSON object (--json) or as text.
fn print_result(json: bool, result: &impl serde::Serialize, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Puts keys `0..n` of `keys` (sequential) with every client; fails if any put fails.
async fn fill(
    pool: &Pool,
    urls: &[String],
    args: &LoadArgs,
    keys: &KeyArgs,
    n: u64,
    json: bool,
) -> anyhow::Result<()> {
    let put = Put::new(KeySpace::with_size(keys, n, true)?, keys.val_size);
    let plan = Plan {
        label: "preload",
        bounds: args::Bounds {
            total: n,
            duration: None,
        },
        rate: 0.0,
        clients: args.clients,
        progress: !json,
    };
    let outcome = runner::run(pool, Arc::new(put), &plan).await?;
    if outcome.recorder.failed() > 0 {
        let report = Report::new(
            RunInfo {
                workload: "preload",
                endpoints: urls,
                clients: args.clients,
                conns: args.conns,
                elapsed: outcome.elapsed,
            },
            &outcome.recorder,
        );
        bail!(
            "preload: {} of {n} puts failed:\n{}",
            outcome.recorder.failed(),
            report.to_text()
        );
    }
    Ok(())
}

/// Connects, preloads keys `0..preload` if asked, runs the workload and prints its report.
async fn load<W: Workload>(
    name: &str,
    json: bool,
    args: &LoadArgs,
    keys: &KeyArgs,
    preload: u64,
    workload: W,
) -> anyhow::Result<()> {
    let bounds = args.bounds()?;
    let pool = Pool::connect(&args.endpoints, args.conns, args.timeout).await?;
    let urls = pool::endpoint_urls(&args.endpoints)?;

    if preload > 0 {
        fill(&pool, &urls, args, keys, preload, json).await?;
    }

    let plan = Plan {
        label: name,
        bounds,
        rate: args.rate,
        clients: args.clients,
        progress: !json,
    };
    let outcome = runner::run(&pool, Arc::new(workload), &plan).await?;
    let report = Report::new(
        RunInfo {
            workload: name,
            endpoints: &urls,
            clients: args.clients,
            conns: args.conns,
            elapsed: outcome.elapsed,
        },
        &outcome.recorder,
    );
    print_result(json, &report, report.to_text())?;
    if report.ok == 0 && report.requests > 0 {
        bail!("every request failed");
    }
    Ok(())
}
