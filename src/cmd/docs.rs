//! `regbench completions SHELL` and `regbench man`: generated from the command line's own definition
//! (clap_complete, clap_mangen), so they never drift from the flags.

use std::io::Write;

use crate::app::{exit, run_failed, Failure};

pub(crate) fn cmd_completions(
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), "regbench", &mut text);
    write(out, &text)
}

pub(crate) fn cmd_man(out: &mut dyn Write) -> Result<u8, Failure> {
    let mut text = Vec::new();
    clap_mangen::Man::new(crate::cli::command())
        .render(&mut text)
        .map_err(run_failed)?;
    write(out, &text)
}

/// Writes to stdout; a reader that closed the pipe (`| head`) is not an error.
fn write(out: &mut dyn Write, text: &[u8]) -> Result<u8, Failure> {
    match out.write_all(text).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(run_failed(e)),
        _ => Ok(exit::OK),
    }
}
