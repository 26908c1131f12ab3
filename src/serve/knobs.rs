//! The target's behaviour knobs: added latency (fixed or a distribution), injected errors, periodic
//! stalls. Later issues rely on them to prove the generator's numbers are true.

use std::time::Duration;

use crate::util::{parse_duration, Rng};

/// Added latency per response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyModel {
    Fixed(Duration),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean.
    Exp(Duration),
    /// Normal with mean and standard deviation, clamped at zero.
    Normal(Duration, Duration),
}

impl LatencyModel {
    /// `20ms`, `uniform:10ms:30ms`, `exp:20ms`, `normal:20ms:5ms`.
    pub fn parse(s: &str) -> Result<LatencyModel, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let dur = |p: &str| parse_duration(p);
        match parts.as_slice() {
            [d] => Ok(LatencyModel::Fixed(dur(d)?)),
            ["uniform", a, b] => {
                let (a, b) = (dur(a)?, dur(b)?);
                if a > b {
                    return Err(format!("'{s}': the lower bound is above the upper bound"));
                }
                Ok(LatencyModel::Uniform(a, b))
            }
            ["exp", m] => Ok(LatencyModel::Exp(dur(m)?)),
            ["normal", m, sd] => Ok(LatencyModel::Normal(dur(m)?, dur(sd)?)),
            _ => Err(format!(
                "'{s}' is not a latency (expected 20ms, uniform:10ms:30ms, exp:20ms or normal:20ms:5ms)"
            )),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == LatencyModel::Fixed(Duration::ZERO)
    }

    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match *self {
            LatencyModel::Fixed(d) => d,
            LatencyModel::Uniform(a, b) => a + (b - a).mul_f64(rng.next_f64()),
            LatencyModel::Exp(m) => m.mul_f64(-(1.0 - rng.next_f64()).ln()),
            LatencyModel::Normal(m, sd) => {
                // Box–Muller.
                let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                Duration::from_secs_f64((m.as_secs_f64() + z * sd.as_secs_f64()).max(0.0))
            }
        }
    }
}

/// A periodic stall: during the first `pause` of every `period` (counted from server start), every
/// response is held until the pause ends — a stop-the-world pause as a garbage collector makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    pub pause: Duration,
    pub period: Duration,
}

impl Stall {
    /// `S/P`, e.g. `1s/10s`.
    pub fn parse(s: &str) -> Result<Stall, String> {
        let (p, q) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a stall (expected PAUSE/PERIOD, e.g. 1s/10s)"))?;
        let stall = Stall {
            pause: parse_duration(p)?,
            period: parse_duration(q)?,
        };
        if stall.period.is_zero() || stall.pause >= stall.period {
            return Err(format!("'{s}': the pause must be shorter than the period"));
        }
        Ok(stall)
    }

    /// How long a response ready at `since_start` must still be held (zero outside a pause).
    pub fn hold(&self, since_start: Duration) -> Duration {
        let period = self.period.as_nanos();
        let phase = since_start.as_nanos() % period;
        let pause = self.pause.as_nanos();
        if phase < pause {
            Duration::from_nanos((pause - phase) as u64)
        } else {
            Duration::ZERO
        }
    }
}

/// A memory leak on purpose (`--leak 1MiB/s`): the target keeps allocating, and touching, this many
/// bytes a second, so a watcher's leak detection has a known answer.
#[derive(Debug, Default)]
pub struct Leak {
    /// Bytes per second.
    pub rate: f64,
    held: std::sync::Mutex<Vec<Vec<u8>>>,
    leaked: std::sync::atomic::AtomicU64,
}

impl Leak {
    /// Past this the leak stops growing: it proves a point, it must not take the machine down.
    pub const MAX_TOTAL: u64 = 4 << 30;

    /// `1MiB/s`, `10MB/min`, `512KiB/s`; at most 1 GiB/s.
    pub fn parse(s: &str) -> Result<Leak, String> {
        let (amount, per) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}': expected a size per time, e.g. 1MiB/s or 10MB/min"))?;
        let secs = match per.trim() {
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "'{s}': unknown unit '/{u}' (expected /s, /min or /h)"
                ))
            }
        };
        let rate = crate::util::parse_bytes(amount)? / secs;
        if rate > (1u64 << 30) as f64 {
            return Err(format!("'{s}' is more than 1GiB/s"));
        }
        Ok(Leak {
            rate,
            ..Leak::default()
        })
    }

    /// Bytes leaked so far.
    pub fn leaked(&self) -> u64 {
        self.leaked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Leaks what is due `elapsed` after the target started (so a late tick catches up).
    pub fn tick(&self, elapsed: Duration) {
        let due = ((self.rate * elapsed.as_secs_f64()) as u64).min(Self::MAX_TOTAL);
        let have = self.leaked();
        if due <= have {
            return;
        }
        // Non-zero bytes: the pages are written, so they are resident (zeroed pages may not be).
        let block = vec![0x5a_u8; (due - have) as usize];
        if let Ok(mut held) = self.held.lock() {
            held.push(block);
            self.leaked.store(due, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_models() {
        assert_eq!(
            LatencyModel::parse("20ms").unwrap(),
            LatencyModel::Fixed(Duration::from_millis(20))
        );
        assert!(LatencyModel::parse("uniform:30ms:10ms").is_err());
        assert!(LatencyModel::parse("poisson:1ms").is_err());
        let mut rng = Rng::new(3);
        let m = LatencyModel::parse("exp:10ms").unwrap();
        let mean: f64 = (0..20_000)
            .map(|_| m.sample(&mut rng).as_secs_f64())
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.010).abs() < 0.0005, "exp mean {mean}");
        let u = LatencyModel::parse("uniform:10ms:30ms").unwrap();
        for _ in 0..1000 {
            let d = u.sample(&mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(30));
        }
    }

    #[test]
    fn stall_windows() {
        let s = Stall::parse("1s/10s").unwrap();
        assert_eq!(
            s.hold(Duration::from_millis(200)),
            Duration::from_millis(800)
        );
        assert_eq!(s.hold(Duration::from_millis(1500)), Duration::ZERO);
        assert_eq!(
            s.hold(Duration::from_millis(10_100)),
            Duration::from_millis(900)
        );
        assert!(Stall::parse("10s/1s").is_err());
        assert!(Stall::parse("1s").is_err());
    }
}

/// A bounded capacity (`--capacity 2000/s --queue 5000`): one FIFO server that takes 1/N s per
/// request, so past N/s requests wait in a queue (latency rises) and past the queue limit they are
/// refused with 503 at once (errors appear) — a target whose breaking point is known exactly. The
/// queue is virtual: a request's finish time is computed on arrival, and its response is held until
/// then, so the model costs one lock per request whatever the load.
#[derive(Debug)]
pub struct Capacity {
    per_request: Duration,
    limit: u64,
    /// When the server is next free, as time since `origin`.
    next_free: std::sync::Mutex<Duration>,
    origin: std::time::Instant,
}

impl Capacity {
    /// `N/s` (or `/m`, `/h`, as `--rate` takes) and the queue limit in requests.
    pub fn parse(rate: &str, limit: u64) -> Result<Capacity, String> {
        let r = crate::util::parse_rate(rate)?;
        if !(r > 0.0 && r <= 1e9) {
            return Err(format!(
                "'{rate}': the capacity must be above 0 and at most 1e9/s"
            ));
        }
        Ok(Capacity {
            per_request: Duration::from_secs_f64(1.0 / r),
            limit,
            next_free: std::sync::Mutex::new(Duration::ZERO),
            origin: std::time::Instant::now(),
        })
    }

    /// Admits a request arriving now: `Some(when its response is ready)`, or `None` when the queue
    /// is full (the request is refused, and takes no capacity).
    pub fn admit(&self) -> Option<std::time::Instant> {
        let now = self.origin.elapsed();
        // invariant: the lock is never held across a panic point (arithmetic only).
        let mut free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*free).max(now);
        let waiting = (start - now).as_nanos() / self.per_request.as_nanos().max(1);
        if waiting as u64 >= self.limit {
            return None;
        }
        *free = start + self.per_request;
        Some(self.origin + *free)
    }
}
