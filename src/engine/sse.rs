//! Server-Sent Events over the engine's own connections: one `plan::sse::Sse` iteration — open the
//! stream, read events as they arrive (chunked, sized or close-delimited bodies), reopen with
//! `Last-Event-ID` when the server ends it early — with every event and reopening recorded.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http1::{self, Stream};
use super::Worker;
use crate::plan::sse::Sse;
use crate::sample::{ErrorKind, Outcome, Sample};

/// Offsets of the phase tags after the step's own.
const EVENT: usize = 1;
const RECONNECT: usize = 2;

/// A response head larger than this is refused.
const MAX_HEAD: usize = 64 << 10;
/// An event (or a line) larger than this is refused: a stream that never ends its events.
const MAX_EVENT: usize = 1 << 20;
/// The longest `retry:` a server can ask for before a reopening.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// One iteration: records its events, reopenings and itself, and returns its sample.
pub(super) async fn run(worker: &Worker, sse: &Sse, tag: usize, intended: Instant) -> Sample {
    worker.recorder.borrow_mut().started(Instant::now());
    let mut s = Sample::new(tag as u16, intended);
    let deadline = tokio::time::Instant::now() + worker.plan.timeout;
    let mut reader = Events::default();
    let outcome = match tokio::time::timeout_at(
        deadline,
        read(worker, sse, tag, &mut s, &mut reader),
    )
    .await
    {
        Ok(o) => o,
        Err(_) => Outcome::Error(ErrorKind::Timeout),
    };
    s.done = Instant::now();
    s.outcome = outcome;
    s.body_bytes = s.bytes_in;
    s.decoded_bytes = s.bytes_in;
    worker.recorder.borrow_mut().record(&s);
    s
}

async fn read(
    worker: &Worker,
    sse: &Sse,
    tag: usize,
    s: &mut Sample,
    events: &mut Events,
) -> Outcome {
    let mut got = 0u32;
    let mut reconnects = 0u32;
    let mut prev = s.intended;
    let mut ended: Option<Instant> = None;
    loop {
        // Open (or reopen) the stream.
        let mut r = Sample::new((tag + RECONNECT) as u16, ended.unwrap_or(s.intended));
        let opened = open(worker, sse, events.last_id.as_deref(), &mut r).await;
        let (mut stream, mut body, status) = match opened {
            Ok(o) => o,
            Err(o) => {
                if ended.is_some() {
                    r.done = Instant::now();
                    r.outcome = o;
                    worker.recorder.borrow_mut().record_iteration(&r);
                }
                return o;
            }
        };
        if ended.is_none() {
            s.sent = r.sent;
            s.connect = r.connect;
            s.tls = r.tls;
        } else {
            r.done = Instant::now();
            r.outcome = Outcome::Status(status);
            worker.recorder.borrow_mut().record_iteration(&r);
        }
        if status != 200 {
            return Outcome::Status(status);
        }
        // Read events until we have them all or the stream ends.
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let piece = match body.next(&mut stream, &mut buf).await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(kind) => return Outcome::Error(kind),
            };
            s.bytes_in += piece.len() as u64;
            let now = Instant::now();
            let mut failed = None;
            events
                .feed(piece, |data| {
                    if got >= sse.events {
                        return;
                    }
                    got += 1;
                    if s.first_byte.is_none() {
                        s.first_byte = Some(now);
                    }
                    let timestamp = sse.timestamp.as_deref();
                    let e = super::ws::delivered(tag + EVENT, prev, now, data, timestamp);
                    worker.recorder.borrow_mut().record_iteration(&e);
                    prev = now;
                })
                .unwrap_or_else(|k| failed = Some(k));
            if let Some(kind) = failed {
                return Outcome::Error(kind);
            }
            if got >= sse.events {
                return Outcome::Status(200);
            }
        }
        // The server ended the stream before every event came: reopen, as EventSource does.
        if reconnects >= sse.max_reconnects {
            return Outcome::Error(ErrorKind::Closed);
        }
        reconnects += 1;
        let wait = events.retry.unwrap_or(Duration::ZERO).min(MAX_RETRY);
        ended = Some(Instant::now());
        tokio::time::sleep(wait).await;
    }
}

/// Connects, sends the request, and reads the response head.
async fn open(
    worker: &Worker,
    sse: &Sse,
    last_id: Option<&str>,
    r: &mut Sample,
) -> Result<(Stream, Body, u16), Outcome> {
    let (mut stream, _) = worker.open(r).await.map_err(Outcome::Error)?;
    let plan = &worker.plan;
    let mut headers: Vec<(&str, &str)> = sse
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
    {
        headers.push(("Accept", "text/event-stream"));
    }
    headers.push(("Cache-Control", "no-cache"));
    if let Some(id) = last_id {
        headers.push(("Last-Event-ID", id));
    }
    let mut request = Vec::with_capacity(256);
    http1::encode_into(
        &mut request,
        "GET",
        sse.path.as_bytes(),
        &plan.target,
        &headers,
        |v: &&str, out| out.extend_from_slice(v.as_bytes()),
        &[],
        true,
    );
    r.sent = Instant::now();
    r.bytes_out = request.len() as u64;
    stream
        .write_all(&request)
        .await
        .map_err(|e| Outcome::Error(ErrorKind::from_io(&e)))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| Outcome::Error(ErrorKind::from_io(&e)))?;
        if n == 0 {
            return Err(Outcome::Error(ErrorKind::Closed));
        }
        if r.first_byte.is_none() {
            r.first_byte = Some(Instant::now());
        }
        head.extend_from_slice(&buf[..n]);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value)
                };
                let framing = if header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().ends_with(b"chunked"))
                {
                    Framing::Chunked(Chunk::Size(Vec::new()))
                } else if let Some(n) = header("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse().ok())
                {
                    Framing::Sized(n)
                } else {
                    Framing::UntilClose
                };
                r.bytes_in = len as u64;
                let body = Body {
                    framing,
                    pending: head[len..].to_vec(),
                    out: Vec::new(),
                };
                return Ok((stream, body, status));
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            _ => return Err(Outcome::Error(ErrorKind::Protocol)),
        }
    }
}

/// A response body read piece by piece.
struct Body {
    framing: Framing,
    /// Bytes read with the head, not yet decoded.
    pending: Vec<u8>,
    /// The last decoded piece.
    out: Vec<u8>,
}

enum Framing {
    Chunked(Chunk),
    Sized(u64),
    UntilClose,
}

enum Chunk {
    /// Reading a size line (its bytes so far).
    Size(Vec<u8>),
    /// This many data bytes left, then CRLF.
    Data(u64),
    /// The CRLF after a chunk's data: bytes of it still to skip.
    Crlf(u8),
    /// The last chunk came.
    Done,
}

impl Body {
    /// The next piece of decoded body; `None` at its end.
    async fn next<'b>(
        &'b mut self,
        stream: &mut Stream,
        buf: &mut [u8],
    ) -> Result<Option<&'b [u8]>, ErrorKind> {
        loop {
            self.out.clear();
            if self.pending.is_empty() {
                if self.ended() {
                    return Ok(None);
                }
                let n = stream.read(buf).await.map_err(|e| ErrorKind::from_io(&e))?;
                if n == 0 {
                    // The end of a close-delimited body, or the server went away mid-body: either
                    // way the stream ended (and may be reopened).
                    return Ok(None);
                }
                self.decode(&buf[..n])?;
            } else {
                // What came with the head, once.
                let pending = std::mem::take(&mut self.pending);
                self.decode(&pending)?;
            }
            if !self.out.is_empty() {
                return Ok(Some(&self.out));
            }
            if self.ended() {
                return Ok(None);
            }
        }
    }

    /// The body's framing says it is complete.
    fn ended(&self) -> bool {
        matches!(
            self.framing,
            Framing::Chunked(Chunk::Done) | Framing::Sized(0)
        )
    }

    fn decode(&mut self, mut raw: &[u8]) -> Result<(), ErrorKind> {
        match &mut self.framing {
            Framing::UntilClose => self.out.extend_from_slice(raw),
            Framing::Sized(left) => {
                let n = (raw.len() as u64).min(*left);
                self.out.extend_from_slice(&raw[..n as usize]);
                *left -= n;
            }
            Framing::Chunked(state) => {
                while !raw.is_empty() {
                    match state {
                        Chunk::Size(line) => {
                            let Some(i) = raw.iter().position(|&b| b == b'\n') else {
                                line.extend_from_slice(raw);
                                if line.len() > 1024 {
                                    return Err(ErrorKind::Protocol);
                                }
                                return Ok(());
                            };
                            line.extend_from_slice(&raw[..i]);
                            raw = &raw[i + 1..];
                            let text =
                                std::str::from_utf8(line).map_err(|_| ErrorKind::Protocol)?;
                            let hex = text.split(';').next().unwrap_or("").trim();
                            let size =
                                u64::from_str_radix(hex, 16).map_err(|_| ErrorKind::Protocol)?;
                            *state = if size == 0 {
                                Chunk::Done
                            } else {
                                Chunk::Data(size)
                            };
                        }
                        Chunk::Data(left) => {
                            let n = (raw.len() as u64).min(*left);
                            self.out.extend_from_slice(&raw[..n as usize]);
                            raw = &raw[n as usize..];
                            *left -= n;
                            if *left == 0 {
                                *state = Chunk::Crlf(2);
                            }
                        }
                        Chunk::Crlf(left) => {
                            let n = usize::from(*left).min(raw.len());
                            raw = &raw[n..];
                            *left -= n as u8;
                            if *left == 0 {
                                *state = Chunk::Size(Vec::new());
                            }
                        }
                        // Trailers after the last chunk are not read.
                        Chunk::Done => return Ok(()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The event-stream parser (the WHATWG `EventSource` rules): lines, fields, events at blank lines.
#[derive(Default)]
struct Events {
    line: Vec<u8>,
    data: Vec<u8>,
    /// The data of the event being read has a field (an event with an empty data is still one).
    has_data: bool,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl Events {
    /// Feeds a piece of the stream; `event(data)` for each complete event.
    fn feed(&mut self, piece: &[u8], mut event: impl FnMut(&[u8])) -> Result<(), ErrorKind> {
        for &b in piece {
            if b != b'\n' {
                self.line.push(b);
                if self.line.len() > MAX_EVENT {
                    return Err(ErrorKind::BodyTooLarge);
                }
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if self.has_data {
                    if self.data.last() == Some(&b'\n') {
                        self.data.pop();
                    }
                    event(&self.data);
                }
                self.data.clear();
                self.has_data = false;
                continue;
            }
            // Taken to read it while `self` changes; put back (emptied) to keep its capacity.
            let line = std::mem::take(&mut self.line);
            let (field, value) = match line.iter().position(|&c| c == b':') {
                Some(0) => {
                    self.line = line;
                    self.line.clear();
                    continue; // a comment
                }
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" => {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                    self.has_data = true;
                    if self.data.len() > MAX_EVENT {
                        return Err(ErrorKind::BodyTooLarge);
                    }
                }
                b"id" if !value.contains(&0) => {
                    self.last_id = Some(String::from_utf8_lossy(value).into_owned());
                }
                b"retry" => {
                    if let Some(ms) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                        self.retry = Some(Duration::from_millis(ms));
                    }
                }
                _ => {}
            }
            self.line = line;
            self.line.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_however_the_stream_is_split() {
        let stream = b": hello\nid: 1\ndata: {\"a\":1}\n\nid: 2\r\ndata: x\r\ndata: y\r\n\r\nretry: 250\nevent: ping\n\n";
        for size in [1, 2, 3, 7, stream.len()] {
            let mut p = Events::default();
            let mut got = Vec::new();
            for piece in stream.chunks(size) {
                p.feed(piece, |d| got.push(d.to_vec())).unwrap();
            }
            assert_eq!(
                got,
                vec![b"{\"a\":1}".to_vec(), b"x\ny".to_vec()],
                "pieces of {size}"
            );
            assert_eq!(p.last_id.as_deref(), Some("2"));
            assert_eq!(p.retry, Some(Duration::from_millis(250)));
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_arrive() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for size in [1, 2, 5, wire.len()] {
            let mut b = Body {
                framing: Framing::Chunked(Chunk::Size(Vec::new())),
                pending: Vec::new(),
                out: Vec::new(),
            };
            let mut all = Vec::new();
            for piece in wire.chunks(size) {
                b.out.clear();
                b.decode(piece).unwrap();
                all.extend_from_slice(&b.out);
            }
            assert_eq!(all, b"hello, world", "pieces of {size}");
            assert!(matches!(b.framing, Framing::Chunked(Chunk::Done)));
        }
    }
}
