//! The etcd snapshot reader (a bbolt file handed to `snapshot status` or `--restore-from`,
//! maybe an etcd data dir's `db`, which no checksum guards): an error for anything malformed,
//! never a panic, a loop, or memory beyond what the file's size justifies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("conclave-fuzz-etcd-{}.db", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = conclave_store::inspect_backup(&path);
    }
});
