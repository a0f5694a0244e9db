//! What a plugin call costs, per input, in this process (no server, no network):
//! `cargo bench -p conclave-plugin --bench overhead`.
//!
//! - The host's part: the `noop` plugin only counts its inputs, so the time per KV event at a
//!   batch size is what the host spends lowering events into the guest and calling it.
//! - `rollup`'s whole cost per KV event and per ingested sample (100 series, six aggregation
//!   types): the ceiling of one rule's throughput on one core.
//!
//! Each figure is the median of 5 rounds of at least 200,000 inputs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NoReads, plugin};
use conclave_plugin::{
    AggregatorInstance, Event, EventKind, KeyValue, KvEvent, Limits, PluginEngine, Sample,
};

const ROUNDS: usize = 5;
const INPUTS_PER_ROUND: usize = 200_000;
const SERIES: usize = 100;

fn kv_event(i: usize) -> Event {
    let revision = i as i64 + 2;
    Event::Kv(KvEvent {
        kind: EventKind::Put,
        kv: KeyValue {
            key: format!("/metrics/series-{:03}", i % SERIES).into_bytes(),
            value: format!("{}.5", i % 1000).into_bytes(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        },
        revision,
        time_ms: 1_000_000 + i as i64,
    })
}

fn sample(i: usize) -> Event {
    Event::Sample(Sample {
        series: format!("/metrics/series-{:03}", i % SERIES),
        value: (i % 1000) as f64 + 0.5,
        time_ms: 1_000_000 + i as i64,
    })
}

/// The median time per input of delivering `inputs` in batches of `batch`, flushing between
/// rounds so that the plugin's state stays one window's.
fn per_input(
    instance: &mut AggregatorInstance,
    batch: usize,
    make: fn(usize) -> Event,
) -> Duration {
    let batches: Vec<Vec<Event>> = (0..INPUTS_PER_ROUND.div_ceil(batch))
        .map(|b| (b * batch..(b + 1) * batch).map(make).collect())
        .collect();
    let inputs = (batches.len() * batch) as u32;
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for events in &batches {
                instance.on_events(events, 1).expect("on-events");
            }
            let took = started.elapsed();
            instance.flush(0, 10_000_000).expect("flush");
            took / inputs
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn start(engine: &PluginEngine, name: &str, config: &str) -> AggregatorInstance {
    let compiled = engine.compile(&plugin(name)).expect("compile");
    let log: conclave_plugin::LogSink = Arc::new(|_, _| {});
    let (instance, _) = AggregatorInstance::start(
        engine,
        &compiled,
        Limits::default(),
        config,
        Arc::new(NoReads),
        log,
    )
    .expect("start");
    instance
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = PluginEngine::new(dir.path()).expect("engine");
    println!("| plugin | input | batch | time per input | inputs/s (one core) |");
    println!("|---|---|---:|---:|---:|");
    let row = |plugin: &str, input: &str, batch: usize, t: Duration| {
        let per_second = 1e9 / t.as_nanos().max(1) as f64;
        println!(
            "| {plugin} | {input} | {batch} | {:.0} ns | {:.0} |",
            t.as_nanos(),
            per_second
        );
    };
    let mut noop = start(&engine, "noop", "{}");
    for batch in [1, 10, 100, 1000] {
        row(
            "noop",
            "KV event",
            batch,
            per_input(&mut noop, batch, kv_event),
        );
    }
    let rollup_config = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
        "resolution": "10s", "ingest": true,
        "aggregations": ["sum", "count", "min", "max", "mean", "p99"]}"#;
    let mut rollup = start(&engine, "rollup", rollup_config);
    row(
        "rollup",
        "KV event",
        1000,
        per_input(&mut rollup, 1000, kv_event),
    );
    row(
        "rollup",
        "sample",
        4096,
        per_input(&mut rollup, 4096, sample),
    );
}
