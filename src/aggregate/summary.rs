//! Mergeable statistics: per-tag HDR histograms and counters. `Summary += Summary` gives exactly what one
//! process would have recorded; serde writes histograms as HdrHistogram V2-deflate base64 so shards from
//! other processes merge without loss.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::sample::{Coding, ErrorKind, Outcome, Sample};

/// All histograms record nanoseconds, 3 significant digits, from 1 ns to one hour. Values above the range
/// are clamped to it (saturating), which only a run with a timeout above an hour could see.
pub const HIST_UNIT: &str = "ns";
pub const HIST_MAX_NS: u64 = 3_600_000_000_000;
pub const HIST_SIGFIG: u8 = 3;

/// Percentiles every report lists.
pub const QUANTILES: [(f64, &str); 7] = [
    (0.50, "p50"),
    (0.75, "p75"),
    (0.90, "p90"),
    (0.95, "p95"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

/// A histogram with the one configuration every histogram in regbench uses, so any two merge exactly.
pub fn new_histogram() -> Histogram<u64> {
    // invariant: the bounds are constants that satisfy hdrhistogram's preconditions (low ≥ 1,
    // high ≥ 2·low, sigfig ≤ 5), so construction cannot fail.
    let h = Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG);
    h.expect("constant bounds") // invariant: see above
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(ns);
}

pub(super) fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // invariant: both histograms come from `new_histogram` (or deserialise from one with the same
    // bounds), so every value of `from` fits in `into` and `add` cannot fail.
    into.add(from).expect("one configuration"); // invariant: see above
}

/// Statistics of one tag (endpoint): counters and one histogram per timing metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagStats {
    pub name: String,
    /// Requests that finished, with a response or an error.
    pub n_requests: u64,
    /// Responses per HTTP status code.
    pub status: BTreeMap<u16, u64>,
    /// gRPC calls per gRPC status code (answered with HTTP 200; not in `status`).
    #[serde(default)]
    pub grpc: BTreeMap<u8, u64>,
    /// Messages that arrived on an open stream or socket (`Outcome::Delivered`).
    #[serde(default)]
    pub n_delivered: u64,
    /// WebSocket connections' ends by close code.
    #[serde(default)]
    pub ws_close: BTreeMap<u16, u64>,
    /// Failures per error kind.
    #[serde(with = "error_counts")]
    pub errors: [u64; ErrorKind::COUNT],
    pub bytes_in: u64,
    /// Response body bytes as they came (compressed when the server compressed them).
    pub body_bytes: u64,
    /// Response body bytes once decoded, of the responses whose decoded size is known (identity
    /// bodies, and gzip ones by their trailer): `body_bytes` when nothing was compressed.
    #[serde(default)]
    pub decoded_bytes: u64,
    /// Responses with a content coding (`Content-Encoding` other than identity).
    #[serde(default)]
    pub n_compressed: u64,
    /// Of those, responses in a coding whose decoded size regbench cannot know (`br`, `zstd`,
    /// `deflate`): not in `decoded_bytes`.
    #[serde(default)]
    pub n_undecoded: u64,
    pub bytes_out: u64,
    /// Requests that had to open a new connection.
    pub n_new_connections: u64,
    /// Requests sent on a connection that was already open (a failed connect is neither).
    #[serde(default)]
    pub n_reused: u64,
    /// Same-origin redirects followed (`--redirect`): each hop's 3xx is also a request here.
    #[serde(default)]
    pub n_redirects: u64,
    /// Open model: ticks dropped unsent because they were later than `--max-lag` (not in `n_requests`).
    #[serde(default)]
    pub n_dropped: u64,
    /// Iterations a slot took from the schedule, sent or dropped (on the scenario's first tag).
    /// With `n_unsent` this is the schedule actually drawn: what the run offered.
    #[serde(default)]
    pub n_ticks: u64,
    /// Open model: iterations sent late because every in-flight slot was busy when they were due
    /// (their wait is in their latency). Dropped ones are not counted.
    #[serde(default)]
    pub n_queued: u64,
    /// Open model: iterations due before the scenario's end that were never sent because the end
    /// came first (the target or the generator could not keep up).
    #[serde(default)]
    pub n_unsent: u64,
    /// The step's checks, in the order the scenario file lists them.
    #[serde(default)]
    pub checks: Vec<CheckCount>,
    /// A whole iteration of a multi-step scenario, not a request: run totals leave it out.
    #[serde(default)]
    pub iteration: bool,
    /// New connections that did a TLS handshake, and how many of those resumed a session.
    #[serde(default)]
    pub n_tls_handshakes: u64,
    /// 401 answers that were the expected auth challenge (a registry flow's unauthenticated ping):
    /// they tell the client how to authenticate, so they count as successes.
    #[serde(default)]
    pub n_challenges: u64,
    #[serde(default)]
    pub n_tls_resumed: u64,
    /// What the handshakes negotiated, counted.
    #[serde(default)]
    pub tls_sessions: Vec<TlsSession>,
    /// The first failing request seen (the earliest interval's, when merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<FailureExample>,
    /// `done − intended` of every response and timeout (timeouts at the moment they were given up).
    #[serde(with = "hist_b64")]
    pub latency: Histogram<u64>,
    /// Dropped iterations: their lag when they were given up, a lower bound of the latency they would
    /// have had. Latency percentiles that fall among them are censored (see [`Dist::latency`]).
    #[serde(with = "hist_b64", default = "new_histogram")]
    pub dropped_lag: Histogram<u64>,
    /// `done − sent`, same population as latency.
    #[serde(with = "hist_b64")]
    pub service_time: Histogram<u64>,
    /// `first_byte − sent` of every request that got response bytes.
    #[serde(with = "hist_b64")]
    pub ttfb: Histogram<u64>,
    /// `sent − intended` of every request that was sent.
    #[serde(with = "hist_b64")]
    pub lag: Histogram<u64>,
    /// TCP connect time of every new connection.
    #[serde(with = "hist_b64")]
    pub connect: Histogram<u64>,
    /// TLS handshake time of every new TLS connection.
    #[serde(with = "hist_b64", default = "new_histogram")]
    pub tls_handshake: Histogram<u64>,
    /// With events: the requests intended while each window was open (in the plan's window order),
    /// then, last, those intended outside every window. Empty without events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub during: Vec<WindowStats>,
}

/// The requests of one tag intended inside one kind of window (or outside all of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub n_requests: u64,
    /// Transport errors and 4xx/5xx, as `n_failed`.
    pub n_failed: u64,
    /// Connections the target refused.
    pub n_refused: u64,
    #[serde(with = "hist_b64")]
    pub latency: Histogram<u64>,
}

impl WindowStats {
    pub fn new() -> WindowStats {
        WindowStats {
            n_requests: 0,
            n_failed: 0,
            n_refused: 0,
            latency: new_histogram(),
        }
    }

    fn record(&mut self, s: &Sample) {
        self.n_requests += 1;
        match s.outcome {
            Outcome::Status(_) | Outcome::Grpc(_) | Outcome::Delivered | Outcome::WsClose(_) => {
                self.n_failed += u64::from(s.outcome.is_failure());
                record(&mut self.latency, s.latency());
            }
            Outcome::Error(kind) => {
                self.n_failed += 1;
                self.n_refused += u64::from(kind == ErrorKind::Refused);
                if kind == ErrorKind::Timeout {
                    record(&mut self.latency, s.latency());
                }
            }
            Outcome::Dropped => {}
        }
    }
}

impl Default for WindowStats {
    fn default() -> Self {
        WindowStats::new()
    }
}

impl AddAssign<&WindowStats> for WindowStats {
    fn add_assign(&mut self, o: &WindowStats) {
        self.n_requests += o.n_requests;
        self.n_failed += o.n_failed;
        self.n_refused += o.n_refused;
        merge(&mut self.latency, &o.latency);
    }
}

/// The longest outage: from the first request that failed (no response, or a 5xx) after a success
/// until the next request that succeeded was sent — per worker, the longest over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downtime {
    pub longest_ns: u64,
    /// Outages (spans of failures) that ended, or were still going at the end.
    pub n_spans: u64,
}

impl AddAssign<&Downtime> for Downtime {
    fn add_assign(&mut self, o: &Downtime) {
        self.longest_ns = self.longest_ns.max(o.longest_ns);
        self.n_spans += o.n_spans;
    }
}

/// The first failing request of a tag, kept as evidence for the diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureExample {
    /// `METHOD PATH`.
    pub request: String,
    /// The status code, or the error kind's name.
    pub outcome: String,
    /// The first bytes of the response body (lossy UTF-8), if any.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub retry_after: Option<String>,
    /// What the error said (a TLS alert or certificate reason).
    #[serde(default)]
    pub detail: Option<String>,
}

/// Handshakes that negotiated one version / cipher suite / ALPN protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSession {
    pub version: String,
    pub cipher: String,
    pub alpn: String,
    pub count: u64,
}

/// Pass/fail counts of one check of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCount {
    pub name: String,
    pub passed: u64,
    pub failed: u64,
}

/// A tag to aggregate: a step's name and its checks' names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSpec {
    pub name: String,
    pub checks: Vec<String>,
    /// A whole iteration rather than a request: left out of run totals.
    pub iteration: bool,
}

impl TagStats {
    /// Empty statistics for a tag with these checks.
    pub fn with_checks(name: &str, checks: &[String]) -> TagStats {
        let mut t = TagStats::new(name);
        t.checks = checks
            .iter()
            .map(|c| CheckCount {
                name: c.clone(),
                passed: 0,
                failed: 0,
            })
            .collect();
        t
    }

    /// Empty statistics with the same name and checks.
    pub fn empty_like(&self) -> TagStats {
        let mut t = TagStats::new(&self.name);
        t.iteration = self.iteration;
        t.checks = self
            .checks
            .iter()
            .map(|c| CheckCount {
                name: c.name.clone(),
                passed: 0,
                failed: 0,
            })
            .collect();
        t.during = self.during.iter().map(|_| WindowStats::new()).collect();
        t
    }

    /// Files a sample under the windows open when it was intended (`mask`: bit k is window k),
    /// or outside them all.
    #[inline]
    pub fn record_windows(&mut self, s: &Sample, mask: u8) {
        let Some(outside) = self.during.len().checked_sub(1) else {
            return;
        };
        if mask == 0 {
            self.during[outside].record(s);
            return;
        }
        for (k, w) in self.during[..outside].iter_mut().enumerate() {
            if mask & (1 << k) != 0 {
                w.record(s);
            }
        }
    }

    /// Checks passed and failed, all checks together.
    pub fn check_totals(&self) -> (u64, u64) {
        self.checks
            .iter()
            .fold((0, 0), |(p, f), c| (p + c.passed, f + c.failed))
    }

    pub fn new(name: &str) -> TagStats {
        TagStats {
            name: name.to_string(),
            n_requests: 0,
            status: BTreeMap::new(),
            grpc: BTreeMap::new(),
            n_delivered: 0,
            ws_close: BTreeMap::new(),
            errors: [0; ErrorKind::COUNT],
            bytes_in: 0,
            body_bytes: 0,
            decoded_bytes: 0,
            n_compressed: 0,
            n_undecoded: 0,
            bytes_out: 0,
            n_new_connections: 0,
            n_reused: 0,
            n_redirects: 0,
            n_dropped: 0,
            n_ticks: 0,
            n_queued: 0,
            n_unsent: 0,
            checks: Vec::new(),
            iteration: false,
            n_tls_handshakes: 0,
            n_challenges: 0,
            n_tls_resumed: 0,
            tls_sessions: Vec::new(),
            during: Vec::new(),
            example: None,
            latency: new_histogram(),
            dropped_lag: new_histogram(),
            service_time: new_histogram(),
            ttfb: new_histogram(),
            lag: new_histogram(),
            connect: new_histogram(),
            tls_handshake: new_histogram(),
        }
    }

    /// Adds one sample. Allocation-free once a status code has been seen in this interval.
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        if s.outcome == Outcome::Dropped {
            self.n_dropped += 1;
            record(&mut self.dropped_lag, s.lag());
            return;
        }
        self.n_requests += 1;
        self.bytes_in += s.bytes_in;
        self.body_bytes += s.body_bytes;
        self.decoded_bytes += s.decoded_bytes;
        self.n_compressed += u64::from(s.coding != Coding::Identity);
        self.n_undecoded += u64::from(s.coding == Coding::Other);
        self.bytes_out += s.bytes_out;
        if let Some(c) = s.connect {
            self.n_new_connections += 1;
            record(&mut self.connect, c);
        }
        self.n_reused += u64::from(s.reused);
        if let Some(t) = s.tls {
            self.record_tls(&t);
        }
        let timed = match s.outcome {
            Outcome::Status(code) => {
                *self.status.entry(code).or_insert(0) += 1;
                true
            }
            Outcome::Grpc(code) => {
                *self.grpc.entry(code).or_insert(0) += 1;
                true
            }
            Outcome::Delivered => {
                self.n_delivered += 1;
                true
            }
            Outcome::WsClose(code) => {
                *self.ws_close.entry(code).or_insert(0) += 1;
                true
            }
            Outcome::Error(kind) => {
                self.errors[kind.index()] += 1;
                // A timeout is a real (lower-bound) latency; a refused or reset request has none.
                kind == ErrorKind::Timeout
            }
            Outcome::Dropped => false,
        };
        if timed {
            record(&mut self.latency, s.latency());
            record(&mut self.service_time, s.service_time());
        }
        if s.bytes_out > 0 {
            record(&mut self.lag, s.lag());
        }
        if let Some(t) = s.ttfb() {
            record(&mut self.ttfb, t);
        }
    }

    /// Only per new connection; allocates only the first time a negotiated combination is seen.
    fn record_tls(&mut self, t: &crate::sample::TlsHandshake) {
        self.n_tls_handshakes += 1;
        self.n_tls_resumed += u64::from(t.resumed);
        record(&mut self.tls_handshake, t.took);
        let seen = self
            .tls_sessions
            .iter_mut()
            .find(|x| x.version == t.version && x.cipher == t.cipher && x.alpn == t.alpn);
        match seen {
            Some(x) => x.count += 1,
            None => self.tls_sessions.push(TlsSession {
                version: t.version.into(),
                cipher: t.cipher.into(),
                alpn: t.alpn.into(),
                count: 1,
            }),
        }
    }

    /// Requests that ended in an error kind (no HTTP status).
    pub fn n_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Responses with a status below 400, gRPC calls that returned OK, delivered messages, WebSocket
    /// connections closed normally, and expected auth challenges.
    pub fn n_success(&self) -> u64 {
        self.status.range(..400).map(|(_, n)| n).sum::<u64>()
            + self.grpc.get(&0).copied().unwrap_or(0)
            + self.n_delivered
            + self.ws_close.get(&1000).copied().unwrap_or(0)
            + self.ws_close.get(&1001).copied().unwrap_or(0)
            + self.n_challenges
    }

    /// Failed requests: transport errors plus 4xx/5xx responses.
    pub fn n_failed(&self) -> u64 {
        self.n_requests - self.n_success()
    }
}

impl AddAssign<&TagStats> for TagStats {
    fn add_assign(&mut self, o: &TagStats) {
        self.n_requests += o.n_requests;
        self.n_challenges += o.n_challenges;
        for (code, n) in &o.status {
            *self.status.entry(*code).or_insert(0) += n;
        }
        for (code, n) in &o.grpc {
            *self.grpc.entry(*code).or_insert(0) += n;
        }
        self.n_delivered += o.n_delivered;
        for (code, n) in &o.ws_close {
            *self.ws_close.entry(*code).or_insert(0) += n;
        }
        for (a, b) in self.errors.iter_mut().zip(o.errors.iter()) {
            *a += b;
        }
        self.bytes_in += o.bytes_in;
        self.body_bytes += o.body_bytes;
        self.decoded_bytes += o.decoded_bytes;
        self.n_compressed += o.n_compressed;
        self.n_undecoded += o.n_undecoded;
        self.bytes_out += o.bytes_out;
        self.n_new_connections += o.n_new_connections;
        self.n_reused += o.n_reused;
        self.n_redirects += o.n_redirects;
        self.n_dropped += o.n_dropped;
        self.n_ticks += o.n_ticks;
        self.n_queued += o.n_queued;
        self.n_unsent += o.n_unsent;
        for c in &o.checks {
            match self.checks.iter_mut().find(|x| x.name == c.name) {
                Some(x) => {
                    x.passed += c.passed;
                    x.failed += c.failed;
                }
                None => self.checks.push(c.clone()),
            }
        }
        merge(&mut self.latency, &o.latency);
        merge(&mut self.dropped_lag, &o.dropped_lag);
        merge(&mut self.service_time, &o.service_time);
        merge(&mut self.ttfb, &o.ttfb);
        merge(&mut self.lag, &o.lag);
        merge(&mut self.connect, &o.connect);
        merge(&mut self.tls_handshake, &o.tls_handshake);
        if self.during.len() < o.during.len() {
            self.during.resize_with(o.during.len(), WindowStats::new);
        }
        for (a, b) in self.during.iter_mut().zip(&o.during) {
            *a += b;
        }
        if self.example.is_none() {
            self.example.clone_from(&o.example);
        }
        self.n_tls_handshakes += o.n_tls_handshakes;
        self.n_tls_resumed += o.n_tls_resumed;
        for t in &o.tls_sessions {
            match self
                .tls_sessions
                .iter_mut()
                .find(|x| (&x.version, &x.cipher, &x.alpn) == (&t.version, &t.cipher, &t.alpn))
            {
                Some(x) => x.count += t.count,
                None => self.tls_sessions.push(t.clone()),
            }
        }
    }
}

/// Statistics of a run or of one interval: one [`TagStats`] per tag, in plan order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tags: Vec<TagStats>,
    /// The longest span of failures (see [`Downtime`]).
    #[serde(default)]
    pub downtime: Downtime,
}

impl Summary {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Summary {
        Summary {
            tags: names.iter().map(|n| TagStats::new(n.as_ref())).collect(),
            downtime: Downtime::default(),
        }
    }

    /// A summary of these tags and their checks.
    pub fn with_specs(specs: &[TagSpec]) -> Summary {
        Summary {
            tags: specs
                .iter()
                .map(|s| {
                    let mut t = TagStats::with_checks(&s.name, &s.checks);
                    t.iteration = s.iteration;
                    t
                })
                .collect(),
            downtime: Downtime::default(),
        }
    }

    /// Keeps requests apart by the `n` kinds of event window (and outside them).
    pub fn with_windows(mut self, n: usize) -> Summary {
        if n > 0 {
            for t in &mut self.tags {
                t.during = (0..=n).map(|_| WindowStats::new()).collect();
            }
        }
        self
    }

    /// An empty summary with the same tags (and checks).
    pub fn empty_like(&self) -> Summary {
        Summary {
            tags: self.tags.iter().map(TagStats::empty_like).collect(),
            downtime: Downtime::default(),
        }
    }

    /// All requests: every tag but whole-iteration ones, merged.
    pub fn total(&self) -> TagStats {
        let mut all = TagStats::new("all");
        for t in self.tags.iter().filter(|t| !t.iteration) {
            all += t;
        }
        all
    }
}

/// Merges by tag name, so shards whose plans list tags in another order still add up.
impl AddAssign<&Summary> for Summary {
    fn add_assign(&mut self, o: &Summary) {
        self.downtime += &o.downtime;
        for (i, t) in o.tags.iter().enumerate() {
            // Fast path: the same plan lists tags in the same order.
            match self.tags.get(i).filter(|s| s.name == t.name) {
                Some(_) => self.tags[i] += t,
                None => match self.tags.iter_mut().find(|s| s.name == t.name) {
                    Some(s) => *s += t,
                    None => self.tags.push(t.clone()),
                },
            }
        }
    }
}

/// The distribution of one metric as reports print it. Computed here so reporters never compute
/// percentiles themselves.
#[derive(Clone, Debug, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub min: Duration,
    pub mean: Duration,
    pub stdev: Duration,
    pub max: Duration,
    /// One value per entry of [`QUANTILES`].
    pub quantiles: [Duration; QUANTILES.len()],
    /// Per entry of [`QUANTILES`]: the value is only a lower bound — the quantile falls among
    /// requests whose latency is unknown (dropped), so the true one is at least this.
    pub censored: [bool; QUANTILES.len()],
    /// Values known only as lower bounds (dropped requests); when non-zero, the mean, stdev and max
    /// are lower bounds too.
    pub n_censored: u64,
}

impl Dist {
    pub fn of(h: &Histogram<u64>) -> Dist {
        let ns = |v: f64| Duration::from_nanos(v.max(0.0) as u64);
        if h.is_empty() {
            return Dist {
                count: 0,
                min: Duration::ZERO,
                mean: Duration::ZERO,
                stdev: Duration::ZERO,
                max: Duration::ZERO,
                quantiles: [Duration::ZERO; QUANTILES.len()],
                censored: [false; QUANTILES.len()],
                n_censored: 0,
            };
        }
        Dist {
            count: h.len(),
            min: Duration::from_nanos(h.min()),
            mean: ns(h.mean()),
            stdev: ns(h.stdev()),
            max: Duration::from_nanos(h.max()),
            quantiles: QUANTILES.map(|(q, _)| Duration::from_nanos(h.value_at_quantile(q))),
            censored: [false; QUANTILES.len()],
            n_censored: 0,
        }
    }

    /// A tag's latency with its dropped requests in it. A dropped request's latency is unknown but at
    /// least its lag when it was dropped, so the distribution is taken over the timed latencies and
    /// those lower bounds together: every quantile is then a lower bound of the true one, and exact
    /// when enough *timed* latencies lie at or below it (then the dropped ones cannot move it).
    /// Leaving the dropped requests out instead would hide exactly the stalls that caused the drops.
    pub fn latency(t: &TagStats) -> Dist {
        if t.dropped_lag.is_empty() {
            return Dist::of(&t.latency);
        }
        let mut both = t.latency.clone();
        merge(&mut both, &t.dropped_lag);
        let mut d = Dist::of(&both);
        d.n_censored = t.dropped_lag.len();
        for (i, (q, _)) in QUANTILES.iter().enumerate() {
            d.censored[i] = is_censored(t, &both, *q);
        }
        d
    }

    /// The value at a quantile listed in [`QUANTILES`] by name, and whether it is a lower bound.
    pub fn quantile_bound(&self, name: &str) -> Option<(Duration, bool)> {
        let i = QUANTILES.iter().position(|(_, n)| *n == name)?;
        Some((self.quantiles[i], self.censored[i]))
    }

    /// The value at a quantile listed in [`QUANTILES`] by name (`"p99"`).
    pub fn quantile(&self, name: &str) -> Option<Duration> {
        QUANTILES
            .iter()
            .position(|(_, n)| *n == name)
            .map(|i| self.quantiles[i])
    }
}

/// Whether quantile `q` of `both` (the timed latencies and the dropped lower bounds of `t`) is only
/// a lower bound: fewer timed latencies lie at or below it than its rank.
pub fn is_censored(t: &TagStats, both: &Histogram<u64>, q: f64) -> bool {
    if t.dropped_lag.is_empty() {
        return false;
    }
    let v = both.value_at_quantile(q);
    let rank = ((q * both.len() as f64).ceil() as u64).max(1);
    t.latency.count_between(0, v) < rank
}

/// The histogram in bins whose upper bounds run 1, 2, 5 × 10ᵏ ns (… 100µs, 200µs, 500µs, 1ms …)
/// from the bin of the smallest value to the bin of the largest: log-spaced, so a tail two orders
/// of magnitude out gets bins of its own instead of sharing one with the whole body. Each bin
/// counts the values in (previous bound, its bound], by the values' lowest equivalents (so a 1 ms
/// response is in "≤ 1ms"; the histogram's 0.1% resolution is the only blur).
pub fn log_bins(h: &Histogram<u64>) -> Vec<(Duration, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let bound_at_or_above = |v: u64| {
        let mut b = 1u64;
        let mut step = 0;
        while b < v {
            // 1 → 2 → 5 → 10 → 20 …
            b = match step % 3 {
                0 => b * 2,
                1 => b / 2 * 5,
                _ => b * 2,
            };
            step += 1;
        }
        b
    };
    let (lo, hi) = (
        bound_at_or_above(h.lowest_equivalent(h.min()).max(1)),
        bound_at_or_above(h.lowest_equivalent(h.max()).max(1)),
    );
    let mut bounds = vec![lo];
    while *bounds.last().unwrap_or(&hi) < hi {
        let last = *bounds.last().unwrap_or(&hi);
        bounds.push(bound_at_or_above(last + 1));
    }
    let mut bins: Vec<(Duration, u64)> = bounds
        .iter()
        .map(|&b| (Duration::from_nanos(b), 0))
        .collect();
    for v in h.iter_recorded() {
        let value = h.lowest_equivalent(v.value_iterated_to());
        let i = bounds.partition_point(|&b| b < value).min(bins.len() - 1);
        bins[i].1 += v.count_at_value();
    }
    bins
}

/// A histogram as HdrHistogram V2-deflate in base64, the form the JSON report carries. Empty on the
/// (unreachable: writing into a Vec) failure of compression.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    hist_b64::encode(h).unwrap_or_default()
}

/// A histogram from [`encode_histogram`]'s form, in the standard configuration.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    hist_b64::decode(text)
}

mod hist_b64 {
    use base64::Engine;
    use hdrhistogram::serialization::{
        Deserializer as HistDe, Serializer as _, V2DeflateSerializer,
    };
    use hdrhistogram::Histogram;
    use serde::{de, ser, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(h).map_err(ser::Error::custom)?)
    }

    /// A histogram as HdrHistogram V2-deflate in base64 (what `hdrhistogram` libraries decode).
    pub fn encode(h: &Histogram<u64>) -> Result<String, String> {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut buf)
            .map_err(|e| format!("histogram encoding failed: {e:?}"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(buf))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).map_err(de::Error::custom)
    }

    pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let decoded: Histogram<u64> = HistDe::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram is not HdrHistogram V2: {e:?}"))?;
        // Re-home the counts in the standard configuration so a deserialised histogram merges and
        // compares exactly like a recorded one.
        let mut h = super::new_histogram();
        h.add(&decoded)
            .map_err(|e| format!("histogram out of range: {e:?}"))?;
        Ok(h)
    }
}

mod error_counts {
    use std::collections::BTreeMap;

    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::sample::ErrorKind;

    pub fn serialize<S: Serializer>(c: &[u64; ErrorKind::COUNT], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            ErrorKind::ALL
                .iter()
                .filter(|k| c[k.index()] > 0)
                .map(|k| (k.name(), c[k.index()])),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u64; ErrorKind::COUNT], D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = [0; ErrorKind::COUNT];
        for (name, n) in map {
            let k = ErrorKind::from_name(&name)
                .ok_or_else(|| de::Error::custom(format!("unknown error kind '{name}'")))?;
            out[k.index()] += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::Rng;
    use std::time::Instant;

    fn sample(rng: &mut Rng, base: Instant, tag: u16) -> Sample {
        let lat = Duration::from_nanos(1_000 + rng.next_u64() % 50_000_000);
        let lag = Duration::from_nanos(rng.next_u64() % 10_000);
        let outcome = match rng.next_u64() % 10 {
            9 => Outcome::Dropped,
            0 => Outcome::Error(ErrorKind::Refused),
            1 => Outcome::Error(ErrorKind::Timeout),
            2 => Outcome::Status(503),
            _ => Outcome::Status(200),
        };
        Sample {
            tag,
            intended: base,
            sent: base + lag,
            first_byte: Some(base + lag + lat / 2),
            done: base + lag + lat,
            outcome,
            bytes_in: 100,
            body_bytes: 13,
            coding: crate::sample::Coding::Identity,
            decoded_bytes: 13,
            bytes_out: 40,
            connect: rng
                .next_u64()
                .is_multiple_of(7)
                .then_some(Duration::from_micros(80)),
            tls: None,
            reused: false,
        }
    }

    #[test]
    fn merge_of_split_equals_whole() {
        let names = ["a", "b", "c"];
        let base = Instant::now();
        let mut rng = Rng::new(42);
        let samples: Vec<Sample> = (0..20_000)
            .map(|i| sample(&mut rng, base, (i % 3) as u16))
            .collect();
        let mut whole = Summary::new(&names);
        for s in &samples {
            whole.tags[s.tag as usize].record(s);
        }
        // Split into 4 shards by striping, as workers and segments do.
        let mut shards: Vec<Summary> = (0..4).map(|_| Summary::new(&names)).collect();
        for (i, s) in samples.iter().enumerate() {
            shards[i % 4].tags[s.tag as usize].record(s);
        }
        let mut merged = Summary::new(&names);
        for s in &shards {
            merged += s;
        }
        assert_eq!(merged, whole);
        let t = merged.total();
        assert_eq!(t.n_requests + t.n_dropped, 20_000);
        assert!(t.n_dropped > 0);
        assert_eq!(
            Dist::of(&merged.total().latency),
            Dist::of(&whole.total().latency)
        );
    }

    #[test]
    fn merge_by_name_tolerates_other_order_and_new_tags() {
        let base = Instant::now();
        let mut rng = Rng::new(1);
        let mut a = Summary::new(&["x", "y"]);
        let mut b = Summary::new(&["y", "z"]);
        a.tags[0].record(&sample(&mut rng, base, 0));
        b.tags[0].record(&sample(&mut rng, base, 0));
        b.tags[1].record(&sample(&mut rng, base, 1));
        a += &b;
        let names: Vec<&str> = a.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x", "y", "z"]);
        assert_eq!(a.tags[1].n_requests, 1);
        assert_eq!(a.total().n_requests, 3);
    }

    #[test]
    fn serde_round_trip_is_exact() {
        let base = Instant::now();
        let mut rng = Rng::new(9);
        let mut s = Summary::new(&["only"]);
        for _ in 0..5_000 {
            let x = sample(&mut rng, base, 0);
            s.tags[0].record(&x);
        }
        let json = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(
            json.contains("\"refused\""),
            "error kinds are named in JSON"
        );
    }

    #[test]
    fn record_classifies_populations() {
        let base = Instant::now();
        let mut t = TagStats::new("t");
        let ok = Sample {
            tag: 0,
            intended: base,
            sent: base + Duration::from_millis(1),
            first_byte: Some(base + Duration::from_millis(2)),
            done: base + Duration::from_millis(5),
            outcome: Outcome::Status(200),
            bytes_in: 10,
            body_bytes: 2,
            coding: crate::sample::Coding::Identity,
            decoded_bytes: 2,
            bytes_out: 20,
            connect: Some(Duration::from_micros(50)),
            tls: None,
            reused: false,
        };
        t.record(&ok);
        let refused = Sample {
            outcome: Outcome::Error(ErrorKind::Refused),
            first_byte: None,
            bytes_out: 0,
            connect: None,
            tls: None,
            reused: false,
            ..ok
        };
        t.record(&refused);
        assert_eq!(t.n_requests, 2);
        assert_eq!(t.n_errors(), 1);
        assert_eq!(t.n_success(), 1);
        assert_eq!(t.latency.len(), 1, "a refused request has no latency");
        let d = Dist::of(&t.latency);
        assert!(d.min >= Duration::from_micros(4995) && d.max <= Duration::from_micros(5005));
        let lag = Dist::of(&t.lag);
        assert!(lag.max >= Duration::from_micros(999) && lag.max <= Duration::from_micros(1001));
        assert_eq!(t.connect.len(), 1);
        assert_eq!(t.ttfb.len(), 1);
    }

    #[test]
    fn log_bins_cover_every_value_and_give_the_tail_its_own_bins() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let bins = log_bins(&h);
        assert_eq!(bins.iter().map(|b| b.1).sum::<u64>(), 1000);
        let bounds: Vec<u64> = bins.iter().map(|b| b.0.as_nanos() as u64).collect();
        assert_eq!(
            bounds,
            [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000]
        );
        // 999 values near 1 ms and one at 1 s: the outlier is alone in the last bin, with
        // empty bins between, instead of 99.9% in the first of 11 linear bins.
        let mut h = new_histogram();
        for _ in 0..999 {
            h.record(1_000_000).unwrap();
        }
        h.record(1_000_000_000).unwrap();
        let bins = log_bins(&h);
        assert_eq!(bins.first().unwrap().1, 999);
        assert_eq!(bins.last().unwrap(), &(Duration::from_secs(1), 1));
        assert!(bins[1..bins.len() - 1].iter().all(|b| b.1 == 0));
        assert!(log_bins(&new_histogram()).is_empty());
    }
}
