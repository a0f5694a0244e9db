//! A test plugin for the host's trap handling: `on-events` traps on its first event. The host
//! must disable the plugin with a visible status, restart it with backoff, and harm nothing.

use conclave_plugin_sdk::{Aggregator, Event, Output, Spec, log};

pub struct Trap;

impl Aggregator for Trap {
    /// Any config will do.
    fn init(_config: &str) -> Result<(Self, Spec), String> {
        Ok((Trap, Spec::kv(&[b"/trap/"], 1_000)))
    }

    fn on_event(&mut self, _event: Event) {
        // Logged first: a test can check that the lines before a failure reach the plugin's
        // log, and the component imports `host` as its world says.
        log::info("trap: trapping on purpose");
        // The wasm `unreachable` instruction: a trap at once, with no panic message written to
        // stderr first. (A panic would trap too: wasm32 aborts on panic, and abort is
        // `unreachable`; it only prints its message first.)
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        panic!("trap plugin: on-events traps by design");
    }

    fn flush(&mut self, _start_ms: i64, _end_ms: i64) -> Vec<Output> {
        Vec::new()
    }
}

conclave_plugin_sdk::export_aggregator!(Trap);
