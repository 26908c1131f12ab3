//! HTTP/1.1 over a plain TCP stream: requests encoded once, responses parsed with httparse over a
//! per-connection buffer that is reused for every response. Per request: one write, reads into the same
//! buffer, no allocation (the buffer only grows for an unusually large response head).
//!
//! Bodies are read and discarded; their bytes are counted.

use std::io;
use std::mem::MaybeUninit;
use std::time::Instant;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::coding::Decoded;
use crate::plan::{RequestSpec, Target};
use crate::sample::{Coding, ErrorKind};

/// Initial read buffer per connection. Small, because 10,000 idle keep-alive connections must stay
/// cheap (docs/performance.md); a connection whose reads fill it doubles it up to [`MAX_BODY_READ`],
/// so large bodies are still read in large chunks.
const BUF_SIZE: usize = 2 * 1024;
/// The largest read buffer a connection grows to for bodies.
const MAX_BODY_READ: usize = 64 * 1024;
/// A response head larger than this is a protocol error.
const MAX_HEAD: usize = 256 * 1024;
/// Response headers parsed per response; more is a protocol error.
use crate::headers::MAX_HEADERS;

/// Encodes a request once, before the run; every send of it writes these bytes.
pub fn encode_request(spec: &RequestSpec, target: &Target, keepalive: bool) -> Bytes {
    let mut out = Vec::with_capacity(256 + spec.body.len());
    encode_into(
        &mut out,
        &spec.method,
        spec.path.as_bytes(),
        target,
        &spec.headers,
        |v: &String, out| out.extend_from_slice(v.as_bytes()),
        &spec.body,
        keepalive,
    );
    Bytes::from(out)
}

/// Appends an HTTP/1.1 request to `out`: the one encoder for static requests (encoded once) and
/// templated ones (rendered per iteration into a reused buffer). Header values are written by
/// `value`, so a template renders straight into the request.
#[allow(clippy::too_many_arguments)]
pub fn encode_into<N: AsRef<str>, V>(
    out: &mut Vec<u8>,
    method: &str,
    path: &[u8],
    target: &Target,
    headers: &[(N, V)],
    mut value: impl FnMut(&V, &mut Vec<u8>),
    body: &[u8],
    keepalive: bool,
) {
    let has = |name: &str| {
        headers
            .iter()
            .any(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
    };
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !has("host") {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(target.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has("user-agent") {
        out.extend_from_slice(
            concat!("User-Agent: regbench/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
        );
    }
    if !has("accept") {
        out.extend_from_slice(b"Accept: */*\r\n");
    }
    if let Some(auth) = target
        .basic_auth
        .as_deref()
        .filter(|_| !has("authorization"))
    {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(auth.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, v) in headers {
        let name = name.as_ref();
        // The engine frames the body itself; a user-given length could only be wrong.
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        value(v, out);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        // invariant: writing to a Vec cannot fail.
        let _ = std::io::Write::write_fmt(out, format_args!("Content-Length: {}\r\n", body.len()));
    }
    if !keepalive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// What of a response to keep for checks and extractions. Buffers are reused across responses.
#[derive(Debug, Default)]
pub struct Capture {
    pub want_head: bool,
    pub want_body: bool,
    /// Hash the whole body (sha256) as it streams in, kept or not.
    pub hasher: Option<sha2::Sha256>,
    /// Bodies are kept up to this many bytes (the rest is counted, not kept).
    pub max_body: usize,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    /// gRPC: when each response message was complete (HTTP/2 swaps its buffer in, so capacity is
    /// kept).
    pub messages: Vec<Instant>,
}

impl Capture {
    /// Takes a piece of the body: hashed if asked, kept up to `max_body`.
    pub fn body(&mut self, data: &[u8]) {
        if let Some(h) = self.hasher.as_mut() {
            sha2::Digest::update(h, data);
        }
        if self.want_body {
            let room = self.max_body.saturating_sub(self.body.len());
            self.body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

/// A successfully read response.
#[derive(Clone, Copy, Debug)]
pub struct Response {
    pub status: u16,
    pub first_byte: Instant,
    pub bytes_in: u64,
    pub body_bytes: u64,
    pub coding: Coding,
    pub decoded_bytes: u64,
    /// The connection can carry another request (keep-alive, body framing known and fully read).
    pub reusable: bool,
    /// gRPC (HTTP/2 only): the call's `grpc-status`, and whether its body ended mid-message.
    pub grpc_status: Option<u8>,
    pub grpc_truncated: bool,
}

/// A failed exchange.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    /// When the first response bytes arrived, if any did.
    pub first_byte: Option<Instant>,
    pub bytes_in: u64,
}

/// A connection's byte stream: plain TCP or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// `--unix-socket`: plain HTTP over a Unix socket.
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The error kind of an I/O error on a connection: TLS failures by their type, the rest by errno.
pub fn classify(e: &io::Error) -> ErrorKind {
    if super::tls::is_tls_error(e) {
        ErrorKind::Tls
    } else {
        ErrorKind::from_io(e)
    }
}

/// One HTTP/1.1 connection and its reusable read buffer.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    pub fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: vec![0; BUF_SIZE],
        }
    }

    /// A read that filled the buffer means a large body: read it in larger chunks from now on.
    fn grow_if_full(&mut self, n: usize) {
        if n == self.buf.len() && self.buf.len() < MAX_BODY_READ {
            self.buf.resize(self.buf.len() * 2, 0);
        }
    }

    /// Writes an encoded request and reads its whole response. `head_only` for HEAD requests, whose
    /// responses have no body whatever their headers say.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_only: bool,
        mut capture: Option<&mut Capture>,
    ) -> Result<Response, Failure> {
        if let Some(c) = capture.as_deref_mut() {
            c.head.clear();
            c.body.clear();
        }
        let mut first_byte = None;
        let mut bytes_in = 0u64;
        let fail = |kind, first_byte, bytes_in| Failure {
            kind,
            first_byte,
            bytes_in,
        };
        let io_fail = |e: io::Error, first_byte, bytes_in| fail(classify(&e), first_byte, bytes_in);

        if let Err(e) = self.stream.write_all(request).await {
            return Err(io_fail(e, None, 0));
        }

        // Read until a complete, final (non-1xx) response head is buffered.
        let mut filled = 0usize;
        let (status, head_len, framing, keep, coding) = loop {
            if filled > 0 {
                // Uninitialised header slots: zeroing 96 of them per response was 4% of the
                // generator's instructions (callgrind, docs/performance.md).
                let mut headers =
                    [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut []);
                let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    &self.buf[..filled],
                    &mut headers,
                );
                match parsed {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        // RFC 9110 §15: a status code is 100–599; `000` or `999` is not an answer.
                        if !(100..=599).contains(&status) {
                            return Err(fail(ErrorKind::Protocol, first_byte, bytes_in));
                        }
                        if (100..200).contains(&status) && status != 101 {
                            // Interim response (100 Continue, 103 Early Hints): skip it.
                            self.buf.copy_within(len..filled, 0);
                            filled -= len;
                            continue;
                        }
                        let Some((framing, keep, coding)) = framing(&resp, head_only) else {
                            return Err(fail(ErrorKind::Protocol, first_byte, bytes_in));
                        };
                        break (status, len, framing, keep, coding);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(fail(ErrorKind::Protocol, first_byte, bytes_in)),
                }
            }
            if filled == self.buf.len() {
                if self.buf.len() >= MAX_HEAD {
                    return Err(fail(ErrorKind::Protocol, first_byte, bytes_in));
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.stream.read(&mut self.buf[filled..]).await {
                Ok(0) => return Err(fail(ErrorKind::Closed, first_byte, bytes_in)),
                Ok(n) => {
                    first_byte.get_or_insert_with(Instant::now);
                    filled += n;
                    bytes_in += n as u64;
                }
                Err(e) => return Err(io_fail(e, first_byte, bytes_in)),
            }
        };
        if let Some(c) = capture.as_deref_mut().filter(|c| c.want_head) {
            c.head.extend_from_slice(&self.buf[..head_len]);
        }
        // invariant: the loop above only breaks after at least one successful read.
        let first = first_byte.expect("bytes arrived"); // invariant: see above

        // Body: first what came with the head, then further reads into the same buffer.
        let mut body_bytes = 0u64;
        let mut decoded = Decoded::new(coding);
        let mut reusable = keep;
        let mut pending = head_len..filled;
        match framing {
            Framing::None => reusable &= pending.is_empty(),
            Framing::Length(len) => {
                let mut left = len;
                loop {
                    let got = (pending.end - pending.start) as u64;
                    let take = got.min(left);
                    let data = &self.buf[pending.start..pending.start + take as usize];
                    decoded.feed(data);
                    if let Some(c) = capture.as_deref_mut() {
                        c.body(data);
                    }
                    body_bytes += take;
                    left -= take;
                    if got > take {
                        // More bytes than the framing allows: the connection is out of sync.
                        reusable = false;
                    }
                    if left == 0 {
                        break;
                    }
                    match self.stream.read(&mut self.buf).await {
                        Ok(0) => return Err(fail(ErrorKind::Closed, Some(first), bytes_in)),
                        Ok(n) => {
                            bytes_in += n as u64;
                            pending = 0..n;
                            self.grow_if_full(n);
                        }
                        Err(e) => return Err(io_fail(e, Some(first), bytes_in)),
                    }
                }
            }
            Framing::Chunked => {
                let mut dec = Chunked::default();
                loop {
                    let fed = dec
                        .feed(&self.buf[pending.clone()], |data| {
                            decoded.feed(data);
                            if let Some(c) = capture.as_deref_mut() {
                                c.body(data);
                            }
                        })
                        .map_err(|_| fail(ErrorKind::Protocol, Some(first), bytes_in))?;
                    body_bytes += fed.body;
                    if fed.done {
                        reusable &= fed.consumed == pending.end - pending.start;
                        break;
                    }
                    match self.stream.read(&mut self.buf).await {
                        Ok(0) => return Err(fail(ErrorKind::Closed, Some(first), bytes_in)),
                        Ok(n) => {
                            bytes_in += n as u64;
                            pending = 0..n;
                            self.grow_if_full(n);
                        }
                        Err(e) => return Err(io_fail(e, Some(first), bytes_in)),
                    }
                }
            }
            Framing::UntilClose => {
                reusable = false;
                body_bytes += (pending.end - pending.start) as u64;
                decoded.feed(&self.buf[pending.clone()]);
                if let Some(c) = capture.as_deref_mut() {
                    c.body(&self.buf[pending.clone()]);
                }
                loop {
                    match self.stream.read(&mut self.buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            bytes_in += n as u64;
                            body_bytes += n as u64;
                            decoded.feed(&self.buf[..n]);
                            if let Some(c) = capture.as_deref_mut() {
                                c.body(&self.buf[..n]);
                            }
                            self.grow_if_full(n);
                        }
                        Err(e) => return Err(io_fail(e, Some(first), bytes_in)),
                    }
                }
            }
        }
        Ok(Response {
            status,
            first_byte: first,
            bytes_in,
            body_bytes,
            coding,
            decoded_bytes: decoded.size(body_bytes),
            reusable,
            grpc_status: None,
            grpc_truncated: false,
        })
    }
}

/// Body framing, keep-alive and content coding from a parsed head (RFC 9112 §6.3). `None`:
/// contradictory framing.
fn framing(resp: &httparse::Response, head_only: bool) -> Option<(Framing, bool, Coding)> {
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut coding = Coding::Identity;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = parse_length(h.value)?;
            if length.is_some_and(|l| l != v) {
                return None;
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the final coding; anything else without it is read until close.
            let v = std::str::from_utf8(h.value).ok()?;
            chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-encoding") {
            coding = Coding::from_header(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = std::str::from_utf8(h.value).ok()?;
            for token in v.split(',') {
                let t = token.trim();
                close |= t.eq_ignore_ascii_case("close");
                keep_alive |= t.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let keep = !close && (!http10 || keep_alive);
    let framing = if head_only || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = length {
        if len == 0 {
            Framing::None
        } else {
            Framing::Length(len)
        }
    } else {
        Framing::UntilClose
    };
    Some((framing, keep, coding))
}

/// A Content-Length value: ASCII digits, optionally surrounded by spaces; `None` if malformed or
/// larger than u64.
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Incremental decoder of a chunked body that only counts the data bytes.
#[derive(Default, Debug)]
pub struct Chunked {
    state: ChunkState,
    remaining: u64,
    digits: u8,
}

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

/// Result of feeding bytes to [`Chunked`].
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes used; fewer than given only when the body ended.
    pub consumed: usize,
    /// Body data bytes among them.
    pub body: u64,
    pub done: bool,
}

/// The chunked framing is broken.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk;

impl Chunked {
    /// Consumes framing from `input`, handing each run of body data to `data`.
    pub fn feed(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<Fed, BadChunk> {
        use ChunkState::*;
        let mut i = 0;
        let mut body = 0u64;
        while i < input.len() && self.state != Done {
            let b = input[i];
            match self.state {
                Size => {
                    if let Some(v) = (b as char).to_digit(16) {
                        if self.digits >= 15 {
                            return Err(BadChunk);
                        }
                        self.remaining = self.remaining * 16 + u64::from(v);
                        self.digits += 1;
                    } else if self.digits == 0 {
                        return Err(BadChunk);
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.state = Extension;
                    } else if b == b'\r' {
                        self.state = SizeLf;
                    } else if b == b'\n' {
                        self.end_size();
                    } else {
                        return Err(BadChunk);
                    }
                    i += 1;
                }
                Extension => {
                    if b == b'\n' {
                        self.end_size();
                    }
                    i += 1;
                }
                SizeLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.end_size();
                    i += 1;
                }
                Data => {
                    let take = (self.remaining).min((input.len() - i) as u64);
                    data(&input[i..i + take as usize]);
                    body += take;
                    self.remaining -= take;
                    i += take as usize;
                    if self.remaining == 0 {
                        self.state = DataCr;
                    }
                }
                DataCr => {
                    self.state = match b {
                        b'\r' => DataLf,
                        b'\n' => Size,
                        _ => return Err(BadChunk),
                    };
                    i += 1;
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = Size;
                    i += 1;
                }
                TrailerStart => {
                    self.state = match b {
                        b'\r' => EndLf,
                        b'\n' => Done,
                        _ => TrailerLine,
                    };
                    i += 1;
                }
                TrailerLine => {
                    if b == b'\n' {
                        self.state = TrailerStart;
                    }
                    i += 1;
                }
                EndLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = Done;
                    i += 1;
                }
                Done => unreachable!("loop condition excludes Done"),
            }
        }
        Ok(Fed {
            consumed: i,
            body,
            done: self.state == Done,
        })
    }

    fn end_size(&mut self) {
        self.state = if self.remaining == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
        self.digits = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_whole_and_byte_by_byte() {
        let body =
            b"5\r\nhello\r\n1;ext=1\r\n!\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\nEXTRA";
        let mut d = Chunked::default();
        let mut got = Vec::new();
        let fed = d.feed(body, |b| got.extend_from_slice(b)).unwrap();
        assert_eq!(got, b"hello!0123456789");
        assert_eq!(fed.body, 16);
        assert!(fed.done);
        assert_eq!(&body[fed.consumed..], b"EXTRA");

        let mut d = Chunked::default();
        let mut total = 0;
        let mut done = false;
        for b in body.iter() {
            let fed = d.feed(std::slice::from_ref(b), |_| {}).unwrap();
            total += fed.body;
            if fed.done {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(total, 16);
    }

    #[test]
    fn chunked_rejects_garbage() {
        assert_eq!(Chunked::default().feed(b"zz\r\n", |_| {}), Err(BadChunk));
        assert_eq!(Chunked::default().feed(b"\r\n", |_| {}), Err(BadChunk));
        assert_eq!(Chunked::default().feed(b"1\r\nab", |_| {}), Err(BadChunk));
        assert_eq!(
            Chunked::default().feed(b"ffffffffffffffff\r\n", |_| {}),
            Err(BadChunk)
        );
    }

    #[test]
    fn encoding() {
        let t = Target::parse("http://127.0.0.1:5000/v2/").unwrap();
        let mut spec = RequestSpec::get("x", "/v2/");
        let e = encode_request(&spec, &t, true);
        let s = std::str::from_utf8(&e).unwrap();
        assert!(s.starts_with("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(!s.contains("Content-Length"));
        assert!(!s.contains("Connection"));

        spec.method = "POST".into();
        spec.body = Bytes::from_static(b"{}");
        spec.headers = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Length".into(), "999".into()),
            ("Accept".into(), "application/json".into()),
        ];
        let e = encode_request(&spec, &t, false);
        let s = std::str::from_utf8(&e).unwrap();
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(!s.contains("999"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(!s.contains("Accept: */*"));
        assert!(s.ends_with("\r\n\r\n{}"));
    }

    fn parse_framing(head: &str, head_only: bool) -> Option<(Framing, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        r.parse(head.as_bytes()).unwrap();
        framing(&r, head_only).map(|(f, keep, _)| (f, keep))
    }

    #[test]
    fn content_lengths() {
        assert_eq!(parse_length(b"13"), Some(13));
        assert_eq!(parse_length(b" 7 "), Some(7));
        assert_eq!(parse_length(b""), None);
        assert_eq!(parse_length(b"1a"), None);
        assert_eq!(parse_length(b"-1"), None);
        assert_eq!(parse_length(b"99999999999999999999999"), None);
    }

    #[test]
    fn framing_rules() {
        let f = parse_framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
        assert!(matches!(f, (Framing::Length(5), true)));
        let f = parse_framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert!(matches!(f, (Framing::None, true)));
        let f = parse_framing(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        );
        assert!(matches!(f, Some((Framing::Chunked, true))));
        let f = parse_framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(
            matches!(f, (Framing::Length(1), false)),
            "HTTP/1.0 closes by default"
        );
        let f = parse_framing("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false).unwrap();
        assert!(matches!(f, (Framing::UntilClose, false)));
        let f = parse_framing(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            false,
        );
        assert!(matches!(f, Some((Framing::None, true))));
        assert!(parse_framing(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_none());
    }
}
