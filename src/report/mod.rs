//! Stage: report — formats a finished (or interrupted) run. Text for people, JSON for machines (with a
//! versioned, checked-in schema). Reporters only format: every number comes from `aggregate`.

pub mod compare;
pub mod csv;
pub mod hdr;
pub mod html;
pub mod json;
pub mod junit;
pub mod saved;
pub mod stress;
pub mod text;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::aggregate::{Aggregate, ThresholdResult, Validity};
use crate::plan::{Model, Segment, Stop};

/// Facts about the run that are not measurements of requests.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub target: String,
    pub addr: SocketAddr,
    /// `--proxy`: the HTTP proxy connections tunnel through.
    pub proxy: Option<SocketAddr>,
    /// DNS lookup time; `None` when the address was an IP literal or pinned with `--resolve`.
    pub dns: Option<Duration>,
    pub started_at: SystemTime,
    /// Wall time from the run's start until the last request finished (or the run was interrupted).
    pub duration: Duration,
    /// The span rates are measured over: from the start until the last scenario's schedule ended
    /// (or the run was stopped); for a count-bounded run, until its last response.
    pub window: Duration,
    pub n_workers: usize,
    pub keepalive: bool,
    pub timeout: Duration,
    /// The HTTP version asked for, and HTTP/2's streams per connection.
    pub http: crate::plan::HttpOptions,
    /// How the report says what was spoken (`HttpOptions::describe`).
    pub http_described: String,
    pub scenarios: Vec<ScenarioInfo>,
    pub segment: Segment,
    pub max_lag: Option<Duration>,
    /// The seed of the Poisson arrivals and random picks (`--seed` replays the run's schedule).
    pub seed: u64,
    /// The whole run's plan (every segment's), as the JSON report records it.
    pub plan: PlanRecord,
    /// The signal that interrupted the run: the report covers what ran.
    pub interrupted: Option<Interrupt>,
    /// The schedule had ended and requests still in flight after the grace period were abandoned.
    pub cut_off: bool,
    /// CPU of the whole process (workers, collector and anything else in it).
    pub process_cpu: Duration,
    /// Peak resident set size of the process.
    pub max_rss: u64,
    /// The threshold (`key expr`) whose failure stopped the run early (`abort_on_fail`).
    pub aborted_by: Option<String>,
    /// `--tag KEY=VALUE`s.
    pub tags: Vec<(String, String)>,
    /// The processes whose results this report merges (`regbench merge`); 1 for a run's own.
    pub shards: u64,
}

/// What the report keeps of the whole run's plan (every segment's): what it sends and when, without
/// headers and bodies (they may carry secrets; the fingerprint covers them). Built from the plan for
/// a run, read back from a saved JSON result for `regbench report`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRecord {
    /// `Plan::fingerprint`: equal for every shard of one distributed run.
    pub fingerprint: String,
    pub target: String,
    pub unix_socket: Option<std::path::PathBuf>,
    pub keepalive: bool,
    pub timeout: Duration,
    pub max_lag: Option<Duration>,
    pub timer_slack: Duration,
    pub warmup: Duration,
    pub watch: Vec<WatchRecord>,
    pub seed: u64,
    pub segments: u64,
    pub http: crate::plan::HttpOptions,
    pub scenarios: Vec<ScenarioRecord>,
    /// The event windows, in plan order (the order of `TagStats::during`).
    pub windows: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WatchRecord {
    pub name: String,
    pub pid: Option<u32>,
    pub cmd: Option<String>,
    pub scrape: Option<String>,
    pub metrics: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioRecord {
    pub name: String,
    pub connections: usize,
    pub start_after: Duration,
    pub stop: Stop,
    pub model: Model,
    pub steps: Vec<StepRecord>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    pub name: String,
    pub method: String,
    /// The request path, when it is the same for every request (no template, no flow).
    pub path: Option<String>,
    pub templated: bool,
    pub flow: bool,
    pub think: Duration,
}

impl PlanRecord {
    pub fn of(p: &crate::plan::Plan) -> PlanRecord {
        use crate::plan::watch::Process;
        PlanRecord {
            fingerprint: p.fingerprint(),
            target: p.target.url.clone(),
            unix_socket: p.target.unix_socket.clone(),
            keepalive: p.keepalive,
            timeout: p.timeout,
            max_lag: p.max_lag,
            timer_slack: p.timer_slack,
            warmup: p.warmup,
            watch: p
                .watch
                .iter()
                .map(|w| WatchRecord {
                    name: w.name.clone(),
                    pid: match &w.process {
                        Some(Process::Pid(p)) => Some(*p),
                        _ => None,
                    },
                    cmd: match &w.process {
                        Some(Process::Command(c) | Process::CommandLine(c)) => Some(c.clone()),
                        _ => None,
                    },
                    scrape: w.scrape.as_ref().map(|s| s.url.clone()),
                    metrics: w
                        .scrape
                        .as_ref()
                        .map(|s| s.metrics.iter().map(|m| m.text.clone()).collect()),
                })
                .collect(),
            seed: p.seed,
            segments: p.segment.count,
            http: p.http,
            scenarios: p
                .scenarios
                .iter()
                .map(|s| ScenarioRecord {
                    name: s.name.clone(),
                    connections: s.n_connections,
                    start_after: s.start_after,
                    stop: s.stop,
                    model: s.model.clone(),
                    steps: s
                        .steps
                        .iter()
                        .map(|st| StepRecord {
                            name: st.name.clone(),
                            method: st.request.method.to_string(),
                            path: (st.template.is_none() && st.flow.is_none())
                                .then(|| st.request.path.to_string()),
                            templated: st.template.is_some(),
                            flow: st.flow.is_some(),
                            think: st.think,
                        })
                        .collect(),
                })
                .collect(),
            windows: p.window_names().into_iter().map(String::from).collect(),
        }
    }

    /// The seconds of the warm-up (`Plan::warmup_secs`).
    pub fn warmup_secs(&self) -> u64 {
        crate::plan::whole_seconds(self.warmup)
    }

    pub fn any_open(&self) -> bool {
        self.scenarios.iter().any(|s| s.model.is_open())
    }
}

/// A signal that stopped a run early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    /// What happened, for people: "terminated (SIGTERM)".
    pub name: &'static str,
    /// 128 + the signal's number.
    pub exit_code: u8,
}

impl Interrupt {
    // 128 + the signal's number: the exit codes of DESIGN.md §6 (`app::exit` names them).
    pub const SIGINT: Interrupt = Interrupt {
        name: "interrupted (SIGINT)",
        exit_code: 130,
    };
    pub const SIGTERM: Interrupt = Interrupt {
        name: "terminated (SIGTERM)",
        exit_code: 143,
    };
    pub const SIGHUP: Interrupt = Interrupt {
        name: "hung up (SIGHUP)",
        exit_code: 129,
    };
    pub const ALL: [Interrupt; 3] = [Interrupt::SIGINT, Interrupt::SIGTERM, Interrupt::SIGHUP];
}

impl RunInfo {
    /// The run was stopped before its schedule ended: the report covers what ran.
    pub fn partial(&self) -> bool {
        self.interrupted.is_some()
    }
}

/// What one scenario was asked to do.
#[derive(Clone, Debug)]
pub struct ScenarioInfo {
    pub name: String,
    pub model: Model,
    pub n_connections: usize,
    /// This process's share (its segment's): connections, and slots (virtual users or the
    /// in-flight cap). Equal to the whole run's when it is not distributed.
    pub segment_connections: u64,
    pub segment_slots: u64,
    pub requested: Stop,
    pub start_after: Duration,
    /// The span its rates are measured over (see `RunInfo::window`), from its own start.
    pub window: Duration,
    /// Its steps (and their flows' phases) are the tags `first_tag .. first_tag + n_tags`.
    pub first_tag: usize,
    pub n_tags: usize,
    pub n_steps: usize,
    /// The tag its dropped iterations are counted under.
    pub drop_tag: usize,
    pub tags: Vec<(String, String)>,
}

/// Everything a reporter needs.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub info: RunInfo,
    pub agg: Aggregate,
    pub validity: Validity,
    /// The scenario file's thresholds, judged on the whole run.
    pub thresholds: Vec<ThresholdResult>,
    /// What each kind of failure likely means, with the run's evidence (empty without failures).
    pub diagnosis: Vec<crate::analyze::diagnosis::Diagnosis>,
    /// The watched target's series (`--watch-pid`, `--scrape`, `[[watch]]`), when anything was
    /// watched.
    pub target: Option<crate::telemetry::Telemetry>,
    /// What the plan's events did and how long their windows took to converge.
    pub events: Option<EventLog>,
}

/// Every event's occurrences.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    pub events: Vec<EventReport>,
}

impl EventLog {
    /// A window's durations over its occurrences that converged, as a histogram (ns), and how many
    /// did not converge.
    pub fn convergence(&self, window: &str) -> (hdrhistogram::Histogram<u64>, u64) {
        let mut h = crate::aggregate::new_histogram();
        let mut n_open = 0;
        let runs = self
            .events
            .iter()
            .flat_map(|e| &e.occurrences)
            .flat_map(|o| &o.windows)
            .filter(|w| w.name == window);
        for w in runs {
            match w.converged {
                true => {
                    let _ = h.record(w.duration.as_nanos() as u64);
                }
                false => n_open += 1,
            }
        }
        (h, n_open)
    }
}

#[derive(Clone, Debug, Default)]
pub struct EventReport {
    pub name: String,
    /// The names of the windows it opens, in the plan's window order.
    pub windows: Vec<String>,
    pub occurrences: Vec<Occurrence>,
    /// Occurrences not carried out because the previous one was still converging.
    pub n_skipped: u64,
}

/// One occurrence of an event.
#[derive(Clone, Debug)]
pub struct Occurrence {
    /// 1, 2, …
    pub n: u64,
    /// When it was due and when its action began, after the run's start.
    pub due: Duration,
    pub fired: Duration,
    /// The action's start as wall-clock time, to line up with the target's own logs.
    pub fired_unix_ms: u64,
    /// `Err` says why the action failed.
    pub action: Result<(), String>,
    pub windows: Vec<WindowRun>,
}

/// One window of one occurrence.
#[derive(Clone, Debug)]
pub struct WindowRun {
    pub name: String,
    /// From the action's start to the probe answer that converged (or to the timeout / run end).
    pub duration: Duration,
    pub converged: bool,
    pub n_probes: u64,
}

impl RunReport {
    /// The plan's windows, in order (the index of `TagStats::during`).
    pub fn window_names(&self) -> Vec<&str> {
        self.info.plan.windows.iter().map(String::as_str).collect()
    }

    /// A window's convergence times (see [`EventLog::convergence`]).
    pub fn convergence(&self, window: &str) -> (hdrhistogram::Histogram<u64>, u64) {
        match &self.events {
            Some(log) => log.convergence(window),
            None => (crate::aggregate::new_histogram(), 0),
        }
    }

    /// Requests that finished, over the run's window.
    pub fn rate(&self) -> f64 {
        self.agg.total.total().n_requests as f64 / self.info.window.as_secs_f64().max(1e-9)
    }

    /// The scenario's first tag, which carries its schedule's counters.
    pub fn first_tag(&self, sc: &ScenarioInfo) -> Option<&crate::aggregate::TagStats> {
        self.agg.total.tags.get(sc.first_tag)
    }

    /// Iterations a scenario finished per second of its window (its first step's requests).
    pub fn iteration_rate(&self, sc: &ScenarioInfo) -> f64 {
        let n = self.first_tag(sc).map_or(0, |t| t.n_requests);
        n as f64 / sc.window.as_secs_f64().max(1e-9)
    }

    /// Open model: the rate this process's schedule offered — every iteration it drew for the
    /// window (sent, dropped, or left unsent at the end) over the window. `None` for the closed model.
    pub fn offered_rate(&self, sc: &ScenarioInfo) -> Option<f64> {
        if !sc.model.is_open() {
            return None;
        }
        let t = self.first_tag(sc)?;
        Some((t.n_ticks + t.n_unsent) as f64 / sc.window.as_secs_f64().max(1e-9))
    }

    /// Open model: iterations due before the end that were never sent (all scenarios).
    pub fn n_unsent(&self) -> u64 {
        self.agg.total.tags.iter().map(|t| t.n_unsent).sum()
    }

    /// Iterations a scenario dropped (later than --max-lag).
    pub fn n_dropped(&self, sc: &ScenarioInfo) -> u64 {
        self.agg
            .total
            .tags
            .get(sc.drop_tag)
            .map_or(0, |t| t.n_dropped)
    }

    /// The scenario a tag belongs to (a step's, or its whole iteration's).
    pub fn scenario_of(&self, tag: usize) -> Option<&ScenarioInfo> {
        let name = &self.agg.total.tags.get(tag)?.name;
        self.info.scenarios.iter().find(|s| {
            (s.first_tag..s.first_tag + s.n_tags).contains(&tag)
                || *name == crate::plan::iteration_tag_name(&s.name)
        })
    }

    /// Open model: iterations sent late because every in-flight slot was busy (all scenarios).
    pub fn n_queued(&self) -> u64 {
        self.agg.total.tags.iter().map(|t| t.n_queued).sum()
    }

    /// Requests abandoned in flight when the run was interrupted.
    pub fn n_cancelled(&self) -> u64 {
        self.agg.workers.iter().map(|w| w.n_cancelled).sum()
    }

    /// Total CPU of the worker threads.
    pub fn workers_cpu(&self) -> Duration {
        crate::aggregate::workers_cpu(&self.agg.workers)
    }
}

/// Escapes text for HTML and XML: markup characters as entities; in an attribute value also line
/// breaks and tabs (which attribute parsing would fold into spaces); other control characters, which
/// XML 1.0 cannot carry, become spaces.
pub(crate) fn escape_markup(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// Per step per second; with a file, a summary beside it (`csv::summary_path`).
    Csv,
    /// An HdrHistogram interval log.
    Hdr,
    /// One self-contained page with charts.
    Html,
    /// JUnit XML: thresholds, checks and validity as test cases.
    Junit,
}

impl Format {
    /// The names `-o` takes.
    pub const NAMES: [&'static str; 6] = ["text", "json", "csv", "hdr", "html", "junit"];

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "hdr" => Some(Format::Hdr),
            "html" => Some(Format::Html),
            "junit" => Some(Format::Junit),
            _ => None,
        }
    }

    pub fn render(self, r: &RunReport) -> String {
        match self {
            Format::Text => text::render(r),
            Format::Json => json::render(r),
            Format::Csv => csv::render(r),
            Format::Hdr => hdr::render(r),
            Format::Html => html::render(r),
            Format::Junit => junit::render(r),
        }
    }

    /// Files a format writes beside `path` (the CSV summary).
    pub fn companions(
        self,
        path: &std::path::Path,
        r: &RunReport,
    ) -> Vec<(std::path::PathBuf, String)> {
        match self {
            Format::Csv => vec![(csv::summary_path(path), csv::summary(r))],
            _ => Vec::new(),
        }
    }
}
