//! Hashes of the replicated state, for `etcdctl endpoint hashkv` and the corruption check:
//! members that applied the same log hold the same bytes, so their hashes at one revision are
//! equal, and a difference means one of them is corrupt.
//!
//! What is hashed is what every member decides alike: the records of the revisions after the
//! compaction point (the records at or below it are removed by each member's own background
//! compaction, at its own pace), and for `Hash` also the replicated meta entries (leases,
//! alarms, plugins, users and roles), not the member's own bookkeeping.

use std::sync::atomic::Ordering;

use fjall::Readable;

use crate::backend::{META_APPLIED, META_COMPACT_DONE, META_INSTALLING, META_RAFT_STATE};
use crate::error::Result;
use crate::read::resolve_revision;
use crate::revision::Revision;
use crate::store::{Store, failed};

/// A HashKV answer: the hash of the records in `(compact_revision, hash_revision]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    pub hash_revision: i64,
}

/// Meta entries a member keeps for itself: they differ between members that agree.
const LOCAL_META: [&[u8]; 4] = [
    META_APPLIED,
    META_COMPACT_DONE,
    META_INSTALLING,
    META_RAFT_STATE,
];

impl Store {
    /// The hash of the history up to `revision` (0: the newest), as etcd's HashKV.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash> {
        self.hash_with(revision, false)
    }

    /// The hash of the whole replicated state at the newest revision, as etcd's Hash.
    pub fn hash_all(&self) -> Result<KvHash> {
        self.hash_with(0, true)
    }

    fn hash_with(&self, revision: i64, with_meta: bool) -> Result<KvHash> {
        let (at, compacted, view) = {
            let g = self.state.read();
            if g.failed {
                return Err(failed());
            }
            let visible = self.visible.load(Ordering::Acquire);
            let compacted = g.state.compacted;
            let at = resolve_revision(revision, visible, compacted)?;
            (at, compacted, self.backend.db.snapshot())
        };
        let mut hasher = crc32fast::Hasher::new();
        let from = Revision::new(compacted + 1, 0).to_key();
        let to = Revision::new(at + 1, 0).to_key();
        for guard in view.range(&self.backend.kv, from..to) {
            let (key, value) = guard.into_inner()?;
            hasher.update(&key);
            hasher.update(&value);
        }
        if with_meta {
            for guard in view.iter(&self.backend.meta) {
                let (key, value) = guard.into_inner()?;
                if LOCAL_META.contains(&key.as_ref()) {
                    continue;
                }
                hasher.update(&key);
                hasher.update(&value);
            }
        }
        Ok(KvHash {
            hash: hasher.finalize(),
            compact_revision: compacted,
            hash_revision: at,
        })
    }
}
