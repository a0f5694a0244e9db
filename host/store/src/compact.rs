//! Physical compaction: removes from disk the records a logical compaction made garbage. It
//! runs on its own thread after the compaction's batch is durable, in chunks, so that it never
//! holds up applies; readers are safe because every read runs on a snapshot taken before any
//! record it needs could be removed. Idempotent: after a crash, start-up schedules it again.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tracing::{error, info};

use crate::backend::{Backend, META_COMPACT_DONE};
use crate::error::Result;
use crate::revision::Revision;
use crate::write::CompactionJob;

/// Deletions per disk batch.
const CHUNK: usize = 10_000;

/// How far physical compaction has got, and a way to wait on it.
#[derive(Default)]
pub(crate) struct Progress {
    marks: Mutex<Marks>,
    changed: Condvar,
}

#[derive(Default)]
struct Marks {
    /// The highest revision whose physical compaction finished.
    done: i64,
    /// The highest revision handed to the worker.
    scheduled: i64,
    /// The highest revision the worker has finished with, whether it succeeded or not.
    settled: i64,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut Marks)) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut marks);
        self.changed.notify_all();
    }

    fn wait_until(&self, cond: impl Fn(&Marks) -> bool) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        while !cond(&marks) {
            marks = self.changed.wait(marks).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Until compaction up to `at` has finished.
    pub fn wait_for(&self, at: i64) {
        self.wait_until(|m| m.done >= at);
    }
}

pub(crate) struct Compactor {
    jobs: Mutex<Option<Sender<CompactionJob>>>,
    pub progress: Arc<Progress>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Compactor {
    pub fn start(backend: Backend, done: i64) -> Self {
        let progress = Arc::new(Progress::default());
        progress.update(|m| {
            m.done = done;
            m.settled = done;
            m.scheduled = done;
        });
        let (tx, rx) = channel();
        let p = progress.clone();
        let worker = std::thread::Builder::new()
            .name("compactor".into())
            .spawn(move || run(backend, rx, &p))
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            progress,
            worker: Mutex::new(worker),
        }
    }

    pub fn schedule(&self, job: CompactionJob) {
        let at = job.at;
        self.progress.update(|m| m.scheduled = m.scheduled.max(at));
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = jobs.as_ref()
            && tx.send(job).is_err()
        {
            error!("compactor is gone; compaction will resume at next start");
        }
    }

    /// Until every job handed over so far has been carried out (or has failed).
    pub fn wait_idle(&self) {
        self.progress.wait_until(|m| m.settled >= m.scheduled);
    }

    /// Finishes queued jobs and stops the worker.
    pub fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn run(backend: Backend, jobs: Receiver<CompactionJob>, progress: &Progress) {
    for job in jobs {
        match remove_garbage(&backend, &job) {
            Ok(removed) => {
                info!(revision = job.at, removed, "compaction finished");
                progress.update(|m| {
                    m.done = m.done.max(job.at);
                    m.settled = m.settled.max(job.at);
                });
            }
            // The store still reads correctly (the index never points at garbage); the next
            // start retries, since the finished mark was not written.
            Err(e) => {
                error!(revision = job.at, error = %e, "physical compaction failed");
                progress.update(|m| m.settled = m.settled.max(job.at));
            }
        }
    }
}

fn remove_garbage(backend: &Backend, job: &CompactionJob) -> Result<usize> {
    let end = Revision::new(job.at + 1, 0).to_key();
    let mut removed = 0;
    let mut batch = backend.db.batch();
    for guard in backend.kv.range(..end.as_slice()) {
        let key = guard.key()?;
        let keep = Revision::from_key(&key).is_some_and(|r| job.keep.contains(&r));
        if !keep {
            batch.remove(&backend.kv, key);
            removed += 1;
            if batch.len() >= CHUNK {
                std::mem::replace(&mut batch, backend.db.batch()).commit()?;
            }
        }
    }
    batch.insert(
        &backend.meta,
        META_COMPACT_DONE,
        job.at.to_be_bytes().to_vec(),
    );
    batch.commit()?;
    Ok(removed)
}
