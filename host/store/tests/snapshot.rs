//! Snapshots: what one store writes, another installs, with identical history and raft state;
//! a damaged stream is refused and never leaves a half-installed store behind.

mod common;

use common::all_at;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use conclave_store::{Durability, Entry, Store};

fn put(k: &str, v: &str) -> Request {
    Request::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

/// A store with history: puts, a delete, a compaction, more puts; raft state "state-N".
fn populated(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).unwrap();
    let mut reqs = vec![];
    for i in 0..50 {
        reqs.push(put(&format!("k{:02}", i % 20), &format!("v{i}")));
    }
    reqs.push(Request::DeleteRange(DeleteRangeRequest {
        key: "k05".into(),
        range_end: "k08".into(),
        ..Default::default()
    }));
    reqs.push(Request::Compaction(CompactionRequest {
        revision: 30,
        physical: false,
    }));
    for i in 0..10 {
        reqs.push(put(&format!("late{i}"), "x"));
    }
    let entries: Vec<_> = reqs
        .into_iter()
        .enumerate()
        .map(|(i, r)| Entry::new(i as u64 + 1, 3, r))
        .collect();
    store
        .apply_with_state(&entries, Some(b"state-62"), Durability::Sync)
        .unwrap();
    store
}

#[test]
fn a_snapshot_installs_the_same_history_elsewhere() {
    let a_dir = tempfile::tempdir().unwrap();
    let a = populated(a_dir.path());
    let mut bytes = Vec::new();
    let written = a.write_snapshot(&mut bytes).unwrap();
    assert_eq!(written.raft_state.as_deref(), Some(&b"state-62"[..]));
    assert_eq!(written.applied, (62, 3));
    assert_eq!(written.bytes, bytes.len() as u64);

    let b_dir = tempfile::tempdir().unwrap();
    let b = Store::open(b_dir.path()).unwrap();
    // Existing data on the receiving side is replaced, not merged.
    b.apply(&[Entry::new(1, 1, put("stale", "x"))], Durability::Sync)
        .unwrap();
    let installed = b.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(installed.revision, written.revision);
    assert_eq!(installed.records, written.records);
    assert_eq!(a.status().revision, b.status().revision);
    assert_eq!(a.status().compacted, b.status().compacted);
    assert_eq!(b.status().applied_index, 62);
    assert_eq!(b.raft_state().unwrap().as_deref(), Some(&b"state-62"[..]));
    for rev in 30..=a.status().revision {
        assert_eq!(all_at(&a, rev), all_at(&b, rev), "revision {rev}");
    }
    assert!(
        b.range(&RangeRequest {
            key: "k00".into(),
            revision: 29,
            ..Default::default()
        })
        .is_err()
    );

    // And it all survives a restart of the receiver.
    let expected = all_at(&b, 0);
    drop(b);
    let b = Store::open(b_dir.path()).unwrap();
    assert_eq!(all_at(&b, 0), expected);
    assert_eq!(b.raft_state().unwrap().as_deref(), Some(&b"state-62"[..]));
}

#[test]
fn a_damaged_snapshot_is_refused_and_leaves_an_empty_store() {
    let a_dir = tempfile::tempdir().unwrap();
    let a = populated(a_dir.path());
    let mut bytes = Vec::new();
    a.write_snapshot(&mut bytes).unwrap();

    // A flipped byte inside a record: the checksum catches it.
    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x55;
    // A stream cut short.
    let cut = &bytes[..bytes.len() - 40];
    for bad in [flipped.as_slice(), cut, b"garbage".as_slice()] {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = Store::open(dir.path()).unwrap();
            b.apply(&[Entry::new(1, 1, put("old", "x"))], Durability::Sync)
                .unwrap();
            assert!(b.install_snapshot(&mut &bad[..]).is_err());
            // After a failed install the store answers nothing rather than something wrong.
            assert!(
                b.range(&RangeRequest {
                    key: "old".into(),
                    ..Default::default()
                })
                .is_err()
            );
        }
        let b = Store::open(dir.path()).unwrap();
        let status = b.status();
        assert_eq!(
            (status.revision, status.keys, status.applied_index),
            (1, 0, 0)
        );
        assert_eq!(b.raft_state().unwrap(), None);
    }
}

/// A hostile stream's lengths are its word, not ours: a frame claiming 60 MiB or a trailer
/// claiming 4 GiB, followed by a few bytes, is refused without allocating what it claims.
#[test]
fn lengths_a_stream_claims_are_refused_before_allocating() {
    let mut head = b"CNCLSNAP".to_vec();
    head.extend_from_slice(&1u32.to_be_bytes());

    let mut big_frame = head.clone();
    big_frame.push(2); // a record frame
    big_frame.extend_from_slice(&(60u32 << 20).to_be_bytes());
    big_frame.extend_from_slice(b"only a few bytes");
    let err = conclave_store::inspect_snapshot(&mut big_frame.as_slice()).unwrap_err();
    assert!(
        matches!(err, conclave_store::StoreError::Corrupt(_)),
        "{err:?}"
    );

    let mut big_trailer = head;
    big_trailer.push(0); // the end frame
    big_trailer.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = conclave_store::inspect_snapshot(&mut big_trailer.as_slice()).unwrap_err();
    assert!(
        matches!(err, conclave_store::StoreError::Corrupt(ref m) if m.contains("trailer")),
        "{err:?}"
    );
}
