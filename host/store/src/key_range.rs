//! etcd's key-range rules, shared by Range, DeleteRange, Txn compares and (later) watches and
//! permissions: an empty `range_end` is the single key; `"\0"` means every key >= `key`;
//! otherwise the half-open interval [key, range_end).

use std::ops::Bound;

/// Bounds over byte-string keys, as `BTreeMap::range` takes them.
pub type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A set of keys as etcd's requests name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key.
    Single(Vec<u8>),
    /// Every key >= start, and < end when there is an end.
    Interval {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Interval {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Interval {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    /// The same keys as a half-open interval [start, end), `None` for no end.
    pub fn half_open(&self) -> (&[u8], Option<Vec<u8>>) {
        match self {
            KeyRange::Single(k) => (k, Some([k.as_slice(), &[0]].concat())),
            KeyRange::Interval { start, end } => (start, end.clone()),
        }
    }

    /// Whether the union of `cover` holds every key of this range.
    pub fn covered_by(&self, cover: &[KeyRange]) -> bool {
        let (start, end) = self.half_open();
        if end.as_deref().is_some_and(|e| e <= start) {
            return true;
        }
        let mut pieces: Vec<(&[u8], Option<Vec<u8>>)> =
            cover.iter().map(|r| r.half_open()).collect();
        pieces.sort_by(|a, b| a.0.cmp(b.0));
        // How far from `start` the pieces seen so far cover without a gap.
        let mut reach: Option<Vec<u8>> = Some(start.to_vec());
        for (s, e) in pieces {
            let Some(r) = reach.as_deref() else { break };
            if s > r {
                break;
            }
            reach = match (reach.take(), e) {
                (_, None) => None,
                (Some(r), Some(e)) => Some(r.max(e)),
                (None, _) => None,
            };
        }
        match (reach, end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(r), Some(e)) => r >= e,
        }
    }

    /// The range of every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = prefix_end(prefix);
        KeyRange::Interval {
            start: prefix.to_vec(),
            end: (end != [0]).then_some(end),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k == key,
            KeyRange::Interval { start, end } => {
                key >= start.as_slice() && end.as_deref().is_none_or(|e| key < e)
            }
        }
    }

    /// The bounds to iterate an ordered map of keys with; `None` when the range is empty
    /// (an end at or before the start), which BTreeMap::range would reject.
    pub fn bounds(&self) -> Option<KeyBounds<'_>> {
        match self {
            KeyRange::Single(k) => Some((Bound::Included(k), Bound::Included(k))),
            KeyRange::Interval { start, end: None } => {
                Some((Bound::Included(start), Bound::Unbounded))
            }
            KeyRange::Interval {
                start,
                end: Some(end),
            } => (start < end).then_some((Bound::Included(start), Bound::Excluded(end))),
        }
    }
}

/// The `range_end` that selects every key with this prefix (etcd's rule, kept in the proto
/// crate so that the store and the client share it).
pub use conclave_proto::prefix_range_end as prefix_end;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_by_a_union_of_ranges() {
        let r = |k: &[u8], e: &[u8]| KeyRange::new(k, e);
        let cover = [r(b"a", b"c"), r(b"c", b"e"), r(b"x", b"")];
        assert!(r(b"a", b"e").covered_by(&cover));
        assert!(r(b"b", b"d").covered_by(&cover));
        assert!(r(b"x", b"").covered_by(&cover));
        assert!(!r(b"x", b"y").covered_by(&cover));
        assert!(!r(b"a", b"f").covered_by(&cover));
        assert!(!r(b"a", b"\0").covered_by(&cover));
        assert!(r(b"q", b"\0").covered_by(&[r(b"p", b"\0")]));
        assert!(r(b"", b"\0").covered_by(&[r(b"", b"\0")]));
        assert!(!r(b"f", b"").covered_by(&cover));
        assert!(r(b"k", b"").covered_by(&[KeyRange::prefix(b"k")]));
        assert!(!r(b"a", b"b").covered_by(&[]));
    }

    #[test]
    fn single_key() {
        let r = KeyRange::new(b"foo", b"");
        assert!(r.contains(b"foo"));
        assert!(!r.contains(b"foo1"));
    }

    #[test]
    fn from_key() {
        let r = KeyRange::new(b"b", b"\0");
        assert!(r.contains(b"b"));
        assert!(r.contains(b"zzz"));
        assert!(!r.contains(b"a"));
        let all = KeyRange::new(b"\0", b"\0");
        assert!(all.contains(b"\0") && all.contains(b"a") && all.contains(&[0xff, 0xff]));
    }

    #[test]
    fn interval_and_empty_interval() {
        let r = KeyRange::new(b"a", b"c");
        assert!(r.contains(b"a") && r.contains(b"b") && !r.contains(b"c"));
        assert!(KeyRange::new(b"c", b"a").bounds().is_none());
        assert!(KeyRange::new(b"c", b"c").bounds().is_none());
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_end(b"foo"), b"fop".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), vec![b'b']);
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
        let p = KeyRange::prefix(b"/svc/");
        assert!(p.contains(b"/svc/a") && !p.contains(b"/svd"));
        assert!(KeyRange::prefix(&[0xff]).contains(&[0xff, 0xff, 1]));
    }
}
