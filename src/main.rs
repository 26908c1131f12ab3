//! The binary: everything lives in the library so integration tests can run it in-process.

fn main() -> std::process::ExitCode {
    regbench::app::main()
}
