//! conclave's time: milliseconds since the Unix epoch as conclave dates what it dates (a
//! revision's commit time, the windows of plugin rules, ingested samples), read by the one
//! function so that all agree. It follows the wall clock but never jumps with it: it runs on
//! the monotonic clock and is steered toward the wall clock by at most 1 ms in 100, as NTP's
//! slew steers a clock. An NTP step or an operator's `date -s` of an hour moves conclave's time
//! by 36 s an hour instead of an hour at once, so a leader whose clock jumps neither closes
//! every open window at once (dropping the samples still on their way as late) nor dates
//! writes an hour ahead. Auth tokens' expiries go by the wall clock itself ([`wall_ms`]): other
//! systems read them.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How much faster or slower than the monotonic clock conclave's time may run while it
/// catches up with the wall clock: 1 part in `SLEW`.
const SLEW: i64 = 100;

/// conclave's time at a moment of the monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    /// Nanoseconds since the Unix epoch.
    ns: i64,
}

static LAST: Mutex<Option<Reading>> = Mutex::new(None);

/// conclave's time in milliseconds since the Unix epoch (never earlier than an earlier
/// reading).
pub fn now_ms() -> i64 {
    let (at, wall) = (Instant::now(), wall_ns());
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let reading = match *last {
        // The first reading is the wall clock's.
        None => Reading { at, ns: wall },
        Some(before) => steer(before, at, wall),
    };
    *last = Some(reading);
    reading.ns / 1_000_000
}

/// The reading at monotonic `at`, `before` advanced by the monotonic time since, moved toward
/// `wall` by at most 1/[`SLEW`] of that time.
fn steer(before: Reading, at: Instant, wall: i64) -> Reading {
    let elapsed =
        i64::try_from(at.saturating_duration_since(before.at).as_nanos()).unwrap_or(i64::MAX);
    let free = before.ns.saturating_add(elapsed);
    let slack = elapsed / SLEW;
    Reading {
        at: at.max(before.at),
        ns: wall.clamp(free - slack, free.saturating_add(slack)),
    }
}

/// Milliseconds since the Unix epoch by this machine's wall clock (0 before 1970), for what
/// other systems compare with it: tokens' expiries.
pub fn wall_ms() -> i64 {
    wall_ns() / 1_000_000
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: i64 = 1_000_000_000;
    const HOUR: i64 = 3600 * SECOND;

    /// Readings every 10 ms for `seconds` with the wall clock at `offset` from where
    /// conclave's time started; the last one's distance from the wall clock, and whether any
    /// reading went back or ran more than 1% off the monotonic clock.
    fn run(offset: i64, seconds: i64) -> (i64, bool) {
        let start = Instant::now();
        let mut reading = Reading { at: start, ns: 0 };
        let mut steady = true;
        for step in 1..=seconds * 100 {
            let at = start + Duration::from_millis(step as u64 * 10);
            let wall = step * 10_000_000 + offset;
            let next = steer(reading, at, wall);
            let advanced = next.ns - reading.ns;
            steady &= (9_900_000..=10_100_000).contains(&advanced);
            reading = next;
        }
        (seconds * SECOND + offset - reading.ns, steady)
    }

    #[test]
    fn a_wall_clock_step_is_followed_at_one_percent() {
        // An hour ahead: after 100 s, 1 s of it taken up.
        let (behind, steady) = run(HOUR, 100);
        assert!(steady, "a reading ran more than 1% off the monotonic clock");
        assert_eq!(behind, HOUR - SECOND);
        // An hour back: never backwards, 1 s taken up in 100 s.
        let (ahead, steady) = run(-HOUR, 100);
        assert!(steady);
        assert_eq!(ahead, -(HOUR - SECOND));
    }

    #[test]
    fn a_small_offset_is_caught_up_and_then_followed_exactly() {
        // 300 ms off: caught up within 30 s, and the wall clock exactly after.
        let (behind, steady) = run(300_000_000, 60);
        assert!(steady);
        assert_eq!(behind, 0);
    }

    #[test]
    fn readings_never_go_back() {
        let a = now_ms();
        let b = now_ms();
        assert!(b >= a);
        // Within a second of the wall clock of a machine whose clock did not step.
        assert!((wall_ms() - b).abs() < 1000);
    }
}
