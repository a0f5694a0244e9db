//! Ranges over many keys: the store reads them with one scan of their revisions when those
//! lie close together, and with a lookup each otherwise. Both must answer exactly what
//! reading every key on its own answers, at the current revision and at older ones, and
//! after a restart.

mod common;

use common::StampedStore;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use conclave_proto::mvccpb::KeyValue;

fn put(key: String, value: String) -> Request {
    Request::Put(PutRequest {
        key: key.into_bytes(),
        value: value.into_bytes(),
        ..Default::default()
    })
}

fn prefix_range(prefix: &str, revision: i64) -> RangeRequest {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: end,
        revision,
        ..Default::default()
    }
}

/// The prefix read key by key (each a single-key range: never a scan).
fn one_by_one(store: &StampedStore, prefix: &str, keys: usize, revision: i64) -> Vec<KeyValue> {
    (0..keys)
        .flat_map(|i| {
            let req = RangeRequest {
                key: format!("{prefix}{i:04}").into_bytes(),
                revision,
                ..Default::default()
            };
            store.store().range(&req).unwrap().kvs
        })
        .collect()
}

fn check(store: &StampedStore, prefix: &str, keys: usize, revision: i64) {
    let all = store
        .store()
        .range(&prefix_range(prefix, revision))
        .unwrap();
    let expected = one_by_one(store, prefix, keys, revision);
    assert!(expected.len() >= 32, "too few keys to take the scan path");
    assert_eq!(all.kvs, expected, "{prefix} at revision {revision}");
    assert_eq!(all.count, expected.len() as i64);
}

#[test]
fn dense_and_sparse_ranges_match_single_key_reads() {
    let mut store = StampedStore::new();
    // Dense: 300 keys written together, then every third overwritten, every fifth deleted.
    store.apply_all(
        (0..300)
            .map(|i| (put(format!("/dense/{i:04}"), format!("v1-{i}")), 1))
            .collect(),
    );
    let before_changes = store.store().current_revision();
    for i in (0..300).step_by(3) {
        store.apply(put(format!("/dense/{i:04}"), format!("v2-{i}")), 2);
    }
    for i in (0..300).step_by(5) {
        store.apply(
            Request::DeleteRange(DeleteRangeRequest {
                key: format!("/dense/{i:04}").into_bytes(),
                ..Default::default()
            }),
            3,
        );
    }
    // Sparse: 40 keys, each between 20 writes elsewhere, so a scan would mostly read others.
    for i in 0..40 {
        store.apply(put(format!("/sparse/{i:04}"), format!("s-{i}")), 4);
        store.apply_all(
            (0..20)
                .map(|j| (put(format!("/noise/{j:04}"), format!("n-{i}")), 4))
                .collect(),
        );
    }

    check(&store, "/dense/", 300, 0);
    check(&store, "/dense/", 300, before_changes);
    check(&store, "/sparse/", 40, 0);
    // The same after a restart.
    store.reopen();
    check(&store, "/dense/", 300, 0);
    check(&store, "/dense/", 300, before_changes);
    check(&store, "/sparse/", 40, 0);
}
