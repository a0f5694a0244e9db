//! The store: opens the disk, rebuilds the key index, serves reads from a consistent view and
//! applies committed batches. One writer (apply) at a time; readers run concurrently and hold
//! the index lock only while they pick revisions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{AlarmMember, AlarmType, RangeRequest, RangeResponse};
use parking_lot::RwLock;
use tracing::info;

use crate::alarm::{Alarms, META_ALARM_PREFIX};
use crate::apply::{Applied, Durability, Entry, Response};
use crate::auth::{AuthState, META_AUTH_PREFIX};
use crate::backend::{
    Backend, META_APPLIED, META_COMPACT_DONE, META_COMPACTED, META_INSTALLING, META_RAFT_STATE,
    META_REVISION, META_TIME, Record, pair_bytes,
};
use crate::compact::Compactor;
use crate::error::{RequestError, Result, StoreError};
use crate::lease::{LeaseInfo, META_LEASE_PREFIX, decode_lease};
use crate::plugin::META_PLUGIN_PREFIX;
use crate::read;
use crate::revision::Revision;
use crate::write::{BatchWriter, CompactionJob, State};

/// A fresh store is at revision 1, as etcd's is: the first write creates revision 2.
const INITIAL_REVISION: i64 = 1;

pub struct Store {
    pub(crate) backend: Backend,
    pub(crate) state: RwLock<Guarded>,
    /// The newest revision readers may see: the newest one that is durable. Applies write
    /// under the lock and fsync after releasing it, so reads never wait for the disk; until
    /// the fsync returns, the new revision stays invisible.
    pub(crate) visible: AtomicI64,
    pub(crate) compactor: Compactor,
    /// The auth state and the alarms as of the last applied batch, for the checks every
    /// request makes: a lock of their own, written only when they change, so that those
    /// checks never wait behind an apply holding `state`.
    views: RwLock<Views>,
}

#[derive(Debug, Clone, Default)]
struct Views {
    auth: Arc<AuthState>,
    alarms: Alarms,
}

/// The state, plus whether a failed disk write has left memory ahead of the disk; after that
/// the store answers nothing until it is reopened.
pub(crate) struct Guarded {
    pub(crate) state: State,
    pub(crate) failed: bool,
}

/// Figures for status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    pub revision: i64,
    pub compacted: i64,
    pub applied_index: u64,
    pub applied_term: u64,
    pub keys: usize,
    pub disk_bytes: u64,
}

impl Store {
    /// Opens (or creates) the store in `path` and rebuilds its key index.
    pub fn open(path: &Path) -> Result<Self> {
        let backend = Backend::open(path)?;
        if backend.meta.get(META_INSTALLING)?.is_some() {
            // A snapshot install was cut short: what is on disk is neither the old state nor
            // the new one. Start empty; the cluster sends the snapshot again.
            tracing::warn!(path = %path.display(), "an interrupted snapshot install left a partial store; clearing it");
            crate::snapshot::clear(&backend)?;
        }
        let (state, pending, compact_done) = load_state(&backend)?;
        info!(
            path = %path.display(),
            revision = state.current,
            compacted = state.compacted,
            applied_index = state.applied.0,
            keys = state.index.len(),
            "store opened"
        );
        let compactor = Compactor::start(backend.clone(), compact_done);
        if let Some(job) = pending {
            compactor.schedule(job);
        }
        Ok(Self {
            backend,
            visible: AtomicI64::new(state.current),
            views: RwLock::new(Views {
                auth: state.auth.current.clone(),
                alarms: state.alarms.clone(),
            }),
            state: RwLock::new(Guarded {
                state,
                failed: false,
            }),
            compactor,
        })
    }

    /// A range read at the request's revision, as etcd serves it.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let (plan, snapshot, current) = {
            let g = self.state.read();
            if g.failed {
                return Err(failed());
            }
            let visible = self.visible.load(Ordering::Acquire);
            let at = read::resolve_revision(req.revision, visible, g.state.compacted)?;
            // The snapshot is taken under the lock, so it holds every record the plan names.
            (
                read::plan(&g.state.index, req, at),
                self.backend.db.snapshot(),
                visible,
            )
        };
        read::execute(
            plan,
            |revs| self.backend.load_many_at(&snapshot, revs),
            req,
            current,
        )
    }

    /// Applies committed entries in order, in one atomic disk write with the applied position.
    /// Entries at or below the applied position are skipped (replay). An `Err` means the disk
    /// failed: the store then refuses everything until it is reopened.
    pub fn apply(&self, entries: &[Entry], durability: Durability) -> Result<Vec<Applied>> {
        self.apply_with_state(entries, None, durability)
    }

    /// [`Store::apply`], also writing `raft_state` (an opaque blob: the consensus layer's last
    /// applied log id and membership) in the same atomic batch, so that the two never disagree
    /// after a crash. [`Store::raft_state`] reads it back.
    pub fn apply_with_state(
        &self,
        entries: &[Entry],
        raft_state: Option<&[u8]>,
        durability: Durability,
    ) -> Result<Vec<Applied>> {
        let mut g = self.state.write();
        if g.failed {
            return Err(failed());
        }
        let outcome = Self::apply_locked(&self.backend, &mut g.state, entries, raft_state);
        let (applied, jobs) = match outcome {
            Ok(done) => done,
            Err(e) => return Err(self.fail(&mut g, e)),
        };
        self.refresh_views(&g.state);
        let revision = g.state.current;
        if durability == Durability::Sync {
            // A compaction has already pruned the index below its revision, so readers must
            // not keep reading at an older watermark: such a batch is made durable under the
            // lock. Compactions are rare; every other batch fsyncs with readers running.
            let guard = if jobs.is_empty() {
                drop(g);
                None
            } else {
                Some(g)
            };
            if let Err(e) = self.backend.persist() {
                let mut g = guard.unwrap_or_else(|| self.state.write());
                return Err(self.fail(&mut g, e));
            }
            self.visible.fetch_max(revision, Ordering::AcqRel);
        } else {
            self.visible.fetch_max(revision, Ordering::AcqRel);
            drop(g);
        }
        for job in jobs {
            self.compactor.schedule(job);
        }
        Ok(applied)
    }

    fn fail(&self, g: &mut Guarded, e: StoreError) -> StoreError {
        g.failed = true;
        tracing::error!(error = %e, "writing to disk failed; the store stops serving");
        e
    }

    fn apply_locked(
        backend: &Backend,
        state: &mut State,
        entries: &[Entry],
        raft_state: Option<&[u8]>,
    ) -> Result<(Vec<Applied>, Vec<CompactionJob>)> {
        let mut out = Vec::with_capacity(entries.len());
        let mut w = BatchWriter::new(backend, state);
        for e in entries {
            let applied = w.state.applied.0;
            if e.index <= applied {
                continue;
            }
            let request = e.command.as_ref().and_then(|c| c.request.as_ref());
            let stamp = e.command.as_ref().map_or(0, |c| c.stamp_ms);
            let checked_for = e.command.as_ref().and_then(|c| c.checked_for.as_ref());
            let (result, events, leases) = match request {
                None => (Ok(Response::Empty), Vec::new(), Vec::new()),
                Some(req) => match w.execute(req, stamp, checked_for) {
                    Ok(done) => (Ok(done.response), done.events, done.leases),
                    Err(StoreError::Request(err)) => (Err(err), Vec::new(), Vec::new()),
                    Err(fatal) => return Err(fatal),
                },
            };
            w.state.applied = (e.index, e.term);
            out.push(Applied {
                index: e.index,
                revision: w.state.current,
                result,
                events,
                leases,
            });
        }
        let (index, term) = w.state.applied;
        let current = w.state.current;
        let time = w.state.time;
        let compacted = w.state.compacted;
        let jobs = std::mem::take(&mut w.compactions);
        let mut batch = w.batch;
        batch.insert(
            &backend.meta,
            META_APPLIED,
            pair_bytes(index, term).to_vec(),
        );
        batch.insert(&backend.meta, META_REVISION, current.to_be_bytes().to_vec());
        batch.insert(&backend.meta, META_TIME, time.to_be_bytes().to_vec());
        if let Some(raft_state) = raft_state {
            batch.insert(&backend.meta, META_RAFT_STATE, raft_state.to_vec());
        }
        if !jobs.is_empty() {
            batch.insert(
                &backend.meta,
                META_COMPACTED,
                compacted.to_be_bytes().to_vec(),
            );
        }
        // Sync batches fsync after the lock is released (see apply_with_state); Buffered ones
        // leave the journal buffer to fill, as a durable log replays them after a crash.
        let started = std::time::Instant::now();
        batch.durability(None).commit()?;
        // etcd's backend commit histogram: the applied batch reaching the store.
        static COMMIT: std::sync::LazyLock<metrics::Histogram> = std::sync::LazyLock::new(|| {
            metrics::histogram!("etcd_disk_backend_commit_duration_seconds")
        });
        COMMIT.record(started.elapsed().as_secs_f64());
        Ok((out, jobs))
    }

    /// The blob last written by [`Store::apply_with_state`] (or a snapshot), if any.
    pub fn raft_state(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.backend.meta.get(META_RAFT_STATE)?.map(|v| v.to_vec()))
    }

    /// Blocks until physical compaction up to `revision` is done (Compact with `physical`).
    pub fn wait_compacted(&self, revision: i64) {
        self.compactor.progress.wait_for(revision);
    }

    /// The newest revision readers see.
    pub fn current_revision(&self) -> i64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The revision history was compacted at: reads below it are refused.
    pub fn compacted_revision(&self) -> i64 {
        self.state.read().state.compacted
    }

    pub fn status(&self) -> StoreStatus {
        let g = self.state.read();
        StoreStatus {
            revision: self.visible.load(Ordering::Acquire),
            compacted: g.state.compacted,
            applied_index: g.state.applied.0,
            applied_term: g.state.applied.1,
            keys: g.state.index.len(),
            disk_bytes: self.backend.disk_space(),
        }
    }

    /// The store's size on disk, as etcd's dbSize: what the quota is checked against.
    pub fn disk_bytes(&self) -> u64 {
        self.backend.disk_space()
    }

    /// Rewrites the trees to drop what compaction deleted. An LSM does this in the background
    /// without blocking writers; this asks for a full pass now (writers go on meanwhile).
    pub fn defragment(&self) -> Result<()> {
        // What a compaction freed is only deleted once the background compactor has run, and
        // the deletions live in the memtable until it is flushed.
        self.compactor.wait_idle();
        for keyspace in [&self.backend.kv, &self.backend.meta] {
            keyspace.rotate_memtable_and_wait()?;
            keyspace.major_compact()?;
        }
        Ok(())
    }

    /// The auth state as of the newest applied change.
    pub fn auth(&self) -> Arc<AuthState> {
        self.views.read().auth.clone()
    }

    /// Publishes the auth state and alarms of `state` to [`Self::views`] if they changed.
    pub(crate) fn refresh_views(&self, state: &State) {
        let stale = {
            let v = self.views.read();
            !Arc::ptr_eq(&v.auth, &state.auth.current) || v.alarms != state.alarms
        };
        if stale {
            *self.views.write() = Views {
                auth: state.auth.current.clone(),
                alarms: state.alarms.clone(),
            };
        }
    }

    /// The alarms in place of type `alarm` (every one for NONE).
    pub fn alarms(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.views.read().alarms.list(alarm)
    }

    /// The error the alarms in place answer `request` with, if any: what apply would answer,
    /// for a member to refuse before proposing.
    pub fn alarm_refuses(&self, request: &Request) -> Option<RequestError> {
        self.views.read().alarms.refuses(request)
    }

    /// A lease with its attached keys; None if it does not exist.
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.state.read().state.leases.get(id)
    }

    /// A lease's granted TTL; None if it does not exist. Unlike [`Store::lease`], it does not
    /// copy the attached keys: keep-alives ask this.
    pub fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.state.read().state.leases.ttl(id)
    }

    /// Every lease (without keys), by ID.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.state.read().state.leases.all()
    }

    /// fsyncs everything written so far.
    pub fn persist(&self) -> Result<()> {
        self.backend.persist()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.compactor.stop();
        let _ = self.backend.persist();
    }
}

pub(crate) fn failed() -> StoreError {
    StoreError::Corrupt("an earlier disk write failed; restart the member".into())
}

/// Reads the durable state back: the meta values, and the key index rebuilt by one scan of
/// every record. Also returns the physical compaction still owed, if a crash interrupted one,
/// and how far physical compaction had got.
pub(crate) fn load_state(backend: &Backend) -> Result<(State, Option<CompactionJob>, i64)> {
    let mut state = State {
        current: backend.meta_i64(META_REVISION)?.unwrap_or(INITIAL_REVISION),
        compacted: backend.meta_i64(META_COMPACTED)?.unwrap_or(0),
        applied: backend.meta_pair(META_APPLIED)?.unwrap_or((0, 0)),
        time: backend.meta_i64(META_TIME)?.unwrap_or(0),
        ..Default::default()
    };
    let compact_done = backend.meta_i64(META_COMPACT_DONE)?.unwrap_or(0);
    for guard in backend.meta.prefix(META_LEASE_PREFIX) {
        let (key, value) = guard.into_inner()?;
        let (id, ttl, remaining) = decode_lease(&key, &value)
            .ok_or_else(|| StoreError::Corrupt(format!("bad lease entry {key:?}")))?;
        state.leases.grant(id, ttl, remaining);
    }
    for guard in backend.meta.prefix(META_AUTH_PREFIX) {
        let (key, value) = guard.into_inner()?;
        state.auth.restore(&key, &value)?;
    }
    for guard in backend.meta.prefix(META_ALARM_PREFIX) {
        state.alarms.restore(&guard.key()?)?;
    }
    for guard in backend.meta.prefix(META_PLUGIN_PREFIX) {
        let (key, value) = guard.into_inner()?;
        state.plugins.restore(&key, &value)?;
    }
    for guard in backend.kv.iter() {
        let (key, value) = guard.into_inner()?;
        let rev = Revision::from_key(&key)
            .ok_or_else(|| StoreError::Corrupt(format!("bad revision key {key:?}")))?;
        let rec = Record::decode(rev, &value)?;
        BatchWriter::restore(&mut state, rev, &rec);
        state.current = state.current.max(rev.main);
        // Meta has it already; a store written before meta kept it has it only here.
        state.time = state.time.max(rec.time);
    }
    let mut pending = None;
    if state.compacted > 0 {
        let keep = state.index.compact(state.compacted);
        if compact_done < state.compacted {
            pending = Some(CompactionJob {
                at: state.compacted,
                keep,
            });
        }
    }
    Ok((state, pending, compact_done))
}
