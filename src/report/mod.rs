//! Stage: report — formats a finished (or interrupted) run. Text for people, JSON for machines (with a
//! versioned, checked-in schema). Reporters only format: every number comes from `aggregate`.

pub mod json;
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
    /// DNS lookup time; `None` when the address was an IP literal or pinned with `--resolve`.
    pub dns: Option<Duration>,
    pub started_at: SystemTime,
    /// Wall time from the run's start until the last request finished (or the run was interrupted).
    pub duration: Duration,
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
    /// The run was interrupted (Ctrl-C): the report covers what ran.
    pub partial: bool,
    /// CPU of the whole process (workers, collector and anything else in it).
    pub process_cpu: Duration,
    /// Peak resident set size of the process.
    pub max_rss: u64,
    /// The threshold (`key expr`) whose failure stopped the run early (`abort_on_fail`).
    pub aborted_by: Option<String>,
    /// `--tag KEY=VALUE`s.
    pub tags: Vec<(String, String)>,
}

/// What one scenario was asked to do.
#[derive(Clone, Debug)]
pub struct ScenarioInfo {
    pub name: String,
    pub model: Model,
    pub n_connections: usize,
    pub requested: Stop,
    pub start_after: Duration,
    /// Open model: the iteration rate this process's schedule offered on average (its segment's share).
    pub offered_rps: Option<f64>,
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
}

impl RunReport {
    /// Requests that finished, over the run's wall time.
    pub fn rate(&self) -> f64 {
        self.agg.total.total().n_requests as f64 / self.info.duration.as_secs_f64().max(1e-9)
    }

    /// Iterations a scenario finished per second of the run (its first step's requests).
    pub fn iteration_rate(&self, sc: &ScenarioInfo) -> f64 {
        let n = self
            .agg
            .total
            .tags
            .get(sc.first_tag)
            .map_or(0, |t| t.n_requests);
        n as f64 / self.info.duration.as_secs_f64().max(1e-9)
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

    /// Open model: ticks that waited for a free in-flight slot.
    pub fn n_queued(&self) -> u64 {
        self.agg.workers.iter().map(|w| w.n_queued).sum()
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

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn render(self, r: &RunReport) -> String {
        match self {
            Format::Text => text::render(r),
            Format::Json => json::render(r),
        }
    }
}
