//! `regbench report RESULT.json`: renders a saved JSON result again, in any output format, with the
//! exit code the run had (so CI can keep the JSON and render or gate later).

use std::io::Write;

use anyhow::anyhow;

use super::execute::{check_outputs, check_outputs_in, emit, verdict};
use crate::app::{run_failed, usage, Failure};
use crate::cli::ReportArgs;
use crate::report::saved::Saved;

pub(crate) fn cmd_report(a: &ReportArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let output = &a.output;
    let text = std::fs::read_to_string(&a.result).map_err(|e| {
        run_failed(anyhow!(e).context(format!("cannot read '{}'", a.result.display())))
    })?;
    let saved = crate::report::saved::parse_any(&text).map_err(|e| {
        usage(anyhow!(
            "'{}' is not a regbench result: {e}",
            a.result.display()
        ))
    })?;
    match saved {
        Saved::Run(report) => {
            check_outputs(output)?;
            let code = emit(&report, output, out)?;
            Ok(verdict(&report, code, a.strict, output.quiet))
        }
        Saved::Stress(report) => {
            check_outputs_in(output, &super::stress::FORMATS, " of a stress result")?;
            super::stress::write_outputs(&report, output, out)?;
            Ok(super::stress::exit_code(&report))
        }
    }
}
