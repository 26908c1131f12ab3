//! Verdicts on the watched target (`telemetry`): each series' min/mean/max/last, its trend (a
//! least-squares slope with a 95% confidence interval — the leak detector of a soak), and the
//! thresholds on target metrics.

use crate::aggregate::ThresholdResult;
use crate::plan::threshold::{Filter, Metric, Stat, Threshold};
use crate::plan::watch::PROCESS_METRICS;
use crate::telemetry::{Series, Telemetry};

/// A series' values over the judged seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub last: f64,
}

/// The values of `points` from second `from` on.
fn judged(points: &[(u64, f64)], from: u64) -> impl Iterator<Item = (u64, f64)> + '_ {
    points.iter().copied().filter(move |(t, _)| *t >= from)
}

pub fn summarize(points: &[(u64, f64)], from: u64) -> Option<Summary> {
    let mut s = Summary {
        n: 0,
        min: f64::INFINITY,
        mean: 0.0,
        max: f64::NEG_INFINITY,
        last: 0.0,
    };
    let mut sum = 0.0;
    for (_, v) in judged(points, from) {
        s.n += 1;
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        s.last = v;
        sum += v;
    }
    (s.n > 0).then(|| Summary {
        mean: sum / s.n as f64,
        ..s
    })
}

/// Which way a series went, by its confidence interval and by how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Grows,
    Shrinks,
    /// No trend: the interval holds zero, or the fitted change over the window is below 1% of
    /// the series' level (page-sized wobbles of a steady RSS are not a leak).
    Flat,
}

/// The least-squares line through a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    /// Units per second.
    pub slope: f64,
    /// The slope's 95% confidence interval (Student's t with n − 2 degrees of freedom).
    pub lo: f64,
    pub hi: f64,
    pub r2: f64,
    pub n: usize,
    /// Seconds the fit spans.
    pub span: f64,
    pub direction: Direction,
}

/// Fits `points` from second `from` on; `None` with fewer than 3 points.
pub fn trend(points: &[(u64, f64)], from: u64) -> Option<Trend> {
    let xs: Vec<(f64, f64)> = judged(points, from).map(|(t, v)| (t as f64, v)).collect();
    let n = xs.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = xs.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = xs.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = xs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = xs.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let ss_res = (syy - slope * sxy).max(0.0);
    let r2 = if syy > 0.0 { 1.0 - ss_res / syy } else { 0.0 };
    let se = (ss_res / (nf - 2.0) / sxx).sqrt();
    let half = t_975(n - 2) * se;
    let span = xs[n - 1].0 - xs[0].0;
    let material = (slope * span).abs() >= 0.01 * my.abs();
    let direction = match (slope - half > 0.0, slope + half < 0.0, material) {
        (true, _, true) => Direction::Grows,
        (_, true, true) => Direction::Shrinks,
        _ => Direction::Flat,
    };
    Some(Trend {
        slope,
        lo: slope - half,
        hi: slope + half,
        r2,
        n,
        span,
        direction,
    })
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (a two-sided 95% interval):
/// tabled up to 10, a Cornish–Fisher expansion (error < 0.1%) above.
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 11] = [
        f64::INFINITY,
        12.706,
        4.303,
        3.182,
        2.776,
        2.571,
        2.447,
        2.365,
        2.306,
        2.262,
        2.228,
    ];
    match TABLE.get(df) {
        Some(t) => *t,
        None => {
            let z: f64 = 1.959_964;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
                + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z)
                    / (384.0 * d * d * d)
        }
    }
}

/// The series a target threshold reads: its watch (the named one, or the first that has it) and
/// the series' name.
pub fn series_of<'a>(t: &Threshold, tel: &'a Telemetry) -> Option<&'a Series> {
    let Filter::Target { watch, name } = t.filter.base() else {
        return None;
    };
    let wanted = match t.metric {
        Metric::Process { index, .. } => PROCESS_METRICS.get(index)?.to_string(),
        _ => name.clone()?,
    };
    tel.series
        .iter()
        .find(|s| s.name == wanted && watch.as_ref().is_none_or(|w| *w == s.watch))
}

/// Judges a threshold on a target metric over the seconds from `from` on. No data fails.
pub fn evaluate(t: &Threshold, tel: &Telemetry, from: u64) -> ThresholdResult {
    evaluate_in(t, tel, from, &[])
}

/// As [`evaluate`]; a threshold `{during:W}` reads only the seconds that overlap window W's
/// occurrences (`windows`: name, opened, closed — after the run's start), `outside` the others.
pub fn evaluate_in(
    t: &Threshold,
    tel: &Telemetry,
    from: u64,
    windows: &[(&str, std::time::Duration, std::time::Duration)],
) -> ThresholdResult {
    let overlaps = |sec: u64, name: &str| {
        let (a, b) = (sec as f64, sec as f64 + 1.0);
        windows
            .iter()
            .filter(|(n, _, _)| *n == name || name == "outside")
            .any(|(_, open, close)| open.as_secs_f64() < b && close.as_secs_f64() > a)
    };
    let keep = |sec: u64| match t.filter.window() {
        None => true,
        Some("outside") => !overlaps(sec, "outside"),
        Some(w) => overlaps(sec, w),
    };
    let observed = series_of(t, tel).and_then(|s| {
        let kept: Vec<(u64, f64)> = s.points.iter().copied().filter(|(t, _)| keep(*t)).collect();
        let points = &kept;
        match t.stat {
            Stat::Slope => trend(points, from).map(|tr| tr.slope),
            Stat::Min => summarize(points, from).map(|s| s.min),
            Stat::Max => summarize(points, from).map(|s| s.max),
            Stat::Avg => summarize(points, from).map(|s| s.mean),
            Stat::Last => summarize(points, from).map(|s| s.last),
            Stat::P(p) => {
                let mut v: Vec<f64> = judged(points, from).map(|(_, v)| v).collect();
                v.sort_by(f64::total_cmp);
                // The nearest rank, as the request percentiles are.
                let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
                v.get(rank.clamp(1, v.len().max(1)) - 1).copied()
            }
            Stat::Rate | Stat::Count => None,
        }
    });
    ThresholdResult {
        threshold: t.clone(),
        pass: observed.is_some_and(|v| t.op.holds(v, t.bound)),
        observed,
        censored: false,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64, slope: f64, noise: f64) -> Vec<(u64, f64)> {
        // A deterministic wobble, so the test is the same every time.
        (0..n)
            .map(|t| {
                let wobble = ((t * 7919) % 13) as f64 / 12.0 - 0.5;
                (t, 50e6 + slope * t as f64 + noise * wobble)
            })
            .collect()
    }

    #[test]
    fn a_leak_is_found_with_its_slope() {
        let mib = 1024.0 * 1024.0;
        let tr = trend(&line(30, mib, 200e3), 0).unwrap();
        assert!((tr.slope - mib).abs() < 0.02 * mib, "{tr:?}");
        assert!(tr.lo < mib && mib < tr.hi && tr.lo > 0.0);
        assert!(tr.r2 > 0.99);
        assert_eq!(tr.direction, Direction::Grows);
    }

    #[test]
    fn a_flat_series_is_not_a_leak() {
        // Noisy but steady: the interval holds zero.
        let tr = trend(&line(30, 0.0, 2e6), 0).unwrap();
        assert_eq!(tr.direction, Direction::Flat, "{tr:?}");
        assert!(tr.lo < 0.0 && tr.hi > 0.0);
        // Steady but for one page now and then: significant, yet immaterial.
        let pages: Vec<(u64, f64)> = (0..60)
            .map(|t| (t, 50e6 + 4096.0 * (t / 20) as f64))
            .collect();
        let tr = trend(&pages, 0).unwrap();
        assert!(tr.lo > 0.0);
        assert_eq!(tr.direction, Direction::Flat, "{tr:?}");
        // The warm-up is left out of the fit.
        let mut warm: Vec<(u64, f64)> = (0..5).map(|t| (t, 10e6 * t as f64)).collect();
        warm.extend((5..30).map(|t| (t, 50e6)));
        assert_eq!(trend(&warm, 5).unwrap().direction, Direction::Flat);
        assert_eq!(trend(&warm, 0).unwrap().direction, Direction::Grows);
    }

    #[test]
    fn t_quantiles() {
        for (df, t) in [
            (3, 3.182),
            (5, 2.571),
            (10, 2.228),
            (28, 2.048),
            (100, 1.984),
        ] {
            assert!((t_975(df) - t).abs() < 0.005 * t, "df {df}: {}", t_975(df));
        }
    }

    #[test]
    fn target_thresholds_read_the_seconds_of_a_window() {
        use crate::telemetry::{Series, Unit};
        use std::time::Duration;
        // CPU: 0.1 cores but 1.0 in seconds 3 and 4, when a sync ran (3.2 s – 4.5 s).
        let points = (0..8)
            .map(|t| (t, if t == 3 || t == 4 { 1.0 } else { 0.1 }))
            .collect();
        let tel = Telemetry {
            series: vec![Series {
                watch: "reg".into(),
                name: "cpu".into(),
                unit: Unit::Cores,
                points,
            }],
            ..Telemetry::default()
        };
        let sync = [(
            "sync",
            Duration::from_millis(3200),
            Duration::from_millis(4500),
        )];
        let max = |key: &str| {
            let t = Threshold::parse(key, "max<0.5").unwrap();
            evaluate_in(&t, &tel, 0, &sync).observed
        };
        assert_eq!(max("target_cpu{during:sync}"), Some(1.0));
        assert_eq!(max("target_cpu{during:outside}"), Some(0.1));
        assert_eq!(max("target_cpu"), Some(1.0));
        let t = Threshold::parse("target_cpu{pid:reg,during:sync}", "avg<0.5").unwrap();
        assert_eq!(evaluate_in(&t, &tel, 0, &sync).observed, Some(1.0));
    }

    #[test]
    fn summaries_from_the_judged_seconds() {
        let s = summarize(&[(0, 100.0), (1, 2.0), (2, 4.0)], 1).unwrap();
        assert_eq!((s.n, s.min, s.mean, s.max, s.last), (2, 2.0, 3.0, 4.0, 4.0));
        assert!(summarize(&[(0, 1.0)], 1).is_none());
    }
}
