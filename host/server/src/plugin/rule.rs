//! One aggregation rule running on the leader, on a thread of its own (plugin calls block for
//! up to their time limit): it replays history from the rule's flush mark, feeds the plugin
//! the KV events under its source prefixes in revision order, and when a window closes
//! proposes the window's outputs together with the new flush mark. A failure (trap, timeout,
//! out of memory, a refused proposal) marks the plugin failed and restarts it from the
//! committed flush mark after a backoff; nothing else is disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conclave_plugin::{AggregatorInstance, Event, EventKind, KeyValue, KvEvent, Spec, World};
use conclave_proto::conclavepb::{FlushMark, PluginChanged, PluginFlush, command::Request};
use conclave_proto::mvccpb::{self, event::EventType};
use conclave_store::{RequestError, StoreError};

use super::StoreReads;
use super::error::RunError;
use super::leader::{Current, OnLeader};
use super::outputs::{Window, flush_proposal};
use super::thread::{Exit, IDLE, PluginThread};
use super::windows::{Windows, window_start};
use crate::clock::now_ms;

/// Events read from history per step.
const HISTORY_STEP: usize = 1000;
/// Ingested samples handed to the plugin per call.
const SAMPLE_STEP: usize = 4096;

pub struct Rule {
    pub ctx: OnLeader,
}

impl Rule {
    pub fn spawn(self) -> std::io::Result<PluginThread> {
        PluginThread::spawn(
            self.ctx.name.clone(),
            self.ctx.plugins.clone(),
            move |stop| self.run_once(stop),
        )
    }

    fn run_once(&self, stop: &AtomicBool) -> Result<Exit, RunError> {
        let store = &self.ctx.plugins.store;
        let Some(Current {
            record,
            spec,
            compiled,
            limits,
        }) = self.ctx.current(World::Aggregator)?
        else {
            return Ok(Exit::Stopped);
        };
        let started = Instant::now();
        let (mut instance, inputs) = AggregatorInstance::start(
            &self.ctx.plugins.engine,
            &compiled,
            limits,
            &spec.config,
            Arc::new(StoreReads(store.clone())),
            self.ctx.plugins.log_sink(&self.ctx.name),
        )?;
        self.ctx
            .plugins
            .statuses
            .call(&self.ctx.name, started.elapsed(), 0, 0);
        let mut mark = match record.mark {
            Some(mark) => mark,
            None => self.start_mark(&spec.name, spec.version, &inputs)?,
        };
        self.ctx.plugins.statuses.running(&self.ctx.name);
        self.ctx.plugins.note(
            &self.ctx.name,
            "info",
            format!(
                "running version {} from revision {} (windows up to {} ms flushed)",
                spec.version, mark.replay_from, mark.end_ms
            ),
        );
        let mut windows = Windows::new(
            inputs.resolution_ms,
            inputs.allowed_lateness_ms,
            mark.end_ms,
        );
        let mut cursor = mark.replay_from.max(1);
        // Every sample this member still holds: those of flushed windows are dropped as late.
        let mut sample_cursor = self.ctx.plugins.samples.first();
        let samples_at_start = self.ctx.plugins.samples.next();
        let mut sample_news = self.ctx.plugins.samples.subscribe();
        let mut news = self.ctx.plugins.news();
        let mut registry_seen = news.borrow().registry_changes;
        // A new version was deployed: it takes over at the next window boundary.
        let mut upgrade = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Exit::Stopped);
            }
            let caught_up = self.deliver(&mut instance, &inputs, &mut windows, &mut cursor)?
                & self.deliver_samples(
                    &mut instance,
                    &inputs,
                    &mut windows,
                    &mut sample_cursor,
                    cursor - 1,
                    samples_at_start,
                )?;
            if !caught_up {
                continue;
            }
            while let Some((start_ms, end_ms)) = windows.due(now_ms()) {
                if stop.load(Ordering::Relaxed) {
                    return Ok(Exit::Stopped);
                }
                let window = Window {
                    previous_end_ms: mark.end_ms,
                    start_ms,
                    end_ms,
                    replay_from: windows.replay_from_after(end_ms, cursor),
                };
                let outputs = self.ctx.timed(0, || instance.flush(start_ms, end_ms))?;
                let flush = flush_proposal(
                    &self.ctx.name,
                    spec.version,
                    window,
                    outputs,
                    crate::ids::random_lease_id,
                )?;
                match self.propose_flush(flush)? {
                    Some(new_mark) => mark = new_mark,
                    None => return Ok(Exit::Restart),
                }
                windows.flushed(end_ms);
                self.ctx.plugins.statuses.flushed(&self.ctx.name, end_ms);
                if upgrade {
                    // The new version replays the still-open windows from the new mark.
                    return Ok(Exit::Restart);
                }
            }
            let registry = news.borrow().registry_changes;
            if registry != registry_seen {
                registry_seen = registry;
                match store.plugin(&self.ctx.name).map_err(RunError::Registry)? {
                    None => return Ok(Exit::Stopped),
                    Some(r) => upgrade = r.versions.last() != Some(&spec),
                }
            }
            if upgrade && !windows.has_open() {
                return Ok(Exit::Restart);
            }
            let wait = windows
                .next_due_ms()
                .map(|due| Duration::from_millis((due - now_ms()).max(0) as u64))
                .unwrap_or(IDLE)
                .min(IDLE);
            let revision = news.borrow_and_update().revision;
            let samples = *sample_news.borrow_and_update();
            if revision < cursor && samples <= sample_cursor {
                self.ctx.runtime.block_on(async {
                    let _ = tokio::time::timeout(wait, async {
                        tokio::select! {
                            _ = news.changed() => {}
                            _ = sample_news.changed() => {}
                        }
                    })
                    .await;
                });
            }
        }
    }

    /// Reads history from `cursor` and hands the plugin the events it asked for. True once
    /// the read reached the newest applied revision.
    fn deliver(
        &self,
        instance: &mut AggregatorInstance,
        inputs: &Spec,
        windows: &mut Windows,
        cursor: &mut i64,
    ) -> Result<bool, RunError> {
        let history = match self.ctx.plugins.store.history(*cursor, HISTORY_STEP) {
            Ok(h) => h,
            Err(StoreError::Request(RequestError::Compacted)) => {
                // History the mark points into was compacted away: those inputs are gone.
                let compacted = self.ctx.plugins.store.compacted_revision();
                self.ctx.plugins.note(
                    &self.ctx.name,
                    "warn",
                    format!(
                        "history from revision {} was compacted; resuming at {}",
                        *cursor,
                        compacted + 1
                    ),
                );
                *cursor = compacted + 1;
                return Ok(false);
            }
            Err(e) => return Err(RunError::History(e)),
        };
        let mut batch = Vec::new();
        let mut newest = 0;
        for (event, &time) in history.events.iter().zip(&history.times) {
            let Some(kv) = &event.kv else { continue };
            if !inputs.source_prefixes.iter().any(|p| kv.key.starts_with(p)) {
                continue;
            }
            let time_ms = windows.place(kv.mod_revision, time);
            newest = kv.mod_revision;
            batch.push(Event::Kv(kv_event(event, kv, time_ms)));
        }
        if !batch.is_empty() {
            self.ctx
                .timed(batch.len() as u64, || instance.on_events(&batch, newest))?;
        }
        *cursor = history.next;
        Ok(history.next > history.revision)
    }

    /// Hands the plugin the ingested samples it asked for, from `cursor` on; those of windows
    /// already flushed are dropped (counted in its log if they came after `started_at`, the
    /// number of the first sample that arrived during this run). `revision`: what its reads
    /// at 0 see. True once every sample held was read.
    fn deliver_samples(
        &self,
        instance: &mut AggregatorInstance,
        inputs: &Spec,
        windows: &mut Windows,
        cursor: &mut u64,
        revision: i64,
        started_at: u64,
    ) -> Result<bool, RunError> {
        if inputs.ingest_prefixes.is_empty() {
            // Nothing to read, but the rule must not wait for samples it does not want.
            *cursor = self.ctx.plugins.samples.next();
            return Ok(true);
        }
        let (read, next) = self.ctx.plugins.samples.read(*cursor, SAMPLE_STEP);
        *cursor = next;
        let caught_up = read.len() < SAMPLE_STEP;
        let first = next - read.len() as u64;
        let mut batch = Vec::new();
        let mut late = 0u64;
        for (number, sample) in (first..).zip(read) {
            let wanted = inputs
                .ingest_prefixes
                .iter()
                .any(|p| sample.series.starts_with(p.as_str()));
            if !wanted {
                continue;
            }
            match windows.place_sample(sample.time_ms) {
                Some(time_ms) => batch.push(Event::Sample(conclave_plugin::Sample {
                    series: sample.series.to_string(),
                    value: sample.value,
                    time_ms,
                })),
                // Samples held from before this run began were counted by an earlier one
                // (they stay until every rule's mark covers them): not late, just old.
                None if number >= started_at => late += 1,
                None => {}
            }
        }
        if late > 0 {
            self.ctx.plugins.note(
                &self.ctx.name,
                "warn",
                format!("dropped {late} samples whose window was flushed already"),
            );
        }
        if !batch.is_empty() {
            self.ctx
                .timed(batch.len() as u64, || instance.on_events(&batch, revision))?;
        }
        Ok(caught_up)
    }

    /// A plugin without a mark starts at the present: its first mark records where.
    fn start_mark(&self, name: &str, version: u64, inputs: &Spec) -> Result<FlushMark, RunError> {
        let resolution = i64::try_from(inputs.resolution_ms).unwrap_or(i64::MAX);
        let now = window_start(now_ms(), resolution);
        let flush = PluginFlush {
            name: name.to_string(),
            version,
            previous_end_ms: 0,
            start_ms: now,
            end_ms: now,
            replay_from: self.ctx.plugins.store.current_revision() + 1,
            leases: Vec::new(),
            ops: Vec::new(),
        };
        self.propose_flush(flush)?.ok_or(RunError::Superseded)
    }

    /// Proposes a flush; the new mark, or None if the mark moved (another leader's flush).
    fn propose_flush(&self, flush: PluginFlush) -> Result<Option<FlushMark>, RunError> {
        match self.ctx.propose("flush", Request::PluginFlush(flush))? {
            Ok(response) => PluginChanged::try_from(response)?
                .mark
                .map(Some)
                .ok_or(RunError::FlushWithoutMark),
            Err(RequestError::FlushMarkMoved) => Ok(None),
            Err(RequestError::PluginNotFound) => Err(RunError::Removed),
            Err(error) => Err(RunError::Refused {
                what: "flush",
                error,
            }),
        }
    }
}

fn kv_event(event: &mvccpb::Event, kv: &mvccpb::KeyValue, time_ms: i64) -> KvEvent {
    let kind = if event.r#type == EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    KvEvent {
        kind,
        kv: KeyValue {
            key: kv.key.clone(),
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        },
        revision: kv.mod_revision,
        time_ms,
    }
}
