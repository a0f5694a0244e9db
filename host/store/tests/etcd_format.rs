//! etcd's snapshot format: what the store writes as an etcd snapshot restores into another
//! store with the same history, leases, users and roles; damaged or hostile files are
//! refused without a panic and leave no store behind. (Round trips with a real etcd are in
//! the workspace's tests/integration/etcd_snapshot.rs.)

mod common;

use common::{StampedStore, all_at, auth, root_and_alice};
use conclave_proto::conclavepb::{auth_command::Request as Cmd, command::Request};
use conclave_proto::etcdserverpb::{
    AuthEnableRequest, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
};
use conclave_store::{Store, inspect_backup};
use proptest::prelude::*;

fn put(key: &str, value: &str, lease: i64) -> Request {
    Request::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    })
}

/// History with overwrites, deletes and a compaction; two leases, one with keys; root and
/// alice with a role; auth on.
fn populated() -> StampedStore {
    let mut s = StampedStore::new();
    let mut reqs = vec![
        Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 9 }),
        Request::LeaseGrant(LeaseGrantRequest { ttl: 30, id: 10 }),
    ];
    for i in 0..60 {
        reqs.push(put(&format!("k{:02}", i % 25), &format!("v{i}"), 0));
    }
    reqs.push(Request::DeleteRange(DeleteRangeRequest {
        key: "k05".into(),
        range_end: "k08".into(),
        ..Default::default()
    }));
    reqs.push(Request::Compaction(CompactionRequest {
        revision: 40,
        physical: true,
    }));
    reqs.push(put("leased/a", "1", 9));
    reqs.push(put("leased/b", "2", 9));
    reqs.push(Request::DeleteRange(DeleteRangeRequest {
        key: "k20".into(),
        ..Default::default()
    }));
    reqs.extend(root_and_alice());
    reqs.push(auth(Cmd::Enable(AuthEnableRequest {})));
    let stamped = reqs.into_iter().map(|r| (r, 1_000)).collect();
    for applied in s.apply_all(stamped) {
        assert!(applied.result.is_ok(), "{:?}", applied.result);
    }
    s
}

fn etcd_file(store: &Store, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("etcd.snap");
    store.write_etcd_snapshot(&path).unwrap();
    path
}

#[test]
fn an_etcd_snapshot_restores_the_same_history_leases_and_users() {
    let a = populated();
    let files = tempfile::tempdir().unwrap();
    let path = etcd_file(a.store(), files.path());
    let written = inspect_backup(&path).unwrap();
    assert_eq!(written.revision, a.store().status().revision);
    assert_eq!(written.bytes, std::fs::metadata(&path).unwrap().len());
    // etcd's layout: whole pages, then the SHA-256.
    assert_eq!(written.bytes % 512, 32);

    let b_dir = tempfile::tempdir().unwrap();
    let b_path = b_dir.path().join("store");
    let restored = Store::restore(&b_path, &path).unwrap();
    assert_eq!(restored.revision, written.revision);
    assert_eq!(restored.records, written.records);
    let b = Store::open(&b_path).unwrap();
    let (sa, sb) = (a.store().status(), b.status());
    assert_eq!(sa.revision, sb.revision);
    assert_eq!(sa.compacted, sb.compacted);
    for rev in sa.compacted..=sa.revision {
        assert_eq!(all_at(a.store(), rev), all_at(&b, rev), "at revision {rev}");
    }
    assert_eq!(a.store().leases(), b.leases());
    assert_eq!(b.lease(9).unwrap().keys.len(), 2);
    let (aa, ab) = (a.store().auth(), b.auth());
    assert!(ab.enabled);
    assert_eq!(aa.users, ab.users);
    assert_eq!(aa.roles, ab.roles);
    assert_eq!(aa.revision, ab.revision);
    // conclave's own state rides in the `conclave` bucket: tokens stay valid.
    assert_eq!(aa.token_key, ab.token_key);
}

#[test]
fn a_damaged_etcd_snapshot_is_refused_and_leaves_no_store() {
    let a = populated();
    let files = tempfile::tempdir().unwrap();
    let path = etcd_file(a.store(), files.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let target = files.path().join("restored");
    let err = Store::restore(&target, &path).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(!target.exists());
}

#[test]
fn a_file_that_is_neither_format_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("junk");
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    assert!(inspect_backup(&path).is_err());
    assert!(Store::restore(&files.path().join("r"), &path).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bytes overwritten anywhere in a bbolt file without its trailer (as a data dir's `db`,
    /// which has no checksum to catch them): reading gives an answer or an error, never a
    /// panic, a hang or an allocation the file does not justify.
    #[test]
    fn damaged_bbolt_files_never_panic(edits in prop::collection::vec((any::<u32>(), any::<u8>()), 1..16)) {
        let a = populated();
        let files = tempfile::tempdir().unwrap();
        let path = etcd_file(a.store(), files.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 32);
        for (at, value) in edits {
            let at = at as usize % bytes.len();
            bytes[at] = value;
        }
        std::fs::write(&path, &bytes).unwrap();
        let _ = inspect_backup(&path);
        let _ = Store::restore(&files.path().join("r"), &path);
    }
}
