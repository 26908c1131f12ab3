//! HTTP/2 (RFC 9113), hand-written for the load path: a worker's slots share its connections,
//! `--streams` each, and each connection is driven by one local task.
//!
//! Why not the `h2` crate: measured against h2load it cost about twice h2load's userland time per
//! request (locks, a `HeaderMap` and stream bookkeeping per request; docs/performance.md). Here a
//! step's request is HPACK-encoded once ([`H2Request`]); sending it copies that block behind a 9-byte
//! frame header into the connection's output buffer, which the connection task writes — every
//! request queued in the same turn of the scheduler leaves in one write. Responses are decoded in
//! place from one reused read buffer. Nothing is allocated per request once buffers have grown.
//!
//! Requests reach this module already encoded as HTTP/1.1 bytes (the one encoder, static or
//! templated); [`H2Request::parse`] turns them into a header block — once per step for static
//! requests. What differs from HTTP/1.1 is what the protocol adds: streams, flow control, SETTINGS,
//! GOAWAY and RST_STREAM.
//!
//! One file (over 900 lines) on purpose: the frame reader, the per-stream table, flow control and the
//! connection task are one state machine over one `State` — split, every part would reach into the
//! others' fields. HPACK, which stands alone, is `hpack.rs`.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::coding::Decoded;
use super::hpack;
use super::http1::{Capture, Response, Stream};
use crate::plan::Target;
use crate::sample::{Coding, ErrorKind};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6). PRIORITY and unknown types are ignored.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

// Frame flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

// Error codes (RFC 9113 §7).
const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const FRAME_SIZE_ERROR: u32 = 0x6;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const COMPRESSION_ERROR: u32 = 0x9;

// Settings (RFC 9113 §6.5.2).
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Receive window of each stream: large, so one stream can take a big blob at loopback speed without
/// waiting for WINDOW_UPDATEs (h2load's default is 1 GiB; the data is consumed as it arrives).
const STREAM_WINDOW: u32 = 16 << 20;
/// Receive window of the whole connection, shared by its streams.
const CONNECTION_WINDOW: u32 = 1 << 30;
/// The window both directions start with before SETTINGS say otherwise.
const DEFAULT_WINDOW: i64 = 65_535;
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// Largest frame payload we accept: the protocol's default, which we never raise. Frames are
/// handled whole from the read buffer, so this bounds the buffer; a 16 KiB frame's header costs
/// nothing next to hashing its payload.
const MAX_FRAME: usize = 16_384;
/// The read buffer starts holding two whole frames (after moving a partial frame to its front there
/// is room to finish it) and doubles when reads fill it, so large bodies are read in fewer, larger
/// reads.
const READ_BUF: usize = 2 * (9 + MAX_FRAME);
const MAX_READ_BUF: usize = 8 * (9 + MAX_FRAME);
/// A response header block larger than this (across CONTINUATIONs) is a protocol error.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Headers of an HTTP/1.1-encoded request parsed per request; more is a bad request.
const MAX_HEADERS: usize = 64;
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// A request as HTTP/2 sends it: its HPACK header block (pseudo-headers from the method and URI,
/// then the fields) and its body.
#[derive(Clone, Debug)]
pub struct H2Request {
    block: Bytes,
    pub body: Bytes,
    /// A gRPC call (`content-type: application/grpc…`): its response's messages are counted and
    /// its `grpc-status` read.
    pub grpc: bool,
}

/// Why an HTTP/1.1-encoded request cannot be sent over HTTP/2.
#[derive(Debug, thiserror::Error)]
#[error("cannot send this request over HTTP/2: {0}")]
pub struct BadRequest(&'static str);

/// Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); the engine's HTTP/1.1 encoder may
/// add `Connection: close`. `Host` becomes `:authority`.
const DROPPED: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
];

impl H2Request {
    /// Converts an HTTP/1.1-encoded request (head and body) for `target`.
    pub fn parse(encoded: &[u8], target: &Target) -> Result<H2Request, BadRequest> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let head_len = match req.parse(encoded) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return Err(BadRequest("not a complete request head")),
        };
        let method = req.method.ok_or(BadRequest("no method"))?;
        let path = req.path.ok_or(BadRequest("no path"))?;
        // A user-set Host names the authority, as it does over HTTP/1.1.
        let authority = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .map_or(target.authority.as_bytes(), |h| h.value);
        if authority.is_empty() {
            return Err(BadRequest("empty authority"));
        }
        let scheme: &[u8] = if target.tls { b"https" } else { b"http" };
        let mut block = Vec::with_capacity(encoded.len());
        hpack::put_field(&mut block, b":method", method.as_bytes());
        hpack::put_field(&mut block, b":scheme", scheme);
        hpack::put_field(&mut block, b":authority", authority);
        hpack::put_field(&mut block, b":path", path.as_bytes());
        let mut name = Vec::new();
        let grpc = req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("content-type") && h.value.starts_with(b"application/grpc")
        });
        for h in req.headers.iter() {
            if DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d)) {
                continue;
            }
            // Field names are lower case in HTTP/2 (RFC 9113 §8.2.1).
            name.clear();
            name.extend(h.name.bytes().map(|b| b.to_ascii_lowercase()));
            hpack::put_field(&mut block, &name, h.value);
        }
        Ok(H2Request {
            block: Bytes::from(block),
            body: Bytes::copy_from_slice(&encoded[head_len..]),
            grpc,
        })
    }
}

/// A failed HTTP/2 exchange.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub first_byte: Option<Instant>,
    pub bytes_in: u64,
    /// The protocol says the server did not process the request (REFUSED_STREAM, above a GOAWAY's
    /// last stream, or never written): it may be sent again.
    pub unprocessed: bool,
    /// The connection cannot carry more requests.
    pub conn_dead: bool,
}

impl Failure {
    /// A request that never got a stream: the connection is closed to new ones.
    fn unsent(kind: ErrorKind) -> Failure {
        Failure {
            kind,
            first_byte: None,
            bytes_in: 0,
            unprocessed: true,
            conn_dead: true,
        }
    }
}

/// A handle to an open HTTP/2 connection; cloning it is cheap. The connection ends when the last
/// handle is gone and its streams are done, or when it fails.
pub struct H2Conn(Rc<RefCell<State>>);

impl Clone for H2Conn {
    fn clone(&self) -> H2Conn {
        H2Conn(Rc::clone(&self.0))
    }
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        // The last handle (the task holds the other reference): let the task see it and end.
        if Rc::strong_count(&self.0) == 2 {
            if let Ok(mut st) = self.0.try_borrow_mut() {
                st.wake_driver();
            }
        }
    }
}

/// One stream's state, in a slab entry reused by later streams (its buffers keep their capacity).
#[derive(Default)]
struct Entry {
    id: u32,
    /// An exchange owns this entry (until it has read the result, or is dropped).
    in_use: bool,
    waker: Option<Waker>,
    /// The final status, 0 until the response's head has arrived.
    status: u16,
    first_byte: Option<Instant>,
    bytes_in: u64,
    /// The body's coding and decoded size.
    decoded: Decoded,
    wants_head: bool,
    /// The capture's body hasher while the stream is open: the connection task hashes DATA straight
    /// from its read buffer, so a verified blob is never copied.
    hasher: Option<sha2::Sha256>,
    /// How many body bytes the capture keeps (0: none).
    keep: usize,
    /// The response head in HTTP/1.1 form, for checks and extractions (when `wants_head`).
    head: Vec<u8>,
    /// The body bytes kept for the capture (up to `keep`).
    body_kept: Vec<u8>,
    /// How the stream ended, once it has.
    end: Option<Result<(), Failure>>,
    /// The request body and how much of it is queued; the rest waits for flow-control window.
    body: Bytes,
    body_sent: usize,
    send_window: i64,
    /// Bytes received and not yet given back with a WINDOW_UPDATE.
    recv_unacked: u32,
    /// A gRPC call: its `grpc-status` once read, and its response's messages.
    grpc: bool,
    grpc_status: Option<u8>,
    framing: super::grpc::Framing,
}

/// A connection's state, shared by its handles and its task on one thread.
struct State {
    /// Frames waiting for the task to write them.
    out: Vec<u8>,
    driver: Option<Waker>,
    /// The task has been woken and has not run since: one wake serves a burst of requests.
    driver_woken: bool,
    entries: Vec<Entry>,
    /// The stream id of each entry while it is open, else 0: scanned to route frames (a few
    /// hundred bytes even at 100 streams, cheaper than hashing).
    ids: Vec<u32>,
    free: Vec<usize>,
    next_id: u32,
    active: usize,
    /// `--streams`, lowered by the server's SETTINGS_MAX_CONCURRENT_STREAMS.
    max_active: usize,
    streams_flag: usize,
    /// Requests waiting for a stream.
    waiting: Vec<Waker>,
    send_window: i64,
    initial_send_window: i64,
    max_send_frame: usize,
    /// Entries with body bytes waiting for window, in order.
    blocked: Vec<usize>,
    /// Why no new stream may start (GOAWAY received, or the connection failed).
    closed: Option<ErrorKind>,
    /// A GOAWAY arrived: a close after it is the server ending the connection, not a failure of it.
    goaway: bool,
    /// The highest stream id queued, and the highest whose frames the task has written in full:
    /// a stream above `written_id` when the connection fails never reached the server.
    queued_id: u32,
    written_id: u32,
    recv_unacked: u32,
}

/// Appends a frame header.
fn frame_head(out: &mut Vec<u8>, len: usize, ty: u8, flags: u8, id: u32) {
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], ty, flags]);
    out.extend_from_slice(&id.to_be_bytes());
}

fn rst_stream(out: &mut Vec<u8>, id: u32, code: u32) {
    frame_head(out, 4, RST_STREAM, 0, id);
    out.extend_from_slice(&code.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, id: u32, increment: u32) {
    frame_head(out, 4, WINDOW_UPDATE, 0, id);
    out.extend_from_slice(&increment.to_be_bytes());
}

impl State {
    fn wake_driver(&mut self) {
        if !self.driver_woken {
            self.driver_woken = true;
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|&i| i == id)
    }

    /// Starts a stream for `req`, queueing its frames, or waits for one to be free. The capture's
    /// hasher moves into the stream until [`State::release`].
    fn open(
        &mut self,
        cx: &mut Context<'_>,
        req: &H2Request,
        capture: Option<&mut Capture>,
    ) -> Poll<Result<usize, Failure>> {
        if let Some(kind) = self.closed {
            return Poll::Ready(Err(Failure::unsent(kind)));
        }
        if self.next_id > MAX_STREAM_ID {
            // Stream ids are spent: this connection is done, the next one starts again at 1.
            self.closed = Some(ErrorKind::Closed);
            return Poll::Ready(Err(Failure::unsent(ErrorKind::Closed)));
        }
        if self.active >= self.max_active {
            if !self.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                self.waiting.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let id = self.next_id;
        self.next_id += 2;
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry::default());
                self.ids.push(0);
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[i];
        e.id = id;
        e.in_use = true;
        e.status = 0;
        e.first_byte = None;
        e.bytes_in = 0;
        e.decoded = Decoded::default();
        e.head.clear();
        e.body_kept.clear();
        (e.wants_head, e.keep) = (false, 0);
        if let Some(c) = capture {
            e.wants_head = c.want_head;
            e.keep = if c.want_body { c.max_body } else { 0 };
            e.hasher = c.hasher.take();
        }
        e.end = None;
        e.grpc = req.grpc;
        e.grpc_status = None;
        e.framing.reset();
        e.body_sent = 0;
        e.send_window = self.initial_send_window;
        e.recv_unacked = 0;
        self.ids[i] = id;
        self.active += 1;

        // HEADERS, and CONTINUATIONs when the block is larger than the server's frame size.
        let no_body = req.body.is_empty();
        let mut chunks = req.block.chunks(self.max_send_frame);
        let first = chunks.next().unwrap_or(&[]);
        let mut flags = if no_body { END_STREAM } else { 0 };
        if first.len() == req.block.len() {
            flags |= END_HEADERS;
        }
        frame_head(&mut self.out, first.len(), HEADERS, flags, id);
        self.out.extend_from_slice(first);
        let mut rest = chunks.peekable();
        while let Some(c) = rest.next() {
            let flags = if rest.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            frame_head(&mut self.out, c.len(), CONTINUATION, flags, id);
            self.out.extend_from_slice(c);
        }
        if !no_body {
            self.entries[i].body = req.body.clone();
            self.blocked.push(i);
            self.pump();
        }
        self.queued_id = id;
        self.wake_driver();
        Poll::Ready(Ok(i))
    }

    /// Queues as much request body as the flow-control windows allow, in stream order.
    fn pump(&mut self) {
        let State {
            entries,
            blocked,
            out,
            send_window,
            max_send_frame,
            ..
        } = self;
        blocked.retain(|&i| {
            let e = &mut entries[i];
            loop {
                let left = e.body.len() - e.body_sent;
                let room = (*send_window).min(e.send_window).max(0) as usize;
                let n = left.min(room).min(*max_send_frame);
                if n == 0 {
                    return true;
                }
                let last = n == left;
                frame_head(out, n, DATA, if last { END_STREAM } else { 0 }, e.id);
                out.extend_from_slice(&e.body[e.body_sent..e.body_sent + n]);
                e.body_sent += n;
                *send_window -= n as i64;
                e.send_window -= n as i64;
                if last {
                    e.body = Bytes::new();
                    return false;
                }
            }
        });
        self.wake_driver();
    }

    /// The stream of entry `i` has ended (response complete, reset, or the connection failed).
    fn finish(&mut self, i: usize, result: Result<(), Failure>) {
        let answered = result.is_ok();
        let e = &mut self.entries[i];
        e.end = Some(result);
        if let Some(w) = &e.waker {
            w.wake_by_ref();
        }
        if !e.body.is_empty() {
            e.body = Bytes::new();
            // The server answered before taking the whole body: tell it we stop sending (RFC 9113
            // §8.1). A failed stream is already closed: reset by either side, or its connection gone.
            if answered && self.closed.is_none() {
                rst_stream(&mut self.out, e.id, CANCEL);
            }
        }
        self.close(i);
    }

    /// Ends stream `i` as failed, with what it received so far.
    fn fail(&mut self, i: usize, kind: ErrorKind, unprocessed: bool, conn_dead: bool) {
        let e = &self.entries[i];
        let f = Failure {
            kind,
            first_byte: e.first_byte,
            bytes_in: e.bytes_in,
            unprocessed,
            conn_dead,
        };
        self.finish(i, Err(f));
    }

    /// A stream error we detected (RFC 9113 §5.4.2): the stream is reset with `code` and its request
    /// fails as `protocol`; the connection carries on.
    fn stream_error(&mut self, i: usize, code: u32) {
        rst_stream(&mut self.out, self.entries[i].id, code);
        self.fail(i, ErrorKind::Protocol, false, false);
    }

    /// Frees entry `i`'s stream id and its place in `--streams`.
    fn close(&mut self, i: usize) {
        if self.ids[i] == 0 {
            return;
        }
        self.ids[i] = 0;
        self.active -= 1;
        self.blocked.retain(|&b| b != i);
        // Each waiter checks again; one whose request timed out is gone, so wake them all.
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }

    /// The exchange is done with entry `i`: what the stream captured goes back to `capture` (head,
    /// kept body, hasher), and a stream still open (the exchange timed out) is reset.
    fn release(&mut self, i: usize, capture: Option<&mut Capture>) {
        let e = &mut self.entries[i];
        if let Some(c) = capture {
            if e.hasher.is_some() {
                c.hasher = e.hasher.take();
            }
            std::mem::swap(&mut c.body, &mut e.body_kept);
            if e.grpc {
                std::mem::swap(&mut c.messages, &mut e.framing.arrivals);
            }
            if e.wants_head && e.status != 0 {
                std::mem::swap(&mut c.head, &mut e.head);
            }
        }
        if self.entries[i].end.is_none() {
            let id = self.entries[i].id;
            self.entries[i].body = Bytes::new();
            rst_stream(&mut self.out, id, CANCEL);
            self.close(i);
            self.wake_driver();
        }
        self.entries[i].in_use = false;
        self.free.push(i);
    }

    /// The result once the stream has ended.
    fn poll_response(&mut self, i: usize, cx: &mut Context<'_>) -> Poll<Result<Response, Failure>> {
        let e = &mut self.entries[i];
        match e.end {
            None => {
                if !e.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    e.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Some(Err(f)) => Poll::Ready(Err(f)),
            Some(Ok(())) => Poll::Ready(Ok(Response {
                status: e.status,
                first_byte: e.first_byte.unwrap_or_else(Instant::now),
                // Frames of many streams share the connection, so a request's own wire bytes are
                // not observable: HTTP/2 counts payload (DATA) bytes.
                bytes_in: e.bytes_in,
                body_bytes: e.bytes_in,
                coding: e.decoded.coding(),
                decoded_bytes: e.decoded.size(e.bytes_in),
                reusable: true,
                grpc_status: e.grpc_status,
                grpc_truncated: e.framing.truncated(),
            })),
        }
    }

    /// The connection is gone: every open stream fails with `kind`. One whose frames were never
    /// written in full did not reach the server and may be sent again.
    fn fail_all(&mut self, kind: ErrorKind) {
        self.closed.get_or_insert(kind);
        for i in 0..self.entries.len() {
            if self.ids[i] == 0 {
                continue;
            }
            let unwritten = self.entries[i].id > self.written_id;
            self.fail(i, kind, unwritten, true);
        }
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }
}

/// Starts HTTP/2 on a connected (and, over TLS, h2-negotiated) stream: queues the preface and our
/// settings, and spawns the task that drives the connection. A server that does not speak HTTP/2
/// fails the first request.
pub fn handshake(stream: Stream, streams: usize) -> H2Conn {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(PREFACE);
    frame_head(&mut out, 12, SETTINGS, 0, 0);
    out.extend_from_slice(&SETTINGS_ENABLE_PUSH.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&SETTINGS_INITIAL_WINDOW_SIZE.to_be_bytes());
    out.extend_from_slice(&STREAM_WINDOW.to_be_bytes());
    window_update(&mut out, 0, CONNECTION_WINDOW - DEFAULT_WINDOW as u32);
    let state = Rc::new(RefCell::new(State {
        out,
        driver: None,
        driver_woken: false,
        entries: Vec::with_capacity(streams),
        ids: Vec::with_capacity(streams),
        free: Vec::with_capacity(streams),
        next_id: 1,
        active: 0,
        // Until the server's SETTINGS arrive, open no more streams than we mean to use.
        max_active: streams,
        streams_flag: streams,
        waiting: Vec::new(),
        send_window: DEFAULT_WINDOW,
        initial_send_window: DEFAULT_WINDOW,
        max_send_frame: MAX_FRAME,
        blocked: Vec::new(),
        closed: None,
        goaway: false,
        queued_id: 0,
        written_id: 0,
        recv_unacked: 0,
    }));
    let driver = Driver {
        io: stream,
        rbuf: vec![0; READ_BUF],
        rstart: 0,
        rend: 0,
        wbuf: Vec::with_capacity(4096),
        wpos: 0,
        wbuf_id: 0,
        unflushed: false,
        got_frames: false,
        proto: Proto {
            state: Rc::clone(&state),
            decoder: hpack::Decoder::default(),
            continuation: None,
            block: Vec::new(),
        },
    };
    tokio::task::spawn_local(driver);
    H2Conn(state)
}

/// Sends one request on `conn` and reads its whole response. `sent` is set when the request is
/// queued on the connection. The body is read and discarded (counted, captured or hashed if asked);
/// flow-control window is given back as it arrives.
pub async fn exchange(
    conn: &H2Conn,
    req: &H2Request,
    mut capture: Option<&mut Capture>,
    sent: &mut Instant,
) -> Result<Response, Failure> {
    if let Some(c) = capture.as_deref_mut() {
        c.head.clear();
        c.body.clear();
    }
    let i = poll_fn(|cx| conn.0.borrow_mut().open(cx, req, capture.as_deref_mut())).await?;
    *sent = Instant::now();
    // Gives the entry and what it captured back however this ends (dropped before the result is
    // returned), resetting the stream if it is still open.
    struct Release<'a, 'c> {
        conn: &'a H2Conn,
        i: usize,
        capture: Option<&'c mut Capture>,
    }
    impl Drop for Release<'_, '_> {
        fn drop(&mut self) {
            if let Ok(mut st) = self.conn.0.try_borrow_mut() {
                st.release(self.i, self.capture.as_deref_mut());
            }
        }
    }
    let _release = Release { conn, i, capture };
    poll_fn(|cx| conn.0.borrow_mut().poll_response(i, cx)).await
}

/// A connection error: GOAWAY with this code, and every stream fails.
struct ConnError(u32);

/// The part of the connection task that reads frames (split from the read buffer it reads them
/// from).
struct Proto {
    state: Rc<RefCell<State>>,
    decoder: hpack::Decoder,
    /// A header block waiting for CONTINUATION frames: its stream and whether it ends the stream.
    continuation: Option<(u32, bool)>,
    block: Vec<u8>,
}

/// Strips a PADDED frame's padding.
fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], ConnError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(ConnError(PROTOCOL_ERROR))?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|n| &rest[..n])
        .ok_or(ConnError(PROTOCOL_ERROR))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Proto {
    fn frame(
        &mut self,
        ty: u8,
        flags: u8,
        id: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), ConnError> {
        if let Some((cid, _)) = self.continuation {
            if ty != CONTINUATION || id != cid {
                return Err(ConnError(PROTOCOL_ERROR));
            }
        }
        match ty {
            DATA => self.data(flags, id, payload, now),
            HEADERS => {
                if id == 0 {
                    return Err(ConnError(PROTOCOL_ERROR));
                }
                let mut frag = unpad(flags, payload)?;
                if flags & PRIORITY != 0 {
                    frag = frag.get(5..).ok_or(ConnError(FRAME_SIZE_ERROR))?;
                }
                let end_stream = flags & END_STREAM != 0;
                if flags & END_HEADERS != 0 {
                    return self.header_block(id, end_stream, frag, now);
                }
                self.block.clear();
                self.block.extend_from_slice(frag);
                self.continuation = Some((id, end_stream));
                Ok(())
            }
            CONTINUATION => {
                let Some((_, end_stream)) = self.continuation else {
                    return Err(ConnError(PROTOCOL_ERROR));
                };
                if self.block.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(ConnError(PROTOCOL_ERROR));
                }
                self.block.extend_from_slice(payload);
                if flags & END_HEADERS == 0 {
                    return Ok(());
                }
                self.continuation = None;
                let block = std::mem::take(&mut self.block);
                let r = self.header_block(id, end_stream, &block, now);
                self.block = block;
                r
            }
            RST_STREAM => {
                if payload.len() != 4 {
                    return Err(ConnError(FRAME_SIZE_ERROR));
                }
                let code = be32(payload);
                let mut st = self.state.borrow_mut();
                if let Some(i) = st.find(id) {
                    // REFUSED_STREAM: not processed, safe to send again (RFC 9113 §8.7).
                    st.fail(i, ErrorKind::StreamReset, code == REFUSED_STREAM, false);
                }
                Ok(())
            }
            SETTINGS => self.settings(flags, id, payload),
            PUSH_PROMISE => Err(ConnError(PROTOCOL_ERROR)), // we said SETTINGS_ENABLE_PUSH = 0
            PING => {
                if payload.len() != 8 || id != 0 {
                    return Err(ConnError(FRAME_SIZE_ERROR));
                }
                if flags & ACK == 0 {
                    let mut st = self.state.borrow_mut();
                    frame_head(&mut st.out, 8, PING, ACK, 0);
                    st.out.extend_from_slice(payload);
                }
                Ok(())
            }
            GOAWAY => {
                if payload.len() < 8 || id != 0 {
                    return Err(ConnError(FRAME_SIZE_ERROR));
                }
                let last = be32(payload) & MAX_STREAM_ID;
                let mut st = self.state.borrow_mut();
                st.goaway = true;
                st.closed = Some(ErrorKind::GoAway);
                // Streams above the last one were not processed, whatever the code (RFC 9113
                // §6.8): they may be sent again. The others finish, or fail if the server then
                // closes (after a GOAWAY with an error code, it will).
                for i in 0..st.entries.len() {
                    if st.ids[i] > last {
                        st.fail(i, ErrorKind::GoAway, true, true);
                    }
                }
                for w in st.waiting.drain(..) {
                    w.wake();
                }
                Ok(())
            }
            WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(ConnError(FRAME_SIZE_ERROR));
                }
                let inc = i64::from(be32(payload) & MAX_STREAM_ID);
                let mut st = self.state.borrow_mut();
                if id == 0 {
                    if inc == 0 || st.send_window + inc > MAX_WINDOW {
                        return Err(ConnError(FLOW_CONTROL_ERROR));
                    }
                    st.send_window += inc;
                } else if let Some(i) = st.find(id) {
                    let e = &mut st.entries[i];
                    e.send_window += inc;
                    if inc == 0 {
                        st.stream_error(i, PROTOCOL_ERROR);
                    } else if e.send_window > MAX_WINDOW {
                        st.stream_error(i, FLOW_CONTROL_ERROR);
                    }
                }
                if !st.blocked.is_empty() {
                    st.pump();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn data(&mut self, flags: u8, id: u32, payload: &[u8], now: Instant) -> Result<(), ConnError> {
        if id == 0 {
            return Err(ConnError(PROTOCOL_ERROR));
        }
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        // Flow control counts the whole payload, padding included. Given back once half the
        // window is used: one WINDOW_UPDATE per 512 MiB.
        let len = payload.len() as u32;
        st.recv_unacked += len;
        if st.recv_unacked >= CONNECTION_WINDOW / 2 {
            window_update(&mut st.out, 0, st.recv_unacked);
            st.recv_unacked = 0;
        }
        let data = unpad(flags, payload)?;
        let Some(i) = st.find(id) else {
            // A stream we reset: what was in flight still arrives.
            return Ok(());
        };
        let e = &mut st.entries[i];
        if e.status == 0 {
            // DATA before the response head.
            st.stream_error(i, PROTOCOL_ERROR);
            return Ok(());
        }
        e.bytes_in += data.len() as u64;
        e.decoded.feed(data);
        if e.grpc {
            e.framing.feed(data, now);
        }
        if let Some(h) = e.hasher.as_mut() {
            sha2::Digest::update(h, data);
        }
        let room = e.keep.saturating_sub(e.body_kept.len());
        e.body_kept.extend_from_slice(&data[..data.len().min(room)]);
        if flags & END_STREAM != 0 {
            st.finish(i, Ok(()));
            return Ok(());
        }
        e.recv_unacked += len;
        if e.recv_unacked >= STREAM_WINDOW / 2 {
            window_update(&mut st.out, id, e.recv_unacked);
            e.recv_unacked = 0;
        }
        Ok(())
    }

    /// A complete header block for stream `id`: decoded whatever the stream's state, so the dynamic
    /// table stays in step with the server's.
    fn header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        now: Instant,
    ) -> Result<(), ConnError> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let Some(i) = st.find(id) else {
            return self
                .decoder
                .decode(block, |_, _| {})
                .map_err(|_| ConnError(COMPRESSION_ERROR));
        };
        let e = &mut st.entries[i];
        let trailers = e.status != 0;
        let mut status = 0u16;
        let mut bad_status = false;
        let mut coding = Coding::Identity;
        let record = e.wants_head && !trailers;
        let grpc = e.grpc;
        let mut grpc_status = None;
        let head = &mut e.head;
        self.decoder
            .decode(block, |name, value| {
                if name == b":status" {
                    match value {
                        // RFC 9110 §15: 100–599.
                        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                            status = u16::from(a - b'0') * 100
                                + u16::from(b - b'0') * 10
                                + u16::from(c - b'0');
                        }
                        _ => bad_status = true,
                    }
                    if record {
                        // Checks and extractions read heads in HTTP/1.1 form; write it that way.
                        head.clear();
                        head.extend_from_slice(b"HTTP/1.1 ");
                        head.extend_from_slice(value);
                        head.extend_from_slice(b" \r\n");
                    }
                } else if name.eq_ignore_ascii_case(b"content-encoding") {
                    coding = Coding::from_header(value);
                } else if grpc && name == b"grpc-status" {
                    grpc_status = super::grpc::parse_status(value);
                }
                if record && name.first() != Some(&b':') {
                    head.extend_from_slice(name);
                    head.extend_from_slice(b": ");
                    head.extend_from_slice(value);
                    head.extend_from_slice(b"\r\n");
                }
            })
            .map_err(|_| ConnError(COMPRESSION_ERROR))?;
        let malformed = if trailers {
            !end_stream
        } else {
            bad_status || status == 0 || ((100..200).contains(&status) && end_stream)
        };
        if malformed {
            st.stream_error(i, PROTOCOL_ERROR);
            return Ok(());
        }
        if grpc_status.is_some() {
            e.grpc_status = grpc_status;
        }
        if !trailers && !(100..200).contains(&status) {
            // The final head (1xx heads are informational: the real one follows).
            e.status = status;
            e.first_byte = Some(now);
            e.decoded = Decoded::new(coding);
            if record {
                e.head.extend_from_slice(b"\r\n");
            }
        }
        if end_stream {
            st.finish(i, Ok(()));
        }
        Ok(())
    }

    fn settings(&mut self, flags: u8, id: u32, payload: &[u8]) -> Result<(), ConnError> {
        if id != 0 {
            return Err(ConnError(PROTOCOL_ERROR));
        }
        if flags & ACK != 0 {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(ConnError(FRAME_SIZE_ERROR))
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(ConnError(FRAME_SIZE_ERROR));
        }
        let mut st = self.state.borrow_mut();
        for s in payload.chunks_exact(6) {
            let value = be32(&s[2..]);
            match u16::from_be_bytes([s[0], s[1]]) {
                SETTINGS_MAX_CONCURRENT_STREAMS => {
                    st.max_active = st.streams_flag.min(value as usize);
                    for w in st.waiting.drain(..) {
                        w.wake();
                    }
                }
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > MAX_WINDOW {
                        return Err(ConnError(FLOW_CONTROL_ERROR));
                    }
                    // Applies to open streams too (RFC 9113 §6.9.2).
                    let delta = i64::from(value) - st.initial_send_window;
                    st.initial_send_window = i64::from(value);
                    for i in 0..st.entries.len() {
                        if st.ids[i] != 0 {
                            st.entries[i].send_window += delta;
                        }
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnError(PROTOCOL_ERROR));
                    }
                    st.max_send_frame = value as usize;
                }
                // Header table size: our encoder uses no dynamic table. Others do not concern a
                // client.
                _ => {}
            }
        }
        frame_head(&mut st.out, 0, SETTINGS, ACK, 0);
        if !st.blocked.is_empty() {
            st.pump();
        }
        Ok(())
    }
}

/// The task that drives a connection: writes what requests queued, reads and routes frames.
struct Driver {
    io: Stream,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Frames being written (swapped with `State::out` when empty, so both keep their capacity).
    wbuf: Vec<u8>,
    wpos: usize,
    /// The highest stream id in `wbuf`.
    wbuf_id: u32,
    /// `wbuf` has been written but not yet flushed.
    unflushed: bool,
    /// Something has been read: the server speaks HTTP/2 if it got this far.
    got_frames: bool,
    proto: Proto,
}

impl Future for Driver {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        let Poll::Ready(failed) = me.drive(cx) else {
            return Poll::Pending;
        };
        let mut st = me.proto.state.borrow_mut();
        let kind = match failed {
            Some(kind) => kind,
            // Ended with nothing in flight; a GOAWAY'd connection the server then closed ends so
            // too.
            None if st.goaway => ErrorKind::GoAway,
            None => ErrorKind::Closed,
        };
        st.fail_all(kind);
        Poll::Ready(())
    }
}

impl Driver {
    /// Runs until the connection ends: `Ready(None)` when it is no longer needed, `Ready(Some)`
    /// with the reason when it failed.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<Option<ErrorKind>> {
        {
            let mut st = self.proto.state.borrow_mut();
            st.driver_woken = false;
            if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.driver = Some(cx.waker().clone());
            }
        }
        loop {
            let mut progressed = false;
            // Write what is queued.
            if self.wpos == self.wbuf.len() {
                let mut st = self.proto.state.borrow_mut();
                let idle = st.active == 0 && st.out.is_empty();
                // No handle left to send more (the task holds the only reference), or no new
                // stream allowed: the connection has nothing left to do.
                if idle && (Rc::strong_count(&self.proto.state) == 1 || st.closed.is_some()) {
                    if st.closed.is_none() {
                        // Ours to end: say so, as RFC 9113 §6.8 asks, before closing.
                        drop(st);
                        self.go_away(cx, NO_ERROR);
                    }
                    return Poll::Ready(None);
                }
                if !st.out.is_empty() {
                    self.wbuf.clear();
                    self.wpos = 0;
                    std::mem::swap(&mut self.wbuf, &mut st.out);
                    self.wbuf_id = st.queued_id;
                    self.unflushed = true;
                }
            }
            while self.wpos < self.wbuf.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Some(ErrorKind::Closed)),
                    Poll::Ready(Ok(n)) => {
                        self.wpos += n;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(self.write_failed(&e))),
                    Poll::Pending => break,
                }
            }
            if self.wpos == self.wbuf.len() && self.unflushed {
                // TLS buffers records: push them out. A no-op on plain TCP.
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(self.write_failed(&e))),
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        self.proto.state.borrow_mut().written_id = self.wbuf_id;
                    }
                    Poll::Pending => {}
                }
            }
            // Read and route what arrived.
            if self.rend == self.rbuf.len() {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rend..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        let st = self.proto.state.borrow();
                        let ended = st.active == 0 && st.closed.is_some();
                        return Poll::Ready((!ended).then_some(if st.goaway {
                            ErrorKind::GoAway
                        } else {
                            ErrorKind::Closed
                        }));
                    }
                    let filled = self.rend + n == self.rbuf.len();
                    let first = self.rend == 0 && !self.got_frames;
                    self.rend += n;
                    if first && self.rbuf[..self.rend].starts_with(b"HTTP/1.") {
                        // An HTTP/1.1 server answering our preface (h2c to a server without it).
                        return Poll::Ready(Some(ErrorKind::NoH2));
                    }
                    self.got_frames = true;
                    // Everything in this read arrived now: one clock read for all its frames.
                    if let Err(ConnError(code)) = self.frames(Instant::now()) {
                        self.go_away(cx, code);
                        return Poll::Ready(Some(ErrorKind::Protocol));
                    }
                    if filled && self.rbuf.len() < MAX_READ_BUF {
                        // A large body: read it in larger pieces from now on.
                        self.rbuf.resize(self.rbuf.len() * 2, 0);
                    }
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(super::http1::classify(&e))),
                Poll::Pending => {}
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Routes every whole frame in the read buffer.
    fn frames(&mut self, now: Instant) -> Result<(), ConnError> {
        while self.rend - self.rstart >= 9 {
            let h = &self.rbuf[self.rstart..self.rstart + 9];
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let (ty, flags, id) = (h[3], h[4], be32(&h[5..9]) & MAX_STREAM_ID);
            if len > MAX_FRAME {
                return Err(ConnError(FRAME_SIZE_ERROR));
            }
            if self.rend - self.rstart < 9 + len {
                break;
            }
            let payload = &self.rbuf[self.rstart + 9..self.rstart + 9 + len];
            self.rstart += 9 + len;
            self.proto.frame(ty, flags, id, payload, now)?;
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        Ok(())
    }

    /// Tells the server why we are closing (best effort: the connection is failing anyway).
    fn go_away(&mut self, cx: &mut Context<'_>, code: u32) {
        let mut frame = Vec::with_capacity(17);
        frame_head(&mut frame, 8, GOAWAY, 0, 0);
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(&code.to_be_bytes());
        let _ = Pin::new(&mut self.io).poll_write(cx, &frame);
        let _ = Pin::new(&mut self.io).poll_flush(cx);
    }

    /// Why a write failed. Over TLS the peer may have said why before it closed (an alert, such as
    /// a rejected client certificate), and the records may be sitting unread in the socket: reads
    /// them straight from the socket into the TLS session to find out.
    fn write_failed(&mut self, e: &io::Error) -> ErrorKind {
        let kind = super::http1::classify(e);
        let Stream::Tls(tls) = &mut self.io else {
            return kind;
        };
        let (tcp, session) = tls.get_mut();
        let mut scratch = [0u8; 4096];
        for _ in 0..8 {
            let sock = socket2::SockRef::from(&*tcp);
            let n = match std::io::Read::read(&mut &*sock, &mut scratch) {
                Ok(n) if n > 0 => n,
                _ => return kind,
            };
            let mut records = &scratch[..n];
            while !records.is_empty() {
                if session.read_tls(&mut records).is_err() {
                    return kind;
                }
                if session.process_new_packets().is_err() {
                    return ErrorKind::Tls;
                }
            }
        }
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RequestSpec;

    fn fields(r: &H2Request) -> Vec<(String, String)> {
        let mut out = Vec::new();
        hpack::Decoder::default()
            .decode(&r.block, |n, v| {
                out.push((
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ))
            })
            .unwrap();
        out
    }

    #[test]
    fn parses_encoded_requests_into_h2_fields() {
        let target = Target::parse("https://registry.local:5000/v2/").unwrap();
        let mut spec = RequestSpec::get("m", "/v2/a/manifests/1?x=y");
        spec.method = "PUT".into();
        spec.headers = vec![
            (
                "Accept".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            ),
            ("X-Trace".into(), "1".into()),
        ];
        spec.body = Bytes::from_static(b"{}");
        let encoded = super::super::http1::encode_request(&spec, &target, false);
        let r = H2Request::parse(&encoded, &target).unwrap();
        let f = fields(&r);
        let get = |name: &str| {
            f.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(&f[0], &(":method".to_string(), "PUT".to_string()));
        assert_eq!(get(":scheme"), ["https"]);
        assert_eq!(get(":authority"), ["registry.local:5000"]);
        assert_eq!(get(":path"), ["/v2/a/manifests/1?x=y"]);
        // Connection: close and Host are HTTP/1.1's; HTTP/2 has :authority and no connection fields.
        assert!(get("connection").is_empty());
        assert!(get("host").is_empty());
        assert_eq!(get("x-trace"), ["1"], "names are lower case");
        assert_eq!(
            get("accept"),
            ["application/vnd.oci.image.manifest.v1+json"]
        );
        assert_eq!(get("content-length"), ["2"]);
        assert_eq!(&r.body[..], b"{}");
    }

    #[test]
    fn a_user_set_host_is_the_authority() {
        let target = Target::parse("http://127.0.0.1:8080/").unwrap();
        let mut spec = RequestSpec::get("g", "/");
        spec.headers = vec![("Host".into(), "example.test".into())];
        let encoded = super::super::http1::encode_request(&spec, &target, true);
        let f = fields(&H2Request::parse(&encoded, &target).unwrap());
        assert!(f.contains(&(":authority".into(), "example.test".into())));
        assert!(f.contains(&(":scheme".into(), "http".into())));
        assert!(f.contains(&(":path".into(), "/".into())));
    }
}
