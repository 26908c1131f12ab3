//! What a stress search's steps say: the knee, the breaking point, the Universal Scalability Law
//! fitted to a concurrency sweep, and the recovery time after an overload burst. Pure functions of
//! the measured steps and seconds, so each is tested on known curves.

use std::time::Duration;

/// One level of load, as measured on its judged window (after its settle period).
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// Offered load: requests per second (open model) or virtual users (closed model).
    pub offered: f64,
    /// Requests per second completed in the judged window.
    pub achieved: f64,
    pub p99: Option<Duration>,
    /// Failed requests (errors and 4xx/5xx) over requests, 0–1.
    pub error_rate: f64,
}

/// The error rate past which the target is broken, whatever its SLO says.
pub const BREAKING_ERROR_RATE: f64 = 0.05;
/// A fall in throughput past which the target is broken.
pub const THROUGHPUT_DROP: f64 = 0.10;

/// The knee by the baseline rule: the lowest offered load from which on the p99 stays above
/// `factor` × the p99 at the lowest load measured (one noisy level that comes back does not count).
/// `None` when the highest load is still within it (or there is no baseline).
pub fn knee(levels: &[Level], factor: f64) -> Option<f64> {
    let mut sorted: Vec<&Level> = levels.iter().filter(|l| l.p99.is_some()).collect();
    sorted.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let base = sorted.first()?.p99?;
    let limit = base.mul_f64(factor);
    let above = |l: &&Level| l.p99.is_some_and(|p| p > limit);
    let stays_from = sorted.iter().rposition(|l| !above(l)).map_or(0, |i| i + 1);
    sorted.get(stays_from).map(|l| l.offered)
}

/// Why a load level broke the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broke {
    /// More than [`BREAKING_ERROR_RATE`] of requests failed.
    Errors,
    /// Throughput fell although the offered load rose.
    Throughput,
}

/// The breaking point: the lowest offered load whose error rate passes 5%, or whose achieved rate
/// is below the achieved rate of a lower offered load by more than [`THROUGHPUT_DROP`] (a dip of a
/// few percent at saturation is noise, not a collapse).
pub fn breaking_point(levels: &[Level]) -> Option<(f64, Broke)> {
    let mut sorted: Vec<&Level> = levels.iter().collect();
    sorted.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let mut best = 0.0f64;
    for l in sorted {
        if l.error_rate > BREAKING_ERROR_RATE {
            return Some((l.offered, Broke::Errors));
        }
        if best > 0.0 && l.achieved < best * (1.0 - THROUGHPUT_DROP) {
            return Some((l.offered, Broke::Throughput));
        }
        best = best.max(l.achieved);
    }
    None
}

/// The Universal Scalability Law fitted to throughput X(N) at concurrency N:
/// `X(N) = λN / (1 + σ(N−1) + κN(N−1))` (Gunther). σ is contention, κ coherency delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usl {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// The concurrency where throughput peaks, `√((1−σ)/κ)`; `None` when κ is zero (no peak:
    /// throughput approaches λ/σ).
    pub peak_n: Option<f64>,
    /// Throughput predicted at `peak_n` (or the asymptote λ/σ without a peak).
    pub peak_x: f64,
    /// Coefficient of determination of the fitted curve on the measured throughputs.
    pub r2: f64,
}

impl Usl {
    pub fn predict(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }
}

/// Fits the USL by least squares on its linearised form: with C(N) = X(N)/X(1),
/// `N/C(N) − 1 = σ(N−1) + κN(N−1)`, a regression without intercept. Needs N = 1 measured (λ =
/// X(1)) and at least two other levels; coefficients are kept at zero or above (a negative one is
/// refitted at zero).
pub fn fit_usl(points: &[(f64, f64)]) -> Option<Usl> {
    let x1 = points.iter().find(|(n, _)| *n == 1.0)?.1;
    if x1 <= 0.0 {
        return None;
    }
    let rows: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|(n, x)| *n > 1.0 && *x > 0.0)
        .map(|&(n, x)| (n - 1.0, n * (n - 1.0), n / (x / x1) - 1.0))
        .collect();
    if rows.len() < 2 {
        return None;
    }
    let (mut saa, mut sab, mut sbb, mut say, mut sby) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(a, b, y) in &rows {
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        say += a * y;
        sby += b * y;
    }
    let det = saa * sbb - sab * sab;
    let (mut sigma, mut kappa) = if det.abs() > f64::EPSILON * saa * sbb {
        ((say * sbb - sby * sab) / det, (sby * saa - say * sab) / det)
    } else {
        (say / saa, 0.0)
    };
    if kappa < 0.0 {
        kappa = 0.0;
        sigma = say / saa;
    }
    if sigma < 0.0 {
        sigma = 0.0;
        kappa = (sby / sbb).max(0.0);
    }
    let lambda = x1;
    let peak_n = (kappa > 0.0).then(|| ((1.0 - sigma).max(0.0) / kappa).sqrt().max(1.0));
    let mut usl = Usl {
        lambda,
        sigma,
        kappa,
        peak_n,
        peak_x: 0.0,
        r2: 0.0,
    };
    usl.peak_x = match peak_n {
        Some(n) => usl.predict(n),
        None if sigma > 0.0 => lambda / sigma,
        None => f64::INFINITY,
    };
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - usl.predict(p.0)).powi(2))
        .sum();
    usl.r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    Some(usl)
}

/// One second after an overload burst: whether it met the SLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecondVerdict {
    /// Seconds since the run started.
    pub t_s: u64,
    pub within_slo: bool,
}

/// How long after `drop_s` (the second the overload ended) the SLO held again for good: the start of
/// the last run of SLO-meeting seconds that reaches the end of the window, if that run is at least
/// `stable_s` long. `None`: it did not recover within the window.
pub fn recovery(seconds: &[SecondVerdict], drop_s: u64, stable_s: u64) -> Option<Duration> {
    let after: Vec<&SecondVerdict> = seconds.iter().filter(|s| s.t_s >= drop_s).collect();
    let last = after.last()?;
    if !last.within_slo {
        return None;
    }
    let mut start = last.t_s;
    for s in after.iter().rev() {
        if !s.within_slo {
            break;
        }
        start = s.t_s;
    }
    (last.t_s + 1 - start >= stable_s).then(|| Duration::from_secs(start - drop_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(offered: f64, achieved: f64, p99_ms: u64, err: f64) -> Level {
        Level {
            offered,
            achieved,
            p99: Some(Duration::from_millis(p99_ms)),
            error_rate: err,
        }
    }

    #[test]
    fn knee_and_breaking_point_on_a_known_curve() {
        let curve = [
            level(100.0, 100.0, 2, 0.0),
            level(200.0, 200.0, 2, 0.0),
            level(400.0, 400.0, 3, 0.0),
            level(800.0, 790.0, 9, 0.0),
            level(1600.0, 1000.0, 400, 0.01),
            level(3200.0, 1000.0, 900, 0.30),
        ];
        assert_eq!(knee(&curve, 2.0), Some(800.0));
        assert_eq!(knee(&curve, 1000.0), None);
        // A noisy level that comes back under the limit is not the knee.
        let noisy = [
            level(100.0, 100.0, 2, 0.0),
            level(200.0, 200.0, 7, 0.0),
            level(400.0, 400.0, 3, 0.0),
            level(800.0, 800.0, 20, 0.0),
        ];
        assert_eq!(knee(&noisy, 3.0), Some(800.0));
        assert_eq!(breaking_point(&curve), Some((3200.0, Broke::Errors)));
        // Throughput falling while the offered load rises also breaks it.
        let falling = [
            level(100.0, 100.0, 2, 0.0),
            level(200.0, 180.0, 5, 0.0),
            level(400.0, 150.0, 50, 0.0),
        ];
        assert_eq!(breaking_point(&falling), Some((400.0, Broke::Throughput)));
        assert_eq!(breaking_point(&curve[..4]), None);
    }

    #[test]
    fn usl_fit_recovers_known_coefficients() {
        let truth = Usl {
            lambda: 1000.0,
            sigma: 0.05,
            kappa: 0.002,
            peak_n: None,
            peak_x: 0.0,
            r2: 0.0,
        };
        let points: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
            .iter()
            .map(|&n| (n, truth.predict(n)))
            .collect();
        let fit = fit_usl(&points).unwrap();
        assert!((fit.sigma - 0.05).abs() < 1e-9, "{fit:?}");
        assert!((fit.kappa - 0.002).abs() < 1e-9, "{fit:?}");
        let peak = fit.peak_n.unwrap();
        assert!((peak - (0.95f64 / 0.002).sqrt()).abs() < 1e-6);
        assert!(fit.r2 > 0.999_999);
        // Linear scaling: no contention, no peak.
        let linear: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&n| (n, 100.0 * n))
            .collect();
        let fit = fit_usl(&linear).unwrap();
        assert!(fit.sigma.abs() < 1e-9 && fit.kappa.abs() < 1e-9 && fit.peak_n.is_none());
        // Without N = 1 there is no λ.
        assert!(fit_usl(&[(2.0, 10.0), (4.0, 20.0), (8.0, 30.0)]).is_none());
    }

    #[test]
    fn recovery_is_the_start_of_the_final_good_run() {
        let v = |t_s, within_slo| SecondVerdict { t_s, within_slo };
        let seconds = [
            v(4, false),
            v(5, false),
            v(6, false),
            v(7, true),
            v(8, false),
            v(9, true),
            v(10, true),
            v(11, true),
            v(12, true),
        ];
        assert_eq!(recovery(&seconds, 5, 3), Some(Duration::from_secs(4)));
        // Not stable for long enough.
        assert_eq!(recovery(&seconds, 5, 5), None);
        // Still failing at the end.
        assert_eq!(recovery(&[v(5, true), v(6, false)], 5, 1), None);
        // Never broken after the drop: recovered at once.
        assert_eq!(
            recovery(&[v(5, true), v(6, true)], 5, 2),
            Some(Duration::ZERO)
        );
    }
}
