//! Stage: plan — pure. Turns a validated configuration into what each worker must do: its share of the
//! connections and of the request budget, the requests to send, the stop conditions.
//!
//! Must not sleep, spawn, do I/O or read clocks. Splits of counts add up exactly to the whole.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

/// Errors in the plan's inputs. All are usage errors (exit code 2).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("'{0}' is not a valid URL: {1}")]
    BadUrl(String, String),
    #[error("'{0}': scheme '{1}' is not supported (only http:// for now; https arrives with TLS support)")]
    UnsupportedScheme(String, String),
    #[error("'{0}' has no host")]
    NoHost(String),
    #[error("-c/--connections must be at least 1")]
    NoConnections,
    #[error("-n/--requests must be at least 1")]
    NoRequests,
    #[error("'{0}' is not a valid HTTP method")]
    BadMethod(String),
    #[error("header '{0}' is not 'Name: value'")]
    BadHeader(String),
    #[error("--resolve '{0}' is not HOST:PORT:ADDRESS")]
    BadResolve(String),
    #[error("the plan has no requests")]
    NoRequestSpecs,
    #[error("at most {max} distinct request tags are supported, got {got}")]
    TooManyTags { max: usize, got: usize },
}

/// Where requests go: parsed once from the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as the user gave it (for reports).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Value of the `Host` header: `host` or `host:port` when the port is not the default.
    pub authority: String,
    /// Path and query of the URL (at least `/`).
    pub path: String,
}

impl Target {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Target, PlanError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| PlanError::BadUrl(url.into(), e.to_string()))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme.is_empty() {
            return Err(PlanError::BadUrl(
                url.into(),
                "it has no scheme (http://…)".into(),
            ));
        }
        if scheme != "http" {
            return Err(PlanError::UnsupportedScheme(url.into(), scheme.into()));
        }
        let host = uri.host().ok_or_else(|| PlanError::NoHost(url.into()))?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = if uri.port_u16().is_some() && port != 80 {
            format!("{host}:{port}")
        } else {
            host.to_string()
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string();
        // `http::Uri` keeps the brackets of an IPv6 literal in host(); the resolver wants them off.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Target {
            url: url.into(),
            host,
            port,
            authority,
            path,
        })
    }
}

/// One request the generator sends, before protocol encoding. Its `name` is its tag in every report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub name: String,
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra headers in the order given; `Host` is derived from the target.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RequestSpec {
    /// A request with no body and no extra headers.
    pub fn get(name: &str, path: &str) -> RequestSpec {
        RequestSpec {
            name: name.into(),
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// True for methods whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// Validates an HTTP method token (RFC 9110 `token`).
pub fn parse_method(m: &str) -> Result<String, PlanError> {
    if !m.is_empty() && m.bytes().all(is_tchar) {
        Ok(m.to_ascii_uppercase())
    } else {
        Err(PlanError::BadMethod(m.into()))
    }
}

/// Parses `Name: value` (curl/hey/oha `-H` syntax).
pub fn parse_header(h: &str) -> Result<(String, String), PlanError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| PlanError::BadHeader(h.into()))?;
    let name = name.trim();
    let value = value.trim();
    if name.is_empty()
        || !name.bytes().all(is_tchar)
        || value.bytes().any(|b| b == b'\r' || b == b'\n')
    {
        return Err(PlanError::BadHeader(h.into()));
    }
    Ok((name.to_string(), value.to_string()))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `--resolve HOST:PORT:ADDRESS` pin, as curl takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub addr: std::net::IpAddr,
}

/// Parses `host:port:addr`; the address may be IPv6, bracketed or not.
pub fn parse_resolve(s: &str) -> Result<Resolve, PlanError> {
    let bad = || PlanError::BadResolve(s.into());
    let mut parts = s.splitn(3, ':');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let addr = parts.next().ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr = addr.parse().map_err(|_| bad())?;
    Ok(Resolve {
        host: host.into(),
        port,
        addr,
    })
}

/// When the run stops issuing requests. Both may be set; whichever comes first wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub n_requests: Option<u64>,
    pub duration: Option<Duration>,
}

/// The whole run, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    /// Sent in rotation by every virtual user; each is its own tag.
    pub requests: Vec<RequestSpec>,
    pub n_connections: usize,
    pub n_workers: usize,
    pub stop: Stop,
    pub keepalive: bool,
    /// Per-request timeout, from send (including connect) to the end of the body.
    pub timeout: Duration,
    /// Closed model: pause between a response and the next request of the same virtual user.
    pub think: Duration,
}

/// Tags are `u16` in a sample; reports stay readable far below this.
pub const MAX_TAGS: usize = 1024;

/// One worker's share of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    pub index: usize,
    /// Global indexes of this worker's connections are `index, index + n_workers, …`.
    pub n_connections: usize,
    pub n_requests: Option<u64>,
}

impl Plan {
    /// Checks invariants the engine relies on.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.n_connections == 0 {
            return Err(PlanError::NoConnections);
        }
        if self.stop.n_requests == Some(0) {
            return Err(PlanError::NoRequests);
        }
        if self.requests.is_empty() {
            return Err(PlanError::NoRequestSpecs);
        }
        if self.requests.len() > MAX_TAGS {
            return Err(PlanError::TooManyTags {
                max: MAX_TAGS,
                got: self.requests.len(),
            });
        }
        Ok(())
    }

    /// Worker `k`'s share. Connections are striped over workers (connection j runs on worker j mod n);
    /// each connection's share of `-n` is `split(N, c, j)`, and a worker's budget is the sum over its
    /// connections, so budgets follow connections and add up exactly to N.
    pub fn worker(&self, k: usize) -> WorkerPlan {
        let n = self.n_workers.max(1);
        let c = self.n_connections;
        let conns: Vec<usize> = (k..c).step_by(n).collect();
        WorkerPlan {
            index: k,
            n_connections: conns.len(),
            n_requests: self.stop.n_requests.map(|total| {
                conns
                    .iter()
                    .map(|&j| split(total, c as u64, j as u64))
                    .sum()
            }),
        }
    }
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
            requests: vec![RequestSpec::get("req", "/v2/")],
            n_connections: c,
            n_workers: workers,
            stop: Stop {
                n_requests: n,
                duration: None,
            },
            keepalive: true,
            timeout: Duration::from_secs(30),
            think: Duration::ZERO,
        }
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
            let parts: Vec<WorkerPlan> = (0..w).map(|k| p.worker(k)).collect();
            assert_eq!(parts.iter().map(|x| x.n_connections).sum::<usize>(), c);
            assert_eq!(parts.iter().map(|x| x.n_requests.unwrap()).sum::<u64>(), n);
        }
        // 3 connections on 2 workers: worker 0 has two of them and so two thirds of the budget.
        let p = plan(3, 2, Some(99));
        assert_eq!(p.worker(0).n_requests, Some(66));
        assert_eq!(p.worker(1).n_requests, Some(33));
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
        assert!(matches!(
            Target::parse("https://x/"),
            Err(PlanError::UnsupportedScheme(..))
        ));
        assert!(matches!(
            Target::parse("localhost:80"),
            Err(PlanError::BadUrl(..))
        ));
        assert!(Target::parse("not a url").is_err());
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
        let r = parse_resolve("registry.test:5000:127.0.0.1").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("registry.test", 5000));
        let r = parse_resolve("h:80:[::1]").unwrap();
        assert_eq!(r.addr, "::1".parse::<std::net::IpAddr>().unwrap());
        assert!(parse_resolve("h:80").is_err());
        assert!(parse_resolve("h:x:127.0.0.1").is_err());
    }

    #[test]
    fn validation() {
        assert_eq!(plan(0, 1, None).validate(), Err(PlanError::NoConnections));
        assert_eq!(plan(1, 1, Some(0)).validate(), Err(PlanError::NoRequests));
        assert!(plan(1, 1, Some(1)).validate().is_ok());
    }
}
