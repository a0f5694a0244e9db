//! Runs on every member: compiles each newly registered plugin version ahead of need (so a
//! member that becomes leader starts its plugins without compiling), and, on the leader only,
//! runs one thread per registered plugin: a rule per aggregator, a hook runner per election
//! hook. Leadership lost, every thread is told to stop before anything else happens here;
//! leadership gained, they start only once this leader has applied its own term's first
//! entry, so they see everything the old leader committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_plugin::World;
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::Plugins;
use super::hook::Hook;
use super::leader::MemberParts;
use super::leader::OnLeader;
use super::rule::Rule;
use super::thread::PluginThread;

/// How often the supervisor looks again without news (to restart a rule that ended).
const TICK: Duration = Duration::from_secs(1);

pub struct Supervisor {
    pub plugins: Arc<Plugins>,
    pub member: MemberParts,
}

impl Supervisor {
    pub async fn run(self) {
        let cluster = &self.member.cluster;
        let mut log = cluster.log_changes();
        let mut leadership = cluster.leadership_changes();
        let mut registry_news = self.plugins.registry_news();
        let mut leading: Option<u64> = None;
        let mut compiled_at: Option<u64> = None;
        let mut synced = Instant::now();
        loop {
            let now_leading = cluster.leading_with_own_term_applied();
            let leadership_moved = now_leading != leading;
            if leadership_moved {
                for (_, thread) in self.plugins.threads.lock().drain() {
                    thread.stop();
                }
                self.plugins.statuses.clear();
                if let Some(term) = now_leading {
                    info!(term, "leading: starting the plugins");
                }
                leading = now_leading;
            }
            let registry = *registry_news.borrow_and_update();
            let registry_changed = compiled_at != Some(registry);
            if registry_changed {
                compiled_at = Some(registry);
                self.precompile().await;
            }
            // The registry is read again only when it changed, leadership moved, or a tick
            // passed (to restart a thread that ended).
            if leadership_moved || registry_changed || synced.elapsed() >= TICK {
                synced = Instant::now();
                self.forget_flushed_samples();
                if let Some(term) = leading {
                    self.sync(&mut self.plugins.threads.lock(), term);
                }
            }
            // Raft's full metrics change with every append and apply: they are waited on only
            // while this member leads but has not applied its own term's first entry yet.
            // Otherwise leadership (server metrics), the registry and the tick wake this loop.
            let awaiting_apply = cluster.is_leader() && leading.is_none();
            tokio::select! {
                _ = leadership.changed() => {}
                _ = log.changed(), if awaiting_apply => {}
                _ = registry_news.changed() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Starts a thread for each registered plugin that has none running; stops the threads
    /// of plugins no longer registered.
    fn sync(&self, threads: &mut HashMap<String, PluginThread>, term: u64) {
        let registry = match self.plugins.store.plugins() {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read the plugin registry");
                return;
            }
        };
        threads.retain(|name, rule| {
            let registered = registry.iter().any(|(n, _)| n == name);
            if !registered {
                rule.stop();
                self.plugins.statuses.forget(name);
            }
            registered && !rule.is_finished()
        });
        for (name, record) in registry {
            let Some(spec) = record.versions.last() else {
                continue;
            };
            if threads.contains_key(&name) {
                continue;
            }
            let ctx = OnLeader {
                name: name.clone(),
                plugins: self.plugins.clone(),
                member: self.member.clone(),
                runtime: Handle::current(),
                term,
            };
            let started = match World::parse(&spec.world) {
                Some(World::Aggregator) => Rule { ctx }.spawn(),
                Some(World::ElectionHook) => Hook { ctx }.spawn(),
                None => continue,
            };
            match started {
                Ok(thread) => {
                    threads.insert(name, thread);
                }
                Err(e) => warn!(plugin = %name, error = %e, "cannot start a plugin thread"),
            }
        }
    }

    /// Drops the ingested samples every aggregator's flush mark covers (all of them when no
    /// aggregator is registered: nobody will read them).
    fn forget_flushed_samples(&self) {
        let Ok(registry) = self.plugins.store.plugins() else {
            return;
        };
        let floor = registry
            .iter()
            .filter(|(_, r)| {
                r.versions
                    .last()
                    .is_some_and(|v| World::parse(&v.world) == Some(World::Aggregator))
            })
            .map(|(_, r)| r.mark.map_or(0, |m| m.end_ms))
            .min()
            .unwrap_or(i64::MAX);
        self.plugins.samples.forget_before(floor);
    }

    /// Compiles every registered version not compiled yet (off the async workers).
    async fn precompile(&self) {
        let plugins = self.plugins.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let registry = plugins.store.plugins()?;
            let mut digests = Vec::new();
            for (name, record) in &registry {
                for spec in &record.versions {
                    digests.push(spec.digest.clone());
                }
                if let Some(spec) = record.versions.last()
                    && let Err(e) = plugins.compiled(spec)
                {
                    warn!(plugin = %name, error = %e, "cannot compile a registered plugin");
                }
            }
            plugins.retain_compiled(&digests);
            Ok::<_, conclave_store::StoreError>(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot read the plugin registry"),
            Err(e) => warn!(error = %e, "plugin compile task failed"),
        }
    }
}
