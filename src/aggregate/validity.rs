//! The validity verdict (DESIGN.md §3): a run measures the target only if the generator was not the
//! bottleneck. The verdict and its reasons are always reported, never hidden.

use std::time::Duration;

use super::WorkerStats;

/// A worker thread busier than this share of its core may have delayed requests itself.
pub const MAX_WORKER_CPU_SHARE: f64 = 0.90;

#[derive(Clone, Debug, PartialEq)]
pub struct Validity {
    pub valid: bool,
    /// The busiest worker thread's CPU time over the run's wall time (1.0 = one full core).
    pub max_worker_cpu_share: f64,
    /// Why the run is invalid; empty when valid.
    pub reasons: Vec<String>,
}

/// Judges a run from its workers' CPU use over `wall`.
pub fn judge(workers: &[WorkerStats], wall: Duration) -> Validity {
    let wall_s = wall.as_secs_f64().max(1e-9);
    let mut reasons = Vec::new();
    let mut max_share = 0.0f64;
    for (k, w) in workers.iter().enumerate() {
        let share = w.cpu.as_secs_f64() / wall_s;
        max_share = max_share.max(share);
        if share >= MAX_WORKER_CPU_SHARE {
            reasons.push(format!(
                "worker {k} used {:.0}% of a core (limit {:.0}%): the generator may be the bottleneck; \
                 add --threads (cores permitting) or lower the load",
                share * 100.0,
                MAX_WORKER_CPU_SHARE * 100.0
            ));
        }
    }
    Validity {
        valid: reasons.is_empty(),
        max_worker_cpu_share: max_share,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_worker_makes_run_invalid() {
        let w = |ms| WorkerStats {
            cpu: Duration::from_millis(ms),
            n_cancelled: 0,
        };
        let v = judge(&[w(400), w(500)], Duration::from_secs(1));
        assert!(v.valid);
        assert!((v.max_worker_cpu_share - 0.5).abs() < 1e-9);
        let v = judge(&[w(400), w(950)], Duration::from_secs(1));
        assert!(!v.valid);
        assert_eq!(v.reasons.len(), 1);
        assert!(v.reasons[0].contains("worker 1"));
    }
}
