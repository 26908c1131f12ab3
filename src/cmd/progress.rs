//! Live progress on stderr, from the same per-second interval data the report is made of (nothing
//! extra per request): on a terminal, a bar and per scenario the last finished second's rate, p50 and
//! p99, failures by status class, schedule lag, and the run's in-flight requests; with
//! `--progress plain` (or off a terminal, only when asked), one line per scenario every 10 s
//! covering those 10 s; nothing with `--quiet` or `--progress none`.

use std::io::IsTerminal;
use std::ops::Range;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::aggregate::{new_histogram, Inflight, Summary, TagStats};
use crate::cli::ProgressMode;
use crate::plan::Plan;
use crate::util::fmt_duration;

/// How often `plain` prints.
const PLAIN_EVERY: u64 = 10;

pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    by_count: bool,
    plain: bool,
    /// Each scenario's name and its tags (steps and flow phases).
    scenarios: Vec<(String, Range<usize>)>,
    /// The longest scenario name: the lines' columns line up.
    width: usize,
    /// The run's scheduled length, when it has one.
    span: Option<Duration>,
    /// The last finished second, per scenario, and the run's in-flight requests in it.
    last: Option<(u64, Vec<Span>, Inflight)>,
    /// `plain`: the seconds since the last line, per scenario.
    pending: Vec<Span>,
    pending_secs: u64,
}

impl Progress {
    pub(crate) fn new(plan: &Plan, mode: ProgressMode, quiet: bool) -> Progress {
        let plain = mode == ProgressMode::Plain && !quiet;
        let tty = mode == ProgressMode::Auto && !quiet && std::io::stderr().is_terminal();
        let scenarios: Vec<(String, Range<usize>)> = plan
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let first = plan.first_tag(i);
                (s.name.clone(), first..first + s.n_tags())
            })
            .collect();
        let span = plan.scheduled_end();
        // One bounded single-step scenario: a bar of requests; otherwise a bar of time.
        let only = match plan.scenarios.as_slice() {
            [s] if s.steps.len() == 1 => Some(s),
            _ => None,
        };
        let (len, by_count) = match (only.and_then(|s| s.stop.n_requests), span) {
            (Some(n), None) => (n, true),
            (_, Some(d)) => (d.as_millis() as u64, false),
            (None, None) => (0, true),
        };
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(len);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%\n{msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            by_count,
            plain,
            width: scenarios
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0),
            pending: vec![Span::default(); scenarios.len()],
            scenarios,
            span,
            last: None,
            pending_secs: 0,
        }
    }

    /// Whether anything is shown: the collector then keeps each second for it.
    pub(crate) fn is_live(&self) -> bool {
        self.bar.is_some() || self.plain
    }

    /// A second every worker has reported.
    pub(crate) fn second(&mut self, sec: u64, s: &Summary, inflight: Inflight) {
        if !self.is_live() {
            return;
        }
        let spans: Vec<Span> = self
            .scenarios
            .iter()
            .map(|(_, tags)| {
                let mut span = Span::default();
                for t in s.tags.get(tags.clone()).unwrap_or_default() {
                    span.add(t);
                }
                span
            })
            .collect();
        if self.plain {
            for (p, s) in self.pending.iter_mut().zip(&spans) {
                p.merge(s);
            }
            self.pending_secs += 1;
            if (sec + 1).is_multiple_of(PLAIN_EVERY) {
                self.print_plain(sec + 1);
            }
        }
        self.last = Some((sec, spans, inflight));
    }

    /// Redraws the terminal view (a few times a second).
    pub(crate) fn update(&self, n_done: u64, elapsed: Duration) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.set_position(if self.by_count {
            n_done
        } else {
            elapsed.as_millis() as u64
        });
        let mut msg = String::new();
        let remaining = self
            .span
            .map(|s| format!(", {} left", clock(s.saturating_sub(elapsed))))
            .unwrap_or_default();
        msg.push_str(&format!("  {n_done} requests{remaining}"));
        if let Some((sec, spans, inflight)) = &self.last {
            msg.push_str(&format!(
                "; second {}: {:.1} in flight (peak ≤ {})",
                sec + 1,
                inflight.mean,
                inflight.max
            ));
            for ((name, _), span) in self.scenarios.iter().zip(spans) {
                msg.push_str(&format!("\n  {}", span.line(name, self.width, 1)));
            }
        }
        bar.set_message(msg);
    }

    fn print_plain(&mut self, at: u64) {
        let total = self
            .span
            .map(|s| format!("/{}", clock(s)))
            .unwrap_or_default();
        let secs = self.pending_secs.max(1);
        for ((name, _), span) in self.scenarios.iter().zip(&self.pending) {
            eprintln!(
                "regbench {}{total} {}",
                clock(Duration::from_secs(at)),
                span.line(name, self.width, secs)
            );
        }
        self.pending.iter_mut().for_each(|p| *p = Span::default());
        self.pending_secs = 0;
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        // The last seconds since the previous line (a run rarely ends on a multiple of 10 s).
        if self.plain && self.pending_secs > 0 {
            let at = self.last.as_ref().map_or(0, |(sec, ..)| sec + 1);
            self.print_plain(at);
        }
    }
}

/// One scenario's requests over some seconds.
#[derive(Clone)]
struct Span {
    requests: u64,
    failed: u64,
    dropped: u64,
    /// 2xx, 3xx, 4xx, 5xx, gRPC OK, gRPC errors, delivered messages, and failures without a
    /// response.
    classes: [u64; 8],
    latency: Histogram<u64>,
    lag: Histogram<u64>,
}

impl Default for Span {
    fn default() -> Span {
        Span {
            requests: 0,
            failed: 0,
            dropped: 0,
            classes: [0; 8],
            latency: new_histogram(),
            lag: new_histogram(),
        }
    }
}

impl Span {
    fn add(&mut self, t: &TagStats) {
        self.dropped += t.n_dropped;
        // Whole iterations are not requests (their steps are counted already).
        if t.iteration {
            return;
        }
        self.requests += t.n_requests;
        self.failed += t.n_failed();
        let mut answered = 0;
        for (code, n) in &t.status {
            if let Some(c) = (*code as usize / 100).checked_sub(2).filter(|c| *c < 4) {
                self.classes[c] += n;
            }
            answered += n;
        }
        let grpc_ok = t.grpc.get(&0).copied().unwrap_or(0);
        let grpc = t.grpc.values().sum::<u64>();
        self.classes[4] += grpc_ok;
        self.classes[5] += grpc - grpc_ok;
        self.classes[6] += t.n_delivered;
        answered += grpc + t.n_delivered;
        self.classes[7] += t.n_requests.saturating_sub(answered);
        let _ = self.latency.add(&t.latency);
        let _ = self.lag.add(&t.lag);
    }

    fn merge(&mut self, o: &Span) {
        self.requests += o.requests;
        self.failed += o.failed;
        self.dropped += o.dropped;
        for (a, b) in self.classes.iter_mut().zip(o.classes) {
            *a += b;
        }
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
    }

    /// `list  50.0 req/s  p50 6.9ms  p99 21.6ms  failed 0  2xx=50  lag p99 0.3ms` over `secs`, the
    /// name padded to `width`. Status classes as `class=count`, so `4xx=429` is never read as a code.
    fn line(&self, name: &str, width: usize, secs: u64) -> String {
        let q = |h: &Histogram<u64>, q: f64| match h.is_empty() {
            true => "–".to_string(),
            false => fmt_duration(Duration::from_nanos(h.value_at_quantile(q))),
        };
        let mut line = format!(
            "{name:<width$} {:>9.1} req/s  p50 {:>7}  p99 {:>7}  failed {}",
            self.requests as f64 / secs as f64,
            q(&self.latency, 0.5),
            q(&self.latency, 0.99),
            self.failed
        );
        for (n, label) in self.classes.iter().zip([
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "grpc-ok",
            "grpc-error",
            "no response",
        ]) {
            if *n > 0 {
                line.push_str(&format!("  {label}={n}"));
            }
        }
        if self.dropped > 0 {
            line.push_str(&format!("  dropped={}", self.dropped));
        }
        if !self.lag.is_empty() {
            line.push_str(&format!("  lag p99 {}", q(&self.lag, 0.99)));
        }
        line
    }
}

/// `1:05` (minutes:seconds) or `1:02:05`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s >= 3600 {
        true => format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60),
        false => format!("{}:{:02}", s / 60, s % 60),
    }
}
