//! A load profile: a value (request rate, or number of virtual users) that moves linearly from stage
//! to stage, k6-style (`--stages 30s:100,2m:100,30s:0`). Pure: its integral and the integral's inverse
//! turn a rate profile into tick times.

use std::time::Duration;

use super::PlanError;
use crate::util::parse_duration;

/// Ramp linearly to `target` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// Parses `30s:100,2m:100,30s:0`.
pub fn parse_stages(s: &str) -> Result<Vec<Stage>, PlanError> {
    let bad = |why: String| PlanError::BadStages(s.to_string(), why);
    s.split(',')
        .map(|part| {
            let (d, t) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| bad(format!("'{part}' is not DURATION:TARGET")))?;
            let duration = parse_duration(d).map_err(bad)?;
            let target: f64 = t
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{t}' is not a number")))?;
            if !target.is_finite() || target < 0.0 {
                return Err(bad(format!("target '{t}' must be a non-negative number")));
            }
            Ok(Stage { duration, target })
        })
        .collect()
}

/// The value over time: `start` at 0, then each stage in turn; after the last stage the value holds
/// at its target when `hold` is set (a run bounded by a count, not a time), else the profile ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub start: f64,
    pub stages: Vec<Stage>,
    pub hold: bool,
}

impl Profile {
    /// A constant value for `duration`, or forever.
    pub fn constant(value: f64, duration: Option<Duration>) -> Profile {
        match duration {
            Some(d) => Profile {
                start: value,
                stages: vec![Stage {
                    duration: d,
                    target: value,
                }],
                hold: false,
            },
            None => Profile {
                start: value,
                stages: Vec::new(),
                hold: true,
            },
        }
    }

    /// Where the profile ends; `None` if it holds forever.
    pub fn end(&self) -> Option<Duration> {
        (!self.hold).then(|| self.stages.iter().map(|s| s.duration).sum())
    }

    /// The largest value the profile reaches.
    pub fn max(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The segments `(t0, t1, v0, v1)` in seconds, with an open-ended last one when holding.
    fn pieces(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let mut t = 0.0;
        let mut v = self.start;
        let ramps = self.stages.iter().map(move |s| {
            let piece = (t, t + s.duration.as_secs_f64(), v, s.target);
            t = piece.1;
            v = s.target;
            piece
        });
        let total: f64 = self.stages.iter().map(|s| s.duration.as_secs_f64()).sum();
        let last = self.stages.last().map_or(self.start, |s| s.target);
        let hold = self.hold.then_some((total, f64::INFINITY, last, last));
        ramps.chain(hold)
    }

    /// The value at `t` (0 after the end).
    pub fn value(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        for (t0, t1, v0, v1) in self.pieces() {
            if t < t1 {
                if t1.is_infinite() || t1 == t0 {
                    return v0;
                }
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0);
            }
        }
        0.0
    }

    /// Λ(t) = ∫₀ᵗ value: the number of ticks a rate profile expects by `t`.
    pub fn integral(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let mut acc = 0.0;
        for (t0, t1, v0, v1) in self.pieces() {
            let end = t.min(t1);
            if end <= t0 {
                break;
            }
            let tau = end - t0;
            let slope = if t1.is_infinite() {
                0.0
            } else {
                (v1 - v0) / (t1 - t0)
            };
            acc += v0 * tau + slope * tau * tau / 2.0;
            if t <= t1 {
                break;
            }
        }
        acc
    }

    /// The earliest `t` with Λ(t) ≥ `lambda` — when a rate profile's tick of cumulative intensity
    /// `lambda` is due. `None` if the profile ends before reaching it.
    pub fn inverse(&self, lambda: f64) -> Option<Duration> {
        if lambda <= 0.0 {
            // The first tick of a profile that starts at rate 0 is when the rate first rises.
            return self.first_positive();
        }
        let mut acc = 0.0;
        for (t0, t1, v0, v1) in self.pieces() {
            let len = t1 - t0;
            let slope = if t1.is_infinite() {
                0.0
            } else {
                (v1 - v0) / len
            };
            let area = if t1.is_infinite() {
                if v0 > 0.0 {
                    f64::INFINITY
                } else {
                    0.0
                }
            } else {
                (v0 + v1) / 2.0 * len
            };
            if acc + area >= lambda {
                let c = lambda - acc;
                // Solve v0·τ + slope·τ²/2 = c for the smallest τ ≥ 0, in the form that stays accurate
                // when slope ≈ 0: τ = 2c / (v0 + √(v0² + 2·slope·c)).
                let disc = (v0 * v0 + 2.0 * slope * c).max(0.0);
                let denom = v0 + disc.sqrt();
                if denom <= 0.0 {
                    continue;
                }
                let tau =
                    (2.0 * c / denom).clamp(0.0, if len.is_finite() { len } else { f64::MAX });
                return secs(t0 + tau);
            }
            acc += area;
        }
        None
    }

    /// The first instant with a positive value.
    fn first_positive(&self) -> Option<Duration> {
        for (t0, t1, v0, v1) in self.pieces() {
            if v0 > 0.0 {
                return secs(t0);
            }
            if v1 > 0.0 && t1 > t0 {
                return secs(t0);
            }
        }
        None
    }

    /// The earliest `t ≥ from` at which the value exceeds `k` (virtual user `k` is active while the
    /// value is above its index). `None` if it never does again.
    pub fn first_above(&self, k: f64, from: Duration) -> Option<Duration> {
        let from_s = from.as_secs_f64();
        for (t0, t1, v0, v1) in self.pieces() {
            if t1 <= from_s {
                continue;
            }
            let start = t0.max(from_s);
            if self.value(secs(start)?) > k {
                return secs(start);
            }
            if v1 > k && v1 > v0 && t1.is_finite() {
                // Rising through k inside this piece: strictly above just after the crossing.
                let cross = t0 + (k - v0) / (v1 - v0) * (t1 - t0);
                return secs(cross.max(start) + 1e-9);
            }
        }
        None
    }
}

fn secs(s: f64) -> Option<Duration> {
    (s.is_finite() && (0.0..1e12).contains(&s)).then(|| Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> Profile {
        Profile {
            start: 0.0,
            stages: parse_stages(s).unwrap(),
            hold: false,
        }
    }

    #[test]
    fn parses_stages() {
        let s = parse_stages("30s:100, 2m:100,30s:0").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].duration, Duration::from_secs(120));
        assert!(parse_stages("30s").is_err());
        assert!(parse_stages("30s:-1").is_err());
        assert!(parse_stages("x:1").is_err());
    }

    #[test]
    fn integral_of_a_ramp_and_hold() {
        let p = st("10s:100,10s:100,10s:0");
        assert!((p.integral(Duration::from_secs(10)) - 500.0).abs() < 1e-9);
        assert!((p.integral(Duration::from_secs(20)) - 1500.0).abs() < 1e-9);
        assert!((p.integral(Duration::from_secs(30)) - 2000.0).abs() < 1e-9);
        assert!((p.integral(Duration::from_secs(99)) - 2000.0).abs() < 1e-9);
        assert_eq!(p.end(), Some(Duration::from_secs(30)));
        assert_eq!(p.value(Duration::from_secs(5)), 50.0);
        assert_eq!(p.max(), 100.0);
    }

    #[test]
    fn inverse_undoes_integral() {
        let p = st("10s:100,10s:100,10s:0");
        for lambda in [0.5, 1.0, 10.0, 499.0, 500.0, 777.0, 1500.0, 1999.0, 2000.0] {
            let t = p.inverse(lambda).unwrap();
            assert!((p.integral(t) - lambda).abs() < 1e-6, "λ {lambda} → {t:?}");
        }
        assert_eq!(p.inverse(2000.001), None, "past the end of the profile");
    }

    #[test]
    fn constant_rates_table() {
        // (rate, tick n, expected offset)
        for (rate, n, want) in [
            (1.0, 0.0, 0.0),
            (1.0, 3.0, 3.0),
            (1000.0, 1.0, 0.001),
            (20_000.0, 20_000.0, 1.0),
            (1e9, 1e9, 1.0),
        ] {
            let p = Profile::constant(rate, None);
            let t = p.inverse(n).unwrap().as_secs_f64();
            assert!((t - want).abs() < 1e-9, "rate {rate} tick {n}: {t}");
        }
    }

    #[test]
    fn rate_zero_sends_nothing() {
        assert_eq!(
            Profile::constant(0.0, Some(Duration::from_secs(10))).inverse(1.0),
            None
        );
        assert_eq!(Profile::constant(0.0, None).inverse(1.0), None);
        assert_eq!(Profile::constant(0.0, None).inverse(0.0), None);
        // Starting from 0, the first tick (λ=0) is at the start of the ramp; the next when 1 is reached.
        let p = st("10s:10");
        assert_eq!(p.inverse(0.0), Some(Duration::ZERO));
        let t1 = p.inverse(1.0).unwrap().as_secs_f64();
        assert!(
            (t1 - 2f64.sqrt()).abs() < 1e-9,
            "∫ t dt = t²/2 = 1 at √2: {t1}"
        );
        // A zero-rate pause between two loads is skipped over.
        let p = st("1s:0,1s:0,1s:10");
        assert!(p.inverse(1.0).unwrap() > Duration::from_secs(2));
    }

    #[test]
    fn ramp_to_zero_ends() {
        let p = st("10s:10,10s:0");
        assert!(p.inverse(100.0).is_some());
        assert!(p.inverse(100.0).unwrap() <= Duration::from_secs(20));
        assert_eq!(p.inverse(100.0001), None);
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let p = Profile::constant(1e-9, None);
        assert_eq!(p.inverse(1e9), None, "10^18 s does not fit");
        let p = Profile::constant(1.0, None);
        assert_eq!(p.inverse(f64::MAX), None);
        assert_eq!(p.inverse(f64::INFINITY), None);
    }

    #[test]
    fn virtual_users_activate_as_the_profile_rises() {
        let p = st("10s:10,10s:10,10s:0");
        // VU 4 becomes active when the value passes 4, at 4 s.
        let t = p.first_above(4.0, Duration::ZERO).unwrap().as_secs_f64();
        assert!((t - 4.0).abs() < 1e-6, "{t}");
        assert_eq!(
            p.first_above(4.0, Duration::from_secs(12)),
            Some(Duration::from_secs(12))
        );
        assert_eq!(p.first_above(10.0, Duration::ZERO), None, "never above 10");
        assert_eq!(
            p.first_above(4.0, Duration::from_secs(29)),
            None,
            "ramping down below 4"
        );
    }
}
