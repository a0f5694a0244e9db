//! How the leader's runtime is doing with each plugin: its state, last error and counters,
//! for `conclavectl plugin status` and `plugin list`.

use std::collections::HashMap;
use std::time::Duration;

use conclave_proto::conclavepb::PluginStatus;
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
    }

    pub fn failed(&self, name: &str, error: String) {
        self.with(name, |r| {
            r.state = State::Failed;
            r.last_error = error;
        });
    }

    pub fn restarted(&self, name: &str) {
        self.with(name, |r| r.restarts += 1);
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
    }

    pub fn forget(&self, name: &str) {
        self.runtimes.lock().remove(name);
    }

    pub fn clear(&self) {
        self.runtimes.lock().clear();
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
