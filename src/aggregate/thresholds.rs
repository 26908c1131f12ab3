//! Evaluating thresholds on merged statistics: a threshold's value is computed from the histograms
//! and counters of the tags it selects, merged — so a distributed run's merged shards give exactly
//! the verdict one process would have.

use std::ops::Range;
use std::time::Duration;

use super::{Summary, TagStats, WindowStats};
use hdrhistogram::Histogram;

use crate::plan::threshold::{Filter, Metric, Op, Stat, Threshold};

/// A threshold's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdResult {
    pub threshold: Threshold,
    /// `None` when nothing was measured (no requests, no checks): that fails.
    pub observed: Option<f64>,
    /// What the observed value was made of, for people (a ratio's two sides).
    pub detail: Option<String>,
    /// The observed value is only a lower bound (a latency statistic with dropped requests in it): a
    /// threshold that needs it to be small fails, since the true value is unknown.
    pub censored: bool,
    pub pass: bool,
}

/// Evaluates `t` over `total` for a run of `duration`. `scenario_tags` gives a scenario's tags.
pub fn evaluate(
    t: &Threshold,
    total: &Summary,
    duration: Duration,
    scenario_tags: &dyn Fn(&str) -> Option<Range<usize>>,
) -> ThresholdResult {
    evaluate_in(t, total, duration, scenario_tags, &[])
}

/// As [`evaluate`], for a plan with event windows (`windows`: their names, in plan order — the
/// order of `TagStats::during`).
pub fn evaluate_in(
    t: &Threshold,
    total: &Summary,
    duration: Duration,
    scenario_tags: &dyn Fn(&str) -> Option<Range<usize>>,
    windows: &[&str],
) -> ThresholdResult {
    if t.metric == Metric::Downtime {
        // No failure, no outage: zero, which a `max<…` threshold passes.
        let v = total.downtime.longest_ns as f64;
        return verdict(t, Some(v), false);
    }
    let selected: Vec<&TagStats> = total
        .tags
        .iter()
        .enumerate()
        .filter(|(i, tag)| match t.filter.base() {
            Filter::All => !tag.iteration,
            Filter::Step(name) => tag.name == *name,
            Filter::Scenario(name) => scenario_tags(name).is_some_and(|r| r.contains(i)),
            // The target's metrics are judged by analyze::target, not on requests.
            _ => false,
        })
        .map(|(_, tag)| tag)
        .collect();
    // Window `name`'s index in `during` ("outside" is the last).
    let index = |name: &str| match name {
        "outside" => Some(windows.len()),
        n => windows.iter().position(|w| *w == n),
    };
    let merged_window = |k: usize| {
        let mut w = WindowStats::new();
        let mut any = false;
        for tag in &selected {
            if let Some(x) = tag.during.get(k) {
                w += x;
                any = true;
            }
        }
        any.then_some(w)
    };
    match &t.filter {
        Filter::During { window, .. } => {
            let observed = index(window)
                .and_then(merged_window)
                .and_then(|w| observe_window(t, &w));
            verdict(t, observed, false)
        }
        Filter::Relative { window, .. } => {
            let during = index(window).and_then(merged_window);
            let outside = merged_window(windows.len());
            let sides = match (during, outside) {
                (Some(d), Some(o)) => stat(t.stat, &d.latency).zip(stat(t.stat, &o.latency)),
                _ => None,
            };
            let ratio = sides.filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
            let mut v = verdict(t, ratio, false);
            v.detail = sides.map(|(a, b)| {
                let d = |ns: f64| crate::util::fmt_duration(Duration::from_nanos(ns as u64));
                let name = match t.stat {
                    Stat::P(p) => format!("p{p}"),
                    Stat::Avg => "mean".into(),
                    Stat::Min => "min".into(),
                    _ => "max".into(),
                };
                format!("{name} during {window} {}, outside {}", d(a), d(b))
            });
            v
        }
        _ => {
            let mut merged = TagStats::new("threshold");
            for tag in &selected {
                merged += tag;
            }
            let (observed, censored) = match selected.is_empty() {
                true => (None, false),
                false => observe(t, &merged, duration),
            };
            verdict(t, observed, censored)
        }
    }
}

fn verdict(t: &Threshold, observed: Option<f64>, censored: bool) -> ThresholdResult {
    // A lower bound proves only `>`/`≥`; anything else cannot be known to hold.
    let provable = !censored || matches!(t.op, Op::Gt | Op::Ge);
    ThresholdResult {
        threshold: t.clone(),
        pass: provable && observed.is_some_and(|v| t.op.holds(v, t.bound)),
        observed,
        censored,
        detail: None,
    }
}

/// A statistic of the requests of one window.
fn observe_window(t: &Threshold, w: &WindowStats) -> Option<f64> {
    match (t.metric, t.stat) {
        (Metric::Errors, Stat::Rate) => {
            (w.n_requests > 0).then(|| w.n_failed as f64 / w.n_requests as f64)
        }
        (Metric::Errors, Stat::Count) => Some(w.n_failed as f64),
        (Metric::Latency | Metric::ServiceTime | Metric::Ttfb, s) => stat(s, &w.latency),
        _ => None,
    }
}

/// The threshold's statistic, and whether it is only a lower bound.
fn observe(t: &Threshold, s: &TagStats, duration: Duration) -> (Option<f64>, bool) {
    let hist = match t.metric {
        // Dropped requests count at their lag when dropped: a lower bound (Dist::latency).
        Metric::Latency if !s.dropped_lag.is_empty() => {
            let mut both = s.latency.clone();
            super::summary::merge(&mut both, &s.dropped_lag);
            let censored = match t.stat {
                Stat::P(p) => super::summary::is_censored(s, &both, p / 100.0),
                Stat::Min => false,
                _ => true,
            };
            let v = stat(t.stat, &both);
            return (v, censored && v.is_some());
        }
        Metric::Latency => Some(&s.latency),
        Metric::ServiceTime => Some(&s.service_time),
        Metric::Ttfb => Some(&s.ttfb),
        _ => None,
    };
    if let Some(h) = hist {
        return (stat(t.stat, h), false);
    }
    (observe_count(t, s, duration), false)
}

fn stat(stat: Stat, h: &Histogram<u64>) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::P(p) => h.value_at_quantile(p / 100.0) as f64,
        Stat::Avg => h.mean(),
        Stat::Min => h.min() as f64,
        Stat::Max => h.max() as f64,
        Stat::Rate | Stat::Count | Stat::Last | Stat::Slope => return None,
    })
}

fn observe_count(t: &Threshold, s: &TagStats, duration: Duration) -> Option<f64> {
    match (t.metric, t.stat) {
        (Metric::Errors, Stat::Rate) => {
            (s.n_requests > 0).then(|| s.n_failed() as f64 / s.n_requests as f64)
        }
        (Metric::Errors, Stat::Count) => Some(s.n_failed() as f64),
        (Metric::Grpc(code), stat) => {
            let n = s.grpc.get(&code).copied().unwrap_or(0) as f64;
            match stat {
                Stat::Rate => (s.n_requests > 0).then(|| n / s.n_requests as f64),
                _ => Some(n),
            }
        }
        (Metric::Checks, stat) => {
            let (passed, failed) = s.check_totals();
            match stat {
                Stat::Rate => {
                    (passed + failed > 0).then(|| passed as f64 / (passed + failed) as f64)
                }
                _ => Some(failed as f64),
            }
        }
        (Metric::Rps, _) => {
            let secs = duration.as_secs_f64();
            (secs > 0.0).then(|| s.n_requests as f64 / secs)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Outcome, Sample};
    use std::time::Instant;

    fn threshold(key: &str, expr: &str) -> Threshold {
        Threshold::parse(key, expr).unwrap()
    }

    /// Two steps: "fast" answers in 1 ms, "slow" in 100 ms, one of its 10 requests a 500.
    fn summary() -> Summary {
        let mut s = Summary::new(&["fast", "slow"]);
        let base = Instant::now();
        for (tag, ms) in [(0usize, 1u64), (1, 100)] {
            for i in 0..10 {
                let status = if tag == 1 && i == 0 { 500 } else { 200 };
                s.tags[tag].record(&Sample {
                    tag: tag as u16,
                    intended: base,
                    sent: base,
                    first_byte: Some(base),
                    done: base + Duration::from_millis(ms),
                    outcome: Outcome::Status(status),
                    bytes_in: 1,
                    body_bytes: 1,
                    coding: crate::sample::Coding::Identity,
                    decoded_bytes: 1,
                    bytes_out: 1,
                    connect: None,
                    tls: None,
                    reused: false,
                });
            }
        }
        s.tags[0].checks.push(crate::aggregate::CheckCount {
            name: "c".into(),
            passed: 99,
            failed: 1,
        });
        s
    }

    #[test]
    fn verdicts_follow_the_selected_tags() {
        let s = summary();
        let none = |_: &str| None;
        let scen = |n: &str| (n == "both").then_some(0..2);
        let eval =
            |k: &str, e: &str| evaluate(&threshold(k, e), &s, Duration::from_secs(10), &scen);
        assert!(eval("latency{step:fast}", "p(99)<2ms").pass);
        assert!(!eval("latency{step:slow}", "p(99)<2ms").pass);
        assert!(
            !eval("latency", "p(95)<50ms").pass,
            "all requests: the slow half fails it"
        );
        assert!(eval("latency{scenario:both}", "max<101ms").pass);
        let errors = eval("errors", "rate<0.01");
        assert!(!errors.pass);
        assert_eq!(errors.observed, Some(0.05));
        assert!(eval("errors{step:fast}", "count==0").pass);
        assert!(eval("checks", "rate>=0.99").pass);
        assert!(!eval("checks", "rate>0.99").pass);
        assert_eq!(eval("rps", "rate>1").observed, Some(2.0));
        let missing = evaluate(
            &threshold("latency{step:nope}", "p(95)<1s"),
            &s,
            Duration::from_secs(1),
            &none,
        );
        assert_eq!(
            (missing.observed, missing.pass),
            (None, false),
            "nothing measured fails"
        );
    }

    #[test]
    fn merged_shards_give_the_same_verdicts() {
        let whole = summary();
        let mut a = Summary::new(&["fast", "slow"]);
        let b = whole.clone();
        a += &Summary::new(&["fast", "slow"]);
        a += &b;
        let none = |_: &str| None;
        for (k, e) in [
            ("latency", "p(90)<50ms"),
            ("errors", "rate<0.1"),
            ("checks", "rate>0.9"),
        ] {
            let t = threshold(k, e);
            assert_eq!(
                evaluate(&t, &a, Duration::from_secs(1), &none),
                evaluate(&t, &whole, Duration::from_secs(1), &none)
            );
        }
    }
}
