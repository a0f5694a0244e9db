//! How the leader's runtime is doing with each plugin: its state, last error and counters,
//! for `conclavectl plugin status` and `plugin list`, and the same as Prometheus metrics
//! (`conclave_plugin_*{plugin}`, docs/OPERATIONS.md). Every runtime event passes here once,
//! so this is where both are kept.

use std::collections::HashMap;
use std::time::Duration;

use conclave_proto::conclavepb::PluginStatus;
use metrics::{counter, gauge, histogram};
use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Running,
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Runtime {
    state: State,
    version: u64,
    last_error: String,
    events_in: u64,
    outputs: u64,
    calls: u64,
    call_micros_total: u64,
    call_micros_max: u64,
    restarts: u64,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            state: State::Starting,
            version: 0,
            last_error: String::new(),
            events_in: 0,
            outputs: 0,
            calls: 0,
            call_micros_total: 0,
            call_micros_max: 0,
            restarts: 0,
        }
    }
}

/// Every plugin this member runs (as leader), by name.
#[derive(Default)]
pub struct Statuses {
    runtimes: Mutex<HashMap<String, Runtime>>,
}

impl Statuses {
    fn with(&self, name: &str, f: impl FnOnce(&mut Runtime)) {
        f(self.runtimes.lock().entry(name.to_string()).or_default());
    }

    pub fn starting(&self, name: &str, version: u64) {
        self.with(name, |r| {
            r.state = State::Starting;
            r.version = version;
        });
    }

    pub fn running(&self, name: &str) {
        self.with(name, |r| r.state = State::Running);
        gauge!("conclave_plugin_running", "plugin" => name.to_string()).set(1.0);
    }

    pub fn failed(&self, name: &str, error: String) {
        self.with(name, |r| {
            r.state = State::Failed;
            r.last_error = error;
        });
        gauge!("conclave_plugin_running", "plugin" => name.to_string()).set(0.0);
        counter!("conclave_plugin_failures_total", "plugin" => name.to_string()).increment(1);
    }

    pub fn restarted(&self, name: &str) {
        self.with(name, |r| r.restarts += 1);
        counter!("conclave_plugin_restarts_total", "plugin" => name.to_string()).increment(1);
    }

    /// A window flush committed: the plugin's output is complete up to `end_ms` (ms since the
    /// Unix epoch). `time() - conclave_plugin_flushed_until_timestamp_seconds` is its lag.
    pub fn flushed(&self, name: &str, end_ms: i64) {
        gauge!("conclave_plugin_flushed_until_timestamp_seconds", "plugin" => name.to_string())
            .set(end_ms as f64 / 1000.0);
    }

    /// A call into the plugin took `took`; it delivered `events` inputs or returned `outputs`.
    pub fn call(&self, name: &str, took: Duration, events: u64, outputs: u64) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.with(name, |r| {
            r.calls += 1;
            r.call_micros_total = r.call_micros_total.saturating_add(micros);
            r.call_micros_max = r.call_micros_max.max(micros);
            r.events_in += events;
            r.outputs += outputs;
        });
        let plugin = name.to_string();
        counter!("conclave_plugin_calls_total", "plugin" => plugin.clone()).increment(1);
        histogram!("conclave_plugin_call_duration_seconds", "plugin" => plugin.clone())
            .record(took.as_secs_f64());
        counter!("conclave_plugin_events_in_total", "plugin" => plugin.clone()).increment(events);
        counter!("conclave_plugin_outputs_total", "plugin" => plugin).increment(outputs);
    }

    pub fn forget(&self, name: &str) {
        self.runtimes.lock().remove(name);
        gauge!("conclave_plugin_running", "plugin" => name.to_string()).set(0.0);
    }

    /// This member stopped running plugins (it no longer leads).
    pub fn clear(&self) {
        let mut runtimes = self.runtimes.lock();
        for name in runtimes.keys() {
            gauge!("conclave_plugin_running", "plugin" => name.clone()).set(0.0);
        }
        runtimes.clear();
    }

    /// Fills the runtime half of a status report; "stopped" for a plugin this member does not
    /// run.
    pub fn fill(&self, name: &str, status: &mut PluginStatus) {
        let runtimes = self.runtimes.lock();
        let Some(r) = runtimes.get(name) else {
            status.state = "stopped".into();
            return;
        };
        status.state = r.state.as_str().into();
        status.last_error = r.last_error.clone();
        status.events_in = r.events_in;
        status.outputs = r.outputs;
        status.calls = r.calls;
        status.call_micros_total = r.call_micros_total;
        status.call_micros_max = r.call_micros_max;
        status.restarts = r.restarts;
    }
}
