//! A test plugin for the host's epoch deadline: its first `on-events` never returns. The host
//! must interrupt it, disable the plugin with a visible status, and keep serving.

use conclave_plugin_sdk::{Aggregator, Event, Output, Spec, log};

pub struct LoopForever;

impl Aggregator for LoopForever {
    /// Any config will do: the test is about the call that never ends, not the setup.
    fn init(_config: &str) -> Result<(Self, Spec), String> {
        Ok((LoopForever, Spec::kv(&[b"/loop/"], 1_000)))
    }

    fn on_event(&mut self, _event: Event) {
        // Logged first: a test can check that the lines before a failure reach the plugin's
        // log, and the component imports `host` as its world says.
        log::info("loop-forever: spinning until the host's deadline");
        let mut spins: u64 = 0;
        // black_box hides the counter from the optimiser, so every turn does work it cannot
        // prove useless: the call really spins until the host's deadline stops it.
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn flush(&mut self, _start_ms: i64, _end_ms: i64) -> Vec<Output> {
        Vec::new()
    }
}

conclave_plugin_sdk::export_aggregator!(LoopForever);
