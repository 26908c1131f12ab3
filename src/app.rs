//! The top: parses the command line, hands each subcommand to its file in `cmd/`, and maps failures to
//! exit codes (DESIGN.md §6). No wiring and no measurement logic live here.

use std::io::Write;

use crate::cli::{Command, K8sCommand, OciCommand};
use crate::cmd;

/// Exit codes (DESIGN.md §6).
pub mod exit {
    pub const OK: u8 = 0;
    /// The run could not be carried out (DNS failure, cannot write an output, …).
    pub const RUN_FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Thresholds, SLOs or a regression gate failed (later issues).
    pub const THRESHOLDS: u8 = 3;
    /// The run was invalid and `--strict` was given (later issue).
    pub const INVALID: u8 = 4;
    /// Interrupted by Ctrl-C (128 + SIGINT); the partial report was still written.
    pub const INTERRUPTED: u8 = crate::report::Interrupt::SIGINT.exit_code;
    /// Stopped by SIGTERM (128 + 15: a CI job's timeout, `kill`); the partial report was written.
    pub const TERMINATED: u8 = crate::report::Interrupt::SIGTERM.exit_code;
    /// Stopped by SIGHUP (128 + 1: the terminal went away); the partial report was written.
    pub const HANGUP: u8 = crate::report::Interrupt::SIGHUP.exit_code;
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: exit::USAGE,
        error: error.into(),
    }
}

pub(crate) fn run_failed(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: exit::RUN_FAILED,
        error: error.into(),
    }
}

/// How the process hosts a run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Install a Ctrl-C handler (the binary does; in-process tests don't).
    pub handle_signals: bool,
}

/// The binary's entry point.
pub fn main() -> std::process::ExitCode {
    raise_open_file_limit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = run(
        std::env::args_os(),
        &mut out,
        Options {
            handle_signals: true,
        },
    );
    std::process::ExitCode::from(code)
}

/// Raises the soft limit of open files to the hard limit, as Go programs do at start: every
/// connection is a file descriptor, and a default soft limit of 1024 would cap `-c` silently.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs regbench with these arguments, the report going to `out`; returns the exit code. Integration
/// tests call this in-process.
pub fn run<I, T>(args: I, out: &mut dyn Write, opts: Options) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<T> = args.into_iter().collect();
    let os: Vec<std::ffi::OsString> = args.iter().cloned().map(Into::into).collect();
    if let Some(e) = crate::cli::single_dash_long_flag(&os) {
        eprintln!("regbench: error: {e}");
        return exit::USAGE;
    }
    let cli = match crate::cli::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let result = match cli.command {
        Command::Run(a) => cmd::run::cmd_run(*a, out, opts),
        Command::Demo(a) => cmd::demo::cmd_demo(a, out, opts),
        Command::Serve(a) => cmd::serve::cmd_serve(&a, opts),
        Command::Oci(OciCommand::Seed(a)) => cmd::oci::cmd_oci_seed(&a, out),
        Command::Oci(c) => cmd::oci::cmd_oci_load(c, out, opts),
        Command::Doctor(a) => cmd::doctor::cmd_doctor(&a, out),
        Command::Stress(a) => cmd::stress::cmd_stress(*a, out, opts),
        Command::Report(a) => cmd::report::cmd_report(&a, out),
        Command::Merge(a) => cmd::merge::cmd_merge(&a, out),
        Command::Compare(a) => cmd::compare::cmd_compare(&a, out),
        Command::K8s(K8sCommand::Render(a)) => cmd::k8s::cmd_render(&a, out),
        Command::Completions { shell } => cmd::docs::cmd_completions(shell, out),
        Command::Man => cmd::docs::cmd_man(out),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("regbench: error: {:#}", f.error);
            f.code
        }
    }
}
