//! The store as of one moment, written as etcd's snapshot file: a bbolt database (made with
//! bbolt-rs, whose files etcd's bbolt reads) with etcd's buckets, then the SHA-256 of it,
//! which `etcdctl snapshot restore` checks.

use std::io::{Read, Write};
use std::path::Path;

use bbolt_rs::{Bolt, BucketRwApi, DbApi, DbRwAPI, TxRwApi, TxRwRefApi};
use conclave_proto::authpb::{Role, User};
use conclave_proto::leasepb::Lease;
use conclave_proto::mvccpb::KeyValue;
use fjall::Readable;
use prost::Message;
use sha2::{Digest, Sha256};

use super::*;
use crate::auth::{AuthEntry, auth_entry};
use crate::backend::{
    META_APPLIED, META_COMPACT_DONE, META_COMPACTED, META_REVISION, META_TIME, Record,
};
use crate::error::{Result, StoreError};
use crate::lease::decode_lease;
use crate::snapshot::SnapshotInfo;
use crate::store::{Store, failed};

/// Puts per bbolt write transaction: bounds what one transaction holds in memory.
const CHUNK: usize = 10_000;
/// etcd fills the key bucket's pages to 90%: revisions only ever append.
const KEY_FILL: f64 = 0.9;

/// Meta entries that etcd has no place for and that go, verbatim, to the `conclave` bucket.
pub(super) fn carried_verbatim(key: &[u8]) -> bool {
    key.starts_with(crate::plugin::META_PLUGIN_PREFIX)
        || key == META_TIME
        || matches!(auth_entry(key), Some(AuthEntry::TokenKey))
}

impl Store {
    /// Writes the whole store as of now to `path` (which must not exist) in etcd's snapshot
    /// format. `bytes` and `checksum` in the answer are the whole file's and its trailer's.
    pub fn write_etcd_snapshot(&self, path: &Path) -> Result<SnapshotInfo> {
        let view = {
            let g = self.state.read();
            if g.failed {
                return Err(failed());
            }
            self.backend.db.snapshot()
        };
        let mut info = SnapshotInfo::default();
        let mut db = Bolt::open(path)?;
        let outcome = (|| {
            let mut tx = db.begin_rw()?;
            for name in [
                KEY,
                META,
                LEASE,
                AUTH,
                AUTH_USERS,
                AUTH_ROLES,
                MEMBERS,
                MEMBERS_REMOVED,
            ] {
                tx.create_bucket(name)?;
            }
            tx.create_bucket(CLUSTER)?
                .put(CLUSTER_VERSION, CLUSTER_VERSION_VALUE)?;
            tx.create_bucket(CONCLAVE)?;
            tx.commit()?;

            // Meta first: it is small, and one transaction holds it.
            let mut tx = db.begin_rw()?;
            let mut auth_enabled = false;
            let mut auth_revision = 0u64;
            for guard in view.iter(&self.backend.meta) {
                let (key, value) = guard.into_inner()?;
                let key = key.as_ref();
                if key == META_APPLIED {
                    info.applied = (be_u64(&value, 0), be_u64(&value, 8));
                    tx.bucket_mut(META)
                        .ok_or_else(missing)?
                        .put(CONSISTENT_INDEX, info.applied.0.to_be_bytes())?;
                } else if key == META_REVISION {
                    info.revision = be_u64(&value, 0) as i64;
                } else if key == META_COMPACTED || key == META_COMPACT_DONE {
                    let rev = i64::from_be_bytes(value.as_ref().try_into().map_err(|_| {
                        StoreError::Corrupt("compacted revision is not 8 bytes".into())
                    })?);
                    let name = if key == META_COMPACTED {
                        SCHEDULED_COMPACT
                    } else {
                        FINISHED_COMPACT
                    };
                    tx.bucket_mut(META).ok_or_else(missing)?.put(
                        name,
                        &etcd_rev_key(Revision::new(rev, 0), false)[..REV_BYTES],
                    )?;
                } else if let Some((id, ttl, remaining)) = decode_lease(key, &value) {
                    let lease = Lease {
                        id,
                        ttl,
                        remaining_ttl: remaining,
                    };
                    tx.bucket_mut(LEASE)
                        .ok_or_else(missing)?
                        .put(id.to_be_bytes(), lease.encode_to_vec())?;
                } else if carried_verbatim(key) {
                    tx.bucket_mut(CONCLAVE)
                        .ok_or_else(missing)?
                        .put(key, value.as_ref())?;
                } else if let Some(entry) = auth_entry(key) {
                    match entry {
                        AuthEntry::Enabled => auth_enabled = value.as_ref() == [1],
                        AuthEntry::Revision => auth_revision = be_u64(&value, 0),
                        AuthEntry::User(name) => {
                            // Checked here so that etcd is never handed a record it cannot read.
                            User::decode(value.as_ref()).map_err(bad_entry)?;
                            tx.bucket_mut(AUTH_USERS)
                                .ok_or_else(missing)?
                                .put(name, value.as_ref())?;
                        }
                        AuthEntry::Role(name) => {
                            Role::decode(value.as_ref()).map_err(bad_entry)?;
                            tx.bucket_mut(AUTH_ROLES)
                                .ok_or_else(missing)?
                                .put(name, value.as_ref())?;
                        }
                        AuthEntry::TokenKey => {}
                    }
                }
            }
            {
                let mut auth = tx.bucket_mut(AUTH).ok_or_else(missing)?;
                auth.put(AUTH_ENABLED, [u8::from(auth_enabled)])?;
                auth.put(AUTH_REVISION, auth_revision.to_be_bytes())?;
            }
            tx.commit()?;

            // Then the records, in revision order, a chunk per transaction.
            let mut records = view.iter(&self.backend.kv).peekable();
            while records.peek().is_some() {
                let mut tx = db.begin_rw()?;
                {
                    let mut bucket = tx.bucket_mut(KEY).ok_or_else(missing)?;
                    bucket.set_fill_percent(KEY_FILL);
                    for guard in records.by_ref().take(CHUNK) {
                        let (key, value) = guard.into_inner()?;
                        let rev = Revision::from_key(&key).ok_or_else(|| {
                            StoreError::Corrupt(format!("bad revision key {key:?}"))
                        })?;
                        let record = Record::decode(rev, &value)?;
                        let kv = if record.tombstone {
                            // etcd's tombstones hold the key alone.
                            KeyValue {
                                key: record.kv.key,
                                ..Default::default()
                            }
                        } else {
                            record.kv
                        };
                        bucket.put(etcd_rev_key(rev, record.tombstone), kv.encode_to_vec())?;
                        info.records += 1;
                    }
                }
                tx.commit()?;
            }
            Ok::<_, StoreError>(())
        })();
        db.close();
        outcome?;
        append_checksum(path, &mut info)?;
        Ok(info)
    }
}

/// Appends the SHA-256 of the file, as etcd's server does to the snapshots it sends.
fn append_checksum(path: &Path, info: &mut SnapshotInfo) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n as u64;
    }
    let digest = hash.finalize();
    file.write_all(&digest)?;
    file.sync_all()?;
    info.bytes = len + digest.len() as u64;
    info.checksum = digest.to_vec();
    Ok(())
}

/// The big-endian u64 at `at` in a meta value; 0 where the value is too short.
fn be_u64(value: &[u8], at: usize) -> u64 {
    value
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn missing() -> StoreError {
    StoreError::Corrupt("bbolt bucket vanished while writing".into())
}

fn bad_entry(e: prost::DecodeError) -> StoreError {
    StoreError::Corrupt(format!("auth entry: {e}"))
}
