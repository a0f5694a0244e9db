//! Commit times: every revision keeps the larger of its leader's stamp and the previous
//! revision's time; history returns them beside the events, and they survive a restart and a
//! snapshot install (even when compaction has removed the newest records).

mod common;

use common::StampedStore;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};

fn put(k: &str) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

fn del(k: &str) -> Request {
    Request::DeleteRange(DeleteRangeRequest {
        key: k.into(),
        ..Default::default()
    })
}

impl StampedStore {
    /// (mod revision, time) of every event from revision `from` on.
    fn times(&self, from: i64) -> Vec<(i64, i64)> {
        let h = self.store().history(from, 1000).unwrap();
        assert_eq!(h.events.len(), h.times.len());
        h.events
            .iter()
            .zip(&h.times)
            .map(|(e, &t)| (e.kv.as_ref().unwrap().mod_revision, t))
            .collect()
    }
}

/// Revisions 2..=6 with stamps 1000, 2000 (a txn of two puts), 1500, 0 and 3000.
fn stamped_history(t: &mut StampedStore) {
    t.apply(put("a"), 1000);
    let op = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.into(),
            ..Default::default()
        })),
    };
    t.apply(
        Request::Txn(TxnRequest {
            success: vec![op("b"), op("c")],
            ..Default::default()
        }),
        2000,
    );
    // A leader whose clock is behind, and an entry without a stamp: neither goes back.
    t.apply(put("d"), 1500);
    t.apply(del("a"), 0);
    t.apply(put("e"), 3000);
}

const EXPECTED: [(i64, i64); 6] = [
    (2, 1000),
    (3, 2000),
    (3, 2000),
    (4, 2000),
    (5, 2000),
    (6, 3000),
];

#[test]
fn times_never_go_back_and_history_returns_them() {
    let mut t = StampedStore::new();
    stamped_history(&mut t);
    assert_eq!(t.times(2), EXPECTED);
    // A stretch of history has the times of its own events.
    assert_eq!(t.times(5), EXPECTED[4..]);

    // An entry that makes no revision (deleting nothing) moves no time: the next revision
    // is compared with the previous revision's time, not with that entry's stamp.
    let nothing = t.apply(del("zzz"), 9000);
    assert_eq!(nothing.revision, 6);
    t.apply(put("f"), 4000);
    assert_eq!(t.times(7), [(7, 4000)]);
}

#[test]
fn times_survive_a_restart_even_when_the_newest_records_are_compacted() {
    let mut t = StampedStore::new();
    stamped_history(&mut t);
    t.reopen();
    assert_eq!(t.times(2), EXPECTED);
    t.apply(put("f"), 10);
    assert_eq!(t.times(7), [(7, 3000)]);

    // The newest revision is a delete; compacting at it removes its record from disk, so
    // only the store's meta still knows that revision's time.
    t.apply(put("g"), 5000);
    t.apply(del("g"), 6000);
    let at = t.store().current_revision();
    t.apply(
        Request::Compaction(CompactionRequest {
            revision: at,
            physical: true,
        }),
        0,
    );
    t.store().wait_compacted(at);
    t.reopen();
    t.apply(put("h"), 10);
    let rev = t.store().current_revision();
    assert_eq!(t.times(rev), [(rev, 6000)]);
}

#[test]
fn a_snapshot_carries_the_times() {
    let mut a = StampedStore::new();
    stamped_history(&mut a);
    let mut bytes = Vec::new();
    a.store().write_snapshot(&mut bytes).unwrap();

    let mut b = StampedStore::new();
    b.apply(put("stale"), 99_999);
    b.store().install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(b.times(2), EXPECTED);
    // The receiver goes on from the snapshot's newest time, not from its own old one.
    b.index = 100;
    b.apply(put("f"), 10);
    assert_eq!(b.times(7), [(7, 3000)]);
    b.reopen();
    assert_eq!(b.times(2)[..6], EXPECTED);
}
