//! The demo target's WebSocket endpoints (hyper's upgrade, tokio-tungstenite's framing):
//! - `/ws/echo`: every text or binary message comes back, after the target's `--latency`;
//! - `/ws/watch?count=N&interval_ms=M`: N registry changes (JSON, each with its
//!   `sent_unix_nanos`), one every M ms, then a normal close (1000).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{with_rng, State};

const MAX_WATCH: u64 = 1_000_000;
const MAX_INTERVAL_MS: u64 = 60_000;

/// A WebSocket upgrade request (`Upgrade: websocket`).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Answers the upgrade (101) and serves the socket on a task of its own once hyper hands it over.
pub fn handle<B: Send + 'static>(
    state: Arc<State>,
    mut req: Request<B>,
) -> Response<http_body_util::Full<bytes::Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()));
    let (Some(accept), "/ws/echo" | "/ws/watch") = (key, path.as_str()) else {
        let mut resp = Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"no WebSocket endpoint here (try /ws/echo or /ws/watch)\n",
        )));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Small buffers: the demo holds thousands of idle connections in tests.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        match path.as_str() {
            "/ws/echo" => echo(&state, ws).await,
            _ => watch(ws, &query).await,
        }
    });
    let mut resp = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    use hyper::header::HeaderValue;
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = accept.parse() {
        h.insert("sec-websocket-accept", v);
    }
    resp
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn echo(state: &State, mut ws: Socket) {
    let cfg = &state.config;
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if !cfg.latency.is_zero() {
                    let d = with_rng(|r| cfg.latency.sample(r));
                    tokio::time::sleep(d).await;
                }
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // tungstenite answers pings and closes by itself; after a close, next() ends.
            _ => {}
        }
    }
}

async fn watch(mut ws: Socket, query: &str) {
    let param = |name: &str, default: u64| super::query_number(query, name, default);
    let count = param("count", 10).min(MAX_WATCH);
    let interval = Duration::from_millis(param("interval_ms", 100).min(MAX_INTERVAL_MS));
    let mut next = tokio::time::Instant::now();
    for seq in 0..count {
        if seq > 0 {
            next += interval;
            // A client's close ends the watch early.
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                m = ws.next() => if !matches!(m, Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))) { return },
            }
        }
        let sent = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let event = format!(
            r#"{{"seq":{seq},"kind":"updated","server":"io.example.demo/server-{:04}","sent_unix_nanos":{sent}}}"#,
            seq % 100
        );
        if ws.send(Message::text(event)).await.is_err() {
            return;
        }
    }
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "watch complete".into(),
    };
    let _ = ws.close(Some(normal)).await;
    // Wait for the client's close reply (or its going away) before the connection is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
