//! The per-worker side of aggregation. A worker owns one `Recorder` (no sharing, no atomics); every
//! second of run time it hands the interval's [`Summary`] to the collector over a channel — one message
//! per worker per second, never per request.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use std::sync::Arc;

use super::{Summary, TagSpec};
use crate::sample::{Outcome, Sample};
use crate::schedule::windows::Windows;

/// What workers tell the collector.
#[derive(Debug)]
pub enum Msg {
    /// Everything worker `worker` recorded in second `sec` of the run (samples are filed by their
    /// `done` instant). A worker sends each second at most once, in increasing order.
    Interval {
        worker: usize,
        sec: u64,
        summary: Summary,
        /// Requests in flight on this worker during the second: the most at once, and the
        /// time-weighted mean.
        inflight: Inflight,
    },
    /// The worker has stopped and sent its last interval.
    Done { worker: usize, stats: WorkerStats },
}

/// In-flight requests over one second (or, summed, over workers: the mean adds exactly; the sum of
/// the workers' peaks is an upper bound of the process's peak).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Inflight {
    pub max: u64,
    pub mean: f64,
}

impl std::ops::AddAssign for Inflight {
    fn add_assign(&mut self, o: Inflight) {
        self.max += o.max;
        self.mean += o.mean;
    }
}

/// What a worker reports about itself when it stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerStats {
    /// CPU time (user + system) of the worker thread.
    pub cpu: Duration,
    /// Requests started but abandoned unfinished because the run was interrupted.
    pub n_cancelled: u64,
    /// Time the worker thread was ready to run but waited for a CPU (another process or thread had
    /// it); `None` where the kernel does not report it.
    pub run_queue_wait: Option<Duration>,
    /// Times the worker thread got a CPU (its waits are spread over these).
    pub n_runs: u64,
    /// Times the worker thread was preempted while it could still run.
    pub n_involuntary_switches: u64,
}

pub struct Recorder {
    worker: usize,
    start: Instant,
    sec: u64,
    current: Summary,
    /// Requests started and not yet recorded.
    inflight: u64,
    /// The most in flight at once in the current second.
    inflight_max: u64,
    /// ∫ in-flight dt over the current second so far (request-seconds), up to `last_change`.
    inflight_area: f64,
    last_change: Instant,
    sink: UnboundedSender<Msg>,
    /// The plan's event windows, to label each sample with those open when it was intended.
    windows: Option<Arc<Windows>>,
    /// When the current span of failures began (the first failing request's send), if one is going.
    outage_since: Option<Instant>,
}

impl Recorder {
    pub fn new(
        worker: usize,
        start: Instant,
        tags: &[TagSpec],
        sink: UnboundedSender<Msg>,
    ) -> Self {
        Recorder {
            worker,
            start,
            sec: 0,
            current: Summary::with_specs(tags),
            inflight: 0,
            inflight_max: 0,
            inflight_area: 0.0,
            last_change: start,
            sink,
            windows: None,
            outage_since: None,
        }
    }

    /// Labels samples by the plan's event windows.
    pub fn with_windows(mut self, windows: Arc<Windows>) -> Self {
        self.current = self.current.with_windows(windows.len());
        self.windows = Some(windows);
        self
    }

    /// Follows spans of failures: one starts at the send of a request that failed (no response, or
    /// a 5xx), and ends at the send of the next request that succeeded.
    #[inline]
    fn outage(&mut self, s: &Sample) {
        let failed = match s.outcome {
            Outcome::Error(_) => true,
            Outcome::Status(code) => code >= 500,
            // The codes a server that is down or overwhelmed answers with (a 5xx's peers):
            // UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS.
            Outcome::Grpc(code) => matches!(code, 2 | 4 | 13 | 14 | 15),
            Outcome::Delivered => false,
            Outcome::WsClose(_) => s.outcome.is_failure(),
            Outcome::Dropped => return,
        };
        match (failed, self.outage_since) {
            (true, None) => self.outage_since = Some(s.sent),
            // A success sent before the outage began says nothing of it.
            (false, Some(since)) if s.sent >= since => {
                self.outage_since = None;
                self.end_outage(s.sent.duration_since(since));
            }
            _ => {}
        }
    }

    fn end_outage(&mut self, span: Duration) {
        let d = &mut self.current.downtime;
        d.longest_ns = d.longest_ns.max(span.as_nanos() as u64);
        d.n_spans += 1;
    }

    /// A request is being sent at `now` (its sample will follow).
    #[inline]
    pub fn started(&mut self, now: Instant) {
        self.tick(now);
        self.gauge(now);
        self.inflight += 1;
        self.inflight_max = self.inflight_max.max(self.inflight);
    }

    /// Accumulates the in-flight area up to `now` (within the current second).
    #[inline]
    fn gauge(&mut self, now: Instant) {
        if now > self.last_change {
            let dt = now.duration_since(self.last_change).as_secs_f64();
            self.inflight_area += self.inflight as f64 * dt;
            self.last_change = now;
        }
    }

    /// Requests started and not yet recorded: at the end of a run, the ones abandoned in flight.
    pub fn inflight(&self) -> u64 {
        self.inflight
    }

    /// Files one sample under its tag in the interval of its `done` instant. Every sample but a
    /// dropped one ends a request announced by [`Recorder::started`].
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        self.file(s);
        self.outage(s);
        if s.outcome != crate::sample::Outcome::Dropped {
            self.gauge(s.done);
            self.inflight -= 1;
        }
    }

    /// Files `s` in the interval of its `done` instant.
    #[inline]
    fn file(&mut self, s: &Sample) {
        let sec = s.done.saturating_duration_since(self.start).as_secs();
        if sec > self.sec {
            self.roll(sec);
        }
        let tag = &mut self.current.tags[s.tag as usize];
        tag.record(s);
        if let Some(w) = &self.windows {
            tag.record_windows(s, w.at(s.intended));
        }
    }

    /// Files a 401 that was the expected auth challenge (counted as a success; see
    /// `TagStats::n_challenges`).
    pub fn record_challenge(&mut self, s: &Sample) {
        self.record(s);
        self.current.tags[s.tag as usize].n_challenges += 1;
    }

    /// A step followed a redirect.
    pub fn record_redirect(&mut self, tag: usize) {
        self.current.tags[tag].n_redirects += 1;
    }

    /// Keeps `example` as the tag's first failing request, unless it has one.
    pub fn record_example(&mut self, tag: usize, example: super::FailureExample) {
        let t = &mut self.current.tags[tag];
        if t.example.is_none() {
            t.example = Some(example);
        }
    }

    /// A slot took an iteration of the scenario whose drop tag is `tag` (it will be sent or dropped).
    #[inline]
    pub fn record_tick(&mut self, tag: usize) {
        self.current.tags[tag].n_ticks += 1;
    }

    /// The iteration just taken was overdue and is being sent late (see `TagStats::n_queued`).
    pub fn record_queued(&mut self, tag: usize) {
        self.current.tags[tag].n_queued += 1;
    }

    /// Iterations the schedule had due before its end but never handed out (see `TagStats::n_unsent`).
    pub fn record_unsent(&mut self, tag: usize, n: u64) {
        self.current.tags[tag].n_unsent += n;
    }

    /// Files the summary sample of a whole iteration (it was never "started" as a request).
    pub fn record_iteration(&mut self, s: &Sample) {
        self.file(s);
    }

    /// Counts check `check` of tag `tag` for a response finished at `done`. Call it after `record`
    /// of that response's sample, so both land in the same interval.
    #[inline]
    pub fn record_check(&mut self, tag: usize, check: usize, passed: bool) {
        if let Some(c) = self.current.tags[tag].checks.get_mut(check) {
            if passed {
                c.passed += 1;
            } else {
                c.failed += 1;
            }
        }
    }

    /// Called by the worker's ticker so idle seconds are handed over too.
    pub fn tick(&mut self, now: Instant) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        if sec > self.sec {
            self.roll(sec);
        }
    }

    /// The current second's in-flight gauge up to `until` (at most its end), and a fresh one for
    /// the next interval.
    fn take_inflight(&mut self, until: Instant, next_start: Instant) -> Inflight {
        let end = self.start + Duration::from_secs(self.sec + 1);
        self.gauge(until.min(end));
        let from = self.start + Duration::from_secs(self.sec);
        let span = until.min(end).saturating_duration_since(from).as_secs_f64();
        let taken = Inflight {
            max: self.inflight_max,
            mean: if span > 0.0 {
                self.inflight_area / span
            } else {
                self.inflight as f64
            },
        };
        self.inflight_area = 0.0;
        self.inflight_max = self.inflight;
        self.last_change = self.last_change.max(next_start);
        taken
    }

    fn roll(&mut self, sec: u64) {
        let next = self.current.empty_like();
        let summary = std::mem::replace(&mut self.current, next);
        let boundary = self.start + Duration::from_secs(sec);
        let inflight = self.take_inflight(boundary, boundary);
        // A closed channel means the collector is gone (the run is being torn down): nothing to do.
        let _ = self.sink.send(Msg::Interval {
            worker: self.worker,
            sec: self.sec,
            summary,
            inflight,
        });
        self.sec = sec;
    }

    /// Hands over the last interval and says the worker is done.
    pub fn finish(&mut self, stats: WorkerStats) {
        // Failures up to the end: the outage lasted at least until now.
        if let Some(since) = self.outage_since.take() {
            self.end_outage(Instant::now().saturating_duration_since(since));
        }
        let next = self.current.empty_like();
        let summary = std::mem::replace(&mut self.current, next);
        let now = Instant::now();
        let inflight = self.take_inflight(now, now);
        let _ = self.sink.send(Msg::Interval {
            worker: self.worker,
            sec: self.sec,
            summary,
            inflight,
        });
        let _ = self.sink.send(Msg::Done {
            worker: self.worker,
            stats,
        });
    }
}
