//! Stage: schedule — drives a plan in real time: tells each virtual user (closed model) or in-flight
//! slot (open model) when its next request is due — its *intended* time — or that it must stop.
//!
//! Must not know HTTP. Intended times come from the plan (the run's start plus a pure function of the
//! tick index, or a virtual user's previous completion plus think time), never from the clock after a
//! wake-up, so a late wake-up shows up as lag instead of shifting the schedule. Deciding the next tick
//! takes `now` as an argument; waiting for it is the [`Waiter`]'s job.

mod timer;
pub mod windows;

pub use timer::Waiter;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::plan::{Arrival, Model, Profile, ScenarioPlan, Stripe, WorkerPlan};
use crate::util::Rng;

/// One request slot of a worker: a virtual user (closed model) or an in-flight slot (open model).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// Index among the worker's slots (names its entry in the waiter).
    pub id: usize,
    /// Closed model: the virtual user's global index (it is active while the VU profile is above it).
    pub global: u64,
    /// When its previous request finished; `None` before its first (or after a pause while inactive).
    pub prev_done: Option<Instant>,
    /// Requests this slot has been given.
    pub n_given: u64,
}

/// A due request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    pub intended: Instant,
    /// Open model: the global tick index; closed: the virtual user's global index plus its iteration
    /// count. Picks the request (tag) in rotation.
    pub n: u64,
    /// Open model: it was already due when a slot came back from a request to take it: every slot
    /// was busy (the in-flight cap was full), so it waited, and its wait counts in its lag and
    /// latency.
    pub overdue: bool,
}

/// A worker's schedule, shared by its slots (single-threaded, so `Cell`s).
#[derive(Debug)]
pub enum Schedule {
    Closed(ClosedSchedule),
    Open(OpenSchedule),
}

impl Schedule {
    /// The schedule of `worker`'s share of a scenario whose time zero is `start`. `seed` seeds the
    /// Poisson arrivals (one seed for the whole distributed run).
    pub fn new(
        scenario: &ScenarioPlan,
        worker: &WorkerPlan,
        start: Instant,
        seed: u64,
    ) -> Schedule {
        let deadline = scenario.time_bound().map(|d| start + d);
        match &scenario.model {
            Model::Closed { think, vus } => Schedule::Closed(ClosedSchedule {
                start,
                remaining: Cell::new(worker.n_requests),
                deadline,
                think: *think,
                vus: vus.clone(),
            }),
            Model::Open { rate, arrival, .. } => Schedule::Open(OpenSchedule {
                start,
                deadline,
                rate: rate.clone(),
                arrival: *arrival,
                stripe: worker.stripe,
                n_max: scenario.stop.n_requests,
                state: RefCell::new(TickState {
                    j: 0,
                    lambda: 0.0,
                    n_drawn: 0,
                    rng: Rng::new(seed),
                    unsent: None,
                }),
            }),
        }
    }

    /// The slot's next request as of `now`, without waiting; `None` means the slot stops. Nothing is
    /// started once `now` has passed the scenario's end (`-z`, or its profile's end), however far
    /// behind the schedule is: the run is bounded in wall time.
    pub fn next(&self, slot: &mut Slot, now: Instant) -> Option<Tick> {
        let tick = match self {
            Schedule::Closed(c) => c.next(slot, now)?,
            Schedule::Open(o) => {
                let mut t = o.next(now)?;
                // A slot taking its first tick late was started late (the generator's lag), not
                // held up by a request of its own: that is not queueing.
                t.overdue &= slot.n_given > 0;
                t
            }
        };
        slot.n_given += 1;
        Some(tick)
    }

    /// The slot's next request, after waiting until it is due.
    pub async fn wait_next(&self, slot: &mut Slot, waiter: &Waiter) -> Option<Tick> {
        let tick = self.next(slot, waiter.now())?;
        waiter.sleep_until(slot.id, tick.intended).await;
        Some(tick)
    }

    /// Open model: this worker's ticks that fell before the end but were never handed out because the
    /// run reached its end first (the target or the generator could not keep up). 0 for the closed
    /// model, and until the schedule has ended.
    pub fn n_unsent(&self) -> u64 {
        match self {
            Schedule::Closed(_) => 0,
            Schedule::Open(o) => o.state.borrow().unsent.unwrap_or(0),
        }
    }
}

/// The closed model: a virtual user sends when its previous request finished plus the think time.
#[derive(Debug)]
pub struct ClosedSchedule {
    start: Instant,
    /// Requests this worker may still start; `None`: unbounded.
    remaining: Cell<Option<u64>>,
    /// No request is started at or after this instant.
    deadline: Option<Instant>,
    think: Duration,
    /// Active virtual users over time (k6 ramping-vus); `None`: all of them, all the time.
    vus: Option<Profile>,
}

impl ClosedSchedule {
    fn next(&self, slot: &mut Slot, now: Instant) -> Option<Tick> {
        let mut intended = match slot.prev_done {
            None => self.start,
            Some(done) => done + self.think,
        };
        if let Some(vus) = &self.vus {
            let at = intended.saturating_duration_since(self.start);
            if vus.value(at) <= slot.global as f64 {
                // Inactive now (ramped down, or not yet ramped up): wait until the profile next rises
                // above this user's index, and start afresh then.
                intended = self.start + vus.first_above(slot.global as f64, at)?;
            }
        }
        if self.deadline.is_some_and(|d| intended >= d || now >= d) {
            return None;
        }
        if let Some(left) = self.remaining.get() {
            if left == 0 {
                return None;
            }
            self.remaining.set(Some(left - 1));
        }
        Some(Tick {
            intended,
            n: slot.global + slot.n_given,
            overdue: false,
        })
    }
}

/// The open model: ticks at the times a pure pacer gives for this worker's stripe of the global tick
/// sequence.
#[derive(Debug)]
pub struct OpenSchedule {
    start: Instant,
    /// The end of the schedule (`-z`, or the rate profile's end, whichever is first).
    deadline: Option<Instant>,
    rate: Profile,
    arrival: Arrival,
    stripe: Stripe,
    /// Global number of ticks (`-n`), if bounded.
    n_max: Option<u64>,
    state: RefCell<TickState>,
}

#[derive(Debug)]
struct TickState {
    /// The next index into this worker's stripe.
    j: u64,
    /// Poisson: the sum of the exponential draws so far (the cumulative intensity of tick n_drawn − 1).
    lambda: f64,
    /// Poisson: global draws made so far. Every process and worker draws the same global sequence
    /// (one seed) and keeps its own ticks', so segments together are exactly the one-process schedule.
    n_drawn: u64,
    rng: Rng,
    /// Set once the run's end stopped the schedule with ticks left: how many of this worker's.
    unsent: Option<u64>,
}

/// Poisson: beyond this many draws, the ticks left unsent are counted by their expectation rather
/// than drawn one by one (an absurd rate would otherwise keep the worker drawing for minutes).
const MAX_UNSENT_DRAWS: f64 = 1e7;

impl OpenSchedule {
    fn next(&self, now: Instant) -> Option<Tick> {
        let mut st = self.state.borrow_mut();
        if let Some(end) = self.deadline.filter(|&d| now >= d) {
            if st.unsent.is_none() {
                let left = self.left_before(&mut st, end);
                st.unsent = Some(left);
            }
            return None;
        }
        let n = self.stripe.nth(st.j)?;
        if self.n_max.is_some_and(|max| n >= max) {
            return None;
        }
        let lambda = match self.arrival {
            Arrival::Uniform => n as f64,
            Arrival::Poisson => {
                while st.n_drawn <= n {
                    st.draw();
                }
                st.lambda
            }
        };
        let intended = self.start + pace(&self.rate, lambda)?;
        if self.deadline.is_some_and(|d| intended >= d) {
            return None;
        }
        st.j += 1;
        Some(Tick {
            intended,
            n,
            overdue: intended < now,
        })
    }

    /// This worker's ticks due before `end` that it has not handed out yet.
    fn left_before(&self, st: &mut TickState, end: Instant) -> u64 {
        let span = end.saturating_duration_since(self.start);
        let total_lambda = self.rate.integral(span);
        // Global ticks due before the end: tick n is due at Λ⁻¹(λₙ) < end, i.e. λₙ < Λ(end).
        let mut total = match self.arrival {
            Arrival::Uniform => total_lambda.ceil().max(0.0) as u64,
            Arrival::Poisson => {
                if total_lambda - st.lambda > MAX_UNSENT_DRAWS {
                    st.n_drawn + (total_lambda - st.lambda).round() as u64
                } else {
                    // Draws go on from the last one made (n_drawn − 1 has cumulative λ).
                    while st.lambda < total_lambda {
                        st.draw();
                    }
                    st.n_drawn - 1
                }
            }
        };
        if let Some(max) = self.n_max {
            total = total.min(max);
        }
        self.stripe.count_below(total).saturating_sub(st.j)
    }
}

impl TickState {
    /// Poisson: the next exponential gap of the global sequence.
    fn draw(&mut self) {
        let u = self.rng.next_f64();
        self.lambda += -(1.0 - u).ln();
        self.n_drawn += 1;
    }
}

/// The pacer: the offset from the run's start at which the tick of cumulative intensity `lambda` is
/// due — the inverse of the rate profile's integral. Pure. `None`: at or past the end of the profile
/// (a profile covers [0, end), so 1000/s for 1 s is exactly 1000 ticks).
pub fn pace(rate: &Profile, lambda: f64) -> Option<Duration> {
    let t = rate.inverse(lambda)?;
    if rate.end().is_some_and(|end| t >= end) {
        return None;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, RequestSpec, Segment, Step, Stop, Target};

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn plan(model: Model, stop: Stop, workers: usize, segment: Segment) -> Plan {
        Plan {
            target: Target::parse("http://127.0.0.1:1/").unwrap(),
            scenarios: vec![ScenarioPlan {
                name: "s".into(),
                model,
                stop,
                start_after: Duration::ZERO,
                n_connections: 64,
                steps: vec![Step::new(RequestSpec::get("r", "/"))],
                vars: Vec::new(),
                tags: Vec::new(),
            }],
            n_workers: workers,
            keepalive: true,
            timeout: Duration::from_secs(1),
            segment,
            max_lag: None,
            seed: 7,
            data: Vec::new(),
            tls: crate::plan::TlsOptions::default(),
            http: crate::plan::HttpOptions::default(),
            timer_slack: crate::plan::DEFAULT_TIMER_SLACK,
            warmup: Duration::ZERO,
            watch: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Worker `k`'s schedule of the plan's one scenario.
    fn sched(p: &Plan, k: usize, start: Instant) -> Schedule {
        Schedule::new(&p.scenarios[0], &p.worker(0, k).unwrap(), start, p.seed)
    }

    fn open(rate: f64, secs: u64, arrival: Arrival) -> Model {
        Model::Open {
            rate: Profile::constant(rate, Some(Duration::from_secs(secs))),
            arrival,
            max_inflight: 64,
        }
    }

    const NO_STOP: Stop = Stop {
        n_requests: None,
        duration: None,
    };

    fn slot(global: u64) -> Slot {
        Slot {
            id: 0,
            global,
            prev_done: None,
            n_given: 0,
        }
    }

    /// Every tick of every worker of every segment, as offsets from the start.
    fn all_ticks(p: &Plan, start: Instant) -> Vec<(u64, Duration)> {
        let mut out = Vec::new();
        for k in (0..p.n_workers).filter(|&k| p.worker(0, k).is_some()) {
            let s = sched(p, k, start);
            let mut sl = slot(0);
            while let Some(t) = s.next(&mut sl, start) {
                out.push((t.n, t.intended - start));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn pacer_table() {
        let constant = |r: f64| Profile::constant(r, Some(Duration::from_secs(10)));
        // (profile, λ, expected offset in seconds or None)
        let cases: Vec<(Profile, f64, Option<f64>)> = vec![
            (constant(0.0), 0.0, None), // rate 0: nothing, ever
            (constant(0.0), 5.0, None),
            (constant(100.0), 0.0, Some(0.0)),
            (constant(100.0), 1.0, Some(0.01)),
            (constant(100.0), 999.0, Some(9.99)),
            (constant(100.0), 1000.0, None), // the end is exclusive
            (constant(1e7), 5e7, Some(5.0)), // very high rate
            (constant(1e7), 1e8, None),
            (Profile::constant(1.0, None), 1e13, None), // overflow: beyond any representable run
            (Profile::constant(1.0, None), f64::INFINITY, None),
        ];
        for (p, lambda, want) in cases {
            let got = pace(&p, lambda).map(|d| d.as_secs_f64());
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "λ {lambda}: {g} vs {w}"),
                (g, w) => assert_eq!(g.is_some(), w.is_some(), "λ {lambda}: {g:?} vs {w:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn constant_rate_ticks_are_exact_and_waited_for() {
        let start = now() + Duration::from_millis(5);
        let p = plan(
            open(1000.0, 1, Arrival::Uniform),
            NO_STOP,
            1,
            Segment::WHOLE,
        );
        let s = sched(&p, 0, start);
        let mut sl = slot(0);
        let mut n = 0u64;
        while let Some(t) = s.wait_next(&mut sl, &Waiter::Tokio).await {
            assert!(!t.overdue, "a free slot takes every tick before it is due");
            let off = (t.intended - start).as_nanos() as i128;
            assert!(
                (off - n as i128 * 1_000_000).abs() <= 1,
                "tick {n} at {off} ns"
            );
            assert!(now() >= t.intended, "waited until due");
            n += 1;
        }
        assert_eq!(n, 1000, "1000/s for 1 s");
        assert_eq!(s.n_unsent(), 0, "the schedule ran out before its end");
    }

    #[test]
    fn workers_and_segments_send_exactly_the_one_process_schedule() {
        let start = Instant::now();
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let whole = all_ticks(
                &plan(open(500.0, 2, arrival), NO_STOP, 1, Segment::WHOLE),
                start,
            );
            let mut parts = Vec::new();
            for i in 0..3 {
                let seg = Segment { index: i, count: 3 };
                parts.extend(all_ticks(
                    &plan(open(500.0, 2, arrival), NO_STOP, 2, seg),
                    start,
                ));
            }
            parts.sort();
            assert_eq!(parts, whole, "{arrival:?}");
            if arrival == Arrival::Uniform {
                assert_eq!(whole.len(), 1000);
            } else {
                // Poisson: 1000 expected, sd ≈ 32.
                assert!((880..=1120).contains(&whole.len()), "{}", whole.len());
            }
        }
    }

    #[test]
    fn count_bound_is_global() {
        let start = Instant::now();
        let stop = Stop {
            n_requests: Some(101),
            duration: None,
        };
        let model = Model::Open {
            rate: Profile::constant(1000.0, None),
            arrival: Arrival::Uniform,
            max_inflight: 8,
        };
        let mut total = 0;
        for i in 0..2 {
            let p = plan(model.clone(), stop, 2, Segment { index: i, count: 2 });
            total += all_ticks(&p, start).len();
        }
        assert_eq!(total, 101);
    }

    #[test]
    fn ramp_to_zero_and_deadline_stop() {
        let start = Instant::now();
        let model = Model::Open {
            rate: Profile {
                start: 0.0,
                stages: crate::plan::parse_stages("1s:100,1s:0").unwrap(),
                hold: false,
            },
            arrival: Arrival::Uniform,
            max_inflight: 8,
        };
        let ticks = all_ticks(&plan(model.clone(), NO_STOP, 1, Segment::WHOLE), start);
        assert_eq!(
            ticks.len(),
            100,
            "Λ(2 s) = 100: ticks λ = 0..99 (λ = 100 falls on the end)"
        );
        let cut = Stop {
            n_requests: None,
            duration: Some(Duration::from_secs(1)),
        };
        let ticks = all_ticks(&plan(model, cut, 1, Segment::WHOLE), start);
        assert_eq!(
            ticks.len(),
            50,
            "Λ(1 s) = 50: ticks λ = 0..49 fall before the cut"
        );
    }

    #[test]
    fn late_slot_counts_as_queued_and_keeps_the_intended_time() {
        let start = Instant::now();
        let p = plan(open(100.0, 1, Arrival::Uniform), NO_STOP, 1, Segment::WHOLE);
        let s = sched(&p, 0, start);
        let mut sl = slot(0);
        s.next(&mut sl, start).unwrap();
        // The slot was busy for 55 ms: ticks at 10..50 ms are overdue when it comes back.
        let t = s.next(&mut sl, start + Duration::from_millis(55)).unwrap();
        assert_eq!(
            t.intended - start,
            Duration::from_millis(10),
            "intended stays on the schedule"
        );
        assert!(t.overdue);
        let t = s.next(&mut sl, start + Duration::from_millis(55)).unwrap();
        assert!(t.overdue);
        let t = s.next(&mut sl, start + Duration::from_millis(55)).unwrap();
        assert_eq!(t.intended - start, Duration::from_millis(30));
    }

    #[test]
    fn past_the_end_nothing_starts_and_the_rest_is_counted_unsent() {
        let start = Instant::now();
        for arrival in [Arrival::Uniform, Arrival::Poisson] {
            let cut = Stop {
                n_requests: None,
                duration: Some(Duration::from_secs(1)),
            };
            // 1000/s for 1 s over 2 workers; worker 0 fell behind and sent only 10 ticks.
            let p = plan(open(1000.0, 10, arrival), cut, 2, Segment::WHOLE);
            let mut sent = 0;
            let mut unsent = 0;
            for k in 0..2 {
                let s = sched(&p, k, start);
                let mut sl = slot(0);
                let n = if k == 0 { 10 } else { u64::MAX };
                let mut i = 0;
                while i < n {
                    let Some(_) = s.next(&mut sl, start) else {
                        break;
                    };
                    i += 1;
                }
                sent += i;
                let after = start + Duration::from_secs(1);
                assert_eq!(s.next(&mut sl, after), None, "nothing starts after the end");
                assert_eq!(s.next(&mut sl, after), None);
                unsent += s.n_unsent();
            }
            if arrival == Arrival::Uniform {
                assert_eq!(sent + unsent, 1000, "sent {sent} + unsent {unsent}");
                assert_eq!(unsent, 490);
            } else {
                assert!((880..=1120).contains(&(sent + unsent)), "{sent} + {unsent}");
                assert!((400..=600).contains(&unsent), "{unsent}");
            }
        }
        // An absurd rate ends in bounded time, counting by expectation.
        let cut = Stop {
            n_requests: None,
            duration: Some(Duration::from_secs(2)),
        };
        let p = plan(open(1e12, 10, Arrival::Poisson), cut, 1, Segment::WHOLE);
        let s = sched(&p, 0, start);
        let mut sl = slot(0);
        s.next(&mut sl, start).unwrap();
        assert_eq!(s.next(&mut sl, start + Duration::from_secs(3)), None);
        let unsent = s.n_unsent() as f64;
        assert!((unsent - 2e12).abs() < 1e9, "{unsent}");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_budget_think_and_deadline() {
        let start = now();
        let model = Model::Closed {
            think: Duration::from_millis(300),
            vus: None,
        };
        let stop = Stop {
            n_requests: None,
            duration: Some(Duration::from_secs(1)),
        };
        let p = plan(model, stop, 1, Segment::WHOLE);
        let s = sched(&p, 0, start);
        let mut sl = slot(0);
        let first = s.wait_next(&mut sl, &Waiter::Tokio).await.unwrap().intended;
        assert_eq!(first, start);
        sl.prev_done = Some(first + Duration::from_millis(100));
        let second = s.wait_next(&mut sl, &Waiter::Tokio).await.unwrap().intended;
        assert_eq!(
            second,
            start + Duration::from_millis(400),
            "previous done + think"
        );
        assert!(now() >= second);
        sl.prev_done = Some(second);
        assert_eq!(
            s.wait_next(&mut sl, &Waiter::Tokio).await.unwrap().intended,
            start + Duration::from_millis(700)
        );
        sl.prev_done = Some(start + Duration::from_millis(800));
        assert_eq!(
            s.wait_next(&mut sl, &Waiter::Tokio).await,
            None,
            "1.1 s is past the 1 s deadline"
        );

        let stop = Stop {
            n_requests: Some(3),
            duration: None,
        };
        let p = plan(
            Model::Closed {
                think: Duration::ZERO,
                vus: None,
            },
            stop,
            1,
            Segment::WHOLE,
        );
        let mut w = p.worker(0, 0).unwrap();
        w.n_requests = Some(3);
        let s = Schedule::new(&p.scenarios[0], &w, start, p.seed);
        let mut n = 0;
        let mut sl = slot(0);
        while let Some(t) = s.next(&mut sl, start) {
            sl.prev_done = Some(t.intended);
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn ramping_virtual_users_start_when_the_profile_reaches_them() {
        let start = Instant::now();
        let model = Model::Closed {
            think: Duration::ZERO,
            vus: Some(Profile {
                start: 0.0,
                stages: crate::plan::parse_stages("10s:10,10s:10").unwrap(),
                hold: false,
            }),
        };
        let p = plan(model, NO_STOP, 1, Segment::WHOLE);
        let s = sched(&p, 0, start);
        let mut vu5 = slot(5);
        let t = s.next(&mut vu5, start).unwrap().intended - start;
        assert!(
            (t.as_secs_f64() - 5.0).abs() < 1e-3,
            "VU 5 starts at 5 s: {t:?}"
        );
        vu5.prev_done = Some(start + Duration::from_secs(21));
        assert_eq!(s.next(&mut vu5, start), None, "the profile ended at 20 s");
    }
}
