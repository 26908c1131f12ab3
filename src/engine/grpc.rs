//! gRPC over the engine's own HTTP/2 client (the gRPC HTTP/2 protocol, grpc/doc/PROTOCOL-HTTP2.md).
//!
//! A gRPC call is an HTTP/2 POST whose request the plan encoded once (`plan::grpc`): its framed
//! message, `content-type: application/grpc`, `te: trailers`, `grpc-timeout`. What is gRPC's own is
//! here: reading `grpc-status` from the trailers (or a Trailers-Only head), counting the
//! length-prefixed messages of a response as they arrive (a server stream's messages, each timed),
//! and turning both into the call's outcome. Nothing per call allocates: the arrival times go into
//! a buffer that keeps its capacity.

use std::time::Instant;

use crate::sample::{ErrorKind, Outcome};

/// The 5-byte prefix of every gRPC message: a compressed flag and a 32-bit big-endian length.
const PREFIX: usize = 5;

/// Splits a response body into gRPC messages as its DATA frames arrive, noting when each one was
/// complete.
#[derive(Debug, Default)]
pub struct Framing {
    /// Bytes of the current message's prefix read so far.
    prefix: [u8; PREFIX],
    have: usize,
    /// Bytes of the current message's payload still to come (after its prefix).
    left: u64,
    /// When each message was complete, in order.
    pub arrivals: Vec<Instant>,
}

impl Framing {
    /// Ready for a new response (keeps the buffer's capacity).
    pub fn reset(&mut self) {
        self.have = 0;
        self.left = 0;
        self.arrivals.clear();
    }

    /// Takes a piece of the body, received at `now`.
    pub fn feed(&mut self, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = (data.len() as u64).min(self.left);
                self.left -= n;
                data = &data[n as usize..];
                if self.left == 0 {
                    self.arrivals.push(now);
                }
                continue;
            }
            let n = (PREFIX - self.have).min(data.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == PREFIX {
                self.have = 0;
                let p = self.prefix;
                self.left = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
                if self.left == 0 {
                    // An empty message (a default-valued reply) is complete with its prefix.
                    self.arrivals.push(now);
                }
            }
        }
    }

    /// The body ended in the middle of a message.
    pub fn truncated(&self) -> bool {
        self.have > 0 || self.left > 0
    }
}

/// A templated call's message: `json` (rendered this iteration) encoded as `input` and framed into
/// `out`. Allocates (a dynamic message per call): only templated messages take this path.
pub fn encode_json(
    input: &prost_reflect::MessageDescriptor,
    json: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use prost::Message as _;
    let mut de = serde_json::Deserializer::from_slice(json);
    let msg = prost_reflect::DynamicMessage::deserialize(input.clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| {
            format!(
                "the rendered message is not a valid {}: {e}",
                input.full_name()
            )
        })?;
    out.clear();
    out.push(0);
    out.extend_from_slice(&(msg.encoded_len() as u32).to_be_bytes());
    msg.encode(out)
        .map_err(|e| format!("cannot encode {}: {e}", input.full_name()))
}

/// Parses a `grpc-status` value: a decimal code.
pub fn parse_status(value: &[u8]) -> Option<u8> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// A finished call's outcome from its HTTP status and `grpc-status`: the gRPC code when the server
/// answered HTTP 200 with one; the HTTP status when it answered another (a proxy's 503 is not a
/// gRPC answer); a protocol error for a 200 without `grpc-status`, or whose last message was cut off.
pub fn outcome(http_status: u16, grpc_status: Option<u8>, truncated: bool) -> Outcome {
    match (http_status, grpc_status) {
        (200, Some(0)) if truncated => Outcome::Error(ErrorKind::Protocol),
        (200, Some(code)) => Outcome::Grpc(code),
        (200, None) => Outcome::Error(ErrorKind::Protocol),
        (status, _) => Outcome::Status(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn messages_are_counted_however_the_frames_split_them() {
        let body: Vec<u8> = [message(3), message(0), message(300), message(1)].concat();
        let now = Instant::now();
        for chunk in [1, 2, 4, 5, 7, 64, body.len()] {
            let mut f = Framing::default();
            for piece in body.chunks(chunk) {
                f.feed(piece, now);
            }
            assert_eq!(f.arrivals.len(), 4, "chunks of {chunk}");
            assert!(!f.truncated());
        }
        let mut f = Framing::default();
        f.feed(&body[..body.len() - 1], now);
        assert_eq!(f.arrivals.len(), 3);
        assert!(f.truncated());
        f.reset();
        assert!(f.arrivals.is_empty() && !f.truncated());
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(200, Some(0), false), Outcome::Grpc(0));
        assert_eq!(outcome(200, Some(14), false), Outcome::Grpc(14));
        assert_eq!(
            outcome(200, None, false),
            Outcome::Error(ErrorKind::Protocol)
        );
        assert_eq!(
            outcome(200, Some(0), true),
            Outcome::Error(ErrorKind::Protocol)
        );
        assert_eq!(outcome(503, None, false), Outcome::Status(503));
        assert_eq!(parse_status(b"14"), Some(14));
        assert_eq!(parse_status(b"x"), None);
    }
}
