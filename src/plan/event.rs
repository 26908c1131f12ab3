//! Events (`[[event]]`): actions at set times beside the load — a request (a sync trigger), a file
//! write (a config change), a command — each opening windows that a probe closes when the target has
//! converged. A window's length is the event's convergence time; samples are labelled by the windows
//! open when they were intended. Plain data; `cmd/events.rs` carries them out.

use std::time::Duration;

use super::check::Check;
use super::RequestSpec;

/// At most this many kinds of window (a sample carries them as a bit set).
pub const MAX_WINDOWS: usize = 8;

#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    /// First occurrence, after the run's start.
    pub at: Duration,
    /// Then again every this long, while the run lasts.
    pub every: Option<Duration>,
    pub action: Action,
    /// The windows this event opens, each closed by its probe.
    pub windows: Vec<Window>,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// A request to the target; its checks say whether the action worked.
    Request {
        request: RequestSpec,
        checks: Vec<Check>,
    },
    /// Writes `content` to `path` (atomically: a reader sees the old file or the new one).
    Write {
        path: std::path::PathBuf,
        content: String,
    },
    /// Runs a program (no shell unless it is the program), killed after `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// A window: open from its event until its probe's conditions hold (or `timeout`).
#[derive(Clone, Debug)]
pub struct Window {
    /// Unique across the plan; thresholds and reports name it (`{during:NAME}`).
    pub name: String,
    pub probe: RequestSpec,
    pub interval: Duration,
    pub timeout: Duration,
    /// Every check must pass…
    pub until: Vec<Check>,
    /// …and each of these JSON pointers must differ from its value just before the event.
    pub changed: Vec<String>,
    /// …and the body must differ from the one just before the event.
    pub body_changed: bool,
    /// …and each of these headers must differ from its value just before the event.
    pub header_changed: Vec<String>,
}

impl Window {
    /// It compares answers with the one just before the event.
    pub fn needs_baseline(&self) -> bool {
        !self.changed.is_empty() || self.body_changed || !self.header_changed.is_empty()
    }
}

impl Event {
    /// The occurrences due up to `end` (after the start), in order.
    pub fn due(&self, end: Duration) -> impl Iterator<Item = Duration> + '_ {
        let every = self.every;
        let mut next = Some(self.at);
        std::iter::from_fn(move || {
            let t = next.filter(|t| *t < end)?;
            next = every.filter(|e| !e.is_zero()).map(|e| t + e);
            Some(t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences() {
        let e = Event {
            name: "sync".into(),
            at: Duration::from_secs(2),
            every: Some(Duration::from_secs(3)),
            action: Action::Write {
                path: "/tmp/x".into(),
                content: String::new(),
            },
            windows: Vec::new(),
        };
        let due: Vec<u64> = e
            .due(Duration::from_secs(10))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(due, [2, 5, 8]);
        let once = Event { every: None, ..e };
        assert_eq!(once.due(Duration::from_secs(10)).count(), 1);
        assert_eq!(once.due(Duration::from_secs(1)).count(), 0);
    }
}
