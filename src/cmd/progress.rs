//! The progress bar on stderr (only on a terminal, never with `--quiet`).

use std::io::IsTerminal;
use std::time::Duration;

use crate::plan::Plan;

/// A progress bar on stderr, only when stderr is a terminal and not `--quiet`.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    by_count: bool,
}

impl Progress {
    pub(crate) fn new(plan: &Plan, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                by_count: false,
            };
        }
        // One bounded single-step scenario: a bar of requests; otherwise a bar of time.
        let only = match plan.scenarios.as_slice() {
            [s] if s.steps.len() == 1 => Some(s),
            _ => None,
        };
        let span = plan
            .scenarios
            .iter()
            .filter_map(|s| Some(s.start_after + s.time_bound()?))
            .max();
        let (len, by_count) = match (only.and_then(|s| s.stop.n_requests), span) {
            (Some(n), None) => (n, true),
            (_, Some(d)) => (d.as_millis() as u64, false),
            (None, None) => (0, true),
        };
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Progress {
            bar: Some(bar),
            by_count,
        }
    }

    pub(crate) fn update(&self, n_done: u64, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(if self.by_count {
                n_done
            } else {
                elapsed.as_millis() as u64
            });
            let rate = n_done as f64 / elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!("{n_done} requests, {rate:.0} req/s"));
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
