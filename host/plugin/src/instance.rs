//! A running plugin: one wasmtime store holding one instance of a compiled component, with the
//! host functions of `wit/` wired to the server's reads and log. Every call is bounded by the
//! plugin's limits; a call that fails leaves the instance unusable (wasmtime forbids entering
//! an instance after a trap), so the caller drops it and starts a new one.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::{MemoryOutputPipe, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::aggregator::AggregatorPlugin;
use crate::bindings::hook::ElectionHookPlugin;
use crate::bindings::types::{Event, KeyValue, LogLevel, Member, Output};
use crate::bindings::{Spec, host, types};
use crate::engine::{Compiled, EPOCH_TICK, PluginEngine, World};
use crate::error::PluginError;
use crate::limits::Limits;

/// The reads a plugin may make, at a revision (never 0 here: the host resolves 0 first).
/// The error is the text the plugin's call traps with.
pub trait Reads: Send + Sync + 'static {
    fn get(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, String>;
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        revision: i64,
        limit: u32,
    ) -> Result<Vec<KeyValue>, String>;
}

/// Where the plugin's log lines go.
pub type LogSink = Arc<dyn Fn(LogLevel, String) + Send + Sync>;

/// A log line longer than this is cut: a plugin must not fill the leader's memory by logging.
const MAX_LOG_LINE: usize = 4096;
/// What the plugin writes to stderr (a Rust panic's message) is kept up to this much, to
/// explain a trap.
const STDERR_CAPACITY: usize = 64 * 1024;

pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    config: String,
    reads: Arc<dyn Reads>,
    /// What revision 0 means in reads: the newest revision the plugin has been shown.
    revision: i64,
    log: LogSink,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        (self.log)(level, message);
    }

    fn now_ms(&mut self) -> i64 {
        now_ms()
    }

    fn config(&mut self) -> String {
        self.config.clone()
    }

    fn get(&mut self, key: Vec<u8>, revision: i64) -> wasmtime::Result<Option<KeyValue>> {
        let revision = self.resolve(revision);
        self.reads
            .get(&key, revision)
            .map_err(|e| wasmtime::format_err!("host get: {e}"))
    }

    fn range(
        &mut self,
        start: Vec<u8>,
        end: Vec<u8>,
        revision: i64,
        limit: u32,
    ) -> wasmtime::Result<Vec<KeyValue>> {
        let revision = self.resolve(revision);
        self.reads
            .range(&start, &end, revision, limit)
            .map_err(|e| wasmtime::format_err!("host range: {e}"))
    }
}

impl HostState {
    fn resolve(&self, revision: i64) -> i64 {
        if revision == 0 {
            self.revision
        } else {
            revision
        }
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A store with one instance in it, and what explains its failures.
struct Sandbox {
    store: Store<HostState>,
    limits: Limits,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    fn new(
        engine: &PluginEngine,
        limits: Limits,
        config: String,
        reads: Arc<dyn Reads>,
        log: LogSink,
    ) -> Result<Self, PluginError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing granted: no files, no network, no environment; stdout is discarded.
        let wasi = WasiCtxBuilder::new()
            .stdout(SinkOutputStream)
            .stderr(stderr.clone())
            .build();
        let memory = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .instances(16)
                .tables(64)
                .memories(16)
                // Fail the call at the grow, with a clear reason, rather than letting the
                // guest's allocator abort with a generic one.
                .trap_on_grow_failure(true)
                .build(),
            config,
            reads,
            revision: 0,
            log,
        };
        let mut store = Store::new(&engine.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let mut sandbox = Self {
            store,
            limits,
            stderr,
        };
        sandbox.arm()?;
        Ok(sandbox)
    }

    /// A sandbox with the component, which must implement `world`, instantiated in it by
    /// `instantiate` (the world's generated constructor). A trap while instantiating is a
    /// failure to instantiate.
    /// Instantiates the component, which must implement `world`, in this sandbox with
    /// `instantiate` (the world's generated constructor). A trap while instantiating is a
    /// failure to instantiate.
    fn instantiate<B>(
        mut self,
        engine: &PluginEngine,
        compiled: &Compiled,
        world: World,
        instantiate: impl FnOnce(
            &mut Store<HostState>,
            &Component,
            &Linker<HostState>,
        ) -> wasmtime::Result<B>,
    ) -> Result<(Self, B), PluginError> {
        if compiled.world != world {
            return Err(PluginError::Unsupported(format!(
                "an {} plugin, not an {} plugin",
                compiled.world.as_str(),
                world.as_str()
            )));
        }
        let linker = Sandbox::linker(engine, world)?;
        let bindings = instantiate(&mut self.store, &compiled.component, &linker).map_err(|e| {
            match self.explain(&e) {
                PluginError::Trap(t) => PluginError::Instantiate(t),
                other => other,
            }
        })?;
        Ok((self, bindings))
    }

    fn linker(engine: &PluginEngine, world: World) -> Result<Linker<HostState>, PluginError> {
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let added = match world {
            World::Aggregator => {
                AggregatorPlugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            }
            World::ElectionHook => {
                ElectionHookPlugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            }
        };
        added.map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        Ok(linker)
    }

    /// Sets the next call's time and fuel budget.
    fn arm(&mut self) -> Result<(), PluginError> {
        let ticks = self.limits.timeout.as_nanos() / EPOCH_TICK.as_nanos();
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
        self.store
            .set_fuel(self.limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))
    }

    /// The operator's reading of a failed call.
    fn explain(&self, error: &wasmtime::Error) -> PluginError {
        if let Some(trap) = error.downcast_ref::<Trap>() {
            match trap {
                Trap::Interrupt => {
                    return PluginError::Timeout(self.limits.timeout.as_millis() as u64);
                }
                Trap::OutOfFuel => {
                    return PluginError::OutOfFuel(self.limits.fuel.unwrap_or(u64::MAX));
                }
                _ => {}
            }
        }
        let text = format!("{error:#}");
        if text.contains("growing memory") || text.contains("memory allocation") {
            return PluginError::OutOfMemory(self.limits.memory_bytes);
        }
        // A Rust panic prints its message to stderr before it traps: that is the reason.
        let stderr = self.stderr.contents();
        let said = String::from_utf8_lossy(&stderr);
        let said = said.trim();
        let said = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let first = text.lines().next().unwrap_or("");
        if said.is_empty() {
            PluginError::Trap(first.to_string())
        } else {
            PluginError::Trap(format!("{first}: {said}"))
        }
    }
}

/// An instance of an aggregator plugin.
pub struct AggregatorInstance {
    sandbox: Sandbox,
    bindings: AggregatorPlugin,
}

impl AggregatorInstance {
    /// Instantiates the component (which must be an aggregator) and runs its init with
    /// `config`, returning the inputs it asks for.
    pub fn start(
        engine: &PluginEngine,
        compiled: &Compiled,
        limits: Limits,
        config: &str,
        reads: Arc<dyn Reads>,
        log: LogSink,
    ) -> Result<(Self, Spec), PluginError> {
        let (sandbox, bindings) = Sandbox::new(engine, limits, config.to_string(), reads, log)?
            .instantiate(engine, compiled, World::Aggregator, |store, c, l| {
                AggregatorPlugin::instantiate(store, c, l)
            })?;
        let mut instance = Self { sandbox, bindings };
        let spec = instance.call(|b, s| b.conclave_plugin_aggregator().call_init(s, config))?;
        let spec = spec.map_err(PluginError::Config)?;
        if spec.resolution_ms == 0 {
            return Err(PluginError::Config("the resolution must be above 0".into()));
        }
        Ok((instance, spec))
    }

    /// Delivers inputs, in order. `revision` is the newest revision among them (what a read
    /// at revision 0 sees).
    pub fn on_events(&mut self, events: &[Event], revision: i64) -> Result<(), PluginError> {
        self.sandbox.store.data_mut().revision = revision;
        self.call(|b, s| b.conclave_plugin_aggregator().call_on_events(s, events))
    }

    /// Closes the window [start_ms, end_ms): its outputs.
    pub fn flush(&mut self, start_ms: i64, end_ms: i64) -> Result<Vec<Output>, PluginError> {
        self.call(|b, s| {
            b.conclave_plugin_aggregator()
                .call_flush(s, start_ms, end_ms)
        })
    }

    /// The revision reads at 0 see, before any event was delivered.
    pub fn set_revision(&mut self, revision: i64) {
        self.sandbox.store.data_mut().revision = revision;
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&AggregatorPlugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.sandbox.arm()?;
        f(&self.bindings, &mut self.sandbox.store).map_err(|e| self.sandbox.explain(&e))
    }
}

/// An instance of an election-hook plugin.
pub struct HookInstance {
    sandbox: Sandbox,
    bindings: ElectionHookPlugin,
}

impl HookInstance {
    /// Instantiates the component (which must be an election hook) and runs its init.
    pub fn start(
        engine: &PluginEngine,
        compiled: &Compiled,
        limits: Limits,
        config: &str,
        reads: Arc<dyn Reads>,
        log: LogSink,
    ) -> Result<Self, PluginError> {
        let (sandbox, bindings) = Sandbox::new(engine, limits, config.to_string(), reads, log)?
            .instantiate(engine, compiled, World::ElectionHook, |store, c, l| {
                ElectionHookPlugin::instantiate(store, c, l)
            })?;
        let mut instance = Self { sandbox, bindings };
        instance
            .call(|b, s| b.conclave_plugin_election_hook().call_init(s, config))?
            .map_err(PluginError::Config)?;
        Ok(instance)
    }

    /// Reads at revision 0 see this revision.
    pub fn set_revision(&mut self, revision: i64) {
        self.sandbox.store.data_mut().revision = revision;
    }

    pub fn elected(
        &mut self,
        term: u64,
        leader: &Member,
        members: &[Member],
    ) -> Result<Vec<Output>, PluginError> {
        self.call(|b, s| {
            b.conclave_plugin_election_hook()
                .call_elected(s, term, leader, members)
        })
    }

    pub fn lost(&mut self, term: u64) -> Result<(), PluginError> {
        self.call(|b, s| b.conclave_plugin_election_hook().call_lost(s, term))
    }

    pub fn election_changed(
        &mut self,
        name: &[u8],
        leader: Option<&KeyValue>,
    ) -> Result<Vec<Output>, PluginError> {
        self.call(|b, s| {
            b.conclave_plugin_election_hook()
                .call_election_changed(s, name, leader)
        })
    }

    pub fn preferred_leader(&mut self, members: &[Member]) -> Result<Option<u64>, PluginError> {
        self.call(|b, s| {
            b.conclave_plugin_election_hook()
                .call_preferred_leader(s, members)
        })
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&ElectionHookPlugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.sandbox.arm()?;
        f(&self.bindings, &mut self.sandbox.store).map_err(|e| self.sandbox.explain(&e))
    }
}
