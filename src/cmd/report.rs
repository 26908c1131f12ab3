//! `regbench report RESULT.json`: renders a saved JSON result again, in any output format, with the
//! exit code the run had (so CI can keep the JSON and render or gate later).

use std::io::Write;

use anyhow::anyhow;

use super::execute::{check_outputs, emit, verdict};
use super::progress::ProgressMode;
use crate::app::{run_failed, usage, Failure};
use crate::cli::{OutputArgs, ReportArgs};

pub(crate) fn cmd_report(a: &ReportArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let output = OutputArgs {
        outputs: a.outputs.clone(),
        json: a.json,
        quiet: a.quiet,
        progress: ProgressMode::None,
        metrics_addr: None,
    };
    check_outputs(&output)?;
    let text = std::fs::read_to_string(&a.result).map_err(|e| {
        run_failed(anyhow!(e).context(format!("cannot read '{}'", a.result.display())))
    })?;
    let report = crate::report::saved::parse(&text).map_err(|e| {
        usage(anyhow!(
            "'{}' is not a regbench run result: {e}",
            a.result.display()
        ))
    })?;
    let code = emit(&report, &output, out)?;
    Ok(verdict(&report, code, a.strict, a.quiet))
}
