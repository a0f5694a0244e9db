//! What one plugin may use per call: memory, wall-clock time, and optionally fuel (a
//! deterministic instruction budget).

use std::time::Duration;

/// The defaults the issue names and `conclavectl plugin deploy` documents.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory the plugin's instances may hold together.
    pub memory_bytes: u64,
    /// How long one call may run before it is interrupted.
    pub timeout: Duration,
    /// Fuel per call; `None`: no bound beyond the timeout.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            fuel: None,
        }
    }
}

impl Limits {
    /// From deploy-time figures, where 0 means "the default" (and "no fuel bound").
    pub fn from_deploy(memory_bytes: u64, timeout_ms: u64, fuel: u64) -> Self {
        let d = Self::default();
        Self {
            memory_bytes: if memory_bytes == 0 {
                d.memory_bytes
            } else {
                memory_bytes
            },
            timeout: if timeout_ms == 0 {
                d.timeout
            } else {
                Duration::from_millis(timeout_ms)
            },
            fuel: (fuel != 0).then_some(fuel),
        }
    }
}
