//! Stage: plan — pure. Turns a validated configuration into what each worker must do: its share of the
//! connections and of the request budget, the requests to send, the stop conditions.
//!
//! Must not sleep, spawn, do I/O or read clocks. Splits of counts add up exactly to the whole.

pub mod check;
pub mod data;
pub mod event;
pub mod flow;
pub mod grpc;
mod profile;
pub mod sse;
mod step;
mod target;
pub mod template;
pub mod threshold;
pub mod watch;
pub mod ws;

pub use step::*;
pub use target::*;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::aggregate::TagSpec;
use data::DataTable;

pub use profile::{parse_stages, Profile, Stage};

/// Errors in the plan's inputs. All are usage errors (exit code 2).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("'{0}' is not a valid URL: {1}")]
    BadUrl(String, String),
    #[error(
        "'{0}': scheme '{1}' is not supported (expected http://, https://, grpc://, grpcs://, ws:// or wss://)"
    )]
    UnsupportedScheme(String, String),
    #[error("'{0}' has no host")]
    NoHost(String),
    #[error("-c/--connections must be at least 1")]
    NoConnections,
    #[error("-n/--requests must be at least 1")]
    NoRequests,
    #[error("'{0}' is not a valid HTTP method")]
    BadMethod(String),
    #[error("-m '{0}': -m is the HTTP method (GET, POST, …); k6's -m/--max is not supported (-c sets the connections)")]
    NumericMethod(String),
    #[error("header '{0}' is not 'Name: value'")]
    BadHeader(String),
    #[error("--resolve '{0}' is not HOST:PORT:ADDRESS")]
    BadResolve(String),
    #[error(
        "--connect-to '{0}' is not HOST:PORT:HOST2:PORT2 (e.g. example.com:443:127.0.0.1:8443)"
    )]
    BadConnectTo(String),
    #[error("the plan has no requests")]
    NoRequestSpecs,
    #[error("at most {max} distinct request tags are supported, got {got}")]
    TooManyTags { max: usize, got: usize },
    #[error("--stages '{0}': {1}")]
    BadStages(String, String),
    #[error("--segment '{0}' is not I/N with 0 ≤ I < N (e.g. 0/4)")]
    BadSegment(String),
    #[error("--rate must be a non-negative number of requests per second, got '{0}'")]
    BadRate(String),
    #[error("--max-inflight must be at least 1")]
    NoInflight,
    #[error("--max-inflight {0} is smaller than the number of segments {1}: a segment would have no slot")]
    TooFewSlots(usize, u64),
    #[error("the open model needs a rate: give --rate R or --stages (with -z or -n to bound it)")]
    NoRate,
    #[error("the run has no end: give -n, -z, or --stages")]
    Unbounded,
    #[error("--stages with the closed model ramps virtual users; their peak must be at least 1")]
    NoVirtualUsers,
    #[error("{what} {got} is out of range: at most {max}")]
    TooMany {
        what: &'static str,
        max: u64,
        got: String,
    },
}

/// The most HTTP/2 streams per connection. Servers advertise 100–250 (SETTINGS_MAX_CONCURRENT_STREAMS);
/// beyond what the server allows, requests only queue in the generator, each holding memory.
pub const MAX_STREAMS: usize = 1000;

/// The open model's default timer grid: ticks due within 50 µs of each other share one wake-up.
/// Measured trade-offs in docs/performance.md ("Timer slack").
pub const DEFAULT_TIMER_SLACK: Duration = Duration::from_micros(50);
/// `--timer-slack` at most: beyond 10 ms the schedule itself would be coarse.
pub const MAX_TIMER_SLACK: Duration = Duration::from_millis(10);

/// The most connections, virtual users or in-flight requests one scenario may have. Each holds a
/// socket and buffers; the open-file limit usually bounds a process lower (checked at the start).
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// When the run stops issuing requests. Both may be set; whichever comes first wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub n_requests: Option<u64>,
    pub duration: Option<Duration>,
}

/// The whole run, validated: one or more scenarios running concurrently against one target.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    pub scenarios: Vec<ScenarioPlan>,
    /// Worker threads; each runs its share of every scenario.
    pub n_workers: usize,
    pub keepalive: bool,
    /// Per-request timeout, from send (including connect) to the end of the body.
    pub timeout: Duration,
    /// This process's share of a distributed run.
    pub segment: Segment,
    /// A request whose send is later than this after its intended time is dropped and counted.
    pub max_lag: Option<Duration>,
    /// Seeds the Poisson arrivals: processes of one distributed run must share it.
    pub seed: u64,
    /// Data tables templates pick rows from (`{{data.TABLE.COLUMN}}`).
    pub data: Vec<Arc<DataTable>>,
    /// TLS settings, used when the target is `https://`.
    pub tls: TlsOptions,
    /// Which HTTP version to speak, and HTTP/2's streams per connection.
    pub http: HttpOptions,
    /// Open model: ticks due within this grid share one wake-up of the precise timer (`--timer-slack`;
    /// a trade of schedule lag for CPU, docs/performance.md).
    pub timer_slack: Duration,
    /// Thresholds (and a stress step's SLOs) are judged on the seconds after this warm-up; the
    /// report's totals still cover the whole run. Zero: judge everything.
    pub warmup: Duration,
    /// The target's processes and metrics endpoints, sampled each second beside the load.
    pub watch: Vec<watch::Watch>,
    /// Actions at set times (a sync, a config write) and the windows their probes close.
    pub events: Vec<event::Event>,
}

/// One scenario: how iterations are paced and what each iteration does (a flow of steps; a single
/// request is a one-step flow).
#[derive(Clone, Debug)]
pub struct ScenarioPlan {
    pub name: String,
    pub model: Model,
    /// When it stops starting iterations (counts are iterations).
    pub stop: Stop,
    /// It starts this long after the run does.
    pub start_after: Duration,
    /// Connections it may open (global, before the segment split).
    pub n_connections: usize,
    pub steps: Vec<Step>,
    /// Names of the per-virtual-user variables its steps extract (the template `Var` indexes).
    pub vars: Vec<String>,
    /// `tags = { k = "v" }` from the scenario file: labels carried into the report.
    pub tags: Vec<(String, String)>,
}

/// How requests are paced (DESIGN.md §3).
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// Each virtual user (connection) sends when its previous request is done, plus `think`. With
    /// `vus`, the number of active virtual users follows that profile (k6 ramping-vus); without, all
    /// `n_connections` are active for the whole run.
    Closed {
        think: Duration,
        vus: Option<Profile>,
    },
    /// Requests arrive on a schedule whatever the target does: the rate profile in requests per
    /// second, global across workers and segments.
    Open {
        rate: Profile,
        arrival: Arrival,
        /// Outstanding requests at most (global); with HTTP/1.1 also at most `n_connections`.
        max_inflight: usize,
    },
}

impl Model {
    pub fn is_open(&self) -> bool {
        matches!(self, Model::Open { .. })
    }
}

/// The arrival process of the open model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced ticks.
    Uniform,
    /// Exponential gaps: a Poisson process with the profile's (possibly varying) rate.
    Poisson,
}

impl Arrival {
    pub fn parse(s: &str) -> Result<Arrival, String> {
        match s {
            "uniform" => Ok(Arrival::Uniform),
            "poisson" => Ok(Arrival::Poisson),
            _ => Err(format!(
                "'{s}' is not an arrival process (expected uniform or poisson)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arrival::Uniform => "uniform",
            Arrival::Poisson => "poisson",
        }
    }
}

/// Segment `index` of `count` (`--segment i/n`): the stripe of the global schedule this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: u64,
    pub count: u64,
}

impl Segment {
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    pub fn parse(s: &str) -> Result<Segment, PlanError> {
        let bad = || PlanError::BadSegment(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Segment { index, count })
    }
}

/// A stripe of a global sequence of ticks or virtual users: indexes `offset, offset + stride, …`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stripe {
    pub offset: u64,
    pub stride: u64,
}

impl Stripe {
    /// The `j`-th global index of this stripe.
    pub fn nth(&self, j: u64) -> Option<u64> {
        j.checked_mul(self.stride)?.checked_add(self.offset)
    }
    /// How many of the global indexes `0..total` fall in this stripe.
    pub fn count_below(&self, total: u64) -> u64 {
        if total <= self.offset {
            0
        } else {
            (total - self.offset).div_ceil(self.stride)
        }
    }
}

/// The whole seconds that cover `d` (a warm-up ends at the first whole second after it).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

/// Tags are `u16` in a sample; reports stay readable far below this.
pub const MAX_TAGS: usize = 1024;

/// One worker's share of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    pub index: usize,
    /// The global indexes of this worker's ticks (open model) and virtual users (closed model).
    pub stripe: Stripe,
    /// Connections this worker may open for the scenario.
    pub n_connections: usize,
    /// Closed model: virtual users this worker runs (global indexes from `stripe`). Open model: the
    /// worker's share of `--max-inflight`, capped by its connections.
    pub n_slots: usize,
    /// Closed model: iterations this worker may start (the sum of its virtual users' shares of `-n`).
    pub n_requests: Option<u64>,
}

impl Plan {
    /// The seconds of the warm-up: it ends at the first whole second after `warmup`, because the
    /// aggregation keeps whole seconds apart.
    pub fn warmup_secs(&self) -> u64 {
        whole_seconds(self.warmup)
    }

    /// A fingerprint of what the whole run sends and when (sha256, hex): equal for every segment and
    /// thread count of one distributed run, different if any scenario, request, header, body, data
    /// table, rate or seed differs. Shards are checked against it before they are merged.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut whole = self.clone();
        whole.segment = Segment::WHOLE;
        whole.n_workers = 0;
        // What is watched is each process's own business, not what the run sends.
        whole.watch = Vec::new();
        let digest = sha2::Sha256::digest(format!("{whole:?}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The event windows, in plan order: the order of `TagStats::during` (and bit k of a sample's
    /// window set).
    pub fn window_names(&self) -> Vec<&str> {
        self.events
            .iter()
            .flat_map(|e| e.windows.iter().map(|w| w.name.as_str()))
            .collect()
    }

    /// When, after the run's start, the last scenario stops starting requests; `None` when some
    /// scenario is bounded only by a count.
    pub fn scheduled_end(&self) -> Option<Duration> {
        self.scenarios
            .iter()
            .map(|s| Some(s.start_after + s.time_bound()?))
            .try_fold(Duration::ZERO, |a, b| Some(a.max(b?)))
    }

    /// The tags of samples and reports: every step (name and checks) in order — a flow step followed
    /// by its phases, `STEP/PHASE` — then one `NAME (iteration)` tag per multi-step scenario for its
    /// whole flow. A flow step's own tag is a whole operation (an image pull), like an iteration.
    pub fn tag_specs(&self) -> Vec<TagSpec> {
        let steps = self
            .scenarios
            .iter()
            .flat_map(|s| s.steps.iter())
            .flat_map(|st| {
                std::iter::once(TagSpec {
                    name: st.name.clone(),
                    checks: st.checks.iter().map(|c| c.name.clone()).collect(),
                    iteration: st.flow.is_some(),
                })
                .chain(st.phases().iter().map(|p| TagSpec {
                    name: format!("{}/{p}", st.name),
                    checks: Vec::new(),
                    // A flow's phases are its requests; a gRPC stream's messages and a
                    // WebSocket's handshakes, messages and closes are parts of the step's calls
                    // or sessions, not requests of their own.
                    iteration: st.grpc.is_some() || st.ws.is_some() || st.sse.is_some(),
                }))
            });
        let iterations = self
            .scenarios
            .iter()
            .filter(|s| s.steps.len() > 1)
            .map(|s| TagSpec {
                name: iteration_tag_name(&s.name),
                checks: Vec::new(),
                iteration: true,
            });
        steps.chain(iterations).collect()
    }

    /// Tags of all steps (phases included), before the iteration tags.
    fn n_step_tags(&self) -> usize {
        self.scenarios.iter().map(ScenarioPlan::n_tags).sum()
    }

    /// The tag of scenario `sc`'s whole iteration, if it has several steps.
    pub fn iteration_tag(&self, sc: usize) -> Option<usize> {
        if self.scenarios[sc].steps.len() < 2 {
            return None;
        }
        let before = self.scenarios[..sc]
            .iter()
            .filter(|s| s.steps.len() > 1)
            .count();
        Some(self.n_step_tags() + before)
    }

    /// The tag of scenario `sc`'s first step (its steps' tags follow in order).
    pub fn first_tag(&self, sc: usize) -> usize {
        self.scenarios[..sc].iter().map(ScenarioPlan::n_tags).sum()
    }

    /// The tag each of scenario `sc`'s steps records under.
    pub fn step_tags(&self, sc: usize) -> Vec<usize> {
        let mut tag = self.first_tag(sc);
        self.scenarios[sc]
            .steps
            .iter()
            .map(|st| {
                let t = tag;
                tag += st.n_tags();
                t
            })
            .collect()
    }

    /// The tag a dropped iteration of scenario `sc` is counted under: its first request's (a flow
    /// step's first phase), so run totals include drops.
    pub fn drop_tag(&self, sc: usize) -> usize {
        let first = self.first_tag(sc);
        match self.scenarios[sc].steps.first() {
            Some(st) if st.flow.is_some() => first + 1,
            _ => first,
        }
    }

    /// Checks invariants the engine relies on.
    pub fn validate(&self) -> Result<(), PlanError> {
        let n_tags = self.n_step_tags();
        if n_tags == 0 {
            return Err(PlanError::NoRequestSpecs);
        }
        if n_tags * 2 > MAX_TAGS {
            return Err(PlanError::TooManyTags {
                max: MAX_TAGS,
                got: n_tags,
            });
        }
        if !(1..=MAX_STREAMS).contains(&self.http.streams) {
            return Err(PlanError::TooMany {
                what: "HTTP/2 streams per connection",
                max: MAX_STREAMS as u64,
                got: self.http.streams.to_string(),
            });
        }
        for s in &self.scenarios {
            s.validate()?;
            if let Model::Open { max_inflight, .. } = &s.model {
                if s.segment_slots(self.segment) == 0 {
                    return Err(PlanError::TooFewSlots(*max_inflight, self.segment.count));
                }
            }
        }
        Ok(())
    }

    /// No more worker threads than the largest scenario has slots in this segment: more would idle.
    /// With HTTP/2 required, no more than the segment's connections either, so `-c` connections are
    /// exactly `-c`, not one per worker.
    pub fn clamp_workers(&mut self) {
        let mut most = self
            .scenarios
            .iter()
            .map(|s| s.segment_slots(self.segment))
            .max()
            .unwrap_or(1);
        if self.http.version == HttpVersion::Http2 {
            most = most.min(self.segment_h2_connections());
        }
        self.n_workers = self.n_workers.clamp(1, most.max(1) as usize);
    }

    /// HTTP/2 connections this segment opens: its slots (every scenario's) over the streams each.
    fn segment_h2_connections(&self) -> u64 {
        let slots = self
            .scenarios
            .iter()
            .map(|s| s.segment_slots(self.segment))
            .sum();
        self.http.h2_connections(slots)
    }

    /// The most connections this segment may hold open at once: its share of every scenario's
    /// connections (HTTP/1.1), or its HTTP/2 connections. A registry pull's parallel lanes are not
    /// counted: they share the slot's budget of a few.
    pub fn segment_connections(&self) -> u64 {
        match self.http.version {
            HttpVersion::Http2 => self.segment_h2_connections(),
            _ => self
                .scenarios
                .iter()
                .map(|s| {
                    split(
                        s.n_connections as u64,
                        self.segment.count,
                        self.segment.index,
                    )
                })
                .sum(),
        }
    }

    /// HTTP/2 connections worker `k` opens (at most; they open as its slots need them): its exact
    /// share of the segment's, at least one, and no more than it has slots (`n_slots`).
    pub fn worker_h2_connections(&self, k: usize, n_slots: usize) -> usize {
        let total = self.segment_h2_connections();
        let w = (self.n_workers.max(1) as u64).min(total.max(1));
        let mine = if (k as u64) < w {
            split(total, w, k as u64)
        } else {
            0
        };
        (mine as usize).clamp(1, n_slots.max(1))
    }

    /// Worker `k`'s share of scenario `sc`, or `None` if the scenario is too small to give that worker
    /// a slot (a worker with ticks but no slot to send them would silently drop them).
    pub fn worker(&self, sc: usize, k: usize) -> Option<WorkerPlan> {
        self.scenarios[sc].worker(k, self.n_workers, self.segment)
    }
}

impl ScenarioPlan {
    /// How long after its start the scenario starts its last request: `-z`/`duration`, or the end
    /// of its rate or virtual-user profile, whichever is first. `None`: bounded only by a count.
    pub fn time_bound(&self) -> Option<Duration> {
        let end = match &self.model {
            Model::Open { rate, .. }
            | Model::Closed {
                vus: Some(rate), ..
            } => rate.end(),
            Model::Closed { vus: None, .. } => None,
        };
        match (self.stop.duration, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tags of its steps, phases included.
    pub fn n_tags(&self) -> usize {
        self.steps.iter().map(Step::n_tags).sum()
    }

    fn validate(&self) -> Result<(), PlanError> {
        if self.n_connections == 0 {
            return Err(PlanError::NoConnections);
        }
        if self.stop.n_requests == Some(0) {
            return Err(PlanError::NoRequests);
        }
        if self.steps.is_empty() {
            return Err(PlanError::NoRequestSpecs);
        }
        let too_many = |what: &'static str, n: f64| match n > MAX_CONNECTIONS as f64 {
            true => Err(PlanError::TooMany {
                what,
                max: MAX_CONNECTIONS as u64,
                got: format!("{n:.0}"),
            }),
            false => Ok(()),
        };
        too_many("connections (or virtual users)", self.n_connections as f64)?;
        let profile_end = match &self.model {
            Model::Open {
                rate, max_inflight, ..
            } => {
                if *max_inflight == 0 {
                    return Err(PlanError::NoInflight);
                }
                too_many("in-flight requests", *max_inflight as f64)?;
                rate.end()
            }
            Model::Closed { vus: Some(p), .. } => {
                if p.max() < 1.0 {
                    return Err(PlanError::NoVirtualUsers);
                }
                too_many("virtual users (the stages' peak)", p.max())?;
                p.end()
            }
            Model::Closed { vus: None, .. } => None,
        };
        if self.stop.n_requests.is_none() && self.stop.duration.is_none() && profile_end.is_none() {
            return Err(PlanError::Unbounded);
        }
        Ok(())
    }

    /// Slots this segment has for the scenario: its virtual users, or its share of --max-inflight.
    pub fn segment_slots(&self, seg: Segment) -> u64 {
        let c = split(self.n_connections as u64, seg.count, seg.index);
        match &self.model {
            Model::Closed { .. } => c,
            Model::Open { max_inflight, .. } => {
                split(*max_inflight as u64, seg.count, seg.index).min(c)
            }
        }
    }

    /// Worker `k`'s share. The global index space (ticks, or virtual users) is striped first over
    /// segments, then over the workers that take part (at most one per slot of the segment): worker k
    /// of W in segment i of N takes indexes `i + N·k + N·W·j`. Every split of a count is exact, so
    /// shares add up to the whole across any number of processes and workers.
    pub fn worker(&self, k: usize, n_workers: usize, seg: Segment) -> Option<WorkerPlan> {
        let w = (n_workers.max(1) as u64)
            .min(self.segment_slots(seg))
            .max(1);
        if k as u64 >= w {
            return None;
        }
        let stripe = Stripe {
            offset: seg.index + seg.count * k as u64,
            stride: seg.count * w,
        };
        let c = self.n_connections as u64;
        let my_conns = stripe.count_below(c) as usize;
        Some(match &self.model {
            Model::Closed { .. } => WorkerPlan {
                index: k,
                stripe,
                n_connections: my_conns,
                n_slots: my_conns,
                n_requests: self.stop.n_requests.map(|total| {
                    (0..my_conns as u64)
                        .filter_map(|j| stripe.nth(j))
                        .map(|g| split(total, c, g))
                        .sum()
                }),
            },
            Model::Open { max_inflight, .. } => {
                let in_segment = split(*max_inflight as u64, seg.count, seg.index);
                let mine = split(in_segment, w, k as u64) as usize;
                WorkerPlan {
                    index: k,
                    stripe,
                    n_connections: my_conns,
                    n_slots: mine.min(my_conns),
                    n_requests: None,
                }
            }
        })
    }
}

/// The report tag of a multi-step scenario's whole iteration.
pub fn iteration_tag_name(scenario: &str) -> String {
    format!("{scenario} (iteration)")
}

/// Part `k` of `total` split into `n` parts as evenly as possible: the first `total % n` parts get one
/// more. `Σ_k split(total, n, k) == total` for every n ≥ 1.
pub fn split(total: u64, n: u64, k: u64) -> u64 {
    debug_assert!(k < n);
    total / n + u64::from(k < total % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: usize, workers: usize, n: Option<u64>) -> Plan {
        Plan {
            target: Target::parse("http://127.0.0.1:8080/v2/").unwrap(),
            scenarios: vec![ScenarioPlan {
                name: "default".into(),
                model: Model::Closed {
                    think: Duration::ZERO,
                    vus: None,
                },
                stop: Stop {
                    n_requests: n,
                    duration: None,
                },
                start_after: Duration::ZERO,
                n_connections: c,
                steps: vec![Step::new(RequestSpec::get("req", "/v2/"))],
                vars: Vec::new(),
                tags: Vec::new(),
            }],
            n_workers: workers,
            keepalive: true,
            timeout: Duration::from_secs(30),
            segment: Segment::WHOLE,
            max_lag: None,
            seed: 1,
            data: Vec::new(),
            tls: TlsOptions::default(),
            http: HttpOptions::default(),
            timer_slack: crate::plan::DEFAULT_TIMER_SLACK,
            warmup: Duration::ZERO,
            watch: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn segments_and_workers_partition_every_index_exactly_once() {
        for (segments, workers) in [(1u64, 1usize), (1, 2), (3, 2), (4, 3), (7, 1)] {
            let mut seen = vec![0u32; 1000];
            for i in 0..segments {
                let mut p = plan(10, workers, None);
                p.segment = Segment {
                    index: i,
                    count: segments,
                };
                for k in 0..workers {
                    let Some(w) = p.worker(0, k) else { continue };
                    let st = w.stripe;
                    for j in 0.. {
                        match st.nth(j) {
                            Some(g) if g < 1000 => seen[g as usize] += 1,
                            _ => break,
                        }
                    }
                    assert_eq!(
                        st.count_below(1000),
                        (0..).take_while(|&j| st.nth(j).unwrap() < 1000).count() as u64
                    );
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{segments} segments × {workers} workers"
            );
        }
    }

    #[test]
    fn closed_model_counts_split_exactly_over_segments() {
        // 50 VUs and 1_000_003 requests over 4 segments of 3 workers each.
        let (mut vus, mut reqs) = (0, 0);
        for i in 0..4 {
            let mut p = plan(50, 3, Some(1_000_003));
            p.segment = Segment { index: i, count: 4 };
            for w in (0..3).filter_map(|k| p.worker(0, k)) {
                vus += w.n_connections;
                reqs += w.n_requests.unwrap();
            }
        }
        assert_eq!((vus, reqs), (50, 1_000_003));
    }

    #[test]
    fn open_model_inflight_splits_exactly() {
        let mut total = 0;
        for i in 0..3 {
            let mut p = plan(100, 2, None);
            p.scenarios[0].model = Model::Open {
                rate: Profile::constant(100.0, Some(Duration::from_secs(1))),
                arrival: Arrival::Uniform,
                max_inflight: 31,
            };
            p.segment = Segment { index: i, count: 3 };
            total += (0..2)
                .filter_map(|k| p.worker(0, k))
                .map(|w| w.n_slots)
                .sum::<usize>();
        }
        assert_eq!(total, 31);
    }

    #[test]
    fn small_scenarios_use_fewer_workers() {
        let mut p = plan(1, 4, None);
        p.scenarios[0].model = Model::Open {
            rate: Profile::constant(10.0, Some(Duration::from_secs(1))),
            arrival: Arrival::Uniform,
            max_inflight: 1,
        };
        assert!(p.worker(0, 0).is_some());
        assert!(
            p.worker(0, 1).is_none(),
            "one slot: one worker takes part, and gets every tick"
        );
        assert_eq!(
            p.worker(0, 0).unwrap().stripe,
            Stripe {
                offset: 0,
                stride: 1
            }
        );
        p.segment = Segment { index: 1, count: 2 };
        assert!(matches!(p.validate(), Err(PlanError::TooFewSlots(1, 2))));
    }

    #[test]
    fn next_pages() {
        let head = b"HTTP/1.1 200 OK\r\nLink: </v2/_catalog?last=b&n=2>; rel=\"next\"\r\n\r\n";
        assert_eq!(
            NextPage::Link
                .next_path("/v2/_catalog?n=2", head, b"")
                .as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        let abs = b"HTTP/1.1 200 OK\r\nLink: <http://r.test:5000/v2/x/tags/list?last=v2&n=2>; rel=\"next\"\r\n\r\n";
        assert_eq!(
            NextPage::Link.next_path("/", abs, b"").as_deref(),
            Some("/v2/x/tags/list?last=v2&n=2")
        );
        assert_eq!(
            NextPage::Link.next_path("/", b"HTTP/1.1 200 OK\r\n\r\n", b""),
            None
        );
        let auto = NextPage::Cursor {
            pointers: AUTO_CURSOR.iter().map(|s| s.to_string()).collect(),
            param: "cursor".into(),
        };
        let next = auto.next_path(
            "/v1/registry?limit=30",
            b"",
            br#"{"metadata":{"next_cursor":"abc"}}"#,
        );
        assert_eq!(next.as_deref(), Some("/v1/registry?limit=30&cursor=abc"));
        let again = auto.next_path(
            "/v1/registry?limit=30&cursor=abc",
            b"",
            br#"{"metadata":{"nextCursor":"def"}}"#,
        );
        assert_eq!(again.as_deref(), Some("/v1/registry?limit=30&cursor=def"));
        assert_eq!(auto.next_path("/x", b"", br#"{"metadata":{}}"#), None);
    }

    #[test]
    fn segment_parsing() {
        assert_eq!(
            Segment::parse("2/4").unwrap(),
            Segment { index: 2, count: 4 }
        );
        assert!(Segment::parse("4/4").is_err());
        assert!(Segment::parse("0/0").is_err());
        assert!(Segment::parse("1").is_err());
    }

    #[test]
    fn splits_add_up_exactly() {
        for total in [0u64, 1, 7, 100, 1_000_003, u64::MAX] {
            for n in 1..=13u64 {
                let sum: u128 = (0..n).map(|k| split(total, n, k) as u128).sum();
                assert_eq!(sum, total as u128, "total {total} n {n}");
            }
        }
    }

    #[test]
    fn worker_budgets_follow_connections_and_add_up() {
        for (c, w, n) in [
            (3, 2, 100),
            (50, 2, 1_000_001),
            (1, 1, 5),
            (7, 4, 3),
            (2, 2, 1),
        ] {
            let p = plan(c, w, Some(n));
            let parts: Vec<WorkerPlan> = (0..w).filter_map(|k| p.worker(0, k)).collect();
            assert_eq!(parts.iter().map(|x| x.n_connections).sum::<usize>(), c);
            assert_eq!(parts.iter().map(|x| x.n_requests.unwrap()).sum::<u64>(), n);
        }
        // 3 connections on 2 workers: worker 0 has two of them and so two thirds of the budget.
        let p = plan(3, 2, Some(99));
        assert_eq!(p.worker(0, 0).unwrap().n_requests, Some(66));
        assert_eq!(p.worker(0, 1).unwrap().n_requests, Some(33));
    }

    #[test]
    fn target_parsing() {
        let t = Target::parse("http://localhost:5000/v2/_catalog?n=10").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 5000));
        assert_eq!(t.authority, "localhost:5000");
        assert_eq!(t.path, "/v2/_catalog?n=10");
        let t = Target::parse("http://example.test").unwrap();
        assert_eq!(
            (t.port, t.path.as_str(), t.authority.as_str()),
            (80, "/", "example.test")
        );
        let t = Target::parse("http://[::1]:8080/").unwrap();
        assert_eq!(t.host, "::1");
        let t = Target::parse("https://registry.test/v2/").unwrap();
        assert_eq!(
            (t.tls, t.port, t.authority.as_str()),
            (true, 443, "registry.test")
        );
        assert!(matches!(
            Target::parse("ftp://x/"),
            Err(PlanError::UnsupportedScheme(..))
        ));
        assert!(matches!(
            Target::parse("localhost:80"),
            Err(PlanError::BadUrl(..))
        ));
        assert!(Target::parse("not a url").is_err());
        for bad in [
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:65536/",
            "http://h:0/",
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{bad}: {e}");
        }
        assert_eq!(Target::parse("http://h:65535/").unwrap().port, 65535);
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth_and_are_never_shown() {
        let t = Target::parse("http://al%40ice:p%3Ass@127.0.0.1:5000/v2/").unwrap();
        assert_eq!(t.url, "http://al%40ice:***@127.0.0.1:5000/v2/");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 5000));
        assert_eq!(t.authority, "127.0.0.1:5000");
        // base64("al@ice:p:ss")
        assert_eq!(t.basic_auth.as_deref(), Some("Basic YWxAaWNlOnA6c3M="));
        let t = Target::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(t.basic_auth, None);
    }

    #[test]
    fn headers_methods_resolve() {
        assert_eq!(
            parse_header("Accept: application/json").unwrap(),
            ("Accept".into(), "application/json".into())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert_eq!(parse_method("get").unwrap(), "GET");
        assert!(parse_method("GE T").is_err());
        assert!(parse_method("").is_err());
        assert!(matches!(
            parse_method("10"),
            Err(PlanError::NumericMethod(_))
        ));
        let r = parse_resolve("registry.test:5000:127.0.0.1").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("registry.test", 5000));
        let r = parse_resolve("h:80:[::1]").unwrap();
        assert_eq!(r.to, Pin::Addr("::1".parse().unwrap()));
        assert!(parse_resolve("h:80").is_err());
        assert!(parse_resolve("h:x:127.0.0.1").is_err());
        let c = parse_connect_to("registry.test:443:127.0.0.1:8443").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("registry.test", 443));
        assert_eq!(c.to, Pin::Host("127.0.0.1".into(), 8443));
        let c = parse_connect_to("h:80:[::1]:8080").unwrap();
        assert_eq!(c.to, Pin::Host("::1".into(), 8080));
        for bad in [
            "h:80",
            "h:80:127.0.0.1",
            "h:80::8080",
            "h:x:a:1",
            "h:80:a:99999",
        ] {
            assert!(parse_connect_to(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(plan(1, 1, None).validate(), Err(PlanError::Unbounded));
        assert_eq!(
            plan(0, 1, Some(1)).validate(),
            Err(PlanError::NoConnections)
        );
        assert_eq!(plan(1, 1, Some(0)).validate(), Err(PlanError::NoRequests));
        assert!(plan(1, 1, Some(1)).validate().is_ok());
    }
}
