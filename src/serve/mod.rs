//! The built-in demo registry target (`regbench serve`, `regbench demo`): OCI distribution reads, a
//! service-registry API, Prometheus metrics, and knobs for latency, errors and stalls.
//!
//! Built on hyper's server; shares no code path with the client engine, so tests of one check the other.
//! `run(listener, state, shutdown)` takes its listener and shutdown future (tests bind 127.0.0.1:0).

pub mod auth;
mod content;
pub mod grpc;
mod knobs;
mod metrics;
pub mod push;
mod reflection;
mod service;
mod sse;
pub mod tls;
mod v2;
mod ws;

use v2::*;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use content::{
    digest, Content, Manifest, Repo, DOCKER_MANIFEST, MULTI_PLATFORM_EVERY, OCI_MANIFEST,
};
pub use knobs::{Capacity, LatencyModel, Leak, Stall};
pub use metrics::{Metrics, Route};
pub use service::{server_id, ServiceRegistry};

use crate::util::Rng;

/// What the target serves and how it behaves.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub repos: usize,
    pub tags: usize,
    pub layers: usize,
    pub layer_size: u64,
    pub servers: usize,
    pub latency: LatencyModel,
    pub error_rate: f64,
    pub stall: Option<Stall>,
    /// A bounded capacity with a queue (`--capacity`, `--queue`).
    pub capacity: Option<Arc<knobs::Capacity>>,
    pub sync_per_server: Duration,
    pub threads: usize,
    /// Serve HTTPS with this configuration instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How `/v2/` is protected.
    pub auth: auth::Auth,
    /// Leak memory at a known rate (`--leak`).
    pub leak: Option<Arc<Leak>>,
    /// During a sync, queries take this many times their added latency (`--sync-slowdown`).
    pub sync_slowdown: f64,
    /// A file watched for changes (`--config`): each change is a reload, then a sync.
    pub config_file: Option<std::path::PathBuf>,
    /// How often the file is looked at: the detection delay is up to this (`--config-poll`).
    pub config_poll: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            repos: 20,
            tags: 5,
            layers: 3,
            layer_size: 64 * 1024,
            servers: 100,
            latency: LatencyModel::Fixed(Duration::ZERO),
            error_rate: 0.0,
            stall: None,
            capacity: None,
            sync_per_server: Duration::from_millis(1),
            threads: 1,
            tls: None,
            auth: auth::Auth::None,
            leak: None,
            sync_slowdown: 1.0,
            config_file: None,
            config_poll: Duration::from_millis(500),
        }
    }
}

/// The target's state, shared by its connections.
pub struct State {
    pub config: ServeConfig,
    pub content: Content,
    pub service: ServiceRegistry,
    pub metrics: Metrics,
    /// What clients pushed.
    pub store: push::Store,
    started: Instant,
}

impl State {
    pub fn new(config: ServeConfig) -> State {
        State {
            content: Content::generate(config.repos, config.tags, config.layers, config.layer_size),
            service: ServiceRegistry::new(config.servers, config.sync_per_server),
            metrics: Metrics::default(),
            store: push::Store::default(),
            started: Instant::now(),
            config,
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish (5 s at most).
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    if let Some(path) = state.config.config_file.clone() {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let stamp = |p: &std::path::Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(|t| (t, std::fs::read(p).unwrap_or_default()))
            };
            let mut seen = stamp(&path);
            let mut every = tokio::time::interval(state.config.config_poll);
            loop {
                every.tick().await;
                let now = stamp(&path);
                if now.is_some() && now != seen {
                    seen = now;
                    state.service.reloaded();
                }
            }
        });
    }
    if let Some(leak) = state.config.leak.clone() {
        let started = state.started;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                leak.tick(started.elapsed());
            }
        });
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning; the listener stays up.
                        eprintln!("regbench serve: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                match &state.config.tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            // A failed handshake (wrong or missing client certificate) ends here.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = watcher.watch(connection(tls, state)).await;
                            }
                        });
                    }
                    None => {
                        let conn = graceful.watch(connection(stream, state));
                        tokio::spawn(async move {
                            // A client that goes away mid-request is its business, not the server's.
                            let _ = conn.await;
                        });
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

/// One connection over any byte stream (plain TCP or TLS), speaking HTTP/1.1 or HTTP/2: h2c with
/// prior knowledge on plain TCP, or h2 when TLS negotiated it (ALPN).
fn connection<I>(
    io: I,
    state: Arc<State>,
) -> impl hyper_util::server::graceful::GracefulConnection + Send + 'static
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
    hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned()
}

/// A running target on its own thread and runtime (never the generator's).
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds `addr` and serves on a new thread.
pub fn spawn(addr: SocketAddr, config: ServeConfig) -> std::io::Result<Server> {
    let std_listener = listen(addr)?;
    let addr = std_listener.local_addr()?;
    let threads = config.threads.max(1);
    let state = Arc::new(State::new(config));
    let (tx, rx) = oneshot::channel::<()>();
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("regbench-serve")
            .enable_all()
            .build()?
    };
    let thread_state = Arc::clone(&state);
    let thread = std::thread::Builder::new()
        .name("regbench-serve".into())
        .spawn(move || {
            let result = rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener)?;
                run(listener, thread_state, async {
                    let _ = rx.await;
                })
                .await
            });
            if let Err(e) = result {
                eprintln!("regbench serve: {e}");
            }
        })?;
    Ok(Server {
        addr,
        state,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// Binds with a deep accept backlog: the default (128) drops SYNs when thousands of connections open
/// at once, which would show up as 1–3 s connect times that are the demo target's fault.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// `http://ADDR`, or `https://ADDR` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish, joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

thread_local! {
    // Each server thread draws latencies and errors from its own generator: no lock per request.
    static RNG: RefCell<Rng> = RefCell::new(Rng::new(
        0x5eed ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    ));
}

/// A number from the query string (`count=10&interval_ms=5`), or `default`.
fn query_number(query: &str, name: &str, default: u64) -> u64 {
    query_param(query, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn with_rng<T>(f: impl FnOnce(&mut Rng) -> T) -> T {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

type Resp = Response<Full<Bytes>>;

/// A response body produced over time (a gRPC stream with its trailers, an event stream): its
/// frames as a task sends them.
pub struct Streamed(tokio::sync::mpsc::Receiver<http_body::Frame<Bytes>>);

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// An HTTP answer, or a streamed one (gRPC, with trailers; an event stream).
type AnyResp = Response<http_body_util::Either<Full<Bytes>, Streamed>>;

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<AnyResp, Infallible> {
    use http_body_util::BodyExt;
    let t0 = Instant::now();
    if ws::is_upgrade(&req) {
        let resp = ws::handle(Arc::clone(&state), req);
        state
            .metrics
            .record(Route::WebSocket, resp.status().as_u16(), t0.elapsed());
        return Ok(resp.map(http_body_util::Either::Left));
    }
    if req.uri().path() == "/sse/watch" {
        let resp = sse::watch(&req);
        state.metrics.record(Route::Events, 200, t0.elapsed());
        return Ok(resp.map(http_body_util::Either::Right));
    }
    if grpc::is_grpc(&req) && [reflection::V1, reflection::V1ALPHA].contains(&req.uri().path()) {
        // A stream answered as its requests arrive: the body is not collected first.
        let resp = reflection::serve(req.into_body());
        state.metrics.record(Route::Grpc, 200, t0.elapsed());
        return Ok(resp.map(http_body_util::Either::Right));
    }
    let (parts, body) = req.into_parts();
    if grpc::is_grpc(&Request::from_parts(parts.clone(), ())) {
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let req = Request::from_parts(parts, ());
        let resp = grpc::handle(&state, &req, body).await;
        state.metrics.record(Route::Grpc, 200, t0.elapsed());
        return Ok(resp.map(http_body_util::Either::Right));
    }
    // Only writes carry a body worth reading; a client that breaks off mid-body sends an empty one.
    let body = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    } else {
        Bytes::new()
    };
    let req = Request::from_parts(parts, ());
    let (route, resp) = route(&state, &req, body).await;
    state
        .metrics
        .record(route, resp.status().as_u16(), t0.elapsed());
    Ok(resp.map(http_body_util::Either::Left))
}

/// Applies the knobs around the real handler (not to `/metrics`, so scraping stays undisturbed).
async fn route(state: &State, req: &Request<()>, body: Bytes) -> (Route, Resp) {
    let path = req.uri().path();
    let method = req.method();
    if path == "/metrics" {
        return (
            Route::Metrics,
            text(
                StatusCode::OK,
                state
                    .metrics
                    .render(state.config.leak.as_ref().map(|l| l.leaked())),
            ),
        );
    }
    let cfg = &state.config;
    if !cfg.latency.is_zero() {
        let mut d = with_rng(|r| cfg.latency.sample(r));
        // A sync slows the queries it competes with; its own status and trigger stay quick.
        let query = !path.starts_with("/registry/");
        if query && cfg.sync_slowdown != 1.0 && state.service.is_syncing() {
            d = d.mul_f64(cfg.sync_slowdown);
        }
        tokio::time::sleep(d).await;
    }
    if path == "/token" {
        return (Route::Token, token(state, req));
    }
    if let Some(v2) = parse_v2(path) {
        let (repo, action) = match v2 {
            V2::Base | V2::Catalog => (None, auth::Action::Pull),
            V2::Tags(n) | V2::Manifest(n, _) | V2::Blob(n, _) | V2::Upload(n, _) => {
                let write = !matches!(*method, Method::GET | Method::HEAD);
                (
                    Some(n),
                    if write {
                        auth::Action::Push
                    } else {
                        auth::Action::Pull
                    },
                )
            }
        };
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        if let Err(challenge) = auth::check(&cfg.auth, authorization, repo, action, host) {
            let mut resp = oci_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
                json!({}),
            );
            set(&mut resp, header::WWW_AUTHENTICATE, &challenge);
            return (classify(method, path), resp);
        }
    }
    if let Some(cap) = &cfg.capacity {
        match cap.admit() {
            Some(ready) => tokio::time::sleep_until(ready.into()).await,
            None => {
                let mut resp = oci_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "over capacity: the queue is full (--capacity, --queue)",
                    json!({}),
                );
                set(&mut resp, header::RETRY_AFTER, "1");
                return (classify(method, path), resp);
            }
        }
    }
    let inject_error = cfg.error_rate > 0.0 && with_rng(|r| r.next_f64()) < cfg.error_rate;
    let (route, resp) = if inject_error {
        (
            classify(method, path),
            oci_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "injected error (--error-rate)",
                json!({}),
            ),
        )
    } else {
        dispatch(state, req, method, path, body)
    };
    if let Some(stall) = cfg.stall {
        let hold = stall.hold(state.started.elapsed());
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    }
    (route, resp)
}

/// The route a request would take, for labelling injected errors.
fn classify(method: &Method, path: &str) -> Route {
    match parse_v2(path) {
        Some(V2::Base) => Route::Base,
        Some(V2::Catalog) => Route::Catalog,
        Some(V2::Tags(_)) => Route::Tags,
        Some(V2::Manifest(..)) => Route::Manifest,
        Some(V2::Blob(..)) => Route::Blob,
        Some(V2::Upload(..)) => Route::Upload,
        None => match (method, path) {
            (_, "/v1/registry") => Route::Servers,
            (_, p) if p.starts_with("/v1/registry/") => Route::Server,
            (_, "/registry/status") => Route::Status,
            (_, "/registry/sync") => Route::Sync,
            _ => Route::NotFound,
        },
    }
}

enum V2<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    /// `/blobs/uploads/` (start) or `/blobs/uploads/ID`.
    Upload(&'a str, Option<&'a str>),
}

/// Splits an OCI distribution path. Repository names may contain slashes, so the operation is found
/// from the right.
fn parse_v2(path: &str) -> Option<V2<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(V2::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(V2::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(V2::Tags(name));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(V2::Manifest(name, reference));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(V2::Upload(name, Some(id).filter(|i| !i.is_empty())));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        return Some(V2::Upload(name, None));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(V2::Blob(name, digest));
    }
    None
}

fn dispatch(
    state: &State,
    req: &Request<()>,
    method: &Method,
    path: &str,
    body: Bytes,
) -> (Route, Resp) {
    let query = req.uri().query().unwrap_or("");
    let head = method == Method::HEAD;
    let read = method == Method::GET || head;
    if let Some(v2) = parse_v2(path) {
        let route = classify(method, path);
        if !read || matches!(v2, V2::Upload(..)) {
            return (route, write(state, req, method, v2, query, body));
        }
        let resp = match v2 {
            V2::Base => with_api_version(json_resp(StatusCode::OK, Bytes::from_static(b"{}"))),
            V2::Catalog => catalog(state, query),
            V2::Tags(name) => tags(state, name, query),
            V2::Manifest(name, reference) => manifest(state, req, name, reference, head),
            V2::Blob(name, digest) => blob(state, req, name, digest, head),
            // Uploads are answered by `write` above; nothing else routes here.
            V2::Upload(..) => oci_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "method not allowed here",
                json!({}),
            ),
        };
        return (route, resp);
    }
    match (method, path) {
        (&Method::GET, "/v1/registry") => {
            let cursor = query_param(query, "cursor");
            let limit = query_param(query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(service::DEFAULT_LIMIT);
            let resp = match state.service.list(cursor, limit) {
                Some(body) => json_resp(StatusCode::OK, body),
                None => plain_error(StatusCode::BAD_REQUEST, "unknown cursor"),
            };
            (Route::Servers, resp)
        }
        (&Method::GET, p) if p.starts_with("/v1/registry/") => {
            let id = &p["/v1/registry/".len()..];
            let resp = match state.service.get(id) {
                Some(body) => json_resp(StatusCode::OK, body),
                None => plain_error(StatusCode::NOT_FOUND, "server not found"),
            };
            (Route::Server, resp)
        }
        (&Method::GET, "/registry/status") => {
            let mut resp = json_resp(StatusCode::OK, state.service.status());
            // The config's version as an ETag: a probe can wait for it to change.
            if let Ok(v) = format!("\"config-{}\"", state.service.config_version()).parse() {
                resp.headers_mut().insert(hyper::header::ETAG, v);
            }
            (Route::Status, resp)
        }
        (&Method::POST, "/registry/sync") => {
            let (_, body) = state.service.trigger_sync();
            (Route::Sync, json_resp(StatusCode::ACCEPTED, body))
        }
        (_, "/v1/registry" | "/registry/status" | "/registry/sync") => (
            classify(method, path),
            plain_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        ),
        _ => (
            Route::NotFound,
            plain_error(StatusCode::NOT_FOUND, "not found"),
        ),
    }
}

/// Pushes: uploads, mounts, manifest PUTs.
fn write(
    state: &State,
    req: &Request<()>,
    method: &Method,
    v2: V2,
    query: &str,
    body: Bytes,
) -> Resp {
    let location = |name: &str, id: &str| format!("/v2/{name}/blobs/uploads/{id}");
    let created = |name: &str, d: &str| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::CREATED;
        set(&mut r, header::LOCATION, &format!("/v2/{name}/blobs/{d}"));
        set_named(&mut r, "docker-content-digest", d);
        with_api_version(r)
    };
    let accepted = |name: &str, id: &str, len: usize| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::ACCEPTED;
        set(&mut r, header::LOCATION, &location(name, id));
        set(
            &mut r,
            header::RANGE,
            &format!("0-{}", len.saturating_sub(1)),
        );
        set_named(&mut r, "docker-upload-uuid", id);
        with_api_version(r)
    };
    let refused = |e: push::PushError| match e {
        push::PushError::UnknownUpload => oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown",
            json!({}),
        ),
        push::PushError::DigestMismatch { expected, actual } => oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
            json!({ "expected": expected, "actual": actual }),
        ),
        push::PushError::RangeInvalid { have } => {
            let mut r = oci_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                "Content-Range does not continue the upload",
                json!({}),
            );
            set(
                &mut r,
                header::RANGE,
                &format!("0-{}", have.saturating_sub(1)),
            );
            r
        }
        push::PushError::ManifestBlobUnknown(d) => oci_error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            "blob unknown to registry",
            json!({ "digest": d }),
        ),
        push::PushError::ManifestInvalid(m) => oci_error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "manifest invalid",
            json!({ "reason": m }),
        ),
    };
    let store = &state.store;
    match (method, v2) {
        (&Method::POST, V2::Upload(name, None)) => {
            if let (Some(d), Some(_from)) =
                (query_param(query, "mount"), query_param(query, "from"))
            {
                if state.content.blob(d).is_some() || store.blob(d).is_some() {
                    return created(name, d);
                }
            }
            if let Some(d) = query_param(query, "digest") {
                return match store.put_blob(body, d) {
                    Ok(()) => created(name, d),
                    Err(e) => refused(e),
                };
            }
            let id = store.start();
            if !body.is_empty() {
                let _ = store.append(&id, Some(0), &body);
            }
            accepted(name, &id, store.progress(&id).unwrap_or(0))
        }
        (&Method::PATCH, V2::Upload(name, Some(id))) => {
            let start = req
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| {
                    r.trim_start_matches("bytes ")
                        .split('-')
                        .next()?
                        .trim()
                        .parse()
                        .ok()
                });
            match store.append(id, start, &body) {
                Ok(len) => accepted(name, id, len),
                Err(e) => refused(e),
            }
        }
        (&Method::PUT, V2::Upload(name, Some(id))) => {
            let Some(d) = query_param(query, "digest") else {
                return oci_error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "PUT needs ?digest=",
                    json!({}),
                );
            };
            match store.finish(id, &body, d) {
                Ok(()) => created(name, d),
                Err(e) => refused(e),
            }
        }
        (&Method::GET, V2::Upload(name, Some(id))) => match store.progress(id) {
            Some(len) => {
                let mut r = accepted(name, id, len);
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            None => refused(push::PushError::UnknownUpload),
        },
        (&Method::PUT, V2::Manifest(name, reference)) => {
            let media_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(OCI_MANIFEST);
            let exists = |d: &str| state.content.blob(d).is_some();
            match store.put_manifest(name, reference, media_type, body, exists) {
                Ok(d) => {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::CREATED;
                    set(
                        &mut r,
                        header::LOCATION,
                        &format!("/v2/{name}/manifests/{d}"),
                    );
                    set_named(&mut r, "docker-content-digest", &d);
                    with_api_version(r)
                }
                Err(e) => refused(e),
            }
        }
        _ => oci_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "method not allowed here",
            json!({}),
        ),
    }
}

fn set(resp: &mut Resp, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn set_named(resp: &mut Resp, name: &'static str, value: &str) {
    set(resp, header::HeaderName::from_static(name), value);
}

fn with_api_version(mut resp: Resp) -> Resp {
    set_named(&mut resp, "docker-distribution-api-version", "registry/2.0");
    resp
}

fn with_link(mut resp: Resp, link: Option<String>) -> Resp {
    if let Some(l) = link {
        set(&mut resp, header::LINK, &l);
    }
    resp
}

fn json_resp(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "application/json");
    r
}

fn text(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "text/plain; version=0.0.4");
    r
}

/// The OCI distribution error document.
fn oci_error(status: StatusCode, code: &str, message: &str, detail: serde_json::Value) -> Resp {
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": detail }] });
    with_api_version(json_resp(status, Bytes::from(body.to_string())))
}

fn name_unknown(name: &str) -> Resp {
    oci_error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
        json!({ "name": name }),
    )
}

fn plain_error(status: StatusCode, message: &str) -> Resp {
    json_resp(status, Bytes::from(json!({ "error": message }).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-1000", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn v2_paths() {
        assert!(matches!(parse_v2("/v2/"), Some(V2::Base)));
        assert!(matches!(parse_v2("/v2/_catalog"), Some(V2::Catalog)));
        assert!(matches!(
            parse_v2("/v2/a/b/tags/list"),
            Some(V2::Tags("a/b"))
        ));
        assert!(matches!(
            parse_v2("/v2/a/b/manifests/v1"),
            Some(V2::Manifest("a/b", "v1"))
        ));
        assert!(matches!(
            parse_v2("/v2/x/blobs/sha256:ab"),
            Some(V2::Blob("x", "sha256:ab"))
        ));
        assert!(parse_v2("/v1/registry").is_none());
    }

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (p, link) = paginate(&items, "n=2", "/v2/_catalog");
        assert_eq!(p, ["a", "b"]);
        assert_eq!(
            link.as_deref(),
            Some("</v2/_catalog?last=b&n=2>; rel=\"next\"")
        );
        let (p, link) = paginate(&items, "n=2&last=d", "/v2/_catalog");
        assert_eq!(p, ["e"]);
        assert!(link.is_none());
        let (p, _) = paginate(&items, "", "/v2/_catalog");
        assert_eq!(p.len(), 5);
    }
}
