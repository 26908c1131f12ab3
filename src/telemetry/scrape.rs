//! Scraping a Prometheus/OpenMetrics endpoint: one HTTP/1.0 GET (the response ends with the
//! connection, so no chunked framing is needed from a conforming server), the text parsed by
//! `prometheus-parse`, and each watched selector reduced to one observation: a gauge's value, a
//! counter's total, a histogram's cumulative buckets, a summary's quantiles.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use prometheus_parse::{Sample, Value};

use crate::plan::watch::Selector;

/// A scrape larger than this is refused: an exposition is kilobytes, not a stream.
const MAX_SCRAPE: u64 = 32 << 20;

/// GETs `path` from `addr`; the body on a 200, a short reason otherwise.
pub fn fetch(
    addr: SocketAddr,
    s: &crate::plan::watch::Scrape,
    timeout: Duration,
) -> Result<String, String> {
    let (host, path) = (&s.host, &s.path);
    let auth = match &s.auth {
        Some(a) => format!("Authorization: {a}\r\n"),
        None => String::new(),
    };
    let mut sock =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    // Prometheus text first: it is what every exporter speaks; OpenMetrics lines are read too.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n\
         User-Agent: regbench\r\n{auth}\r\n"
    );
    sock.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    sock.take(MAX_SCRAPE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    if raw.len() as u64 > MAX_SCRAPE {
        return Err(format!("more than {} MiB", MAX_SCRAPE >> 20));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let len = match head.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the response ended in its head".into()),
        Err(e) => return Err(format!("not an HTTP response: {e}")),
    };
    let code = head.code.unwrap_or(0);
    if code != 200 {
        return Err(format!("HTTP {code}"));
    }
    let chunked = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = &raw[len..];
    let body = match chunked {
        true => dechunk(body).ok_or("a malformed chunked body")?,
        false => body.to_vec(),
    };
    String::from_utf8(body).map_err(|_| "the body is not UTF-8 text".into())
}

/// A chunked body's data (a server that frames an HTTP/1.0 response this way anyway).
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_hex = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_hex.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Parses the exposition's lines that concern `wanted` (the selectors' metric names): an exporter
/// serves hundreds of series, and parsing only the few watched keeps watching cheap.
pub fn parse(text: &str, wanted: &[Selector]) -> Vec<Sample> {
    let concerns = |name: &str| {
        wanted.iter().any(|w| {
            name.strip_prefix(w.name.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
    };
    let lines = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            let name = match l.strip_prefix('#') {
                // `# TYPE name …`, `# HELP name …`; other comments (`# EOF`) go.
                Some(c) => c.split_whitespace().nth(1).unwrap_or(""),
                None => l.split(['{', ' ', '\t']).next().unwrap_or(""),
            };
            concerns(name)
        })
        .map(|l| Ok(l.to_string()));
    // invariant: the line iterator never yields an error, the parser's only failure.
    prometheus_parse::Scrape::parse(lines)
        .map(|s| s.samples)
        .unwrap_or_default()
}

/// What a selector saw in one scrape, its matching series summed.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Gauge(f64),
    /// A cumulative total: reported as its rate.
    Counter(f64),
    /// Cumulative bucket counts by upper bound (ascending, `+Inf` last).
    Histogram(Vec<(f64, f64)>),
    /// Quantile → value, as exported (the largest when several series match).
    Summary(Vec<(f64, f64)>),
}

/// The observation of `sel` in `samples`, `None` when no series matches.
pub fn observe(sel: &Selector, samples: &[Sample]) -> Option<Observed> {
    let mut out: Option<Observed> = None;
    for s in samples.iter().filter(|s| s.metric == sel.name) {
        if !sel.matches(|k| s.labels.get(k).map(str::to_string)) {
            continue;
        }
        let this = match &s.value {
            Value::Counter(v) => Observed::Counter(*v),
            // OpenMetrics counters carry `_total`, which this parser does not tie to its TYPE line;
            // `_count`/`_sum` of a histogram or summary are totals too.
            Value::Untyped(v) if is_total(&s.metric) => Observed::Counter(*v),
            Value::Gauge(v) | Value::Untyped(v) => Observed::Gauge(*v),
            Value::Histogram(h) => {
                let mut b: Vec<(f64, f64)> = h.iter().map(|c| (c.less_than, c.count)).collect();
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                Observed::Histogram(b)
            }
            Value::Summary(q) => {
                Observed::Summary(q.iter().map(|c| (c.quantile, c.count)).collect())
            }
        };
        out = Some(match (out, this) {
            (None, t) => t,
            (Some(Observed::Gauge(a)), Observed::Gauge(b)) => Observed::Gauge(a + b),
            (Some(Observed::Counter(a)), Observed::Counter(b)) => Observed::Counter(a + b),
            (Some(Observed::Histogram(mut a)), Observed::Histogram(b)) => {
                for (le, n) in b {
                    match a.iter_mut().find(|(l, _)| *l == le) {
                        Some(slot) => slot.1 += n,
                        None => a.push((le, n)),
                    }
                }
                a.sort_by(|x, y| x.0.total_cmp(&y.0));
                Observed::Histogram(a)
            }
            (Some(Observed::Summary(mut a)), Observed::Summary(b)) => {
                for (q, v) in b {
                    match a.iter_mut().find(|(x, _)| *x == q) {
                        Some(slot) => slot.1 = slot.1.max(v),
                        None => a.push((q, v)),
                    }
                }
                Observed::Summary(a)
            }
            // Series of one name with different types: keep the first kind seen.
            (Some(first), _) => first,
        });
    }
    out
}

fn is_total(name: &str) -> bool {
    name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_sum")
}

/// The `q` quantile of the observations between two cumulative histograms, as Prometheus's
/// `histogram_quantile` estimates it: linear within the bucket the rank falls in; the highest
/// finite bound when it falls in `+Inf`. `None` when nothing was observed in between.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let count_before = |le: f64| {
        before
            .iter()
            .find(|(l, _)| *l == le)
            .map_or(0.0, |(_, n)| *n)
    };
    // A counter reset (the target restarted) makes the deltas negative: take the new counts.
    let reset = after.iter().any(|(le, n)| *n < count_before(*le));
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, if reset { *n } else { n - count_before(*le) }))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, cum) in &delta {
        if cum >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = cum - lower.1;
            let share = match in_bucket > 0.0 {
                true => (rank - lower.1) / in_bucket,
                false => 1.0,
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, cum);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP go_goroutines Number of goroutines.\n\
# TYPE go_goroutines gauge\n\
go_goroutines 12\n\
# TYPE process_resident_memory_bytes gauge\n\
process_resident_memory_bytes 4.8e+07\n\
# TYPE http_requests_total counter\n\
http_requests_total{code=\"200\",method=\"get\"} 1027\n\
http_requests_total{code=\"500\",method=\"get\"} 3\n\
# TYPE d_seconds histogram\n\
d_seconds_bucket{handler=\"blob\",le=\"0.1\"} 10\n\
d_seconds_bucket{handler=\"blob\",le=\"1\"} 20\n\
d_seconds_bucket{handler=\"blob\",le=\"+Inf\"} 20\n\
d_seconds_bucket{handler=\"manifest\",le=\"0.1\"} 5\n\
d_seconds_bucket{handler=\"manifest\",le=\"1\"} 5\n\
d_seconds_bucket{handler=\"manifest\",le=\"+Inf\"} 6\n\
d_seconds_sum{handler=\"blob\"} 3.5\n\
d_seconds_count{handler=\"blob\"} 20\n\
# TYPE rpc summary\n\
rpc{quantile=\"0.5\"} 0.01\n\
rpc{quantile=\"0.99\"} 0.2\n\
# TYPE om_requests counter\n\
om_requests_total 7 # {trace_id=\"abc\"} 1\n\
# EOF\n";

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn every_kind_and_number_form() {
        let all: Vec<Selector> = [
            "go_goroutines",
            "process_resident_memory_bytes",
            "http_requests_total",
            "d_seconds",
            "rpc",
            "om_requests",
            "nope",
        ]
        .iter()
        .map(|s| sel(s))
        .collect();
        let samples = parse(TEXT, &all);
        // Only the watched names are parsed.
        assert!(parse(TEXT, &all[..1])
            .iter()
            .all(|s| s.metric == "go_goroutines"));
        assert_eq!(
            observe(&sel("go_goroutines"), &samples),
            Some(Observed::Gauge(12.0))
        );
        assert_eq!(
            observe(&sel("process_resident_memory_bytes"), &samples),
            Some(Observed::Gauge(4.8e7))
        );
        assert_eq!(
            observe(&sel("http_requests_total"), &samples),
            Some(Observed::Counter(1030.0))
        );
        assert_eq!(
            observe(&sel(r#"http_requests_total{code="500"}"#), &samples),
            Some(Observed::Counter(3.0))
        );
        assert_eq!(
            observe(&sel("d_seconds"), &samples),
            Some(Observed::Histogram(vec![
                (0.1, 15.0),
                (1.0, 25.0),
                (f64::INFINITY, 26.0)
            ]))
        );
        assert_eq!(
            observe(&sel(r#"d_seconds{handler="manifest"}"#), &samples),
            Some(Observed::Histogram(vec![
                (0.1, 5.0),
                (1.0, 5.0),
                (f64::INFINITY, 6.0)
            ]))
        );
        assert_eq!(
            observe(&sel("d_seconds_count"), &samples),
            Some(Observed::Counter(20.0))
        );
        assert_eq!(
            observe(&sel("rpc"), &samples),
            Some(Observed::Summary(vec![(0.5, 0.01), (0.99, 0.2)]))
        );
        assert_eq!(
            observe(&sel("om_requests_total"), &samples),
            Some(Observed::Counter(7.0))
        );
        assert_eq!(observe(&sel("nope"), &samples), None);
    }

    #[test]
    fn histogram_quantiles_over_an_interval() {
        let before = [(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        let after = [(0.1, 20.0), (1.0, 30.0), (f64::INFINITY, 30.0)];
        // 20 new observations: 10 at ≤ 0.1, 10 in (0.1, 1].
        assert_eq!(quantile(&before, &after, 0.5), Some(0.1));
        let p75 = quantile(&before, &after, 0.75).unwrap();
        assert!((p75 - 0.55).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(&after, &after, 0.5), None);
        // All above the highest bound: the highest finite bound.
        let inf = [(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 12.0)];
        assert_eq!(quantile(&before, &inf, 0.99), Some(1.0));
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nab c\r\n3\r\n12\n\r\n0\r\n\r\n").unwrap(),
            b"ab c12\n"
        );
        assert!(dechunk(b"zz\r\n").is_none());
    }
}
