//! The `conclave` server binary; everything lives in the conclave-server crate.

/// jemalloc rather than glibc's malloc: under a put load, a member spent a fifth of its CPU in
/// glibc's allocator (small, short-lived buffers freed on other threads); see
/// docs/BENCHMARKS.md. jemalloc rather than mimalloc (within 2% of it, docs/BENCHMARKS.md)
/// because it can sample allocations for `/debug/pprof/heap`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read before the first allocation): idle memory goes back to
/// the kernel from jemalloc's own thread, not in the middle of a request's allocation. The
/// heap profiler is off: `--enable-pprof` restarts the process with it on (the server's
/// pprof.rs says why).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true\0";

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    // The robustness build only: failpoints set from FAILPOINTS, for as long as main runs.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    #[cfg(feature = "failpoints")]
    follow_failpoints_file();
    conclave_server::main()
}

/// The robustness build only: failpoints from the file FAILPOINTS_FILE names, read again
/// while the process runs (one `name=actions` a line, fail-rs's syntax; a name no longer
/// listed is turned off), so that a test can make a running member's disk fail at the moment
/// it chooses, when the member leads, say.
#[cfg(feature = "failpoints")]
fn follow_failpoints_file() {
    let Some(path) = std::env::var_os("FAILPOINTS_FILE") else {
        return;
    };
    let follow = move || {
        let mut applied = String::new();
        let mut set: Vec<String> = Vec::new();
        loop {
            let wanted = std::fs::read_to_string(&path).unwrap_or_default();
            if wanted != applied {
                for name in set.drain(..) {
                    fail::remove(name);
                }
                for line in wanted.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let configured = line
                        .split_once('=')
                        .ok_or_else(|| "not name=actions".to_string())
                        .and_then(|(name, actions)| {
                            fail::cfg(name.trim(), actions.trim()).map(|()| name.trim())
                        });
                    match configured {
                        Ok(name) => set.push(name.to_string()),
                        Err(e) => eprintln!("FAILPOINTS_FILE: {line}: {e}"),
                    }
                }
                applied = wanted;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    std::thread::Builder::new()
        .name("failpoints-file".into())
        .spawn(follow)
        .expect("start the failpoints-file thread");
}

/// Allocators that ask for transparent huge pages and return idle memory to the kernel soon
/// after make every fault zero a whole 2 MiB page for buffers of a few hundred bytes. Under a
/// 3-member put load (with mimalloc) that zeroing was 7% of all CPU (perf: `clear_page_erms`
/// under `do_huge_pmd_anonymous_page`); with 4 KiB pages the members' system time fell by a
/// fifth. This holds for the whole process and the members `conclave dev` starts, and changes
/// nothing where THP is off.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
