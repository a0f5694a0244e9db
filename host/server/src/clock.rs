//! The leader's clock as conclave uses it: milliseconds since the Unix epoch. Proposals are
//! stamped with it (a revision's commit time), and plugin windows are closed by it, so both
//! read the one function.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
