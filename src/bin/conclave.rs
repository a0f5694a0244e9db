//! The `conclave` server binary; everything lives in the conclave-server crate.

/// mimalloc rather than glibc's malloc: under a put load, a member spent a fifth of its CPU in
/// glibc's allocator (small, short-lived buffers freed on other threads); see docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    conclave_server::main()
}

/// mimalloc asks for transparent huge pages on its arenas and returns idle memory to the
/// kernel a second later; every fault after that zeroes a whole 2 MiB page for buffers of a
/// few hundred bytes. Under a 3-member put load that zeroing was 7% of all CPU (perf:
/// `clear_page_erms` under `do_huge_pmd_anonymous_page`); with 4 KiB pages the members' system
/// time fell by a fifth. This is what `MIMALLOC_ALLOW_THP=0` does, made the default; it holds
/// for the whole process and the members `conclave dev` starts, and changes nothing where THP
/// is off.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
