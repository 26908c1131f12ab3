//! The demo target's event stream: `GET /sse/watch?count=N&interval_ms=M&drop_after=K` sends
//! registry changes as Server-Sent Events (`id:` its sequence number, `data:` JSON with its
//! `sent_unix_nanos`), one every M ms, N in all, then ends the stream. With `drop_after`, each
//! connection ends after K events, and a client that reopens with `Last-Event-ID` resumes after
//! it — what a real watch API's reconnection looks like.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::Frame;
use hyper::{Request, Response};
use tokio::sync::mpsc;

use super::Streamed;

const MAX_EVENTS: u64 = 1_000_000;
const MAX_INTERVAL_MS: u64 = 60_000;

/// Answers one stream request.
pub fn watch<B>(req: &Request<B>) -> Response<Streamed> {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str, default: u64| super::query_number(query, name, default);
    let count = param("count", 10).min(MAX_EVENTS);
    let interval = Duration::from_millis(param("interval_ms", 100).min(MAX_INTERVAL_MS));
    let drop_after = param("drop_after", u64::MAX);
    // Resume after the last event the client saw.
    let first = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |id| id + 1);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        // A reconnecting client waits this long (the field EventSource honours).
        let _ = tx
            .send(Frame::data(Bytes::from_static(b"retry: 10\n\n")))
            .await;
        let mut next = tokio::time::Instant::now();
        for (k, seq) in (first..count).enumerate() {
            if k as u64 >= drop_after {
                return;
            }
            if k > 0 {
                next += interval;
                tokio::time::sleep_until(next).await;
            }
            let sent = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let event = format!(
                "id: {seq}\nevent: updated\ndata: {{\"seq\":{seq},\"server\":\"io.example.demo/server-{:04}\",\"sent_unix_nanos\":{sent}}}\n\n",
                seq % 100
            );
            if tx.send(Frame::data(Bytes::from(event))).await.is_err() {
                return; // the client went away
            }
        }
    });
    let mut resp = Response::new(Streamed(rx));
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    resp
}
