//! Stage: engine — protocol I/O. N worker threads, each with its own current-thread runtime, its own
//! connections, recorder and schedule: nothing shared and mutable between threads on the hot path, and
//! per request no lock, no channel, no allocation.
//!
//! Must not aggregate or print: it turns scheduled ticks into [`Sample`]s and hands them to its worker's
//! recorder.

pub mod coding;
pub mod connect;
pub mod grpc;
mod hpack;
pub mod http1;
pub mod http2;
mod slot;
mod sse;
pub mod step;
pub mod tls;
mod ws;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc::UnboundedSender, watch};
use tokio::task::JoinSet;

use crate::aggregate::{Msg, Recorder, WorkerStats};
use crate::plan::{HttpVersion, Plan, Step, WorkerPlan};
use crate::sample::{ErrorKind, Outcome, Sample, TlsHandshake};
use crate::schedule::{Schedule, Slot, Waiter};
use http1::{Capture, Conn};
use http2::H2Request;

/// Times an HTTP/2 request the server did not process (refused, or cut off by a graceful GOAWAY) is
/// sent again before it counts as failed.
const MAX_H2_RETRIES: u32 = 3;

/// Everything a run's workers share, read-only.
pub struct Run {
    pub plan: Arc<Plan>,
    pub addr: SocketAddr,
    /// The run's time zero: every worker's first intended time.
    pub start: Instant,
    /// Becomes `true` to abandon the run (Ctrl-C): in-flight requests are dropped and counted.
    pub stop: watch::Receiver<bool>,
    pub sink: UnboundedSender<Msg>,
    /// The TLS client when the target is `https://` (built once, before the run).
    pub tls: Option<tls::TlsClient>,
    /// Runs the plan's flow steps (registry flows); `None` when it has none.
    pub flows: Option<Arc<dyn step::FlowRunner>>,
    /// `--proxy`: connect through this HTTP proxy (a CONNECT tunnel per connection).
    pub proxy: Option<SocketAddr>,
    /// The plan's event windows, open and closed by the event runner; samples are labelled by them.
    pub windows: Option<Arc<crate::schedule::windows::Windows>>,
}

/// Starts one thread per worker. Each sends its intervals and a final `Msg::Done` to `run.sink`.
pub fn spawn_workers(run: Run) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let run = Arc::new(run);
    (0..run.plan.n_workers)
        .map(|k| {
            let run = Arc::clone(&run);
            std::thread::Builder::new()
                .name(format!("regbench-worker-{k}"))
                .spawn(move || worker_main(k, &run))
        })
        .collect()
}

/// One worker thread: its own runtime and local task set.
fn worker_main(k: usize, run: &Run) {
    let tags = run.plan.tag_specs();
    let mut recorder = Recorder::new(k, run.start, &tags, run.sink.clone());
    if let Some(w) = &run.windows {
        recorder = recorder.with_windows(Arc::clone(w));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("regbench: worker {k} could not start its runtime: {e}");
            let mut recorder = recorder;
            recorder.finish(WorkerStats::default());
            return;
        }
    };
    // The precise timer registers with this runtime's reactor, so build the worker inside it.
    let worker = {
        let _in_runtime = rt.enter();
        Rc::new(Worker::new(k, run, recorder))
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(Rc::clone(&worker), run));
    let mut recorder = worker.recorder.borrow_mut();
    let usage = crate::util::thread_usage();
    let queue = crate::util::thread_run_queue_wait();
    let stats = WorkerStats {
        cpu: usage.cpu,
        n_cancelled: recorder.inflight(),
        run_queue_wait: queue.map(|q| q.0),
        n_runs: queue.map_or(0, |q| q.1),
        n_involuntary_switches: usage.n_involuntary_switches,
    };
    for s in &worker.scenarios {
        recorder.record_unsent(s.drop_tag, s.schedule.n_unsent());
    }
    recorder.finish(stats);
}

/// Runs the worker's slots of every scenario until their schedules end or the run is stopped.
async fn drive(worker: Rc<Worker>, run: &Run) {
    let mut slots = JoinSet::new();
    let mut id = 0;
    for (mine, scenario) in worker.scenarios.iter().enumerate() {
        for j in 0..scenario.share.n_slots as u64 {
            let slot = Slot {
                id,
                // invariant: j < n_slots ≤ the stripe's count below n_connections, so no overflow.
                global: scenario.share.stripe.nth(j).unwrap_or(u64::MAX),
                prev_done: None,
                n_given: 0,
            };
            id += 1;
            slots.spawn_local(slot::run_slot(Rc::clone(&worker), mine, slot));
        }
    }
    let timer = {
        let worker = Rc::clone(&worker);
        tokio::task::spawn_local(async move { worker.waiter.drive().await })
    };
    // Hands idle seconds to the collector too, so progress and the time series keep moving.
    let ticker = {
        let worker = Rc::clone(&worker);
        let start = run.start;
        tokio::task::spawn_local(async move {
            let mut next = start + Duration::from_secs(1);
            loop {
                tokio::time::sleep_until(next.into()).await;
                worker.recorder.borrow_mut().tick(Instant::now());
                next += Duration::from_secs(1);
            }
        })
    };
    let mut stop = run.stop.clone();
    let stopped = async move {
        // A dropped sender means nobody can stop us: wait for the slots instead.
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = async { while slots.join_next().await.is_some() {} } => {}
        _ = stopped => slots.abort_all(),
    }
    ticker.abort();
    timer.abort();
}

/// A worker's share of one scenario.
struct ScenarioRun {
    /// Its index in `plan.scenarios`. A worker holds only the scenarios it has a share of, so its
    /// own list's positions are not the plan's.
    index: usize,
    share: WorkerPlan,
    schedule: Schedule,
    /// The tag of each step (a flow step's phases follow its own).
    step_tags: Vec<usize>,
    /// The tag dropped iterations are counted under.
    drop_tag: usize,
    /// Each step's request, encoded once (`None`: a template, rendered per iteration).
    requests: Vec<Option<Bytes>>,
    /// Per step: whether its checks/extractions need the response (body, head) captured.
    captures: Vec<(bool, bool)>,
    /// The tag of the whole iteration (multi-step scenarios).
    iteration_tag: Option<usize>,
    /// Each static request in HTTP/2 form, converted once (when the run may speak HTTP/2).
    h2_requests: Vec<Option<H2Request>>,
}

/// Which protocol a worker's connections speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    H1,
    H2,
    /// `https://` without a version flag: the first connection's ALPN decides.
    Undecided,
}

/// One of a worker's HTTP/2 connections, shared by the slots mapped to it.
enum Entry {
    Empty,
    /// A slot is opening it; the others wait to be notified rather than open their own.
    Connecting(Rc<tokio::sync::Notify>),
    /// Open, with a generation number so a slot only ever replaces the connection it saw fail.
    Ready(u64, http2::H2Conn),
}

/// What a slot gets when it asks for an HTTP/2 connection.
enum Got {
    /// Connection `gen`, and a handle to it.
    H2(u64, http2::H2Conn),
    /// The server picked HTTP/1.1 (ALPN): this new connection, or `None` to use the pool.
    H1(Option<Conn>),
}

/// Resets an entry left `Connecting` (the connecting slot failed or was cancelled) and wakes the
/// slots waiting on it.
struct ConnectingGuard<'w> {
    entries: &'w RefCell<Vec<Entry>>,
    idx: usize,
    notify: Rc<tokio::sync::Notify>,
}

impl Drop for ConnectingGuard<'_> {
    fn drop(&mut self) {
        let mut entries = self.entries.borrow_mut();
        if matches!(entries[self.idx], Entry::Connecting(_)) {
            entries[self.idx] = Entry::Empty;
        }
        self.notify.notify_waiters();
    }
}

/// A worker's state, shared by its slots on one thread.
struct Worker {
    plan: Arc<Plan>,
    addr: SocketAddr,
    proxy: Option<SocketAddr>,
    tls: Option<tls::TlsClient>,
    scenarios: Vec<ScenarioRun>,
    /// Wakes slots when their ticks are due (precisely: see `schedule::Waiter`).
    waiter: Waiter,
    recorder: RefCell<Recorder>,
    /// Idle connections, most recently used last: a slot takes the warmest one, so a low rate keeps
    /// reusing a few connections instead of opening one per slot. Holds at most the worker's
    /// connections (its capacity), so pushing never allocates.
    pool: RefCell<Vec<Conn>>,
    mode: Cell<Mode>,
    /// HTTP/2 connections (slot `id` uses entry `id % len`), opened as slots first need them.
    h2: RefCell<Vec<Entry>>,
    /// Generation of the newest HTTP/2 connection.
    h2_gen: Cell<u64>,
    /// Runs flow steps (see `step`).
    flows: Option<Arc<dyn step::FlowRunner>>,
    /// Each step's first failing request, for the diagnosis.
    examples: Examples,
}

/// `fut`, or a timeout once `deadline` (if any) passes.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, ErrorKind> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .map_err(|_| ErrorKind::Timeout),
        None => Ok(fut.await),
    }
}

/// Per tag, whether this worker has kept its first failing request (slot.rs): none yet, wanted (a
/// failure was seen before its response could be kept), or done. Only failures cost anything.
struct Examples {
    state: RefCell<Vec<u8>>,
    /// What the last TLS handshake failure said (the certificate or alert reason).
    tls_detail: RefCell<Option<String>>,
}

const EXAMPLE_WANTED: u8 = 1;
const EXAMPLE_DONE: u8 = 2;
/// Bytes of a failing response's body an example keeps.
const EXAMPLE_BODY: usize = 200;

impl Examples {
    fn new(n_tags: usize) -> Examples {
        Examples {
            state: RefCell::new(vec![0; n_tags]),
            tls_detail: RefCell::new(None),
        }
    }

    fn get(&self, tag: usize) -> u8 {
        self.state
            .borrow()
            .get(tag)
            .copied()
            .unwrap_or(EXAMPLE_DONE)
    }

    fn wants(&self, tag: usize) -> bool {
        self.get(tag) == EXAMPLE_WANTED
    }

    fn done(&self, tag: usize) -> bool {
        self.get(tag) == EXAMPLE_DONE
    }

    /// The example of a request that could not be made (a templated gRPC message that rendered to
    /// something its type cannot hold): the tag has its example from now on.
    fn unencodable(&self, tag: usize, path: &str, why: String) -> crate::aggregate::FailureExample {
        if let Some(s) = self.state.borrow_mut().get_mut(tag) {
            *s = EXAMPLE_DONE;
        }
        crate::aggregate::FailureExample {
            request: format!("POST {path}"),
            outcome: ErrorKind::BadMessage.name().to_string(),
            body: String::new(),
            retry_after: None,
            detail: Some(why),
        }
    }

    fn want(&self, tag: usize) {
        if let Some(s) = self.state.borrow_mut().get_mut(tag) {
            *s = EXAMPLE_WANTED;
        }
    }

    /// The example of a failed request (its response in `capture` when it had one); the tag has
    /// its example from now on.
    fn example(
        &self,
        tag: usize,
        method: &str,
        path: &[u8],
        outcome: Outcome,
        capture: &Capture,
    ) -> crate::aggregate::FailureExample {
        if let Some(s) = self.state.borrow_mut().get_mut(tag) {
            *s = EXAMPLE_DONE;
        }
        let (outcome, body, retry_after, detail) = match outcome {
            Outcome::Status(code) => (
                code.to_string(),
                String::from_utf8_lossy(&capture.body[..capture.body.len().min(EXAMPLE_BODY)])
                    .into_owned(),
                crate::headers::header_value(&capture.head, "retry-after").map(str::to_string),
                None,
            ),
            Outcome::Grpc(code) => (
                format!("grpc {}", crate::sample::grpc_code_name(code)),
                String::new(),
                None,
                None,
            ),
            Outcome::Delivered => ("delivered".into(), String::new(), None, None),
            Outcome::WsClose(code) => {
                (format!("websocket close {code}"), String::new(), None, None)
            }
            Outcome::Error(kind) => (
                kind.name().to_string(),
                String::new(),
                None,
                (kind == ErrorKind::Tls)
                    .then(|| self.tls_detail.borrow_mut().take())
                    .flatten(),
            ),
            Outcome::Dropped => ("dropped".into(), String::new(), None, None),
        };
        crate::aggregate::FailureExample {
            request: format!("{method} {}", String::from_utf8_lossy(path)),
            outcome,
            body,
            retry_after,
            detail,
        }
    }
}

impl Worker {
    fn new(index: usize, run: &Run, recorder: Recorder) -> Worker {
        let plan = Arc::clone(&run.plan);
        let mut scenarios = Vec::new();
        for (sc, scenario) in plan.scenarios.iter().enumerate() {
            let Some(share) = plan.worker(sc, index) else {
                continue;
            };
            let requests: Vec<Option<Bytes>> = scenario
                .steps
                .iter()
                .map(|st| {
                    (st.template.is_none()
                        && st.flow.is_none()
                        && st.ws.is_none()
                        && st.sse.is_none())
                    .then(|| http1::encode_request(&st.request, &plan.target, plan.keepalive))
                })
                .collect();
            let may_h2 = plan.http.version != HttpVersion::Http1;
            let h2_requests = requests
                .iter()
                .map(|r: &Option<Bytes>| {
                    r.as_ref()
                        .filter(|_| may_h2)
                        .and_then(|r| H2Request::parse(r, &plan.target).ok())
                })
                .collect();
            scenarios.push(ScenarioRun {
                index: sc,
                h2_requests,
                captures: scenario.steps.iter().map(Step::needs_capture).collect(),
                iteration_tag: plan.iteration_tag(sc),
                share,
                schedule: Schedule::new(
                    scenario,
                    &share,
                    run.start + scenario.start_after,
                    plan.seed,
                ),
                step_tags: plan.step_tags(sc),
                drop_tag: plan.drop_tag(sc),
                requests,
            });
        }
        let n_slots = scenarios.iter().map(|s| s.share.n_slots).sum();
        // A pull's lanes may each hold a connection at once.
        let lanes = plan
            .scenarios
            .iter()
            .flat_map(|s| &s.steps)
            .filter_map(|st| match st.flow.as_deref() {
                Some(crate::plan::flow::Flow::Pull(p)) => Some(p.parallel),
                _ => None,
            })
            .max()
            .unwrap_or(1);
        let n_connections: usize = scenarios
            .iter()
            .map(|s| s.share.n_connections * lanes)
            .sum();
        let mode = match (plan.http.version, plan.target.tls) {
            (HttpVersion::Http2, _) => Mode::H2,
            (HttpVersion::Auto, true) => Mode::Undecided,
            _ => Mode::H1,
        };
        let n_h2 = match mode {
            Mode::H1 => 0,
            _ => plan.worker_h2_connections(index, n_slots),
        };
        Worker {
            mode: Cell::new(mode),
            h2: RefCell::new((0..n_h2).map(|_| Entry::Empty).collect()),
            h2_gen: Cell::new(0),
            addr: run.addr,
            proxy: run.proxy,
            tls: run.tls.clone(),
            flows: run.flows.clone(),
            examples: Examples::new(plan.tag_specs().len()),
            scenarios,
            waiter: Waiter::for_worker(n_slots, plan.timer_slack),
            recorder: RefCell::new(recorder),
            pool: RefCell::new(Vec::with_capacity(n_connections)),
            plan,
        }
    }

    /// Sends `request` (tagged `tag`; HTTP/1.1-encoded, and in HTTP/2 form if converted before) for
    /// slot `slot` at (or after) `intended` and measures it. Never fails: failures are samples.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        slot: usize,
        tag: usize,
        request: &[u8],
        h2: Option<&H2Request>,
        head_only: bool,
        intended: Instant,
        capture: Option<&mut Capture>,
    ) -> Sample {
        self.recorder.borrow_mut().started(Instant::now());
        let mut s = Sample::new(tag as u16, intended);
        let deadline = tokio::time::Instant::now() + self.plan.timeout;
        let attempt = async {
            if self.mode.get() != Mode::H1 {
                return self
                    .attempt_h2(slot, request, h2, head_only, capture, &mut s)
                    .await;
            }
            let mut conn = self.pool.borrow_mut().pop();
            let r = self
                .attempt_h1(&mut conn, request, head_only, capture, &mut s)
                .await;
            if let Some(c) = conn {
                self.pool.borrow_mut().push(c);
            }
            r
        };
        // On a timeout the attempt is dropped with its connection: mid-exchange, it cannot be reused.
        let result = tokio::time::timeout_at(deadline, attempt).await;
        s.done = Instant::now();
        s.outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(kind)) => Outcome::Error(kind),
            Err(_elapsed) => Outcome::Error(ErrorKind::Timeout),
        };
        s
    }

    /// Opens a connection (TCP, and TLS for `https://`), timing both into the sample. `true` when it
    /// speaks HTTP/2: h2 by ALPN, or prior knowledge on cleartext.
    async fn open(&self, s: &mut Sample) -> Result<(http1::Stream, bool), ErrorKind> {
        let t0 = Instant::now();
        let bound = self.plan.http.connect_timeout;
        let deadline = bound.map(|b| tokio::time::Instant::from_std(t0 + b));
        if let Some(path) = &self.plan.target.unix_socket {
            let unix = within(deadline, tokio::net::UnixStream::connect(path))
                .await?
                .map_err(|e| ErrorKind::from_io(&e))?;
            s.connect = Some(t0.elapsed());
            return Ok((
                http1::Stream::Unix(unix),
                self.plan.http.version == HttpVersion::Http2,
            ));
        }
        let tcp = match self.proxy {
            Some(proxy) => {
                let host = &self.plan.target.host;
                let authority = match host.contains(':') {
                    true => format!("[{host}]:{}", self.plan.target.port),
                    false => format!("{host}:{}", self.plan.target.port),
                };
                within(deadline, connect::connect_via(proxy, &authority)).await??
            }
            None => within(deadline, connect::connect(self.addr))
                .await?
                .map_err(|e| ErrorKind::from_io(&e))?,
        };
        s.connect = Some(t0.elapsed());
        let Some(tls) = &self.tls else {
            return Ok((
                http1::Stream::Plain(tcp),
                self.plan.http.version == HttpVersion::Http2,
            ));
        };
        let (stream, took, resumed, n) =
            within(deadline, tls.handshake(tcp)).await?.map_err(|e| {
                // Kept for the diagnosis' example (only failures pay for the string).
                self.examples.tls_detail.replace(Some(e.to_string()));
                if tls::is_no_application_protocol(&e) {
                    // We offered only what the flags allow (h2 for --http2) and the server has none.
                    return ErrorKind::NoH2;
                }
                match http1::classify(&e) {
                    // A peer that hangs up mid-handshake failed TLS, not HTTP.
                    ErrorKind::Closed | ErrorKind::Other | ErrorKind::Protocol => ErrorKind::Tls,
                    kind => kind,
                }
            })?;
        s.tls = Some(TlsHandshake {
            took,
            resumed,
            version: n.version,
            cipher: n.cipher,
            alpn: n.alpn,
        });
        let h2 = n.alpn == "h2";
        if !h2 && self.plan.http.version == HttpVersion::Http2 {
            return Err(ErrorKind::NoH2);
        }
        Ok((http1::Stream::Tls(Box::new(stream)), h2))
    }

    /// The HTTP/2 connection of entry `idx`: the open one, or one this slot opens while the slots
    /// sharing it wait (so a burst of slots opens one connection, not one each).
    async fn h2_connection(&self, idx: usize, s: &mut Sample) -> Result<Got, ErrorKind> {
        loop {
            if self.mode.get() == Mode::H1 {
                return Ok(Got::H1(None));
            }
            let waiting = match &self.h2.borrow()[idx] {
                Entry::Ready(gen, conn) => return Ok(Got::H2(*gen, conn.clone())),
                Entry::Connecting(n) => Some(Rc::clone(n)),
                Entry::Empty => None,
            };
            if let Some(n) = waiting {
                // Registered on creation, before anything can notify.
                n.notified().await;
                continue;
            }
            let notify = Rc::new(tokio::sync::Notify::new());
            self.h2.borrow_mut()[idx] = Entry::Connecting(Rc::clone(&notify));
            let _guard = ConnectingGuard {
                entries: &self.h2,
                idx,
                notify,
            };
            let (stream, is_h2) = self.open(s).await?;
            if !is_h2 {
                // The server picked HTTP/1.1: so does the whole worker from now on.
                self.mode.set(Mode::H1);
                return Ok(Got::H1(Some(Conn::new(stream))));
            }
            self.mode.set(Mode::H2);
            let conn = http2::handshake(stream, self.plan.http.streams);
            let gen = self.h2_gen.get() + 1;
            self.h2_gen.set(gen);
            self.h2.borrow_mut()[idx] = Entry::Ready(gen, conn.clone());
            return Ok(Got::H2(gen, conn));
        }
    }

    /// Forgets HTTP/2 connection `gen` of entry `idx` (failed, or no keep-alive), unless a newer one
    /// already replaced it. Streams still on it finish; its task ends with the last of them.
    fn drop_h2(&self, idx: usize, gen: u64) {
        let mut entries = self.h2.borrow_mut();
        if matches!(entries[idx], Entry::Ready(g, _) if g == gen) {
            entries[idx] = Entry::Empty;
        }
    }

    /// One request over HTTP/2 on the slot's shared connection. A request the protocol says was not
    /// processed (REFUSED_STREAM, a graceful GOAWAY, a connection that died before it was sent) is
    /// sent again, up to [`MAX_H2_RETRIES`] times; anything else counts.
    async fn attempt_h2(
        &self,
        slot: usize,
        request: &[u8],
        h2: Option<&H2Request>,
        head_only: bool,
        mut capture: Option<&mut Capture>,
        s: &mut Sample,
    ) -> Result<Outcome, ErrorKind> {
        let idx = slot % self.h2.borrow().len().max(1);
        let mut parsed: Option<H2Request> = None;
        let mut retries = 0;
        loop {
            let (gen, conn) = match self.h2_connection(idx, s).await? {
                // Opening it would have timed the connect into the sample.
                Got::H2(gen, conn) => {
                    s.reused = s.connect.is_none();
                    (gen, conn)
                }
                Got::H1(conn) => {
                    let mut conn = conn.or_else(|| self.pool.borrow_mut().pop());
                    let r = self
                        .attempt_h1(&mut conn, request, head_only, capture, s)
                        .await;
                    if let Some(c) = conn {
                        self.pool.borrow_mut().push(c);
                    }
                    return r;
                }
            };
            if h2.is_none() && parsed.is_none() {
                // A templated request: converted per send.
                let p =
                    H2Request::parse(request, &self.plan.target).map_err(|_| ErrorKind::Other)?;
                parsed = Some(p);
            }
            let Some(r) = h2.or(parsed.as_ref()) else {
                return Err(ErrorKind::Other);
            };
            s.bytes_out = r.body.len() as u64;
            let result = http2::exchange(&conn, r, capture.as_deref_mut(), &mut s.sent).await;
            match result {
                Ok(resp) => {
                    s.first_byte = Some(resp.first_byte);
                    s.bytes_in = resp.bytes_in;
                    s.body_bytes = resp.body_bytes;
                    s.coding = resp.coding;
                    s.decoded_bytes = resp.decoded_bytes;
                    if !self.plan.keepalive {
                        self.drop_h2(idx, gen);
                    }
                    if r.grpc {
                        return Ok(grpc::outcome(
                            resp.status,
                            resp.grpc_status,
                            resp.grpc_truncated,
                        ));
                    }
                    return Ok(Outcome::Status(resp.status));
                }
                Err(f) => {
                    if f.conn_dead {
                        self.drop_h2(idx, gen);
                    }
                    if f.unprocessed && retries < MAX_H2_RETRIES {
                        retries += 1;
                        continue;
                    }
                    s.first_byte = f.first_byte;
                    s.bytes_in = f.bytes_in;
                    return Err(f.kind);
                }
            }
        }
    }

    /// HTTP/1.1: connects if needed and runs the exchange, filling in the sample's timings as they
    /// happen (so a timeout keeps what was measured before it). A keep-alive connection the server
    /// closed while idle is retried once on a new connection: that request never reached the server.
    async fn attempt_h1(
        &self,
        conn: &mut Option<Conn>,
        request: &[u8],
        head_only: bool,
        mut capture: Option<&mut Capture>,
        s: &mut Sample,
    ) -> Result<Outcome, ErrorKind> {
        let mut may_retry = true;
        loop {
            let reused = conn.is_some();
            let c = match conn {
                Some(c) => c,
                // In this mode the server speaks HTTP/1.1 (it picked it by ALPN, or we asked only
                // for it).
                None => conn.insert(Conn::new(self.open(s).await?.0)),
            };
            s.reused = reused;
            s.sent = Instant::now();
            s.bytes_out = request.len() as u64;
            match c.exchange(request, head_only, capture.as_deref_mut()).await {
                Ok(r) => {
                    s.first_byte = Some(r.first_byte);
                    s.bytes_in = r.bytes_in;
                    s.body_bytes = r.body_bytes;
                    s.coding = r.coding;
                    s.decoded_bytes = r.decoded_bytes;
                    if !r.reusable || !self.plan.keepalive {
                        *conn = None;
                    }
                    return Ok(Outcome::Status(r.status));
                }
                Err(f) => {
                    *conn = None;
                    let stale = reused
                        && f.first_byte.is_none()
                        && matches!(f.kind, ErrorKind::Closed | ErrorKind::Reset);
                    if stale && may_retry {
                        may_retry = false;
                        continue;
                    }
                    s.first_byte = f.first_byte;
                    s.bytes_in = f.bytes_in;
                    return Err(f.kind);
                }
            }
        }
    }
}

/// A slot's way to its worker's connections, for a registry flow that sends several requests per
/// step, some at once (each then on its own connection, or its own stream). Every request it sends
/// is recorded under the tag it names.
pub struct Io<'w> {
    worker: &'w Worker,
    slot: usize,
}

impl Io<'_> {
    pub fn target(&self) -> &crate::plan::Target {
        &self.worker.plan.target
    }

    pub fn keepalive(&self) -> bool {
        self.worker.plan.keepalive
    }

    /// Sends an HTTP/1.1-encoded request intended at `intended`, measured as a request of `tag`.
    /// The caller records the sample (after judging it: a digest mismatch, an expected challenge).
    pub async fn send(
        &self,
        tag: usize,
        request: &[u8],
        head_only: bool,
        intended: Instant,
        capture: &mut Capture,
    ) -> Sample {
        self.worker
            .send(
                self.slot,
                tag,
                request,
                None,
                head_only,
                intended,
                Some(capture),
            )
            .await
    }

    /// Records a request's sample; a 401 with `challenge` set as the expected auth challenge.
    pub fn record(&self, s: &Sample, challenge: bool) {
        let mut recorder = self.worker.recorder.borrow_mut();
        if challenge && s.outcome == Outcome::Status(401) {
            recorder.record_challenge(s);
        } else {
            recorder.record(s);
        }
    }

    /// Records a whole operation (an image pull) under its step's tag.
    pub fn record_whole(&self, s: &Sample) {
        self.worker.recorder.borrow_mut().record_iteration(s);
    }
}
