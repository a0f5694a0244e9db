//! The rollup plugin: numbers put under a source prefix (and, optionally, samples sent to the
//! Ingest RPC) are aggregated per series and window, M3 style, and each closed window is
//! written as one JSON object per series under a target prefix, with a TTL for retention.
//!
//! Config:
//! `{"source_prefix": "/metrics/", "target_prefix": "/rollup/", "resolution": "10s",
//!   "retention": "2d", "aggregations": ["sum", "count", "min", "max", "mean", "p99"],
//!   "allowed_lateness": "1s", "ingest": false}`
//! A put of `3` to `/metrics/cpu` at 12:00:04 counts in the window starting at 12:00:00; when
//! it closes, `/rollup/cpu/<window start ms>` is set to `{"sum":..,"count":..,..}`.

use std::collections::{BTreeMap, BTreeSet};

use conclave_plugin_sdk::{
    Accumulator, AggregationType, Aggregator, Event, Output, Spec, Windows, json, log,
    parse_duration_ms,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    source_prefix: String,
    target_prefix: String,
    resolution: String,
    #[serde(default)]
    retention: Option<String>,
    aggregations: Vec<String>,
    #[serde(default)]
    allowed_lateness: Option<String>,
    #[serde(default)]
    ingest: bool,
}

/// One window's state: an accumulator per series (sorted, so outputs are deterministic), and
/// the series already warned about, so a stream of bad values logs once per series and window.
#[derive(Default)]
struct Window {
    series: BTreeMap<Vec<u8>, Accumulator>,
    warned: BTreeSet<Vec<u8>>,
}

pub struct Rollup {
    source_prefix: Vec<u8>,
    target_prefix: Vec<u8>,
    aggregations: Vec<AggregationType>,
    ttl_seconds: Option<u32>,
    windows: Windows<Window>,
    /// The end of the last flushed window: an input before it is too late to count, and would
    /// otherwise reopen a window that nobody flushes again.
    flushed_until: Option<i64>,
    /// Late inputs dropped since the last flush, logged once per flush rather than each.
    late: u64,
}

impl Rollup {
    fn from_config(text: &str) -> Result<(Self, Spec), String> {
        let c: Config =
            serde_json::from_str(text).map_err(|e| format!("rollup: bad config: {e}"))?;
        if c.source_prefix.is_empty() {
            return Err("rollup: source_prefix must not be empty".into());
        }
        if c.target_prefix.is_empty() {
            return Err("rollup: target_prefix must not be empty".into());
        }
        // Outputs under the source would come back as inputs (and the reverse): a feedback loop.
        if c.target_prefix.starts_with(&c.source_prefix)
            || c.source_prefix.starts_with(&c.target_prefix)
        {
            return Err(format!(
                "rollup: source_prefix {:?} and target_prefix {:?} must not contain each other",
                c.source_prefix, c.target_prefix
            ));
        }
        let resolution_ms =
            parse_duration_ms(&c.resolution).map_err(|e| format!("rollup: resolution: {e}"))?;
        let windows = Windows::new(resolution_ms).map_err(|e| format!("rollup: {e}"))?;
        let allowed_lateness_ms = parse_duration_ms(c.allowed_lateness.as_deref().unwrap_or("1s"))
            .map_err(|e| format!("rollup: allowed_lateness: {e}"))?;
        let ttl_seconds = match &c.retention {
            None => None,
            Some(text) => Some(retention_seconds(text)?),
        };
        if c.aggregations.is_empty() {
            return Err("rollup: aggregations must name at least one type".into());
        }
        let mut aggregations = Vec::with_capacity(c.aggregations.len());
        for name in &c.aggregations {
            let t: AggregationType = name.parse().map_err(|e| format!("rollup: {e}"))?;
            // Each type is a key of the output object: twice would write a duplicate key.
            if aggregations.contains(&t) {
                return Err(format!("rollup: aggregation {t} is listed twice"));
            }
            aggregations.push(t);
        }
        let spec = Spec {
            source_prefixes: vec![c.source_prefix.clone().into_bytes()],
            // A sample's series is named as a key would be: `<source_prefix><series>`.
            ingest_prefixes: if c.ingest {
                vec![c.source_prefix.clone()]
            } else {
                Vec::new()
            },
            resolution_ms,
            allowed_lateness_ms,
        };
        let rollup = Rollup {
            source_prefix: c.source_prefix.into_bytes(),
            target_prefix: c.target_prefix.into_bytes(),
            aggregations,
            ttl_seconds,
            windows,
            flushed_until: None,
            late: 0,
        };
        Ok((rollup, spec))
    }

    /// Counts `value` (None: not a number) for `series` at `time_ms`.
    fn record(&mut self, series: &[u8], value: Option<f64>, time_ms: i64) {
        if series.is_empty() {
            return;
        }
        if self.flushed_until.is_some_and(|until| time_ms < until) {
            self.late += 1;
            return;
        }
        let aggregations = &self.aggregations;
        let window = self.windows.at(time_ms);
        let counted = match value {
            Some(v) => window
                .series
                .entry(series.to_vec())
                .or_insert_with(|| Accumulator::for_types(aggregations))
                .add(v),
            None => false,
        };
        if !counted && window.warned.insert(series.to_vec()) {
            log::warn(format!(
                "rollup: ignored a value of {:?} that is not a finite number (once per window)",
                String::from_utf8_lossy(series)
            ));
        }
    }

    /// The JSON object of one series: `{"sum":6,"count":3,...}`, in the configured order.
    fn summary(&self, acc: &mut Accumulator) -> String {
        let fields: Vec<String> = self
            .aggregations
            .iter()
            .map(|t| {
                let v = acc.value(*t).unwrap_or(f64::NAN);
                format!("{}:{}", json::string(t.as_str()), json::number(v))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// Retention as a lease TTL: whole seconds, rounded up so a key never expires early.
fn retention_seconds(text: &str) -> Result<u32, String> {
    let ms = parse_duration_ms(text).map_err(|e| format!("rollup: retention: {e}"))?;
    if ms == 0 {
        return Err("rollup: retention must be positive (leave it out to keep keys)".into());
    }
    u32::try_from(ms.div_ceil(1000))
        .map_err(|_| format!("rollup: retention {text:?} is longer than a lease can be"))
}

/// A put's value as a sample: UTF-8 text of a decimal number, surrounding whitespace allowed.
fn parse_value(bytes: &[u8]) -> Option<f64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

impl Aggregator for Rollup {
    fn init(config: &str) -> Result<(Self, Spec), String> {
        Rollup::from_config(config)
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Kv(e) => {
                // Deletes carry no value: the series simply has no sample then.
                if !e.is_put() {
                    return;
                }
                let Some(series) = e.kv.key.strip_prefix(self.source_prefix.as_slice()) else {
                    return;
                };
                let series = series.to_vec();
                self.record(&series, parse_value(&e.kv.value), e.time_ms);
            }
            Event::Sample(s) => {
                let series = s.series.as_bytes();
                let series = series
                    .strip_prefix(self.source_prefix.as_slice())
                    .unwrap_or(series);
                self.record(series, Some(s.value), s.time_ms);
            }
        }
    }

    fn flush(&mut self, start_ms: i64, end_ms: i64) -> Vec<Output> {
        if self.late > 0 {
            log::warn(format!(
                "rollup: dropped {} inputs that came after their window was flushed",
                self.late
            ));
            self.late = 0;
        }
        self.flushed_until = Some(self.flushed_until.map_or(end_ms, |u| u.max(end_ms)));
        let mut outputs = Vec::new();
        for (window_start, window) in self.windows.take_before(end_ms) {
            // The host flushes windows in order, so one before `start_ms` still held here was
            // closed without us; writing it now could overwrite a complete result.
            if window_start < start_ms {
                if !window.series.is_empty() {
                    log::warn(format!(
                        "rollup: dropped {} series of window {window_start} ms, closed before this flush",
                        window.series.len()
                    ));
                }
                continue;
            }
            for (series, mut acc) in window.series {
                if acc.is_empty() {
                    continue;
                }
                let mut key = self.target_prefix.clone();
                key.extend_from_slice(&series);
                key.extend_from_slice(format!("/{window_start}").as_bytes());
                let value = self.summary(&mut acc);
                outputs.push(Output::put_with_ttl(key, value, self.ttl_seconds));
            }
        }
        outputs
    }
}

conclave_plugin_sdk::export_aggregator!(Rollup);

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_plugin_sdk::{EventKind, KeyValue, KvEvent, Put, Sample};

    const CONFIG: &str = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
        "resolution": "10s", "retention": "2d",
        "aggregations": ["sum","count","min","max","mean","p99"]}"#;

    fn put(key: &str, value: &str, time_ms: i64) -> Event {
        Event::Kv(KvEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                lease: 0,
            },
            revision: 1,
            time_ms,
        })
    }

    fn text(outputs: &[Output]) -> Vec<(String, String, Option<u32>)> {
        outputs
            .iter()
            .map(|o| match o {
                Output::Put(Put {
                    key,
                    value,
                    ttl_seconds,
                }) => (
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                    *ttl_seconds,
                ),
                Output::Delete(key) => (String::from_utf8_lossy(key).into_owned(), "".into(), None),
            })
            .collect()
    }

    #[test]
    fn spec_from_config() {
        let (_, spec) = Rollup::init(CONFIG).unwrap();
        assert_eq!(spec.source_prefixes, vec![b"/metrics/".to_vec()]);
        assert!(spec.ingest_prefixes.is_empty());
        assert_eq!(spec.resolution_ms, 10_000);
        assert_eq!(spec.allowed_lateness_ms, 1_000);

        let (r, spec) = Rollup::init(
            r#"{"source_prefix": "/m/", "target_prefix": "/r/", "resolution": "1m",
                "aggregations": ["last"], "allowed_lateness": "0", "ingest": true}"#,
        )
        .unwrap();
        assert_eq!(spec.ingest_prefixes, vec!["/m/".to_string()]);
        assert_eq!(spec.allowed_lateness_ms, 0);
        assert_eq!(r.ttl_seconds, None);
    }

    #[test]
    fn bad_configs_are_refused_clearly() {
        let base = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
            v[field] = serde_json::from_str(value).unwrap();
            v.to_string()
        };
        let cases = [
            (
                base("aggregations", r#"["sum","p42"]"#),
                "unknown aggregation \"p42\"",
            ),
            (base("aggregations", r#"[]"#), "at least one"),
            (base("aggregations", r#"["sum","sum"]"#), "listed twice"),
            (base("resolution", r#""0s""#), "bad resolution 0"),
            (base("resolution", r#""10""#), "resolution: bad duration"),
            (base("retention", r#""0s""#), "retention must be positive"),
            (
                base("allowed_lateness", r#""soon""#),
                "allowed_lateness: bad duration",
            ),
            (
                base("source_prefix", r#""""#),
                "source_prefix must not be empty",
            ),
            (
                base("target_prefix", r#""""#),
                "target_prefix must not be empty",
            ),
            (
                base("target_prefix", r#""/metrics/out/""#),
                "must not contain each other",
            ),
            (base("resolutoin", r#""1s""#), "unknown field `resolutoin`"),
            ("{}".to_string(), "missing field"),
            ("not json".to_string(), "bad config"),
        ];
        for (config, want) in cases {
            let err = Rollup::init(&config).err().unwrap();
            assert!(err.contains(want), "{config}: {err}");
        }
    }

    #[test]
    fn flush_writes_one_object_per_series() {
        let (mut r, _) = Rollup::init(CONFIG).unwrap();
        r.on_events(vec![
            put("/metrics/cpu", "1", 20_001),
            put("/metrics/cpu", " 3\n", 20_002),
            put("/metrics/cpu", "2", 29_999),
            put("/metrics/bad", "many", 20_003),
            put("/metrics/cpu", "100", 30_000), // the next window
            Event::Sample(Sample {
                series: "/metrics/disk".into(),
                value: 0.5,
                time_ms: 25_000,
            }),
        ]);
        let out = r.flush(20_000, 30_000);
        assert_eq!(
            text(&out),
            vec![
                (
                    "/rollup/cpu/20000".into(),
                    r#"{"sum":6,"count":3,"min":1,"max":3,"mean":2,"p99":3}"#.into(),
                    Some(172_800)
                ),
                (
                    "/rollup/disk/20000".into(),
                    r#"{"sum":0.5,"count":1,"min":0.5,"max":0.5,"mean":0.5,"p99":0.5}"#.into(),
                    Some(172_800)
                ),
            ]
        );
        // The window is forgotten; the next one is still open.
        assert!(r.flush(20_000, 30_000).is_empty());
        let next = r.flush(30_000, 40_000);
        assert_eq!(text(&next)[0].0, "/rollup/cpu/30000");
        // Too late for a flushed window: dropped, not a new window that nobody flushes.
        r.on_event(put("/metrics/cpu", "1", 39_000));
        assert!(r.windows.is_empty());
        assert_eq!(r.late, 1);
    }

    #[test]
    fn deletes_and_negative_times() {
        let (mut r, _) = Rollup::init(CONFIG).unwrap();
        let mut delete = put("/metrics/cpu", "", -5);
        if let Event::Kv(e) = &mut delete {
            e.kind = EventKind::Delete;
        }
        r.on_events(vec![delete, put("/metrics/cpu", "-4.5", -5)]);
        let out = r.flush(-10_000, 0);
        assert_eq!(
            text(&out),
            vec![(
                "/rollup/cpu/-10000".into(),
                r#"{"sum":-4.5,"count":1,"min":-4.5,"max":-4.5,"mean":-4.5,"p99":-4.5}"#.into(),
                Some(172_800)
            )]
        );
    }

    #[test]
    fn retention_rounds_up_to_whole_seconds() {
        assert_eq!(retention_seconds("1500ms"), Ok(2));
        assert_eq!(retention_seconds("2d"), Ok(172_800));
        assert!(retention_seconds("200000d").is_err());
    }
}
