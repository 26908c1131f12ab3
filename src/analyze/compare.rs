//! `regbench compare`: is a run worse than its baseline beyond noise?
//!
//! Each run is cut into its whole seconds (after the warm-up, inside the schedule's window), each
//! second of each step a small histogram. A metric's point estimate comes from the exact HDR
//! histograms of those seconds; its confidence interval from a bootstrap over seconds — both runs'
//! seconds resampled with replacement, the metric recomputed on log-binned (1%) histograms, 1000
//! times — so that second-to-second variation (GC pauses, noisy neighbours, the target's own
//! cycles) is what the interval is made of, not the request count. A change is *significant* when
//! its 95% interval excludes no change; a *regression* when it is significant, on the worse side,
//! and its point estimate is beyond the allowed limit. docs/compare.md has the measured false
//! positive rate.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::aggregate::{decode_histogram, new_histogram, SecondStats};
use crate::util::Rng;

/// Resamples of the bootstrap.
pub const RESAMPLES: usize = 1000;
/// Log bins: each 1% wide.
const BIN_RATIO: f64 = 1.01;
/// An error rate must rise by at least this much (absolute) to count: from 0 to 0.01% is noise.
const ERROR_FLOOR: f64 = 0.001;

/// What `--metric` compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A latency percentile (0.99 for `p99`).
    Quantile(f64),
    /// Requests per second.
    Rps,
    /// Failed ÷ requests.
    Errors,
}

impl Metric {
    /// `p50`, `p99`, `p99.9`, `rps`, `errors`.
    pub fn parse(s: &str) -> Result<Metric, String> {
        match s {
            "rps" => Ok(Metric::Rps),
            "errors" => Ok(Metric::Errors),
            _ => s
                .strip_prefix('p')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| *p > 0.0 && *p < 100.0)
                .map(|p| Metric::Quantile(p / 100.0))
                .ok_or_else(|| {
                    format!(
                        "'{s}' is not a metric to compare (expected pN like p99, rps or errors)"
                    )
                }),
        }
    }

    pub fn name(self) -> String {
        match self {
            Metric::Quantile(q) => {
                let p = format!("{:.4}", q * 100.0);
                format!("p{}", p.trim_end_matches('0').trim_end_matches('.'))
            }
            Metric::Rps => "rps".into(),
            Metric::Errors => "errors".into(),
        }
    }

    /// Latency and errors get worse going up, throughput going down.
    fn worse_is_up(self) -> bool {
        !matches!(self, Metric::Rps)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Significantly worse, beyond the allowed limit: the gate fails.
    Regressed,
    /// Significantly worse, but within the limit.
    WorseWithinLimit,
    Improved,
    NoSignificantChange,
    /// Too few whole seconds (or no requests) in one of the runs to say.
    NotEnoughData,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::WorseWithinLimit => "worse within limit",
            Verdict::Improved => "improved",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::NotEnoughData => "not enough data",
        }
    }
}

/// One metric of one step, base against new.
#[derive(Clone, Debug)]
pub struct Change {
    /// A step's name, or `all` (every request).
    pub step: String,
    pub metric: Metric,
    /// Nanoseconds for a percentile, per second for rps, a fraction for errors.
    pub base: f64,
    pub new: f64,
    /// The relative change (new ÷ base − 1); for errors the absolute difference of the rates.
    pub change: f64,
    /// Its 95% confidence interval.
    pub low: f64,
    pub high: f64,
    pub verdict: Verdict,
}

/// One whole second of one step.
#[derive(Clone, Debug, Default)]
struct Second {
    /// Non-empty 1% log bins of its latencies: (bin, count).
    bins: Vec<(i32, u64)>,
    requests: u64,
    failed: u64,
}

/// One run, cut into seconds per step.
#[derive(Debug, Default)]
pub struct Seconds {
    steps: BTreeMap<String, (Vec<Second>, Histogram<u64>)>,
    pub n_seconds: usize,
}

impl Seconds {
    /// The whole seconds `from ..< until` of `series`; `iteration(name)` marks whole-iteration tags,
    /// left out of `all`.
    pub fn of(
        series: &[SecondStats],
        from: u64,
        until: u64,
        iteration: &dyn Fn(&str) -> bool,
    ) -> Result<Seconds, String> {
        let mut out = Seconds::default();
        for s in series.iter().filter(|s| s.t_s >= from && s.t_s < until) {
            out.n_seconds += 1;
            let mut all = Second::default();
            let mut all_h = new_histogram();
            for t in &s.tags {
                let mut h = decode_histogram(&t.latency)?;
                let _ = h.add(decode_histogram(&t.dropped_lag)?);
                let second = Second {
                    bins: bins(&h),
                    requests: t.n_requests,
                    failed: t.n_failed,
                };
                let entry = out
                    .steps
                    .entry(t.name.clone())
                    .or_insert_with(|| (Vec::new(), new_histogram()));
                let _ = entry.1.add(&h);
                if !iteration(&t.name) {
                    all.requests += t.n_requests;
                    all.failed += t.n_failed;
                    let _ = all_h.add(&h);
                }
                entry.0.push(second);
            }
            all.bins = bins(&all_h);
            let entry = out
                .steps
                .entry("all".into())
                .or_insert_with(|| (Vec::new(), new_histogram()));
            let _ = entry.1.add(&all_h);
            entry.0.push(all);
        }
        // A step that saw nothing in some seconds still has those seconds (with nothing in them).
        for (secs, _) in out.steps.values_mut() {
            secs.resize(out.n_seconds, Second::default());
        }
        Ok(out)
    }

    pub fn step_names(&self) -> impl Iterator<Item = &String> {
        self.steps.keys()
    }
}

fn bins(h: &Histogram<u64>) -> Vec<(i32, u64)> {
    let mut out: Vec<(i32, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let b = bin(v.value_iterated_to());
        match out.last_mut() {
            Some((last, n)) if *last == b => *n += v.count_at_value(),
            _ => out.push((b, v.count_at_value())),
        }
    }
    out
}

fn bin(ns: u64) -> i32 {
    ((ns.max(1) as f64).ln() / BIN_RATIO.ln()).floor() as i32
}

fn bin_value(b: i32) -> f64 {
    BIN_RATIO.powf(b as f64 + 0.5)
}

/// The metric over `seconds` picked by `pick` (indexes), from the binned histograms.
fn binned(metric: Metric, seconds: &[Second], pick: &[usize], scratch: &mut Scratch) -> f64 {
    match metric {
        Metric::Rps => {
            pick.iter().map(|&i| seconds[i].requests).sum::<u64>() as f64 / pick.len().max(1) as f64
        }
        Metric::Errors => {
            let (f, r) = pick.iter().fold((0, 0), |(f, r), &i| {
                (f + seconds[i].failed, r + seconds[i].requests)
            });
            f as f64 / r.max(1) as f64
        }
        Metric::Quantile(q) => {
            let (lo, hi) = pick
                .iter()
                .flat_map(|&i| seconds[i].bins.iter().map(|(b, _)| *b))
                .fold((i32::MAX, i32::MIN), |(lo, hi), b| (lo.min(b), hi.max(b)));
            if lo > hi {
                return f64::NAN;
            }
            scratch.counts.clear();
            scratch.counts.resize((hi - lo + 1) as usize, 0);
            let mut total = 0;
            for &i in pick {
                for (b, n) in &seconds[i].bins {
                    scratch.counts[(b - lo) as usize] += n;
                    total += n;
                }
            }
            // The value at quantile q: the first bin where the running count reaches q·total.
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (k, n) in scratch.counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return bin_value(lo + k as i32);
                }
            }
            f64::NAN
        }
    }
}

/// Counts per bin, reused by every resample.
#[derive(Default)]
struct Scratch {
    counts: Vec<u64>,
}

/// The exact metric over all of a step's seconds.
fn exact(metric: Metric, seconds: &[Second], h: &Histogram<u64>) -> f64 {
    match metric {
        Metric::Quantile(q) if !h.is_empty() => h.value_at_quantile(q) as f64,
        Metric::Quantile(_) => f64::NAN,
        _ => {
            let all: Vec<usize> = (0..seconds.len()).collect();
            binned(metric, seconds, &all, &mut Scratch::default())
        }
    }
}

/// The change from `base` to `new` of `metric`: relative, or for errors the absolute difference.
fn change(metric: Metric, base: f64, new: f64) -> f64 {
    match metric {
        Metric::Errors => new - base,
        _ => new / base - 1.0,
    }
}

/// Compares `step`'s `metric` between the runs; `limit` is the allowed worsening (0.2 = 20%).
pub fn compare(
    step: &str,
    metric: Metric,
    base: &Seconds,
    new: &Seconds,
    limit: f64,
    seed: u64,
) -> Change {
    bootstrap(step, metric, (base, new), limit, seed, RESAMPLES)
}

/// [`compare`] with `resamples` resamples (the tests measure the false positive rate with fewer).
fn bootstrap(
    step: &str,
    metric: Metric,
    (base, new): (&Seconds, &Seconds),
    limit: f64,
    seed: u64,
    resamples: usize,
) -> Change {
    let empty = (Vec::new(), new_histogram());
    let (bs, bh) = base.steps.get(step).unwrap_or(&empty);
    let (ns, nh) = new.steps.get(step).unwrap_or(&empty);
    let (b, n) = (exact(metric, bs, bh), exact(metric, ns, nh));
    let mut out = Change {
        step: step.to_string(),
        metric,
        base: b,
        new: n,
        change: change(metric, b, n),
        low: f64::NAN,
        high: f64::NAN,
        verdict: Verdict::NotEnoughData,
    };
    let requests = |s: &[Second]| s.iter().map(|x| x.requests).sum::<u64>();
    if bs.len() < 2
        || ns.len() < 2
        || requests(bs) == 0
        || requests(ns) == 0
        || !b.is_finite()
        || !n.is_finite()
    {
        return out;
    }
    let mut rng = Rng::new(seed);
    let mut scratch = Scratch::default();
    let mut changes: Vec<f64> = Vec::with_capacity(resamples);
    let (mut pb, mut pn) = (vec![0; bs.len()], vec![0; ns.len()]);
    for _ in 0..resamples {
        for p in pb.iter_mut() {
            *p = (rng.next_u64() % bs.len() as u64) as usize;
        }
        for p in pn.iter_mut() {
            *p = (rng.next_u64() % ns.len() as u64) as usize;
        }
        let c = change(
            metric,
            binned(metric, bs, &pb, &mut scratch),
            binned(metric, ns, &pn, &mut scratch),
        );
        if c.is_finite() {
            changes.push(c);
        }
    }
    if changes.len() < resamples / 2 {
        return out;
    }
    changes.sort_by(f64::total_cmp);
    let at = |q: f64| changes[((q * changes.len() as f64) as usize).min(changes.len() - 1)];
    // The resamples are on 1% bins; the point estimate is exact. Shift the interval by what binning
    // moved the whole runs' change, so that it is about the exact estimate.
    let all = |n: usize| (0..n).collect::<Vec<usize>>();
    let binned_change = change(
        metric,
        binned(metric, bs, &all(bs.len()), &mut scratch),
        binned(metric, ns, &all(ns.len()), &mut scratch),
    );
    let shift = match binned_change.is_finite() {
        true => out.change - binned_change,
        false => 0.0,
    };
    out.low = at(0.025) + shift;
    out.high = at(0.975) + shift;
    let up = metric.worse_is_up();
    // Worse, better: the interval lies wholly on that side of no change.
    let worse = if up { out.low > 0.0 } else { out.high < 0.0 };
    let better = if up { out.high < 0.0 } else { out.low > 0.0 };
    let beyond = match metric {
        Metric::Errors => n > b * (1.0 + limit) && out.change > ERROR_FLOOR,
        _ if up => out.change > limit,
        _ => out.change < -limit,
    };
    out.verdict = match (worse, better, beyond) {
        (true, _, true) => Verdict::Regressed,
        (true, _, false) => Verdict::WorseWithinLimit,
        (_, true, _) => Verdict::Improved,
        _ => Verdict::NoSignificantChange,
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{encode_histogram, Dist, SecondTag};

    /// `n` seconds of `per_second` latencies each: a bell-shaped body around `median_ms`, a slow
    /// tail, and a slow second now and then (GC), drawn from `rng`.
    fn run(rng: &mut Rng, n: u64, per_second: u64, median_ms: f64) -> Vec<SecondStats> {
        (0..n)
            .map(|t| {
                let mut h = new_histogram();
                let slow = rng.next_u64().is_multiple_of(10);
                for _ in 0..per_second {
                    // Sum of uniforms: a bell around 1, times a heavy factor now and then.
                    let u: f64 = (0..4).map(|_| rng.next_f64()).sum::<f64>() / 2.0;
                    // 3% of requests 2–4× slower (a cache miss, a slow path).
                    let tail = match rng.next_u64() % 100 < 3 {
                        true => 2.0 + 2.0 * rng.next_f64(),
                        false => 1.0,
                    };
                    let gc = if slow { 1.3 } else { 1.0 };
                    let _ = h.record((median_ms * 1e6 * u * tail * gc) as u64);
                }
                let mut s = SecondStats::empty(t);
                s.n_requests = per_second;
                s.latency = Dist::of(&h);
                s.tags.push(SecondTag {
                    name: "get".into(),
                    n_requests: per_second,
                    n_failed: 0,
                    n_dropped: 0,
                    latency: encode_histogram(&h),
                    service_time: encode_histogram(&h),
                    dropped_lag: encode_histogram(&new_histogram()),
                });
                s
            })
            .collect()
    }

    fn seconds(rng: &mut Rng, n: u64, median_ms: f64) -> Seconds {
        Seconds::of(&run(rng, n, 150, median_ms), 0, n, &|_| false).unwrap()
    }

    /// The false positive rate on 15-second runs whose p99 moves from run to run as a real target's
    /// does (slow seconds, a slow tail): pairs drawn from one distribution are flagged in at most
    /// 10% of trials with no allowance and 5% with a 20% one; a target 30% slower is caught in at
    /// least 75%.
    #[test]
    fn false_positives_are_rare_and_a_30_percent_slowdown_is_caught() {
        let mut rng = Rng::new(11);
        let trials = 40;
        let (mut fp_strict, mut fp_limit, mut caught) = (0, 0, 0);
        for k in 0..trials {
            let base = seconds(&mut rng, 15, 10.0);
            let same = seconds(&mut rng, 15, 10.0);
            let slow = seconds(&mut rng, 15, 13.0);
            let p99 = Metric::Quantile(0.99);
            let seed = k as u64;
            // 300 resamples instead of the command's 1,000: the same verdicts here, a third of the
            // CPU (this test shares the machine with the rest of the suite).
            let gate = |new: &Seconds, limit: f64| {
                bootstrap("get", p99, (&base, new), limit, seed, 300).verdict == Verdict::Regressed
            };
            fp_strict += usize::from(gate(&same, 0.0));
            fp_limit += usize::from(gate(&same, 0.2));
            caught += usize::from(gate(&slow, 0.2));
        }
        // Measured (docs/compare.md): 1 of 40 flagged at 0%, none at 20%; 30 of 40 slowdowns caught.
        eprintln!("fp_strict {fp_strict} fp_limit {fp_limit} caught {caught} of {trials}");
        assert!(
            fp_strict <= trials / 10,
            "{fp_strict} of {trials} same-distribution pairs flagged at 0%"
        );
        assert!(
            fp_limit <= trials / 20,
            "{fp_limit} of {trials} flagged with a 20% allowance"
        );
        assert!(
            caught >= trials * 3 / 4,
            "a 30% slowdown caught {caught} of {trials} times"
        );
    }

    #[test]
    fn metrics_parse_and_name() {
        assert_eq!(Metric::parse("p99").unwrap(), Metric::Quantile(0.99));
        assert_eq!(Metric::parse("p99.9").unwrap().name(), "p99.9");
        assert_eq!(Metric::parse("rps").unwrap(), Metric::Rps);
        assert!(Metric::parse("p100").is_err());
        assert!(Metric::parse("latency").is_err());
    }

    #[test]
    fn too_few_seconds_say_so() {
        let mut rng = Rng::new(3);
        let one = seconds(&mut rng, 1, 10.0);
        let c = compare("get", Metric::Rps, &one, &one, 0.2, 1);
        assert_eq!(c.verdict, Verdict::NotEnoughData);
    }
}
