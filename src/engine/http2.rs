//! HTTP/2 over the `h2` crate: a worker's slots share its connections, `--streams` each, and each
//! connection is driven by its own local task.
//!
//! Requests reach this module already encoded as HTTP/1.1 bytes (the one encoder, static or
//! templated); [`H2Request::parse`] turns them into HTTP/2 header fields — once per step for static
//! requests. What differs from HTTP/1.1 is what the protocol adds: streams, flow control, GOAWAY and
//! RST_STREAM.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::Reason;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::http1::{Capture, Response, Stream};
use crate::plan::Target;
use crate::sample::ErrorKind;

/// Receive window of each stream: large, so one stream can take a big blob at loopback speed without
/// waiting for WINDOW_UPDATEs (h2load's default is 1 GiB; the data is consumed as it arrives).
const STREAM_WINDOW: u32 = 16 << 20;
/// Receive window of the whole connection, shared by its streams.
const CONNECTION_WINDOW: u32 = 1 << 30;
/// Largest DATA frame the server may send us: fewer frames per large body.
const MAX_FRAME: u32 = 1 << 20;
/// Headers of an HTTP/1.1-encoded request parsed per request; more is a bad request.
const MAX_HEADERS: usize = 64;

/// A request as HTTP/2 sends it: pseudo-headers from the method and URI, the rest as fields.
#[derive(Clone, Debug)]
pub struct H2Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    pub body: Bytes,
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
        let method = Method::from_bytes(req.method.unwrap_or("GET").as_bytes())
            .map_err(|_| BadRequest("bad method"))?;
        // A user-set Host names the authority, as it does over HTTP/1.1.
        let authority = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .unwrap_or(&target.authority);
        let scheme = if target.tls { "https" } else { "http" };
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(req.path.unwrap_or("/"))
            .build()
            .map_err(|_| BadRequest("bad path or authority"))?;
        let mut headers = HeaderMap::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            if DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d)) {
                continue;
            }
            // Field names are lower case in HTTP/2; from_bytes lowercases them.
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| BadRequest("bad header name"))?;
            let value =
                HeaderValue::from_bytes(h.value).map_err(|_| BadRequest("bad header value"))?;
            headers.append(name, value);
        }
        Ok(H2Request {
            method,
            uri,
            headers,
            body: Bytes::copy_from_slice(&encoded[head_len..]),
        })
    }

    fn request(&self) -> Request<()> {
        let mut r = Request::new(());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// An open HTTP/2 connection: the handle its streams are sent on, and why it failed once it has.
#[derive(Clone)]
pub struct H2Conn {
    send: SendRequest<Bytes>,
    cause: Cause,
}

/// Why a connection failed, as only the connection sees it. h2 hands its streams a copy of an I/O
/// error (kind and message: a TLS alert's type is lost) or a bare "broken pipe" when the peer's
/// GOAWAY ended the connection; the cause is the real reason, classified where it happened.
type Cause = Rc<Cell<Option<ErrorKind>>>;

/// The connection's byte stream, noting the first I/O error's kind (by errno or TLS type) into the
/// connection's cause.
struct Observed {
    inner: Stream,
    cause: Cause,
}

impl Observed {
    fn note<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            // The first error, except that a TLS alert read after a failed write (a server that
            // rejected our certificate and closed) explains that write's reset.
            let kind = super::http1::classify(e);
            if self.cause.get().is_none() || kind == ErrorKind::Tls {
                self.cause.set(Some(kind));
            }
        }
        r
    }
}

impl AsyncRead for Observed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        me.note(r)
    }
}

impl Observed {
    /// After a failed write on TLS: the peer may have said why before it closed (an alert, such as
    /// a rejected client certificate) and the records may be sitting unread in the socket. Reads
    /// them straight from the socket (the runtime's readiness may not know of them yet) into the TLS
    /// session to find out.
    fn why_write_failed(&mut self) {
        let Stream::Tls(tls) = &mut self.inner else {
            return;
        };
        let (tcp, session) = tls.get_mut();
        let mut scratch = [0u8; 4096];
        for _ in 0..8 {
            let sock = socket2::SockRef::from(&*tcp);
            let n = match std::io::Read::read(&mut &*sock, &mut scratch) {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let mut records = &scratch[..n];
            while !records.is_empty() {
                if session.read_tls(&mut records).is_err() {
                    return;
                }
                if session.process_new_packets().is_err() {
                    self.cause.set(Some(ErrorKind::Tls));
                    return;
                }
            }
        }
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Err(_))) {
            me.why_write_failed();
        }
        me.note(r)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Err(_))) {
            me.why_write_failed();
        }
        me.note(r)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Starts HTTP/2 on a connected (and, over TLS, h2-negotiated) stream: the handshake, then a local
/// task that drives the connection until every handle is gone or it fails.
pub async fn handshake(stream: Stream, streams: usize) -> Result<H2Conn, ErrorKind> {
    let cause: Cause = Rc::new(Cell::new(None));
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        // Before the server's SETTINGS arrive, open no more streams than we mean to use.
        .initial_max_send_streams(streams)
        .enable_push(false)
        .handshake::<_, Bytes>(Observed {
            inner: stream,
            cause: Rc::clone(&cause),
        })
        .await
        .map_err(|e| cause.get().unwrap_or(classify(&e).kind))?;
    let end = Rc::clone(&cause);
    tokio::task::spawn_local(async move {
        // Its end reaches the streams through their handles. A GOAWAY with a code or a protocol
        // error is the cause even if the close then broke the socket. Set before the streams run:
        // they are woken by this very completion.
        let driven = Deferred {
            inner: conn,
            deferred: false,
        };
        if let Err(e) = driven.await {
            if e.is_remote() || e.is_library() {
                end.set(Some(classify(&e).kind));
            }
        }
    });
    Ok(H2Conn { send, cause })
}

/// Polls its future only after going once to the back of the run queue each time it is woken, so
/// every slot woken in the same turn has queued its request first and the connection writes them
/// all in one send. Without it, requests trickle out a few per send (fewer requests per syscall,
/// and a server that then answers in smaller batches too).
struct Deferred<F> {
    inner: F,
    deferred: bool,
}

impl<F: std::future::Future + Unpin> std::future::Future for Deferred<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.deferred {
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.deferred = false;
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A failed HTTP/2 exchange.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub first_byte: Option<Instant>,
    pub bytes_in: u64,
    /// The protocol says the server did not process the request (REFUSED_STREAM, or above a
    /// graceful GOAWAY's last stream, or never sent): it may be sent again.
    pub unprocessed: bool,
    /// The connection cannot carry more requests.
    pub conn_dead: bool,
    /// An I/O error, not a protocol event.
    from_io: bool,
}

/// What an `h2::Error` means for the request and its connection.
fn classify(e: &h2::Error) -> Failure {
    let fail = |kind, unprocessed, conn_dead| Failure {
        kind,
        first_byte: None,
        bytes_in: 0,
        unprocessed,
        conn_dead,
        from_io: false,
    };
    if let Some(io) = e.get_io() {
        return Failure {
            from_io: true,
            ..fail(super::http1::classify(io), false, true)
        };
    }
    let reason = e.reason();
    if e.is_go_away() && e.is_remote() {
        // A graceful GOAWAY (NO_ERROR) fails only the streams above its last stream id: those
        // were not processed (RFC 9113 §6.8). One with an error code may fail processed ones too.
        let graceful = reason == Some(Reason::NO_ERROR);
        return fail(ErrorKind::GoAway, graceful, true);
    }
    if e.is_reset() && e.is_remote() {
        // REFUSED_STREAM: not processed, safe to send again (RFC 9113 §8.7).
        let refused = reason == Some(Reason::REFUSED_STREAM);
        return fail(ErrorKind::StreamReset, refused, false);
    }
    fail(ErrorKind::Protocol, false, true)
}

/// Sends one request on `send`'s connection and reads its whole response. `sent` is set when the
/// request is handed to the connection. The body is read and discarded (counted, captured or hashed
/// if asked), releasing flow-control capacity as it goes.
pub async fn exchange(
    conn: &mut H2Conn,
    req: &H2Request,
    capture: Option<&mut Capture>,
    sent: &mut Instant,
) -> Result<Response, Failure> {
    exchange_on(&mut conn.send, req, capture, sent)
        .await
        .map_err(|mut f| {
            if let (Some(kind), true) = (conn.cause.get(), f.from_io) {
                f.kind = kind;
            }
            f
        })
}

async fn exchange_on(
    send: &mut SendRequest<Bytes>,
    req: &H2Request,
    mut capture: Option<&mut Capture>,
    sent: &mut Instant,
) -> Result<Response, Failure> {
    if let Some(c) = capture.as_deref_mut() {
        c.head.clear();
        c.body.clear();
    }
    let not_sent = |e: h2::Error| Failure {
        unprocessed: true,
        conn_dead: true,
        ..classify(&e)
    };
    // Waits while the connection is at the server's SETTINGS_MAX_CONCURRENT_STREAMS.
    std::future::poll_fn(|cx| send.poll_ready(cx))
        .await
        .map_err(not_sent)?;
    *sent = Instant::now();
    let end = req.body.is_empty();
    let (response, mut body_out) = send.send_request(req.request(), end).map_err(not_sent)?;
    if !end {
        // Queued whole; the connection sends it as the server's window allows.
        body_out
            .send_data(req.body.clone(), true)
            .map_err(|e| classify(&e))?;
    }
    let response = response.await.map_err(|e| classify(&e))?;
    let first_byte = Instant::now();
    let status = response.status().as_u16();
    if let Some(c) = capture.as_deref_mut() {
        if c.want_head {
            // Checks and extractions read heads in HTTP/1.1 form; write the fields that way.
            c.head.extend_from_slice(b"HTTP/1.1 ");
            c.head.extend_from_slice(status.to_string().as_bytes());
            c.head.extend_from_slice(b" \r\n");
            for (name, value) in response.headers() {
                c.head.extend_from_slice(name.as_str().as_bytes());
                c.head.extend_from_slice(b": ");
                c.head.extend_from_slice(value.as_bytes());
                c.head.extend_from_slice(b"\r\n");
            }
            c.head.extend_from_slice(b"\r\n");
        }
    }
    let mut body = response.into_body();
    let mut n = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| Failure {
            first_byte: Some(first_byte),
            bytes_in: n,
            // Part of the response arrived: the server processed the request.
            unprocessed: false,
            ..classify(&e)
        })?;
        n += chunk.len() as u64;
        // Consumed at once: give the window back so the server keeps sending.
        let _ = body.flow_control().release_capacity(chunk.len());
        if let Some(c) = capture.as_deref_mut() {
            c.body(&chunk);
        }
        if body.is_end_stream() {
            // Saves polling the stream once more only to learn it ended.
            break;
        }
    }
    Ok(Response {
        status,
        first_byte,
        // Frames of many streams share the connection, so a request's own wire bytes are not
        // observable: HTTP/2 counts payload (DATA) bytes.
        bytes_in: n,
        body_bytes: n,
        reusable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RequestSpec;

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
        let req = r.request();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(
            req.uri().to_string(),
            "https://registry.local:5000/v2/a/manifests/1?x=y"
        );
        // Connection: close and Host are HTTP/1.1's; HTTP/2 has :authority and no connection fields.
        assert!(req.headers().get("connection").is_none());
        assert!(req.headers().get("host").is_none());
        assert_eq!(req.headers()["x-trace"], "1");
        assert_eq!(
            req.headers()["accept"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(req.headers()["content-length"], "2");
        assert_eq!(&r.body[..], b"{}");
    }

    #[test]
    fn a_user_set_host_is_the_authority() {
        let target = Target::parse("http://127.0.0.1:8080/").unwrap();
        let mut spec = RequestSpec::get("g", "/");
        spec.headers = vec![("Host".into(), "example.test".into())];
        let encoded = super::super::http1::encode_request(&spec, &target, true);
        let r = H2Request::parse(&encoded, &target).unwrap();
        assert_eq!(r.request().uri().to_string(), "http://example.test/");
    }
}
