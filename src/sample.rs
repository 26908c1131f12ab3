//! Stage: sample — one fixed-size, `Copy` value per request.
//!
//! The engine produces samples, the aggregator consumes them. A sample never allocates and never holds
//! per-request strings: failures are an [`ErrorKind`], derived from errno / io error kinds, never from
//! message text.

use std::io;
use std::time::{Duration, Instant};

/// Why a request produced no HTTP status. Classified from the OS error, never from a message string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The TCP connect was refused (nothing listening): ECONNREFUSED.
    Refused,
    /// The peer reset or aborted the connection: ECONNRESET, EPIPE, ECONNABORTED.
    Reset,
    /// The per-request timeout fired, or the OS reported ETIMEDOUT.
    Timeout,
    /// Name resolution failed.
    Dns,
    /// TLS handshake or record failure (later issue).
    Tls,
    /// No local address/port left to connect from: EADDRNOTAVAIL, EADDRINUSE.
    AddrNotAvailable,
    /// The generator ran out of file descriptors: EMFILE, ENFILE.
    TooManyOpenFiles,
    /// No route to the target: ENETUNREACH, EHOSTUNREACH, ENETDOWN.
    Unreachable,
    /// The peer closed the connection cleanly before the response was complete.
    Closed,
    /// The response was not valid HTTP (bad head, bad chunk framing, head too large), or the HTTP/2
    /// peer broke the protocol (a connection error other than GOAWAY).
    Protocol,
    /// The response body was larger than the configured limit.
    BodyTooLarge,
    /// The body's sha256 is not the digest the step expected (a corrupt blob or manifest).
    DigestMismatch,
    /// HTTP/2: the server reset the stream (RST_STREAM) with an error code, or refused it more
    /// often than the engine retries.
    StreamReset,
    /// HTTP/2: the server sent GOAWAY with an error code while the request was in flight (it may have
    /// been processed, so it is not retried), or kept going away on every retry.
    GoAway,
    /// HTTP/2 was required (`--http2`) but the server's ALPN did not pick h2, or (h2c) the server
    /// answered the connection preface in HTTP/1.1.
    NoH2,
    /// A registry flow could not answer the auth challenge: no credentials for Basic, a token realm on
    /// another origin, or a token server answer without a token.
    Auth,
    /// A registry flow got a manifest it cannot use: not JSON, no config or layers, or an index
    /// without the requested platform.
    BadManifest,
    /// The request could not be made: a templated gRPC message rendered to JSON its message type
    /// cannot hold. Nothing was sent.
    BadMessage,
    /// Any other I/O error.
    Other,
}

impl ErrorKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::AddrNotAvailable,
        ErrorKind::TooManyOpenFiles,
        ErrorKind::Unreachable,
        ErrorKind::Closed,
        ErrorKind::Protocol,
        ErrorKind::BodyTooLarge,
        ErrorKind::DigestMismatch,
        ErrorKind::StreamReset,
        ErrorKind::GoAway,
        ErrorKind::NoH2,
        ErrorKind::Auth,
        ErrorKind::BadManifest,
        ErrorKind::BadMessage,
        ErrorKind::Other,
    ];
    /// Number of kinds; sizes the per-kind counter arrays.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::AddrNotAvailable => "addr-not-available",
            ErrorKind::TooManyOpenFiles => "too-many-open-files",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BodyTooLarge => "body-too-large",
            ErrorKind::DigestMismatch => "digest-mismatch",
            ErrorKind::StreamReset => "stream-reset",
            ErrorKind::GoAway => "goaway",
            ErrorKind::NoH2 => "no-h2",
            ErrorKind::Auth => "auth",
            ErrorKind::BadManifest => "bad-manifest",
            ErrorKind::BadMessage => "bad-message",
            ErrorKind::Other => "other",
        }
    }

    /// Parses a name produced by [`ErrorKind::name`].
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Index into per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies an I/O error by errno first (precise), then by `io::ErrorKind`.
    pub fn from_io(err: &io::Error) -> ErrorKind {
        if let Some(errno) = err.raw_os_error() {
            match errno {
                libc::ECONNREFUSED => return ErrorKind::Refused,
                libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED => return ErrorKind::Reset,
                libc::ETIMEDOUT => return ErrorKind::Timeout,
                libc::EADDRNOTAVAIL | libc::EADDRINUSE => return ErrorKind::AddrNotAvailable,
                libc::EMFILE | libc::ENFILE => return ErrorKind::TooManyOpenFiles,
                libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN => {
                    return ErrorKind::Unreachable
                }
                _ => {}
            }
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            io::ErrorKind::InvalidData => ErrorKind::Protocol,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                ErrorKind::AddrNotAvailable
            }
            _ => ErrorKind::Other,
        }
    }
}

/// What a request ended with: an HTTP status, an error before a complete response, or — open model
/// with `--max-lag` — dropped unsent because it was already too late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// A gRPC call's status code (`grpc-status` of an HTTP 200 response): 0 is OK. A gRPC call
    /// answered with another HTTP status (a proxy's 503) is that `Status`.
    Grpc(u8),
    /// A message that arrived on an open stream or socket (a WebSocket reply or pushed message, an
    /// SSE event, a gRPC stream's message): it has no status of its own.
    Delivered,
    /// A WebSocket connection's end: the close code the server sent (1000 normal, 1001 going
    /// away; 1006 when the connection dropped without a close frame).
    WsClose(u16),
    Error(ErrorKind),
    Dropped,
}

impl Outcome {
    /// A failed request: an error, a status of 400 or more, a gRPC status other than OK, or a
    /// WebSocket closed abnormally (a dropped one was never sent).
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Status(code) => code >= 400,
            Outcome::Grpc(code) => code != 0,
            Outcome::Delivered => false,
            Outcome::WsClose(code) => !matches!(code, 1000 | 1001),
            Outcome::Error(_) => true,
            Outcome::Dropped => false,
        }
    }

    /// This outcome as the failure of a whole iteration or flow it ended: an unexpected status
    /// below 400 still fails it, as 599 (≥ 400 counts as failed).
    pub fn as_failure(self) -> Outcome {
        match self {
            Outcome::Status(code) if code < 400 => Outcome::Status(599),
            // gRPC has no "failed but OK" code: UNKNOWN is what a client says of an unexpected answer.
            Outcome::Grpc(0) => Outcome::Grpc(GRPC_UNKNOWN),
            Outcome::Delivered | Outcome::WsClose(1000 | 1001) => Outcome::Status(599),
            other => other,
        }
    }
}

/// gRPC's status codes by number (grpc/doc/statuscodes.md), as reports name them.
pub const GRPC_CODES: [&str; 17] = [
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

const GRPC_UNKNOWN: u8 = 2;

/// A gRPC status code's name (`OK`, `UNAVAILABLE`); a code outside the 17 defined ones is its number.
pub fn grpc_code_name(code: u8) -> std::borrow::Cow<'static, str> {
    match GRPC_CODES.get(usize::from(code)) {
        Some(name) => (*name).into(),
        None => code.to_string().into(),
    }
}

/// Parses a gRPC status code by name (any case) or number.
pub fn grpc_code_from_name(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    GRPC_CODES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| i as u8)
}

/// The response body's content coding, as far as the report needs it: whether its decoded size is
/// its size on the wire, is known from the body itself (gzip's trailer), or cannot be known without
/// a decoder regbench does not carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Coding {
    /// No `Content-Encoding` (or `identity`): the body is what was sent.
    #[default]
    Identity,
    /// `gzip` (or `x-gzip`): the decoded size is the trailer's ISIZE.
    Gzip,
    /// Any other coding (`br`, `zstd`, `deflate`, several): decoded size unknown.
    Other,
}

impl Coding {
    /// From a `Content-Encoding` value.
    pub fn from_header(value: &[u8]) -> Coding {
        let v = value.trim_ascii();
        if v.is_empty() || v.eq_ignore_ascii_case(b"identity") {
            Coding::Identity
        } else if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else {
            Coding::Other
        }
    }
}

/// One request's measurements. All instants come from the one monotonic clock (DESIGN.md §3).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Index of the request's tag (endpoint name) in the plan.
    pub tag: u16,
    /// When the schedule wanted the request sent.
    pub intended: Instant,
    /// When the first request byte was handed to the socket (after connecting, if it had to).
    pub sent: Instant,
    /// When the first response bytes arrived; `None` if none did.
    pub first_byte: Option<Instant>,
    /// When the response was fully read, or the request failed.
    pub done: Instant,
    pub outcome: Outcome,
    /// Response bytes read off the socket, head and body.
    pub bytes_in: u64,
    /// Response body bytes (after de-chunking), as the server encoded them.
    pub body_bytes: u64,
    /// The body's content coding.
    pub coding: Coding,
    /// The body's size once decoded: `body_bytes` for identity, the gzip trailer's size, 0 when
    /// unknown (`Coding::Other`).
    pub decoded_bytes: u64,
    /// Request bytes written.
    pub bytes_out: u64,
    /// TCP connect duration when this request opened a new connection; `None` when it reused one
    /// or never got one.
    pub connect: Option<Duration>,
    /// The TLS handshake of the new connection, if it is one.
    pub tls: Option<TlsHandshake>,
    /// It was sent on a connection that was already open. A request whose connect failed is neither
    /// new nor reused.
    pub reused: bool,
}

/// A new connection's TLS handshake: its duration, whether it resumed a session, and what it
/// negotiated (static names, so a sample stays `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsHandshake {
    pub took: Duration,
    pub resumed: bool,
    pub version: &'static str,
    pub cipher: &'static str,
    pub alpn: &'static str,
}

impl Sample {
    /// A request of `tag` intended at `intended`, before anything happened: sent and done then, no
    /// bytes, and an outcome (`other`) its sender replaces.
    pub fn new(tag: u16, intended: Instant) -> Sample {
        Sample {
            tag,
            intended,
            sent: intended,
            first_byte: None,
            done: intended,
            outcome: Outcome::Error(ErrorKind::Other),
            bytes_in: 0,
            body_bytes: 0,
            coding: Coding::Identity,
            decoded_bytes: 0,
            bytes_out: 0,
            connect: None,
            tls: None,
            reused: false,
        }
    }

    /// A tick that was not sent because it was already later than `--max-lag`.
    pub fn dropped(tag: u16, intended: Instant, now: Instant) -> Sample {
        Sample {
            sent: now,
            done: now,
            outcome: Outcome::Dropped,
            ..Sample::new(tag, intended)
        }
    }

    /// It failed before it had a connection to go on: the TCP connect or the TLS handshake failed.
    pub fn got_no_connection(&self) -> bool {
        match self.outcome {
            // Never meant to go anywhere.
            Outcome::Error(ErrorKind::BadMessage) => false,
            Outcome::Error(kind) => {
                !self.reused && (self.connect.is_none() || kind == ErrorKind::Tls)
            }
            _ => false,
        }
    }

    /// `done − intended`: the headline latency, including any wait inside the generator.
    pub fn latency(&self) -> Duration {
        self.done.saturating_duration_since(self.intended)
    }
    /// `done − sent`: what the server (and network) took.
    pub fn service_time(&self) -> Duration {
        self.done.saturating_duration_since(self.sent)
    }
    /// `sent − intended`: how late the generator sent it.
    pub fn lag(&self) -> Duration {
        self.sent.saturating_duration_since(self.intended)
    }
    /// `first_byte − sent`.
    pub fn ttfb(&self) -> Option<Duration> {
        self.first_byte
            .map(|t| t.saturating_duration_since(self.sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::Refused);
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::Reset);
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::TooManyOpenFiles);
        let e = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::AddrNotAvailable);
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "whatever the text says");
        assert_eq!(ErrorKind::from_io(&e), ErrorKind::Closed);
    }

    #[test]
    fn names_round_trip_and_indexes_are_dense() {
        for (i, k) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(ErrorKind::from_name(k.name()), Some(k));
        }
    }
}
