//! What the host offers a plugin: its log, the leader's clock, the config, and read-only views
//! of the store. On targets other than wasm32 (a plugin's native unit tests) these are stand-ins:
//! the log goes to stderr, the clock is the system's, the config is "{}", the store is empty.

use crate::{KeyValue, LogLevel};

#[cfg(target_arch = "wasm32")]
use crate::bindings::aggregator::conclave::plugin::host as imports;

/// A line in the plugin's log (`conclavectl plugin logs NAME`).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imports::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// The leader's clock, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    #[cfg(target_arch = "wasm32")]
    return imports::now_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
}

/// The plugin's config as deployed: JSON text, "{}" when none was given. `init` gets it too.
pub fn config() -> String {
    #[cfg(target_arch = "wasm32")]
    return imports::config();
    #[cfg(not(target_arch = "wasm32"))]
    return "{}".to_string();
}

/// The key at `revision` (0: the newest revision this call has seen).
pub fn get(key: &[u8], revision: i64) -> Option<KeyValue> {
    #[cfg(target_arch = "wasm32")]
    return imports::get(key, revision);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (key, revision);
        None
    }
}

/// Keys in `[start, end)` at `revision` (0: the newest this call has seen), in key order, at
/// most `limit` of them (0: no limit). An empty `end` means the one key `start`; `[0]` means
/// every key from `start` on. For every key under a prefix, pass
/// [`prefix_range_end`](crate::prefix_range_end) of it as `end`.
pub fn range(start: &[u8], end: &[u8], revision: i64, limit: u32) -> Vec<KeyValue> {
    #[cfg(target_arch = "wasm32")]
    return imports::range(start, end, revision, limit);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (start, end, revision, limit);
        Vec::new()
    }
}

/// One function per log level: `log::warn(format!("..."))`.
pub mod log {
    use crate::LogLevel;

    pub fn trace(message: impl AsRef<str>) {
        super::log(LogLevel::Trace, message.as_ref());
    }

    pub fn debug(message: impl AsRef<str>) {
        super::log(LogLevel::Debug, message.as_ref());
    }

    pub fn info(message: impl AsRef<str>) {
        super::log(LogLevel::Info, message.as_ref());
    }

    pub fn warn(message: impl AsRef<str>) {
        super::log(LogLevel::Warn, message.as_ref());
    }

    pub fn error(message: impl AsRef<str>) {
        super::log(LogLevel::Error, message.as_ref());
    }
}
