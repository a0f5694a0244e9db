//! A test plugin for the host's memory limit: its first `on-events` allocates 1 MiB after
//! 1 MiB and never lets go. The host's limit must stop it (the failed allocation aborts, a
//! trap), disable the plugin, and leave the store unharmed.

use conclave_plugin_sdk::{Aggregator, Event, Output, Spec, log};

const CHUNK: usize = 1 << 20;

pub struct AllocBomb {
    hoard: Vec<Vec<u8>>,
}

impl Aggregator for AllocBomb {
    /// Any config will do.
    fn init(_config: &str) -> Result<(Self, Spec), String> {
        Ok((
            AllocBomb { hoard: Vec::new() },
            Spec::kv(&[b"/bomb/"], 1_000),
        ))
    }

    fn on_event(&mut self, _event: Event) {
        // Logged first: a test can check that the lines before a failure reach the plugin's
        // log, and the component imports `host` as its world says.
        log::info("alloc-bomb: allocating until the host's memory limit");
        loop {
            // A non-zero fill writes every page, so the memory is really used, not only
            // reserved; black_box keeps the optimiser from dropping the unread buffers.
            let chunk = std::hint::black_box(vec![0xa5u8; CHUNK]);
            self.hoard.push(chunk);
            std::hint::black_box(&self.hoard);
        }
    }

    fn flush(&mut self, _start_ms: i64, _end_ms: i64) -> Vec<Output> {
        Vec::new()
    }
}

conclave_plugin_sdk::export_aggregator!(AllocBomb);
