//! `regbench stress`: runs the plan again and again at changing loads — open model: geometric
//! steps up until the SLO fails (and on to the breaking point), then bisection; closed model
//! (`--vus`): a sweep of virtual users — judging each step on its window after `--settle`, on the
//! SLO and on the run's validity. A step where the generator is the bottleneck ends the search:
//! its limit is never reported as the target's. Then an overload burst and the recovery from it.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::execute::{check_outputs_in, deliver, execute, Show, Thresholds};
use super::run::{family, is_scenario_file, parse_pins, plan_from_args, scenario_from_args};
use crate::aggregate::{Dist, SecondStats};
use crate::analyze::stress::{self as analysis, Level, SecondVerdict};
use crate::app::{exit, run_failed, usage, Failure, Options};
use crate::cli::{LiveArgs, OutputArgs, ProgressMode, StressArgs};
use crate::engine::connect;
use crate::plan::threshold::{Filter, Metric, Stat, Threshold};
use crate::plan::{Arrival, Model, Plan, Profile, Stage, Stop};
use crate::report::stress::{Recovery, StepRow, StressReport, Verdict};
use crate::report::RunReport;
use crate::util::fmt_duration;

/// Connections (the open model's in-flight bound) when `-c` is not given: a target that slows
/// down needs many requests in flight, or the generator would queue them itself.
const DEFAULT_CONNECTIONS: usize = 1000;
/// Steps up past the first SLO failure, looking for the breaking point.
const STEPS_PAST_FAILURE: usize = 2;
/// Seconds the SLO must hold, to the end of the recovery window, to count as recovered.
const STABLE_SECONDS: u64 = 3;

pub(crate) fn cmd_stress(a: StressArgs, out: &mut dyn Write, opts: Options) -> Result<u8, Failure> {
    refuse_run_flags(&a)?;
    check_outputs_in(&a.run.output, &FORMATS, " of stress")?;
    let file = is_scenario_file(&a.run.url);
    let (mut base, file_thresholds) = match file {
        true => scenario_from_args(&a.run)?,
        false => (plan_from_args(&a.run)?, Thresholds::default()),
    };
    if !base.watch.is_empty() {
        return Err(usage(anyhow!(
            "[[watch]] is not read by stress yet: watch the target in a `regbench run` at the rate \
             stress found"
        )));
    }
    if !file && a.run.connections.is_none() {
        for s in &mut base.scenarios {
            s.n_connections = DEFAULT_CONNECTIONS;
        }
    }
    let slo = match a.slo.is_empty() {
        false => Thresholds {
            list: a
                .slo
                .iter()
                .map(|s| parse_slo(s))
                .collect::<Result<_, _>>()?,
            scenario_tags: file_thresholds.scenario_tags,
        },
        true if !file_thresholds.list.is_empty() => file_thresholds,
        true => {
            return Err(usage(anyhow!(
                "stress needs an SLO to search against: --slo 'p(99)<100ms' --slo 'errors<1%' (or \
                 thresholds in the scenario file)"
            )))
        }
    };
    let pins = parse_pins(&a.run.resolve, &a.run.connect_to)?;
    let resolved = connect::resolve(&base.target, &pins, family(&a.run)).map_err(run_failed)?;
    let mut s = Search {
        a: &a,
        base,
        slo,
        resolved,
        opts,
        started: Instant::now(),
        rows: Vec::new(),
        interrupted: None,
    };
    let mut report = match &a.vus {
        Some(list) => s.sweep(&parse_levels(list)?)?,
        None => s.search()?,
    };
    report.wall = s.started.elapsed();
    report.interrupted = s.interrupted;
    write_outputs(&report, &a.run.output, out)?;
    Ok(exit_code(&report))
}

/// 0: a limit was found (or none below the maximum); 3: the SLO fails even at the lowest load (or
/// time ran out before any step held); 4: the generator saturated first; 128 + the signal when
/// interrupted.
pub(crate) fn exit_code(r: &StressReport) -> u8 {
    match r.verdict {
        Verdict::Limit | Verdict::NoLimitBelowMax => exit::OK,
        Verdict::OutOfTime if r.max_sustainable.is_some() => exit::OK,
        Verdict::OutOfTime | Verdict::FailsAtLowest => exit::THRESHOLDS,
        Verdict::GeneratorSaturated => exit::INVALID,
        Verdict::Interrupted => r.interrupted.unwrap_or(exit::INTERRUPTED),
    }
}

/// The flags whose job the search does.
fn refuse_run_flags(a: &StressArgs) -> Result<(), Failure> {
    let r = &a.run;
    for (flag, given) in [
        ("--rate", r.rate.is_some()),
        ("-n/--requests", r.requests.is_some()),
        ("-z/--duration", r.duration.is_some()),
        ("--stages", r.stages.is_some()),
        ("--max-inflight", r.max_inflight.is_some()),
        ("--segment", r.segment.is_some()),
        ("--start-at", r.start_at.is_some()),
        ("--threshold (stress takes --slo)", !r.thresholds.is_empty()),
        ("--warmup (each step's is --settle)", r.warmup.is_some()),
        (
            "--metrics-addr (not for a search yet)",
            r.live.metrics_addr.is_some(),
        ),
        (
            "--progress (a search prints a line per step)",
            r.live.progress != ProgressMode::Auto,
        ),
    ] {
        if given {
            return Err(usage(anyhow!(
                "{flag} does not apply to stress: the search sets the load and each step's length \
                 (--start-rate, --max-rate, --factor, --step, --settle, --vus)"
            )));
        }
    }
    let w = &r.watch;
    if !(w.pids.is_empty() && w.commands.is_empty() && w.scrapes.is_empty()) {
        return Err(usage(anyhow!(
            "--watch-pid/--watch-cmd/--scrape are not read by stress yet: watch the target in a \
             `regbench run` at the rate stress found"
        )));
    }
    if r.think.is_some() && a.vus.is_none() {
        return Err(usage(anyhow!(
            "--think applies to the closed-model sweep (--vus) only"
        )));
    }
    if !(a.factor > 1.0 && a.factor <= 100.0) {
        return Err(usage(anyhow!("--factor must be above 1 and at most 100")));
    }
    if a.start_rate <= 0.0 || a.max_rate < a.start_rate {
        return Err(usage(anyhow!(
            "--start-rate must be above 0 and at most --max-rate"
        )));
    }
    if a.step.is_zero() {
        return Err(usage(anyhow!("--step must be longer than 0s")));
    }
    let knee_ok = a.knee_factor > 1.0 && a.knee_factor.is_finite();
    if !knee_ok || !(0.0..=100.0).contains(&a.burst) {
        return Err(usage(anyhow!(
            "--knee-factor must be above 1, --burst from 0 to 100"
        )));
    }
    Ok(())
}

/// `p(99)<100ms` (latency), `errors<1%` (failed share), or `KEY:EXPR` for any threshold.
fn parse_slo(s: &str) -> Result<Threshold, Failure> {
    let text = s.trim();
    let keyed = text
        .split_once(':')
        .is_some_and(|(k, _)| !k.contains(['<', '>', '=']));
    let parsed = if keyed {
        Threshold::parse_flag(text)
    } else {
        match text.strip_prefix("errors") {
            Some(rest) => Threshold::parse("errors", &format!("rate{}", rest.trim())),
            None => Threshold::parse("latency", text),
        }
    };
    let t = parsed.map_err(|e| usage(anyhow!("--slo '{s}': {e}")))?;
    if t.filter.window().is_some() || t.metric == Metric::Downtime {
        return Err(usage(anyhow!(
            "--slo '{s}': stress has no events; windows and downtime are `regbench run`'s"
        )));
    }
    if t.metric.is_target() {
        return Err(usage(anyhow!(
            "--slo '{s}': a stress step is judged on its requests; the target's resources are \
             watched by `regbench run` (--watch-pid, --scrape)"
        )));
    }
    Ok(t)
}

/// `1,2,4,8` or `1..64` (the powers of two from 1 to 64).
fn parse_levels(s: &str) -> Result<Vec<usize>, Failure> {
    let bad = || {
        usage(anyhow!(
            "--vus '{s}': expected a list such as 1,2,4,8,16 or a range such as 1..64 (powers of two)"
        ))
    };
    let mut levels: Vec<usize> = match s.split_once("..") {
        Some((lo, hi)) => {
            let (lo, hi): (usize, usize) = (
                lo.trim().parse().map_err(|_| bad())?,
                hi.trim().parse().map_err(|_| bad())?,
            );
            let mut v = Vec::new();
            let mut n = lo.max(1);
            while n <= hi {
                v.push(n);
                n *= 2;
            }
            v
        }
        None => s
            .split(',')
            .map(|x| x.trim().parse::<usize>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    };
    levels.sort_unstable();
    levels.dedup();
    if levels.is_empty()
        || levels[0] == 0
        || *levels.last().unwrap_or(&0) > crate::plan::MAX_CONNECTIONS
    {
        return Err(bad());
    }
    Ok(levels)
}

struct Search<'a> {
    a: &'a StressArgs,
    base: Plan,
    slo: Thresholds,
    resolved: connect::Resolved,
    opts: Options,
    started: Instant,
    rows: Vec<StepRow>,
    /// The exit code of the signal that stopped a step.
    interrupted: Option<u8>,
}

/// What one step found.
struct Judged {
    pass: bool,
    generator_bound: bool,
    reason: String,
}

impl Search<'_> {
    fn report(&self, model: &'static str, verdict: Verdict) -> StressReport {
        StressReport {
            target: self.base.target.url.clone(),
            model,
            slo: self
                .slo
                .list
                .iter()
                .map(|t| format!("{} {}", t.key, t.expr))
                .collect(),
            step: self.a.step,
            settle: self.a.settle,
            precision: self.a.precision,
            steps: self.rows.clone(),
            verdict,
            max_sustainable: None,
            first_failing: None,
            generator_saturated: None,
            knee: analysis::knee(&self.levels(), self.a.knee_factor),
            knee_factor: self.a.knee_factor,
            breaking_point: analysis::breaking_point(&self.levels()),
            recovery: None,
            usl: None,
            wall: self.started.elapsed(),
            interrupted: self.interrupted,
        }
    }

    /// The steps so far as the analysis reads them.
    fn levels(&self) -> Vec<Level> {
        self.rows
            .iter()
            .map(|r| Level {
                offered: r.offered,
                achieved: r.achieved,
                p99: r.latency[2],
                error_rate: r.error_rate,
            })
            .collect()
    }

    /// Whether a step of this length still fits in `--max-duration`.
    fn has_time_for(&self, length: Duration) -> bool {
        self.started.elapsed() + length <= self.a.max_duration
    }

    /// Runs `plan` quietly and returns its report; `None` once a signal stopped it.
    fn execute(&mut self, plan: Plan) -> Result<Option<RunReport>, Failure> {
        plan.validate().map_err(usage)?;
        let quiet = OutputArgs {
            outputs: Vec::new(),
            json: false,
            quiet: true,
        };
        let report = execute(
            Arc::new(plan),
            self.resolved,
            None,
            &self.slo,
            Show {
                output: &quiet,
                live: &LiveArgs::NONE,
            },
            self.opts,
            false,
        )?;
        if let Some(sig) = report.info.interrupted {
            self.interrupted = Some(sig.exit_code);
            return Ok(None);
        }
        Ok(Some(report))
    }

    /// Runs one step at `offered` and records its row; `None` when out of time or interrupted.
    fn step(&mut self, phase: &'static str, offered: f64) -> Result<Option<Judged>, Failure> {
        let length = self.a.settle + self.a.step;
        if !self.has_time_for(length) {
            return Ok(None);
        }
        let closed = self.a.vus.is_some();
        let plan = match closed {
            true => self.closed_plan(offered as usize, length),
            false => self.open_plan(
                Profile::constant(offered, Some(length)),
                length,
                self.a.settle,
            ),
        };
        let from = plan.warmup_secs();
        let Some(report) = self.execute(plan)? else {
            return Ok(None);
        };
        let judged = report.agg.judged.as_ref().unwrap_or(&report.agg.total);
        let all = judged.total();
        // Throughput over the judged seconds of the schedule only: responses that come in the
        // grace period after it (a backlog draining) would make it look higher than it was.
        let to = length.as_secs().max(from + 1);
        let done: u64 = report
            .agg
            .series
            .iter()
            .filter(|s| s.t_s >= from && s.t_s < to)
            .map(|s| s.n_requests)
            .sum();
        let lat = Dist::latency(&all);
        let q = |name: &str| (lat.count > 0).then(|| lat.quantile(name)).flatten();
        let error_rate = match all.n_requests {
            0 => 0.0,
            n => all.n_failed() as f64 / n as f64,
        };
        let mut errors: Vec<(String, u64)> = all
            .status
            .iter()
            .filter(|(code, _)| **code >= 400)
            .map(|(code, n)| (code.to_string(), *n))
            .chain(
                crate::sample::ErrorKind::ALL
                    .iter()
                    .filter(|k| all.errors[k.index()] > 0)
                    .map(|k| (k.name().to_string(), all.errors[k.index()])),
            )
            .collect();
        // Most frequent first, then by name: an order a saved result reproduces.
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let slo: Vec<(String, String, bool)> = report
            .thresholds
            .iter()
            .map(|t| {
                let shown = match t.observed {
                    None => "–".to_string(),
                    Some(v) if t.threshold.metric.is_duration() => {
                        fmt_duration(Duration::from_nanos(v as u64))
                    }
                    Some(v)
                        if t.threshold.stat == Stat::Rate
                            && matches!(t.threshold.metric, Metric::Errors | Metric::Checks) =>
                    {
                        format!("{:.2}%", v * 100.0)
                    }
                    Some(v) => format!("{v:.2}"),
                };
                (
                    format!("{} {}", t.threshold.key, t.threshold.expr),
                    shown,
                    t.pass,
                )
            })
            .collect();
        let pass = slo.iter().all(|s| s.2);
        let v = &report.validity;
        let row = StepRow {
            phase,
            offered,
            achieved: done as f64 / (to - from) as f64,
            requests: all.n_requests,
            latency: [q("p50"), q("p95"), q("p99"), q("p99.9")],
            error_rate,
            errors,
            slo,
            slo_pass: pass,
            valid: v.valid,
            generator_bound: v.generator_bound,
            reasons: v.reasons.clone(),
        };
        if !self.a.run.output.quiet {
            eprintln!(
                "regbench: stress {phase} {}: achieved {:.0}/s, p99 {}, errors {:.2}% → SLO {}{}",
                match closed {
                    true => format!("{offered:.0} VUs"),
                    false => format!("{offered:.0}/s"),
                },
                row.achieved,
                row.latency[2].map_or("–".into(), fmt_duration),
                error_rate * 100.0,
                if pass { "met" } else { "FAILED" },
                if v.generator_bound {
                    " (generator-bound)"
                } else {
                    ""
                }
            );
        }
        let judged = Judged {
            pass,
            generator_bound: v.generator_bound,
            reason: v.reasons.join("; "),
        };
        self.rows.push(row);
        Ok(Some(judged))
    }

    /// The base plan at this rate profile: every scenario open, sharing the rate in proportion to
    /// its own (equally when it has none), for `length`.
    fn open_plan(&self, rate: Profile, length: Duration, warmup: Duration) -> Plan {
        let mut p = self.base.clone();
        let weights: Vec<f64> = p
            .scenarios
            .iter()
            .map(|s| match &s.model {
                Model::Open { rate, .. } if rate.max() > 0.0 => rate.max(),
                _ => 1.0,
            })
            .collect();
        let sum: f64 = weights.iter().sum();
        for (s, w) in p.scenarios.iter_mut().zip(weights) {
            let share = w / sum;
            let arrival = match &s.model {
                Model::Open { arrival, .. } => *arrival,
                Model::Closed { .. } => Arrival::Uniform,
            };
            s.model = Model::Open {
                rate: Profile {
                    start: rate.start * share,
                    stages: rate
                        .stages
                        .iter()
                        .map(|st| Stage {
                            duration: st.duration,
                            target: st.target * share,
                        })
                        .collect(),
                    hold: rate.hold,
                },
                arrival,
                max_inflight: s.n_connections,
            };
            s.stop = Stop {
                n_requests: None,
                duration: Some(length),
            };
            s.start_after = Duration::ZERO;
        }
        p.warmup = warmup;
        p.clamp_workers();
        p
    }

    /// The base plan with `vus` virtual users in every scenario, closed model, for `length`.
    fn closed_plan(&self, vus: usize, length: Duration) -> Plan {
        let mut p = self.base.clone();
        for s in &mut p.scenarios {
            s.model = Model::Closed {
                think: self.a.run.think.unwrap_or(Duration::ZERO),
                vus: None,
            };
            s.n_connections = vus;
            s.stop = Stop {
                n_requests: None,
                duration: Some(length),
            };
            s.start_after = Duration::ZERO;
        }
        p.warmup = self.a.settle;
        p.clamp_workers();
        p
    }

    /// The open-model search.
    fn search(&mut self) -> Result<StressReport, Failure> {
        let a = self.a;
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let mut saturated: Option<(f64, String)> = None;
        let mut past_failure = 0;
        let mut rate = a.start_rate;
        let mut verdict = loop {
            let Some(j) = self.step("ramp", rate)? else {
                break self.stopped_verdict();
            };
            if j.generator_bound {
                saturated = Some((rate, j.reason));
                // Past a target-side failure the limit is already bracketed below this rate: only
                // the breaking-point search ends here.
                break match hi {
                    Some(_) => Verdict::Limit,
                    None => Verdict::GeneratorSaturated,
                };
            }
            match (j.pass, hi) {
                (true, None) => lo = Some(rate),
                (false, None) => hi = Some(rate),
                _ => past_failure += 1,
            }
            let broke = analysis::breaking_point(&self.levels()).is_some();
            if hi.is_some() && (broke || past_failure >= STEPS_PAST_FAILURE) {
                break Verdict::Limit;
            }
            if rate >= a.max_rate {
                break match hi {
                    Some(_) => Verdict::Limit,
                    None => Verdict::NoLimitBelowMax,
                };
            }
            rate = (rate * a.factor).min(a.max_rate);
        };
        if verdict == Verdict::Limit {
            verdict = match (lo, hi) {
                (None, Some(_)) => Verdict::FailsAtLowest,
                _ => self.bisect(&mut lo, &mut hi, &mut saturated)?,
            };
        }
        let mut report = self.report("open", verdict);
        report.max_sustainable = lo;
        report.first_failing = hi;
        report.generator_saturated = saturated;
        if verdict == Verdict::Limit {
            if let Some(limit) = lo {
                report.recovery = self.recovery(limit)?;
                if self.interrupted.is_some() {
                    report.verdict = Verdict::Interrupted;
                }
            }
        }
        Ok(report)
    }

    fn stopped_verdict(&self) -> Verdict {
        match self.interrupted {
            Some(_) => Verdict::Interrupted,
            None => Verdict::OutOfTime,
        }
    }

    /// Bisects (geometrically) between the last passing and the first failing rate.
    fn bisect(
        &mut self,
        lo: &mut Option<f64>,
        hi: &mut Option<f64>,
        saturated: &mut Option<(f64, String)>,
    ) -> Result<Verdict, Failure> {
        while let (Some(l), Some(h)) = (*lo, *hi) {
            if h / l - 1.0 <= self.a.precision {
                return Ok(Verdict::Limit);
            }
            let mid = (l * h).sqrt();
            let Some(j) = self.step("bisect", mid)? else {
                return Ok(self.stopped_verdict());
            };
            if j.generator_bound {
                *saturated = Some((mid, j.reason));
                return Ok(Verdict::GeneratorSaturated);
            }
            match j.pass {
                true => *lo = Some(mid),
                false => *hi = Some(mid),
            }
        }
        Ok(Verdict::Limit)
    }

    /// An overload burst at `--burst` × the limit, then half the limit: how long until the SLO
    /// holds again, second by second.
    fn recovery(&mut self, limit: f64) -> Result<Option<Recovery>, Failure> {
        let a = self.a;
        if a.burst == 0.0 || a.burst_for.is_zero() {
            return Ok(None);
        }
        let (burst, safe) = (limit * a.burst, limit / 2.0);
        // A step down 1 ms long: the profile's ramps are linear.
        let drop = Duration::from_millis(1);
        let length = a.burst_for + drop + a.recover_for;
        if !self.has_time_for(length) {
            return Ok(None);
        }
        let profile = Profile {
            start: burst,
            stages: vec![
                Stage {
                    duration: a.burst_for,
                    target: burst,
                },
                Stage {
                    duration: drop,
                    target: safe,
                },
                Stage {
                    duration: a.recover_for,
                    target: safe,
                },
            ],
            hold: false,
        };
        if !a.run.output.quiet {
            eprintln!(
                "regbench: stress recovery: {burst:.0}/s for {}, then {safe:.0}/s for up to {}",
                fmt_duration(a.burst_for),
                fmt_duration(a.recover_for)
            );
        }
        let plan = self.open_plan(profile, length, Duration::ZERO);
        let iteration: Vec<String> = plan
            .tag_specs()
            .iter()
            .filter(|t| t.iteration)
            .map(|t| t.name.clone())
            .collect();
        let Some(report) = self.execute(plan)? else {
            return Ok(None);
        };
        let drop_s = a.burst_for.as_nanos().div_ceil(1_000_000_000) as u64;
        let end_s = (a.burst_for + drop + a.recover_for).as_secs();
        let seconds: Vec<(u64, Option<Duration>, f64, bool)> = report
            .agg
            .series
            .iter()
            .filter(|s| s.t_s >= drop_s && s.t_s < end_s)
            .map(|s| second_within_slo(s, &self.slo.list, &iteration))
            .collect();
        let verdicts: Vec<SecondVerdict> = seconds
            .iter()
            .map(|&(t_s, _, _, within_slo)| SecondVerdict { t_s, within_slo })
            .collect();
        Ok(Some(Recovery {
            burst_rate: burst,
            burst_for: a.burst_for,
            safe_rate: safe,
            window: a.recover_for,
            recovered_after: analysis::recovery(&verdicts, drop_s, STABLE_SECONDS),
            seconds,
        }))
    }

    /// The closed-model sweep.
    fn sweep(&mut self, levels: &[usize]) -> Result<StressReport, Failure> {
        let mut verdict = Verdict::NoLimitBelowMax;
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let mut saturated = None;
        for &n in levels {
            let Some(j) = self.step("sweep", n as f64)? else {
                verdict = self.stopped_verdict();
                break;
            };
            if j.generator_bound {
                saturated = Some((n as f64, j.reason));
                verdict = Verdict::GeneratorSaturated;
                break;
            }
            match (j.pass, hi) {
                (true, None) => lo = Some(n as f64),
                (false, None) => hi = Some(n as f64),
                _ => {}
            }
        }
        if verdict == Verdict::NoLimitBelowMax && hi.is_some() {
            verdict = match lo {
                None => Verdict::FailsAtLowest,
                Some(_) => Verdict::Limit,
            };
        }
        let points: Vec<(f64, f64)> = self.rows.iter().map(|r| (r.offered, r.achieved)).collect();
        let mut report = self.report("closed", verdict);
        report.max_sustainable = lo;
        report.first_failing = hi;
        report.generator_saturated = saturated;
        report.usl = analysis::fit_usl(&points);
        Ok(report)
    }
}

/// One second of the recovery run against the SLO: its p99 and error rate, and whether every SLO
/// that can be judged per second (latency statistics, error rate) held. Other SLOs (checks, rps,
/// ttfb) are judged on whole steps only.
fn second_within_slo(
    s: &SecondStats,
    slo: &[Threshold],
    iteration: &[String],
) -> (u64, Option<Duration>, f64, bool) {
    let selected = |name: &str, filter: &Filter| match filter {
        Filter::All | Filter::Scenario(_) => !iteration.iter().any(|i| i == name),
        Filter::Step(step) => step == name,
        _ => false,
    };
    // Each tag's histograms decoded once (latency with dropped requests' lower bounds), then
    // merged per filter.
    let decoded: Vec<_> = s
        .tags
        .iter()
        .map(|t| {
            let mut h = crate::aggregate::new_histogram();
            for enc in [&t.latency, &t.dropped_lag] {
                if let Ok(d) = crate::aggregate::decode_histogram(enc) {
                    let _ = h.add(&d);
                }
            }
            (t, h)
        })
        .collect();
    let merged = |filter: &Filter| {
        let mut h = crate::aggregate::new_histogram();
        let (mut n, mut failed) = (0u64, 0u64);
        for (t, th) in decoded.iter().filter(|(t, _)| selected(&t.name, filter)) {
            n += t.n_requests;
            failed += t.n_failed;
            let _ = h.add(th);
        }
        (h, n, failed)
    };
    let (all, n, failed) = merged(&Filter::All);
    let p99 = (!all.is_empty()).then(|| Duration::from_nanos(all.value_at_quantile(0.99)));
    let err = if n > 0 { failed as f64 / n as f64 } else { 0.0 };
    let ok = slo.iter().all(|t| {
        let (h, n, failed) = merged(&t.filter);
        let observed = match (t.metric, t.stat) {
            (Metric::Latency, _) if h.is_empty() => return n == 0,
            (Metric::Latency, Stat::P(p)) => h.value_at_quantile(p / 100.0) as f64,
            (Metric::Latency, Stat::Avg) => h.mean(),
            (Metric::Latency, Stat::Max) => h.max() as f64,
            (Metric::Latency, Stat::Min) => h.min() as f64,
            (Metric::Errors, Stat::Rate) if n > 0 => failed as f64 / n as f64,
            (Metric::Errors, Stat::Count) => failed as f64,
            _ => return true,
        };
        t.op.holds(observed, t.bound)
    });
    (s.t_s, p99, err, ok)
}

/// What `stress -o` writes.
pub(crate) const FORMATS: [&str; 3] = ["text", "json", "html"];

/// The report on stdout (text, or JSON with -j / -o json) and in every `-o FORMAT=FILE`.
pub(crate) fn write_outputs(
    r: &StressReport,
    o: &OutputArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let render = |format: &str| match format {
        "json" => format!("{:#}\n", crate::report::stress::json(r)),
        "html" => crate::report::html::render_stress(r),
        _ => crate::report::stress::text(r),
    };
    deliver(o, out, &render, &|_, _| Vec::new())
}
