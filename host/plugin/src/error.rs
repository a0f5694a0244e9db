//! Why a plugin could not be loaded or a call failed, in words an operator can act on.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// Not a WebAssembly component wasmtime can compile.
    #[error("invalid wasm: {0}")]
    Invalid(String),
    /// A component, but not of a world this host knows (or of another ABI version).
    #[error("unsupported plugin: {0}")]
    Unsupported(String),
    /// It imports something the host does not offer.
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    /// Its init refused the config.
    #[error("config rejected: {0}")]
    Config(String),
    /// A call ran past its time limit.
    #[error("timed out: a call ran longer than {0} ms")]
    Timeout(u64),
    /// A call ran out of fuel.
    #[error("out of fuel: a call used more than {0} units")]
    OutOfFuel(u64),
    /// It tried to grow its memory past the limit.
    #[error("out of memory: the limit is {0} bytes")]
    OutOfMemory(u64),
    /// It trapped (a panic, an unreachable, a bad memory access...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The compiled-component cache could not be read or written.
    #[error("component cache: {0}")]
    Cache(String),
}
