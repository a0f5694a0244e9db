//! A store on a temporary directory that applies entries as a leader would propose them
//! (numbered in order, stamped with the given clock), and reopens itself like a restart.

#![allow(dead_code)]

use conclave_proto::conclavepb::command::Request;
use conclave_store::{Applied, Durability, Entry, Store};

pub struct StampedStore {
    pub dir: tempfile::TempDir,
    store: Option<Store>,
    /// The last entry index applied; a test may move it (a store that lives on another log).
    pub index: u64,
}

impl StampedStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Some(Store::open(dir.path()).unwrap());
        Self {
            dir,
            store,
            index: 0,
        }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// Applies the requests as one batch of entries, each with its stamp (ms).
    pub fn apply_all(&mut self, reqs: Vec<(Request, i64)>) -> Vec<Applied> {
        let entries: Vec<Entry> = reqs
            .into_iter()
            .map(|(req, stamp)| {
                self.index += 1;
                Entry::stamped(self.index, 1, req, stamp)
            })
            .collect();
        self.store().apply(&entries, Durability::Sync).unwrap()
    }

    pub fn apply(&mut self, req: Request, stamp_ms: i64) -> Applied {
        self.apply_all(vec![(req, stamp_ms)]).pop().unwrap()
    }

    /// Applies a client's write as a member checked it for `user` ("" with auth off then).
    pub fn apply_for(&mut self, user: &str, req: Request) -> Applied {
        self.index += 1;
        let mut entry = Entry::stamped(self.index, 1, req, 0);
        if let Some(command) = &mut entry.command {
            command.checked_for = Some(conclave_proto::conclavepb::CheckedFor {
                user: user.to_string(),
            });
        }
        self.store()
            .apply(&[entry], Durability::Sync)
            .unwrap()
            .pop()
            .unwrap()
    }

    /// Closes the store and opens it again from disk.
    pub fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(Store::open(self.dir.path()).unwrap());
    }
}
