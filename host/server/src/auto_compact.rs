//! Auto-compaction, with etcd's semantics, run by the leader only (a new leader starts over):
//! - periodic, retention R: the revision is sampled every R/10, and every R (at most every
//!   hour once R exceeds an hour) history is compacted to the revision sampled R ago, so at
//!   least R of history stays readable;
//! - revision, retention N: every 5 minutes, history is compacted to the current revision
//!   minus N, so the last N revisions stay readable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::CompactionRequest;
use conclave_store::RequestError;
use tracing::{info, warn};

use crate::config::AutoCompactionMode;
use crate::node::Node;

/// How often revision mode looks (etcd's fixed interval).
const REVISION_CHECK: Duration = Duration::from_secs(300);
/// Periodic mode compacts at least this often once the retention is longer.
const MAX_PERIODIC_INTERVAL: Duration = Duration::from_secs(3600);

/// What to keep, parsed from --auto-compaction-mode and --auto-compaction-retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Period(Duration),
    Revisions(i64),
}

impl Retention {
    /// None for retention 0 (auto-compaction off).
    pub fn parse(mode: AutoCompactionMode, text: &str) -> anyhow::Result<Option<Self>> {
        let text = text.trim();
        let retention = match mode {
            AutoCompactionMode::Revision => {
                let n: i64 = text.parse().with_context(|| {
                    format!("--auto-compaction-retention {text:?} is not a number of revisions")
                })?;
                if n < 0 {
                    bail!("--auto-compaction-retention must not be negative");
                }
                (n > 0).then_some(Retention::Revisions(n))
            }
            AutoCompactionMode::Periodic => {
                // etcd reads a bare number as hours.
                let period = match text.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours * 3600),
                    Err(_) => humantime::parse_duration(text).with_context(|| {
                        format!("--auto-compaction-retention {text:?} is not a duration")
                    })?,
                };
                (!period.is_zero()).then_some(Retention::Period(period))
            }
        };
        Ok(retention)
    }

    /// How often revisions are sampled (periodic) or checked (revision).
    fn tick(self) -> Duration {
        match self {
            Retention::Period(p) => (p / 10).max(Duration::from_millis(100)),
            Retention::Revisions(_) => REVISION_CHECK,
        }
    }
}

/// The leader's compaction schedule: the revisions it has seen, when.
#[derive(Debug)]
pub struct Schedule {
    retention: Retention,
    samples: VecDeque<(Instant, i64)>,
    started: Instant,
    last_compaction: Option<Instant>,
    last_target: i64,
}

impl Schedule {
    pub fn new(retention: Retention, now: Instant) -> Self {
        Self {
            retention,
            samples: VecDeque::new(),
            started: now,
            last_compaction: None,
            last_target: 0,
        }
    }

    /// Notes the current revision at `now`; answers the revision to compact to, if it is time.
    pub fn observe(&mut self, now: Instant, current: i64) -> Option<i64> {
        match self.retention {
            Retention::Revisions(keep) => {
                let target = current - keep;
                (target > self.last_target).then(|| {
                    self.last_target = target;
                    target
                })
            }
            Retention::Period(period) => {
                self.samples.push_back((now, current));
                let interval = period.min(MAX_PERIODIC_INTERVAL);
                let since = self.last_compaction.unwrap_or(self.started);
                // The first compaction waits a whole retention period, later ones an interval.
                let wait = if self.last_compaction.is_none() {
                    period
                } else {
                    interval
                };
                if now.duration_since(since) < wait {
                    return None;
                }
                // The newest sample at least `period` old: compacting to it keeps `period`.
                let cutoff = now.checked_sub(period)?;
                while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
                    self.samples.pop_front();
                }
                let &(at, revision) = self.samples.front()?;
                if at > cutoff || revision <= self.last_target {
                    return None;
                }
                self.last_compaction = Some(now);
                self.last_target = revision;
                Some(revision)
            }
        }
    }
}

/// Runs for the member's life, compacting while it leads.
pub async fn run(node: Arc<Node>, retention: Retention) {
    info!(?retention, "auto-compaction on");
    let mut schedule: Option<Schedule> = None;
    let mut ticker = tokio::time::interval(retention.tick());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !node.cluster.is_leader() {
            schedule = None;
            continue;
        }
        let now = Instant::now();
        let schedule = schedule.get_or_insert_with(|| Schedule::new(retention, now));
        let Some(revision) = schedule.observe(now, node.store.current_revision()) else {
            continue;
        };
        if revision <= node.store.compacted_revision() {
            continue;
        }
        let request = Request::Compaction(CompactionRequest {
            revision,
            physical: false,
        });
        match node.router.propose(request).await.map(|a| a.result) {
            Ok(Ok(_)) => info!(revision, "auto-compacted history"),
            Ok(Err(RequestError::Compacted)) => {}
            Ok(Err(e)) => warn!(revision, error = %e, "auto-compaction refused"),
            Err(e) => warn!(revision, error = %e, "auto-compaction failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcds_retention_forms() {
        let p = |m, t| Retention::parse(m, t).unwrap();
        use AutoCompactionMode::*;
        assert_eq!(p(Periodic, "0"), None);
        assert_eq!(
            p(Periodic, "1"),
            Some(Retention::Period(Duration::from_secs(3600)))
        );
        assert_eq!(
            p(Periodic, "30m"),
            Some(Retention::Period(Duration::from_secs(1800)))
        );
        assert_eq!(p(Revision, "1000"), Some(Retention::Revisions(1000)));
        assert_eq!(p(Revision, "0"), None);
        assert!(Retention::parse(Revision, "1h").is_err());
        assert!(Retention::parse(Periodic, "soon").is_err());
    }

    #[test]
    fn periodic_keeps_a_whole_retention_period() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Schedule::new(Retention::Period(Duration::from_secs(10)), t0);
        // Samples every second, the revision growing by 100 a second.
        let mut out = Vec::new();
        for sec in 0..=25 {
            if let Some(rev) = s.observe(at(sec), 1 + 100 * sec as i64) {
                out.push((sec, rev));
            }
        }
        // At 10 s: the revision seen at 0 s; at 20 s: the one seen at 10 s.
        assert_eq!(out, vec![(10, 1), (20, 1001)]);
    }

    #[test]
    fn revision_mode_keeps_the_last_n_and_does_not_repeat() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Retention::Revisions(100), t0);
        assert_eq!(s.observe(t0, 50), None);
        assert_eq!(s.observe(t0, 350), Some(250));
        assert_eq!(s.observe(t0, 350), None);
        assert_eq!(s.observe(t0, 351), Some(251));
    }
}
