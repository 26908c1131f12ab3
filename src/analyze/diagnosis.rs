//! Diagnosis: what each kind of failure in a run usually means and what to do about it, with the
//! evidence this run observed. One entry per error kind and status class (docs/troubleshooting.md is
//! the same table for people).

use std::net::SocketAddr;

use crate::aggregate::TagStats;
use crate::host::{HostFacts, TIME_WAIT_SECS};
use crate::sample::ErrorKind;

/// One kind of failure seen in the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    /// An error kind's name (`addr-not-available`) or a status class (`429`, `5xx`).
    pub kind: String,
    pub count: u64,
    pub cause: String,
    pub remedy: String,
    /// What this run saw that supports it: limits, counters, the first failing request.
    pub evidence: Vec<String>,
}

/// What the run observed besides its samples.
pub struct Evidence<'a> {
    pub addr: SocketAddr,
    /// The host before and after the run (TIME_WAIT, listen counters, limits).
    pub before: &'a HostFacts,
    pub after: &'a HostFacts,
    /// Connections this process planned to hold.
    pub connections: u64,
}

/// Cause and remedy of an error kind.
pub fn explain(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::Refused => (
            "nothing accepted connections on the target address: the server is down, listens on another address or port, or its accept queue overflowed",
            "check the URL and that the server runs and listens there (ss -ltn); for overflows raise its backlog and net.core.somaxconn",
        ),
        ErrorKind::Reset => (
            "the server or a middlebox reset connections: a full listen backlog, a load balancer closing idle keep-alive connections, or the server dropping load",
            "compare the server's keep-alive timeout with the load balancer's; raise the listen backlog and somaxconn; check the server's logs for crashes or limits",
        ),
        ErrorKind::Timeout => (
            "no complete answer within --timeout: the server is overloaded or stalled, or packets are lost",
            "look at the server's latency and saturation; lower the load, or raise --timeout if slow answers are expected",
        ),
        ErrorKind::Dns => (
            "the name did not resolve: a typo, no DNS server reachable, or the resolver's limits",
            "check the name (getent hosts NAME); pin it with --resolve HOST:PORT:ADDR to take DNS out of the run",
        ),
        ErrorKind::Tls => (
            "the TLS handshake failed: an untrusted or mismatched certificate, no common version or cipher, or a client certificate the server refused",
            "trust the server's CA (--cacert), send the right name (--sni), give a client certificate (--cert/--key), or for test targets only --insecure",
        ),
        ErrorKind::AddrNotAvailable => (
            "the generator ran out of local ports: every closed connection holds its port in TIME_WAIT, so connection churn exhausts the ephemeral range",
            "keep connections alive; widen net.ipv4.ip_local_port_range; set net.ipv4.tcp_tw_reuse=1; or spread the load over more source addresses",
        ),
        ErrorKind::TooManyOpenFiles => (
            "the generator ran out of file descriptors: each connection is one",
            "raise the open-file limit (ulimit -n, or LimitNOFILE= in a systemd unit) or lower -c",
        ),
        ErrorKind::Unreachable => (
            "no route to the target",
            "check the address and the network (ip route get ADDR)",
        ),
        ErrorKind::Closed => (
            "the server closed connections before answering completely: it restarts, drops load, or closes idle keep-alive connections as requests arrive",
            "check the server's logs and its keep-alive timeout; regbench retries a request once when a reused connection was closed before any byte",
        ),
        ErrorKind::Protocol => (
            "answers that are not valid HTTP: a status outside 100-599, bad framing, or a head too large",
            "look at what the server sends (curl -v); a proxy in between may be mangling responses",
        ),
        ErrorKind::BodyTooLarge => (
            "a response body was larger than the limit regbench keeps",
            "check that the endpoint is the one intended",
        ),
        ErrorKind::DigestMismatch => (
            "a blob or manifest did not hash to its digest: corruption in storage or on the way",
            "check the registry's storage and any proxy cache in between",
        ),
        ErrorKind::StreamReset => (
            "the server reset HTTP/2 streams (RST_STREAM)",
            "check the server's limits on concurrent streams and its logs; lower --streams",
        ),
        ErrorKind::GoAway => (
            "the server shut HTTP/2 connections down (GOAWAY with an error) while requests were in flight",
            "check the server's logs; it may be restarting or enforcing connection limits",
        ),
        ErrorKind::NoH2 => (
            "HTTP/2 was required but the server does not speak it here",
            "drop --http2/--h2c, or enable HTTP/2 on the server",
        ),
        ErrorKind::Auth => (
            "a registry flow could not answer the authentication challenge",
            "give credentials (--user, --password-env) that the token server accepts",
        ),
        ErrorKind::BadManifest => (
            "a manifest the flow cannot use (not JSON, no layers, or no matching platform)",
            "check the image reference and --platform",
        ),
        ErrorKind::BadMessage => (
            "a templated gRPC message rendered to JSON its message type cannot hold (nothing was sent)",
            "fix the step's message template: the example shows the field the encoder refused",
        ),
        ErrorKind::Other => (
            "an I/O error of no other kind",
            "run again with fewer connections and look at the target's logs",
        ),
    }
}

/// Cause and remedy of a status class.
fn explain_status(class: &str) -> (&'static str, &'static str) {
    match class {
        "429" => (
            "the target (or a gateway or WAF in front of it) is rate limiting this client",
            "lower the rate, or raise the limit for the test client; Retry-After says how long it asks you to wait",
        ),
        "503" => (
            "the service is unavailable: overloaded, starting, or shedding load (a gateway with no healthy upstream says the same)",
            "check the service's health and capacity at this load; honour Retry-After",
        ),
        "502/504" => (
            "a gateway or proxy got no (timely) answer from the upstream service",
            "look at the upstream behind the proxy: its capacity, timeouts and logs",
        ),
        "5xx" => (
            "the server failed requests",
            "check the server's logs for the failing requests",
        ),
        "401/403" => (
            "the requests are not authenticated or not allowed",
            "check credentials, token scopes and the Authorization header (-H, --user)",
        ),
        "404" => (
            "the requested resources do not exist on the target",
            "check the paths; for registries, seed the repositories first (regbench oci seed)",
        ),
        _ => (
            "the server refused the requests as invalid",
            "check the method, headers and body against the API",
        ),
    }
}

/// Whether a status code belongs to a class.
type StatusClass = fn(u16) -> bool;

/// Diagnoses the run's failures over `all` (the run's totals) and `tags` (per step, for the first
/// failing request of each).
pub fn diagnose(all: &TagStats, tags: &[TagStats], ev: &Evidence) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    for kind in ErrorKind::ALL {
        let count = all.errors[kind.index()];
        if count == 0 {
            continue;
        }
        let (cause, remedy) = explain(kind);
        let mut evidence = kind_evidence(kind, ev);
        evidence.extend(examples(tags, |e| e.outcome == kind.name()));
        out.push(Diagnosis {
            kind: kind.name().to_string(),
            count,
            cause: cause.to_string(),
            remedy: remedy.to_string(),
            evidence,
        });
    }
    let classes: [(&str, StatusClass); 6] = [
        ("429", |c| c == 429),
        ("503", |c| c == 503),
        ("502/504", |c| c == 502 || c == 504),
        ("5xx", |c| {
            (500..600).contains(&c) && ![502, 503, 504].contains(&c)
        }),
        ("401/403", |c| c == 401 || c == 403),
        ("404", |c| c == 404),
    ];
    for (class, is) in classes {
        let count: u64 = all
            .status
            .iter()
            .filter(|(c, _)| is(**c))
            .map(|(_, n)| n)
            .sum();
        // Expected auth challenges are successes, not failures.
        let count = if class == "401/403" {
            count.saturating_sub(all.n_challenges)
        } else {
            count
        };
        if count == 0 {
            continue;
        }
        let (cause, remedy) = explain_status(class);
        out.push(Diagnosis {
            kind: class.to_string(),
            count,
            cause: cause.to_string(),
            remedy: remedy.to_string(),
            evidence: examples(tags, |e| e.outcome.parse::<u16>().is_ok_and(is)),
        });
    }
    let other_4xx: u64 = all.status.range(400..500).map(|(_, n)| n).sum::<u64>()
        - all
            .status
            .iter()
            .filter(|(c, _)| [401, 403, 404, 429].contains(*c))
            .map(|(_, n)| n)
            .sum::<u64>();
    if other_4xx > 0 {
        let (cause, remedy) = explain_status("4xx");
        out.push(Diagnosis {
            kind: "4xx".into(),
            count: other_4xx,
            cause: cause.to_string(),
            remedy: remedy.to_string(),
            evidence: examples(tags, |e| {
                e.outcome
                    .parse::<u16>()
                    .is_ok_and(|c| (400..500).contains(&c) && ![401, 403, 404, 429].contains(&c))
            }),
        });
    }
    out
}

/// Evidence from the host for an error kind.
fn kind_evidence(kind: ErrorKind, ev: &Evidence) -> Vec<String> {
    let mut out = Vec::new();
    match kind {
        ErrorKind::AddrNotAvailable => {
            if let (Some((lo, hi)), Some(ports)) = (ev.after.port_range, ev.after.ports()) {
                out.push(format!("local port range {lo}-{hi}: {ports} ports"));
            }
            if let Some(tw) = ev.after.time_wait {
                out.push(format!(
                    "{tw} sockets in TIME_WAIT after the run (each holds its port {TIME_WAIT_SECS} s)"
                ));
            }
            if let Some(r) = ev.after.tcp_tw_reuse {
                out.push(format!("net.ipv4.tcp_tw_reuse = {r}"));
            }
        }
        ErrorKind::TooManyOpenFiles => {
            if let Some((soft, hard)) = ev.before.nofile {
                out.push(format!(
                    "open-file limit {soft} (hard {hard}) for {} planned connections; fix: ulimit -n {}",
                    ev.connections,
                    ev.connections + super::doctor::RESERVED_FDS
                ));
            }
        }
        ErrorKind::Refused => out.push(format!("nothing accepted connections on {}", ev.addr)),
        _ => {}
    }
    if matches!(
        kind,
        ErrorKind::Refused | ErrorKind::Reset | ErrorKind::Timeout | ErrorKind::Closed
    ) && ev.addr.ip().is_loopback()
    {
        let delta = |a: Option<u64>, b: Option<u64>| b.zip(a).map(|(b, a)| b.saturating_sub(a));
        if let (Some(o), Some(d)) = (
            delta(ev.before.listen_overflows, ev.after.listen_overflows),
            delta(ev.before.listen_drops, ev.after.listen_drops),
        ) {
            let somaxconn = ev
                .after
                .somaxconn
                .map_or(String::new(), |s| format!("; net.core.somaxconn = {s}"));
            let advice = match o + d {
                0 => "",
                _ => ": the target's accept queue overflowed; raise its listen backlog and net.core.somaxconn, or connect more gradually",
            };
            out.push(format!(
                "this host's listen queues during the run: ListenOverflows +{o}, ListenDrops +{d}{somaxconn}{advice}"
            ));
        }
    }
    out
}

/// The first failing request of each step whose example matches.
fn examples(
    tags: &[TagStats],
    matches: impl Fn(&crate::aggregate::FailureExample) -> bool,
) -> Vec<String> {
    tags.iter()
        .filter_map(|t| Some((t, t.example.as_ref().filter(|e| matches(e))?)))
        .map(|(t, e)| {
            let mut s = format!(
                "first failure on step '{}': {} → {}",
                t.name, e.request, e.outcome
            );
            if let Some(ra) = &e.retry_after {
                s.push_str(&format!(", Retry-After: {ra}"));
            }
            if let Some(d) = &e.detail {
                s.push_str(&format!(" ({d})"));
            }
            if !e.body.is_empty() {
                s.push_str(&format!(", body: {:?}", e.body));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_troubleshooting_page_has_every_kind_and_class() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/troubleshooting.md"
        ))
        .unwrap();
        for kind in ErrorKind::ALL {
            let (cause, _) = explain(kind);
            assert!(
                page.contains(&format!("| `{}` | {cause}", kind.name())),
                "{kind:?}"
            );
        }
        for class in ["429", "503", "502/504", "5xx", "401/403", "404", "4xx"] {
            let (cause, _) = explain_status(class);
            assert!(
                page.contains(&format!("`{class}`")) && page.contains(cause),
                "{class}"
            );
        }
    }

    #[test]
    fn statuses_are_classed_and_challenges_are_not_failures() {
        let mut all = TagStats::new("all");
        all.status.insert(200, 10);
        all.status.insert(401, 5);
        all.status.insert(429, 3);
        all.status.insert(502, 1);
        all.status.insert(500, 2);
        all.status.insert(418, 1);
        all.n_challenges = 5;
        all.errors[ErrorKind::Refused.index()] = 4;
        let facts = HostFacts::default();
        let ev = Evidence {
            addr: "10.0.0.1:80".parse().unwrap(),
            before: &facts,
            after: &facts,
            connections: 4,
        };
        let d = diagnose(&all, &[], &ev);
        let kinds: Vec<(&str, u64)> = d.iter().map(|d| (d.kind.as_str(), d.count)).collect();
        assert_eq!(
            kinds,
            [
                ("refused", 4),
                ("429", 3),
                ("502/504", 1),
                ("5xx", 2),
                ("4xx", 1)
            ]
        );
        assert_eq!(
            d[0].evidence,
            ["nothing accepted connections on 10.0.0.1:80"]
        );
    }
}
