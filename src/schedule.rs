//! Stage: schedule — drives a plan in real time: tells each virtual user when its next request is due
//! (its *intended* time) or that it must stop.
//!
//! Must not know HTTP. Intended times are computed from the plan (`start`, previous completion + think
//! time), never read from the clock after a wake-up, so a late wake-up shows up as lag, not as a shift.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::plan::{Stop, WorkerPlan};

/// The closed model: each virtual user sends its next request when its previous one finished plus the
/// think time. One per worker, shared by that worker's virtual users (single-threaded, so `Cell`).
#[derive(Debug)]
pub struct ClosedSchedule {
    start: Instant,
    /// Requests this worker may still start; `None`: unbounded.
    remaining: Cell<Option<u64>>,
    /// No request is started at or after this instant.
    deadline: Option<Instant>,
    think: Duration,
}

impl ClosedSchedule {
    pub fn new(worker: &WorkerPlan, stop: &Stop, start: Instant, think: Duration) -> Self {
        ClosedSchedule {
            start,
            remaining: Cell::new(worker.n_requests),
            deadline: stop.duration.map(|d| start + d),
            think,
        }
    }

    /// The intended time of a virtual user's next request, waiting until then; `None` means stop.
    /// `prev_done` is when its previous request finished (`None` for its first request, due at start).
    pub async fn next(&self, prev_done: Option<Instant>) -> Option<Instant> {
        let intended = match prev_done {
            None => self.start,
            Some(done) => done + self.think,
        };
        if self.deadline.is_some_and(|d| intended >= d) {
            return None;
        }
        if let Some(left) = self.remaining.get() {
            if left == 0 {
                return None;
            }
            self.remaining.set(Some(left - 1));
        }
        // tokio's clock, so tests can pause and advance it; outside tests it is the same monotonic clock.
        if intended > tokio::time::Instant::now().into_std() {
            tokio::time::sleep_until(intended.into()).await;
        }
        Some(intended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(n: Option<u64>) -> WorkerPlan {
        WorkerPlan {
            index: 0,
            n_connections: 1,
            n_requests: n,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_is_exact() {
        let start = tokio::time::Instant::now().into_std();
        let stop = Stop {
            n_requests: Some(3),
            duration: None,
        };
        let s = ClosedSchedule::new(&worker(Some(3)), &stop, start, Duration::ZERO);
        let mut n = 0;
        let mut prev = None;
        while let Some(t) = s.next(prev).await {
            n += 1;
            prev = Some(t + Duration::from_millis(1));
        }
        assert_eq!(n, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn think_time_sets_intended_and_deadline_stops() {
        let start = tokio::time::Instant::now().into_std();
        let stop = Stop {
            n_requests: None,
            duration: Some(Duration::from_secs(1)),
        };
        let think = Duration::from_millis(300);
        let s = ClosedSchedule::new(&worker(None), &stop, start, think);
        let first = s.next(None).await.unwrap();
        assert_eq!(first, start);
        let done = first + Duration::from_millis(100);
        let second = s.next(Some(done)).await.unwrap();
        assert_eq!(
            second,
            done + think,
            "intended comes from the plan, not the wake-up"
        );
        assert!(
            tokio::time::Instant::now().into_std() >= second,
            "it waited for the think time"
        );
        // 400 ms + 300 ms think = 700 ms; next would be at 1.1 s, past the 1 s deadline.
        let third = s.next(Some(second)).await.unwrap();
        assert_eq!(third, start + Duration::from_millis(700));
        assert_eq!(s.next(Some(third + Duration::from_millis(100))).await, None);
    }
}
