//! Stage: engine — protocol I/O. N worker threads, each with its own current-thread runtime, its own
//! connections, recorder and schedule: nothing shared and mutable between threads on the hot path, and
//! per request no lock, no channel, no allocation.
//!
//! Must not aggregate or print: it turns scheduled ticks into [`Sample`]s and hands them to its worker's
//! recorder.

pub mod connect;
pub mod http1;

use std::cell::RefCell;
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
use crate::schedule::{Schedule, Slot, Tick, Waiter};
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
    // The precise timer registers with this runtime's reactor, so build the worker inside it.
    let worker = {
        let _in_runtime = rt.enter();
        Rc::new(Worker::new(k, run, recorder))
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, drive(Rc::clone(&worker), run));
    let mut recorder = worker.recorder.borrow_mut();
    let stats = WorkerStats {
        cpu: crate::util::thread_usage().cpu,
        n_cancelled: recorder.inflight(),
        n_queued: worker.schedule.n_queued(),
    };
    recorder.finish(stats);
}

/// Runs the worker's virtual users until the schedule ends or the run is stopped.
async fn drive(worker: Rc<Worker>, run: &Run) {
    let wp = run.plan.worker(worker.index);
    let mut users = JoinSet::new();
    for j in 0..wp.n_slots as u64 {
        let slot = Slot {
            id: j as usize,
            // invariant: j < n_slots ≤ the stripe's count below n_connections, so no overflow.
            global: wp.stripe.nth(j).unwrap_or(u64::MAX),
            prev_done: None,
            n_given: 0,
        };
        users.spawn_local(run_slot(Rc::clone(&worker), slot));
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
    timer.abort();
}

/// A worker's state, shared by its slots on one thread.
struct Worker {
    index: usize,
    plan: Arc<Plan>,
    addr: SocketAddr,
    /// Each request of the plan, encoded once.
    requests: Vec<Bytes>,
    schedule: Schedule,
    /// Wakes slots when their ticks are due (precisely: see `schedule::Waiter`).
    waiter: Waiter,
    recorder: RefCell<Recorder>,
    /// Idle connections, most recently used last: a slot takes the warmest one, so a low rate keeps
    /// reusing a few connections instead of opening one per slot. Holds at most the worker's
    /// connections (its capacity), so pushing never allocates.
    pool: RefCell<Vec<Conn>>,
}

impl Worker {
    fn new(index: usize, run: &Run, recorder: Recorder) -> Worker {
        let plan = Arc::clone(&run.plan);
        let requests = plan
            .requests
            .iter()
            .map(|r| http1::encode_request(r, &plan.target, plan.keepalive))
            .collect();
        let wp = plan.worker(index);
        let schedule = Schedule::new(&plan, &wp, run.start);
        Worker {
            index,
            addr: run.addr,
            requests,
            schedule,
            waiter: Waiter::for_worker(wp.n_slots),
            recorder: RefCell::new(recorder),
            pool: RefCell::new(Vec::with_capacity(wp.n_connections)),
            plan,
        }
    }

    /// Sends request `tag` at (or after) `intended` and measures it. Never fails: failures are samples.
    async fn send(&self, conn: &mut Option<Conn>, tag: usize, intended: Instant) -> Sample {
        self.recorder.borrow_mut().started();
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

/// One slot's loop: wait for the schedule, send on a pooled (or new) connection, record, repeat. The
/// closed and open models differ only in their schedule.
async fn run_slot(worker: Rc<Worker>, mut slot: Slot) {
    let n_requests = worker.requests.len() as u64;
    while let Some(Tick { intended, n }) =
        worker.schedule.wait_next(&mut slot, &worker.waiter).await
    {
        let tag = (n % n_requests) as usize;
        if let Some(max) = worker.plan.max_lag {
            let now = Instant::now();
            if now.saturating_duration_since(intended) > max {
                worker
                    .recorder
                    .borrow_mut()
                    .record(&Sample::dropped(tag as u16, intended, now));
                continue;
            }
        }
        let mut conn = worker.pool.borrow_mut().pop();
        let sample = worker.send(&mut conn, tag, intended).await;
        if let Some(c) = conn {
            worker.pool.borrow_mut().push(c);
        }
        worker.recorder.borrow_mut().record(&sample);
        slot.prev_done = Some(sample.done);
    }
}
