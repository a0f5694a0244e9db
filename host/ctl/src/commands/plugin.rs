//! `plugin deploy|list|status|logs|rollback|remove`: conclave's WASM rule plugins in a
//! running cluster (conclave's own; etcdctl has no such command).

use std::time::Duration;

use clap::{Args, Subcommand};
use conclave_client::DeployOptions;
use conclave_client::proto::conclavepb::{FlushMark, PluginStatus};

use crate::context::{Context, Io};
use crate::error::{CtlError, exit};
use crate::gofmt::parse_duration;
use crate::output::Format;
use crate::table;

/// Deploy and manage WASM plugins
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum PluginCommand {
    /// Deploys a plugin (a component built for wasm32-wasip2), or a new version of one
    Deploy(DeployArgs),
    /// Lists the plugins with their state on the leader
    List,
    /// Shows a plugin: version, state, last error, flush mark, counters
    Status(NameArg),
    /// Prints a plugin's recent log lines from the leader
    Logs(NameArg),
    /// Goes back to a plugin's previous version
    Rollback(NameArg),
    /// Stops a plugin and removes every version of it
    Remove(NameArg),
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct NameArg {
    /// The plugin's name
    pub name: String,
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DeployArgs {
    /// The plugin's name
    pub name: String,
    /// The component file (.wasm)
    pub file: String,
    /// The plugin's config: JSON text, or @FILE to read it from a file
    #[arg(long, default_value = "")]
    pub config: String,
    /// Memory limit, e.g. 64MiB (default 64MiB)
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Time limit per call, e.g. 100ms (default 100ms)
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Fuel per call, a deterministic bound on work (default none)
    #[arg(long, default_value_t = 0)]
    pub fuel: u64,
}

/// A byte size: a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64MiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

pub fn run(ctx: &Context, cmd: &PluginCommand, io: &mut Io<'_>) -> Result<(), CtlError> {
    let client = ctx.client()?;
    let request = |e: conclave_client::Error| CtlError::request(&e);
    match cmd {
        PluginCommand::Deploy(args) => {
            let wasm = std::fs::read(&args.file).map_err(|e| {
                CtlError::new(exit::ERROR, format!("cannot read {}: {e}", args.file))
            })?;
            let config = match args.config.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| CtlError::new(exit::ERROR, format!("cannot read {path}: {e}")))?,
                None => args.config.clone(),
            };
            let mut options = DeployOptions::new()
                .with_config(config)
                .with_fuel(args.fuel);
            if let Some(memory) = args.memory {
                options = options.with_memory_limit(memory);
            }
            if let Some(timeout) = args.timeout {
                options = options.with_timeout(timeout);
            }
            let spec = ctx
                .block_on(client.plugin_deploy(&args.name, wasm, options))
                .map_err(request)?;
            writeln!(
                io.stdout,
                "Plugin {} deployed: version {} ({}, {} bytes, sha256 {})",
                spec.name,
                spec.version,
                spec.world,
                spec.size_bytes,
                hex(&spec.digest)
            )?;
        }
        PluginCommand::List => {
            let plugins = ctx.block_on(client.plugin_list()).map_err(request)?;
            match ctx.format {
                Format::Json => print_json(io, &plugins)?,
                _ => {
                    let rows: Vec<Vec<String>> = plugins.iter().map(list_row).collect();
                    table::render(
                        io.stdout,
                        &[
                            "NAME",
                            "VERSION",
                            "WORLD",
                            "STATE",
                            "FLUSHED UP TO",
                            "LAST ERROR",
                        ],
                        &rows,
                    )?;
                }
            }
        }
        PluginCommand::Status(arg) => {
            let status = ctx
                .block_on(client.plugin_status(&arg.name))
                .map_err(request)?;
            match ctx.format {
                Format::Json => print_json(io, &status)?,
                _ => print_status(io, &status)?,
            }
        }
        PluginCommand::Logs(arg) => {
            let lines = ctx
                .block_on(client.plugin_logs(&arg.name))
                .map_err(request)?;
            match ctx.format {
                Format::Json => print_json(io, &lines)?,
                _ => {
                    for line in lines {
                        writeln!(
                            io.stdout,
                            "{} {:5} {}",
                            format_ms(line.time_ms),
                            line.level,
                            line.message
                        )?;
                    }
                }
            }
        }
        PluginCommand::Rollback(arg) => {
            let spec = ctx
                .block_on(client.plugin_rollback(&arg.name))
                .map_err(request)?;
            writeln!(
                io.stdout,
                "Plugin {} rolled back to version {}",
                arg.name, spec.version
            )?;
        }
        PluginCommand::Remove(arg) => {
            ctx.block_on(client.plugin_remove(&arg.name))
                .map_err(request)?;
            writeln!(io.stdout, "Plugin {} removed", arg.name)?;
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(io: &mut Io<'_>, value: &T) -> Result<(), CtlError> {
    let text = serde_json::to_string(value)
        .map_err(|e| CtlError::new(exit::ERROR, format!("cannot print JSON: {e}")))?;
    writeln!(io.stdout, "{text}")?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Unix time in ms as RFC 3339 UTC.
fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count since 1970.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn mark_text(mark: Option<&FlushMark>) -> String {
    match mark {
        Some(m) if m.end_ms > 0 => format!("{} (revision {})", format_ms(m.end_ms), m.revision),
        _ => "-".into(),
    }
}

fn list_row(p: &PluginStatus) -> Vec<String> {
    let spec = p.spec.clone().unwrap_or_default();
    vec![
        spec.name,
        spec.version.to_string(),
        spec.world,
        p.state.clone(),
        mark_text(p.mark.as_ref()),
        p.last_error.clone(),
    ]
}

fn print_status(io: &mut Io<'_>, p: &PluginStatus) -> Result<(), CtlError> {
    let spec = p.spec.clone().unwrap_or_default();
    let mean = p.call_micros_total.checked_div(p.calls).unwrap_or(0);
    let out = &mut *io.stdout;
    writeln!(out, "name: {}", spec.name)?;
    writeln!(out, "version: {} (kept: {:?})", spec.version, p.versions)?;
    writeln!(out, "world: {}", spec.world)?;
    writeln!(out, "state: {}", p.state)?;
    if !p.leader.is_empty() {
        writeln!(out, "leader: {}", p.leader)?;
    }
    writeln!(
        out,
        "last error: {}",
        if p.last_error.is_empty() {
            "-"
        } else {
            &p.last_error
        }
    )?;
    writeln!(out, "flushed up to: {}", mark_text(p.mark.as_ref()))?;
    if let Some(m) = &p.mark {
        writeln!(
            out,
            "windows flushed: {}, outputs written: {}",
            m.windows, m.outputs
        )?;
    }
    writeln!(
        out,
        "events in: {}, outputs: {}, restarts: {}",
        p.events_in, p.outputs, p.restarts
    )?;
    writeln!(
        out,
        "calls: {}, mean {mean} us, max {} us",
        p.calls, p.call_micros_max
    )?;
    writeln!(
        out,
        "limits: memory {} bytes, timeout {} ms, fuel {}",
        spec.memory_limit_bytes,
        spec.timeout_ms,
        if spec.fuel == 0 {
            "none".to_string()
        } else {
            spec.fuel.to_string()
        }
    )?;
    writeln!(out, "config: {}", spec.config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
