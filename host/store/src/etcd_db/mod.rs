//! etcd's snapshot format, both ways: a bbolt file laid out as etcd's backend, which
//! `etcdctl snapshot status` and `snapshot restore` read, and which conclave restores from.
//!
//! etcd's buckets and what conclave keeps in each:
//! - `key`: revision key (main u64 BE, `_`, sub u64 BE, and a trailing `t` for a tombstone)
//!   -> mvccpb.KeyValue (a tombstone's holds only the key). conclave's records, one for one.
//! - `meta`: `consistent_index` (u64 BE), `scheduledCompactRev` and `finishedCompactRev`
//!   (revision keys): conclave's compacted and physically compacted revisions.
//! - `lease`: id (i64 BE) -> leasepb.Lease.
//! - `auth`: `authEnabled` ([1] or [0]) and `authRevision` (u64 BE); `authUsers`: name ->
//!   authpb.User (bcrypt hash, as conclave keeps it); `authRoles`: name -> authpb.Role.
//! - `members`, `members_removed`, `cluster` (`clusterVersion`): membership, which a restore
//!   replaces from its flags in etcd as in conclave; written empty but for the version.
//! - `conclave` (ours; etcd keeps it untouched and ignores it): what etcd has no place for,
//!   the plugin registry, the token signing key and the newest commit time, verbatim.
//!
//! What does not travel: each record's commit time (plugin windows use them; an imported
//! record reads as time 0, "no leader's stamp", as records from before commit times did),
//! alarms and the Raft position, which a restore drops in either format.

mod bolt_reader;
mod export;
mod import;

pub(crate) use bolt_reader::looks_like_bolt;
pub(crate) use import::etcd_frames;

use crate::revision::Revision;

const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const AUTH: &[u8] = b"auth";
const AUTH_USERS: &[u8] = b"authUsers";
const AUTH_ROLES: &[u8] = b"authRoles";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const CLUSTER: &[u8] = b"cluster";
const CONCLAVE: &[u8] = b"conclave";

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// The cluster version a conclave-made file states: the one `/version` reports.
const CLUSTER_VERSION_VALUE: &[u8] = b"3.5.0";

/// Bytes of etcd's revision key, and with the tombstone mark.
const REV_BYTES: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

/// etcd's key for a revision: main, `_`, sub, and `t` when it is a tombstone.
fn etcd_rev_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(REV_BYTES + 1);
    key.extend_from_slice(&rev.main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        key.push(TOMBSTONE_MARK);
    }
    key
}

/// The inverse of [`etcd_rev_key`]: (revision, tombstone); None for anything else.
fn parse_etcd_rev_key(key: &[u8]) -> Option<(Revision, bool)> {
    let tombstone = match key.len() {
        REV_BYTES => false,
        n if n == REV_BYTES + 1 && key[REV_BYTES] == TOMBSTONE_MARK => true,
        _ => return None,
    };
    if key[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(key[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(key[9..REV_BYTES].try_into().ok()?);
    (main >= 0 && sub >= 0).then_some((Revision::new(main, sub), tombstone))
}
