//! The plugin registry in the replicated state: versions and rollback, components stored once
//! per digest and deleted when unused, flushes applied only after the mark they follow (with
//! their leases and outputs at one revision), and all of it through a restart and a snapshot.

mod common;

use common::StampedStore;

use conclave_proto::conclavepb::{
    FlushMark, PluginChanged, PluginDeploy, PluginFlush, PluginRecord, PluginRemove,
    PluginRollback, PluginSpec, command::Request,
};
use conclave_proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, request_op,
};
use conclave_proto::mvccpb::event::EventType;
use conclave_store::{RequestError, Response};
use sha2::{Digest, Sha256};

impl StampedStore {
    /// A registry command's answer, or its refusal.
    fn plugin(&mut self, req: Request, stamp: i64) -> Result<PluginChanged, RequestError> {
        let applied = self.apply(req, stamp);
        match applied.result {
            Ok(Response::Plugin(changed)) => Ok(changed),
            Ok(other) => panic!("a plugin command answered {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn record(&self, name: &str) -> PluginRecord {
        self.store().plugin(name).unwrap().unwrap()
    }

    fn versions(&self, name: &str) -> Vec<u64> {
        self.record(name)
            .versions
            .iter()
            .map(|v| v.version)
            .collect()
    }

    fn has_wasm(&self, wasm: &[u8]) -> bool {
        let found = self.store().plugin_wasm(&digest(wasm)).unwrap();
        if let Some(bytes) = &found {
            assert_eq!(bytes, wasm);
        }
        found.is_some()
    }

    fn value(&self, key: &str) -> Option<(Vec<u8>, i64, i64)> {
        self.store()
            .range(&RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .unwrap()
            .kvs
            .pop()
            .map(|kv| (kv.value, kv.lease, kv.mod_revision))
    }

    /// Everything about the store a refused command must leave as it was.
    fn fingerprint(&self) -> (i64, Vec<(String, PluginRecord)>, usize) {
        (
            self.store().current_revision(),
            self.store().plugins().unwrap(),
            self.store().leases().len(),
        )
    }
}

/// A component's bytes: opaque to the store, so any distinctive bytes do.
fn wasm(n: u8) -> Vec<u8> {
    let mut bytes = b"\0asm-component-".to_vec();
    bytes.extend(std::iter::repeat_n(n, 300));
    bytes
}

fn digest(wasm: &[u8]) -> Vec<u8> {
    Sha256::digest(wasm).to_vec()
}

fn deploy(name: &str, wasm: &[u8]) -> Request {
    Request::PluginDeploy(PluginDeploy {
        spec: Some(PluginSpec {
            name: name.into(),
            world: "aggregator".into(),
            digest: digest(wasm),
            config: "{}".into(),
            memory_limit_bytes: 1 << 20,
            timeout_ms: 100,
            ..Default::default()
        }),
        wasm: wasm.to_vec(),
    })
}

fn rollback(name: &str) -> Request {
    Request::PluginRollback(PluginRollback { name: name.into() })
}

fn remove(name: &str) -> Request {
    Request::PluginRemove(PluginRemove { name: name.into() })
}

fn flush(name: &str, previous_end_ms: i64, end_ms: i64) -> PluginFlush {
    PluginFlush {
        name: name.into(),
        version: 1,
        previous_end_ms,
        start_ms: end_ms - 1000,
        end_ms,
        replay_from: 0,
        leases: Vec::new(),
        ops: Vec::new(),
    }
}

fn op_put(k: &str, v: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            lease,
            ..Default::default()
        })),
    }
}

fn op_del(k: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: k.into(),
                ..Default::default()
            },
        )),
    }
}

fn put(k: &str, v: &str) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

#[test]
fn deploys_number_versions_keep_four_and_roll_back() {
    let mut t = StampedStore::new();
    let first = t.plugin(deploy("rule", &wasm(1)), 100).unwrap();
    assert_eq!(
        first,
        PluginChanged {
            name: "rule".into(),
            version: 1,
            mark: None
        }
    );
    let spec = t.record("rule").versions[0].clone();
    assert_eq!(
        (spec.version, spec.deployed_ms, spec.size_bytes),
        (1, 100, wasm(1).len() as u64)
    );
    assert_eq!((spec.world.as_str(), spec.timeout_ms), ("aggregator", 100));

    // A deploy makes no revision, but its time follows the revision-time rule: a leader's
    // clock behind the newest revision's time does not date it earlier.
    t.apply(put("k", "v"), 500);
    let revision = t.store().current_revision();
    t.plugin(deploy("rule", &wasm(2)), 50).unwrap();
    assert_eq!(t.record("rule").versions[1].deployed_ms, 500);
    assert_eq!(t.store().current_revision(), revision);

    for n in 3..=5 {
        assert_eq!(
            t.plugin(deploy("rule", &wasm(n)), 600).unwrap().version,
            u64::from(n)
        );
    }
    // Four are kept; the oldest's component, used by nothing else, is gone.
    assert_eq!(t.versions("rule"), [2, 3, 4, 5]);
    assert!(!t.has_wasm(&wasm(1)));
    assert!((2..=5).all(|n| t.has_wasm(&wasm(n))));

    let back = t.plugin(rollback("rule"), 700).unwrap();
    assert_eq!((back.name.as_str(), back.version), ("rule", 4));
    assert_eq!(t.versions("rule"), [2, 3, 4]);
    assert!(!t.has_wasm(&wasm(5)));
    t.plugin(rollback("rule"), 700).unwrap();
    assert_eq!(t.plugin(rollback("rule"), 700).unwrap().version, 2);
    assert_eq!(
        t.plugin(rollback("rule"), 700),
        Err(RequestError::NoPreviousVersion)
    );
    assert_eq!(t.versions("rule"), [2]);
    // The next deploy numbers itself after the newest version kept.
    assert_eq!(t.plugin(deploy("rule", &wasm(6)), 800).unwrap().version, 3);
    assert_eq!(t.store().current_revision(), revision);

    assert_eq!(
        t.plugin(rollback("nope"), 0),
        Err(RequestError::PluginNotFound)
    );
    assert_eq!(
        t.plugin(remove("nope"), 0),
        Err(RequestError::PluginNotFound)
    );
}

#[test]
fn a_bad_deploy_is_refused_and_writes_nothing() {
    let mut t = StampedStore::new();
    t.plugin(deploy("rule", &wasm(1)), 100).unwrap();
    let before = t.fingerprint();
    assert_eq!(
        t.plugin(deploy("", &wasm(2)), 100),
        Err(RequestError::PluginNameInvalid)
    );
    assert_eq!(
        t.plugin(deploy(&"x".repeat(2000), &wasm(2)), 100),
        Err(RequestError::PluginNameInvalid)
    );
    let Request::PluginDeploy(mut lying) = deploy("rule", &wasm(2)) else {
        unreachable!()
    };
    lying.wasm = wasm(3);
    assert_eq!(
        t.plugin(Request::PluginDeploy(lying), 100),
        Err(RequestError::PluginDigestMismatch)
    );
    assert_eq!(
        t.plugin(
            Request::PluginDeploy(PluginDeploy {
                spec: None,
                wasm: wasm(2)
            }),
            100
        ),
        Err(RequestError::PluginNameInvalid)
    );
    assert_eq!(t.fingerprint(), before);
    assert!(!t.has_wasm(&wasm(2)) && !t.has_wasm(&wasm(3)));
}

#[test]
fn components_are_stored_once_per_digest_and_deleted_when_unused() {
    let mut t = StampedStore::new();
    let shared = wasm(7);
    t.plugin(deploy("a", &shared), 1).unwrap();
    t.plugin(deploy("b", &shared), 1).unwrap();
    t.plugin(deploy("b", &shared), 1).unwrap();
    assert_eq!(t.versions("b"), [1, 2]);
    // Once on disk: the snapshot (every meta entry) holds the bytes once.
    let mut snapshot = Vec::new();
    t.store().write_snapshot(&mut snapshot).unwrap();
    let occurrences = snapshot
        .windows(shared.len())
        .filter(|w| *w == shared.as_slice())
        .count();
    assert_eq!(occurrences, 1);

    // Still used by b's versions after a's removal, and by b's first version after the
    // rollback of its second.
    assert_eq!(
        t.plugin(remove("a"), 1).unwrap(),
        PluginChanged {
            name: "a".into(),
            version: 0,
            mark: None
        }
    );
    assert!(t.store().plugin("a").unwrap().is_none());
    assert!(t.has_wasm(&shared));
    t.plugin(rollback("b"), 1).unwrap();
    assert!(t.has_wasm(&shared));
    t.plugin(remove("b"), 1).unwrap();
    assert!(!t.has_wasm(&shared));
    assert!(t.store().plugins().unwrap().is_empty());

    // Within one batch: a deploy then a remove leave nothing, a remove then a deploy leave
    // the component (the later write of a key in a batch wins), also after a restart.
    t.apply_all(vec![(deploy("c", &wasm(8)), 1), (remove("c"), 1)]);
    t.plugin(deploy("d", &wasm(9)), 1).unwrap();
    t.apply_all(vec![(remove("d"), 1), (deploy("d", &wasm(9)), 1)]);
    for _ in 0..2 {
        assert!(!t.has_wasm(&wasm(8)));
        assert!(t.store().plugin("c").unwrap().is_none());
        assert!(t.has_wasm(&wasm(9)));
        assert_eq!(t.versions("d"), [1]);
        t.reopen();
    }
}

#[test]
fn a_flush_follows_the_mark_in_place_or_writes_nothing() {
    let mut t = StampedStore::new();
    t.plugin(deploy("rule", &wasm(1)), 100).unwrap();
    t.apply(put("old", "x"), 100);
    assert_eq!(
        t.plugin(Request::PluginFlush(flush("nope", 0, 1000)), 100),
        Err(RequestError::PluginNotFound)
    );

    let mut first = flush("rule", 0, 1000);
    first.leases = vec![LeaseGrantRequest { ttl: 30, id: 7 }];
    first.ops = vec![
        op_put("out/1", "3", 7),
        op_del("old"),
        op_put("out/2", "4", 0),
    ];
    first.replay_from = 42;
    let before = t.fingerprint();

    // Refusals, each writing nothing: a mark other than the one in place, an end that does
    // not move forward.
    let mut stale = first.clone();
    stale.previous_end_ms = 500;
    assert_eq!(
        t.plugin(Request::PluginFlush(stale), 200),
        Err(RequestError::FlushMarkMoved)
    );
    let mut backwards = first.clone();
    backwards.end_ms = 0;
    assert_eq!(
        t.plugin(Request::PluginFlush(backwards), 200),
        Err(RequestError::FlushMarkMoved)
    );
    assert_eq!(t.fingerprint(), before);

    let applied = t.apply(Request::PluginFlush(first.clone()), 200);
    let Ok(Response::Plugin(changed)) = applied.result else {
        panic!("{:?}", applied.result)
    };
    let revision = before.0 + 1;
    let mark = FlushMark {
        version: 1,
        start_ms: 0,
        end_ms: 1000,
        replay_from: 42,
        revision,
        windows: 1,
        outputs: 3,
    };
    assert_eq!(
        changed,
        PluginChanged {
            name: "rule".into(),
            version: 1,
            mark: Some(mark)
        }
    );
    assert_eq!(t.record("rule").mark, Some(mark));
    // Every output at one revision, as watchers see them, with the lease granted first.
    assert_eq!(applied.revision, revision);
    let events: Vec<(String, i32, i64)> = applied
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                e.r#type,
                kv.mod_revision,
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("out/1".to_string(), EventType::Put as i32, revision),
            ("old".to_string(), EventType::Delete as i32, revision),
            ("out/2".to_string(), EventType::Put as i32, revision),
        ]
    );
    assert_eq!(t.value("out/1"), Some((b"3".to_vec(), 7, revision)));
    assert_eq!(t.value("old"), None);
    let lease = t.store().lease(7).unwrap();
    assert_eq!((lease.ttl, lease.keys), (30, vec![b"out/1".to_vec()]));
    let h = t.store().history(revision, 100).unwrap();
    assert_eq!(h.times, [200, 200, 200]);

    // The same flush again (a retry, or a second leader's copy) is refused, writing nothing.
    let after = t.fingerprint();
    assert_eq!(
        t.plugin(Request::PluginFlush(first), 300),
        Err(RequestError::FlushMarkMoved)
    );
    // A next window refused for its outputs: a lease that exists, a lease listed twice, a
    // put on a lease that does not, an op that is not a put or a delete.
    let mut next = flush("rule", 1000, 2000);
    next.version = 2;
    let mut refusals = Vec::new();
    let mut c = next.clone();
    c.leases = vec![LeaseGrantRequest { ttl: 30, id: 7 }];
    refusals.push((c, RequestError::LeaseExists));
    let mut c = next.clone();
    c.leases = vec![
        LeaseGrantRequest { ttl: 30, id: 8 },
        LeaseGrantRequest { ttl: 30, id: 8 },
    ];
    refusals.push((c, RequestError::LeaseExists));
    let mut c = next.clone();
    c.leases = vec![LeaseGrantRequest { ttl: 30, id: 8 }];
    c.ops = vec![op_put("out/3", "1", 8), op_put("out/4", "1", 9)];
    refusals.push((c, RequestError::LeaseNotFound));
    for bad in [
        request_op::Request::RequestRange(RangeRequest {
            key: "out/1".into(),
            ..Default::default()
        }),
        request_op::Request::RequestTxn(Default::default()),
    ] {
        let mut c = next.clone();
        c.leases = vec![LeaseGrantRequest { ttl: 30, id: 8 }];
        c.ops = vec![op_put("out/3", "1", 8), RequestOp { request: Some(bad) }];
        refusals.push((c, RequestError::FlushOpInvalid));
    }
    let mut c = next.clone();
    c.ops = vec![RequestOp { request: None }];
    refusals.push((c, RequestError::FlushOpInvalid));
    for (bad, error) in refusals {
        assert_eq!(t.plugin(Request::PluginFlush(bad), 300), Err(error));
        assert_eq!(t.fingerprint(), after);
        assert!(t.store().lease(8).is_none());
    }

    // A new version keeps the mark; a window without outputs moves the mark without a
    // revision.
    assert_eq!(
        t.plugin(deploy("rule", &wasm(2)), 300).unwrap().mark,
        Some(mark)
    );
    let changed = t.plugin(Request::PluginFlush(next), 300).unwrap();
    assert_eq!(changed.version, 2);
    assert_eq!(
        changed.mark,
        Some(FlushMark {
            version: 2,
            start_ms: 1000,
            end_ms: 2000,
            replay_from: 0,
            revision,
            windows: 2,
            outputs: 3,
        })
    );
    assert_eq!(t.store().current_revision(), revision);
}

#[test]
fn the_registry_survives_a_restart_and_a_snapshot() {
    let mut t = StampedStore::new();
    t.plugin(deploy("a", &wasm(1)), 100).unwrap();
    t.plugin(deploy("a", &wasm(2)), 200).unwrap();
    t.plugin(deploy("b", &wasm(3)), 300).unwrap();
    let mut f = flush("a", 0, 1000);
    f.leases = vec![LeaseGrantRequest { ttl: 60, id: 5 }];
    f.ops = vec![op_put("out", "1", 5)];
    t.plugin(Request::PluginFlush(f), 400).unwrap();
    let registry = t.store().plugins().unwrap();
    let names: Vec<&str> = registry.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);

    t.reopen();
    assert_eq!(t.store().plugins().unwrap(), registry);
    assert!((1..=3).all(|n| t.has_wasm(&wasm(n))));
    // The mark after the restart is still the one a flush must follow.
    assert_eq!(
        t.plugin(Request::PluginFlush(flush("a", 0, 2000)), 500),
        Err(RequestError::FlushMarkMoved)
    );

    let mut snapshot = Vec::new();
    t.store().write_snapshot(&mut snapshot).unwrap();
    let mut other = StampedStore::new();
    other.plugin(deploy("stale", &wasm(4)), 1).unwrap();
    other
        .store()
        .install_snapshot(&mut snapshot.as_slice())
        .unwrap();
    for _ in 0..2 {
        assert_eq!(other.store().plugins().unwrap(), registry);
        assert!((1..=3).all(|n| other.has_wasm(&wasm(n))));
        assert!(!other.has_wasm(&wasm(4)));
        assert_eq!(other.value("out").map(|v| v.1), Some(5));
        other.reopen();
    }
    // And it goes on from there: rollback and flush against the installed registry.
    other.index = 1000;
    assert_eq!(other.plugin(rollback("a"), 600).unwrap().version, 1);
    assert!(!other.has_wasm(&wasm(2)));
    let next = other
        .plugin(Request::PluginFlush(flush("a", 1000, 2000)), 600)
        .unwrap();
    assert_eq!(next.mark.map(|m| m.windows), Some(2));
}
