//! Property test: random sequences of puts, deletes, txns, compactions, reads and restarts run
//! against the real store on disk and against a plain in-memory model of etcd's rules; every
//! answer and every read at every revision must agree.

use std::collections::BTreeMap;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op,
};
use conclave_proto::mvccpb::KeyValue;
use conclave_store::{Durability, Entry, RequestError, Response, Store};
use proptest::prelude::*;

type Snapshot = BTreeMap<Vec<u8>, KeyValue>;

/// etcd's rules, written the plain way: a full copy of the key space per revision.
struct Model {
    states: Vec<Snapshot>, // states[r - 1] is the key space at revision r
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Self {
            states: vec![Snapshot::new()],
            compacted: 0,
        }
    }
    fn current(&self) -> i64 {
        self.states.len() as i64
    }
    fn latest(&self) -> &Snapshot {
        self.states.last().unwrap()
    }
    fn put_into(next: &mut Snapshot, rev: i64, key: &[u8], value: &[u8]) {
        let kv = match next.get(key) {
            Some(old) => KeyValue {
                key: key.to_vec(),
                create_revision: old.create_revision,
                mod_revision: rev,
                version: old.version + 1,
                value: value.to_vec(),
                lease: 0,
            },
            None => KeyValue {
                key: key.to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                value: value.to_vec(),
                lease: 0,
            },
        };
        next.insert(key.to_vec(), kv);
    }
    fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
        match end {
            [] => k == key,
            [0] => k >= key,
            e => k >= key && k < e,
        }
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> i64 {
        let mut next = self.latest().clone();
        let rev = self.current() + 1;
        Self::put_into(&mut next, rev, key, value);
        self.states.push(next);
        rev
    }
    fn delete(&mut self, key: &[u8], end: &[u8]) -> (i64, i64) {
        let mut next = self.latest().clone();
        let before = next.len();
        next.retain(|k, _| !Self::in_range(k, key, end));
        let deleted = (before - next.len()) as i64;
        if deleted > 0 {
            self.states.push(next);
        }
        (deleted, self.current())
    }
    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Result<Vec<KeyValue>, RequestError> {
        if rev > self.current() {
            return Err(RequestError::FutureRevision);
        }
        let at = if rev <= 0 { self.current() } else { rev };
        if at < self.compacted {
            return Err(RequestError::Compacted);
        }
        Ok(self.states[(at - 1) as usize]
            .values()
            .filter(|kv| Self::in_range(&kv.key, key, end))
            .cloned()
            .collect())
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8, u8),
    /// if version(key) == n then put(key2) else delete(key3)
    Txn(u8, i64, u8, u8),
    Compact(i64),
    Range(u8, u8, i64),
    Restart,
}

const KEYS: [&[u8]; 5] = [b"a", b"ab", b"b", b"c", b"d"];

fn key(i: u8) -> &'static [u8] {
    KEYS[i as usize % KEYS.len()]
}

/// Range ends: single key, [key, next key), every key from key.
fn end(i: u8, k: u8) -> Vec<u8> {
    match i % 3 {
        0 => Vec::new(),
        1 => key(k.wrapping_add(2)).to_vec(),
        _ => vec![0],
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..5, any::<u8>()).prop_map(|(k, e)| Op::Delete(k, e)),
        2 => (0u8..5, 0i64..3, 0u8..5, 0u8..5).prop_map(|(a, n, b, c)| Op::Txn(a, n, b, c)),
        1 => (-2i64..30).prop_map(Op::Compact),
        3 => (0u8..5, any::<u8>(), -1i64..30).prop_map(|(k, e, r)| Op::Range(k, e, r)),
        1 => Just(Op::Restart),
    ]
}

struct Harness {
    dir: tempfile::TempDir,
    store: Option<Store>,
    index: u64,
}

impl Harness {
    fn apply(&mut self, req: Request) -> Result<Response, RequestError> {
        self.index += 1;
        let store = self.store.as_ref().unwrap();
        let mut out = store
            .apply(&[Entry::new(self.index, 1, req)], Durability::Buffered)
            .expect("disk");
        out.pop().unwrap().result
    }
    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Result<Vec<KeyValue>, RequestError> {
        let req = RangeRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            revision: rev,
            ..Default::default()
        };
        match self.store.as_ref().unwrap().range(&req) {
            Ok(r) => {
                assert_eq!(r.count as usize, r.kvs.len());
                Ok(r.kvs)
            }
            Err(e) => Err(e.as_request().cloned().expect("only request errors")),
        }
    }
}

fn check(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = Harness {
        dir,
        store: Some(store),
        index: 0,
    };
    let mut m = Model::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let r = h.apply(Request::Put(PutRequest {
                    key: key(k).to_vec(),
                    value: vec![v],
                    ..Default::default()
                }));
                let rev = m.put(key(k), &[v]);
                match r {
                    Ok(Response::Put(p)) => assert_eq!(p.header.unwrap().revision, rev),
                    other => panic!("put: {other:?}"),
                }
            }
            Op::Delete(k, e) => {
                let end = end(e, k);
                let r = h.apply(Request::DeleteRange(DeleteRangeRequest {
                    key: key(k).to_vec(),
                    range_end: end.clone(),
                    ..Default::default()
                }));
                let (deleted, rev) = m.delete(key(k), &end);
                match r {
                    Ok(Response::DeleteRange(d)) => {
                        assert_eq!(d.deleted, deleted);
                        assert_eq!(d.header.unwrap().revision, rev);
                    }
                    other => panic!("delete: {other:?}"),
                }
            }
            Op::Txn(a, n, b, c) => {
                let version = m.latest().get(key(a)).map_or(0, |kv| kv.version);
                let ok = version == n;
                let expect_rev = if ok {
                    m.put(key(b), b"txn")
                } else {
                    m.delete(key(c), b"").1
                };
                let r = h.apply(Request::Txn(TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Version as i32,
                        key: key(a).to_vec(),
                        target_union: Some(TargetUnion::Version(n)),
                        range_end: Vec::new(),
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key(b).to_vec(),
                            value: b"txn".to_vec(),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key: key(c).to_vec(),
                                ..Default::default()
                            },
                        )),
                    }],
                }));
                match r {
                    Ok(Response::Txn(t)) => {
                        assert_eq!(t.succeeded, ok);
                        assert_eq!(t.header.unwrap().revision, expect_rev);
                    }
                    other => panic!("txn: {other:?}"),
                }
            }
            Op::Compact(rev) => {
                let r = h.apply(Request::Compaction(CompactionRequest {
                    revision: rev,
                    physical: false,
                }));
                let expected = if rev <= m.compacted {
                    Err(RequestError::Compacted)
                } else if rev > m.current() {
                    Err(RequestError::FutureRevision)
                } else {
                    m.compacted = rev;
                    Ok(())
                };
                assert_eq!(r.map(|_| ()), expected);
            }
            Op::Range(k, e, rev) => {
                let end = end(e, k);
                assert_eq!(h.range(key(k), &end, rev), m.range(key(k), &end, rev));
            }
            Op::Restart => {
                drop(h.store.take());
                h.store = Some(Store::open(h.dir.path()).unwrap());
            }
        }
        // Every readable revision agrees after every step.
        for rev in m.compacted.max(1)..=m.current() {
            assert_eq!(
                h.range(b"\0", b"\0", rev),
                m.range(b"\0", b"\0", rev),
                "full read at revision {rev}"
            );
        }
        assert_eq!(h.store.as_ref().unwrap().current_revision(), m.current());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..80)) {
        check(ops);
    }
}
