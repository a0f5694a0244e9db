//! Revisions: every change in the store is named by (main, sub). `main` is the store revision a
//! write request creates (one per Put, DeleteRange or Txn); `sub` orders the changes inside it.

use std::fmt;

/// A point in the store's history. Ordered by `main`, then `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Bytes of a revision encoded as a storage key.
pub const REVISION_KEY_LEN: usize = 16;

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// Big-endian, so that the LSM's byte order is revision order (revisions are never negative).
    pub fn to_key(self) -> [u8; REVISION_KEY_LEN] {
        let mut out = [0u8; REVISION_KEY_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// The inverse of [`Revision::to_key`]; `None` for a key of the wrong length.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let main: [u8; 8] = key.get(..8)?.try_into().ok()?;
        let sub: [u8; 8] = key.get(8..REVISION_KEY_LEN)?.try_into().ok()?;
        (key.len() == REVISION_KEY_LEN).then(|| Self {
            main: i64::from_be_bytes(main),
            sub: i64::from_be_bytes(sub),
        })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_revision_order() {
        let a = Revision::new(1, 5);
        let b = Revision::new(2, 0);
        let c = Revision::new(2, 1);
        assert!(a.to_key() < b.to_key());
        assert!(b.to_key() < c.to_key());
        assert!(Revision::new(255, 0).to_key() < Revision::new(256, 0).to_key());
    }

    #[test]
    fn key_round_trips() {
        let r = Revision::new(123_456_789, 42);
        assert_eq!(Revision::from_key(&r.to_key()), Some(r));
        assert_eq!(Revision::from_key(b"short"), None);
        assert_eq!(Revision::from_key(&[0u8; 17]), None);
    }
}
