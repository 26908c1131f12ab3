//! `--metrics-addr HOST:PORT`: a live Prometheus / OpenMetrics endpoint (`GET /metrics`) while a run
//! goes, encoded with the Prometheus project's `prometheus-client`. It is fed the finished seconds
//! the report's per-second series is made of — nothing extra per request — so every counter equals
//! the sum of the report's `time_series` rows before `regbench_seconds_recorded` (a test checks it).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::aggregate::{new_histogram, Inflight, Summary};
use crate::plan::Plan;
use crate::sample::ErrorKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Step {
    scenario: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepCode {
    scenario: String,
    step: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepKind {
    scenario: String,
    step: String,
    kind: String,
}

/// Latency bucket bounds, seconds (`+Inf` is added).
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A histogram filled a second at a time from regbench's HDR histograms (a Prometheus histogram
/// can only observe one value at a time). Counts are exact; bounds fall on HDR's 3-significant-digit
/// buckets, and the sum is HDR's (each value at its bucket's middle).
#[derive(Debug, Default, Clone)]
struct Buckets(Arc<Mutex<BucketCounts>>);

#[derive(Debug, Default)]
struct BucketCounts {
    sum: f64,
    count: u64,
    /// Per bound of `BUCKETS`, then `+Inf`: values in (previous, bound].
    counts: [u64; BUCKETS.len() + 1],
}

impl Buckets {
    fn add(&self, h: &hdrhistogram::Histogram<u64>) {
        let Ok(mut b) = self.0.lock() else {
            return;
        };
        for v in h.iter_recorded() {
            let secs = v.value_iterated_to() as f64 / 1e9;
            let n = v.count_at_value();
            let i = BUCKETS.partition_point(|bound| *bound < secs);
            b.counts[i] += n;
            b.count += n;
        }
        b.sum += h.mean() * h.len() as f64 / 1e9;
    }
}

impl TypedMetric for Buckets {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Buckets {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let b = self.0.lock().map_err(|_| std::fmt::Error)?;
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(b.counts)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(b.sum, b.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The endpoint: its metrics (updated by the collector's thread) and the thread serving them.
pub(crate) struct Metrics {
    addr: SocketAddr,
    requests: Family<Step, Counter>,
    responses: Family<StepCode, Counter>,
    errors: Family<StepKind, Counter>,
    dropped: Family<Step, Counter>,
    latency: Family<Step, Buckets>,
    inflight: Gauge<f64, AtomicU64>,
    seconds: Gauge,
    lag_p99: Gauge<f64, AtomicU64>,
    valid: Gauge,
    /// Per tag: its scenario's name.
    scenario_of: Vec<String>,
    /// Open model: the schedule lag of every finished second, and the limit it is judged against.
    lag: hdrhistogram::Histogram<u64>,
    lag_limit: Option<Duration>,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Metrics {
    /// Binds `addr` and starts serving. Fails when the address cannot be bound.
    pub(crate) fn start(
        addr: SocketAddr,
        plan: &Plan,
        lag_limit: Option<Duration>,
    ) -> std::io::Result<Metrics> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let mut registry = Registry::with_prefix("regbench");
        let m = Metrics {
            addr,
            requests: Family::default(),
            responses: Family::default(),
            errors: Family::default(),
            dropped: Family::default(),
            latency: Family::default(),
            inflight: Gauge::default(),
            seconds: Gauge::default(),
            lag_p99: Gauge::default(),
            valid: Gauge::default(),
            scenario_of: plan
                .tag_specs()
                .iter()
                .enumerate()
                .map(|(tag, _)| {
                    (0..plan.scenarios.len())
                        .find(|i| {
                            let first = plan.first_tag(*i);
                            (first..first + plan.scenarios[*i].n_tags()).contains(&tag)
                                || plan.drop_tag(*i) == tag
                        })
                        .map_or_else(String::new, |i| plan.scenarios[i].name.clone())
                })
                .collect(),
            lag: new_histogram(),
            lag_limit,
            stop: Arc::new(AtomicBool::new(false)),
            server: None,
        };
        m.valid.set(1);
        registry.register(
            "requests",
            "Requests finished, with a response or an error",
            m.requests.clone(),
        );
        registry.register(
            "responses",
            "Responses by HTTP status code, gRPC status name (OK, UNAVAILABLE, ...), or delivered (messages on open streams and sockets)",
            m.responses.clone(),
        );
        registry.register(
            "errors",
            "Requests that failed without a response, by kind",
            m.errors.clone(),
        );
        registry.register(
            "dropped",
            "Open model: iterations dropped unsent (later than --max-lag)",
            m.dropped.clone(),
        );
        registry.register(
            "latency_seconds",
            "Latency (done - intended) of each step's timed responses",
            m.latency.clone(),
        );
        registry.register(
            "inflight",
            "Requests in flight (time-weighted mean over the last finished second)",
            m.inflight.clone(),
        );
        registry.register(
            "seconds_recorded",
            "Whole seconds since the start that every counter covers",
            m.seconds.clone(),
        );
        registry.register(
            "schedule_lag_p99_seconds",
            "Open model: p99 of the schedule lag so far (send - intended)",
            m.lag_p99.clone(),
        );
        registry.register(
            "run_valid",
            "1 while the run is valid so far (open model: schedule lag p99 within its limit); \
             worker CPU is judged at the end",
            m.valid.clone(),
        );
        let (stop, registry) = (Arc::clone(&m.stop), Arc::new(registry));
        let server = std::thread::Builder::new()
            .name("regbench-metrics".into())
            .spawn(move || serve(listener, &registry, &stop))?;
        Ok(Metrics {
            server: Some(server),
            ..m
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A second every worker has reported.
    pub(crate) fn second(&mut self, sec: u64, s: &Summary, inflight: Inflight) {
        for (i, t) in s.tags.iter().enumerate() {
            let scenario = self.scenario_of.get(i).cloned().unwrap_or_default();
            let step = Step {
                scenario: scenario.clone(),
                step: t.name.clone(),
            };
            if t.n_dropped > 0 {
                self.dropped.get_or_create(&step).inc_by(t.n_dropped);
            }
            let _ = self.lag.add(&t.lag);
            if t.n_requests == 0 {
                continue;
            }
            self.requests.get_or_create(&step).inc_by(t.n_requests);
            for (code, n) in &t.status {
                let labels = StepCode {
                    scenario: scenario.clone(),
                    step: t.name.clone(),
                    code: code.to_string(),
                };
                self.responses.get_or_create(&labels).inc_by(*n);
            }
            // gRPC calls by status name (OK, UNAVAILABLE: never read as an HTTP code), messages on
            // open streams and sockets as "delivered".
            let grpc = t
                .grpc
                .iter()
                .map(|(code, n)| (crate::sample::grpc_code_name(*code).into_owned(), *n));
            let delivered = (t.n_delivered > 0).then(|| ("delivered".to_string(), t.n_delivered));
            for (code, n) in grpc.chain(delivered) {
                let labels = StepCode {
                    scenario: scenario.clone(),
                    step: t.name.clone(),
                    code,
                };
                self.responses.get_or_create(&labels).inc_by(n);
            }
            for k in ErrorKind::ALL.iter().filter(|k| t.errors[k.index()] > 0) {
                let labels = StepKind {
                    scenario: scenario.clone(),
                    step: t.name.clone(),
                    kind: k.name().to_string(),
                };
                self.errors
                    .get_or_create(&labels)
                    .inc_by(t.errors[k.index()]);
            }
            self.latency.get_or_create(&step).add(&t.latency);
        }
        self.inflight.set(inflight.mean);
        self.seconds.set(sec as i64 + 1);
        if !self.lag.is_empty() {
            let p99 = self.lag.value_at_quantile(0.99);
            self.lag_p99.set(p99 as f64 / 1e9);
            if let Some(limit) = self.lag_limit {
                if u128::from(p99) > limit.as_nanos() {
                    self.valid.set(0);
                }
            }
        }
    }

    /// Stops serving (the run is over; its report has the final numbers).
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

/// Answers `GET /metrics` (and `GET /`) until `stop`; anything else is 404.
fn serve(listener: TcpListener, registry: &Registry, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut conn) = conn else {
            continue;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let mut reader = BufReader::new(&conn);
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The rest of the request head, unread, is dropped with the connection.
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = match path {
            "/metrics" | "/" => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, registry) {
                    Ok(()) => ("200 OK", body),
                    Err(_) => ("500 Internal Server Error", String::new()),
                }
            }
            _ => ("404 Not Found", "try /metrics\n".to_string()),
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; \
             charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
