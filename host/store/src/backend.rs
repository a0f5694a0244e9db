//! The on-disk layout, over one fjall database:
//! - `kv`: revision (16 bytes, big-endian main then sub) -> record (kind byte, the revision's
//!   commit time, mvccpb.KeyValue). A put's record is the whole KeyValue; a delete's record
//!   (a tombstone) holds the key.
//! - `meta`: the applied log position, current and compacted revisions, finished compaction,
//!   the newest revision's commit time; leases (`lease.rs`) and the plugin registry
//!   (`plugin.rs`) under their own prefixes.
//!
//! Every call here blocks on disk: callers keep them off async workers.

use std::path::Path;

use conclave_proto::mvccpb::KeyValue;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot};
use prost::Message;

use crate::error::{Result, StoreError};
use crate::revision::Revision;

const KIND_PUT: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
/// Set in the kind byte when 8 bytes of commit time (ms since the Unix epoch, i64 big-endian)
/// follow it. Every record written now has it; a record without it (written before commit
/// times existed) reads as time 0, so no format bump was needed.
const KIND_TIMED: u8 = 0x80;

pub(crate) const META_APPLIED: &[u8] = b"applied";
pub(crate) const META_REVISION: &[u8] = b"revision";
/// The commit time of the newest revision. Kept in meta, written with `revision` in every
/// batch, because the newest records themselves may be compacted away (a tombstone at the
/// compaction point), and the next revision's time must still not go below it.
pub(crate) const META_TIME: &[u8] = b"time";
pub(crate) const META_COMPACTED: &[u8] = b"compacted";
pub(crate) const META_COMPACT_DONE: &[u8] = b"compact_done";
pub(crate) const META_RAFT_STATE: &[u8] = b"raft_state";
/// Present while a snapshot is being installed: a store opened with it is half-written.
pub(crate) const META_INSTALLING: &[u8] = b"installing";

/// One stored change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub tombstone: bool,
    /// The commit time of the record's main revision, ms since the Unix epoch.
    pub time: i64,
    pub kv: KeyValue,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.kv.encoded_len());
        let kind = if self.tombstone {
            KIND_TOMBSTONE
        } else {
            KIND_PUT
        };
        out.push(kind | KIND_TIMED);
        out.extend_from_slice(&self.time.to_be_bytes());
        // Writing into a Vec cannot run out of room.
        let _ = self.kv.encode(&mut out);
        out
    }

    pub fn decode(rev: Revision, bytes: &[u8]) -> Result<Self> {
        let (kind, body) = bytes
            .split_first()
            .ok_or_else(|| StoreError::Corrupt(format!("empty record at revision {rev}")))?;
        let (time, body) = if kind & KIND_TIMED != 0 {
            let (time, body) = body.split_first_chunk::<8>().ok_or_else(|| {
                StoreError::Corrupt(format!("record without its time at revision {rev}"))
            })?;
            (i64::from_be_bytes(*time), body)
        } else {
            (0, body)
        };
        let tombstone = match *kind & !KIND_TIMED {
            KIND_PUT => false,
            KIND_TOMBSTONE => true,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown record kind {other} at revision {rev}"
                )));
            }
        };
        let kv = KeyValue::decode(body)
            .map_err(|e| StoreError::Corrupt(format!("record at revision {rev}: {e}")))?;
        Ok(Self {
            tombstone,
            time,
            kv,
        })
    }
}

/// The fjall database and its keyspaces.
/// Reads of at least this many records may scan instead of looking each one up.
const SCAN_MIN_RECORDS: usize = 32;
/// ...when the revision span is at most this many times the records wanted: beyond it, the
/// scan would read mostly records nobody asked for.
const SCAN_MAX_SPARSENESS: u64 = 4;
/// Memtable size of the `kv` keyspace (fjall's default is 64 MiB). The active memtable and the
/// sealed ones waiting for their flush all stay resident: at 64 MiB they held 120 MiB of a
/// member's memory under a put load. Keys are revisions, written in order, so a flush is
/// cheap and smaller tables cost little compaction. Set when the keyspace is created; an
/// existing store keeps the size it was made with.
const KV_MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Backend {
    pub db: Database,
    pub kv: Keyspace,
    pub meta: Keyspace,
}

impl Backend {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::builder(path).open()?;
        let kv = db.keyspace("kv", || {
            KeyspaceCreateOptions::default().max_memtable_size(KV_MEMTABLE_BYTES)
        })?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        Ok(Self { db, kv, meta })
    }

    /// The record at `rev` as the live tree has it.
    pub fn load_live(&self, rev: Revision) -> Result<Record> {
        Self::decode_found(rev, self.kv.get(rev.to_key())?)
    }

    /// The record at `rev` as `snapshot` has it.
    pub fn load_at(&self, snapshot: &Snapshot, rev: Revision) -> Result<Record> {
        Self::decode_found(rev, snapshot.get(&self.kv, rev.to_key())?)
    }

    /// The records at `revs` as `snapshot` has them, in the order asked. A large read whose
    /// revisions lie close together (keys written together, the usual big prefix) is one scan
    /// of the revision span instead of a point lookup per key: a lookup costs a few µs of
    /// memtable and table probing, a scanned record a fraction of that.
    pub fn load_many_at(&self, snapshot: &Snapshot, revs: &[Revision]) -> Result<Vec<KeyValue>> {
        if revs.len() < SCAN_MIN_RECORDS {
            return revs
                .iter()
                .map(|rev| Ok(self.load_at(snapshot, *rev)?.kv))
                .collect();
        }
        let mut wanted: Vec<(Revision, usize)> = revs
            .iter()
            .copied()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        wanted.sort_unstable();
        let (first, last) = (wanted[0].0, wanted[wanted.len() - 1].0);
        let span = u64::try_from(last.main.saturating_sub(first.main)).unwrap_or(u64::MAX);
        if span > (revs.len() as u64).saturating_mul(SCAN_MAX_SPARSENESS) {
            return revs
                .iter()
                .map(|rev| Ok(self.load_at(snapshot, *rev)?.kv))
                .collect();
        }
        let mut out: Vec<Option<KeyValue>> = vec![None; revs.len()];
        let mut next = wanted.iter().peekable();
        for guard in snapshot.range(&self.kv, first.to_key()..=last.to_key()) {
            let Some(&&(want, _)) = next.peek() else {
                break;
            };
            let (key, value) = guard.into_inner()?;
            let Some(rev) = Revision::from_key(&key) else {
                continue;
            };
            if rev < want {
                continue;
            }
            // Every wanted revision must be found, in order: a skipped one is missing.
            if rev > want {
                return Err(StoreError::Corrupt(format!(
                    "missing record at revision {want}"
                )));
            }
            let kv = Record::decode(rev, &value)?.kv;
            // The same revision may be asked for more than once (never by a plan, but cheap).
            while let Some(&&(w, i)) = next.peek() {
                if w != rev {
                    break;
                }
                out[i] = Some(kv.clone());
                next.next();
            }
        }
        if let Some((want, _)) = next.next() {
            return Err(StoreError::Corrupt(format!(
                "missing record at revision {want}"
            )));
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn decode_found(rev: Revision, bytes: Option<fjall::Slice>) -> Result<Record> {
        let bytes = bytes
            .ok_or_else(|| StoreError::Corrupt(format!("missing record at revision {rev}")))?;
        Record::decode(rev, &bytes)
    }

    pub fn meta_i64(&self, key: &[u8]) -> Result<Option<i64>> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt(format!("meta {} is not 8 bytes", show(key)))
                })?;
                Ok(Some(i64::from_be_bytes(bytes)))
            }
        }
    }

    pub fn meta_pair(&self, key: &[u8]) -> Result<Option<(u64, u64)>> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 16] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt(format!("meta {} is not 16 bytes", show(key)))
                })?;
                let (a, b) = bytes.split_at(8);
                let a: [u8; 8] = a.try_into().unwrap_or_default();
                let b: [u8; 8] = b.try_into().unwrap_or_default();
                Ok(Some((u64::from_be_bytes(a), u64::from_be_bytes(b))))
            }
        }
    }

    pub fn persist(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// The data's size, as etcd's dbSize reports its bbolt file: the keyspaces' tables plus
    /// what the memtables hold (journalled, not yet flushed); not the journal file itself,
    /// which fjall preallocates (64 MiB from the first write).
    pub fn disk_space(&self) -> u64 {
        self.kv.disk_space() + self.meta.disk_space() + self.db.write_buffer_size()
    }
}

pub(crate) fn pair_bytes(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let rec = Record {
            tombstone: false,
            time: 1_700_000_000_123,
            kv: KeyValue {
                key: b"k".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                value: b"v".to_vec(),
                lease: 0,
            },
        };
        let rev = Revision::new(3, 0);
        assert_eq!(Record::decode(rev, &rec.encode()).unwrap(), rec);
        assert!(Record::decode(rev, &[]).is_err());
        assert!(Record::decode(rev, &[9, 1, 2]).is_err());
        assert!(Record::decode(rev, &[0, 0xff, 0xff, 0xff]).is_err());
        // A timed kind byte without its 8 bytes of time.
        assert!(Record::decode(rev, &[0x80, 1, 2]).is_err());
        assert!(Record::decode(rev, &[0x89, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn records_from_before_commit_times_read_as_time_zero() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            mod_revision: 2,
            ..Default::default()
        };
        let mut old = vec![KIND_TOMBSTONE];
        old.extend_from_slice(&kv.encode_to_vec());
        let rec = Record::decode(Revision::new(2, 0), &old).unwrap();
        assert_eq!(
            rec,
            Record {
                tombstone: true,
                time: 0,
                kv
            }
        );
    }
}
