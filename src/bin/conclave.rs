//! The `conclave` server binary; everything lives in the conclave-server crate.

/// mimalloc rather than glibc's malloc: under a put load, a member spent a fifth of its CPU in
/// glibc's allocator (small, short-lived buffers freed on other threads); see docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    conclave_server::main()
}
