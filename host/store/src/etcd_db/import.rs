//! etcd's data, read into conclave's: an etcd v3 snapshot (`etcdctl snapshot save`) or an
//! etcd data dir's `member/snap/db`, turned into the entries of a conclave snapshot, which
//! the store installs as it installs its own.

use std::io::Read;
use std::path::Path;

use conclave_proto::authpb::{Role, User};
use conclave_proto::leasepb::Lease;
use conclave_proto::mvccpb::KeyValue;
use prost::Message;
use sha2::{Digest, Sha256};

use super::bolt_reader::BoltReader;
use super::export::carried_verbatim;
use super::*;
use crate::auth::AuthEntry;
use crate::backend::{META_COMPACT_DONE, META_COMPACTED, META_REVISION, Record};
use crate::error::{Result, StoreError};
use crate::lease::{encode_lease, lease_key};
use crate::snapshot::{Frame, SnapshotInfo};

/// etcd appends this many bytes of SHA-256 to a snapshot, making its size this much past a
/// multiple of 512 (bbolt files are whole pages).
const SHA256_LEN: u64 = 32;
const ALIGN: u64 = 512;

fn bad(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("etcd snapshot: {what}"))
}

/// Checks the SHA-256 etcd appends to a snapshot, if the file has one (a data dir's `db`
/// has none). Answers the file's size and the checksum to report: the trailer, or the
/// SHA-256 of the whole file when it has none.
fn check_trailer(path: &Path) -> Result<(u64, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let has_trailer = size % ALIGN == SHA256_LEN;
    let body = if has_trailer { size - SHA256_LEN } else { size };
    let mut hash = Sha256::new();
    std::io::copy(&mut (&mut file).take(body), &mut hash)?;
    let digest = hash.finalize().to_vec();
    if has_trailer {
        let mut trailer = vec![0u8; SHA256_LEN as usize];
        file.read_exact(&mut trailer)?;
        if trailer != digest {
            return Err(bad(format!("{}: checksum mismatch", path.display())));
        }
    }
    Ok((size, digest))
}

/// Reads the etcd file at `path` and hands `each` the entries of the conclave store it
/// holds: every record with its revision, the compaction point, leases, users and roles,
/// and what a conclave-made file carries besides. Everything is checked as it is read; an
/// error stops the reading.
pub(crate) fn etcd_frames(
    path: &Path,
    each: &mut dyn FnMut(Frame<'_>) -> Result<()>,
) -> Result<SnapshotInfo> {
    let (bytes, checksum) = check_trailer(path)?;
    let db = BoltReader::open(path)?;
    let mut info = SnapshotInfo {
        bytes,
        checksum,
        ..Default::default()
    };

    let mut scheduled = 0i64;
    let mut finished = 0i64;
    db.for_each(META, &mut |key, value| {
        let rev = || {
            parse_etcd_rev_key(value)
                .map(|(r, _)| r.main)
                .ok_or_else(|| {
                    bad(format!(
                        "meta {}: not a revision",
                        String::from_utf8_lossy(key)
                    ))
                })
        };
        if key == SCHEDULED_COMPACT {
            scheduled = rev()?;
        } else if key == FINISHED_COMPACT {
            finished = rev()?;
        }
        Ok(())
    })?;
    let compacted = scheduled.max(finished);

    let mut last: Option<Revision> = None;
    let found = db.for_each(KEY, &mut |key, value| {
        let (rev, tombstone) = parse_etcd_rev_key(key)
            .ok_or_else(|| bad(format!("key bucket entry {key:?} is not a revision")))?;
        if last.is_some_and(|l| l >= rev) {
            return Err(bad(format!("revision {rev} twice or out of order")));
        }
        last = Some(rev);
        let kv = KeyValue::decode(value).map_err(|e| bad(format!("revision {rev}: {e}")))?;
        let kv = if tombstone {
            // conclave's tombstones say when the key was deleted.
            KeyValue {
                key: kv.key,
                mod_revision: rev.main,
                ..Default::default()
            }
        } else {
            kv
        };
        let record = Record {
            tombstone,
            time: 0,
            kv,
        };
        info.records += 1;
        each(Frame::Record(&rev.to_key(), &record.encode()))
    })?;
    if !found {
        return Err(bad("no key bucket: not an etcd v3 backend"));
    }
    info.revision = last.map_or(1, |r| r.main).max(compacted).max(1);
    each(Frame::Meta(META_REVISION, &info.revision.to_be_bytes()))?;
    if compacted > 0 {
        each(Frame::Meta(META_COMPACTED, &compacted.to_be_bytes()))?;
        each(Frame::Meta(META_COMPACT_DONE, &finished.to_be_bytes()))?;
    }

    db.for_each(LEASE, &mut |key, value| {
        let lease = Lease::decode(value).map_err(|e| bad(format!("lease {key:?}: {e}")))?;
        let id: [u8; 8] = key
            .try_into()
            .map_err(|_| bad(format!("lease key {key:?} is not 8 bytes")))?;
        if i64::from_be_bytes(id) != lease.id || lease.id <= 0 {
            return Err(bad(format!("lease {} under the key of another", lease.id)));
        }
        each(Frame::Meta(
            &lease_key(lease.id),
            &encode_lease(lease.ttl, lease.remaining_ttl),
        ))
    })?;

    db.for_each(AUTH, &mut |key, value| {
        if key == AUTH_ENABLED {
            each(Frame::Meta(
                &AuthEntry::Enabled.key(),
                &[u8::from(value == [1])],
            ))?;
        } else if key == AUTH_REVISION {
            let revision: [u8; 8] = value
                .try_into()
                .map_err(|_| bad("authRevision is not 8 bytes"))?;
            each(Frame::Meta(&AuthEntry::Revision.key(), &revision))?;
        }
        Ok(())
    })?;
    db.for_each(AUTH_USERS, &mut |name, value| {
        User::decode(value).map_err(|e| bad(format!("user {name:?}: {e}")))?;
        each(Frame::Meta(&AuthEntry::User(name).key(), value))
    })?;
    db.for_each(AUTH_ROLES, &mut |name, value| {
        Role::decode(value).map_err(|e| bad(format!("role {name:?}: {e}")))?;
        each(Frame::Meta(&AuthEntry::Role(name).key(), value))
    })?;

    // Only what the export put there: a file must not set conclave's own bookkeeping.
    let mut token_key = false;
    db.for_each(CONCLAVE, &mut |key, value| {
        if carried_verbatim(key) {
            token_key |= key == AuthEntry::TokenKey.key();
            each(Frame::Meta(key, value))?;
        }
        Ok(())
    })?;
    if !token_key {
        // etcd's tokens are not conclave's: make the key conclave signs its tokens with, as
        // `auth enable` would. Without one, auth could not issue a token.
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| bad(format!("no randomness: {e}")))?;
        each(Frame::Meta(&AuthEntry::TokenKey.key(), &key))?;
    }
    Ok(info)
}
