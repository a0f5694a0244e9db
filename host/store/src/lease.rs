//! Leases as the replicated state holds them: which exist, their granted TTL, the remaining
//! TTL last checkpointed by a leader, and the keys attached to each. Time is not here: when a
//! lease expires is the leader's business (the server's lessor), which revokes it through
//! Raft. On disk each lease is a meta entry `lease/<id>` (so snapshots carry them as they
//! carry every meta entry); attachments are rebuilt from the records' `lease` fields.

use std::collections::{BTreeSet, HashMap};

/// Prefix of the meta keys that hold leases.
pub(crate) const META_LEASE_PREFIX: &[u8] = b"lease/";

/// One lease, for readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// The TTL it was granted, in seconds.
    pub ttl: i64,
    /// The remaining TTL a leader last checkpointed, in seconds; 0 if none has.
    pub remaining: i64,
    /// The keys attached to it, in order.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Lease {
    ttl: i64,
    remaining: i64,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Default)]
pub(crate) struct Leases {
    leases: HashMap<i64, Lease>,
    /// Each key's lease, for keys that have one.
    key_lease: HashMap<Vec<u8>, i64>,
}

impl Leases {
    pub fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn grant(&mut self, id: i64, ttl: i64, remaining: i64) {
        let lease = self.leases.entry(id).or_default();
        lease.ttl = ttl;
        lease.remaining = remaining;
    }

    /// Removes the lease; returns the keys that were attached.
    pub fn revoke(&mut self, id: i64) -> Option<BTreeSet<Vec<u8>>> {
        let lease = self.leases.remove(&id)?;
        for key in &lease.keys {
            self.key_lease.remove(key);
        }
        Some(lease.keys)
    }

    /// Records a remaining TTL; false for an unknown lease.
    pub fn checkpoint(&mut self, id: i64, remaining: i64) -> bool {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                lease.remaining = remaining;
                true
            }
            None => false,
        }
    }

    /// Attaches `key` to `lease` (0: to none), detaching it from the one it had.
    pub fn attach(&mut self, key: &[u8], lease: i64) {
        if self.key_lease.get(key) == Some(&lease) {
            return;
        }
        self.detach(key);
        if lease == 0 {
            return;
        }
        // A record naming a lease that is gone (revoked while it was written back from disk)
        // attaches to nothing.
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.to_vec());
            self.key_lease.insert(key.to_vec(), lease);
        }
    }

    pub fn detach(&mut self, key: &[u8]) {
        if let Some(lease) = self.key_lease.remove(key)
            && let Some(l) = self.leases.get_mut(&lease)
        {
            l.keys.remove(key);
        }
    }

    /// A lease's granted TTL, without copying its keys.
    pub fn ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).map(|l| l.ttl)
    }

    pub fn get(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.get(&id).map(|l| LeaseInfo {
            id,
            ttl: l.ttl,
            remaining: l.remaining,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease, without their keys, by ID.
    pub fn all(&self) -> Vec<LeaseInfo> {
        let mut all: Vec<LeaseInfo> = self
            .leases
            .iter()
            .map(|(&id, l)| LeaseInfo {
                id,
                ttl: l.ttl,
                remaining: l.remaining,
                keys: Vec::new(),
            })
            .collect();
        all.sort_by_key(|l| l.id);
        all
    }
}

pub(crate) fn lease_key(id: i64) -> Vec<u8> {
    let mut key = META_LEASE_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// A lease's meta value: TTL and remaining TTL, both i64 big-endian.
pub(crate) fn encode_lease(ttl: i64, remaining: i64) -> Vec<u8> {
    let mut value = ttl.to_be_bytes().to_vec();
    value.extend_from_slice(&remaining.to_be_bytes());
    value
}

/// The (id, ttl, remaining) of a lease meta entry; None for a malformed one.
pub(crate) fn decode_lease(key: &[u8], value: &[u8]) -> Option<(i64, i64, i64)> {
    let id = key.strip_prefix(META_LEASE_PREFIX)?;
    let id = i64::from_be_bytes(id.try_into().ok()?);
    let ttl = i64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let remaining = i64::from_be_bytes(value.get(8..16)?.try_into().ok()?);
    Some((id, ttl, remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_between_leases_and_leave_with_revoke() {
        let mut l = Leases::default();
        l.grant(1, 10, 0);
        l.grant(2, 20, 0);
        l.attach(b"a", 1);
        l.attach(b"b", 1);
        l.attach(b"a", 2);
        assert_eq!(l.get(1).unwrap().keys, vec![b"b".to_vec()]);
        assert_eq!(l.get(2).unwrap().keys, vec![b"a".to_vec()]);
        l.attach(b"b", 0);
        assert!(l.get(1).unwrap().keys.is_empty());
        let gone = l.revoke(2).unwrap();
        assert_eq!(gone.into_iter().collect::<Vec<_>>(), vec![b"a".to_vec()]);
        assert!(!l.exists(2));
        // The key no longer belongs to any lease.
        l.attach(b"a", 1);
        assert_eq!(l.get(1).unwrap().keys, vec![b"a".to_vec()]);
    }

    #[test]
    fn meta_entries_round_trip() {
        let key = lease_key(0x1234);
        assert_eq!(
            decode_lease(&key, &encode_lease(30, 12)),
            Some((0x1234, 30, 12))
        );
        assert_eq!(decode_lease(b"lease/x", &encode_lease(1, 1)), None);
    }
}
