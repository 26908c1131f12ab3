//! `regbench compare BASE.json NEW.json`: each metric's change per step and overall, with a
//! confidence interval from a bootstrap over the runs' seconds (analyze/compare.rs); exit 3 only
//! when a regression beyond `--max-regression` is significant — a CI gate that does not fail on
//! noise.

use std::io::Write;

use anyhow::anyhow;

use super::execute::{check_outputs_in, deliver};
use crate::analyze::compare::{compare, Metric, Seconds};
use crate::app::{exit, run_failed, usage, Failure};
use crate::cli::CompareArgs;
use crate::report::compare::CompareReport;
use crate::report::RunReport;

pub(crate) fn cmd_compare(a: &CompareArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    check_outputs_in(&a.output, &["text", "json", "html"], " of compare")?;
    if !(0.0..=10.0).contains(&a.max_regression) {
        return Err(usage(anyhow!(
            "--max-regression {}%: between 0% and 1000%",
            100.0 * a.max_regression
        )));
    }
    let metrics = a
        .metric
        .iter()
        .map(|m| Metric::parse(m.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(anyhow!("--metric: {e}")))?;
    let read = |p: &std::path::Path| -> Result<RunReport, Failure> {
        let text = std::fs::read_to_string(p).map_err(|e| {
            run_failed(anyhow!(e).context(format!("cannot read '{}'", p.display())))
        })?;
        crate::report::saved::parse(&text)
            .map_err(|e| usage(anyhow!("'{}' is not a run's result: {e}", p.display())))
    };
    let (base, new) = (read(&a.base)?, read(&a.new)?);
    let (bs, ns) = (seconds(&base)?, seconds(&new)?);
    let mut notes = Vec::new();
    if shape(&base) != shape(&new) {
        notes.push(
            "the runs' plans differ (scenarios, rates, steps or timeouts): compare like with like"
                .to_string(),
        );
    }
    if base.info.target != new.info.target {
        notes.push(format!(
            "the targets differ: {} and {}",
            base.info.target, new.info.target
        ));
    }
    for (which, r, s) in [("base", &base, &bs), ("new", &new, &ns)] {
        if s.n_seconds < 10 {
            notes.push(format!(
                "{which} has {} whole seconds to compare: intervals from so few are rough; run 30 s or more",
                s.n_seconds
            ));
        }
        if !r.validity.valid {
            notes.push(format!(
                "{which} is INVALID ({}): its numbers may be the generator's",
                r.validity.reasons.join("; ")
            ));
        }
    }
    let steps_of = |s: &Seconds| s.step_names().cloned().collect::<Vec<_>>();
    let (base_steps, new_steps) = (steps_of(&bs), steps_of(&ns));
    // Every request first, then the steps both runs have, in the base's report order.
    let mut steps = vec!["all".to_string()];
    for t in &base.agg.total.tags {
        if base_steps.contains(&t.name) && new_steps.contains(&t.name) && t.name != "all" {
            steps.push(t.name.clone());
        }
    }
    let mut changes = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        for (j, m) in metrics.iter().enumerate() {
            // A fixed seed per row: the same two files always give the same intervals.
            let seed = (i as u64) << 16 | j as u64;
            changes.push(compare(step, *m, &bs, &ns, a.max_regression, seed));
        }
    }
    let report = CompareReport {
        base: a.base.display().to_string(),
        new: a.new.display().to_string(),
        limit: a.max_regression,
        seconds: (bs.n_seconds, ns.n_seconds),
        changes,
        only_in_base: base_steps
            .iter()
            .filter(|s| !new_steps.contains(s))
            .cloned()
            .collect(),
        only_in_new: new_steps
            .iter()
            .filter(|s| !base_steps.contains(s))
            .cloned()
            .collect(),
        notes,
    };
    write_outputs(&report, a, out)?;
    Ok(match report.regressions().count() {
        0 => exit::OK,
        _ => exit::THRESHOLDS,
    })
}

/// What a plan asks for, without what may differ between runs of one benchmark: the seed (a fresh
/// one per run), the target's address, what was watched.
fn shape(r: &RunReport) -> crate::report::PlanRecord {
    crate::report::PlanRecord {
        fingerprint: String::new(),
        seed: 0,
        target: String::new(),
        watch: Vec::new(),
        ..r.info.plan.clone()
    }
}

/// A run's whole seconds after its warm-up and inside its schedule's window.
fn seconds(r: &RunReport) -> Result<Seconds, Failure> {
    let from = r.info.plan.warmup_secs();
    let until = r.info.window.as_secs();
    let iteration = |name: &str| {
        r.agg
            .total
            .tags
            .iter()
            .any(|t| t.iteration && t.name == name)
    };
    Seconds::of(&r.agg.series, from, until, &iteration)
        .map_err(|e| usage(anyhow!("a per-second histogram does not decode: {e}")))
}

fn write_outputs(r: &CompareReport, a: &CompareArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let render = |format: &str| match format {
        "json" => format!("{:#}\n", crate::report::compare::json(r)),
        "html" => crate::report::html::render_compare(r),
        _ => crate::report::compare::text(r),
    };
    deliver(&a.output, out, &render, &|_, _| Vec::new())
}
