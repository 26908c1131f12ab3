//! `regbench compare`'s result: each metric's change from the baseline with its 95% confidence
//! interval and verdict, as text and as JSON (`"kind": "compare"`, docs/compare.md); the HTML page is
//! `html::render_compare`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::analyze::compare::{Change, Metric, Verdict, RESAMPLES};
use crate::util::fmt_duration;

#[derive(Clone, Debug)]
pub struct CompareReport {
    pub base: String,
    pub new: String,
    /// The allowed worsening (0.2 = 20%).
    pub limit: f64,
    /// Whole seconds compared in each run.
    pub seconds: (usize, usize),
    pub changes: Vec<Change>,
    /// Steps only one of the runs has.
    pub only_in_base: Vec<String>,
    pub only_in_new: Vec<String>,
    /// Caveats for people (different plans, different targets, few seconds).
    pub notes: Vec<String>,
}

impl CompareReport {
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Regressed)
    }

    pub fn verdict(&self) -> &'static str {
        match self.regressions().count() {
            0 => "no regression beyond the limit",
            _ => "regressed",
        }
    }
}

/// A metric's value as people read it.
pub fn value(metric: Metric, v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    match metric {
        Metric::Quantile(_) => fmt_duration(Duration::from_nanos(v.max(0.0) as u64)),
        Metric::Rps => format!("{v:.1}/s"),
        Metric::Errors => format!("{:.3}%", 100.0 * v),
    }
}

/// A change as people read it: relative in %, or for errors in percentage points.
pub fn change(metric: Metric, c: f64) -> String {
    if !c.is_finite() {
        return "–".into();
    }
    match metric {
        Metric::Errors => format!("{:+.3} pp", 100.0 * c),
        _ => format!("{:+.1}%", 100.0 * c),
    }
}

pub fn text(r: &CompareReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "regbench compare: {} → {}\n  method       bootstrap over whole seconds ({} and {}), {RESAMPLES} resamples, 95% \
         confidence; a regression is significant and worse than {:.0}%",
        r.base,
        r.new,
        r.seconds.0,
        r.seconds.1,
        100.0 * r.limit
    );
    for note in &r.notes {
        let _ = writeln!(o, "  note         {note}");
    }
    let _ = writeln!(
        o,
        "\n  {:<22} {:<7} {:>11} {:>11} {:>10}  {:<22} verdict",
        "step", "metric", "base", "new", "change", "95% CI"
    );
    for c in &r.changes {
        let ci = match c.low.is_finite() {
            true => format!(
                "[{}, {}]",
                change(c.metric, c.low),
                change(c.metric, c.high)
            ),
            false => "–".into(),
        };
        let _ = writeln!(
            o,
            "  {:<22} {:<7} {:>11} {:>11} {:>10}  {:<22} {}",
            truncate(&c.step, 22),
            c.metric.name(),
            value(c.metric, c.base),
            value(c.metric, c.new),
            change(c.metric, c.change),
            ci,
            c.verdict.name()
        );
    }
    for (which, steps) in [("base", &r.only_in_base), ("new", &r.only_in_new)] {
        if !steps.is_empty() {
            let _ = writeln!(o, "  only in {which}: {}", steps.join(", "));
        }
    }
    let n = r.regressions().count();
    let _ = writeln!(
        o,
        "\n{}",
        match n {
            0 => "PASS  no significant regression beyond the limit".to_string(),
            n => format!(
                "FAIL  {n} metric{} regressed beyond {:.0}%: {}",
                if n == 1 { "" } else { "s" },
                100.0 * r.limit,
                r.regressions()
                    .map(|c| format!("{} {}", c.step, c.metric.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    );
    o
}

pub fn json(r: &CompareReport) -> Value {
    json!({
        "kind": "compare",
        "tool": { "name": "regbench", "version": env!("CARGO_PKG_VERSION") },
        "base": r.base,
        "new": r.new,
        "max_regression": r.limit,
        "method": {
            "bootstrap": "whole seconds, resampled with replacement",
            "resamples": RESAMPLES,
            "confidence": 0.95,
            "seconds": { "base": r.seconds.0, "new": r.seconds.1 },
        },
        "notes": r.notes,
        "changes": r.changes.iter().map(|c| json!({
            "step": c.step,
            "metric": c.metric.name(),
            "unit": match c.metric { Metric::Quantile(_) => "ns", Metric::Rps => "per_second", Metric::Errors => "fraction" },
            "base": finite(c.base),
            "new": finite(c.new),
            "change": finite(c.change),
            "change_kind": if c.metric == Metric::Errors { "difference" } else { "relative" },
            "ci95": [finite(c.low), finite(c.high)],
            "verdict": c.verdict.name(),
        })).collect::<Vec<_>>(),
        "only_in_base": r.only_in_base,
        "only_in_new": r.only_in_new,
        "verdict": r.verdict(),
    })
}

fn finite(v: f64) -> Value {
    match v.is_finite() {
        true => json!(v),
        false => Value::Null,
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.chars().count() > n {
        true => format!("{}…", s.chars().take(n - 1).collect::<String>()),
        false => s.to_string(),
    }
}
