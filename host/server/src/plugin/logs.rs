//! Each plugin's recent log lines on this member (the plugin's own `log` calls and the host's
//! lines about it: starts, failures, restarts), for `conclavectl plugin logs`. Bounded: a
//! chatty plugin pushes out its oldest lines, never the leader's memory.

use std::collections::{HashMap, VecDeque};

use conclave_proto::conclavepb::PluginLogLine;
use parking_lot::Mutex;

use crate::clock::wall_ms;

/// Lines kept per plugin.
const LINES_KEPT: usize = 1000;

#[derive(Default)]
pub struct PluginLogs {
    lines: Mutex<HashMap<String, VecDeque<PluginLogLine>>>,
}

impl PluginLogs {
    pub fn push(&self, name: &str, level: &str, message: String) {
        let line = PluginLogLine {
            time_ms: wall_ms(),
            level: level.to_string(),
            message,
        };
        let mut lines = self.lines.lock();
        let kept = lines.entry(name.to_string()).or_default();
        if kept.len() == LINES_KEPT {
            kept.pop_front();
        }
        kept.push_back(line);
    }

    /// Oldest first.
    pub fn lines(&self, name: &str) -> Vec<PluginLogLine> {
        self.lines
            .lock()
            .get(name)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, name: &str) {
        self.lines.lock().remove(name);
    }
}
