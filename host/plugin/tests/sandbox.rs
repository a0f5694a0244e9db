//! The plugin host against real components built from `plugins/`: loading, the world and ABI
//! checks, a rollup window end to end, and each sandbox limit (time, memory, traps) reported
//! as what it is.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{NoReads, plugin};
use conclave_plugin::{
    AggregatorInstance, Event, EventKind, HookInstance, KeyValue, KvEvent, Limits, LogLevel,
    Member, Output, PluginEngine, PluginError, World,
};

type Lines = Arc<Mutex<Vec<(LogLevel, String)>>>;

fn sink() -> (Lines, conclave_plugin::LogSink) {
    let lines: Lines = Arc::default();
    let kept = lines.clone();
    (
        lines,
        Arc::new(move |level, message| kept.lock().unwrap().push((level, message))),
    )
}

fn engine(dir: &Path) -> PluginEngine {
    PluginEngine::new(dir).expect("engine")
}

fn put(key: &str, value: &str, revision: i64, time_ms: i64) -> Event {
    Event::Kv(KvEvent {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        },
        revision,
        time_ms,
    })
}

const ROLLUP: &str = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/",
    "resolution": "10s", "retention": "2d", "aggregations": ["sum","count","min","max","mean","p99"]}"#;

fn start_aggregator(
    engine: &PluginEngine,
    name: &str,
    config: &str,
    limits: Limits,
) -> Result<AggregatorInstance, PluginError> {
    let compiled = engine.compile(&plugin(name))?;
    let (_, log) = sink();
    AggregatorInstance::start(engine, &compiled, limits, config, Arc::new(NoReads), log)
        .map(|(i, _)| i)
}

#[test]
fn rollup_aggregates_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let compiled = engine.compile(&plugin("rollup")).unwrap();
    assert_eq!(compiled.world, World::Aggregator);
    let (lines, log) = sink();
    let (mut rollup, spec) = AggregatorInstance::start(
        &engine,
        &compiled,
        Limits::default(),
        ROLLUP,
        Arc::new(NoReads),
        log,
    )
    .unwrap();
    assert_eq!(spec.resolution_ms, 10_000);
    assert_eq!(spec.source_prefixes, vec![b"/metrics/".to_vec()]);
    let events = [
        put("/metrics/cpu", "1", 2, 20_001),
        put("/metrics/cpu", "2", 3, 20_002),
        put("/metrics/cpu", "3", 4, 29_999),
        put("/metrics/mem", "10", 5, 25_000),
        put("/metrics/mem", "ten", 5, 25_001),
        // The next window: not in this flush.
        put("/metrics/cpu", "100", 6, 30_000),
    ];
    rollup.on_events(&events, 6).unwrap();
    let outputs = rollup.flush(20_000, 30_000).unwrap();
    let puts: Vec<(String, String, Option<u32>)> = outputs
        .into_iter()
        .map(|o| match o {
            Output::Put(p) => (
                String::from_utf8(p.key).unwrap(),
                String::from_utf8(p.value).unwrap(),
                p.ttl_seconds,
            ),
            Output::Delete(k) => panic!("unexpected delete {k:?}"),
        })
        .collect();
    assert_eq!(
        puts,
        vec![
            (
                "/rollup/cpu/20000".to_string(),
                r#"{"sum":6,"count":3,"min":1,"max":3,"mean":2,"p99":3}"#.to_string(),
                Some(2 * 86_400)
            ),
            (
                "/rollup/mem/20000".to_string(),
                r#"{"sum":10,"count":1,"min":10,"max":10,"mean":10,"p99":10}"#.to_string(),
                Some(2 * 86_400)
            ),
        ]
    );
    let logged = lines.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|(level, line)| *level == LogLevel::Warn && line.contains("\"mem\"")),
        "the bad value is logged: {logged:?}"
    );
    // A bad value is logged again in a later window (once per window, not once ever).
    lines.lock().unwrap().clear();
    rollup
        .on_events(&[put("/metrics/mem", "not a number", 7, 31_000)], 7)
        .unwrap();
    let logged = lines.lock().unwrap().clone();
    assert!(
        logged.iter().any(|(_, line)| line.contains("\"mem\"")),
        "a later window logs its bad value too: {logged:?}"
    );
    let next = rollup.flush(30_000, 40_000).unwrap();
    assert_eq!(next.len(), 1, "the 100 at 30000 is the next window's");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin("rollup");
    engine(dir.path()).compile(&wasm).unwrap();
    let cached: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled component in the cache");
    // A new engine (a restarted member) loads it instead of compiling.
    let again = engine(dir.path()).compile(&wasm).unwrap();
    assert_eq!(again.world, World::Aggregator);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn what_is_not_a_plugin_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let err = |bytes: &[u8]| match engine.compile(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("compiled"),
    };
    assert!(err(b"hello").contains("not a WebAssembly binary"));
    // The smallest core module: a component is required.
    assert!(err(b"\0asm\x01\0\0\0").contains("not a component"));
    // A component that exports none of our interfaces: an empty component.
    let empty_component = b"\0asm\x0d\0\x01\0";
    assert!(err(empty_component).contains("exports no conclave:plugin@0.1.0 interface"));
}

#[test]
fn a_config_init_rejects_refuses_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let bad = r#"{"source_prefix": "/m/", "target_prefix": "/r/", "resolution": "10s",
        "aggregations": ["sum", "mode"]}"#;
    match start_aggregator(&engine, "rollup", bad, Limits::default()) {
        Err(PluginError::Config(reason)) => assert!(reason.contains("mode"), "{reason}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a bad config was accepted"),
    }
}

#[test]
fn a_call_that_never_returns_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let limits = Limits {
        timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let mut looper = start_aggregator(&engine, "loop_forever", "{}", limits).unwrap();
    let started = std::time::Instant::now();
    let outcome = looper.on_events(&[put("/loop/x", "1", 2, 1)], 2);
    assert_eq!(outcome, Err(PluginError::Timeout(50)));
    // Not a timed assertion of speed: a bound that only a missing interrupt would break.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn fuel_bounds_a_call_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let limits = Limits {
        fuel: Some(1_000_000),
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let mut looper = start_aggregator(&engine, "loop_forever", "{}", limits).unwrap();
    let outcome = looper.on_events(&[put("/loop/x", "1", 2, 1)], 2);
    assert_eq!(outcome, Err(PluginError::OutOfFuel(1_000_000)));
}

#[test]
fn allocating_without_bound_hits_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let limits = Limits {
        memory_bytes: 16 << 20,
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let mut bomb = start_aggregator(&engine, "alloc_bomb", "{}", limits).unwrap();
    let outcome = bomb.on_events(&[put("/bomb/x", "1", 2, 1)], 2);
    assert_eq!(outcome, Err(PluginError::OutOfMemory(16 << 20)));
}

#[test]
fn a_trap_is_reported_with_the_plugins_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let mut trap = start_aggregator(&engine, "trap", "{}", Limits::default()).unwrap();
    match trap.on_events(&[put("/trap/x", "1", 2, 1)], 2) {
        Err(PluginError::Trap(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn an_election_hook_is_not_an_aggregator() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let compiled = engine.compile(&plugin("leader_audit")).unwrap();
    assert_eq!(compiled.world, World::ElectionHook);
    let (_, log) = sink();
    let refused = AggregatorInstance::start(
        &engine,
        &compiled,
        Limits::default(),
        "{}",
        Arc::new(NoReads),
        log.clone(),
    );
    assert!(matches!(refused, Err(PluginError::Unsupported(_))));
    let mut hook = HookInstance::start(
        &engine,
        &compiled,
        Limits::default(),
        r#"{"key": "/audit/leaders", "prefer": "n2"}"#,
        Arc::new(NoReads),
        log,
    )
    .unwrap();
    let member = |id: u64, name: &str, caught_up: bool| Member {
        id,
        name: name.into(),
        is_learner: false,
        matched_index: Some(10),
        caught_up,
    };
    let members = [member(1, "n1", true), member(2, "n2", true)];
    assert_eq!(hook.preferred_leader(&members).unwrap(), Some(2));
    let lagging = [member(1, "n1", true), member(2, "n2", false)];
    assert_eq!(hook.preferred_leader(&lagging).unwrap(), None);
}
