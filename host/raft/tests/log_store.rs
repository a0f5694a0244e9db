//! The Raft log on fjall, on a real disk: openraft's own storage suite, then our own checks of
//! reads, truncation, purge, the vote, reopening, group commit under load, corrupt records,
//! and a kill -9 of a process in the middle of appending.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conclave_proto::conclavepb::Command;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::PutRequest;
use conclave_raft::LogStore;
use conclave_raft::codec;
use conclave_raft::types::{Entry, LogId, Member, Membership, StoredMembership, TypeConfig, Vote};
use conclave_store::{Applied, Response};
use futures::{Stream, StreamExt};
use openraft::entry::EntryPayload;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{
    EntryResponder, IOFlushed, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use openraft::{OptionalSend, RaftLogReader, StorageError};
use parking_lot::Mutex;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// openraft's storage suite. It drives a log store and a state machine together; the state
// machine below is a fixture for the suite alone (it keeps only what the suite checks: the
// applied log id, the membership and the last snapshot's meta).

#[derive(Clone, Default)]
struct SuiteStateMachine {
    state: Arc<Mutex<SuiteState>>,
}

#[derive(Default)]
struct SuiteState {
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<SnapshotMetaOf<TypeConfig>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SuiteStateMachine {
    type SnapshotData = ();

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, ()>> {
        let mut state = self.state.lock();
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: state.applied,
            last_membership: state.membership.clone(),
        };
        state.snapshot = Some(meta.clone());
        Ok(SnapshotOf::<TypeConfig, ()> { meta, snapshot: () })
    }
}

impl RaftStateMachine<TypeConfig> for SuiteStateMachine {
    type SnapshotData = ();
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let state = self.state.lock();
        Ok((state.applied, state.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> io::Result<()>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            {
                let mut state = self.state.lock();
                state.applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(responder) = responder {
                responder.send(Applied {
                    index: entry.log_id.index,
                    revision: 0,
                    result: Ok(Response::Empty),
                    events: vec![],
                    leases: vec![],
                });
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        _snapshot: (),
    ) -> io::Result<()> {
        let mut state = self.state.lock();
        state.applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, ()>>> {
        Ok(self
            .state
            .lock()
            .snapshot
            .clone()
            .map(|meta| SnapshotOf::<TypeConfig, ()> { meta, snapshot: () }))
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, SuiteStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, SuiteStateMachine), StorageError<TypeConfig>> {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = LogStore::open(dir.path().join("raft"))
            .await
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, store, SuiteStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id: 1 }, index)
}

fn put(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Command {
            request: Some(Request::Put(PutRequest {
                key: format!("k{index}").into_bytes(),
                value: format!("term {term}").into_bytes(),
                ..Default::default()
            })),
            stamp_ms: 0,
            checked_for: None,
        }),
    }
}

fn puts(term: u64, indexes: impl IntoIterator<Item = u64>) -> Vec<Entry> {
    indexes.into_iter().map(|i| put(term, i)).collect()
}

fn membership_entry(index: u64) -> Entry {
    let nodes = (1..=4).map(|id| {
        (
            id,
            Member {
                name: format!("n{id}"),
                peer_urls: vec![format!("https://127.0.0.1:{}", 12380 + id)],
                client_urls: vec![format!("http://127.0.0.1:{}", 2379 + id)],
            },
        )
    });
    Entry {
        log_id: log_id(1, index),
        // Voters 1-3, learner 4.
        payload: EntryPayload::Membership(
            Membership::new(
                vec![[1, 2, 3].into_iter().collect()],
                nodes.collect::<std::collections::BTreeMap<u64, Member>>(),
            )
            .unwrap(),
        ),
    }
}

/// Appends `entries` and waits for them to be durable.
async fn append(store: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

async fn read(
    store: &mut LogStore,
    range: impl std::ops::RangeBounds<u64> + Clone + std::fmt::Debug + Send,
) -> Vec<Entry> {
    store.try_get_log_entries(range).await.unwrap()
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

/// Drops the store and opens it again once its database is closed.
async fn reopen(store: LogStore, path: &Path) -> LogStore {
    let closed = store.closed();
    drop(store);
    closed.await;
    LogStore::open(path).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Our checks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_ranges_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();

    let mut written = vec![Entry {
        log_id: log_id(0, 0),
        payload: EntryPayload::Blank,
    }];
    written.push(membership_entry(1));
    written.extend(puts(1, 2..100));
    append(&mut store, written[..2].to_vec()).await;
    for chunk in written[2..].chunks(7) {
        append(&mut store, chunk.to_vec()).await;
    }

    assert_eq!(read(&mut store, 0..100).await, written);
    assert_eq!(read(&mut store, ..).await, written);
    assert_eq!(read(&mut store, 10..20).await, written[10..20]);
    assert_eq!(read(&mut store, 95..).await, written[95..]);
    assert_eq!(read(&mut store, ..=5).await, written[..=5]);
    assert_eq!(read(&mut store, 98..=200).await, written[98..]);
    assert!(read(&mut store, 100..300).await.is_empty());
    assert!(read(&mut store, 50..50).await.is_empty());

    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 99)));
    assert_eq!(state.last_purged_log_id, None);

    // The same from disk alone.
    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, written);
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 99))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_readable_when_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path().join("raft")).await.unwrap();
    let mut reader = store.get_log_reader().await;

    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(puts(1, 0..50), IOFlushed::signal(tx))
        .await
        .unwrap();
    // Before waiting for the flush: openraft may read them now.
    assert_eq!(
        reader.try_get_log_entries(0..50).await.unwrap(),
        puts(1, 0..50)
    );
    assert_eq!(
        reader.try_get_log_entries(40..).await.unwrap(),
        puts(1, 40..50)
    );
    rx.await.unwrap().unwrap();
    assert_eq!(
        reader.try_get_log_entries(0..50).await.unwrap(),
        puts(1, 0..50)
    );
}

/// Replication reads (`limited_get_log_entries`) come back in pieces of bounded size; plain
/// reads return the whole range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path().join("raft")).await.unwrap();
    let big = |index: u64| Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Command {
            request: Some(Request::Put(PutRequest {
                key: format!("k{index}").into_bytes(),
                value: vec![b'x'; 1 << 20],
                ..Default::default()
            })),
            stamp_ms: 0,
            checked_for: None,
        }),
    };
    let written: Vec<Entry> = (0..20).map(big).collect();
    append(&mut store, written.clone()).await;

    let mut reader = store.get_log_reader().await;
    let mut start = 0;
    let mut pieces = 0;
    while start < 20 {
        let piece = reader.limited_get_log_entries(start, 20).await.unwrap();
        assert!(!piece.is_empty());
        assert_eq!(piece, written[start as usize..start as usize + piece.len()]);
        start += piece.len() as u64;
        pieces += 1;
    }
    assert!(pieces > 1, "20 MiB came back in one piece");
    assert_eq!(reader.try_get_log_entries(0..20).await.unwrap(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_appends_that_would_leave_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path().join("raft")).await.unwrap();
    append(&mut store, puts(1, 0..3)).await;

    let after_a_gap = store
        .append(puts(1, 5..6), IOFlushed::noop())
        .await
        .unwrap_err();
    assert_eq!(after_a_gap.kind(), io::ErrorKind::InvalidInput);
    let with_a_gap = vec![put(1, 3), put(1, 5)];
    assert!(store.append(with_a_gap, IOFlushed::noop()).await.is_err());
    // Overwriting without truncating first.
    assert!(
        store
            .append(puts(2, 1..2), IOFlushed::noop())
            .await
            .is_err()
    );
    assert_eq!(read(&mut store, ..).await, puts(1, 0..3));
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    append(&mut store, puts(1, 0..=20)).await;

    store.truncate_after(Some(log_id(1, 10))).await.unwrap();
    assert_eq!(
        indexes(&read(&mut store, ..).await),
        (0..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 10))
    );

    // A new leader's entries replace the truncated ones.
    append(&mut store, puts(2, 11..=15)).await;
    let mut expected = puts(1, 0..=10);
    expected.extend(puts(2, 11..=15));
    assert_eq!(read(&mut store, ..).await, expected);

    // Truncating past the end changes nothing.
    store.truncate_after(Some(log_id(2, 30))).await.unwrap();
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 15))
    );

    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, expected);
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 15))
    );

    store.truncate_after(None).await.unwrap();
    assert!(read(&mut store, ..).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
    let mut store = reopen(store, &path).await;
    assert!(read(&mut store, ..).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
}

/// An append, a truncation into it and a new append, queued before the writer gets to any of
/// them: the group's net effect is what reaches the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_of_unflushed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();

    let (tx, first) = TypeConfig::oneshot();
    store
        .append(puts(1, 0..=10), IOFlushed::signal(tx))
        .await
        .unwrap();
    store.truncate_after(Some(log_id(1, 5))).await.unwrap();
    append(&mut store, puts(2, 6..=8)).await;
    first.await.unwrap().unwrap();

    let mut expected = puts(1, 0..=5);
    expected.extend(puts(2, 6..=8));
    assert_eq!(read(&mut store, ..).await, expected);
    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    append(&mut store, puts(1, 0..=20)).await;

    store.purge(log_id(1, 5)).await.unwrap();
    assert_eq!(read(&mut store, ..).await, puts(1, 6..=20));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20)));

    // Purging less than before is a no-op.
    store.purge(log_id(1, 3)).await.unwrap();
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(1, 5))
    );

    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, puts(1, 6..=20));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20)));

    // Past the end (a snapshot installed ahead of the log): the log is empty and resumes after
    // the snapshot.
    store.purge(log_id(3, 40)).await.unwrap();
    assert!(read(&mut store, ..).await.is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 40)));
    assert_eq!(state.last_log_id, Some(log_id(3, 40)));
    append(&mut store, puts(3, 41..=42)).await;

    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, puts(3, 41..=42));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 40)));
    assert_eq!(state.last_log_id, Some(log_id(3, 42)));
}

/// The names of the segment keyspaces in the closed log at `path`.
fn segments_on_disk(path: &Path) -> Vec<String> {
    let db = fjall::Database::builder(path).open().unwrap();
    let mut names: Vec<String> = db
        .list_keyspace_names()
        .into_iter()
        .map(|n| n.to_string())
        .filter(|n| n.starts_with("entries"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    // Segments of 4096 indexes: 0..4096, 4096..8192 and 8192..
    append(&mut store, puts(1, 0..10_000)).await;
    store.purge(log_id(1, 8_200)).await.unwrap();
    assert_eq!(
        indexes(&read(&mut store, ..).await),
        (8_201..10_000).collect::<Vec<_>>()
    );
    // Purged entries left in the third segment are not read back.
    assert!(read(&mut store, 8_192..8_201).await.is_empty());

    let closed = store.closed();
    drop(store);
    closed.await;
    // The writer makes the segment after the one it writes ahead of time.
    assert_eq!(segments_on_disk(&path), ["entries_2", "entries_3"]);

    let mut store = LogStore::open(&path).await.unwrap();
    assert_eq!(
        indexes(&read(&mut store, ..).await),
        (8_201..10_000).collect::<Vec<_>>()
    );
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 8_200)));
    assert_eq!(state.last_log_id, Some(log_id(1, 9_999)));

    // A purge past the end leaves the segment it falls in: its entries stay unread, and the
    // log resumes after the purge, across a reopen.
    store.purge(log_id(2, 12_000)).await.unwrap();
    append(&mut store, puts(2, 12_001..12_003)).await;
    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, puts(2, 12_001..12_003));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 12_000)));
    assert_eq!(state.last_log_id, Some(log_id(2, 12_002)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_that_empties_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    append(&mut store, puts(1, 4_090..4_100)).await;
    store.truncate_after(Some(log_id(1, 4_094))).await.unwrap();
    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, puts(1, 4_090..4_095));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 4_094)));
}

/// A log written by a build of format 1 (every entry in one `entries` keyspace) is moved into
/// segments when opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_one_log_is_moved_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    {
        let db = fjall::Database::builder(&path).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let entries = db
            .keyspace("entries", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        meta.insert("format", [1u8]).unwrap();
        meta.insert("last_purged", codec::encode(&log_id(1, 4_000)))
            .unwrap();
        for entry in puts(1, 4_001..4_200) {
            entries
                .insert(entry.log_id.index.to_be_bytes(), codec::encode(&entry))
                .unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let mut store = LogStore::open(&path).await.unwrap();
    assert_eq!(read(&mut store, ..).await, puts(1, 4_001..4_200));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4_000)));
    assert_eq!(state.last_log_id, Some(log_id(1, 4_199)));
    let closed = store.closed();
    drop(store);
    closed.await;
    assert_eq!(segments_on_disk(&path)[..2], ["entries_0", "entries_1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    assert_eq!(store.read_vote().await.unwrap(), None);
    assert_eq!(store.read_committed().await.unwrap(), None);

    store.save_vote(&Vote::new(2, 3)).await.unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.read_vote().await.unwrap(), Some(Vote::new(2, 3)));

    append(&mut store, puts(2, 0..=4)).await;
    store.save_committed(Some(log_id(2, 3))).await.unwrap();
    store.save_vote(&Vote::new_committed(2, 3)).await.unwrap();
    drop(reader);

    let mut store = reopen(store, &path).await;
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 3))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 3)));
    assert_eq!(read(&mut store, ..).await, puts(2, 0..=4));

    store.save_committed(None).await.unwrap();
    store.save_vote(&Vote::new(3, 1)).await.unwrap();
    let mut store = reopen(store, &path).await;
    assert_eq!(store.read_committed().await.unwrap(), None);
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
}

/// The committed mark rides with the next write instead of being written on its own: with no
/// write after it, closing the store still keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_mark_is_kept_by_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    append(&mut store, puts(1, 0..=2)).await;
    store.save_committed(Some(log_id(1, 2))).await.unwrap();
    let mut store = reopen(store, &path).await;
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2)));
    assert_eq!(read(&mut store, ..).await, puts(1, 0..=2));
}

/// Many appends in flight at once, the way openraft issues them (each returns at once), with
/// readers running alongside: every callback fires, in order, and readers never see a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_under_many_appends() {
    const N: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut reader = store.get_log_reader().await;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let entries = reader.try_get_log_entries(0..).await.unwrap();
                for (i, entry) in entries.iter().enumerate() {
                    assert_eq!(
                        *entry,
                        put(1, i as u64),
                        "a reader saw a hole or a wrong entry"
                    );
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        }));
    }

    let mut flushed = Vec::new();
    for i in 0..N {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append([put(1, i)], IOFlushed::signal(tx))
            .await
            .unwrap();
        flushed.push(rx);
    }

    // The writer completes callbacks in queue order on one thread: once the last has fired,
    // every earlier one must have fired already.
    let last = flushed.pop().unwrap();
    last.await.unwrap().unwrap();
    for mut rx in flushed {
        rx.try_recv()
            .expect("an earlier append completed after a later one")
            .unwrap();
    }

    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }

    let stats = store.stats();
    eprintln!("{N} appends: {stats:?}");
    assert_eq!(stats.appends, N);
    assert!(stats.syncs <= N);

    let mut store = reopen(store, &path).await;
    assert_eq!(read(&mut store, ..).await, puts(1, 0..N));
}

/// Overwrites records in a closed log's database.
fn tamper(path: &Path, keyspace: &str, key: &[u8], value: &[u8]) {
    let db = fjall::Database::builder(path).open().unwrap();
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .unwrap();
    ks.insert(key, value).unwrap();
    db.persist(fjall::PersistMode::SyncAll).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut store = LogStore::open(&path).await.unwrap();
    append(&mut store, puts(1, 0..10)).await;
    store.save_vote(&Vote::new(1, 1)).await.unwrap();
    let closed = store.closed();
    drop(store);
    closed.await;

    // An entry in the middle: opening works (it is not read), reading it fails.
    tamper(&path, "entries_0", &3u64.to_be_bytes(), b"\xff\xff\xff");
    let mut store = LogStore::open(&path).await.unwrap();
    let err = store.try_get_log_entries(0..10).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(read(&mut store, 4..10).await, puts(1, 4..10));
    let closed = store.closed();
    drop(store);
    closed.await;

    // An entry stored under the wrong index.
    tamper(
        &path,
        "entries_0",
        &3u64.to_be_bytes(),
        &codec::encode(&put(1, 7)),
    );
    let mut store = LogStore::open(&path).await.unwrap();
    let err = store.try_get_log_entries(3..4).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let closed = store.closed();
    drop(store);
    closed.await;

    // The last entry (read at open) and the vote: opening fails.
    tamper(&path, "entries_0", &9u64.to_be_bytes(), b"garbage");
    let err = LogStore::open(&path).await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    tamper(
        &path,
        "entries_0",
        &9u64.to_be_bytes(),
        &codec::encode(&put(1, 9)),
    );
    tamper(&path, "meta", b"vote", b"\x08");
    let err = LogStore::open(&path).await.err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

// ---------------------------------------------------------------------------------------------
// kill -9: a child process (this test binary, running `kill_child` below) appends as fast as
// it can and reports each append whose callback fired; we kill it mid-stream and check that
// everything it reported is on disk.

const KILL_CHILD_ENV: &str = "CONCLAVE_RAFT_LOG_KILL_CHILD";
const FLUSHED: &str = "conclave-flushed ";
const VOTED: &str = "conclave-voted";

/// The child's side of `kill_9_loses_no_flushed_append`, which runs it (with `--ignored`) in a
/// process of its own and kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of kill_9_loses_no_flushed_append, run by it"]
async fn kill_child() {
    let path = std::env::var(KILL_CHILD_ENV).unwrap_or_else(|_| {
        panic!("run by kill_9_loses_no_flushed_append, which sets {KILL_CHILD_ENV}")
    });
    let mut store = LogStore::open(&path).await.unwrap();
    store.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
    println!("{VOTED}");

    // Up to 64 appends in flight, so groups form; report each as its callback fires.
    let mut in_flight = VecDeque::new();
    for i in 0.. {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append([put(5, i)], IOFlushed::signal(tx))
            .await
            .unwrap();
        in_flight.push_back((i, rx));
        if in_flight.len() >= 64
            && let Some((j, rx)) = in_flight.pop_front()
        {
            rx.await.unwrap().unwrap();
            println!("{FLUSHED}{j}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_flushed_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft");
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let pump = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut voted = false;
    let mut flushed = BTreeSet::new();
    let note = |line: String, voted: &mut bool, flushed: &mut BTreeSet<u64>| {
        // The harness may have printed `test kill_child ... ` ahead of the first line.
        if line.ends_with(VOTED) {
            *voted = true;
        } else if let Some((_, i)) = line.split_once(FLUSHED) {
            flushed.insert(i.parse::<u64>().unwrap());
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    // Kill it well into the stream, with appends in flight.
    while flushed.len() < 2000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the child stopped reporting flushed appends");
        note(line, &mut voted, &mut flushed);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What it printed before dying counts too.
    pump.join().unwrap();
    for line in lines.try_iter() {
        note(line, &mut voted, &mut flushed);
    }
    assert!(voted);

    let mut store = LogStore::open(&path).await.unwrap();
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new_committed(5, 1))
    );
    let last = store.get_log_state().await.unwrap().last_log_id.unwrap();
    let max = *flushed.last().unwrap();
    assert!(
        last.index >= max,
        "flushed up to {max}, found only up to {}",
        last.index
    );
    // Nothing reported flushed is missing, and the log has no hole.
    assert_eq!(read(&mut store, ..).await, puts(5, 0..=last.index));
    eprintln!(
        "killed after {} reported appends; {} entries on disk",
        flushed.len(),
        last.index + 1
    );
}
