//! The event windows open right now, shared by the event runner (which opens and closes them) and
//! the workers' recorders (which label each sample by the windows open at its intended instant).
//! Lock-free: a few relaxed-ordered loads per sample, only when the plan has events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One kind of window: the current one (if open) and the last closed one.
#[derive(Default)]
struct Kind {
    /// Nanoseconds after the start + 1 at which the current window opened; 0: none open.
    open_since: AtomicU64,
    /// The last closed window, [opened, closed) in nanoseconds after the start.
    last_open: AtomicU64,
    last_close: AtomicU64,
}

pub struct Windows {
    start: Instant,
    kinds: Vec<Kind>,
}

impl Windows {
    pub fn new(n: usize, start: Instant) -> Windows {
        Windows {
            start,
            kinds: (0..n).map(|_| Kind::default()).collect(),
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    pub fn open(&self, k: usize, at: Instant) {
        if let Some(kind) = self.kinds.get(k) {
            kind.open_since.store(self.ns(at) + 1, Ordering::Release);
        }
    }

    /// Closes window `k` at `at`; returns how long it was open.
    pub fn close(&self, k: usize, at: Instant) -> Duration {
        let Some(kind) = self.kinds.get(k) else {
            return Duration::ZERO;
        };
        let opened = kind.open_since.load(Ordering::Acquire).saturating_sub(1);
        let closed = self.ns(at).max(opened);
        // The closed interval is visible before the window stops reading as open.
        kind.last_open.store(opened, Ordering::Relaxed);
        kind.last_close.store(closed, Ordering::Relaxed);
        kind.open_since.store(0, Ordering::Release);
        Duration::from_nanos(closed - opened)
    }

    /// The windows open at `t`, as bits (window k is bit k).
    #[inline]
    pub fn at(&self, t: Instant) -> u8 {
        let ns = self.ns(t);
        let mut mask = 0u8;
        for (k, kind) in self.kinds.iter().enumerate() {
            let since = kind.open_since.load(Ordering::Acquire);
            let open_now = since != 0 && ns + 1 >= since;
            let in_last = ns >= kind.last_open.load(Ordering::Relaxed)
                && ns < kind.last_close.load(Ordering::Relaxed);
            if open_now || in_last {
                mask |= 1 << k;
            }
        }
        mask
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_labelled_by_the_windows_open_when_intended() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let w = Windows::new(2, t0);
        assert_eq!(w.at(at(5)), 0);
        w.open(0, at(10));
        assert_eq!(w.at(at(9)), 0);
        assert_eq!(w.at(at(10)), 1);
        assert_eq!(w.at(at(500)), 1, "open: anything since it opened");
        w.open(1, at(20));
        assert_eq!(w.at(at(25)), 0b11);
        assert_eq!(w.close(0, at(30)), Duration::from_millis(20));
        // A sample intended inside the closed window, recorded later, is still during it.
        assert_eq!(w.at(at(15)), 1);
        assert_eq!(w.at(at(30)), 0b10);
        assert_eq!(w.at(at(40)), 0b10);
    }
}
