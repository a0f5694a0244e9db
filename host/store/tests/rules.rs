//! One test per etcd revision rule, against the real store on disk.

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseCheckpoint, LeaseCheckpointRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op,
};
use conclave_proto::mvccpb::{KeyValue, event::EventType};
use conclave_store::{Applied, Durability, Entry, LeaseChange, RequestError, Response, Store};

struct T {
    _dir: tempfile::TempDir,
    store: Store,
    index: u64,
}

impl T {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Self {
            _dir: dir,
            store,
            index: 0,
        }
    }
    fn apply(&mut self, req: Request) -> Applied {
        self.index += 1;
        self.store
            .apply(&[Entry::new(self.index, 1, req)], Durability::Sync)
            .unwrap()
            .pop()
            .unwrap()
    }
    fn put(&mut self, k: &str, v: &str) -> i64 {
        self.apply(put(k, v)).revision
    }
    fn del(&mut self, k: &str, end: &str) -> Applied {
        self.apply(Request::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: true,
        }))
    }
    fn txn(&mut self, t: TxnRequest) -> TxnResponse {
        match self.apply(Request::Txn(t)).result {
            Ok(Response::Txn(r)) => r,
            other => panic!("{other:?}"),
        }
    }
    fn get(&self, k: &str) -> Option<KeyValue> {
        self.range(RangeRequest {
            key: k.into(),
            ..Default::default()
        })
        .unwrap()
        .pop()
    }
    fn range(&self, req: RangeRequest) -> Result<Vec<KeyValue>, RequestError> {
        self.store
            .range(&req)
            .map(|r| r.kvs)
            .map_err(|e| e.as_request().cloned().unwrap())
    }
}

fn put(k: &str, v: &str) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

fn op_get(k: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: k.into(),
            ..Default::default()
        })),
    }
}

fn cmp(k: &str, target: CompareTarget, result: CompareResult, tu: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: k.into(),
        target_union: Some(tu),
        range_end: Vec::new(),
    }
}

#[test]
fn a_fresh_store_is_at_revision_one_and_the_first_put_makes_two() {
    let mut t = T::new();
    assert_eq!(t.store.current_revision(), 1);
    assert_eq!(t.put("a", "1"), 2);
}

#[test]
fn version_counts_puts_and_restarts_after_delete() {
    let mut t = T::new();
    t.put("k", "1");
    t.put("k", "2");
    let kv = t.get("k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    t.del("k", "");
    assert!(t.get("k").is_none());
    t.put("k", "3");
    let kv = t.get("k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn deleting_nothing_does_not_make_a_revision() {
    let mut t = T::new();
    t.put("a", "1");
    let out = t.del("zzz", "");
    assert_eq!(out.revision, 2);
    assert!(out.events.is_empty());
    match out.result {
        Ok(Response::DeleteRange(d)) => {
            assert_eq!(d.deleted, 0);
            assert_eq!(d.header.unwrap().revision, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_range_delete_is_one_revision_with_a_sub_revision_per_key() {
    let mut t = T::new();
    t.put("a", "1");
    t.put("b", "2");
    t.put("c", "3");
    let out = t.del("a", "c");
    assert_eq!(out.revision, 5);
    assert_eq!(out.events.len(), 2);
    for e in &out.events {
        assert_eq!(e.r#type, EventType::Delete as i32);
        let kv = e.kv.as_ref().unwrap();
        assert_eq!(
            kv.mod_revision, 5,
            "a delete event carries the delete's revision"
        );
        assert_eq!(kv.version, 0);
    }
    match out.result {
        Ok(Response::DeleteRange(d)) => {
            assert_eq!(d.deleted, 2);
            assert_eq!(d.prev_kvs.len(), 2);
            assert_eq!(d.prev_kvs[0].value, b"1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn history_is_readable_at_every_revision_until_compacted() {
    let mut t = T::new();
    t.put("k", "v2");
    t.put("k", "v3");
    t.del("k", "");
    t.put("k", "v5");
    let at = |t: &T, rev| {
        t.range(RangeRequest {
            key: "k".into(),
            revision: rev,
            ..Default::default()
        })
        .map(|kvs| kvs.first().map(|kv| kv.value.clone()))
    };
    assert_eq!(at(&t, 1), Ok(None));
    assert_eq!(at(&t, 2), Ok(Some(b"v2".to_vec())));
    assert_eq!(at(&t, 3), Ok(Some(b"v3".to_vec())));
    assert_eq!(at(&t, 4), Ok(None));
    assert_eq!(at(&t, 5), Ok(Some(b"v5".to_vec())));
    assert_eq!(at(&t, 6), Err(RequestError::FutureRevision));
    let out = t.apply(Request::Compaction(CompactionRequest {
        revision: 3,
        physical: true,
    }));
    assert!(out.result.is_ok());
    t.store.wait_compacted(3);
    assert_eq!(at(&t, 2), Err(RequestError::Compacted));
    assert_eq!(
        at(&t, 3),
        Ok(Some(b"v3".to_vec())),
        "the compaction point stays readable"
    );
    assert_eq!(at(&t, 5), Ok(Some(b"v5".to_vec())));
    let again = t.apply(Request::Compaction(CompactionRequest {
        revision: 3,
        physical: false,
    }));
    assert_eq!(again.result, Err(RequestError::Compacted));
    let future = t.apply(Request::Compaction(CompactionRequest {
        revision: 99,
        physical: false,
    }));
    assert_eq!(future.result, Err(RequestError::FutureRevision));
}

#[test]
fn compaction_survives_restart_and_frees_deleted_keys() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let reqs = [
            put("gone", "x"),
            Request::DeleteRange(DeleteRangeRequest {
                key: "gone".into(),
                ..Default::default()
            }),
            put("kept", "1"),
            put("kept", "2"),
            Request::Compaction(CompactionRequest {
                revision: 5,
                physical: false,
            }),
        ];
        let entries: Vec<_> = reqs
            .into_iter()
            .enumerate()
            .map(|(i, r)| Entry::new(i as u64 + 1, 1, r))
            .collect();
        store.apply(&entries, Durability::Sync).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let status = store.status();
    assert_eq!((status.revision, status.compacted, status.keys), (5, 5, 1));
    let old = store.range(&RangeRequest {
        key: "kept".into(),
        revision: 4,
        ..Default::default()
    });
    assert!(old.is_err());
}

#[test]
fn replayed_entries_are_skipped() {
    let mut t = T::new();
    t.put("a", "1");
    let again = t
        .store
        .apply(&[Entry::new(1, 1, put("a", "2"))], Durability::Sync)
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(t.get("a").unwrap().value, b"1");
}

#[test]
fn put_options() {
    let mut t = T::new();
    let missing = t.apply(Request::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    }));
    assert_eq!(missing.result, Err(RequestError::KeyNotFound));
    let leased = t.apply(Request::Put(PutRequest {
        key: "k".into(),
        lease: 42,
        ..Default::default()
    }));
    assert_eq!(leased.result, Err(RequestError::LeaseNotFound));
    assert_eq!(
        t.store.current_revision(),
        1,
        "refused requests leave no revision"
    );
    t.put("k", "v");
    let kept = t.apply(Request::Put(PutRequest {
        key: "k".into(),
        ignore_value: true,
        prev_kv: true,
        ..Default::default()
    }));
    match kept.result {
        Ok(Response::Put(p)) => assert_eq!(p.prev_kv.unwrap().value, b"v"),
        other => panic!("{other:?}"),
    }
    let kv = t.get("k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (&b"v"[..], 2));
}

#[test]
fn a_txn_is_one_revision_and_reads_its_own_writes() {
    let mut t = T::new();
    let r = t.txn(TxnRequest {
        compare: vec![],
        success: vec![op_get("a"), op_put("a", "1"), op_put("b", "2"), op_get("a")],
        failure: vec![],
    });
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 2);
    let ranges: Vec<_> = r
        .responses
        .iter()
        .filter_map(|op| match &op.response {
            Some(response_op::Response::ResponseRange(rr)) => Some(rr),
            _ => None,
        })
        .collect();
    assert!(ranges[0].kvs.is_empty());
    assert_eq!(ranges[0].header.as_ref().unwrap().revision, 1);
    assert_eq!(ranges[1].kvs[0].value, b"1");
    assert_eq!(ranges[1].header.as_ref().unwrap().revision, 2);
    let (a, b) = (t.get("a").unwrap(), t.get("b").unwrap());
    assert_eq!((a.mod_revision, b.mod_revision), (2, 2));
}

#[test]
fn a_read_only_txn_makes_no_revision() {
    let mut t = T::new();
    t.put("a", "1");
    let r = t.txn(TxnRequest {
        compare: vec![],
        success: vec![op_get("a")],
        failure: vec![],
    });
    assert_eq!(r.header.unwrap().revision, 2);
    assert_eq!(t.store.current_revision(), 2);
}

#[test]
fn compares_follow_etcd() {
    let mut t = T::new();
    t.put("k", "b");
    let check = |t: &mut T, c: Compare| {
        t.txn(TxnRequest {
            compare: vec![c],
            success: vec![],
            failure: vec![],
        })
        .succeeded
    };
    use CompareResult::*;
    use CompareTarget::*;
    assert!(check(
        &mut t,
        cmp("k", Version, Equal, TargetUnion::Version(1))
    ));
    assert!(check(
        &mut t,
        cmp("k", Create, Equal, TargetUnion::CreateRevision(2))
    ));
    assert!(check(
        &mut t,
        cmp("k", Mod, Greater, TargetUnion::ModRevision(1))
    ));
    assert!(check(
        &mut t,
        cmp("k", Value, Less, TargetUnion::Value(b"c".to_vec()))
    ));
    assert!(check(
        &mut t,
        cmp("k", Value, NotEqual, TargetUnion::Value(b"a".to_vec()))
    ));
    assert!(check(&mut t, cmp("k", Lease, Equal, TargetUnion::Lease(0))));
    // A missing key: version, create and mod are 0; a value compare never holds.
    assert!(check(
        &mut t,
        cmp("nope", Version, Equal, TargetUnion::Version(0))
    ));
    assert!(check(
        &mut t,
        cmp("nope", Mod, Less, TargetUnion::ModRevision(1))
    ));
    assert!(!check(
        &mut t,
        cmp("nope", Value, Equal, TargetUnion::Value(Vec::new()))
    ));
    assert!(!check(
        &mut t,
        cmp("nope", Value, NotEqual, TargetUnion::Value(b"x".to_vec()))
    ));
    // A union of the wrong kind compares with zero, as etcd does.
    assert!(check(
        &mut t,
        cmp("k", Version, Greater, TargetUnion::ModRevision(99))
    ));
    // With range_end, every key in the range must hold.
    t.put("k2", "b");
    let mut all = cmp("k", Value, Equal, TargetUnion::Value(b"b".to_vec()));
    all.range_end = b"k3".to_vec();
    assert!(check(&mut t, all.clone()));
    t.put("k2", "c");
    assert!(!check(&mut t, all));
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let mut t = T::new();
    // The inner compare asks whether "a" is absent: it is, before the outer put runs.
    let inner = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        success: vec![op_put("inner", "then")],
        failure: vec![op_put("inner", "else")],
    };
    let r = t.txn(TxnRequest {
        compare: vec![],
        success: vec![
            op_put("a", "1"),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(inner)),
            },
        ],
        failure: vec![],
    });
    assert!(r.succeeded);
    match &r.responses[1].response {
        Some(response_op::Response::ResponseTxn(inner)) => assert!(inner.succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.get("inner").unwrap().value, b"then");
    assert_eq!(
        t.store.current_revision(),
        2,
        "nested writes share the txn's revision"
    );
}

#[test]
fn a_failing_check_inside_a_txn_changes_nothing() {
    let mut t = T::new();
    let out = t.apply(Request::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            op_put("a", "1"),
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "b".into(),
                    lease: 7,
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    }));
    assert_eq!(out.result, Err(RequestError::LeaseNotFound));
    assert!(t.get("a").is_none());
    assert_eq!(t.store.current_revision(), 1);
}

#[test]
fn range_options() {
    let mut t = T::new();
    for (k, v) in [("b", "3"), ("a", "2"), ("c", "1"), ("a", "9")] {
        t.put(k, v);
    }
    // a: create 3 mod 5 version 2; b: create 2; c: create 4.
    let base = RangeRequest {
        key: "a".into(),
        range_end: vec![0],
        ..Default::default()
    };
    let keys = |kvs: Vec<KeyValue>| -> Vec<String> {
        kvs.into_iter()
            .map(|kv| String::from_utf8(kv.key).unwrap())
            .collect()
    };
    let resp = t
        .store
        .range(&RangeRequest {
            limit: 2,
            ..base.clone()
        })
        .unwrap();
    assert_eq!((resp.count, resp.more, resp.kvs.len()), (3, true, 2));
    let by = |target: SortTarget, order: SortOrder| {
        keys(
            t.range(RangeRequest {
                sort_target: target as i32,
                sort_order: order as i32,
                ..base.clone()
            })
            .unwrap(),
        )
    };
    assert_eq!(by(SortTarget::Key, SortOrder::Descend), ["c", "b", "a"]);
    assert_eq!(by(SortTarget::Create, SortOrder::Ascend), ["b", "a", "c"]);
    assert_eq!(by(SortTarget::Mod, SortOrder::Descend), ["a", "c", "b"]);
    assert_eq!(
        by(SortTarget::Value, SortOrder::None),
        ["c", "b", "a"],
        "a non-key target sorts ascending by default"
    );
    assert_eq!(by(SortTarget::Version, SortOrder::Descend), ["a", "b", "c"]);
    let filtered = t
        .store
        .range(&RangeRequest {
            min_create_revision: 3,
            max_mod_revision: 4,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(keys(filtered.kvs), ["c"]);
    assert_eq!(filtered.count, 3, "count ignores filters");
    let counted = t
        .store
        .range(&RangeRequest {
            count_only: true,
            ..base.clone()
        })
        .unwrap();
    assert_eq!((counted.count, counted.kvs.len()), (3, 0));
    let bare = t
        .range(RangeRequest {
            keys_only: true,
            ..base.clone()
        })
        .unwrap();
    assert!(bare.iter().all(|kv| kv.value.is_empty() && kv.version > 0));
    let all = t
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 3);
    let prefix = t
        .range(RangeRequest {
            key: "a".into(),
            range_end: "b".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys(prefix), ["a"]);
}

fn lease_put(k: &str, v: &str, lease: i64) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        lease,
        ..Default::default()
    })
}

fn grant(id: i64, ttl: i64) -> Request {
    Request::LeaseGrant(LeaseGrantRequest { id, ttl })
}

#[test]
fn leases_attach_keys_survive_restart_and_revoke_in_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let reqs = [
            grant(7, 30),
            lease_put("a", "1", 7),
            lease_put("b", "2", 7),
            lease_put("c", "3", 0),
            // Moved off the lease by a put without one.
            put("b", "2b"),
            Request::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint {
                    id: 7,
                    remaining_ttl: 12,
                }],
            }),
        ];
        let entries: Vec<_> = reqs
            .into_iter()
            .enumerate()
            .map(|(i, r)| Entry::new(i as u64 + 1, 1, r))
            .collect();
        let applied = store.apply(&entries, Durability::Sync).unwrap();
        assert!(applied.iter().all(|a| a.result.is_ok()), "{applied:?}");
        // The grant and the checkpoint are told to the lessor; the puts change no lease.
        let changes: Vec<LeaseChange> = applied.iter().flat_map(|a| a.leases.clone()).collect();
        assert_eq!(
            changes,
            vec![
                LeaseChange::Granted { id: 7, ttl: 30 },
                LeaseChange::Checkpointed {
                    id: 7,
                    remaining: 12
                },
            ]
        );
        // A grant makes no revision: four puts on top of the first revision.
        assert_eq!(store.current_revision(), 5);
    }
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease(7).expect("the lease survives a restart");
    assert_eq!((lease.ttl, lease.remaining), (30, 12));
    assert_eq!(lease.keys, vec![b"a".to_vec()]);

    let revoked = store
        .apply(
            &[Entry::new(
                7,
                1,
                Request::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
            )],
            Durability::Sync,
        )
        .unwrap()
        .pop()
        .unwrap();
    assert!(revoked.result.is_ok(), "{revoked:?}");
    assert_eq!(
        revoked.revision, 6,
        "the revoke deletes its keys in one revision"
    );
    assert_eq!(revoked.events.len(), 1);
    assert_eq!(revoked.events[0].r#type, EventType::Delete as i32);
    assert_eq!(revoked.leases, vec![LeaseChange::Revoked { id: 7 }]);
    assert!(store.lease(7).is_none());
    assert!(store.leases().is_empty());
}

#[test]
fn lease_rules() {
    let mut t = T::new();
    assert_eq!(
        t.apply(lease_put("k", "v", 99)).result.unwrap_err(),
        RequestError::LeaseNotFound
    );
    assert!(t.apply(grant(99, 10)).result.is_ok());
    // A refused grant changes no lease, and says so.
    let again = t.apply(grant(99, 10));
    assert_eq!(again.result.unwrap_err(), RequestError::LeaseExists);
    assert!(again.leases.is_empty());
    // A checkpoint of a lease that is gone is skipped.
    let gone = t.apply(Request::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id: 12345,
            remaining_ttl: 3,
        }],
    }));
    assert!(gone.result.is_ok());
    assert!(gone.leases.is_empty());
    assert_eq!(
        t.apply(Request::LeaseRevoke(LeaseRevokeRequest { id: 5 }))
            .result
            .unwrap_err(),
        RequestError::LeaseNotFound
    );
    // ignore_lease keeps the key's lease.
    t.apply(lease_put("k", "v", 99));
    t.apply(Request::Put(PutRequest {
        key: "k".into(),
        value: "w".into(),
        ignore_lease: true,
        ..Default::default()
    }));
    assert_eq!(t.get("k").unwrap().lease, 99);
    assert_eq!(t.store.lease(99).unwrap().keys, vec![b"k".to_vec()]);
    // A revoke of a lease without keys makes no revision.
    t.apply(grant(100, 10));
    let before = t.store.current_revision();
    t.apply(Request::LeaseRevoke(LeaseRevokeRequest { id: 100 }));
    assert_eq!(t.store.current_revision(), before);
}

#[test]
fn history_reads_events_in_order_and_stops_between_revisions() {
    let mut t = T::new();
    t.put("a", "1");
    t.txn(TxnRequest {
        success: vec![op_put("b", "2"), op_put("c", "3")],
        ..Default::default()
    });
    t.del("a", "");
    // Revisions 2 (a), 3 (b, c), 4 (delete a).
    let all = t.store.history(2, 100).unwrap();
    let seen: Vec<(i64, i32)> = all
        .events
        .iter()
        .map(|e| (e.kv.as_ref().unwrap().mod_revision, e.r#type))
        .collect();
    assert_eq!(
        seen,
        vec![
            (2, EventType::Put as i32),
            (3, EventType::Put as i32),
            (3, EventType::Put as i32),
            (4, EventType::Delete as i32)
        ]
    );
    assert_eq!((all.next, all.revision), (5, 4));
    // A limit of 2 reached inside revision 3 still returns all of revision 3.
    let part = t.store.history(2, 2).unwrap();
    assert_eq!(part.events.len(), 3);
    assert_eq!(part.next, 4);
    // Nothing past the end; below the compacted revision is an error.
    assert!(t.store.history(5, 10).unwrap().events.is_empty());
    t.apply(Request::Compaction(CompactionRequest {
        revision: 3,
        physical: true,
    }));
    assert_eq!(
        t.store.history(2, 10).unwrap_err().as_request(),
        Some(&RequestError::Compacted)
    );
    assert!(t.store.history(3, 10).is_ok());
}
