//! One wasmtime engine per member: components are compiled once and cached on disk by the
//! engine's compatibility hash and the component's digest, so a member restarted, or one that
//! becomes leader, loads machine code instead of compiling again. A background thread ticks
//! the engine's epoch, which is what interrupts a call that runs past its time limit.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::error::PluginError;

/// How often the epoch advances: the granularity of call time limits.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The ABI this host implements, as component export names carry it.
const PACKAGE: &str = "conclave:plugin";
const VERSION: &str = "0.1.0";

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    Aggregator,
    ElectionHook,
}

impl World {
    /// The name the registry and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Aggregator => "aggregator",
            World::ElectionHook => "election-hook",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "aggregator" => Some(World::Aggregator),
            "election-hook" => Some(World::ElectionHook),
            _ => None,
        }
    }
}

/// A compiled component and the world it implements.
#[derive(Clone)]
pub struct Compiled {
    pub(crate) component: Component,
    pub world: World,
    /// SHA-256 of the component's bytes.
    pub digest: [u8; 32],
}

/// The engine, its epoch ticker and the compile cache.
pub struct PluginEngine {
    pub(crate) engine: Engine,
    cache: PathBuf,
    stop: Arc<AtomicBool>,
}

impl PluginEngine {
    /// An engine whose compiled components are cached under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Time limits: a call's deadline is counted in epoch ticks.
        config.epoch_interruption(true);
        // Fuel limits, for plugins deployed with one; the others get all the fuel there is.
        config.consume_fuel(true);
        // A deep recursion traps instead of taking the host thread's stack.
        config.max_wasm_stack(1024 * 1024);
        let engine = Engine::new(&config).map_err(|e| PluginError::Invalid(e.to_string()))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = cache_dir.join(format!("{:016x}", hasher.finish()));
        std::fs::create_dir_all(&cache)
            .map_err(|e| PluginError::Cache(format!("cannot create {}: {e}", cache.display())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.clone();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Cache(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            engine,
            cache,
            stop,
        })
    }

    /// Compiles `wasm` (or loads it from the cache) and checks that it implements a world of
    /// this ABI version.
    pub fn compile(&self, wasm: &[u8]) -> Result<Compiled, PluginError> {
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let path = self.cache.join(format!("{}.cwasm", hex::encode(digest)));
        let component = match self.load_cached(&path) {
            Some(c) => c,
            None => {
                check_is_component(wasm)?;
                let compiled = self
                    .engine
                    .precompile_component(wasm)
                    .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
                self.store_cached(&path, &compiled);
                // SAFETY: the bytes were produced by this engine's precompile just now.
                unsafe { Component::deserialize(&self.engine, &compiled) }
                    .map_err(|e| PluginError::Invalid(format!("{e:#}")))?
            }
        };
        let world = world_of(&self.engine, &component)?;
        Ok(Compiled {
            component,
            world,
            digest,
        })
    }

    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory is this member's own, written only by `store_cached`
        // with output of an engine of the same compatibility hash (the directory's name);
        // wasmtime checks the header of what it deserializes as well.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(c) => {
                debug!(path = %path.display(), "compiled component loaded from the cache");
                Some(c)
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "ignoring an unreadable cached component");
                None
            }
        }
    }

    /// Best effort: a cache that cannot be written only costs a compile next time.
    fn store_cached(&self, path: &Path, compiled: &[u8]) {
        let tmp = path.with_extension("tmp");
        let result = std::fs::write(&tmp, compiled).and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            warn!(path = %path.display(), error = %e, "cannot cache a compiled component");
        }
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A core module or arbitrary bytes get a clearer refusal than the compiler's.
fn check_is_component(wasm: &[u8]) -> Result<(), PluginError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(PluginError::Invalid(
            "not a WebAssembly binary (no \\0asm header)".into(),
        ));
    }
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::Invalid(
            "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2".into(),
        ));
    }
    Ok(())
}

/// The world a component implements, from the interface it exports.
fn world_of(engine: &Engine, component: &Component) -> Result<World, PluginError> {
    let ty = component.component_type();
    let mut ours = Vec::new();
    for (name, _) in ty.exports(engine) {
        let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if version != VERSION {
            return Err(PluginError::Unsupported(format!(
                "it exports {name}, of ABI version {version:?}; this host implements {PACKAGE}@{VERSION}"
            )));
        }
        ours.push(interface.to_string());
    }
    match ours.as_slice() {
        [one] if one == "aggregator" => Ok(World::Aggregator),
        [one] if one == "election-hook" => Ok(World::ElectionHook),
        [] => Err(PluginError::Unsupported(format!(
            "it exports no {PACKAGE}@{VERSION} interface (aggregator or election-hook)"
        ))),
        other => Err(PluginError::Unsupported(format!(
            "it exports {other:?}; a plugin implements exactly one of aggregator and election-hook"
        ))),
    }
}
