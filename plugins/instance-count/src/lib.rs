//! The instance-count plugin: keeps `<counts_prefix><service>` equal to the number of live keys
//! under `<services_prefix><service>/` (service discovery registrations, usually on leases).
//!
//! Config (every field optional, defaults shown):
//! `{"services_prefix": "/services/", "counts_prefix": "/counts/", "resolution": "1s",
//!   "allowed_lateness": "200ms"}`
//! A change under a service marks it dirty in its window; when the window closes, the rule
//! counts the service's keys as the store holds them then, and writes the count if it changed.

use std::collections::BTreeSet;

use conclave_plugin_sdk::{
    Aggregator, Event, Output, Spec, Windows, host, parse_duration_ms, prefix_range_end,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    services_prefix: String,
    counts_prefix: String,
    resolution: String,
    allowed_lateness: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            services_prefix: "/services/".into(),
            counts_prefix: "/counts/".into(),
            resolution: "1s".into(),
            // Registrations commit through Raft and carry the leader's time: they are never
            // late by more than the leader's own delay, so a short wait is enough.
            allowed_lateness: "200ms".into(),
        }
    }
}

pub struct InstanceCount {
    services_prefix: Vec<u8>,
    counts_prefix: Vec<u8>,
    /// The services changed in each open window, sorted so outputs are deterministic.
    dirty: Windows<BTreeSet<Vec<u8>>>,
}

impl InstanceCount {
    fn from_config(text: &str) -> Result<(Self, Spec), String> {
        let c: Config =
            serde_json::from_str(text).map_err(|e| format!("instance-count: bad config: {e}"))?;
        if c.services_prefix.is_empty() || c.counts_prefix.is_empty() {
            return Err(
                "instance-count: services_prefix and counts_prefix must not be empty".into(),
            );
        }
        // Counts written under the services would count as instances (and the reverse).
        if c.counts_prefix.starts_with(&c.services_prefix)
            || c.services_prefix.starts_with(&c.counts_prefix)
        {
            return Err(format!(
                "instance-count: services_prefix {:?} and counts_prefix {:?} must not contain each other",
                c.services_prefix, c.counts_prefix
            ));
        }
        let resolution_ms = parse_duration_ms(&c.resolution)
            .map_err(|e| format!("instance-count: resolution: {e}"))?;
        let dirty = Windows::new(resolution_ms).map_err(|e| format!("instance-count: {e}"))?;
        let allowed_lateness_ms = parse_duration_ms(&c.allowed_lateness)
            .map_err(|e| format!("instance-count: allowed_lateness: {e}"))?;
        let mut spec = Spec::kv(&[c.services_prefix.as_bytes()], resolution_ms);
        spec.allowed_lateness_ms = allowed_lateness_ms;
        let rule = InstanceCount {
            services_prefix: c.services_prefix.into_bytes(),
            counts_prefix: c.counts_prefix.into_bytes(),
            dirty,
        };
        Ok((rule, spec))
    }

    /// The service a key belongs to: the path segment after the services prefix.
    fn service_of<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let rest = key.strip_prefix(self.services_prefix.as_slice())?;
        let service = match rest.iter().position(|b| *b == b'/') {
            Some(slash) => &rest[..slash],
            None => rest,
        };
        (!service.is_empty()).then_some(service)
    }

    /// The put that brings the service's count up to date, if it is not already.
    fn recount(&self, service: &[u8]) -> Option<Output> {
        let mut prefix = self.services_prefix.clone();
        prefix.extend_from_slice(service);
        prefix.push(b'/');
        // The WIT's range has no count-only mode: this transfers the values too.
        let live = host::range(&prefix, &prefix_range_end(&prefix), 0, 0).len();
        let count = live.to_string();
        let mut key = self.counts_prefix.clone();
        key.extend_from_slice(service);
        // An unchanged count is not rewritten: no new revision, no watch event for nothing.
        if host::get(&key, 0).is_some_and(|kv| kv.value == count.as_bytes()) {
            return None;
        }
        Some(Output::put(key, count))
    }
}

impl Aggregator for InstanceCount {
    fn init(config: &str) -> Result<(Self, Spec), String> {
        InstanceCount::from_config(config)
    }

    fn on_event(&mut self, event: Event) {
        // Samples are not asked for (no ingest prefixes); only KV changes matter.
        let Event::Kv(e) = event else { return };
        if let Some(service) = self.service_of(&e.kv.key) {
            let service = service.to_vec();
            self.dirty.at(e.time_ms).insert(service);
        }
    }

    fn flush(&mut self, _start_ms: i64, end_ms: i64) -> Vec<Output> {
        // Windows before this one are included: a count is current state, never stale, so
        // anything still marked dirty is worth a recount now.
        let services: BTreeSet<Vec<u8>> = self
            .dirty
            .take_before(end_ms)
            .into_iter()
            .flat_map(|(_, services)| services)
            .collect();
        services.iter().filter_map(|s| self.recount(s)).collect()
    }
}

conclave_plugin_sdk::export_aggregator!(InstanceCount);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let (rule, spec) = InstanceCount::init("{}").unwrap();
        assert_eq!(spec.source_prefixes, vec![b"/services/".to_vec()]);
        assert!(spec.ingest_prefixes.is_empty());
        assert_eq!(spec.resolution_ms, 1_000);
        assert_eq!(spec.allowed_lateness_ms, 200);
        assert_eq!(rule.counts_prefix, b"/counts/");

        for (config, want) in [
            (r#"{"counts_prefix": ""}"#, "must not be empty"),
            (
                r#"{"counts_prefix": "/services/counts/"}"#,
                "must not contain",
            ),
            (r#"{"resolution": "0s"}"#, "bad resolution 0"),
            (r#"{"resolution": "1"}"#, "resolution: bad duration"),
            (r#"{"prefix": "/x/"}"#, "unknown field"),
        ] {
            let err = InstanceCount::init(config).err().unwrap();
            assert!(err.contains(want), "{config}: {err}");
        }
    }

    #[test]
    fn services_from_keys() {
        let (rule, _) = InstanceCount::init("{}").unwrap();
        assert_eq!(rule.service_of(b"/services/web/n1"), Some(&b"web"[..]));
        assert_eq!(
            rule.service_of(b"/services/web/n1/extra"),
            Some(&b"web"[..])
        );
        assert_eq!(rule.service_of(b"/services/web"), Some(&b"web"[..]));
        assert_eq!(rule.service_of(b"/services/"), None);
        assert_eq!(rule.service_of(b"/services//n1"), None);
        assert_eq!(rule.service_of(b"/other/web/n1"), None);
    }
}
