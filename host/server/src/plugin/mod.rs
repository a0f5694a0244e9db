//! Plugins on this member: the wasmtime engine and its compiled components, what the leader's
//! runtime reports, and the news from apply that wakes it. The registry itself is replicated
//! state (the store's `plugin/` meta entries); the runtime runs only on the leader
//! (`supervisor`), and a window's outputs go back through Raft with the rule's flush mark
//! (`rule`), never written inside apply.

mod error;
mod hook;
mod leader;
mod logs;
mod outputs;
mod reads;
mod rule;
mod samples;
mod status;
mod supervisor;
mod thread;
mod windows;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use conclave_plugin::{Compiled, LogLevel, LogSink, PluginEngine, PluginError};
use conclave_proto::conclavepb::PluginSpec;
use conclave_raft::ApplyListener;
use conclave_store::{Applied, Response, Store};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::info;

pub use leader::MemberParts;
pub use logs::PluginLogs;
pub use reads::StoreReads;
pub use samples::{Sample, SampleBuffer};
pub use status::Statuses;
pub use supervisor::Supervisor;
use thread::PluginThread;

/// What apply has done lately, as the runtime waits on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedNews {
    /// The store's revision after the latest applied batch.
    pub revision: i64,
    /// How many batches changed the plugin registry so far.
    pub registry_changes: u64,
}

pub struct Plugins {
    pub engine: PluginEngine,
    pub store: Arc<Store>,
    pub logs: PluginLogs,
    pub statuses: Statuses,
    /// Ingested samples, on every member, until the flush marks cover them.
    pub samples: SampleBuffer,
    compiled: Mutex<HashMap<[u8; 32], Compiled>>,
    news: watch::Sender<AppliedNews>,
    /// How many batches changed the registry: the supervisor waits on this alone, not on
    /// every applied batch.
    registry: watch::Sender<u64>,
    /// The plugin threads this member runs as leader, by plugin name (the supervisor's).
    threads: Mutex<HashMap<String, PluginThread>>,
}

impl Plugins {
    /// Compiled components are cached under `data_dir/plugins`.
    pub fn new(data_dir: &Path, store: Arc<Store>) -> Result<Arc<Self>, PluginError> {
        let engine = PluginEngine::new(&data_dir.join("plugins"))?;
        let (news, _) = watch::channel(AppliedNews {
            revision: store.current_revision(),
            registry_changes: 0,
        });
        Ok(Arc::new(Self {
            engine,
            store,
            logs: PluginLogs::default(),
            statuses: Statuses::default(),
            samples: SampleBuffer::default(),
            compiled: Mutex::new(HashMap::new()),
            news,
            registry: watch::channel(0).0,
            threads: Mutex::new(HashMap::new()),
        }))
    }

    pub fn news(&self) -> watch::Receiver<AppliedNews> {
        self.news.subscribe()
    }

    /// Changes when (and only when) an applied batch changed the registry.
    pub fn registry_news(&self) -> watch::Receiver<u64> {
        self.registry.subscribe()
    }

    /// Compiles `wasm` (blocking: cranelift may take a while, the disk cache is read).
    pub fn compile(&self, wasm: &[u8]) -> Result<Compiled, PluginError> {
        let compiled = self.engine.compile(wasm)?;
        self.compiled
            .lock()
            .insert(compiled.digest, compiled.clone());
        Ok(compiled)
    }

    /// The compiled component of a registered version, from memory, the disk cache, or the
    /// registry's bytes (blocking).
    pub fn compiled(&self, spec: &PluginSpec) -> Result<Compiled, PluginError> {
        if let Ok(digest) = <[u8; 32]>::try_from(spec.digest.as_slice())
            && let Some(c) = self.compiled.lock().get(&digest)
        {
            return Ok(c.clone());
        }
        let wasm = self
            .store
            .plugin_wasm(&spec.digest)
            .map_err(|e| PluginError::Cache(format!("cannot read the component: {e}")))?
            .ok_or_else(|| {
                PluginError::Cache(format!(
                    "the registry has no component for {} version {}",
                    spec.name, spec.version
                ))
            })?;
        self.compile(&wasm)
    }

    /// Forgets compiled components no registered version uses.
    pub fn retain_compiled(&self, digests: &[Vec<u8>]) {
        self.compiled
            .lock()
            .retain(|d, _| digests.iter().any(|x| x.as_slice() == d));
    }

    /// Where a plugin's `log` calls go: its log here, and this member's log.
    pub fn log_sink(self: &Arc<Self>, name: &str) -> LogSink {
        let plugins = self.clone();
        let name = name.to_string();
        Arc::new(move |level, message| {
            let level = match level {
                LogLevel::Trace => "trace",
                LogLevel::Debug => "debug",
                LogLevel::Info => "info",
                LogLevel::Warn => "warn",
                LogLevel::Error => "error",
            };
            tracing::info!(plugin = %name, level, "{message}");
            plugins.logs.push(&name, level, message);
        })
    }

    /// Stops every plugin thread and waits for them (blocking: a call in progress ends by its
    /// time limit), so that none touches the runtime or Raft after the server stops them.
    pub fn stop_threads(&self) {
        let threads: Vec<PluginThread> = self.threads.lock().drain().map(|(_, t)| t).collect();
        for thread in &threads {
            thread.stop();
        }
        for thread in threads {
            thread.join();
        }
    }

    /// A line of the host's own about a plugin, in its log and this member's.
    pub fn note(&self, name: &str, level: &str, message: String) {
        info!(plugin = %name, "{message}");
        self.logs.push(name, level, message);
    }
}

/// Apply's news for the runtime: the revision moved, the registry changed.
pub struct PluginsListener(pub Arc<Plugins>);

impl ApplyListener for PluginsListener {
    fn applied(&self, outcomes: &[Applied]) {
        let revision = outcomes.iter().map(|o| o.revision).max().unwrap_or(0);
        let registry = outcomes
            .iter()
            .any(|o| matches!(o.result, Ok(Response::Plugin(_))));
        self.0.news.send_if_modified(|news| {
            let before = *news;
            news.revision = news.revision.max(revision);
            if registry {
                news.registry_changes += 1;
            }
            *news != before
        });
        if registry {
            self.0.registry.send_modify(|n| *n += 1);
        }
    }

    fn installed(&self, revision: i64) {
        self.0.news.send_modify(|news| {
            news.revision = revision;
            news.registry_changes += 1;
        });
        self.0.registry.send_modify(|n| *n += 1);
    }
}
