//! Results: each client records into its own `Recorder` (no shared lock on the hot path), the
//! recorders are merged at the end into a `Report`, printed as text or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, from 1 µs to an hour, to 3 significant figures.
const HIGHEST_MICROS: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    // Constant bounds, known valid: this fails only if the constants are edited wrongly.
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant histogram bounds are valid")
}

/// One client's results: a latency histogram per kind of request, and errors by message.
pub struct Recorder {
    kinds: &'static [&'static str],
    latency: Vec<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn new(kinds: &'static [&'static str]) -> Self {
        Self {
            kinds,
            latency: kinds.iter().map(|_| histogram()).collect(),
            errors: BTreeMap::new(),
        }
    }

    pub fn ok(&mut self, kind: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(h) = self.latency.get_mut(kind) {
            h.saturating_record(micros.max(1));
        }
    }

    /// Counts a failed request under its message (prefixed with its kind when a load mixes kinds).
    pub fn error(&mut self, kind: usize, message: &str) {
        let key = match self.kinds.get(kind) {
            Some(name) if self.kinds.len() > 1 => format!("{name}: {message}"),
            _ => message.to_string(),
        };
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency.iter()) {
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (message, n) in other.errors {
            *self.errors.entry(message).or_default() += n;
        }
    }

    pub fn succeeded(&self) -> u64 {
        self.latency.iter().map(|h| h.len()).sum()
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                count: 0,
                mean: 0.0,
                min: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindReport {
    pub ok: u64,
    pub throughput: f64,
    pub latency_ms: Latency,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub workload: String,
    /// The command line that produced this report.
    pub command: Vec<String>,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    pub elapsed_secs: f64,
    /// Requests sent (succeeded + failed).
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of successful requests, every kind together.
    pub latency_ms: Latency,
    /// Per kind of request, for loads that mix kinds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_kind: BTreeMap<String, KindReport>,
    /// Failed requests by error message.
    pub error_messages: BTreeMap<String, u64>,
}

pub struct RunInfo<'a> {
    pub workload: &'a str,
    pub endpoints: &'a [String],
    pub clients: usize,
    pub conns: usize,
    pub elapsed: Duration,
}

impl Report {
    pub fn new(info: RunInfo<'_>, rec: &Recorder) -> Self {
        let secs = info.elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut all = histogram();
        for h in &rec.latency {
            let _ = all.add(h);
        }
        let by_kind = if rec.kinds.len() > 1 {
            rec.kinds
                .iter()
                .zip(&rec.latency)
                .map(|(name, h)| {
                    let kind = KindReport {
                        ok: h.len(),
                        throughput: per_sec(h.len()),
                        latency_ms: Latency::of(h),
                    };
                    (name.to_string(), kind)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let ok = rec.succeeded();
        let errors = rec.failed();
        Self {
            workload: info.workload.to_string(),
            command: std::env::args().collect(),
            endpoints: info.endpoints.to_vec(),
            clients: info.clients,
            conns: info.conns,
            elapsed_secs: secs,
            requests: ok + errors,
            ok,
            errors,
            throughput: per_sec(ok),
            latency_ms: Latency::of(&all),
            by_kind,
            error_messages: rec.errors.clone(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} requests in {:.2}s ({} clients, {} conns, {})",
            self.workload,
            self.requests,
            self.elapsed_secs,
            self.clients,
            self.conns,
            self.endpoints.join(",")
        );
        let _ = writeln!(out, "  throughput  {:.1} ok/s", self.throughput);
        let _ = writeln!(out, "  latency     {}", latency_line(&self.latency_ms));
        for (name, kind) in &self.by_kind {
            let _ = writeln!(
                out,
                "  {name:<10}  {:.1} ok/s  {}",
                kind.throughput,
                latency_line(&kind.latency_ms)
            );
        }
        let _ = writeln!(out, "  errors      {}", self.errors);
        for (message, n) in &self.error_messages {
            let _ = writeln!(out, "    {n:>8}  {message}");
        }
        out
    }
}

fn latency_line(l: &Latency) -> String {
    format!(
        "ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, min {:.3})",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.min
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_summarises() {
        let kinds: &'static [&'static str] = &["range", "put"];
        let mut a = Recorder::new(kinds);
        let mut b = Recorder::new(kinds);
        for i in 1..=100 {
            a.ok(0, Duration::from_millis(i));
        }
        b.ok(1, Duration::from_millis(5));
        b.error(1, "boom");
        b.error(1, "boom");
        a.merge(b);
        assert_eq!(a.succeeded(), 101);
        assert_eq!(a.failed(), 2);
        let r = Report::new(
            RunInfo {
                workload: "mixed",
                endpoints: &["http://x:1".into()],
                clients: 1,
                conns: 1,
                elapsed: Duration::from_secs(1),
            },
            &a,
        );
        assert_eq!(r.requests, 103);
        assert_eq!(r.error_messages.get("put: boom"), Some(&2));
        assert_eq!(r.by_kind.len(), 2);
        let p50 = r.by_kind.get("range").map(|k| k.latency_ms.p50);
        assert!(p50.is_some_and(|p| (49.0..=51.0).contains(&p)));
        assert!(r.to_text().contains("errors      2"));
    }
}
