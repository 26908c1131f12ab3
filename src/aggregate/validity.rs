//! The validity verdict (DESIGN.md §3): a run measures the target only if the generator was not the
//! bottleneck and kept to its schedule. The verdict and its reasons are always reported, never hidden.

use std::time::Duration;

use super::{Aggregate, Dist};
use crate::sample::ErrorKind;
use crate::util::fmt_duration;

/// A worker thread busier than this share of its core may have delayed requests itself.
pub const MAX_WORKER_CPU_SHARE: f64 = 0.90;
/// Open model: more dropped ticks than this share of all ticks makes the run invalid.
pub const MAX_DROP_SHARE: f64 = 0.001;
/// A worker thread that spent more than this share of the run waiting for a CPU was starved
/// (another task shared its core): its send times and timings are not its own. Measured against
/// the run's wall time, not the thread's runnable time: a lightly loaded worker's ordinary wake-up
/// latency (~0.1 ms per wake on a VM, the in-process demo target on the other core) is a large share
/// of its little runnable time but a small share of the run; a core shared with a busy process is
/// not (measured: 40–50% of the run, against 10–11% for `regbench demo` on 2 cores).
pub const MAX_RUN_QUEUE_SHARE: f64 = 0.20;
/// Run-queue waits below this in total are noise (a short run's few preemptions).
pub const MIN_RUN_QUEUE_WAIT: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, PartialEq)]
pub struct Validity {
    pub valid: bool,
    /// The busiest worker thread's CPU time over the run's wall time (1.0 = one full core).
    pub max_worker_cpu_share: f64,
    /// Open model: the schedule-lag limit the run was judged against.
    pub lag_limit: Option<Duration>,
    /// Why the run is invalid; empty when valid.
    pub reasons: Vec<String>,
    /// Some reason puts the limit in the generator (its CPU, its file descriptors or ports, a
    /// core it shared) rather than in the target: a stress search stops there instead of reporting
    /// the generator's limit as the target's. Schedule lag alone does not: a target slow to accept
    /// connections, or a VM's late wake-ups, cause it too.
    pub generator_bound: bool,
}

/// Judges a run from its workers' CPU use over `wall` and, for the open model (`lag_limit` given), from
/// its schedule lag and dropped ticks.
pub fn judge(agg: &Aggregate, wall: Duration, lag_limit: Option<Duration>) -> Validity {
    let wall_s = wall.as_secs_f64().max(1e-9);
    let mut reasons = Vec::new();
    let mut generator_bound = false;
    let mut max_share = 0.0f64;
    for (k, w) in agg.workers.iter().enumerate() {
        let share = w.cpu.as_secs_f64() / wall_s;
        max_share = max_share.max(share);
        if let Some(wait) = w.run_queue_wait.filter(|&w| w >= MIN_RUN_QUEUE_WAIT) {
            let waited = wait.as_secs_f64() / wall_s;
            let mean = wait / u32::try_from(w.n_runs.max(1)).unwrap_or(u32::MAX);
            if waited > MAX_RUN_QUEUE_SHARE {
                generator_bound = true;
                reasons.push(format!(
                    "worker {k} was starved of CPU: it waited {} ({:.0}% of the run; {} on \
                     average each time it was ready, {} preemptions) for a core another thread or \
                     process had (limit {:.0}%); give the generator its own cores (taskset) or \
                     stop what competes with it",
                    fmt_duration(wait),
                    waited * 100.0,
                    fmt_duration(mean),
                    w.n_involuntary_switches,
                    MAX_RUN_QUEUE_SHARE * 100.0
                ));
            }
        }
        if share >= MAX_WORKER_CPU_SHARE {
            generator_bound = true;
            reasons.push(format!(
                "worker {k} used {:.0}% of a core (limit {:.0}%): the generator may be the bottleneck; \
                 add --threads (cores permitting) or lower the load",
                share * 100.0,
                MAX_WORKER_CPU_SHARE * 100.0
            ));
        }
    }
    // The schedule rules look at the judged seconds when a warm-up is set aside (connections opening
    // at a stress step's start are not the generator falling behind); resource errors at any time.
    let all = agg.total.total();
    let window = agg.judged.as_ref().map(|j| j.total());
    let judged = window.as_ref().unwrap_or(&all);
    let out_of = |kind: ErrorKind| all.errors[kind.index()];
    if out_of(ErrorKind::TooManyOpenFiles) > 0 {
        generator_bound = true;
        reasons.push(format!(
            "{} requests failed because the generator ran out of file descriptors (EMFILE/ENFILE): \
             the generator limited this run, not the target; raise ulimit -n or lower -c",
            out_of(ErrorKind::TooManyOpenFiles)
        ));
    }
    if out_of(ErrorKind::AddrNotAvailable) > 0 {
        generator_bound = true;
        reasons.push(format!(
            "{} requests failed because the generator ran out of local ports (EADDRNOTAVAIL): \
             closed connections wait in TIME_WAIT; keep connections alive, or widen \
             net.ipv4.ip_local_port_range",
            out_of(ErrorKind::AddrNotAvailable)
        ));
    }
    if let Some(limit) = lag_limit {
        let lag_p99 = Dist::of(&judged.lag).quantile("p99").unwrap_or_default();
        if lag_p99 > limit {
            let queued = judged.n_queued;
            let why = if queued > 0 {
                format!(
                    "{queued} requests waited for a free in-flight slot: the target could not keep up \
                     at this --max-inflight/-c (their wait is in their latency)"
                )
            } else if judged.n_new_connections * 10 > judged.n_requests {
                // Lag runs to the first byte written, so a connect is in it: with many new
                // connections, a target slow to accept them looks like a late generator.
                format!(
                    "the generator sent late: it was overloaded, or opening connections was slow \
                     ({} new connections, connect p99 {}; connect time is in the lag)",
                    judged.n_new_connections,
                    fmt_duration(
                        Dist::of(&judged.connect)
                            .quantile("p99")
                            .unwrap_or_default()
                    )
                )
            } else {
                // Not proof that the generator is the bottleneck (its CPU says that): a VM's
                // late wake-ups look the same.
                "the generator woke up late: it is overloaded, or its host delayed it".to_string()
            };
            reasons.push(format!(
                "schedule lag p99 {} exceeds its limit {}: {why}",
                fmt_duration(lag_p99),
                fmt_duration(limit)
            ));
        }
        if all.n_unsent > 0 {
            reasons.push(format!(
                "{} requests due before the end were never sent: the run ended first, so the target \
                 or the generator could not keep up with the offered rate",
                all.n_unsent
            ));
        }
        let ticks = all.n_requests + all.n_dropped;
        if ticks > 0 && all.n_dropped as f64 > MAX_DROP_SHARE * ticks as f64 {
            reasons.push(format!(
                "{} of {ticks} requests ({:.2}%) were dropped unsent, later than --max-lag {} \
                 (limit {:.1}%)",
                all.n_dropped,
                100.0 * all.n_dropped as f64 / ticks as f64,
                fmt_duration(limit),
                MAX_DROP_SHARE * 100.0
            ));
        }
    }
    Validity {
        valid: reasons.is_empty(),
        max_worker_cpu_share: max_share,
        lag_limit,
        reasons,
        generator_bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Summary, WorkerStats};
    use crate::sample::{Outcome, Sample};
    use std::time::Instant;

    fn agg(cpu_ms: &[u64], lag: Duration, n: u64, dropped: u64) -> Aggregate {
        let mut total = Summary::new(&["t"]);
        let base = Instant::now();
        for i in 0..n + dropped {
            let s = Sample {
                tag: 0,
                intended: base,
                sent: base + lag,
                first_byte: None,
                done: base + lag + Duration::from_millis(1),
                outcome: if i < n {
                    Outcome::Status(200)
                } else {
                    Outcome::Dropped
                },
                bytes_in: 1,
                body_bytes: 0,
                coding: crate::sample::Coding::Identity,
                decoded_bytes: 0,
                bytes_out: 1,
                connect: None,
                tls: None,
                reused: false,
            };
            total.tags[0].record(&s);
        }
        Aggregate {
            total,
            judged: None,
            series: Vec::new(),
            workers: cpu_ms
                .iter()
                .map(|&ms| WorkerStats {
                    cpu: Duration::from_millis(ms),
                    ..WorkerStats::default()
                })
                .collect(),
        }
    }

    #[test]
    fn busy_worker_makes_run_invalid() {
        let v = judge(
            &agg(&[400, 500], Duration::ZERO, 10, 0),
            Duration::from_secs(1),
            None,
        );
        assert!(v.valid);
        assert!((v.max_worker_cpu_share - 0.5).abs() < 1e-9);
        let v = judge(
            &agg(&[400, 950], Duration::ZERO, 10, 0),
            Duration::from_secs(1),
            None,
        );
        assert!(!v.valid);
        assert_eq!(v.reasons.len(), 1);
        assert!(v.reasons[0].contains("worker 1"));
    }

    #[test]
    fn a_starved_worker_makes_the_run_invalid() {
        let mut a = agg(&[500], Duration::ZERO, 10, 0);
        a.workers[0].run_queue_wait = Some(Duration::from_millis(30));
        assert!(
            judge(&a, Duration::from_secs(1), None).valid,
            "30 ms is noise"
        );
        // 10% of the run: ordinary wake-up latency on a shared machine.
        a.workers[0].run_queue_wait = Some(Duration::from_millis(100));
        assert!(judge(&a, Duration::from_secs(1), None).valid);
        a.workers[0].run_queue_wait = Some(Duration::from_millis(400));
        a.workers[0].n_involuntary_switches = 900;
        a.workers[0].n_runs = 200;
        let v = judge(&a, Duration::from_secs(1), None);
        assert!(!v.valid);
        assert!(v.reasons[0].contains("starved"), "{:?}", v.reasons);
    }

    #[test]
    fn running_out_of_descriptors_or_ports_makes_the_run_invalid() {
        for kind in [ErrorKind::TooManyOpenFiles, ErrorKind::AddrNotAvailable] {
            let mut a = agg(&[100], Duration::ZERO, 10, 0);
            a.total.tags[0].errors[kind.index()] = 3;
            let v = judge(&a, Duration::from_secs(1), None);
            assert!(!v.valid, "{kind:?}");
            assert!(
                v.reasons[0].starts_with("3 requests failed"),
                "{:?}",
                v.reasons
            );
        }
    }

    #[test]
    fn lag_and_drops_judge_the_open_model_only() {
        let limit = Some(Duration::from_millis(10));
        let late = agg(&[100], Duration::from_millis(50), 100, 0);
        assert!(!judge(&late, Duration::from_secs(1), limit).valid);
        assert!(
            judge(&late, Duration::from_secs(1), None).valid,
            "closed model: lag is not judged"
        );
        let on_time = agg(&[100], Duration::from_micros(100), 10_000, 10);
        assert!(
            judge(&on_time, Duration::from_secs(1), limit).valid,
            "0.1% drops is the limit"
        );
        let dropping = agg(&[100], Duration::from_micros(100), 10_000, 11);
        let v = judge(&dropping, Duration::from_secs(1), limit);
        assert!(!v.valid);
        assert!(v.reasons[0].contains("dropped"), "{:?}", v.reasons);
    }
}
