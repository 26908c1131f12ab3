//! HTTP/1.1 over a plain TCP stream: requests encoded once, responses parsed with httparse over a
//! per-connection buffer that is reused for every response. Per request: one write, reads into the same
//! buffer, no allocation (the buffer only grows for an unusually large response head).
//!
//! Bodies are read and discarded; their bytes are counted.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::plan::{RequestSpec, Target};
use crate::sample::ErrorKind;

/// Initial read buffer per connection; also the unit bodies are read (and discarded) in.
const BUF_SIZE: usize = 16 * 1024;
/// A response head larger than this is a protocol error.
const MAX_HEAD: usize = 256 * 1024;
/// Response headers parsed per response; more is a protocol error.
const MAX_HEADERS: usize = 96;

/// Encodes a request once, before the run; every send of it writes these bytes.
pub fn encode_request(spec: &RequestSpec, target: &Target, keepalive: bool) -> Bytes {
    let has = |name: &str| {
        spec.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut out = Vec::with_capacity(256 + spec.body.len());
    let mut line = |s: &str| {
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    line(&format!("{} {} HTTP/1.1", spec.method, spec.path));
    if !has("host") {
        line(&format!("Host: {}", target.authority));
    }
    if !has("user-agent") {
        line(concat!("User-Agent: regbench/", env!("CARGO_PKG_VERSION")));
    }
    if !has("accept") {
        line("Accept: */*");
    }
    for (name, value) in &spec.headers {
        // The engine frames the body itself; a user-given length could only be wrong.
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        line(&format!("{name}: {value}"));
    }
    let needs_length =
        !spec.body.is_empty() || matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH");
    if needs_length {
        line(&format!("Content-Length: {}", spec.body.len()));
    }
    if !keepalive {
        line("Connection: close");
    }
    line("");
    out.extend_from_slice(&spec.body);
    Bytes::from(out)
}

/// A successfully read response.
#[derive(Clone, Copy, Debug)]
pub struct Response {
    pub status: u16,
    pub first_byte: Instant,
    pub bytes_in: u64,
    pub body_bytes: u64,
    /// The connection can carry another request (keep-alive, body framing known and fully read).
    pub reusable: bool,
}

/// A failed exchange.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    /// When the first response bytes arrived, if any did.
    pub first_byte: Option<Instant>,
    pub bytes_in: u64,
}

/// One HTTP/1.1 connection and its reusable read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: vec![0; BUF_SIZE],
        }
    }

    /// Writes an encoded request and reads its whole response. `head_only` for HEAD requests, whose
    /// responses have no body whatever their headers say.
    pub async fn exchange(&mut self, request: &[u8], head_only: bool) -> Result<Response, Failure> {
        let mut first_byte = None;
        let mut bytes_in = 0u64;
        let fail = |kind, first_byte, bytes_in| Failure {
            kind,
            first_byte,
            bytes_in,
        };
        let io_fail =
            |e: io::Error, first_byte, bytes_in| fail(ErrorKind::from_io(&e), first_byte, bytes_in);

        if let Err(e) = self.stream.write_all(request).await {
            return Err(io_fail(e, None, 0));
        }

        // Read until a complete, final (non-1xx) response head is buffered.
        let mut filled = 0usize;
        let (status, head_len, framing, keep) = loop {
            if filled > 0 {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[..filled]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        if (100..200).contains(&status) && status != 101 {
                            // Interim response (100 Continue, 103 Early Hints): skip it.
                            self.buf.copy_within(len..filled, 0);
                            filled -= len;
                            continue;
                        }
                        let Some((framing, keep)) = framing(&resp, head_only) else {
                            return Err(fail(ErrorKind::Protocol, first_byte, bytes_in));
                        };
                        break (status, len, framing, keep);
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
        // invariant: the loop above only breaks after at least one successful read.
        let first = first_byte.expect("bytes arrived"); // invariant: see above

        // Body: first what came with the head, then further reads into the same buffer.
        let mut body_bytes = 0u64;
        let mut reusable = keep;
        let mut pending = head_len..filled;
        match framing {
            Framing::None => reusable &= pending.is_empty(),
            Framing::Length(len) => {
                let mut left = len;
                loop {
                    let got = (pending.end - pending.start) as u64;
                    let take = got.min(left);
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
                        }
                        Err(e) => return Err(io_fail(e, Some(first), bytes_in)),
                    }
                }
            }
            Framing::Chunked => {
                let mut dec = Chunked::default();
                loop {
                    let fed = dec
                        .feed(&self.buf[pending.clone()])
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
                        }
                        Err(e) => return Err(io_fail(e, Some(first), bytes_in)),
                    }
                }
            }
            Framing::UntilClose => {
                reusable = false;
                body_bytes += (pending.end - pending.start) as u64;
                loop {
                    match self.stream.read(&mut self.buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            bytes_in += n as u64;
                            body_bytes += n as u64;
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
            reusable,
        })
    }
}

/// Body framing and keep-alive from a parsed head (RFC 9112 §6.3). `None`: contradictory framing.
fn framing(resp: &httparse::Response, head_only: bool) -> Option<(Framing, bool)> {
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v: u64 = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
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
    Some((framing, keep))
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
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, BadChunk> {
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
        let fed = d.feed(body).unwrap();
        assert_eq!(fed.body, 16);
        assert!(fed.done);
        assert_eq!(&body[fed.consumed..], b"EXTRA");

        let mut d = Chunked::default();
        let mut total = 0;
        let mut done = false;
        for b in body.iter() {
            let fed = d.feed(std::slice::from_ref(b)).unwrap();
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
        assert_eq!(Chunked::default().feed(b"zz\r\n"), Err(BadChunk));
        assert_eq!(Chunked::default().feed(b"\r\n"), Err(BadChunk));
        assert_eq!(Chunked::default().feed(b"1\r\nab"), Err(BadChunk));
        assert_eq!(
            Chunked::default().feed(b"ffffffffffffffff\r\n"),
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
        framing(&r, head_only)
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
