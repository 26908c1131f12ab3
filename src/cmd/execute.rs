//! Executing a plan: worker threads, the collector (with progress, signals and the end-of-run
//! cut-off) on this thread, the validity verdict, and the report files. Shared by `run`, `demo` and
//! `oci`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use tokio::sync::{mpsc, watch};

use super::progress::Progress;
use super::run::start_time;
use crate::aggregate::{judge, Collector};
use crate::analyze::diagnosis;
use crate::analyze::doctor::{self, Severity};
use crate::app::{exit, run_failed, usage, Failure, Options};
use crate::cli::{LiveArgs, OutputArgs};
use crate::engine::{self, connect};
use crate::host::HostFacts;
use crate::plan::threshold::{Metric, Stat};
use crate::plan::{self, Model, Plan};
use crate::report::{Format, Interrupt, RunInfo, RunReport, ScenarioInfo};

/// Once the schedule has ended, requests still in flight get this long (or the request timeout, if
/// shorter) to finish before they are abandoned and counted: `-z` bounds the run's wall time.
pub const END_GRACE: Duration = Duration::from_secs(2);

/// The lag limit of the validity verdict when `--max-lag` is not given.
pub const DEFAULT_LAG_LIMIT: Duration = Duration::from_millis(10);

/// Pre-flight: the doctor's checks (analyze/doctor.rs) for this plan's load on this host, one line on
/// stderr for each warning or blocker. A blocker (more connections than file descriptors, a port
/// range the load will exhaust) refuses the run only with `--strict`. Returns the host as it was,
/// the diagnosis' "before".
pub(crate) fn preflight(
    plan: &Plan,
    addr: SocketAddr,
    quiet: bool,
    strict: bool,
) -> Result<HostFacts, Failure> {
    let host = HostFacts::read();
    let findings = doctor::check(&host, &load_of(plan, addr));
    for f in findings.iter().filter(|f| f.severity >= Severity::Warn) {
        if strict && f.severity == Severity::Block {
            return Err(usage(anyhow!(
                "{}: {} (--strict refuses a run the host cannot carry; fix: {})",
                f.topic,
                f.message,
                f.fix.join("; ")
            )));
        }
        if !quiet {
            let fix = match f.fix.first() {
                Some(fix) => format!(" (fix: {fix})"),
                None => String::new(),
            };
            eprintln!("regbench: warning: {}: {}{fix}", f.topic, f.message);
        }
    }
    Ok(host)
}

/// The load a plan puts on this host, for the doctor.
pub(crate) fn load_of(plan: &Plan, addr: SocketAddr) -> doctor::Load {
    let rate: f64 = plan
        .scenarios
        .iter()
        .filter_map(|s| match &s.model {
            Model::Open { rate, .. } => Some(rate.max()),
            Model::Closed { .. } => None,
        })
        .sum();
    let any_open = plan.scenarios.iter().any(|s| s.model.is_open());
    doctor::Load {
        connections: plan.segment_connections(),
        rate: any_open.then_some(rate / plan.segment.count as f64),
        keepalive: plan.keepalive,
        loopback: addr.ip().is_loopback(),
    }
}

/// What a run shows: its report outputs (checked before it starts) and its live displays.
#[derive(Clone, Copy)]
pub(crate) struct Show<'a> {
    pub(crate) output: &'a OutputArgs,
    pub(crate) live: &'a LiveArgs,
}

/// Runs a plan: workers on their threads, the collector (and progress, and Ctrl-C) on this one.
pub(crate) fn execute(
    plan: Arc<Plan>,
    resolved: connect::Resolved,
    start_at: Option<SystemTime>,
    judge_by: &Thresholds,
    show: Show,
    opts: Options,
    strict: bool,
) -> Result<RunReport, Failure> {
    let Show { output, live } = show;
    check_outputs(output)?;
    let host_before = preflight(&plan, resolved.addr, output.quiet, strict)?;
    let scenario_tags = |name: &str| judge_by.scenario_tags.get(name).cloned();
    let mut aborted_by: Option<String> = None;
    let tls = if plan.target.tls {
        let client = crate::engine::tls::TlsClient::new(
            &plan.tls,
            &plan.target.host,
            plan.http.version.alpn(),
        )
        .map_err(usage)?;
        Some(client)
    } else {
        None
    };
    // A watched process that cannot be found is a mistake in the command: nothing runs.
    let watching = match plan.watch.is_empty() {
        true => None,
        false => Some(crate::telemetry::prepare(&plan.watch).map_err(|e| usage(anyhow!(e)))?),
    };
    // The run's time zero comes last, after every check and set-up above, so none of it counts
    // as the first requests' lag.
    let (started_at, start) = start_time(start_at)?;
    let mut next_abort_check = start + Duration::from_secs(1);
    let tags = plan.tag_specs();
    let (sink, mut inbox) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the collector's runtime")
        .map_err(run_failed)?;
    let watcher = match watching {
        Some(w) => Some(crate::telemetry::start(w, start).map_err(|e| run_failed(anyhow!(e)))?),
        None => None,
    };
    let n_windows: usize = plan.events.iter().map(|e| e.windows.len()).sum();
    let windows = (!plan.events.is_empty())
        .then(|| Arc::new(crate::schedule::windows::Windows::new(n_windows, start)));
    let events_tls = tls.clone();
    let handles = engine::spawn_workers(engine::Run {
        plan: Arc::clone(&plan),
        addr: resolved.addr,
        start,
        stop: stop_rx,
        sink,
        tls,
        // Registry flows are the plan's flow steps; the engine runs them without knowing OCI.
        flows: Some(Arc::new(crate::registry::flow::Runner)),
        proxy: resolved.proxy,
        windows: windows.clone(),
    })
    .context("cannot start worker threads")
    .map_err(run_failed)?;
    let events = match windows {
        Some(w) => Some(
            super::events::start(Arc::clone(&plan), resolved.addr, events_tls, w, start)
                .context("cannot start the events' thread")
                .map_err(run_failed)?,
        ),
        None => None,
    };

    let window_names = plan.window_names();
    let warmup_secs = plan.warmup_secs();
    let mut progress = Progress::new(&plan, live.progress, output.quiet);
    let mut metrics = match live.metrics_addr {
        Some(addr) => {
            let any_open = plan.scenarios.iter().any(|s| s.model.is_open());
            let lag_limit = any_open.then(|| plan.max_lag.unwrap_or(DEFAULT_LAG_LIMIT));
            let m = super::metrics::Metrics::start(addr, &plan, lag_limit).map_err(|e| {
                usage(anyhow!(e).context(format!("--metrics-addr {addr}: cannot listen there")))
            })?;
            if !output.quiet {
                eprintln!("regbench: live metrics at http://{}/metrics", m.addr());
            }
            Some(m)
        }
        None => None,
    };
    let mut collector = Collector::new(&tags, plan.n_workers)
        .judging_from(warmup_secs)
        .live(progress.is_live() || metrics.is_some());
    let cut_off_at = plan
        .scheduled_end()
        .map(|end| start + end + plan.timeout.min(END_GRACE));
    let (interrupted, cut_off) = rt.block_on(async {
        let signal = async {
            match opts.handle_signals {
                true => termination_signal().await,
                false => std::future::pending().await,
            }
        };
        tokio::pin!(signal);
        let cut_off = async {
            match cut_off_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cut_off);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut interrupted = None;
        let mut cut = false;
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(m) => {
                        collector.handle(m);
                        for (sec, second, inflight) in collector.take_finished_seconds() {
                            progress.second(sec, &second, inflight);
                            if let Some(m) = metrics.as_mut() {
                                m.second(sec, &second, inflight);
                            }
                        }
                        if collector.is_finished() {
                            break;
                        }
                    }
                    None => break,
                },
                sig = &mut signal, if interrupted.is_none() => {
                    interrupted = Some(sig);
                    let _ = stop_tx.send(true);
                    // A second signal means "now": the report of a run that will not stop is lost.
                    tokio::spawn(async {
                        let again = termination_signal().await;
                        eprintln!("regbench: {} again: exiting without a report", again.name);
                        std::process::exit(i32::from(again.exit_code));
                    });
                    if !output.quiet {
                        eprintln!("regbench: {}; stopping and writing the partial report", sig.name);
                    }
                }
                _ = &mut cut_off, if !cut => {
                    // The schedule ended a grace period ago: what is still in flight is abandoned.
                    cut = true;
                    let _ = stop_tx.send(true);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let elapsed = now.saturating_duration_since(start);
                    progress.update(collector.n_requests(), elapsed);
                    // abort_on_fail thresholds are judged once a second on the run so far.
                    if now >= next_abort_check && aborted_by.is_none() {
                        next_abort_check = now + Duration::from_secs(1);
                        let failing = judge_by.list.iter().filter(|t| t.abort_on_fail && elapsed >= t.grace).find(|t| {
                            !judge_one(t, collector.total(), elapsed, watcher.as_ref(), &window_names, &scenario_tags).pass
                        });
                        if let Some(t) = failing {
                            aborted_by = Some(format!("{} {}", t.key, t.expr));
                            let _ = stop_tx.send(true);
                            if !output.quiet {
                                eprintln!("regbench: threshold {} {} failed (abort_on_fail): stopping", t.key, t.expr);
                            }
                        }
                    }
                }
            }
        }
        (interrupted, cut)
    });
    let duration = Instant::now().saturating_duration_since(start);
    progress.finish();
    if let Some(m) = metrics {
        m.stop();
    }
    for h in handles {
        if h.join().is_err() {
            return Err(run_failed(anyhow!(
                "a worker thread panicked; the results are incomplete"
            )));
        }
    }
    let agg = collector.finish();
    let target = watcher.map(crate::telemetry::Watcher::finish);
    let events = events.map(super::events::EventRunner::finish);
    let usage = crate::util::process_usage();
    let lag_limit = plan.max_lag.unwrap_or(DEFAULT_LAG_LIMIT);
    let any_open = plan.scenarios.iter().any(|s| s.model.is_open());
    let mut validity = judge(&agg, duration, any_open.then_some(lag_limit));
    let abandoned: u64 = agg.workers.iter().map(|w| w.n_cancelled).sum();
    if cut_off && interrupted.is_none() && abandoned > 0 {
        validity.valid = false;
        validity.reasons.push(format!(
            "{abandoned} requests were still unanswered {} after the schedule ended and were \
             abandoned: their latency is unknown and not in the percentiles",
            crate::util::fmt_duration(plan.timeout.min(END_GRACE))
        ));
    }
    // Rates are over the span the schedule ran: up to its end (not the wait for the last
    // responses), or until the run was stopped; a count-bounded scenario until its last response.
    let stopped_early = interrupted.is_some() || aborted_by.is_some();
    let window = |s: &plan::ScenarioPlan| {
        let ran = duration.saturating_sub(s.start_after);
        match s.time_bound() {
            // Its users may all have stopped before the bound (think time past the end), but the
            // schedule spanned it.
            Some(b) if !stopped_early && s.stop.n_requests.is_none() => b,
            Some(b) => b.min(ran),
            None => ran,
        }
    };
    let scenarios = plan
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| ScenarioInfo {
            name: s.name.clone(),
            model: s.model.clone(),
            n_connections: s.n_connections,
            segment_connections: plan::split(
                s.n_connections as u64,
                plan.segment.count,
                plan.segment.index,
            ),
            segment_slots: s.segment_slots(plan.segment),
            requested: s.stop,
            start_after: s.start_after,
            window: window(s),
            first_tag: plan.first_tag(i),
            n_tags: s.n_tags(),
            n_steps: s.steps.len(),
            drop_tag: plan.drop_tag(i),
            tags: s.tags.clone(),
        })
        .collect();
    let info = RunInfo {
        target: plan.target.url.clone(),
        addr: resolved.addr,
        proxy: resolved.proxy,
        dns: resolved.dns,
        started_at,
        duration,
        window: plan
            .scenarios
            .iter()
            .map(|s| s.start_after + window(s))
            .max()
            .unwrap_or(duration),
        n_workers: plan.n_workers,
        keepalive: plan.keepalive,
        timeout: plan.timeout,
        http: plan.http,
        http_described: plan.http.describe(&plan.target),
        scenarios,
        segment: plan.segment,
        max_lag: plan.max_lag,
        seed: plan.seed,
        plan: crate::report::PlanRecord::of(&plan),
        interrupted,
        cut_off,
        process_cpu: usage.cpu,
        max_rss: usage.max_rss,
        aborted_by,
        tags: Vec::new(),
        shards: 1,
    };
    let thresholds = judge_all(
        &judge_by.list,
        &agg,
        duration,
        warmup_secs,
        target.as_ref(),
        events.as_ref(),
        &scenario_tags,
    );
    let host_after = HostFacts::read();
    let diagnosis = diagnosis::diagnose(
        &agg.total.total(),
        &agg.total.tags,
        &diagnosis::Evidence {
            addr: resolved.addr,
            before: &host_before,
            after: &host_after,
            connections: plan.segment_connections(),
        },
    );
    Ok(RunReport {
        info,
        agg,
        validity,
        thresholds,
        diagnosis,
        target,
        events,
    })
}

/// Judges thresholds on a finished run: target metrics on what was watched, window convergence on
/// the events, everything else on the requests of the judged seconds (after the warm-up).
pub(crate) fn judge_all(
    list: &[crate::plan::threshold::Threshold],
    agg: &crate::aggregate::Aggregate,
    duration: Duration,
    warmup_secs: u64,
    target: Option<&crate::telemetry::Telemetry>,
    events: Option<&crate::report::EventLog>,
    scenario_tags: &dyn Fn(&str) -> Option<std::ops::Range<usize>>,
) -> Vec<crate::aggregate::ThresholdResult> {
    let (judged, judged_for) = match &agg.judged {
        Some(j) => (j, duration.saturating_sub(Duration::from_secs(warmup_secs))),
        None => (&agg.total, duration),
    };
    // Each window occurrence's span, for target thresholds `{during:W}`.
    let intervals: Vec<(&str, Duration, Duration)> = events
        .iter()
        .flat_map(|l| &l.events)
        .flat_map(|e| &e.occurrences)
        .flat_map(|o| {
            o.windows
                .iter()
                .map(|w| (w.name.as_str(), o.fired, o.fired + w.duration))
        })
        .collect();
    // The plan's windows in order (the order of `TagStats::during`): every event is in the log,
    // with its windows in plan order.
    let window_names: Vec<&str> = events
        .iter()
        .flat_map(|l| &l.events)
        .flat_map(|e| e.windows.iter().map(String::as_str))
        .collect();
    list.iter()
        .map(|t| match (target, t.metric) {
            (Some(tel), m) if m.is_target() => {
                crate::analyze::target::evaluate_in(t, tel, warmup_secs, &intervals)
            }
            (_, Metric::Convergence) => convergence(t, events),
            _ => crate::aggregate::evaluate_in(t, judged, judged_for, scenario_tags, &window_names),
        })
        .collect()
}

/// A threshold on an event window's convergence times (the ones that converged; a window that
/// never did fails the threshold, its time being unknown).
fn convergence(
    t: &crate::plan::threshold::Threshold,
    log: Option<&crate::report::EventLog>,
) -> crate::aggregate::ThresholdResult {
    let window = t.filter.window().unwrap_or("");
    let (h, n_open) = log.map_or((crate::aggregate::new_histogram(), 0), |l| {
        l.convergence(window)
    });
    let observed = match (h.is_empty(), t.stat) {
        (true, _) => None,
        (false, Stat::P(p)) => Some(h.value_at_quantile(p / 100.0) as f64),
        (false, Stat::Avg) => Some(h.mean()),
        (false, Stat::Min) => Some(h.min() as f64),
        (false, _) => Some(h.max() as f64),
    };
    crate::aggregate::ThresholdResult {
        threshold: t.clone(),
        pass: n_open == 0 && observed.is_some_and(|v| t.op.holds(v, t.bound)),
        observed,
        censored: n_open > 0,
        detail: (n_open > 0).then(|| format!("{n_open} occurrence(s) never converged")),
    }
}

/// A threshold's verdict on the run so far: on the requests, or on what the watcher has seen.
fn judge_one(
    t: &crate::plan::threshold::Threshold,
    total: &crate::aggregate::Summary,
    elapsed: Duration,
    watcher: Option<&crate::telemetry::Watcher>,
    windows: &[&str],
    scenario_tags: &dyn Fn(&str) -> Option<std::ops::Range<usize>>,
) -> crate::aggregate::ThresholdResult {
    match (watcher, t.metric.is_target()) {
        (Some(w), true) => w.peek(|tel| crate::analyze::target::evaluate(t, tel, 0)),
        _ => crate::aggregate::evaluate_in(t, total, elapsed, scenario_tags, windows),
    }
}

/// Receives `s`, or never if it could not be installed (the signal keeps its default action).
pub(crate) async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Waits for SIGINT, SIGTERM or SIGHUP: each stops the run and still writes the partial report.
pub(crate) async fn termination_signal() -> Interrupt {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind| signal(kind).ok();
    let (mut int, mut term, mut hup) = (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
        listen(SignalKind::hangup()),
    );
    tokio::select! {
        _ = recv(&mut int) => Interrupt::SIGINT,
        _ = recv(&mut term) => Interrupt::SIGTERM,
        _ = recv(&mut hup) => Interrupt::SIGHUP,
    }
}

/// Checks every `-o` names a report format and its file can be written, before anything runs.
pub(crate) fn check_outputs(output: &OutputArgs) -> Result<(), Failure> {
    check_outputs_in(output, &Format::NAMES, "")
}

/// Checks every `-o` names one of `formats` (`what` says whose, for the message) and its file can be
/// written: before a run, a search or a comparison, so a typo never loses its result.
pub(crate) fn check_outputs_in(
    output: &OutputArgs,
    formats: &[&str],
    what: &str,
) -> Result<(), Failure> {
    for o in &output.outputs {
        if !formats.contains(&o.format.as_str()) {
            return Err(usage(anyhow!(
                "-o '{}' is not an output format{what} (expected {})",
                o.format,
                formats.join(" or ")
            )));
        }
    }
    for path in output.outputs.iter().filter_map(|o| o.path.as_ref()) {
        crate::util::prepare_output(path)
            .with_context(|| format!("cannot write the report to '{}'", path.display()))
            .map_err(run_failed)?;
    }
    Ok(())
}

/// The files a format writes beside its own (`FILE.summary.csv`): (path, contents).
pub(crate) type Beside<'a> =
    dyn Fn(&str, &std::path::Path) -> Vec<(std::path::PathBuf, String)> + 'a;

/// Writes every `-o FORMAT=FILE` atomically, with the files its format writes beside it (`beside`),
/// and the stdout format: the last bare `-o FORMAT`, else json with `-j`, else text. A file that
/// cannot be written stops neither the others nor stdout (nothing else is lost); the first error
/// is returned. Formats were checked before the run (`check_outputs_in`).
pub(crate) fn deliver(
    output: &OutputArgs,
    out: &mut dyn Write,
    render: &dyn Fn(&str) -> String,
    beside: &Beside,
) -> Result<(), Failure> {
    let mut error = None;
    for o in &output.outputs {
        if let Some(path) = &o.path {
            let main = (path.clone(), render(&o.format));
            for (file, text) in std::iter::once(main).chain(beside(&o.format, path)) {
                if let Err(e) = crate::util::write_atomic(&file, text.as_bytes()) {
                    error.get_or_insert(
                        anyhow!(e)
                            .context(format!("cannot write the report to '{}'", file.display())),
                    );
                }
            }
        }
    }
    let stdout_format = output
        .outputs
        .iter()
        .filter(|o| o.path.is_none())
        .map(|o| o.format.as_str())
        .next_back()
        .unwrap_or(if output.json { "json" } else { "text" });
    if let Err(e) = out
        .write_all(render(stdout_format).as_bytes())
        .and_then(|_| out.flush())
    {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            error.get_or_insert(anyhow!(e).context("cannot write the report to stdout"));
        }
    }
    match error {
        Some(e) => Err(run_failed(e)),
        None => Ok(()),
    }
}

/// The exit code of a reported run: `emitted` (an abort or a signal) first, then failed thresholds
/// (3; not for one segment of a distributed run, whose thresholds see only its share — `regbench
/// merge` judges the whole), then an invalid run under `--strict` (4); each said on stderr unless
/// `quiet`.
pub(crate) fn verdict(report: &RunReport, emitted: u8, strict: bool, quiet: bool) -> u8 {
    if emitted != exit::OK {
        return emitted;
    }
    // A shard of a distributed run judged only its share: the verdict is the merged result's.
    let shard = report.info.segment.count > 1;
    if report.thresholds.iter().any(|t| !t.pass) && !shard {
        if !quiet {
            let n = report.thresholds.iter().filter(|t| !t.pass).count();
            eprintln!("regbench: {n} threshold(s) failed (the table ends the report)");
        }
        return exit::THRESHOLDS;
    }
    if strict && !report.validity.valid {
        if !quiet {
            eprintln!(
                "regbench: the run is INVALID and --strict was given (reasons in the report)"
            );
        }
        return exit::INVALID;
    }
    exit::OK
}

/// Writes the report files (atomically) and stdout; returns the run's exit code.
pub(crate) fn emit(
    report: &RunReport,
    output: &OutputArgs,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let format = |name: &str| Format::parse(name).unwrap_or(Format::Text);
    deliver(
        output,
        out,
        &|name| format(name).render(report),
        &|name, path| format(name).companions(path, report),
    )?;
    Ok(if report.info.aborted_by.is_some() {
        exit::THRESHOLDS
    } else if let Some(sig) = report.info.interrupted {
        sig.exit_code
    } else {
        exit::OK
    })
}

/// What a run is judged by: the file's thresholds and how to find a scenario's steps.
#[derive(Default)]
pub(crate) struct Thresholds {
    pub(crate) list: Vec<crate::plan::threshold::Threshold>,
    pub(crate) scenario_tags: std::collections::BTreeMap<String, std::ops::Range<usize>>,
}
