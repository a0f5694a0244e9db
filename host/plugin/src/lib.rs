//! The plugin host: compiles, caches and runs WebAssembly components of the
//! `conclave:plugin@0.1.0` package (`wit/`) under wasmtime, each call bounded in time, memory
//! and optionally fuel. It knows nothing of Raft or the store: the server hands it the reads a
//! plugin may make ([`Reads`]) and proposes what the plugin returns.

mod bindings;
mod engine;
mod error;
mod instance;
mod limits;

pub use bindings::Spec;
pub use bindings::types::{
    Event, EventKind, KeyValue, KvEvent, LogLevel, Member, Output, Put, Sample,
};
pub use engine::{Compiled, PluginEngine, World};
pub use error::PluginError;
pub use instance::{AggregatorInstance, HookInstance, LogSink, Reads};
pub use limits::Limits;
