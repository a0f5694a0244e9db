//! The in-memory key index: for every key, the revisions at which it changed. Values live on
//! disk keyed by revision; the index answers "which revision of which keys is visible at
//! revision R" without touching the disk. It is rebuilt from the disk at start.

use std::collections::{BTreeMap, HashSet};

use smallvec::SmallVec;

use crate::key_range::KeyRange;
use crate::revision::Revision;

/// One change of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub rev: Revision,
    pub tombstone: bool,
}

/// The history of one key, oldest change first.
#[derive(Debug, Clone, Default)]
pub struct KeyHistory {
    /// Most keys have one change between compactions: held inline, that costs no allocation
    /// of its own (a Vec's first push allocates room for four, 96 bytes per key).
    changes: SmallVec<[Change; 1]>,
    /// Main revision that created the live generation, and its version; meaningful only while
    /// the last change is a put. Kept here so a put needs no disk read to number itself.
    created: i64,
    version: i64,
}

impl KeyHistory {
    /// The revision of this key visible at main revision `at`, if the key exists then.
    pub fn visible_at(&self, at: i64) -> Option<Revision> {
        let n = self.changes.partition_point(|c| c.rev.main <= at);
        let change = self.changes.get(n.checked_sub(1)?)?;
        (!change.tombstone).then_some(change.rev)
    }

    pub fn is_live(&self) -> bool {
        self.changes.last().is_some_and(|c| !c.tombstone)
    }

    /// The latest revision, when the key is live.
    pub fn latest(&self) -> Option<Revision> {
        self.changes.last().filter(|c| !c.tombstone).map(|c| c.rev)
    }

    /// Records a put; returns the (create_revision, version) the new value carries.
    fn put(&mut self, rev: Revision) -> (i64, i64) {
        if self.is_live() {
            self.version += 1;
        } else {
            self.created = rev.main;
            self.version = 1;
        }
        self.changes.push(Change {
            rev,
            tombstone: false,
        });
        (self.created, self.version)
    }

    fn delete(&mut self, rev: Revision) {
        self.changes.push(Change {
            rev,
            tombstone: true,
        });
        self.created = 0;
        self.version = 0;
    }

    /// Drops history below `at`: keeps the change visible at `at` unless it is a delete (a
    /// deleted key leaves nothing behind). Reports kept revisions at or below `at` to `keep`.
    /// Returns whether the history is now empty.
    fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) -> bool {
        let n = self.changes.partition_point(|c| c.rev.main <= at);
        if let Some(last) = n.checked_sub(1) {
            let visible = self.changes[last];
            if visible.tombstone {
                self.changes.drain(..n);
            } else {
                keep.insert(visible.rev);
                self.changes.drain(..last);
            }
            // Give back the room the dropped changes held, back inline when one is left:
            // compaction is what keeps the index small.
            self.changes.shrink_to_fit();
        }
        self.changes.is_empty()
    }
}

/// Every key's history, ordered by key. Keys are boxed slices, 8 bytes smaller than a Vec in
/// every B-tree slot: the index is most of a member's memory once it holds millions of keys.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, KeyHistory>,
}

impl KeyIndex {
    /// Keys in `range` that exist at main revision `at`, in key order, with the visible revision.
    pub fn visible<'a>(
        &'a self,
        range: &'a KeyRange,
        at: i64,
    ) -> impl Iterator<Item = (&'a [u8], Revision)> + 'a {
        range
            .bounds()
            .into_iter()
            .flat_map(move |bounds| self.keys.range::<[u8], _>(bounds))
            .filter_map(move |(k, h)| Some((&**k, h.visible_at(at)?)))
    }

    pub fn get(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.keys.get(key)
    }

    /// Records a put of `key` at `rev`; returns the new value's (create_revision, version).
    pub fn put(&mut self, key: &[u8], rev: Revision) -> (i64, i64) {
        match self.keys.get_mut(key) {
            Some(h) => h.put(rev),
            None => self.keys.entry(key.into()).or_default().put(rev),
        }
    }

    /// Records a delete of a live key.
    pub fn delete(&mut self, key: &[u8], rev: Revision) {
        if let Some(h) = self.keys.get_mut(key) {
            h.delete(rev);
        }
    }

    /// Rebuilds one change read back from disk (changes arrive in revision order).
    pub fn restore(&mut self, key: &[u8], change: Change, create_revision: i64, version: i64) {
        let h = match self.keys.get_mut(key) {
            Some(h) => h,
            None => self.keys.entry(key.into()).or_default(),
        };
        h.changes.push(change);
        if change.tombstone {
            h.created = 0;
            h.version = 0;
        } else {
            h.created = create_revision;
            h.version = version;
        }
    }

    /// Drops history below `at` from every key; returns the revisions at or below `at` that
    /// must stay on disk (everything else at or below `at` is garbage).
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.keys.retain(|_, h| !h.compact(at, &mut keep));
        keep
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn versions_count_up_and_reset_after_delete() {
        let mut idx = KeyIndex::default();
        assert_eq!(idx.put(b"k", r(2)), (2, 1));
        assert_eq!(idx.put(b"k", r(3)), (2, 2));
        idx.delete(b"k", r(4));
        assert_eq!(idx.put(b"k", r(5)), (5, 1));
    }

    #[test]
    fn visibility_follows_history() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", r(2));
        idx.put(b"k", r(3));
        idx.delete(b"k", r(4));
        idx.put(b"k", r(6));
        let h = idx.get(b"k").unwrap();
        assert_eq!(h.visible_at(1), None);
        assert_eq!(h.visible_at(2), Some(r(2)));
        assert_eq!(h.visible_at(3), Some(r(3)));
        assert_eq!(h.visible_at(4), None);
        assert_eq!(h.visible_at(5), None);
        assert_eq!(h.visible_at(6), Some(r(6)));
        assert_eq!(h.visible_at(100), Some(r(6)));
    }

    #[test]
    fn compaction_keeps_the_visible_put_and_drops_deleted_keys() {
        let mut idx = KeyIndex::default();
        idx.put(b"a", r(2));
        idx.put(b"a", r(3));
        idx.put(b"b", r(4));
        idx.delete(b"b", r(5));
        idx.put(b"a", r(6));
        let keep = idx.compact(5);
        assert_eq!(keep, HashSet::from([r(3)]));
        assert!(
            idx.get(b"b").is_none(),
            "a key deleted before the compaction point is gone"
        );
        let a = idx.get(b"a").unwrap();
        assert_eq!(a.visible_at(5), Some(r(3)));
        assert_eq!(a.visible_at(6), Some(r(6)));
    }

    #[test]
    fn a_key_changed_once_holds_its_history_inline() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", r(2));
        assert!(!idx.get(b"k").unwrap().changes.spilled());
        idx.put(b"k", r(3));
        assert!(idx.get(b"k").unwrap().changes.spilled());
        idx.compact(3);
        let h = idx.get(b"k").unwrap();
        assert_eq!(h.changes.len(), 1, "compaction keeps only the visible put");
        assert!(!h.changes.spilled(), "and moves it back inline");
        assert_eq!(h.visible_at(3), Some(r(3)));
    }

    #[test]
    fn range_visibility() {
        let mut idx = KeyIndex::default();
        idx.put(b"a", r(2));
        idx.put(b"b", r(3));
        idx.put(b"c", r(4));
        idx.delete(b"b", r(5));
        let all = KeyRange::new(b"a", b"\0");
        let at4: Vec<_> = idx.visible(&all, 4).map(|(k, _)| k.to_vec()).collect();
        assert_eq!(at4, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let at5: Vec<_> = idx.visible(&all, 5).map(|(k, _)| k.to_vec()).collect();
        assert_eq!(at5, vec![b"a".to_vec(), b"c".to_vec()]);
        let empty = KeyRange::new(b"c", b"a");
        assert_eq!(idx.visible(&empty, 5).count(), 0);
    }
}
