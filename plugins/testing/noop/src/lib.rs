//! A plugin for measuring the host (`cargo bench -p conclave-plugin`): it counts its inputs and
//! nothing else, so what a call costs is the host's part (lowering the events into the guest's
//! memory, entering and leaving it). Each flush reports the count under `/noop/count`.

use conclave_plugin_sdk::{Aggregator, Event, Output, Spec};

pub struct Noop(u64);

impl Aggregator for Noop {
    /// Any config will do: KV events under /noop/ and samples of series under /noop/.
    fn init(_config: &str) -> Result<(Self, Spec), String> {
        let mut spec = Spec::kv(&[b"/noop/"], 1_000);
        spec.ingest_prefixes = vec!["/noop/".into()];
        Ok((Noop(0), spec))
    }

    fn on_event(&mut self, _event: Event) {
        self.0 += 1;
    }

    fn flush(&mut self, _start_ms: i64, _end_ms: i64) -> Vec<Output> {
        vec![Output::put(b"/noop/count".to_vec(), self.0.to_string())]
    }
}

conclave_plugin_sdk::export_aggregator!(Noop);
