//! The server's logs as etcd's operators expect them: `--logger zap` writes one JSON object a
//! line with etcd's field names (`level`, `ts`, `caller`, `msg`, then the event's own fields),
//! so log pipelines built for etcd parse conclave's; `--log-outputs` sends them to stderr,
//! stdout or files; colour only on a terminal.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Config, LogFormat, Logger};

/// Sets up the global subscriber from the configuration.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let level = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    // openraft warns on every failed heartbeat (ten times a second while a member is down);
    // the transport already says once that a peer is unreachable.
    let directives = format!("{level},openraft::core::heartbeat=error");
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, terminal) = outputs(&config.log_outputs)?;
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour);
    if config.logger == Some(Logger::Zap) {
        logs.event_format(EtcdJson).init();
    } else if config.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    Ok(())
}

/// One writer for every output, and whether all of them are terminals.
fn outputs(names: &[String]) -> anyhow::Result<(BoxMakeWriter, bool)> {
    let mut writer: Option<BoxMakeWriter> = None;
    let mut terminal = true;
    for name in names {
        let next = match name.as_str() {
            "default" | "stderr" => {
                terminal &= std::io::stderr().is_terminal();
                BoxMakeWriter::new(std::io::stderr)
            }
            "stdout" => {
                terminal &= std::io::stdout().is_terminal();
                BoxMakeWriter::new(std::io::stdout)
            }
            path => {
                terminal = false;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("--log-outputs: cannot open {path}"))?;
                BoxMakeWriter::new(Arc::new(file))
            }
        };
        writer = Some(match writer {
            None => next,
            Some(before) => BoxMakeWriter::new(before.and(next)),
        });
    }
    Ok((
        writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr)),
        terminal,
    ))
}

/// etcd's zap JSON: `{"level":"info","ts":"...","caller":"file:line","msg":"...",...}`.
struct EtcdJson;

impl<S, N> FormatEvent<S, N> for EtcdJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Events from the `log` crate (fjall's) carry their origin as fields.
        let file = fields.log_file.as_deref().or(meta.file());
        let line = fields.log_line.or(meta.line().map(u64::from));
        let caller = match (file, line) {
            (Some(file), Some(line)) => format!("{}:{line}", short_path(file)),
            _ => meta.target().to_string(),
        };
        let quoted = |s: &str| serde_json::Value::from(s).to_string();
        write!(
            writer,
            "{{\"level\":{},\"ts\":{},\"caller\":{},\"msg\":{}",
            quoted(&meta.level().as_str().to_lowercase()),
            quoted(&humantime::format_rfc3339_millis(SystemTime::now()).to_string()),
            quoted(&caller),
            quoted(fields.message.as_deref().unwrap_or_default()),
        )?;
        for (name, value) in &fields.rest {
            write!(writer, ",{}:{}", quoted(name), value)?;
        }
        writeln!(writer, "}}")
    }
}

/// The last two components of a source path, as zap shortens its callers (`pkg/file.go`).
fn short_path(file: &str) -> &str {
    let mut cut = file.rmatch_indices('/').map(|(i, _)| i);
    match (cut.next(), cut.next()) {
        (Some(_), Some(before)) => &file[before + 1..],
        _ => file,
    }
}

/// An event's fields: its message, and the others as JSON values in the order given.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    log_file: Option<String>,
    log_line: Option<u64>,
    rest: Vec<(&'static str, serde_json::Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let text = |value: serde_json::Value| match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        match field.name() {
            "message" => self.message = Some(text(value)),
            "log.file" => self.log_file = Some(text(value)),
            "log.line" => self.log_line = value.as_u64(),
            "log.target" | "log.module_path" => {}
            name => self.rest.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_shortened_as_zaps() {
        assert_eq!(short_path("host/server/src/serve.rs"), "src/serve.rs");
        assert_eq!(short_path("serve.rs"), "serve.rs");
        assert_eq!(short_path("src/serve.rs"), "src/serve.rs");
    }
}
