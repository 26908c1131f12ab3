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
    let msg = crate::plan::grpc::message(input, json)
        .map_err(|e| format!("the rendered message is {e}"))?;
    crate::plan::grpc::frame_into(&msg, out);
    Ok(())
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

/// Server reflection (grpc/proto grpc/reflection/v1/reflection.proto), client side: the messages
/// regbench sends and reads, with the fields it uses (a oneof's members are optional fields on the
/// wire).
mod reflection {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, tag = "1")]
        pub host: String,
        #[prost(string, optional, tag = "3")]
        pub file_by_filename: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub file_containing_symbol: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(message, optional, tag = "4")]
        pub file_descriptor_response: Option<Files>,
        #[prost(message, optional, tag = "7")]
        pub error_response: Option<Error>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Files {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub file_descriptor_proto: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(int32, tag = "1")]
        pub error_code: i32,
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    /// The parts of a FileDescriptorProto that say what else to fetch.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileHead {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, repeated, tag = "3")]
        pub dependency: Vec<String>,
    }
}

const REFLECTION: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];
/// Files fetched at most (a server whose imports never end).
const MAX_REFLECTED_FILES: usize = 1000;
const UNIMPLEMENTED: u8 = 12;

/// Asks the server (server reflection, v1 then v1alpha) for the files that define `symbol` (a
/// service) and everything they import, on one HTTP/2 connection to `addr` (TLS with `tls`).
/// Returns the encoded `FileDescriptorProto`s, ready for a descriptor pool.
pub fn reflect(
    addr: std::net::SocketAddr,
    target: &crate::plan::Target,
    tls: Option<&super::tls::TlsClient>,
    symbol: &str,
    timeout: std::time::Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let asking = async {
        let tcp = super::connect::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let stream = match tls {
            Some(t) => {
                let (s, ..) = t
                    .handshake(tcp)
                    .await
                    .map_err(|e| format!("TLS with {addr} failed: {e}"))?;
                super::http1::Stream::Tls(Box::new(s))
            }
            None => super::http1::Stream::Plain(tcp),
        };
        let conn = super::http2::handshake(stream, 1);
        let ask = |path: &'static str, request: reflection::Request| {
            let conn = conn.clone();
            async move { ask(&conn, target, path, &request).await }
        };
        let first = reflection::Request {
            host: target.host.clone(),
            file_containing_symbol: Some(symbol.to_string()),
            ..Default::default()
        };
        let (path, mut answers) = match ask(REFLECTION[0], first.clone()).await {
            Err(Asked::Unimplemented) => (REFLECTION[1], ask(REFLECTION[1], first).await),
            other => (REFLECTION[0], other),
        };
        let mut files: Vec<Vec<u8>> = Vec::new();
        let mut have: Vec<String> = Vec::new();
        loop {
            let got = answers.map_err(|e| match e {
                Asked::Unimplemented => format!(
                    "{} does not offer server reflection: give the method's descriptors with \
                     --proto FILE.proto or --protoset FILE",
                    target.url
                ),
                Asked::Failed(why) => why,
            })?;
            for f in got {
                use prost::Message as _;
                let head = reflection::FileHead::decode(f.as_slice())
                    .map_err(|e| format!("a reflected file does not decode: {e}"))?;
                if !have.contains(&head.name) {
                    have.push(head.name);
                    files.push(f);
                }
            }
            // An import the answers have not brought yet (servers usually send them all at once).
            let missing = files.iter().find_map(|f| {
                use prost::Message as _;
                let head = reflection::FileHead::decode(f.as_slice()).ok()?;
                head.dependency.into_iter().find(|d| !have.contains(d))
            });
            let Some(name) = missing else {
                if files.is_empty() {
                    return Err(format!("server reflection described nothing for {symbol}"));
                }
                return Ok(files);
            };
            if files.len() >= MAX_REFLECTED_FILES {
                return Err(format!(
                    "server reflection: more than {MAX_REFLECTED_FILES} files"
                ));
            }
            let request = reflection::Request {
                host: target.host.clone(),
                file_by_filename: Some(name),
                ..Default::default()
            };
            answers = ask(path, request).await;
        }
    };
    local.block_on(&rt, async {
        tokio::time::timeout(timeout, asking)
            .await
            .unwrap_or_else(|_| Err(format!("server reflection on {addr} took over {timeout:?}")))
    })
}

enum Asked {
    Unimplemented,
    Failed(String),
}

/// One reflection request on its own stream (sent, then half-closed), and the files its answers
/// carry.
async fn ask(
    conn: &super::http2::H2Conn,
    target: &crate::plan::Target,
    path: &str,
    request: &reflection::Request,
) -> Result<Vec<Vec<u8>>, Asked> {
    use prost::Message as _;
    let mut body = Vec::new();
    crate::plan::grpc::frame_into(request, &mut body);
    let mut encoded = Vec::new();
    super::http1::encode_into(
        &mut encoded,
        "POST",
        path.as_bytes(),
        target,
        &[("content-type", "application/grpc"), ("te", "trailers")],
        |v: &&str, out| out.extend_from_slice(v.as_bytes()),
        &body,
        true,
    );
    let req = super::http2::H2Request::parse(&encoded, target)
        .map_err(|e| Asked::Failed(e.to_string()))?;
    let mut capture = super::http1::Capture {
        want_body: true,
        max_body: 64 << 20,
        ..Default::default()
    };
    let mut sent = Instant::now();
    let resp = super::http2::exchange(conn, &req, Some(&mut capture), &mut sent)
        .await
        .map_err(|f| Asked::Failed(format!("server reflection failed: {}", f.kind.name())))?;
    match outcome(resp.status, resp.grpc_status, resp.grpc_truncated) {
        Outcome::Grpc(0) => {}
        Outcome::Grpc(UNIMPLEMENTED) | Outcome::Status(404) => return Err(Asked::Unimplemented),
        Outcome::Grpc(code) => {
            return Err(Asked::Failed(format!(
                "server reflection answered {}",
                crate::sample::grpc_code_name(code)
            )))
        }
        other => {
            return Err(Asked::Failed(format!(
                "server reflection answered {other:?}"
            )))
        }
    }
    let mut files = Vec::new();
    let mut rest = capture.body.as_slice();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(message) = rest.get(5..5 + len) else {
            break;
        };
        rest = &rest[5 + len..];
        let r = reflection::Response::decode(message)
            .map_err(|e| Asked::Failed(format!("a reflection answer does not decode: {e}")))?;
        if let Some(e) = r.error_response {
            return Err(Asked::Failed(format!(
                "server reflection: {} ({})",
                e.error_message,
                crate::sample::grpc_code_name(e.error_code as u8)
            )));
        }
        files.extend(
            r.file_descriptor_response
                .into_iter()
                .flat_map(|f| f.file_descriptor_proto),
        );
    }
    Ok(files)
}
