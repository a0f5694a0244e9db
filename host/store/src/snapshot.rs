//! Whole-store snapshots, for Raft to send a lagging member and to install on it: every record
//! and meta value at one consistent point, in a framed stream with a SHA-256 trailer.
//!
//! Format: `CNCLSNAP` + version (u32 BE), then frames `[tag u8][len u32 BE][payload]`: tag 1 a
//! meta entry (key length u16 BE, key, value), tag 2 a record (16-byte revision key, record),
//! tag 0 the end (SHA-256 of every byte before the end frame).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use fjall::Readable;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::alarm::META_ALARM_PREFIX;
use crate::backend::{
    Backend, META_APPLIED, META_INSTALLING, META_RAFT_STATE, META_REVISION, pair_bytes,
};
use crate::error::{Result, StoreError};
use crate::etcd_db::{etcd_frames, looks_like_bolt};
use crate::revision::{REVISION_KEY_LEN, Revision};
use crate::store::{Store, failed, load_state};

const MAGIC: &[u8; 8] = b"CNCLSNAP";
const VERSION: u32 = 1;
const TAG_END: u8 = 0;
const TAG_META: u8 = 1;
const TAG_RECORD: u8 = 2;
/// The largest frame a reader accepts: a record holds at most one request's worth of value.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Records per write batch while installing.
const INSTALL_CHUNK: usize = 10_000;

/// What a snapshot holds, in figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store revision it captures.
    pub revision: i64,
    /// The applied log position (index, term) it captures.
    pub applied: (u64, u64),
    /// The consensus layer's blob (see [`Store::apply_with_state`]).
    pub raft_state: Option<Vec<u8>>,
    pub records: u64,
    /// Bytes written or read, trailer included.
    pub bytes: u64,
    /// The SHA-256 at the end of the snapshot.
    pub checksum: Vec<u8>,
}

/// Writes frames and hashes everything it writes.
struct HashingWriter<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    bytes: u64,
}

impl HashingWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes).map_err(io)
    }

    fn frame(&mut self, tag: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| StoreError::Corrupt("frame too large".into()))?;
        self.put(&[tag])?;
        self.put(&len.to_be_bytes())?;
        for p in parts {
            self.put(p)?;
        }
        Ok(())
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("snapshot stream: {e}"))
}

impl Store {
    /// Writes a snapshot of the whole store as of now to `out`.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> Result<SnapshotInfo> {
        // Batches commit under the write lock, so under the read lock the disk view is whole.
        let view = {
            let g = self.state.read();
            if g.failed {
                return Err(failed());
            }
            self.backend.db.snapshot()
        };
        let mut w = HashingWriter {
            out,
            hash: Sha256::new(),
            bytes: 0,
        };
        w.put(MAGIC)?;
        w.put(&VERSION.to_be_bytes())?;
        let mut info = SnapshotInfo::default();
        for guard in view.iter(&self.backend.meta) {
            let (key, value) = guard.into_inner()?;
            let key_len = u16::try_from(key.len())
                .map_err(|_| StoreError::Corrupt("meta key too long".into()))?;
            w.frame(TAG_META, &[&key_len.to_be_bytes(), &key, &value])?;
            note_meta(&mut info, &key, &value);
        }
        for guard in view.iter(&self.backend.kv) {
            let (key, value) = guard.into_inner()?;
            w.frame(TAG_RECORD, &[&key, &value])?;
            info.records += 1;
        }
        let digest = w.hash.clone().finalize();
        w.put(&[TAG_END])?;
        w.put(&(digest.len() as u32).to_be_bytes())?;
        w.put(&digest)?;
        info.bytes = w.bytes;
        info.checksum = digest.to_vec();
        Ok(info)
    }

    /// Replaces the whole store with the snapshot read from `input`. Readers wait meanwhile.
    /// On a bad stream the store is left unusable (and empty at the next open): the caller,
    /// Raft, then has a member without state and fetches the snapshot again.
    pub fn install_snapshot(&self, input: &mut dyn Read) -> Result<SnapshotInfo> {
        self.install_from(|each| read_frames(input, each))
    }

    /// Replaces the whole store with the entries `source` hands its callback; see
    /// [`Store::install_snapshot`].
    fn install_from(
        &self,
        source: impl FnOnce(&mut dyn FnMut(Frame<'_>) -> Result<()>) -> Result<SnapshotInfo>,
    ) -> Result<SnapshotInfo> {
        let mut g = self.state.write();
        if g.failed {
            return Err(failed());
        }
        // Physical compaction works on records this install replaces: let it finish first.
        self.compactor.wait_idle();
        let outcome = install(&self.backend, source);
        let info = match outcome {
            Ok(info) => info,
            Err(e) => {
                g.failed = true;
                tracing::error!(error = %e, "snapshot install failed; the store stops serving");
                return Err(e);
            }
        };
        let (state, pending, _) = load_state(&self.backend)?;
        self.visible.store(state.current, Ordering::Release);
        g.state = state;
        self.refresh_views(&g.state);
        drop(g);
        if let Some(job) = pending {
            self.compactor.schedule(job);
        }
        info!(
            revision = info.revision,
            records = info.records,
            "snapshot installed"
        );
        Ok(info)
    }
}

/// Backup files are shaped as etcd's snapshot files, which etcdctl checks on `snapshot save`:
/// the snapshot padded with zeros to a multiple of [`BACKUP_ALIGN`] bytes, then the SHA-256
/// of all of that.
const BACKUP_ALIGN: u64 = 512;
const SHA256_LEN: u64 = 32;

/// Hashes what passes through to `out`.
struct Envelope<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    bytes: u64,
}

impl Write for Envelope<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Store {
    /// Writes a backup of the whole store as of now: a snapshot in etcd's file envelope.
    /// `bytes` in the answer counts the whole file.
    pub fn write_backup(&self, out: &mut dyn Write) -> Result<SnapshotInfo> {
        let mut env = Envelope {
            out,
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut info = self.write_snapshot(&mut env)?;
        let padding = (BACKUP_ALIGN - env.bytes % BACKUP_ALIGN) % BACKUP_ALIGN;
        env.write_all(&vec![0u8; padding as usize]).map_err(io)?;
        let digest = env.hash.clone().finalize();
        env.out.write_all(&digest).map_err(io)?;
        info.bytes = env.bytes + SHA256_LEN;
        Ok(info)
    }

    /// Makes a new store in `dir`, which must not hold one, from the backup file `file`:
    /// etcd's `snapshot restore`. It has every key with its history, the leases, the plugins,
    /// users and roles, but not the consensus layer's position and membership, nor the
    /// alarms, which name the old cluster's members: a member started on it forms a new
    /// cluster from its flags. A bad file leaves no store behind. `file` is a conclave
    /// backup, or etcd's: a v3 snapshot or a data dir's `member/snap/db` (see `etcd_db`).
    pub fn restore(dir: &Path, file: &Path) -> Result<SnapshotInfo> {
        let occupied = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io(e)),
        };
        if occupied {
            return Err(StoreError::Exists(dir.display().to_string()));
        }
        let outcome = (|| {
            let store = Store::open(dir)?;
            let info = if looks_like_bolt(file).map_err(io)? {
                store.install_from(|each| etcd_frames(file, each))?
            } else {
                let size = check_envelope(file)?;
                let mut input = std::io::BufReader::new(std::fs::File::open(file).map_err(io)?);
                let mut info = store.install_snapshot(&mut input)?;
                info.bytes = size;
                info
            };
            let mut g = store.state.write();
            let mut batch = store.backend.db.batch();
            batch.remove(&store.backend.meta, META_RAFT_STATE);
            batch.insert(&store.backend.meta, META_APPLIED, pair_bytes(0, 0).to_vec());
            for guard in store.backend.meta.prefix(META_ALARM_PREFIX) {
                batch.remove(&store.backend.meta, guard.key()?);
            }
            batch.commit()?;
            store.backend.persist()?;
            g.state.applied = (0, 0);
            g.state.alarms = Default::default();
            store.refresh_views(&g.state);
            Ok(info)
        })();
        if outcome.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        outcome
    }
}

/// Reads a whole backup file and checks it (the envelope's SHA-256, then the snapshot's own
/// format, order and checksum) without installing it: what `snapshot status` reports.
/// `bytes` in the answer counts the whole file.
pub fn inspect_backup(file: &Path) -> Result<SnapshotInfo> {
    if looks_like_bolt(file).map_err(io)? {
        return etcd_frames(file, &mut |_| Ok(()));
    }
    let size = check_envelope(file)?;
    let mut input = std::io::BufReader::new(std::fs::File::open(file).map_err(io)?);
    let mut info = read_frames(&mut input, &mut |_| Ok(()))?;
    info.bytes = size;
    Ok(info)
}

/// Reads a snapshot stream (the format above, without a backup file's envelope) to its end
/// and checks it, installing nothing: what a fuzzer feeds hostile bytes to.
pub fn inspect_snapshot(input: &mut dyn Read) -> Result<SnapshotInfo> {
    read_frames(input, &mut |_| Ok(()))
}

/// Checks a backup file's length and closing SHA-256; answers its size.
fn check_envelope(file: &Path) -> Result<u64> {
    let mut input = std::fs::File::open(file).map_err(io)?;
    let size = input.metadata().map_err(io)?.len();
    if size % BACKUP_ALIGN != SHA256_LEN {
        return Err(StoreError::Corrupt(format!(
            "{} is not a snapshot file: no SHA-256 at its end ({size} bytes)",
            file.display()
        )));
    }
    let mut body = (&mut input).take(size - SHA256_LEN);
    let mut hash = Sha256::new();
    std::io::copy(&mut body, &mut hash).map_err(io)?;
    let mut digest = [0u8; SHA256_LEN as usize];
    input.read_exact(&mut digest).map_err(io)?;
    if digest.as_slice() != hash.finalize().as_slice() {
        return Err(StoreError::Corrupt(format!(
            "{}: checksum mismatch",
            file.display()
        )));
    }
    Ok(size)
}

fn note_meta(info: &mut SnapshotInfo, key: &[u8], value: &[u8]) {
    let be8 = |v: &[u8]| <[u8; 8]>::try_from(v.get(..8)?).ok();
    match key {
        k if k == META_REVISION => {
            if let Some(b) = be8(value) {
                info.revision = i64::from_be_bytes(b);
            }
        }
        k if k == META_APPLIED => {
            if let (Some(a), Some(b)) = (be8(value), value.get(8..).and_then(be8)) {
                info.applied = (u64::from_be_bytes(a), u64::from_be_bytes(b));
            }
        }
        k if k == META_RAFT_STATE => info.raft_state = Some(value.to_vec()),
        _ => {}
    }
}

/// Empties both keyspaces.
pub(crate) fn clear(backend: &Backend) -> Result<()> {
    backend.kv.clear()?;
    backend.meta.clear()?;
    backend.persist()
}

struct HashingReader<'a> {
    input: &'a mut dyn Read,
    hash: Sha256,
    bytes: u64,
}

impl HashingReader<'_> {
    fn exact(&mut self, buf: &mut [u8], hashed: bool) -> Result<()> {
        self.input.read_exact(buf).map_err(io)?;
        if hashed {
            self.hash.update(&*buf);
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// `len` hashed bytes, read in pieces so that the buffer grows with what arrives rather
    /// than with what a frame header claims.
    fn exact_vec(&mut self, len: usize) -> Result<Vec<u8>> {
        const PIECE: usize = 1 << 20;
        let mut out = Vec::with_capacity(len.min(PIECE));
        while out.len() < len {
            let start = out.len();
            out.resize(start + (len - start).min(PIECE), 0);
            self.exact(&mut out[start..], true)?;
        }
        Ok(out)
    }
}

fn install(
    backend: &Backend,
    source: impl FnOnce(&mut dyn FnMut(Frame<'_>) -> Result<()>) -> Result<SnapshotInfo>,
) -> Result<SnapshotInfo> {
    // Mark first, so that a crash half-way leaves a store that knows it is half-written.
    backend.meta.insert(META_INSTALLING, [1u8])?;
    backend.persist()?;
    backend.kv.clear()?;
    for guard in backend.meta.iter() {
        let key = guard.key()?;
        if key.as_ref() != META_INSTALLING {
            backend.meta.remove(key)?;
        }
    }
    let mut batch = backend.db.batch();
    let info = source(&mut |frame| {
        match frame {
            Frame::Meta(key, value) => {
                batch.insert(&backend.meta, key.to_vec(), value.to_vec());
            }
            Frame::Record(key, value) => {
                batch.insert(&backend.kv, key.to_vec(), value.to_vec());
                if batch.len() >= INSTALL_CHUNK {
                    std::mem::replace(&mut batch, backend.db.batch()).commit()?;
                }
            }
        }
        Ok(())
    })?;
    batch.remove(&backend.meta, META_INSTALLING);
    batch.commit()?;
    backend.persist()?;
    Ok(info)
}

/// One entry of a snapshot.
pub(crate) enum Frame<'a> {
    Meta(&'a [u8], &'a [u8]),
    /// A record: its revision key and its bytes.
    Record(&'a [u8], &'a [u8]),
}

/// Reads frames up to the end frame, handing each to `each`, and checks the trailer.
fn read_frames(
    input: &mut dyn Read,
    each: &mut dyn FnMut(Frame<'_>) -> Result<()>,
) -> Result<SnapshotInfo> {
    let mut r = HashingReader {
        input,
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut header = [0u8; 12];
    r.exact(&mut header, true)?;
    if &header[..8] != MAGIC {
        return Err(StoreError::Corrupt("not a conclave snapshot".into()));
    }
    let version = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(StoreError::Corrupt(format!(
            "snapshot format version {version}; this build reads {VERSION}"
        )));
    }
    let mut info = SnapshotInfo::default();
    let mut last_rev: Option<Revision> = None;
    loop {
        let mut head = [0u8; 5];
        // The tag is hashed only once we know it is not the end frame's.
        r.input.read_exact(&mut head[..1]).map_err(io)?;
        if head[0] == TAG_END {
            let expected = r.hash.clone().finalize();
            let mut len = [0u8; 4];
            r.exact(&mut len, false)?;
            // Checked before anything is allocated: the length is the file's word.
            if u32::from_be_bytes(len) as usize != expected.len() {
                return Err(StoreError::Corrupt(
                    "snapshot trailer has the wrong length".into(),
                ));
            }
            let mut digest = vec![0u8; expected.len()];
            r.exact(&mut digest, false)?;
            if digest.as_slice() != expected.as_slice() {
                return Err(StoreError::Corrupt("snapshot checksum mismatch".into()));
            }
            info.checksum = digest;
            break;
        }
        r.hash.update(&head[..1]);
        r.bytes += 1;
        r.exact(&mut head[1..], true)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(StoreError::Corrupt(format!(
                "snapshot frame of {len} bytes"
            )));
        }
        let payload = r.exact_vec(len)?;
        match head[0] {
            TAG_META => {
                let (klen, rest) = payload
                    .split_first_chunk::<2>()
                    .ok_or_else(|| StoreError::Corrupt("short meta frame".into()))?;
                let klen = u16::from_be_bytes(*klen) as usize;
                if rest.len() < klen {
                    return Err(StoreError::Corrupt("short meta frame".into()));
                }
                let (key, value) = rest.split_at(klen);
                if key == META_INSTALLING {
                    continue;
                }
                note_meta(&mut info, key, value);
                each(Frame::Meta(key, value))?;
            }
            TAG_RECORD => {
                if payload.len() < REVISION_KEY_LEN {
                    return Err(StoreError::Corrupt("short record frame".into()));
                }
                let (key, value) = payload.split_at(REVISION_KEY_LEN);
                let rev = Revision::from_key(key)
                    .ok_or_else(|| StoreError::Corrupt("bad revision key".into()))?;
                if last_rev.is_some_and(|l| l >= rev) {
                    return Err(StoreError::Corrupt("snapshot records out of order".into()));
                }
                last_rev = Some(rev);
                info.records += 1;
                each(Frame::Record(key, value))?;
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown snapshot frame {other}"
                )));
            }
        }
    }
    info.bytes = r.bytes;
    Ok(info)
}
