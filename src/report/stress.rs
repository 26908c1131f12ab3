//! `regbench stress`'s result: the degradation curve (one row per step), what the search found,
//! the knee, the breaking point, the recovery after a burst, the USL fit — as text and as JSON
//! (`"kind": "stress"`, documented in docs/stress.md).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::analyze::stress::{Broke, Usl};
use crate::util::fmt_duration;

/// One step of the search or the sweep, measured on its judged window.
#[derive(Clone, Debug)]
pub struct StepRow {
    /// `ramp`, `bisect` or `sweep`.
    pub phase: &'static str,
    /// Requests per second offered (open model) or virtual users (closed model).
    pub offered: f64,
    /// Requests per second completed in the judged window.
    pub achieved: f64,
    pub requests: u64,
    /// p50, p95, p99, p99.9 of latency (done − intended); `None` without responses.
    pub latency: [Option<Duration>; 4],
    pub error_rate: f64,
    /// Failures by kind (`503`, `timeout`, …), most frequent first.
    pub errors: Vec<(String, u64)>,
    /// Each SLO: its text, the observed value as the report prints it, and whether it held.
    pub slo: Vec<(String, String, bool)>,
    pub slo_pass: bool,
    pub valid: bool,
    pub generator_bound: bool,
    pub reasons: Vec<String>,
}

/// How the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The SLO held at `max_sustainable` and failed above it.
    Limit,
    /// The SLO held up to `--max-rate` (or the last sweep level): no limit below it.
    NoLimitBelowMax,
    /// The SLO failed at the first step already.
    FailsAtLowest,
    /// The generator became the bottleneck before the target did.
    GeneratorSaturated,
    /// `--max-duration` ran out before the search converged.
    OutOfTime,
    /// Ctrl-C / SIGTERM: the curve so far.
    Interrupted,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Limit,
        Verdict::NoLimitBelowMax,
        Verdict::FailsAtLowest,
        Verdict::GeneratorSaturated,
        Verdict::OutOfTime,
        Verdict::Interrupted,
    ];

    pub fn from_name(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Limit => "limit-found",
            Verdict::NoLimitBelowMax => "no-limit-below-max",
            Verdict::FailsAtLowest => "fails-at-lowest",
            Verdict::GeneratorSaturated => "generator-saturated",
            Verdict::OutOfTime => "out-of-time",
            Verdict::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Recovery {
    pub burst_rate: f64,
    pub burst_for: Duration,
    pub safe_rate: f64,
    /// How long the recovery window after the burst was.
    pub window: Duration,
    /// Time from the end of the burst until the SLO held again for good; `None`: not within `window`.
    pub recovered_after: Option<Duration>,
    /// Per second after the burst ended: p99 and error rate, for the curve.
    pub seconds: Vec<(u64, Option<Duration>, f64, bool)>,
}

#[derive(Clone, Debug)]
pub struct StressReport {
    pub target: String,
    /// `open` (a rate search) or `closed` (a concurrency sweep).
    pub model: &'static str,
    pub slo: Vec<String>,
    pub step: Duration,
    pub settle: Duration,
    pub precision: f64,
    pub steps: Vec<StepRow>,
    pub verdict: Verdict,
    /// The highest offered load that met the SLO and was valid.
    pub max_sustainable: Option<f64>,
    /// The lowest offered load that failed the SLO.
    pub first_failing: Option<f64>,
    /// Where the generator saturated, with its reason.
    pub generator_saturated: Option<(f64, String)>,
    pub knee: Option<f64>,
    pub knee_factor: f64,
    pub breaking_point: Option<(f64, Broke)>,
    pub recovery: Option<Recovery>,
    pub usl: Option<Usl>,
    pub wall: Duration,
    /// The exit code of the signal that interrupted the search (128 + its number).
    pub interrupted: Option<u8>,
}

fn unit(r: &StressReport) -> &'static str {
    match r.model {
        "closed" => " VUs",
        _ => "/s",
    }
}

fn load(r: &StressReport, v: f64) -> String {
    match r.model {
        "closed" => format!("{v:.0} VUs"),
        _ => format!("{}/s", fmt_rate(v)),
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map_or("–".into(), fmt_duration)
}

pub fn text(r: &StressReport) -> String {
    let mut o = String::new();
    let _ = write_text(&mut o, r);
    o
}

fn write_text(o: &mut String, r: &StressReport) -> std::fmt::Result {
    writeln!(o, "regbench stress {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(o, "  target       {}", r.target)?;
    writeln!(
        o,
        "  search       {}; each step {} judged after {} settling{}",
        match r.model {
            "closed" => "closed model: a sweep of virtual users".to_string(),
            _ => format!(
                "open model: geometric steps up until the SLO fails, then bisection to {:.0}%",
                r.precision * 100.0
            ),
        },
        fmt_duration(r.step),
        fmt_duration(r.settle),
        format_args!("; {} in total", fmt_duration(r.wall))
    )?;
    writeln!(o, "  SLO          {}", r.slo.join(", "))?;
    writeln!(o)?;
    writeln!(
        o,
        "{:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8}  {:<5} notes",
        format!("offered{}", unit(r)),
        "achieved/s",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "errors",
        "SLO",
    )?;
    for s in &r.steps {
        let mut notes = Vec::new();
        if !s.errors.is_empty() {
            let kinds: Vec<String> = s
                .errors
                .iter()
                .take(3)
                .map(|(k, n)| format!("{k}×{n}"))
                .collect();
            notes.push(kinds.join(" "));
        }
        if s.generator_bound {
            notes.push("GENERATOR-BOUND".into());
        } else if !s.valid {
            notes.push("invalid (target-side)".into());
        }
        if s.phase == "bisect" {
            notes.push("bisect".into());
        }
        writeln!(
            o,
            "{:>12} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>7.2}%  {:<5} {}",
            match r.model {
                "closed" => format!("{:.0}", s.offered),
                _ => fmt_rate(s.offered),
            },
            s.achieved,
            opt(s.latency[0]),
            opt(s.latency[1]),
            opt(s.latency[2]),
            opt(s.latency[3]),
            s.error_rate * 100.0,
            if s.slo_pass { "ok" } else { "FAIL" },
            notes.join("; ")
        )?;
    }
    writeln!(o)?;
    writeln!(o, "Result")?;
    let found =
        match r.verdict {
            Verdict::Limit => format!(
                "maximum sustainable {} (the SLO fails at {}; precision {:.0}%)",
                r.max_sustainable.map_or("–".into(), |v| load(r, v)),
                r.first_failing.map_or("–".into(), |v| load(r, v)),
                r.precision * 100.0
            ),
            Verdict::NoLimitBelowMax => format!(
                "no limit found: the SLO held up to {}, the most this search offers",
                r.max_sustainable.map_or("–".into(), |v| load(r, v))
            ),
            Verdict::FailsAtLowest => format!(
                "the SLO fails even at the lowest load ({}): lower --start-rate, or fix the target",
                r.first_failing.map_or("–".into(), |v| load(r, v))
            ),
            Verdict::GeneratorSaturated => {
                let (at, why) = r.generator_saturated.clone().unwrap_or_default();
                format!(
                "generator saturated at {}: add threads or segments (--threads, --segment on more \
                 machines); the target's limit is above what was measured{} — {why}",
                load(r, at),
                r.max_sustainable
                    .map_or(String::new(), |v| format!(" (the SLO held up to {})", load(r, v)))
            )
            }
            Verdict::OutOfTime => format!(
                "--max-duration ran out before the search converged: the SLO held up to {}{}",
                r.max_sustainable.map_or("–".into(), |v| load(r, v)),
                r.first_failing
                    .map_or(String::new(), |v| format!(" and failed at {}", load(r, v)))
            ),
            Verdict::Interrupted => format!(
                "interrupted: the SLO held up to {}{} (the curve so far)",
                r.max_sustainable.map_or("–".into(), |v| load(r, v)),
                r.first_failing
                    .map_or(String::new(), |v| format!(" and failed at {}", load(r, v)))
            ),
        };
    writeln!(o, "  found        {found}")?;
    if let (Some((at, why)), Verdict::Limit) = (&r.generator_saturated, r.verdict) {
        writeln!(
            o,
            "  generator    saturated at {}, above the limit: the search for the breaking point \
             stopped there ({why})",
            load(r, *at)
        )?;
    }
    writeln!(
        o,
        "  knee         {}",
        match r.knee {
            Some(k) => format!(
                "{}: from this load on, p99 stays above {}× the p99 at the lowest load",
                load(r, k),
                r.knee_factor
            ),
            None => format!(
                "not reached: p99 did not stay above {}× the p99 at the lowest load",
                r.knee_factor
            ),
        }
    )?;
    writeln!(
        o,
        "  breaking     {}",
        match r.breaking_point {
            Some((v, Broke::Errors)) => format!("{}: more than 5% of requests failed", load(r, v)),
            Some((v, Broke::Throughput)) => format!(
                "{}: throughput fell although the offered load rose",
                load(r, v)
            ),
            None => "not reached: errors stayed at or under 5% and throughput never fell".into(),
        }
    )?;
    if let Some(rec) = &r.recovery {
        writeln!(
            o,
            "  recovery     after {}/s for {} then {}/s: {}",
            fmt_rate(rec.burst_rate),
            fmt_duration(rec.burst_for),
            fmt_rate(rec.safe_rate),
            match rec.recovered_after {
                Some(d) => format!(
                    "back within the SLO {} after the burst ended",
                    fmt_duration(d)
                ),
                None => format!("did not recover within {}", fmt_duration(rec.window)),
            }
        )?;
    }
    if let Some(u) = &r.usl {
        writeln!(
            o,
            "  USL          λ {:.1}/s per VU, σ {:.4} (contention), κ {:.6} (coherency), R² {:.3}",
            u.lambda, u.sigma, u.kappa, u.r2
        )?;
        match u.peak_n {
            Some(n) => writeln!(
                o,
                "               throughput peaks at {:.0} VUs ({:.0}/s predicted); past it, more users \
                 lower it",
                n, u.peak_x
            )?,
            None => writeln!(
                o,
                "               no peak: throughput approaches {}/s (λ/σ) as users are added",
                if u.peak_x.is_finite() {
                    format!("{:.0}", u.peak_x)
                } else {
                    "∞".into()
                }
            )?,
        }
    }
    Ok(())
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Why the breaking point broke, as the JSON says it.
pub fn broke_name(why: Broke) -> &'static str {
    match why {
        Broke::Errors => "errors above 5%",
        Broke::Throughput => "throughput fell while offered load rose",
    }
}

pub fn json(r: &StressReport) -> Value {
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| {
            json!({
                "phase": s.phase,
                "offered": s.offered,
                "achieved_rps": s.achieved,
                "requests": s.requests,
                "latency": {
                    "p50_ns": s.latency[0].map(ns),
                    "p95_ns": s.latency[1].map(ns),
                    "p99_ns": s.latency[2].map(ns),
                    "p99_9_ns": s.latency[3].map(ns),
                },
                "error_rate": s.error_rate,
                "errors": s.errors.iter().map(|(k, n)| (k.clone(), Value::from(*n))).collect::<serde_json::Map<_, _>>(),
                "slo": s.slo.iter().map(|(e, v, p)| json!({ "slo": e, "observed": v, "pass": p })).collect::<Vec<_>>(),
                "slo_pass": s.slo_pass,
                "valid": s.valid,
                "generator_bound": s.generator_bound,
                "reasons": s.reasons,
            })
        })
        .collect();
    json!({
        "kind": "stress",
        "tool": { "name": "regbench", "version": env!("CARGO_PKG_VERSION") },
        "target": r.target,
        "model": r.model,
        "offered_unit": if r.model == "closed" { "vus" } else { "requests_per_second" },
        "slo": r.slo,
        "step_ns": ns(r.step),
        "settle_ns": ns(r.settle),
        "precision": r.precision,
        "wall_ns": ns(r.wall),
        "knee_factor": r.knee_factor,
        "interrupted_exit_code": r.interrupted,
        "steps": steps,
        "result": {
            "verdict": r.verdict.name(),
            "max_sustainable": r.max_sustainable,
            "first_failing": r.first_failing,
            "generator_saturated_at": r.generator_saturated.as_ref().map(|g| g.0),
            "generator_saturated_because": r.generator_saturated.as_ref().map(|g| g.1.clone()),
            "knee": r.knee.map(|k| json!({
                "offered": k,
                "method": format!("baseline: the lowest offered load from which on p99 stays above {}x the p99 at the lowest load", r.knee_factor),
            })),
            "breaking_point": r.breaking_point.map(|(v, why)| json!({
                "offered": v,
                "why": broke_name(why),
            })),
            "recovery": r.recovery.as_ref().map(|rec| json!({
                "burst_rps": rec.burst_rate,
                "burst_ns": ns(rec.burst_for),
                "safe_rps": rec.safe_rate,
                "window_ns": ns(rec.window),
                "recovered_after_ns": rec.recovered_after.map(ns),
                "seconds": rec.seconds.iter().map(|(t, p99, err, ok)| json!({
                    "t_s": t, "p99_ns": p99.map(ns), "error_rate": err, "within_slo": ok,
                })).collect::<Vec<_>>(),
            })),
            "usl": r.usl.map(|u| json!({
                "lambda": u.lambda,
                "sigma": u.sigma,
                "kappa": u.kappa,
                "peak_vus": u.peak_n,
                "peak_rps": if u.peak_x.is_finite() { Value::from(u.peak_x) } else { Value::Null },
                "r2": u.r2,
            })),
        },
    })
}
