//! The `conclave` server binary; everything lives in the conclave-server crate.

fn main() -> std::process::ExitCode {
    conclave_server::main()
}
