//! Stage: engine — protocol I/O. N worker threads, each with its own current-thread runtime, its own
//! connections, recorder and schedule: nothing shared and mutable between threads on the hot path, and
//! per request no lock, no channel, no allocation.
//!
//! Must not aggregate or print: it turns scheduled ticks into [`Sample`]s and hands them to its worker's
//! recorder.

pub mod connect;
pub mod http1;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc::UnboundedSender, watch};
use tokio::task::JoinSet;

use crate::aggregate::{Msg, Recorder, WorkerStats};
use crate::plan::Plan;
use crate::sample::{ErrorKind, Outcome, Sample};
use crate::schedule::ClosedSchedule;
use http1::Conn;

/// Everything a run's workers share, read-only.
pub struct Run {
    pub plan: Arc<Plan>,
    pub addr: SocketAddr,
    /// The run's time zero: every worker's first intended time.
    pub start: Instant,
    /// Becomes `true` to abandon the run (Ctrl-C): in-flight requests are dropped and counted.
    pub stop: watch::Receiver<bool>,
    pub sink: UnboundedSender<Msg>,
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
    let names: Vec<String> = run.plan.requests.iter().map(|r| r.name.clone()).collect();
    let recorder = Recorder::new(k, run.start, &names, run.sink.clone());
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
    let worker = Rc::new(Worker::new(k, run, recorder));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(Rc::clone(&worker), run));
    let stats = WorkerStats {
        cpu: crate::util::thread_usage().cpu,
        n_cancelled: worker.n_started.get() - worker.n_finished.get(),
    };
    worker.recorder.borrow_mut().finish(stats);
}

/// Runs the worker's virtual users until the schedule ends or the run is stopped.
async fn drive(worker: Rc<Worker>, run: &Run) {
    let wp = run.plan.worker(worker.index);
    let mut users = JoinSet::new();
    for i in 0..wp.n_connections {
        // Global index of this connection, so tag rotation differs between all connections.
        let vu = worker.index + i * run.plan.n_workers;
        users.spawn_local(virtual_user(Rc::clone(&worker), vu));
    }
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
        // A dropped sender means nobody can stop us: wait for the users instead.
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = async { while users.join_next().await.is_some() {} } => {}
        _ = stopped => users.abort_all(),
    }
    ticker.abort();
}

/// A worker's state, shared by its virtual users on one thread.
struct Worker {
    index: usize,
    plan: Arc<Plan>,
    addr: SocketAddr,
    /// Each request of the plan, encoded once.
    requests: Vec<Bytes>,
    schedule: ClosedSchedule,
    recorder: RefCell<Recorder>,
    n_started: Cell<u64>,
    n_finished: Cell<u64>,
}

impl Worker {
    fn new(index: usize, run: &Run, recorder: Recorder) -> Worker {
        let plan = Arc::clone(&run.plan);
        let requests = plan
            .requests
            .iter()
            .map(|r| http1::encode_request(r, &plan.target, plan.keepalive))
            .collect();
        let schedule = ClosedSchedule::new(&plan.worker(index), &plan.stop, run.start, plan.think);
        Worker {
            index,
            addr: run.addr,
            requests,
            schedule,
            recorder: RefCell::new(recorder),
            n_started: Cell::new(0),
            n_finished: Cell::new(0),
            plan,
        }
    }

    /// Sends request `tag` at (or after) `intended` and measures it. Never fails: failures are samples.
    async fn send(&self, conn: &mut Option<Conn>, tag: usize, intended: Instant) -> Sample {
        self.n_started.set(self.n_started.get() + 1);
        let mut s = Sample {
            tag: tag as u16,
            intended,
            sent: intended,
            first_byte: None,
            done: intended,
            outcome: Outcome::Error(ErrorKind::Other),
            bytes_in: 0,
            body_bytes: 0,
            bytes_out: 0,
            connect: None,
        };
        let deadline = tokio::time::Instant::now() + self.plan.timeout;
        let result = tokio::time::timeout_at(deadline, self.attempt(conn, tag, &mut s)).await;
        s.done = Instant::now();
        s.outcome = match result {
            Ok(Ok(status)) => Outcome::Status(status),
            Ok(Err(kind)) => Outcome::Error(kind),
            Err(_elapsed) => {
                // The connection is mid-exchange; it cannot be reused.
                *conn = None;
                Outcome::Error(ErrorKind::Timeout)
            }
        };
        s
    }

    /// Connects if needed and runs the exchange, filling in the sample's timings as they happen (so a
    /// timeout keeps what was measured before it). A keep-alive connection the server closed while idle
    /// is retried once on a new connection: that request never reached the server.
    async fn attempt(
        &self,
        conn: &mut Option<Conn>,
        tag: usize,
        s: &mut Sample,
    ) -> Result<u16, ErrorKind> {
        let request = &self.requests[tag];
        let head_only = self.plan.requests[tag].is_head();
        let mut may_retry = true;
        loop {
            let reused = conn.is_some();
            let c = match conn {
                Some(c) => c,
                None => {
                    let t0 = Instant::now();
                    let stream = connect::connect(self.addr)
                        .await
                        .map_err(|e| ErrorKind::from_io(&e))?;
                    s.connect = Some(t0.elapsed());
                    conn.insert(Conn::new(stream))
                }
            };
            s.sent = Instant::now();
            s.bytes_out = request.len() as u64;
            match c.exchange(request, head_only).await {
                Ok(r) => {
                    s.first_byte = Some(r.first_byte);
                    s.bytes_in = r.bytes_in;
                    s.body_bytes = r.body_bytes;
                    if !r.reusable || !self.plan.keepalive {
                        *conn = None;
                    }
                    return Ok(r.status);
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

/// One connection's closed loop: wait for the schedule, send, record, repeat.
async fn virtual_user(worker: Rc<Worker>, vu: usize) {
    let n_requests = worker.requests.len();
    let mut tag = vu % n_requests;
    let mut conn: Option<Conn> = None;
    let mut prev_done = None;
    while let Some(intended) = worker.schedule.next(prev_done).await {
        let sample = worker.send(&mut conn, tag, intended).await;
        worker.recorder.borrow_mut().record(&sample);
        worker.n_finished.set(worker.n_finished.get() + 1);
        prev_done = Some(sample.done);
        tag += 1;
        if tag == n_requests {
            tag = 0;
        }
    }
}
