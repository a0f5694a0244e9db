//! A read-only walker over a bbolt file (etcd's backend), for importing etcd's data.
//!
//! Ours rather than bbolt-rs's: bbolt-rs 1.3 refuses files written without a freelist, and
//! etcd always writes them so (`NoFreelistSync`), so it cannot open a single etcd data dir or
//! snapshot. Reading needs none of what makes bbolt hard (freelist, rebalancing, mmap
//! growth): the newer of the two meta pages names the root bucket, and each bucket is a
//! B+tree of branch and leaf pages walked in key order. Every offset read from the file is
//! checked against the page it lies in; trees deeper than [`MAX_DEPTH`], pointing outside the
//! file or visiting a page twice (which would let a small file cost unbounded work) are
//! refused, so a damaged or hostile file gives an error, never a panic.
//!
//! Layout (bbolt 1.3, little-endian): a page starts with `id u64, flags u16, count u16,
//! overflow u32`; a meta page then holds `magic u32, version u32, page_size u32, flags u32,
//! root {pgid u64, sequence u64}, freelist u64, pgid u64, txid u64, checksum u64` (FNV-1a 64
//! of the fields before it); branch elements are `pos u32, ksize u32, pgid u64`, leaf
//! elements `flags u32, pos u32, ksize u32, vsize u32`, `pos` counted from the element. A
//! leaf element with flag 1 is a nested bucket whose value is `{root u64, sequence u64}`,
//! followed, when root is 0, by the bucket's one page inline.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Result, StoreError};

/// bbolt's magic number, in every meta page.
pub(crate) const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Deeper than any real tree (a 4 KiB-page tree of depth 20 would hold more than any disk).
const MAX_DEPTH: usize = 20;
const MIN_PAGE_SIZE: u32 = 512;
const MAX_PAGE_SIZE: u32 = 1 << 20;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("not a valid bbolt file: {what}"))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    let s = b.get(at..at + 2).ok_or_else(|| corrupt("short page"))?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let s = b.get(at..at + 4).ok_or_else(|| corrupt("short page"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    let s: [u8; 8] = b
        .get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt("short page"))?;
    Ok(u64::from_le_bytes(s))
}

/// FNV-1a, 64 bits: what bbolt checksums its meta pages with.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One meta page's fields that reading needs.
#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u32,
    root: u64,
    /// The high-water mark: pages at or above it are not part of the file's tree.
    pages: u64,
    txid: u64,
}

fn parse_meta(page: &[u8]) -> Result<Meta> {
    let m = page
        .get(PAGE_HEADER..PAGE_HEADER + 64)
        .ok_or_else(|| corrupt("short meta page"))?;
    if u16_at(page, 8)? & META == 0 {
        return Err(corrupt("meta page without the meta flag"));
    }
    if u32_at(m, 0)? != MAGIC {
        return Err(corrupt("bad magic number"));
    }
    if u32_at(m, 4)? != VERSION {
        return Err(corrupt(format!("version {}", u32_at(m, 4)?)));
    }
    if fnv1a64(&m[..56]) != u64_at(m, 56)? {
        return Err(corrupt("meta page checksum mismatch"));
    }
    Ok(Meta {
        page_size: u32_at(m, 8)?,
        root: u64_at(m, 16)?,
        pages: u64_at(m, 40)?,
        txid: u64_at(m, 48)?,
    })
}

/// Whether the file at `path` starts like a bbolt file (its first meta page's magic).
pub(crate) fn looks_like_bolt(path: &Path) -> std::io::Result<bool> {
    let file = File::open(path)?;
    let mut head = [0u8; PAGE_HEADER + 4];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => Ok(u32::from_le_bytes([head[16], head[17], head[18], head[19]]) == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// An open bbolt file, read page by page.
pub(crate) struct BoltReader {
    file: File,
    page_size: usize,
    meta: Meta,
}

/// What a walk hands each key and value of a bucket.
pub(crate) type EachEntry<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<()>;
/// What a walk hands each leaf element: key, value, element flags.
type EachElement<'a> = &'a mut dyn FnMut(&[u8], &[u8], u32) -> Result<()>;

/// Where a bucket's tree starts: a page of the file, or a page held inline in its parent.
enum Root {
    Page(u64),
    Inline(Vec<u8>),
}

impl BoltReader {
    /// Opens `path` and picks the newer valid meta page, as bbolt does.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
        let size = file.metadata().map_err(corrupt)?.len();
        let mut first = vec![0u8; 4096.min(size as usize)];
        file.read_exact_at(&mut first, 0).map_err(corrupt)?;
        // The first meta page tells the page size; if it is damaged, try bbolt's default.
        let page_size = match parse_meta(&first) {
            Ok(m) => m.page_size,
            Err(_) => 4096,
        };
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt(format!("page size {page_size}")));
        }
        let mut metas = Vec::new();
        for pgid in 0..2u64 {
            let mut page = vec![0u8; page_size as usize];
            if file
                .read_exact_at(&mut page, pgid * u64::from(page_size))
                .is_ok()
                && let Ok(meta) = parse_meta(&page)
                && meta.page_size == page_size
            {
                metas.push(meta);
            }
        }
        let meta = metas
            .into_iter()
            .max_by_key(|m| m.txid)
            .ok_or_else(|| corrupt("no valid meta page"))?;
        let reader = Self {
            file,
            page_size: page_size as usize,
            meta,
        };
        if meta.pages.saturating_mul(page_size as u64) > size {
            return Err(corrupt(format!(
                "{} pages of {page_size} bytes claimed, {size} bytes in the file",
                meta.pages
            )));
        }
        Ok(reader)
    }

    /// Reads page `pgid` with its overflow pages.
    fn page(&self, pgid: u64) -> Result<Vec<u8>> {
        if pgid < 2 || pgid >= self.meta.pages {
            return Err(corrupt(format!("page {pgid} outside the tree")));
        }
        let at = pgid * self.page_size as u64;
        let mut head = [0u8; PAGE_HEADER];
        self.file.read_exact_at(&mut head, at).map_err(corrupt)?;
        let overflow = u64::from(u32_at(&head, 12)?);
        if pgid + overflow >= self.meta.pages {
            return Err(corrupt(format!("page {pgid} overflows the file")));
        }
        let len = (overflow + 1) as usize * self.page_size;
        let mut page = vec![0u8; len];
        self.file.read_exact_at(&mut page, at).map_err(corrupt)?;
        Ok(page)
    }

    /// Hands every key and value of the top-level bucket `name` to `each`, in key order
    /// (nested buckets are skipped; etcd has none). False if there is no such bucket.
    pub fn for_each(&self, name: &[u8], each: EachEntry<'_>) -> Result<bool> {
        let mut root = None;
        let seen = &mut HashSet::new();
        self.walk(
            &Root::Page(self.meta.root),
            0,
            seen,
            &mut |key, value, flags| {
                if flags & BUCKET_LEAF_FLAG != 0 && key == name {
                    root = Some(bucket_root(value)?);
                }
                Ok(())
            },
        )?;
        let Some(root) = root else {
            return Ok(false);
        };
        self.walk(&root, 0, seen, &mut |key, value, flags| {
            if flags & BUCKET_LEAF_FLAG == 0 {
                each(key, value)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Visits the leaf elements under `root` in order: (key, value, element flags).
    fn walk(
        &self,
        root: &Root,
        depth: usize,
        seen: &mut HashSet<u64>,
        each: EachElement<'_>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt("tree too deep"));
        }
        let owned;
        let page: &[u8] = match root {
            Root::Page(pgid) => {
                if !seen.insert(*pgid) {
                    return Err(corrupt(format!("page {pgid} is in the tree twice")));
                }
                owned = self.page(*pgid)?;
                &owned
            }
            Root::Inline(bytes) => bytes,
        };
        let flags = u16_at(page, 8)?;
        let count = usize::from(u16_at(page, 10)?);
        for i in 0..count {
            let elem = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH != 0 {
                let child = u64_at(page, elem + 8)?;
                if let Root::Inline(_) = root {
                    return Err(corrupt("inline bucket with a branch page"));
                }
                self.walk(&Root::Page(child), depth + 1, seen, each)?;
            } else if flags & LEAF != 0 {
                let elem_flags = u32_at(page, elem)?;
                let pos = u32_at(page, elem + 4)? as usize;
                let ksize = u32_at(page, elem + 8)? as usize;
                let vsize = u32_at(page, elem + 12)? as usize;
                let key_at = elem
                    .checked_add(pos)
                    .ok_or_else(|| corrupt("element offset"))?;
                let key = slice(page, key_at, ksize)?;
                let value = slice(page, key_at + ksize, vsize)?;
                each(key, value, elem_flags)?;
            } else {
                return Err(corrupt(format!("page with flags {flags:#x} inside a tree")));
            }
        }
        Ok(())
    }
}

fn slice(page: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    at.checked_add(len)
        .and_then(|end| page.get(at..end))
        .ok_or_else(|| corrupt("element outside its page"))
}

/// A nested bucket's value: its root page, or its inline page.
fn bucket_root(value: &[u8]) -> Result<Root> {
    let root = u64_at(value, 0)?;
    if root != 0 {
        return Ok(Root::Page(root));
    }
    let inline = value
        .get(BUCKET_HEADER..)
        .filter(|p| p.len() >= PAGE_HEADER)
        .ok_or_else(|| corrupt("inline bucket without its page"))?;
    Ok(Root::Inline(inline.to_vec()))
}
