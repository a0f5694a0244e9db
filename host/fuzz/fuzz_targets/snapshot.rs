//! The snapshot reader checking a stream it did not write (a backup handed to `snapshot
//! status` or `--restore-from`): an error for anything malformed, never a panic, and memory
//! that grows with the bytes read, not with the lengths they claim.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let _ = conclave_store::inspect_snapshot(&mut input);
});
