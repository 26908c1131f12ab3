//! WebSocket (`ws://`, `wss://`): the upgrade on the engine's own connections (TCP, TLS, Unix
//! socket, proxy tunnel — `Worker::open`), framing by tokio-tungstenite. Runs one iteration of a
//! `plan::ws::Ws` step and records every part of it (see `plan::ws` for the patterns and tags).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{
    frame::coding::CloseCode, CloseFrame, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::http1::Stream;
use super::Worker;
use crate::plan::ws::{Mode, Ws};
use crate::sample::{ErrorKind, Outcome, Sample};

/// A virtual user's open WebSocket (echo keeps it across iterations).
pub type Socket = WebSocketStream<Stream>;

/// Offsets of the phase tags after the step's own.
const HANDSHAKE: usize = 1;
const MESSAGE: usize = 2;
const CLOSE: usize = 3;

/// How long a close waits for the server's close frame before it counts the connection dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Small buffers: thousands of mostly idle connections must fit (tungstenite reads 128 KiB at a
/// time by default).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

fn kind_of(e: &WsError) -> ErrorKind {
    match e {
        WsError::Io(io) => ErrorKind::from_io(io),
        WsError::Tls(_) => ErrorKind::Tls,
        WsError::ConnectionClosed | WsError::AlreadyClosed => ErrorKind::Closed,
        WsError::Capacity(_) => ErrorKind::BodyTooLarge,
        _ => ErrorKind::Protocol,
    }
}

/// One iteration of `ws` on the virtual user's socket `socket` (opened if it has none), its tags
/// from `tag`, with `message` rendered for this iteration. Records everything and returns the
/// step's sample; `reply` gets the echo's reply for the step's checks.
pub(super) async fn run(
    worker: &Worker,
    socket: &mut Option<Socket>,
    ws: &Ws,
    tag: usize,
    message: &[u8],
    intended: Instant,
    reply: &mut Vec<u8>,
) -> Sample {
    worker.recorder.borrow_mut().started(Instant::now());
    let mut s = Sample::new(tag as u16, intended);
    reply.clear();
    let timeout = worker.plan.timeout;
    let outcome = match &ws.mode {
        Mode::Echo { .. } => echo(worker, socket, ws, tag, message, &mut s, reply, timeout).await,
        Mode::Subscribe {
            receive, timestamp, ..
        } => {
            let send = ws.template().map(|_| message);
            subscribe(
                worker,
                ws,
                tag,
                send,
                *receive,
                timestamp.as_deref(),
                &mut s,
            )
            .await
        }
        Mode::Hold { hold } => held(worker, ws, tag, *hold, &mut s).await,
    };
    s.done = Instant::now();
    s.outcome = outcome;
    worker.recorder.borrow_mut().record(&s);
    s
}

/// Send `message`, wait for the next message back.
#[allow(clippy::too_many_arguments)]
async fn echo(
    worker: &Worker,
    socket: &mut Option<Socket>,
    ws: &Ws,
    tag: usize,
    message: &[u8],
    s: &mut Sample,
    reply: &mut Vec<u8>,
    timeout: Duration,
) -> Outcome {
    if socket.is_none() {
        match connect(worker, ws, tag, s).await {
            Ok(sock) => *socket = Some(sock),
            Err(failed) => return failed,
        }
    } else {
        s.reused = true;
    }
    let Some(sock) = socket.as_mut() else {
        return Outcome::Error(ErrorKind::Other);
    };
    s.sent = Instant::now();
    s.bytes_out = message.len() as u64;
    let msg = match std::str::from_utf8(message) {
        Ok(text) => Message::text(text),
        Err(_) => Message::binary(message.to_vec()),
    };
    let exchange = async {
        sock.send(msg).await.map_err(|e| (kind_of(&e), None))?;
        loop {
            match sock.next().await {
                // The frame's own bytes, not copied.
                Some(Ok(Message::Text(t))) => return Ok(bytes::Bytes::from(t)),
                Some(Ok(Message::Binary(b))) => return Ok(b),
                // Pings are answered by tungstenite on the next write or flush.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    return Err((ErrorKind::Closed, Some(close_code(frame.as_ref()))))
                }
                Some(Err(e)) => return Err((kind_of(&e), Some(1006))),
                None => return Err((ErrorKind::Closed, Some(1006))),
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(bytes)) => {
            s.first_byte = Some(Instant::now());
            s.bytes_in = bytes.len() as u64;
            s.body_bytes = s.bytes_in;
            s.decoded_bytes = s.bytes_in;
            // Into the virtual user's buffer, which keeps its capacity.
            reply.extend_from_slice(&bytes);
            Outcome::Delivered
        }
        Ok(Err((kind, closed))) => {
            // The connection is done: a closed one is counted by its code; the next iteration
            // opens a new one.
            *socket = None;
            if let Some(code) = closed {
                record_close(worker, tag, s.sent, code);
            }
            Outcome::Error(kind)
        }
        Err(_) => {
            // A late reply would answer the next message: this connection cannot be trusted.
            *socket = None;
            Outcome::Error(ErrorKind::Timeout)
        }
    }
}

/// Connect, send `send` if any, receive `receive` messages, close.
async fn subscribe(
    worker: &Worker,
    ws: &Ws,
    tag: usize,
    send: Option<&[u8]>,
    receive: u32,
    timestamp: Option<&str>,
    s: &mut Sample,
) -> Outcome {
    let mut sock = match connect(worker, ws, tag, s).await {
        Ok(sock) => sock,
        Err(failed) => return failed,
    };
    s.sent = Instant::now();
    if let Some(m) = send {
        s.bytes_out = m.len() as u64;
        let msg = match std::str::from_utf8(m) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(m.to_vec()),
        };
        if let Err(e) = sock.send(msg).await {
            record_close(worker, tag, s.sent, 1006);
            return Outcome::Error(kind_of(&e));
        }
    }
    let mut prev = s.sent;
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + worker.plan.timeout;
    while got < receive {
        let next = match tokio::time::timeout_at(deadline, sock.next()).await {
            Ok(n) => n,
            Err(_) => return Outcome::Error(ErrorKind::Timeout),
        };
        let payload = match next {
            Some(Ok(Message::Text(t))) => bytes::Bytes::from(t),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                // The server ended it before every message came: counted by its code, and the
                // session failed.
                record_close(worker, tag, s.sent, close_code(frame.as_ref()));
                return Outcome::Error(ErrorKind::Closed);
            }
            Some(Err(e)) => {
                record_close(worker, tag, s.sent, 1006);
                return Outcome::Error(kind_of(&e));
            }
            None => {
                record_close(worker, tag, s.sent, 1006);
                return Outcome::Error(ErrorKind::Closed);
            }
        };
        let now = Instant::now();
        if got == 0 {
            s.first_byte = Some(now);
        }
        got += 1;
        s.bytes_in += payload.len() as u64;
        let m = delivered(tag + MESSAGE, prev, now, &payload, timestamp);
        worker.recorder.borrow_mut().record_iteration(&m);
        prev = now;
    }
    s.body_bytes = s.bytes_in;
    s.decoded_bytes = s.bytes_in;
    Outcome::WsClose(close(worker, tag, sock).await)
}

/// Connect, hold the connection idle for `hold`, close.
async fn held(worker: &Worker, ws: &Ws, tag: usize, hold: Duration, s: &mut Sample) -> Outcome {
    let mut sock = match connect(worker, ws, tag, s).await {
        Ok(sock) => sock,
        Err(failed) => return failed,
    };
    s.sent = Instant::now();
    let until = tokio::time::Instant::now() + hold;
    loop {
        match tokio::time::timeout_at(until, sock.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = close_code(frame.as_ref());
                record_close(worker, tag, s.sent, code);
                return Outcome::WsClose(code);
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => {
                record_close(worker, tag, s.sent, 1006);
                return Outcome::WsClose(1006);
            }
        }
    }
    Outcome::WsClose(close(worker, tag, sock).await)
}

/// Opens a connection and upgrades it, recording the handshake under `STEP/handshake` (with its
/// connect and TLS times). On failure, the step's outcome.
async fn connect(worker: &Worker, ws: &Ws, tag: usize, s: &mut Sample) -> Result<Socket, Outcome> {
    let mut h = Sample::new((tag + HANDSHAKE) as u16, s.intended);
    h.sent = Instant::now();
    let result = upgrade(worker, ws, &mut h).await;
    h.done = Instant::now();
    h.outcome = match &result {
        Ok(_) => Outcome::Status(101),
        Err(o) => *o,
    };
    worker.recorder.borrow_mut().record_iteration(&h);
    // The step's own sample opened this connection: its connect and TLS times are the step's too.
    s.connect = h.connect;
    s.tls = h.tls;
    result
}

async fn upgrade(worker: &Worker, ws: &Ws, h: &mut Sample) -> Result<Socket, Outcome> {
    let plan = &worker.plan;
    let target = &plan.target;
    let connecting = async {
        let (stream, _) = worker.open(h).await.map_err(Outcome::Error)?;
        let scheme = if target.tls { "wss" } else { "ws" };
        let uri = format!("{scheme}://{}{}", target.authority, ws.path);
        let mut request = uri
            .into_client_request()
            .map_err(|_| Outcome::Error(ErrorKind::Other))?;
        for (name, value) in &ws.headers {
            let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) else {
                return Err(Outcome::Error(ErrorKind::Other));
            };
            request.headers_mut().insert(n, v);
        }
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await {
            Ok((sock, _)) => {
                h.first_byte = Some(Instant::now());
                Ok(sock)
            }
            Err(WsError::Http(resp)) => Err(Outcome::Status(resp.status().as_u16())),
            Err(e) => Err(Outcome::Error(kind_of(&e))),
        }
    };
    match tokio::time::timeout(plan.timeout, connecting).await {
        Ok(r) => r,
        Err(_) => Err(Outcome::Error(ErrorKind::Timeout)),
    }
}

/// Closes with 1000 and waits for the server's close frame; returns the code it sent (1006 when it
/// dropped the connection instead), recorded under `STEP/close`.
pub(super) async fn close(worker: &Worker, tag: usize, mut sock: Socket) -> u16 {
    let started = Instant::now();
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let code = match sock.close(Some(frame)).await {
        Err(_) => 1006,
        Ok(()) => {
            let answer = async {
                loop {
                    match sock.next().await {
                        Some(Ok(Message::Close(frame))) => return close_code(frame.as_ref()),
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => return 1006,
                    }
                }
            };
            tokio::time::timeout(CLOSE_WAIT, answer)
                .await
                .unwrap_or(1006)
        }
    };
    record_close(worker, tag, started, code);
    code
}

fn record_close(worker: &Worker, tag: usize, since: Instant, code: u16) {
    let mut c = Sample::new((tag + CLOSE) as u16, since);
    c.done = Instant::now();
    c.outcome = Outcome::WsClose(code);
    worker.recorder.borrow_mut().record_iteration(&c);
}

/// A close frame's code; 1005 ("no status") for a frame without one.
fn close_code(frame: Option<&CloseFrame>) -> u16 {
    frame.map_or(1005, |f| u16::from(f.code))
}

/// A message of `tag` that arrived at `now`: timed from the one before it (`prev`), or, when
/// `timestamp` points at its send time in its JSON, from that (shared with `sse`).
pub(super) fn delivered(
    tag: usize,
    prev: Instant,
    now: Instant,
    payload: &[u8],
    timestamp: Option<&str>,
) -> Sample {
    let since = match timestamp.and_then(|p| delivery_delay(payload, p)) {
        Some(delay) => now.checked_sub(delay).unwrap_or(now),
        None => prev,
    };
    Sample {
        done: now,
        outcome: Outcome::Delivered,
        bytes_in: payload.len() as u64,
        ..Sample::new(tag as u16, since)
    }
}

/// The delay from the message's send time (Unix nanoseconds at JSON pointer `pointer`) to now.
pub(super) fn delivery_delay(payload: &[u8], pointer: &str) -> Option<Duration> {
    let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let v = doc.pointer(pointer)?;
    let sent_ns = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(Duration::from_nanos(
        u64::try_from(now_ns.saturating_sub(u128::from(sent_ns))).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_delay_reads_the_send_time() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let m = format!(r#"{{"sent_unix_nanos": {}}}"#, now - 5_000_000);
        let d = delivery_delay(m.as_bytes(), "/sent_unix_nanos").unwrap();
        assert!(
            d >= Duration::from_millis(5) && d < Duration::from_secs(1),
            "{d:?}"
        );
        assert!(delivery_delay(b"not json", "/x").is_none());
        assert!(delivery_delay(b"{}", "/x").is_none());
    }
}
