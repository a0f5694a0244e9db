//! The `conclavectl` binary; everything lives in the conclave-ctl crate.

fn main() -> std::process::ExitCode {
    conclave_ctl::main()
}
