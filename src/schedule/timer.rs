//! Waiting until a tick is due. tokio's timer wheel has a 1 ms resolution: a sleep ends at the next
//! millisecond boundary after its deadline, which would add up to 1 ms of the generator's own lateness
//! to every open-model latency. [`Waiter::Precise`] arms a `timerfd` (nanosecond resolution, delivered
//! through the runtime's epoll) at the earliest sleeping slot's deadline instead.
//!
//! One per worker thread. Per sleep: a heap push/pop into preallocated capacity and a waker clone (a
//! reference count), no allocation; one `timerfd_settime` when the earliest deadline changes. Per
//! wake-up: one `epoll_wait` return and one `timerfd_settime` for the next deadline — the timerfd is
//! never read: re-arming it resets its expiration count, and tokio's edge-triggered registration
//! reports each new expiration.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

/// How a worker waits for instants.
pub enum Waiter {
    /// tokio's timer and clock: 1 ms resolution, but pausable, so tests can drive time.
    Tokio,
    Precise(PreciseTimer),
}

impl Waiter {
    /// The precise timer for `n_slots` sleepers with wake-ups on a `slack` grid, or tokio's timer if
    /// a timerfd cannot be had (or `REGBENCH_TIMER=tokio` asks for it, so benchmarks can compare the
    /// two on one build). Must be called inside the worker's runtime.
    pub fn for_worker(n_slots: usize, slack: Duration) -> Waiter {
        if std::env::var_os("REGBENCH_TIMER").is_some_and(|v| v == "tokio") {
            return Waiter::Tokio;
        }
        match PreciseTimer::new(n_slots, slack) {
            Ok(t) => Waiter::Precise(t),
            Err(e) => {
                eprintln!(
                    "regbench: no timerfd ({e}); waking on tokio's 1 ms timer, lag will be coarser"
                );
                Waiter::Tokio
            }
        }
    }

    /// Now, on the clock this waiter sleeps on.
    pub fn now(&self) -> Instant {
        match self {
            Waiter::Tokio => tokio::time::Instant::now().into_std(),
            Waiter::Precise(_) => Instant::now(),
        }
    }

    /// Returns at or after `deadline`. `slot` (below the `n_slots` given at creation) identifies the
    /// sleeper; a slot sleeps once at a time.
    pub async fn sleep_until(&self, slot: usize, deadline: Instant) {
        match self {
            Waiter::Tokio => {
                if deadline > self.now() {
                    tokio::time::sleep_until(deadline.into()).await;
                }
            }
            Waiter::Precise(t) => t.sleep_until(slot, deadline).await,
        }
    }

    /// Serves the precise timer's expirations; runs as a task of the worker until aborted.
    pub async fn drive(&self) {
        match self {
            Waiter::Tokio => std::future::pending().await,
            Waiter::Precise(t) => t.drive().await,
        }
    }
}

pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
    sleepers: RefCell<BinaryHeap<Reverse<(Instant, usize)>>>,
    wakers: RefCell<Vec<Option<Waker>>>,
    /// The deadline the timerfd is armed for, if any.
    armed: Cell<Option<Instant>>,
    /// An instant and the CLOCK_MONOTONIC reading taken with it, to convert deadlines (std's Instant
    /// is CLOCK_MONOTONIC on Linux, but opaque).
    base: (Instant, Duration),
    /// Deadlines are rounded up to this grid: ticks closer together than this share one wake-up,
    /// which bounds the lag the timer adds and divides its cost at high rates (`--timer-slack`).
    slack: Duration,
}

fn monotonic_now() -> Duration {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl PreciseTimer {
    fn new(n_slots: usize, slack: Duration) -> std::io::Result<PreciseTimer> {
        // SAFETY: plain syscall; the fd is checked and then owned.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for its
        // whole lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(PreciseTimer {
            fd,
            sleepers: RefCell::new(BinaryHeap::with_capacity(n_slots + 1)),
            wakers: RefCell::new(vec![None; n_slots]),
            armed: Cell::new(None),
            base: (Instant::now(), monotonic_now()),
            slack,
        })
    }

    fn arm(&self, deadline: Instant) {
        let mut since = deadline.saturating_duration_since(self.base.0);
        let slack = self.slack.as_nanos() as u64;
        if slack > 1 {
            // Round up to the slack grid, so ticks due within one grid step share one wake-up.
            let ns = since.as_nanos() as u64;
            since = Duration::from_nanos(ns.div_ceil(slack) * slack);
        }
        // A deadline already passed (or at the base instant) still needs a nonzero value: zero disarms.
        let at = (self.base.1 + since).max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: at.as_secs() as libc::time_t,
                tv_nsec: at.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a fully initialised itimerspec. Failure is impossible for these
        // arguments (EINVAL only for out-of-range nanoseconds).
        unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        self.armed.set(Some(deadline));
    }

    async fn sleep_until(&self, slot: usize, deadline: Instant) {
        let mut registered = false;
        poll_fn(|cx| {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            // Every pending poll leaves a waker: a spurious wake-up (from an older entry of this slot)
            // took the previous one.
            if let Some(w) = self.wakers.borrow_mut().get_mut(slot) {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
            }
            if !registered {
                registered = true;
                self.sleepers.borrow_mut().push(Reverse((deadline, slot)));
                if self.armed.get().is_none_or(|a| deadline < a) {
                    self.arm(deadline);
                }
            }
            Poll::Pending
        })
        .await
    }

    async fn drive(&self) {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                // The fd cannot fail once registered; if it ever does, sleepers fall back to waiting
                // forever, so stop the driver loudly instead of spinning.
                eprintln!("regbench: timerfd failed; stopping the precise timer");
                return;
            };
            // No read of the expiration count: the re-arm below resets it, and until then the
            // readiness is cleared, so the next expiration's edge is the next wake-up.
            guard.clear_ready();
            self.armed.set(None);
            let now = Instant::now();
            let mut sleepers = self.sleepers.borrow_mut();
            while let Some(&Reverse((at, slot))) = sleepers.peek() {
                if at > now {
                    self.arm(at);
                    break;
                }
                sleepers.pop();
                if let Some(w) = self
                    .wakers
                    .borrow_mut()
                    .get_mut(slot)
                    .and_then(Option::take)
                {
                    w.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Runs `test` with a precise waiter for `slots` sleepers and its driver, as a worker has them.
    fn on_a_worker<F: std::future::Future<Output = ()>>(
        slots: usize,
        test: impl FnOnce(Rc<Waiter>) -> F,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let waiter = Rc::new(Waiter::for_worker(slots, Duration::from_micros(50)));
            assert!(matches!(*waiter, Waiter::Precise(_)));
            let driver = {
                let w = waiter.clone();
                tokio::task::spawn_local(async move { w.drive().await })
            };
            test(waiter).await;
            driver.abort();
        });
    }

    /// Correctness, not speed: sleepers wake in deadline order, never early. How late they wake is
    /// measured by the benchmarks (schedule lag), not asserted here.
    #[test]
    fn precise_sleepers_wake_in_order_and_never_early() {
        on_a_worker(4, |waiter| async move {
            let start = Instant::now();
            let order = std::rc::Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (slot, ms) in [(0usize, 30u64), (1, 10), (2, 20), (3, 5)] {
                let (w, order) = (waiter.clone(), order.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let deadline = start + Duration::from_millis(ms);
                    w.sleep_until(slot, deadline).await;
                    assert!(Instant::now() >= deadline, "woke early");
                    order.borrow_mut().push(slot);
                    // Sleep again on the same slot: the slot's table entry is reused.
                    let again = deadline + Duration::from_millis(1);
                    w.sleep_until(slot, again).await;
                    assert!(Instant::now() >= again);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(*order.borrow(), vec![3, 1, 2, 0]);
        });
    }

    /// The timerfd is never read: a sleep after the timer fired with nobody waiting (a sleeper that
    /// gave up, as a timed-out request does) must still wake, on time, because re-arming resets the
    /// expiration count and the next expiration is a new edge. Bounded: a lost wake-up fails the
    /// test after 2 s instead of hanging it.
    #[test]
    fn a_sleep_after_an_unread_expiration_still_wakes() {
        on_a_worker(2, |waiter| async move {
            for round in 0..20 {
                // A sleeper that gives up before its deadline: the timer later fires for nobody.
                let gave_up = Instant::now() + Duration::from_millis(3);
                let _ =
                    tokio::time::timeout(Duration::from_millis(1), waiter.sleep_until(0, gave_up))
                        .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                // Then a real sleep on the other slot.
                let deadline = Instant::now() + Duration::from_millis(2);
                tokio::time::timeout(Duration::from_secs(2), waiter.sleep_until(1, deadline))
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: the sleep never woke"));
                assert!(Instant::now() >= deadline, "woke early");
            }
        });
    }
}
