//! Carrying out the plan's events beside the load: each on its own task (on a thread and runtime
//! apart from the workers), at its times; the windows it opens are probed until they converge, and
//! the shared `Windows` state tells the workers' recorders which are open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::engine::tls::TlsClient;
use crate::plan::check::Response;
use crate::plan::event::{Action, Event, Window};
use crate::plan::Plan;
use crate::registry::client::{Client, Reply};
use crate::report::{EventLog, EventReport, Occurrence, WindowRun};
use crate::schedule::windows::Windows;

pub(crate) struct EventRunner {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<EventLog>,
}

/// What one event task needs.
struct Ctx {
    plan: Arc<Plan>,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    windows: Arc<Windows>,
    start: Instant,
    /// The schedule's end: no occurrence is due after it.
    end: Option<Duration>,
}

/// Starts the events of `plan` at `start` (the run's time zero).
pub(crate) fn start(
    plan: Arc<Plan>,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    windows: Arc<Windows>,
    start: Instant,
) -> std::io::Result<EventRunner> {
    let (stop, stopped) = watch::channel(false);
    let end = plan.scheduled_end();
    let cx = Arc::new(Ctx {
        plan,
        addr,
        tls,
        windows,
        start,
        end,
    });
    let thread = std::thread::Builder::new()
        .name("regbench-events".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("regbench: cannot start the events' runtime: {e}");
                    return EventLog::default();
                }
            };
            rt.block_on(run_all(cx, stopped))
        })?;
    Ok(EventRunner { stop, thread })
}

impl EventRunner {
    /// Stops what is still going (open windows close now, marked unconverged) and hands over the log.
    pub(crate) fn finish(self) -> EventLog {
        let _ = self.stop.send(true);
        self.thread.join().unwrap_or_default()
    }
}

async fn run_all(cx: Arc<Ctx>, stopped: watch::Receiver<bool>) -> EventLog {
    let mut first_window = 0;
    let mut tasks = Vec::new();
    for (i, e) in cx.plan.events.iter().enumerate() {
        let cx = Arc::clone(&cx);
        let stopped = stopped.clone();
        let base = first_window;
        first_window += e.windows.len();
        tasks.push(tokio::spawn(async move {
            let plan = Arc::clone(&cx.plan);
            run_event(&cx, &plan.events[i], base, stopped).await
        }));
    }
    let mut log = EventLog::default();
    for t in tasks {
        if let Ok(r) = t.await {
            log.events.push(r);
        }
    }
    log
}

/// True once the run is stopping.
fn stopping(s: &watch::Receiver<bool>) -> bool {
    *s.borrow()
}

async fn run_event(
    cx: &Arc<Ctx>,
    e: &Event,
    first_window: usize,
    mut stopped: watch::Receiver<bool>,
) -> EventReport {
    let mut report = EventReport {
        name: e.name.clone(),
        windows: e.windows.iter().map(|w| w.name.clone()).collect(),
        occurrences: Vec::new(),
        n_skipped: 0,
    };
    let far = Duration::from_secs(365 * 86400);
    let mut due = e.due(cx.end.unwrap_or(far)).peekable();
    let mut n = 0;
    while let Some(at) = due.next() {
        let when = cx.start + at;
        tokio::select! {
            _ = tokio::time::sleep_until(when.into()) => {}
            _ = stopped.changed() => {}
        }
        if stopping(&stopped) {
            break;
        }
        n += 1;
        report
            .occurrences
            .push(occur(cx, e, first_window, n, at, &mut stopped).await);
        // Occurrences never overlap: those that fell due meanwhile are skipped and counted.
        let now = cx.start.elapsed();
        while due.peek().is_some_and(|next| *next < now) {
            due.next();
            report.n_skipped += 1;
        }
    }
    report
}

/// A probe's client: one connection, reopened when the target drops it.
fn client(cx: &Ctx) -> Client {
    Client::new(cx.plan.target.clone(), cx.addr, cx.tls.clone(), None)
}

async fn ask(c: &mut Client, req: &crate::plan::RequestSpec) -> Option<Reply> {
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    c.request(&req.method, &req.path, &headers, &req.body, "")
        .await
        .ok()
}

async fn occur(
    cx: &Arc<Ctx>,
    e: &Event,
    first_window: usize,
    n: u64,
    due: Duration,
    stopped: &mut watch::Receiver<bool>,
) -> Occurrence {
    // What the probes saw just before the event, for `changed` conditions.
    let mut baselines = Vec::new();
    for w in &e.windows {
        let mut c = client(cx);
        let before = match w.needs_baseline() {
            true => ask(&mut c, &w.probe).await,
            false => None,
        };
        baselines.push((c, before));
    }
    let fired = Instant::now();
    let fired_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for k in 0..e.windows.len() {
        cx.windows.open(first_window + k, fired);
    }
    let action = act(cx, &e.action).await;
    // The windows are probed together, each on its own task.
    let probes: Vec<_> = e
        .windows
        .iter()
        .zip(baselines)
        .enumerate()
        .map(|(k, (w, (c, before)))| {
            let (cx, w, stopped) = (Arc::clone(cx), w.clone(), stopped.clone());
            tokio::spawn(async move {
                probe(&cx, &w, first_window + k, fired, c, before, stopped).await
            })
        })
        .collect();
    let mut windows = Vec::new();
    for (p, w) in probes.into_iter().zip(&e.windows) {
        windows.push(p.await.unwrap_or_else(|_| WindowRun {
            name: w.name.clone(),
            duration: Duration::ZERO,
            converged: false,
            n_probes: 0,
        }));
    }
    Occurrence {
        n,
        due,
        fired: fired.saturating_duration_since(cx.start),
        fired_unix_ms,
        action,
        windows,
    }
}

/// The action; `Err` says why it failed.
async fn act(cx: &Ctx, action: &Action) -> Result<(), String> {
    match action {
        Action::Request { request, checks } => {
            let sent = Instant::now();
            let reply = ask(&mut client(cx), request)
                .await
                .ok_or_else(|| format!("{} {}: no response", request.method, request.path))?;
            let r = Response::new(
                Some(reply.status),
                reply.head(),
                &reply.body,
                sent.elapsed(),
            );
            match checks.iter().find(|c| !c.passes(&r)) {
                Some(c) => Err(format!(
                    "{} {}: answered {}, check failed: {}",
                    request.method, request.path, reply.status, c.name
                )),
                None => Ok(()),
            }
        }
        Action::Write { path, content } => crate::util::write_atomic(path, content.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        Action::Command { argv, timeout } => run_command(argv, *timeout).await,
    }
}

async fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} exited with {status}", argv[0])),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} ran longer than {} and was killed",
                    argv[0],
                    crate::util::fmt_duration(timeout)
                ));
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => return Err(format!("{}: {e}", argv[0])),
        }
    }
}

/// Polls a window's probe until its conditions hold (closed at that answer), its timeout, or the
/// end of the run.
async fn probe(
    cx: &Ctx,
    w: &Window,
    k: usize,
    opened: Instant,
    mut c: Client,
    before: Option<Reply>,
    mut stopped: watch::Receiver<bool>,
) -> WindowRun {
    let baseline: Option<serde_json::Value> = before
        .as_ref()
        .and_then(|r| serde_json::from_slice(&r.body).ok());
    let mut n_probes = 0;
    loop {
        let sent = Instant::now();
        let reply = ask(&mut c, &w.probe).await;
        let answered = Instant::now();
        n_probes += 1;
        if let Some(r) = reply {
            if converged(w, &r, sent, &baseline, before.as_ref()) {
                let took = cx.windows.close(k, answered);
                return WindowRun {
                    name: w.name.clone(),
                    duration: took,
                    converged: true,
                    n_probes,
                };
            }
        }
        let next = answered + w.interval;
        let give_up = opened + w.timeout;
        tokio::select! {
            _ = tokio::time::sleep_until(next.min(give_up).into()) => {}
            _ = stopped.changed() => {}
        }
        if Instant::now() >= give_up || stopping(&stopped) {
            let took = cx.windows.close(k, Instant::now().min(give_up));
            return WindowRun {
                name: w.name.clone(),
                duration: took,
                converged: false,
                n_probes,
            };
        }
    }
}

fn converged(
    w: &Window,
    r: &Reply,
    sent: Instant,
    baseline: &Option<serde_json::Value>,
    before: Option<&Reply>,
) -> bool {
    let resp = Response::new(Some(r.status), r.head(), &r.body, sent.elapsed());
    if !w.until.iter().all(|c| c.passes(&resp)) {
        return false;
    }
    if w.body_changed && before.is_some_and(|b| b.body == r.body) {
        return false;
    }
    let header_moved =
        |h: &String| r.header(h).is_some() && r.header(h) != before.and_then(|b| b.header(h));
    if !w.header_changed.iter().all(header_moved) {
        return false;
    }
    if w.changed.is_empty() {
        return true;
    }
    let now: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
    w.changed.iter().all(|ptr| {
        let was = baseline.as_ref().and_then(|v| v.pointer(ptr));
        let is = now.as_ref().and_then(|v| v.pointer(ptr));
        is.is_some() && is != was
    })
}
