//! The demo target's gRPC services on hyper's HTTP/2 server (h2c on the same port as HTTP):
//! `regbench.demo.v1.Registry` (Lookup, a Watch stream of changes; proto/registry.proto) and the
//! standard `grpc.health.v1.Health/Check`.
//!
//! Protobuf is read and written by hand here (a few scalar fields), never by the client's
//! prost-reflect: the two sides share no code, so a test of one checks the other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::Frame;
use hyper::{Request, Response};
use tokio::sync::mpsc;

use super::{with_rng, State};

pub const OK: u8 = 0;
const INVALID_ARGUMENT: u8 = 3;
const DEADLINE_EXCEEDED: u8 = 4;
const NOT_FOUND: u8 = 5;
const UNIMPLEMENTED: u8 = 12;
const UNAVAILABLE: u8 = 14;

/// Most messages a Watch sends, and the longest interval between them.
const MAX_WATCH: u32 = 100_000;
const MAX_INTERVAL_MS: u32 = 60_000;

use super::Streamed as Body;

/// A gRPC request: `content-type: application/grpc…`.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Answers one call. `body` is the whole request body (one framed message).
pub async fn handle(state: &State, req: &Request<()>, body: Bytes) -> Response<Body> {
    let deadline = req
        .headers()
        .get("grpc-timeout")
        .and_then(|v| parse_timeout(v.as_bytes()));
    let Some(message) = unframe(&body) else {
        return trailers_only(INVALID_ARGUMENT, "the request is not one framed message");
    };
    match req.uri().path() {
        "/regbench.demo.v1.Registry/Lookup" => lookup(state, message, deadline).await,
        "/regbench.demo.v1.Registry/Watch" => watch(message),
        "/grpc.health.v1.Health/Check" => health(message),
        other => trailers_only(UNIMPLEMENTED, &format!("no method {other}")),
    }
}

async fn lookup(state: &State, message: &[u8], deadline: Option<Duration>) -> Response<Body> {
    let Some(fields) = Fields::parse(message) else {
        return trailers_only(INVALID_ARGUMENT, "LookupRequest does not decode");
    };
    let cfg = &state.config;
    let mut work = Duration::from_millis(u64::from(fields.varint(2).unwrap_or(0) as u32));
    if !cfg.latency.is_zero() {
        work += with_rng(|r| cfg.latency.sample(r));
    }
    if let Some(d) = deadline.filter(|d| *d < work) {
        // The server gives up at the deadline, as a gRPC server does.
        tokio::time::sleep(d).await;
        return trailers_only(DEADLINE_EXCEEDED, "deadline exceeded");
    }
    tokio::time::sleep(work).await;
    if let Some(name) = fields.string(3).filter(|n| !n.is_empty()) {
        let code = code_by_name(name).unwrap_or(UNAVAILABLE);
        return trailers_only(code, "failed as asked (LookupRequest.fail)");
    }
    if cfg.error_rate > 0.0 && with_rng(|r| r.next_f64()) < cfg.error_rate {
        return trailers_only(UNAVAILABLE, "injected error (--error-rate)");
    }
    let name = fields.string(1).unwrap_or("");
    match state.service.index(name) {
        Some(i) => unary(server(i)),
        None => trailers_only(NOT_FOUND, &format!("no server {name}")),
    }
}

fn watch(message: &[u8]) -> Response<Body> {
    let Some(fields) = Fields::parse(message) else {
        return trailers_only(INVALID_ARGUMENT, "WatchRequest does not decode");
    };
    let count = (fields.varint(1).unwrap_or(10) as u32).min(MAX_WATCH);
    let interval = Duration::from_millis(u64::from(
        (fields.varint(2).unwrap_or(0) as u32).min(MAX_INTERVAL_MS),
    ));
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        for seq in 0..count {
            if seq > 0 {
                next += interval;
                tokio::time::sleep_until(next).await;
            }
            let mut event = Vec::new();
            put_varint_field(&mut event, 1, u64::from(seq));
            put_bytes_field(&mut event, 2, b"updated");
            put_bytes_field(&mut event, 3, &server(seq as usize % 100));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            put_varint_field(&mut event, 4, now.as_nanos() as u64);
            if tx.send(Frame::data(frame(&event))).await.is_err() {
                return; // the client went away
            }
        }
        let _ = tx.send(Frame::trailers(status_trailers(OK, ""))).await;
    });
    ok_head(Body(rx))
}

fn health(message: &[u8]) -> Response<Body> {
    if Fields::parse(message).is_none() {
        return trailers_only(INVALID_ARGUMENT, "HealthCheckRequest does not decode");
    }
    // SERVING (1).
    let mut reply = Vec::new();
    put_varint_field(&mut reply, 1, 1);
    unary(reply)
}

/// Server `i` as a `Server` message.
fn server(i: usize) -> Vec<u8> {
    let mut m = Vec::new();
    put_bytes_field(
        &mut m,
        1,
        format!("io.example.demo/server-{i:04}").as_bytes(),
    );
    put_bytes_field(&mut m, 2, format!("1.{}.0", i % 10).as_bytes());
    put_bytes_field(&mut m, 3, format!("server-{i:04}.demo.test:443").as_bytes());
    m
}

/// A one-message answer with OK trailers.
fn unary(message: Vec<u8>) -> Response<Body> {
    let (tx, rx) = mpsc::channel(2);
    // invariant: a new channel of capacity 2 takes two frames without waiting.
    let _ = tx.try_send(Frame::data(frame(&message)));
    let _ = tx.try_send(Frame::trailers(status_trailers(OK, "")));
    ok_head(Body(rx))
}

pub(super) fn ok_head(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// An answer without messages: the status in the response head (gRPC's Trailers-Only).
pub fn trailers_only(code: u8, message: &str) -> Response<Body> {
    let (_, rx) = mpsc::channel(1);
    let mut resp = ok_head(Body(rx));
    resp.headers_mut().extend(status_trailers(code, message));
    resp
}

pub(super) fn status_trailers(code: u8, message: &str) -> hyper::HeaderMap {
    let mut h = hyper::HeaderMap::new();
    h.insert("grpc-status", u16::from(code).into());
    if !message.is_empty() {
        // grpc-message is percent-encoded; these messages are plain ASCII without '%'.
        if let Ok(v) = hyper::header::HeaderValue::from_str(message) {
            h.insert("grpc-message", v);
        }
    }
    h
}

/// A status code by number or name (the server's own table: it shares nothing with the client).
fn code_by_name(name: &str) -> Option<u8> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    name.parse().ok().or_else(|| {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| i as u8)
    })
}

/// `grpc-timeout`: 1–8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The one message of a unary or server-streaming request (uncompressed).
fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (head, rest) = body.split_at_checked(5)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    (head[0] == 0 && rest.len() == len).then_some(rest)
}

pub(super) fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// A message's fields: (number, varint value or bytes). Enough protobuf for the demo's requests.
pub(super) struct Fields<'a>(Vec<(u32, Value<'a>)>);

pub(super) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Fields<'a> {
    pub(super) fn parse(mut m: &'a [u8]) -> Option<Fields<'a>> {
        let mut fields = Vec::new();
        while !m.is_empty() {
            let key = varint(&mut m)?;
            let number = u32::try_from(key >> 3).ok()?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut m)?),
                2 => {
                    let len = usize::try_from(varint(&mut m)?).ok()?;
                    let (b, rest) = m.split_at_checked(len)?;
                    m = rest;
                    Value::Bytes(b)
                }
                1 => {
                    m = m.get(8..)?;
                    continue;
                }
                5 => {
                    m = m.get(4..)?;
                    continue;
                }
                _ => return None,
            };
            fields.push((number, value));
        }
        Some(Fields(fields))
    }

    fn varint(&self, n: u32) -> Option<u64> {
        self.0.iter().rev().find_map(|(k, v)| match v {
            Value::Varint(x) if *k == n => Some(*x),
            _ => None,
        })
    }

    pub(super) fn string(&self, n: u32) -> Option<&'a str> {
        self.bytes(n).and_then(|b| std::str::from_utf8(b).ok())
    }

    pub(super) fn bytes(&self, n: u32) -> Option<&'a [u8]> {
        self.0.iter().rev().find_map(|(k, v)| match v {
            Value::Bytes(b) if *k == n => Some(*b),
            _ => None,
        })
    }
}

fn varint(m: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = m.split_first()?;
        *m = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_varint_field(out: &mut Vec<u8>, n: u32, v: u64) {
    put_varint(out, u64::from(n) << 3);
    put_varint(out, v);
}

pub(super) fn put_bytes_field(out: &mut Vec<u8>, n: u32, b: &[u8]) {
    put_varint(out, (u64::from(n) << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_messages_decode() {
        // LookupRequest{name:"a", delay_ms:300, fail:"X"}.
        let m = [10, 1, b'a', 16, 0xac, 0x02, 26, 1, b'X'];
        let f = Fields::parse(&m).unwrap();
        assert_eq!(f.string(1), Some("a"));
        assert_eq!(f.varint(2), Some(300));
        assert_eq!(f.string(3), Some("X"));
        assert!(Fields::parse(&[10, 5, b'a']).is_none());
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"123456789S"), None);
        assert_eq!(unframe(&frame(b"xy")), Some(&b"xy"[..]));
    }
}
