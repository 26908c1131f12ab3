//! Stage: telemetry — the target's resources and metrics beside the load (`--watch-pid`,
//! `--watch-cmd`, `--scrape`, `[[watch]]`): one reading a second on a thread of its own, from
//! /proc of the watched processes and from their Prometheus endpoints, as per-second series.
//!
//! Must not import `engine` or `report`. Cheap by construction: a few small files and one scrape
//! per watch a second, nothing per request.

pub mod proc;
pub mod scrape;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::plan::watch::{Process, Watch};
use scrape::Observed;

/// How a series' values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// CPU cores (CPU-seconds per second).
    Cores,
    Bytes,
    Count,
    /// Events per second (a counter's rate).
    PerSecond,
    /// Seconds (a scraped latency quantile).
    Seconds,
    /// A share of the time (a cgroup's throttled seconds per second).
    Share,
    /// A scraped value with no known unit.
    Value,
}

impl Unit {
    pub const ALL: [Unit; 7] = [
        Unit::Cores,
        Unit::Bytes,
        Unit::Count,
        Unit::PerSecond,
        Unit::Seconds,
        Unit::Share,
        Unit::Value,
    ];

    /// The unit `name` names (the inverse of [`Unit::name`]).
    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Cores => "cores",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::PerSecond => "per_second",
            Unit::Seconds => "seconds",
            Unit::Share => "share",
            Unit::Value => "value",
        }
    }
}

/// One metric of one watch over the run: `(second, value)` — the value over [t, t+1) for rates,
/// at its end for levels.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub watch: String,
    /// A process metric (`rss`, `cpu`, … `watch::PROCESS_METRICS`), or a scrape's selector as
    /// written, with `.p50`/`.p95`/`.p99`/`.rate` for a histogram and `.pN` for a summary.
    pub name: String,
    pub unit: Unit,
    pub points: Vec<(u64, f64)>,
}

/// What happened to one watch.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WatchInfo {
    pub name: String,
    pub pids: Vec<u32>,
    /// A watched process that exited (or whose PID now belongs to another process): when, in
    /// seconds since the start.
    pub exited: Vec<(u32, f64)>,
    pub scrape: Option<String>,
    pub scrapes_ok: u64,
    pub scrapes_failed: u64,
    pub last_error: Option<String>,
    /// Selectors no scrape ever matched (a typo, or a metric this target does not export).
    pub never_seen: Vec<String>,
}

/// Everything watched during a run.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Telemetry {
    pub watches: Vec<WatchInfo>,
    pub series: Vec<Series>,
    /// CPU time the watching thread used, and over how long: its cost to the generator.
    pub cost_cpu: Duration,
    pub elapsed: Duration,
}

impl Telemetry {
    pub fn series(&self, watch: &str, name: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.watch == watch && s.name == name)
    }
}

/// How long one scrape may take: it shares the second with the other watches.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// The sampling thread; `finish` stops it and hands over what it saw.
pub struct Watcher {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// What it has seen so far: the run judges `abort_on_fail` thresholds on it each second.
    seen: Arc<Mutex<Telemetry>>,
}

/// A watch resolved for sampling: its PIDs, cgroup and scrape address.
struct Live {
    info: WatchInfo,
    procs: Vec<(u32, Option<proc::Reading>)>,
    cgroup: proc::Cgroup,
    cgroup_before: proc::CgroupReading,
    scrape: Option<(SocketAddr, crate::plan::watch::Scrape)>,
    /// Per selector, the previous scrape's observation (rates and interval quantiles need it).
    before: Vec<Option<Observed>>,
    seen: Vec<bool>,
}

/// Watches found and resolved, not yet sampling.
pub struct Prepared(Vec<Live>);

/// Finds the watches' processes and addresses (an error names what could not be found) and reads
/// them once as the baseline. Done before the run's clock starts: scanning /proc takes a while.
pub fn prepare(watches: &[Watch]) -> Result<Prepared, String> {
    let mut live = Vec::new();
    for w in watches {
        let pids = match &w.process {
            None => Vec::new(),
            Some(Process::Pid(pid)) => {
                if proc::read(*pid).is_none() {
                    return Err(format!("watch '{}': no process has PID {pid}", w.name));
                }
                vec![*pid]
            }
            Some(found) => {
                let (pids, missing) = match found {
                    Process::Command(name) => (
                        proc::find_by_name(name),
                        format!("is named '{name}' (check: pgrep -l {name})"),
                    ),
                    Process::CommandLine(text) => (
                        proc::find_by_cmdline(text),
                        format!("has '{text}' in its command line (check: pgrep -af '{text}')"),
                    ),
                    Process::Pid(_) => (Vec::new(), String::new()),
                };
                if pids.is_empty() {
                    return Err(format!("watch '{}': no running process {missing}", w.name));
                }
                pids
            }
        };
        let scrape = match &w.scrape {
            None => None,
            Some(s) => {
                let addr = (s.host.as_str(), s.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        format!("watch '{}': cannot resolve {}:{}", w.name, s.host, s.port)
                    })?;
                Some((addr, s.clone()))
            }
        };
        let cgroup = pids
            .first()
            .map(|p| proc::Cgroup::of(*p))
            .unwrap_or_default();
        let n_sel = w.scrape.as_ref().map_or(0, |s| s.metrics.len());
        live.push(Live {
            info: WatchInfo {
                name: w.name.clone(),
                pids: pids.clone(),
                scrape: w.scrape.as_ref().map(|s| s.url.clone()),
                ..WatchInfo::default()
            },
            procs: pids.iter().map(|&p| (p, proc::read(p))).collect(),
            cgroup_before: cgroup.read(),
            cgroup,
            scrape,
            before: vec![None; n_sel],
            seen: vec![false; n_sel],
        });
    }
    Ok(Prepared(live))
}

/// Samples each second from `start` on a thread of its own.
pub fn start(prepared: Prepared, start: Instant) -> Result<Watcher, String> {
    let live = prepared.0;
    let (stop, stopped) = mpsc::channel();
    let seen = Arc::new(Mutex::new(Telemetry::default()));
    let shared = Arc::clone(&seen);
    let thread = std::thread::Builder::new()
        .name("regbench-watch".into())
        .spawn(move || sample_loop(live, start, stopped, &shared))
        .map_err(|e| format!("cannot start the watching thread: {e}"))?;
    Ok(Watcher { stop, thread, seen })
}

impl Watcher {
    /// Calls `f` on what has been seen so far.
    pub fn peek<R>(&self, f: impl FnOnce(&Telemetry) -> R) -> R {
        match self.seen.lock() {
            Ok(t) => f(&t),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    pub fn finish(self) -> Telemetry {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        match Arc::try_unwrap(self.seen) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => shared.lock().map(|t| t.clone()).unwrap_or_default(),
        }
    }
}

/// Appends a second's new points (gathered without the lock: a scrape may take a while).
fn publish(shared: &Mutex<Telemetry>, fresh: Vec<Series>) {
    let mut tel = shared.lock().unwrap_or_else(|p| p.into_inner());
    for f in fresh {
        match tel
            .series
            .iter_mut()
            .find(|s| s.watch == f.watch && s.name == f.name)
        {
            Some(s) => s.points.extend(f.points),
            None => tel.series.push(f),
        }
    }
}

fn sample_loop(
    mut live: Vec<Live>,
    start: Instant,
    stopped: mpsc::Receiver<()>,
    shared: &Mutex<Telemetry>,
) {
    let began = Instant::now();
    // The baseline of the scrapes' counters, at the start.
    for w in &mut live {
        scrape_once(w, None, Duration::ZERO, &mut Vec::new());
    }
    let mut last = Instant::now();
    let mut sec: u64 = 1;
    loop {
        let due = start + Duration::from_secs(sec);
        match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
        let now = Instant::now();
        let dt = now.saturating_duration_since(last);
        last = now;
        // This reading covers [sec - 1, sec); a late wake-up (a stalled machine) skips to the
        // current second rather than filling seconds it did not see.
        let t = now.saturating_duration_since(start).as_secs().max(1) - 1;
        let mut fresh = Vec::new();
        for w in &mut live {
            sample_process(w, t, dt, start, &mut fresh);
            scrape_once(w, Some(t), dt, &mut fresh);
        }
        publish(shared, fresh);
        sec = t + 2;
    }
    let mut out = shared.lock().unwrap_or_else(|p| p.into_inner());
    out.watches = live
        .into_iter()
        .map(|mut w| {
            if let Some((_, s)) = &w.scrape {
                w.info.never_seen = s
                    .metrics
                    .iter()
                    .zip(&w.seen)
                    .filter(|(_, seen)| !**seen)
                    .map(|(m, _)| m.text.clone())
                    .collect();
            }
            w.info
        })
        .collect();
    out.cost_cpu = thread_cpu();
    out.elapsed = began.elapsed();
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    match rc {
        0 => Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
        _ => Duration::ZERO,
    }
}

fn push(series: &mut Vec<Series>, watch: &str, name: &str, unit: Unit, t: u64, v: f64) {
    if !v.is_finite() {
        return;
    }
    match series
        .iter_mut()
        .find(|s| s.watch == watch && s.name == name)
    {
        Some(s) => s.points.push((t, v)),
        None => series.push(Series {
            watch: watch.to_string(),
            name: name.to_string(),
            unit,
            points: vec![(t, v)],
        }),
    }
}

/// One second of a watch's processes: summed over them (a server and its workers are one target).
fn sample_process(w: &mut Live, t: u64, dt: Duration, start: Instant, series: &mut Vec<Series>) {
    if w.procs.is_empty() {
        return;
    }
    let secs = dt.as_secs_f64().max(1e-3);
    let (mut cpu, mut rss, mut peak, mut threads) = (0.0, 0u64, 0u64, 0u64);
    let (mut fds, mut vol, mut invol, mut alive) = (Some(0u64), 0.0, 0.0, 0);
    for (pid, before) in &mut w.procs {
        let Some(prev) = *before else { continue };
        let now = proc::read(*pid).filter(|r| r.start_ticks == prev.start_ticks);
        let Some(r) = now else {
            let at = start.elapsed().as_secs_f64();
            w.info.exited.push((*pid, at));
            *before = None;
            continue;
        };
        alive += 1;
        cpu += (r.cpu_s - prev.cpu_s).max(0.0) / secs;
        rss += r.rss;
        peak += r.rss_peak;
        threads += r.threads;
        fds = fds.zip(r.fds).map(|(a, b)| a + b);
        vol += r.ctx_voluntary.saturating_sub(prev.ctx_voluntary) as f64 / secs;
        invol += r.ctx_involuntary.saturating_sub(prev.ctx_involuntary) as f64 / secs;
        *before = Some(r);
    }
    if alive == 0 {
        return;
    }
    let name = w.info.name.clone();
    let mut put = |m: &str, unit, v: f64| push(series, &name, m, unit, t, v);
    put("cpu", Unit::Cores, cpu);
    put("rss", Unit::Bytes, rss as f64);
    put("rss_peak", Unit::Bytes, peak as f64);
    put("threads", Unit::Count, threads as f64);
    if let Some(fds) = fds {
        put("fds", Unit::Count, fds as f64);
    }
    put("ctx_voluntary", Unit::PerSecond, vol);
    put("ctx_involuntary", Unit::PerSecond, invol);
    let cg = w.cgroup.read();
    if let Some(m) = cg.memory {
        put("cgroup_memory", Unit::Bytes, m as f64);
    }
    if let (Some(now), Some(before)) = (cg.throttled_s, w.cgroup_before.throttled_s) {
        put(
            "cgroup_throttled",
            Unit::Share,
            (now - before).max(0.0) / secs,
        );
    }
    w.cgroup_before = cg;
}

/// Scrapes a watch's endpoint; `t: None` only sets the baseline. A failure is counted, not fatal.
fn scrape_once(w: &mut Live, t: Option<u64>, dt: Duration, series: &mut Vec<Series>) {
    let Some((addr, s)) = &w.scrape else { return };
    let text = match scrape::fetch(*addr, s, SCRAPE_TIMEOUT) {
        Ok(text) => text,
        Err(e) => {
            w.info.scrapes_failed += 1;
            w.info.last_error = Some(e);
            // The next good scrape's rates must not span the gap as if it were one second.
            w.before.iter_mut().for_each(|b| *b = None);
            return;
        }
    };
    w.info.scrapes_ok += 1;
    let samples = scrape::parse(&text, &s.metrics);
    let secs = dt.as_secs_f64().max(1e-3);
    for (i, sel) in s.metrics.iter().enumerate() {
        let now = scrape::observe(sel, &samples);
        w.seen[i] |= now.is_some();
        let before = std::mem::replace(&mut w.before[i], now.clone());
        let (Some(t), Some(now)) = (t, now) else {
            continue;
        };
        let name = &w.info.name;
        let level_unit = match sel.name.ends_with("_bytes") {
            true => Unit::Bytes,
            false => Unit::Value,
        };
        match (&now, &before) {
            (Observed::Gauge(v), _) => push(series, name, &sel.text, level_unit, t, *v),
            (Observed::Counter(v), Some(Observed::Counter(b))) => {
                // A reset (the target restarted) starts the count again from zero.
                let delta = if v >= b { v - b } else { *v };
                push(series, name, &sel.text, Unit::PerSecond, t, delta / secs);
            }
            (Observed::Histogram(after), Some(Observed::Histogram(b))) => {
                let unit = match sel.name.ends_with("_seconds") {
                    true => Unit::Seconds,
                    false => Unit::Value,
                };
                for (q, label) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
                    if let Some(v) = scrape::quantile(b, after, q) {
                        push(series, name, &format!("{}.{label}", sel.text), unit, t, v);
                    }
                }
                let total = |h: &[(f64, f64)]| h.last().map_or(0.0, |x| x.1);
                let (n_after, n_before) = (total(after), total(b));
                let delta = if n_after >= n_before {
                    n_after - n_before
                } else {
                    n_after
                };
                push(
                    series,
                    name,
                    &format!("{}.rate", sel.text),
                    Unit::PerSecond,
                    t,
                    delta / secs,
                );
            }
            (Observed::Summary(qs), _) => {
                for (q, v) in qs {
                    let label = format!("{}.p{}", sel.text, q * 100.0);
                    push(series, name, &label, Unit::Value, t, *v);
                }
            }
            // A first observation (or one after a failed scrape) only sets the baseline.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::watch::Watch;

    #[test]
    fn watches_this_process_and_notices_an_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watches = [
            Watch {
                name: "me".into(),
                process: Some(Process::Pid(std::process::id())),
                scrape: None,
            },
            Watch {
                name: "child".into(),
                process: Some(Process::Pid(child.id())),
                scrape: None,
            },
        ];
        let start = Instant::now();
        let w = super::start(prepare(&watches).unwrap(), start).unwrap();
        // Busy for a while so the CPU reading has something to show.
        let until = Instant::now() + Duration::from_millis(1100);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let tel = w.finish();
        let rss = tel.series("me", "rss").unwrap();
        assert_eq!(rss.unit, Unit::Bytes);
        assert!(rss.points.len() >= 2, "{rss:?}");
        assert_eq!(rss.points[0].0, 0);
        let cpu = tel.series("me", "cpu").unwrap();
        assert!(cpu.points[0].1 > 0.5, "a busy second: {cpu:?} ({x})");
        let child_info = &tel.watches[1];
        assert_eq!(child_info.exited.len(), 1, "{child_info:?}");
        assert!(child_info.exited[0].1 > 1.0);
        assert!(tel.elapsed >= Duration::from_secs(2));
    }

    #[test]
    fn a_missing_process_is_an_error_that_names_it() {
        let w = [Watch {
            name: "x".into(),
            process: Some(Process::Command("no-such-process-here".into())),
            scrape: None,
        }];
        let e = prepare(&w).err().unwrap();
        assert!(
            e.contains("no running process is named 'no-such-process-here'"),
            "{e}"
        );
    }
}
