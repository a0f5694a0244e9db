//! conclave's plugin SDK: write an aggregation rule or an election hook as a Rust trait, export
//! it with one macro, build for `wasm32-wasip2`. wit-bindgen stays behind this crate.
//!
//! ```no_run
//! use conclave_plugin_sdk::{Aggregator, Event, Output, Spec};
//!
//! struct Count(u64);
//!
//! impl Aggregator for Count {
//!     fn init(_config: &str) -> Result<(Self, Spec), String> {
//!         let spec = Spec {
//!             source_prefixes: vec![b"/jobs/".to_vec()],
//!             ingest_prefixes: vec![],
//!             resolution_ms: 10_000,
//!             allowed_lateness_ms: 1_000,
//!         };
//!         Ok((Count(0), spec))
//!     }
//!     fn on_event(&mut self, _event: Event) {
//!         self.0 += 1;
//!     }
//!     fn flush(&mut self, start_ms: i64, _end_ms: i64) -> Vec<Output> {
//!         let n = std::mem::take(&mut self.0);
//!         vec![Output::put(format!("/job-counts/{start_ms}"), n.to_string())]
//!     }
//! }
//!
//! conclave_plugin_sdk::export_aggregator!(Count);
//! ```
//!
//! The math (`aggregation`, `duration`, `json`, `keys`) has no dependency on the bindings, so
//! it runs and tests on any target.

pub mod aggregation;
mod bindings;
pub mod duration;
mod error;
pub mod host;
pub mod json;
pub mod keys;
mod plugin;
mod types;

pub use aggregation::{Accumulator, AggregationType, Windows, window_start};
pub use bindings::types::{
    Event, EventKind, KeyValue, KvEvent, LogLevel, Member, Output, Put, Sample, Spec,
};
pub use duration::parse_duration_ms;
pub use error::Error;
pub use host::log;
pub use keys::prefix_range_end;
pub use plugin::{Aggregator, ElectionHook};

/// What the export macros expand to. Not part of the API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::aggregator as aggregator_bindings;
    pub use crate::bindings::election_hook as election_hook_bindings;
    pub use crate::plugin::glue::*;
}

/// Compiles the examples of `plugins/README.md` with the doctests, so it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
