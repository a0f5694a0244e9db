//! The plugin registry, part of the replicated state so that every member has every plugin:
//! each name's deployed versions and flush mark, and the components' bytes. Applying the
//! registry's commands (deploy, remove, rollback, flush) and reading it back.
//!
//! On disk, in `meta` (so snapshots carry it as they carry every meta entry):
//! - `plugin/<name>` -> `PluginRecord` (prost);
//! - `plugin-wasm/<hex SHA-256>` -> the component's bytes, once per digest however many
//!   versions use it, deleted once none does.
//!
//! The records are also held in memory (they are small; the components are not), so that a
//! command sees the batch's earlier commands without reading the disk.

use std::collections::BTreeMap;

use conclave_proto::conclavepb::{
    FlushMark, PluginChanged, PluginDeploy, PluginFlush, PluginRecord, PluginRemove, PluginRollback,
};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{RequestError, Result, StoreError};
use crate::store::{Store, failed};
use crate::write::{BatchWriter, WriteTxn};

/// Prefix of the meta keys that hold plugin records.
pub(crate) const META_PLUGIN_PREFIX: &[u8] = b"plugin/";
/// Prefix of the meta keys that hold components. Not under `plugin/`, so a scan of the
/// records never reads a component.
const META_WASM_PREFIX: &[u8] = b"plugin-wasm/";
/// Versions kept per name: the current one and a few to roll back to.
pub(crate) const MAX_VERSIONS: usize = 4;
/// The longest name: it becomes part of a meta key, which fjall and the snapshot format
/// bound (64 KiB); well below that, since nobody needs a longer one.
const MAX_NAME_BYTES: usize = 1024;

/// Every plugin record, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    records: BTreeMap<String, PluginRecord>,
}

impl Registry {
    /// Whether any version of any plugin uses the component with this digest.
    fn references(&self, digest: &[u8]) -> bool {
        self.records
            .values()
            .flat_map(|r| &r.versions)
            .any(|v| v.digest == digest)
    }

    /// Rebuild helper for start-up: one `plugin/` meta entry read back from disk.
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let name = key
            .strip_prefix(META_PLUGIN_PREFIX)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("bad plugin entry {key:?}")))?;
        let record = PluginRecord::decode(value)
            .map_err(|e| StoreError::Corrupt(format!("plugin {name}: {e}")))?;
        self.records.insert(name.to_string(), record);
        Ok(())
    }
}

fn record_key(name: &str) -> Vec<u8> {
    [META_PLUGIN_PREFIX, name.as_bytes()].concat()
}

fn wasm_key(digest: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = META_WASM_PREFIX.to_vec();
    for b in digest {
        key.push(HEX[usize::from(b >> 4)]);
        key.push(HEX[usize::from(b & 0xf)]);
    }
    key
}

fn current_version(record: &PluginRecord) -> u64 {
    record.versions.last().map_or(0, |v| v.version)
}

impl BatchWriter<'_> {
    /// Adds a version: numbered one past the newest, stamped with the entry's time (`time`,
    /// the commit-time rule without a revision). The flush mark stays: a new version resumes
    /// where the previous one flushed.
    pub(crate) fn plugin_deploy(&mut self, d: &PluginDeploy, time: i64) -> Result<PluginChanged> {
        let mut spec = d.spec.clone().unwrap_or_default();
        if spec.name.is_empty() || spec.name.len() > MAX_NAME_BYTES {
            return Err(RequestError::PluginNameInvalid.into());
        }
        if spec.digest.as_slice() != Sha256::digest(&d.wasm).as_slice() {
            return Err(RequestError::PluginDigestMismatch.into());
        }
        if !self.state.plugins.references(&spec.digest) {
            self.batch
                .insert(&self.backend.meta, wasm_key(&spec.digest), d.wasm.clone());
        }
        let name = spec.name.clone();
        let mut record = self
            .state
            .plugins
            .records
            .get(&name)
            .cloned()
            .unwrap_or_default();
        spec.version = current_version(&record) + 1;
        spec.deployed_ms = time;
        spec.size_bytes = d.wasm.len() as u64;
        let version = spec.version;
        record.versions.push(spec);
        let excess = record.versions.len().saturating_sub(MAX_VERSIONS);
        let dropped: Vec<Vec<u8>> = record.versions.drain(..excess).map(|v| v.digest).collect();
        let mark = record.mark;
        self.set_record(&name, record);
        self.forget_unreferenced(dropped);
        Ok(PluginChanged {
            name,
            version,
            mark,
        })
    }

    pub(crate) fn plugin_remove(&mut self, r: &PluginRemove) -> Result<PluginChanged> {
        let record = self
            .state
            .plugins
            .records
            .remove(&r.name)
            .ok_or(RequestError::PluginNotFound)?;
        self.batch.remove(&self.backend.meta, record_key(&r.name));
        self.forget_unreferenced(record.versions.into_iter().map(|v| v.digest).collect());
        Ok(PluginChanged {
            name: r.name.clone(),
            version: 0,
            mark: None,
        })
    }

    /// Back to the version before the current one; the current one is forgotten.
    pub(crate) fn plugin_rollback(&mut self, r: &PluginRollback) -> Result<PluginChanged> {
        let mut record = self
            .state
            .plugins
            .records
            .get(&r.name)
            .cloned()
            .ok_or(RequestError::PluginNotFound)?;
        if record.versions.len() < 2 {
            return Err(RequestError::NoPreviousVersion.into());
        }
        let dropped = record.versions.pop().map(|v| v.digest);
        let version = current_version(&record);
        let mark = record.mark;
        self.set_record(&r.name, record);
        self.forget_unreferenced(dropped.into_iter().collect());
        Ok(PluginChanged {
            name: r.name.clone(),
            version,
            mark,
        })
    }

    /// A closed window's outputs and the new mark, all or nothing. Applied only if the mark
    /// in place is the one the flush follows: a flush proposed twice, or by a leader that
    /// lost the race to another, writes nothing.
    pub(crate) fn plugin_flush(
        &mut self,
        txn: &mut WriteTxn,
        f: &PluginFlush,
    ) -> Result<PluginChanged> {
        let mut record = self
            .state
            .plugins
            .records
            .get(&f.name)
            .cloned()
            .ok_or(RequestError::PluginNotFound)?;
        let previous = record.mark.unwrap_or_default();
        if previous.end_ms != f.previous_end_ms || f.end_ms <= f.previous_end_ms {
            return Err(RequestError::FlushMarkMoved.into());
        }
        self.write_outputs(txn, &f.leases, &f.ops)?;
        let revision = if txn.changed() {
            txn.main
        } else {
            self.state.current
        };
        let mark = FlushMark {
            version: f.version,
            start_ms: f.start_ms,
            end_ms: f.end_ms,
            replay_from: f.replay_from,
            revision,
            windows: previous.windows + 1,
            outputs: previous.outputs + f.ops.len() as u64,
        };
        record.mark = Some(mark);
        let version = current_version(&record);
        self.set_record(&f.name, record);
        Ok(PluginChanged {
            name: f.name.clone(),
            version,
            mark: Some(mark),
        })
    }

    fn set_record(&mut self, name: &str, record: PluginRecord) {
        self.batch
            .insert(&self.backend.meta, record_key(name), record.encode_to_vec());
        self.state.plugins.records.insert(name.to_string(), record);
    }

    /// Deletes the components of `digests` that no version of any plugin uses any more.
    fn forget_unreferenced(&mut self, mut digests: Vec<Vec<u8>>) {
        digests.sort();
        digests.dedup();
        for digest in digests {
            if !self.state.plugins.references(&digest) {
                self.batch.remove(&self.backend.meta, wasm_key(&digest));
            }
        }
    }
}

impl Store {
    /// Every plugin in the registry, by name.
    pub fn plugins(&self) -> Result<Vec<(String, PluginRecord)>> {
        let g = self.state.read();
        if g.failed {
            return Err(failed());
        }
        Ok(g.state
            .plugins
            .records
            .iter()
            .map(|(name, record)| (name.clone(), record.clone()))
            .collect())
    }

    /// One plugin's record; None if no plugin has that name.
    pub fn plugin(&self, name: &str) -> Result<Option<PluginRecord>> {
        let g = self.state.read();
        if g.failed {
            return Err(failed());
        }
        Ok(g.state.plugins.records.get(name).cloned())
    }

    /// The component with this SHA-256 digest; None once no registered version uses it.
    /// Reads the disk.
    pub fn plugin_wasm(&self, digest: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.state.read().failed {
            return Err(failed());
        }
        Ok(self.backend.meta.get(wasm_key(digest))?.map(|v| v.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_keys_are_lowercase_hex_and_not_records() {
        assert_eq!(
            wasm_key(&[0x00, 0xab, 0x7f]),
            b"plugin-wasm/00ab7f".to_vec()
        );
        assert!(!wasm_key(&[1; 32]).starts_with(META_PLUGIN_PREFIX));
        assert_eq!(record_key("rule"), b"plugin/rule".to_vec());
    }

    #[test]
    fn malformed_entries_are_corrupt_not_a_panic() {
        let mut r = Registry::default();
        assert!(r.restore(b"plugin/\xff", &[]).is_err());
        assert!(r.restore(b"plugin/x", &[0xff, 0xff]).is_err());
        assert!(r.restore(b"plugin/x", &[]).is_ok());
        assert!(r.records.contains_key("x"));
    }
}
