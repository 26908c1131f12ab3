//! The demo target's own `/metrics`, in Prometheus text format: requests by route and status class,
//! durations as a histogram, process RSS.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Routes, as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    Servers,
    Server,
    Status,
    Sync,
    Metrics,
    Token,
    Upload,
    /// gRPC calls (any method).
    Grpc,
    /// WebSocket upgrades.
    WebSocket,
    /// Event streams (`/sse/watch`).
    Events,
    NotFound,
}

impl Route {
    pub const ALL: [Route; 16] = [
        Route::Base,
        Route::Catalog,
        Route::Tags,
        Route::Manifest,
        Route::Blob,
        Route::Servers,
        Route::Server,
        Route::Status,
        Route::Sync,
        Route::Metrics,
        Route::Token,
        Route::Upload,
        Route::Grpc,
        Route::WebSocket,
        Route::Events,
        Route::NotFound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Base => "v2",
            Route::Catalog => "catalog",
            Route::Tags => "tags",
            Route::Manifest => "manifest",
            Route::Blob => "blob",
            Route::Servers => "servers",
            Route::Server => "server",
            Route::Status => "status",
            Route::Sync => "sync",
            Route::Metrics => "metrics",
            Route::Token => "token",
            Route::Upload => "upload",
            Route::Grpc => "grpc",
            Route::WebSocket => "websocket",
            Route::Events => "events",
            Route::NotFound => "not_found",
        }
    }
}

const BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct RouteMetrics {
    by_class: [AtomicU64; 5],
    /// Cumulative-at-render buckets: here each counts its own range; the last is +Inf.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    sum_ns: AtomicU64,
}

/// Counters shared by the server's threads (the target, not the generator: atomics are fine here).
#[derive(Default)]
pub struct Metrics {
    routes: [RouteMetrics; Route::ALL.len()],
}

impl Metrics {
    pub fn record(&self, route: Route, status: u16, took: Duration) {
        let m = &self.routes[route as usize];
        let class = (status / 100).clamp(1, 5) as usize - 1;
        m.by_class[class].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let b = BUCKETS_S
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS_S.len());
        m.buckets[b].fetch_add(1, Relaxed);
        m.sum_ns.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    /// Requests answered on every route except `/metrics` itself.
    pub fn requests_total(&self) -> u64 {
        Route::ALL
            .iter()
            .filter(|r| **r != Route::Metrics)
            .map(|r| self.route_total(*r))
            .sum()
    }

    pub fn route_total(&self, route: Route) -> u64 {
        self.routes[route as usize]
            .by_class
            .iter()
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// The exposition; `leaked` is what `--leak` has allocated so far, when it is on.
    pub fn render(&self, leaked: Option<u64>) -> String {
        let mut o = String::new();
        // invariant: writing to a String cannot fail.
        let _ = self.write(&mut o, leaked);
        o
    }

    fn write(&self, o: &mut String, leaked: Option<u64>) -> std::fmt::Result {
        if let Some(n) = leaked {
            writeln!(
                o,
                "# HELP regbench_demo_leaked_bytes Memory --leak has allocated and holds."
            )?;
            writeln!(o, "# TYPE regbench_demo_leaked_bytes gauge")?;
            writeln!(o, "regbench_demo_leaked_bytes {n}")?;
        }
        writeln!(
            o,
            "# HELP regbench_demo_requests_total Requests answered, by route and status class."
        )?;
        writeln!(o, "# TYPE regbench_demo_requests_total counter")?;
        for r in Route::ALL {
            let m = &self.routes[r as usize];
            for (i, class) in CLASSES.iter().enumerate() {
                let n = m.by_class[i].load(Relaxed);
                if n > 0 {
                    writeln!(
                        o,
                        "regbench_demo_requests_total{{route=\"{}\",code=\"{class}\"}} {n}",
                        r.name()
                    )?;
                }
            }
        }
        writeln!(o, "# HELP regbench_demo_request_duration_seconds Time from request to response, including added latency and stalls.")?;
        writeln!(o, "# TYPE regbench_demo_request_duration_seconds histogram")?;
        for r in Route::ALL {
            let m = &self.routes[r as usize];
            let count: u64 = m.buckets.iter().map(|b| b.load(Relaxed)).sum();
            if count == 0 {
                continue;
            }
            let mut cum = 0;
            for (i, le) in BUCKETS_S.iter().enumerate() {
                cum += m.buckets[i].load(Relaxed);
                writeln!(o, "regbench_demo_request_duration_seconds_bucket{{route=\"{}\",le=\"{le}\"}} {cum}", r.name())?;
            }
            writeln!(
                o,
                "regbench_demo_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {count}",
                r.name()
            )?;
            let sum = m.sum_ns.load(Relaxed) as f64 / 1e9;
            writeln!(
                o,
                "regbench_demo_request_duration_seconds_sum{{route=\"{}\"}} {sum}",
                r.name()
            )?;
            writeln!(
                o,
                "regbench_demo_request_duration_seconds_count{{route=\"{}\"}} {count}",
                r.name()
            )?;
        }
        writeln!(
            o,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        )?;
        writeln!(o, "# TYPE process_resident_memory_bytes gauge")?;
        writeln!(
            o,
            "process_resident_memory_bytes {}",
            crate::util::current_rss()
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record(Route::Catalog, 200, Duration::from_millis(2));
        m.record(Route::Catalog, 404, Duration::from_millis(200));
        m.record(Route::Metrics, 200, Duration::from_millis(1));
        assert_eq!(m.requests_total(), 2);
        let text = m.render(Some(42));
        assert!(text.contains("regbench_demo_leaked_bytes 42"));
        assert!(text.contains("regbench_demo_requests_total{route=\"catalog\",code=\"2xx\"} 1"));
        assert!(text.contains("regbench_demo_requests_total{route=\"catalog\",code=\"4xx\"} 1"));
        assert!(text.contains(
            "regbench_demo_request_duration_seconds_bucket{route=\"catalog\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "regbench_demo_request_duration_seconds_bucket{route=\"catalog\",le=\"0.25\"} 2"
        ));
        assert!(text.contains("process_resident_memory_bytes "));
    }
}
