//! Stage: app — wires each subcommand: arguments → plan → engine + collector → report → outputs, and
//! maps failures to exit codes (DESIGN.md §6). No measurement logic lives here.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use clap::Parser;
use tokio::sync::{mpsc, watch};

use crate::aggregate::{judge, Collector};
use crate::cli::{Cli, Command, DemoArgs, OutputArgs, RunArgs, ServeArgs};
use crate::engine::{self, connect};
use crate::plan::{
    self, Model, Plan, Profile, RequestSpec, ScenarioPlan, Segment, Step, Stop, Target, TlsOptions,
};
use crate::report::{Format, Interrupt, RunInfo, RunReport, ScenarioInfo};
use crate::serve;

/// Exit codes (DESIGN.md §6).
pub mod exit {
    pub const OK: u8 = 0;
    /// The run could not be carried out (DNS failure, cannot write an output, …).
    pub const RUN_FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Thresholds, SLOs or a regression gate failed (later issues).
    pub const THRESHOLDS: u8 = 3;
    /// The run was invalid and `--strict` was given (later issue).
    pub const INVALID: u8 = 4;
    /// Interrupted by Ctrl-C (128 + SIGINT); the partial report was still written.
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM (128 + 15: a CI job's timeout, `kill`); the partial report was written.
    pub const TERMINATED: u8 = 143;
    /// Stopped by SIGHUP (128 + 1: the terminal went away); the partial report was written.
    pub const HANGUP: u8 = 129;
}

/// Once the schedule has ended, requests still in flight get this long (or the request timeout, if
/// shorter) to finish before they are abandoned and counted: `-z` bounds the run's wall time.
pub const END_GRACE: Duration = Duration::from_secs(2);

/// The requests sent when neither -n nor -z is given (hey and oha use the same default).
pub const DEFAULT_REQUESTS: u64 = 200;

/// Workers start this long after the run is set up, so thread start-up is not counted as lag.
const START_LEAD: Duration = Duration::from_millis(5);

/// The lag limit of the validity verdict when `--max-lag` is not given.
pub const DEFAULT_LAG_LIMIT: Duration = Duration::from_millis(10);

/// A `--start-at` further in the past than this is a mistake, not a late start.
const MAX_START_AT_PAST: Duration = Duration::from_secs(10);

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: exit::USAGE,
        error: error.into(),
    }
}

fn run_failed(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: exit::RUN_FAILED,
        error: error.into(),
    }
}

/// How the process hosts a run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Install a Ctrl-C handler (the binary does; in-process tests don't).
    pub handle_signals: bool,
}

/// The binary's entry point.
pub fn main() -> std::process::ExitCode {
    raise_open_file_limit();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = run(
        std::env::args_os(),
        &mut out,
        Options {
            handle_signals: true,
        },
    );
    std::process::ExitCode::from(code)
}

/// The run's seed: `--seed`, or a fresh random one (recorded in the report, so `--seed` replays the
/// run's Poisson schedule and random picks). A distributed run's processes must draw one schedule,
/// so `--segment` needs an explicit seed.
fn run_seed(a: &RunArgs) -> Result<u64, Failure> {
    match (a.seed, &a.segment) {
        (Some(seed), _) => Ok(seed),
        (None, Some(_)) => Err(usage(anyhow!(
            "--segment needs --seed: every process of a distributed run must draw the same schedule"
        ))),
        (None, None) => {
            let nanos = SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            Ok(
                crate::util::Rng::new(nanos ^ u64::from(std::process::id()).rotate_left(32))
                    .next_u64(),
            )
        }
    }
}

/// File descriptors kept free beyond the connections: the timer, epoll, stdio, report files.
const RESERVED_FDS: u64 = 64;

/// The soft limit of open files (after `raise_open_file_limit`), or `None` if it cannot be read.
fn open_file_limit() -> Option<u64> {
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0).then_some(lim.rlim_cur as u64)
    }
}

/// Refuses a plan that needs more sockets than this process may open: it would otherwise run with
/// `too-many-open-files` errors in place of requests.
fn check_open_files(plan: &Plan) -> Result<(), Failure> {
    let need = plan.segment_connections();
    match open_file_limit() {
        Some(limit) if need.saturating_add(RESERVED_FDS) > limit => Err(usage(anyhow!(
            "this run would open up to {need} connections, but this process may open only {limit} \
             files (ulimit -n): lower -c/--connections (or virtual users), split the run over \
             processes with --segment, or raise the limit (ulimit -n, LimitNOFILE=)"
        ))),
        _ => Ok(()),
    }
}

/// Raises the soft limit of open files to the hard limit, as Go programs do at start: every
/// connection is a file descriptor, and a default soft limit of 1024 would cap `-c` silently.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs regbench with these arguments, the report going to `out`; returns the exit code. Integration
/// tests call this in-process.
pub fn run<I, T>(args: I, out: &mut dyn Write, opts: Options) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let result = match cli.command {
        Command::Run(a) => cmd_run(*a, out, opts),
        Command::Demo(a) => cmd_demo(a, out, opts),
        Command::Serve(a) => cmd_serve(&a, opts),
        Command::Oci(crate::cli::OciCommand::Seed(a)) => cmd_oci_seed(&a, out),
        Command::Oci(c) => cmd_oci_load(c, out, opts),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("regbench: error: {:#}", f.error);
            f.code
        }
    }
}

fn cmd_run(a: RunArgs, out: &mut dyn Write, opts: Options) -> Result<u8, Failure> {
    let (plan, judge_by) = if is_scenario_file(&a.url) {
        scenario_from_args(&a)?
    } else {
        if !a.vars.is_empty() {
            return Err(usage(anyhow!(
                "-e KEY=VALUE sets scenario-file constants; a URL run has none"
            )));
        }
        (plan_from_args(&a)?, Thresholds::default())
    };
    run_plan(plan, &judge_by, &a, out, opts)
}

/// `regbench oci pull|push|catalog|tags`: `run`'s load on the registry URL, each iteration one
/// registry flow.
fn cmd_oci_load(
    c: crate::cli::OciCommand,
    out: &mut dyn Write,
    opts: Options,
) -> Result<u8, Failure> {
    use crate::cli::OciCommand;
    use crate::plan::flow::{Flow, FlowAuth, Pull, Push, Walk};
    use crate::scenario::template::Template;
    let lit = Template::literal;
    let (name, common, mut flow) = match c {
        // Dispatched to `cmd_oci_seed` before this; kept total rather than panicking.
        OciCommand::Seed(_) => return Err(usage(anyhow!("oci seed is not a load command"))),
        OciCommand::Pull(p) => {
            if p.parallel == 0 {
                return Err(usage(anyhow!("--parallel must be at least 1")));
            }
            let flow = Flow::Pull(Pull {
                images: p.images.iter().map(|i| lit(i)).collect(),
                platform: p.platform.clone(),
                parallel: p.parallel,
                range: p.range.filter(|&r| r > 0),
                auth: FlowAuth::default(),
            });
            ("pull", p.common, flow)
        }
        OciCommand::Push(p) => {
            if p.layers == 0 || p.layer_size == 0 || p.layer_size > 1 << 30 {
                return Err(usage(anyhow!(
                    "--layers must be at least 1 and --layer-size between 1 byte and 1GiB"
                )));
            }
            let flow = Flow::Push(Push {
                image: lit(&p.image),
                layers: p.layers,
                layer_size: p.layer_size,
                chunk: p.chunk.filter(|&c| c > 0),
                mount_from: p.mount_from.as_deref().map(lit),
                auth: FlowAuth::default(),
            });
            ("push", p.common, flow)
        }
        OciCommand::Catalog(w) => {
            let flow = Flow::Catalog(Walk {
                repo: None,
                page_size: w.page_size.max(1),
                max_pages: w.max_pages.max(1),
                auth: FlowAuth::default(),
            });
            ("catalog", w.common, flow)
        }
        OciCommand::Tags(t) => {
            let flow = Flow::Tags(Walk {
                repo: Some(lit(&t.repo)),
                page_size: t.walk.page_size.max(1),
                max_pages: t.walk.max_pages.max(1),
                auth: FlowAuth::default(),
            });
            ("tags", t.walk.common, flow)
        }
    };
    let mut a = common.run;
    if is_scenario_file(&a.url) {
        return Err(usage(anyhow!(
            "'{}': regbench oci {name} takes the registry's URL; a scenario file uses type = \"oci-{name}\" steps",
            a.url
        )));
    }
    if a.method.is_some()
        || a.body.is_some()
        || a.body_file.is_some()
        || a.content_type.is_some()
        || !a.headers.is_empty()
        || !a.vars.is_empty()
    {
        return Err(usage(anyhow!(
            "regbench oci {name} sends its own requests: -m, -d, -D, -T, -H and -e do not apply"
        )));
    }
    // A registry flow is heavier than one request: fewer virtual users by default than `run`.
    a.connections.get_or_insert(8);
    let user = credentials(&common.user, &common.password_env)?;
    let mut plan = plan_from_args(&a)?;
    let mut step = Step::new(RequestSpec::get(name, "/v2/"));
    *flow.auth_mut() = FlowAuth {
        user,
        token: common.token,
    };
    step.flow = Some(Arc::new(flow));
    plan.scenarios[0].name = name.into();
    plan.scenarios[0].steps = vec![step];
    plan.validate().map_err(usage)?;
    run_plan(plan, &Thresholds::default(), &a, out, opts)
}

/// Runs a built plan and reports it; the exit code says whether thresholds and validity held.
fn run_plan(
    plan: Plan,
    judge_by: &Thresholds,
    a: &RunArgs,
    out: &mut dyn Write,
    opts: Options,
) -> Result<u8, Failure> {
    let pins = parse_pins(&a.resolve)?;
    let start = start_time(a.start_at)?;
    let resolved = connect::resolve(&plan.target, &pins).map_err(run_failed)?;
    let mut report = execute(Arc::new(plan), resolved, start, judge_by, &a.output, opts)?;
    report.info.tags = a.tags.clone();
    let code = emit(&report, &a.output, out)?;
    if code != exit::OK {
        return Ok(code);
    }
    if report.thresholds.iter().any(|t| !t.pass) {
        if !a.output.quiet {
            let n = report.thresholds.iter().filter(|t| !t.pass).count();
            eprintln!("regbench: {n} threshold(s) failed (the table ends the report)");
        }
        return Ok(exit::THRESHOLDS);
    }
    if a.strict && !report.validity.valid {
        if !a.output.quiet {
            eprintln!(
                "regbench: the run is INVALID and --strict was given (reasons in the report)"
            );
        }
        return Ok(exit::INVALID);
    }
    Ok(code)
}

/// `--resolve HOST:PORT:ADDR` pins.
fn parse_pins(resolve: &[String]) -> Result<Vec<plan::Resolve>, Failure> {
    resolve
        .iter()
        .map(|r| plan::parse_resolve(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)
}

/// A scenario file rather than a URL: an existing file, or a name ending in .toml.
fn is_scenario_file(arg: &str) -> bool {
    !arg.contains("://") && (arg.ends_with(".toml") || std::path::Path::new(arg).is_file())
}

/// What a run is judged by: the file's thresholds and how to find a scenario's steps.
#[derive(Default)]
struct Thresholds {
    list: Vec<crate::scenario::threshold::Threshold>,
    scenario_tags: std::collections::BTreeMap<String, std::ops::Range<usize>>,
}

/// `regbench run FILE.toml`: the file is the plan; the command line may only override what the file
/// cannot know (duration, constants, threads, segment, seed, outputs).
fn scenario_from_args(a: &RunArgs) -> Result<(Plan, Thresholds), Failure> {
    let in_file = [
        ("-c/--connections", a.connections.is_some()),
        ("-n/--requests", a.requests.is_some()),
        ("-m/--method", a.method.is_some()),
        ("-H/--header", !a.headers.is_empty()),
        ("-d/--body", a.body.is_some()),
        ("-D/--body-file", a.body_file.is_some()),
        ("-T/--content-type", a.content_type.is_some()),
        ("--timeout", a.timeout.is_some()),
        ("--no-keepalive", a.no_keepalive),
        ("--rate", a.rate.is_some()),
        ("--arrival", a.arrival.is_some()),
        ("--max-inflight", a.max_inflight.is_some()),
        ("--stages", a.stages.is_some()),
        ("--think", a.think.is_some()),
    ];
    if let Some((flag, _)) = in_file.iter().find(|(_, given)| *given) {
        return Err(usage(anyhow!(
            "{flag} does not apply to a scenario file: set it in the file (the command line can \
             override -z/--duration, -e KEY=VALUE, --threads, --segment, --start-at, --seed, --max-lag)"
        )));
    }
    let segment = match &a.segment {
        Some(s) => Segment::parse(s).map_err(usage)?,
        None => Segment::WHOLE,
    };
    if a.threads == Some(0) {
        return Err(usage(anyhow!("--threads must be at least 1")));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let env = |k: &str| std::env::var(k).ok();
    let loaded = crate::scenario::load(
        std::path::Path::new(&a.url),
        &crate::scenario::Overrides {
            vars: &a.vars,
            duration: a.duration,
            n_workers: a.threads.unwrap_or(cores).max(1),
            segment,
            seed: run_seed(a)?,
            max_lag: a.max_lag,
            env: &env,
            http: &|base, tls| a.http.apply(base, tls),
        },
    )
    .map_err(usage)?;
    let mut plan = loaded.plan;
    plan.tls = a.tls.apply(&plan.tls);
    Ok((
        plan,
        Thresholds {
            list: loaded.thresholds,
            scenario_tags: loaded.scenario_tags,
        },
    ))
}

/// When the run starts: `--start-at` (an absolute time shared by the segments of a distributed run)
/// or right away. A start a little in the past keeps the shared schedule (the first ticks are late and
/// show as lag); far in the past is an error.
fn start_time(at: Option<SystemTime>) -> Result<(SystemTime, Instant), Failure> {
    let now_wall = SystemTime::now();
    let now = Instant::now();
    let Some(at) = at else {
        return Ok((now_wall, now + START_LEAD));
    };
    match at.duration_since(now_wall) {
        Ok(ahead) => Ok((at, now + ahead)),
        Err(e) if e.duration() <= MAX_START_AT_PAST => Ok((at, now - e.duration())),
        Err(e) => Err(usage(anyhow!(
            "--start-at is {:.1}s in the past (at most {}s is accepted, as a late start)",
            e.duration().as_secs_f64(),
            MAX_START_AT_PAST.as_secs()
        ))),
    }
}

/// `regbench run` flags → a validated plan.
fn plan_from_args(a: &RunArgs) -> Result<Plan, Failure> {
    let target = Target::parse(&a.url).map_err(usage)?;
    let method = plan::parse_method(a.method.as_deref().unwrap_or("GET")).map_err(usage)?;
    let mut headers = a
        .headers
        .iter()
        .map(|h| plan::parse_header(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    if let Some(ct) = &a.content_type {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        headers.push(("Content-Type".into(), ct.clone()));
    }
    let body = match (&a.body, &a.body_file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (None, Some(path)) => Bytes::from(
            crate::util::read_bounded(path, crate::util::MAX_BODY_FILE)
                .with_context(|| format!("cannot read body file '{}'", path.display()))
                .map_err(usage)?,
        ),
        (None, None) => Bytes::new(),
    };
    if a.threads == Some(0) {
        return Err(usage(anyhow!("--threads must be at least 1")));
    }
    let segment = match &a.segment {
        Some(s) => Segment::parse(s).map_err(usage)?,
        None => Segment::WHOLE,
    };
    let stages = a
        .stages
        .as_deref()
        .map(plan::parse_stages)
        .transpose()
        .map_err(usage)?;
    let http = a
        .http
        .apply(plan::HttpOptions::default(), target.tls)
        .map_err(|e| usage(anyhow!(e)))?;
    // With HTTP/2 each of the -c connections carries --streams requests at once: the closed model's
    // virtual users, and the open model's in-flight cap, are connections × streams.
    let connections = a.connections.unwrap_or(50).saturating_mul(http.streams);
    let mut n_connections = connections;
    let model = match a.rate {
        Some(r) => {
            if !r.is_finite() || r < 0.0 {
                return Err(usage(plan::PlanError::BadRate(r.to_string())));
            }
            if a.think.is_some() {
                return Err(usage(anyhow!("--think is for the closed model; the open model (--rate) paces requests itself")));
            }
            let rate = match stages {
                Some(stages) => Profile {
                    start: r,
                    stages,
                    hold: false,
                },
                None => Profile::constant(r, a.duration),
            };
            let max_inflight = a.max_inflight.unwrap_or(connections);
            if max_inflight == 0 {
                return Err(usage(plan::PlanError::NoInflight));
            }
            // HTTP/1.1 carries one request per connection (HTTP/2: --streams), so in flight is
            // at most connections × streams.
            Model::Open {
                rate,
                arrival: a.arrival.unwrap_or(plan::Arrival::Uniform),
                max_inflight: max_inflight.min(connections),
            }
        }
        None => {
            if a.max_inflight.is_some() || a.max_lag.is_some() || a.arrival.is_some() {
                return Err(usage(anyhow!(
                    "--max-inflight, --max-lag and --arrival are for the open model: add --rate R"
                )));
            }
            let vus = stages.map(|stages| Profile {
                start: 0.0,
                stages,
                hold: false,
            });
            if let Some(p) = &vus {
                // One connection per virtual user, as many as the profile's peak.
                n_connections = p.max().ceil() as usize;
            }
            Model::Closed {
                think: a.think.unwrap_or(Duration::ZERO),
                vus,
            }
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n_workers = a.threads.unwrap_or(cores).max(1);
    let bounded_by_profile = matches!(
        &model,
        Model::Open { rate, .. } | Model::Closed { vus: Some(rate), .. } if rate.end().is_some()
    );
    let stop = Stop {
        n_requests: match (a.requests, a.duration) {
            (None, None) if !bounded_by_profile => Some(DEFAULT_REQUESTS),
            (n, _) => n,
        },
        duration: a.duration,
    };
    let path = target.path.clone();
    let request = RequestSpec {
        name: format!("{method} {path}"),
        method,
        path,
        headers,
        body,
    };
    let mut plan = Plan {
        target,
        scenarios: vec![ScenarioPlan {
            name: "default".into(),
            model,
            stop,
            start_after: Duration::ZERO,
            n_connections,
            steps: vec![Step::new(request)],
            vars: Vec::new(),
            tags: Vec::new(),
        }],
        n_workers,
        keepalive: !a.no_keepalive,
        timeout: a.timeout.unwrap_or(Duration::from_secs(30)),
        segment,
        max_lag: a.max_lag,
        seed: run_seed(a)?,
        data: Vec::new(),
        tls: a.tls.apply(&TlsOptions::default()),
        http,
    };
    plan.validate().map_err(usage)?;
    plan.clamp_workers();
    Ok(plan)
}

/// Runs a plan: workers on their threads, the collector (and progress, and Ctrl-C) on this one.
fn execute(
    plan: Arc<Plan>,
    resolved: connect::Resolved,
    (started_at, start): (SystemTime, Instant),
    judge_by: &Thresholds,
    output: &OutputArgs,
    opts: Options,
) -> Result<RunReport, Failure> {
    check_open_files(&plan)?;
    for path in output.outputs.iter().filter_map(|o| o.path.as_ref()) {
        crate::util::prepare_output(path)
            .with_context(|| format!("cannot write the report to '{}'", path.display()))
            .map_err(run_failed)?;
    }
    let scenario_tags = |name: &str| judge_by.scenario_tags.get(name).cloned();
    let mut aborted_by: Option<String> = None;
    let mut next_abort_check = start + Duration::from_secs(1);
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
    let tags = plan.tag_specs();
    let (sink, mut inbox) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the collector's runtime")
        .map_err(run_failed)?;
    let handles = engine::spawn_workers(engine::Run {
        plan: Arc::clone(&plan),
        addr: resolved.addr,
        start,
        stop: stop_rx,
        sink,
        tls,
    })
    .context("cannot start worker threads")
    .map_err(run_failed)?;

    let mut collector = Collector::new(&tags, plan.n_workers);
    let progress = Progress::new(&plan, output.quiet);
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
                            !crate::aggregate::evaluate(t, collector.total(), elapsed, &scenario_tags).pass
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
    for h in handles {
        if h.join().is_err() {
            return Err(run_failed(anyhow!(
                "a worker thread panicked; the results are incomplete"
            )));
        }
    }
    let agg = collector.finish();
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
        plan: Arc::clone(&plan),
        interrupted,
        cut_off,
        process_cpu: usage.cpu,
        max_rss: usage.max_rss,
        aborted_by,
        tags: Vec::new(),
    };
    let thresholds = judge_by
        .list
        .iter()
        .map(|t| crate::aggregate::evaluate(t, &agg.total, duration, &scenario_tags))
        .collect();
    Ok(RunReport {
        info,
        agg,
        validity,
        thresholds,
    })
}

/// Receives `s`, or never if it could not be installed (the signal keeps its default action).
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Waits for SIGINT, SIGTERM or SIGHUP: each stops the run and still writes the partial report.
async fn termination_signal() -> Interrupt {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind| signal(kind).ok();
    let (mut int, mut term, mut hup) = (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
        listen(SignalKind::hangup()),
    );
    tokio::select! {
        _ = recv(&mut int) => Interrupt { name: "interrupted (SIGINT)", exit_code: exit::INTERRUPTED },
        _ = recv(&mut term) => Interrupt { name: "terminated (SIGTERM)", exit_code: exit::TERMINATED },
        _ = recv(&mut hup) => Interrupt { name: "hung up (SIGHUP)", exit_code: exit::HANGUP },
    }
}

/// Writes the report files (atomically) and stdout; returns the run's exit code.
fn emit(report: &RunReport, output: &OutputArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let mut file_error = None;
    for o in &output.outputs {
        if let Some(path) = &o.path {
            if let Err(e) = crate::util::write_atomic(path, o.format.render(report).as_bytes()) {
                file_error.get_or_insert(
                    anyhow!(e).context(format!("cannot write the report to '{}'", path.display())),
                );
            }
        }
    }
    let stdout_format = output
        .outputs
        .iter()
        .filter(|o| o.path.is_none())
        .map(|o| o.format)
        .next_back()
        .unwrap_or(Format::Text);
    if let Err(e) = out
        .write_all(stdout_format.render(report).as_bytes())
        .and_then(|_| out.flush())
    {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            file_error.get_or_insert(anyhow!(e).context("cannot write the report to stdout"));
        }
    }
    if let Some(e) = file_error {
        return Err(run_failed(e));
    }
    Ok(if report.info.aborted_by.is_some() {
        exit::THRESHOLDS
    } else if let Some(sig) = report.info.interrupted {
        sig.exit_code
    } else {
        exit::OK
    })
}

/// The demo: the built-in target on an ephemeral loopback port, a mixed registry-read plan against it.
/// The demo target's token-server credentials (loopback only, printed in `regbench demo`'s help).
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "demo";

fn cmd_demo(a: DemoArgs, out: &mut dyn Write, opts: Options) -> Result<u8, Failure> {
    if a.connections == 0 || a.threads == 0 {
        return Err(usage(anyhow!(
            "--connections and --threads must be at least 1"
        )));
    }
    let config = serve::ServeConfig {
        // A little latency, as a registry behind a network would have; the numbers stay readable.
        latency: serve::LatencyModel::Uniform(Duration::from_micros(500), Duration::from_millis(3)),
        // Pulls authenticate as real ones do: a Bearer challenge, a token server wanting Basic.
        auth: serve::auth::Auth::parse(&format!("bearer:{DEMO_USER}:{DEMO_PASSWORD}"))
            .map_err(|e| run_failed(anyhow!(e)))?,
        ..serve::ServeConfig::default()
    };
    let server = serve::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .context("cannot start the demo target on 127.0.0.1")
        .map_err(run_failed)?;
    if !a.output.quiet {
        eprintln!(
            "regbench demo: target {} ({} repositories, {} servers); loading it for {} with {} connections",
            server.url(),
            server.state().config.repos,
            server.state().config.servers,
            crate::util::fmt_duration(a.duration),
            a.connections
        );
    }
    let plan = Arc::new(demo_plan(&server, &a).map_err(usage)?);
    let resolved = connect::Resolved {
        addr: server.addr(),
        dns: None,
    };
    let report = execute(
        plan,
        resolved,
        start_time(None)?,
        &Thresholds::default(),
        &a.output,
        opts,
    )?;
    server.shutdown();
    emit(&report, &a.output, out)
}

/// A mix of what registry clients do: authenticated image pulls (one of them multi-platform), a
/// catalog crawl, and the service-registry list, lookup and status.
pub fn demo_plan(server: &serve::Server, a: &DemoArgs) -> Result<Plan, plan::PlanError> {
    use crate::plan::flow::{Flow, FlowAuth, Pull, TokenMode, Walk};
    use crate::scenario::template::Template;
    let content = &server.state().content;
    // Two single-platform images (one OCI, one Docker) and a multi-platform index.
    let images: Vec<Template> = [0, 1, serve::MULTI_PLATFORM_EVERY - 1]
        .iter()
        .filter_map(|&r| content.repos.get(r))
        .filter_map(|r| {
            Some(Template::literal(&format!(
                "{}:{}",
                r.name,
                r.tags.first()?
            )))
        })
        .collect();
    if images.is_empty() {
        return Err(plan::PlanError::NoRequestSpecs);
    }
    let auth = FlowAuth {
        user: Some((DEMO_USER.into(), DEMO_PASSWORD.into())),
        token: TokenMode::Warm,
    };
    let flow_step = |name: &str, flow: Flow| {
        let mut step = Step::new(RequestSpec::get(name, "/v2/"));
        step.flow = Some(Arc::new(flow));
        step
    };
    let pull = flow_step(
        "pull",
        Flow::Pull(Pull {
            images,
            platform: crate::plan::flow::Platform::default(),
            parallel: 3,
            range: None,
            auth: auth.clone(),
        }),
    );
    let catalog = flow_step(
        "catalog",
        Flow::Catalog(Walk {
            repo: None,
            page_size: 10,
            max_pages: 100,
            auth,
        }),
    );
    let service = vec![
        Step::new(RequestSpec::get("servers", "/v1/registry?limit=20")),
        Step::new(RequestSpec::get(
            "server",
            &format!("/v1/registry/{}", serve::server_id(7)),
        )),
        Step::new(RequestSpec::get("status", "/registry/status")),
    ];
    // Image pulls get half the virtual users, the service registry the rest, and one crawls the
    // catalog.
    let pullers = (a.connections / 2).max(1);
    let readers = a.connections.saturating_sub(pullers + 1).max(1);
    let scenario = |name: &str, vus: usize, steps: Vec<Step>| ScenarioPlan {
        name: name.into(),
        model: Model::Closed {
            think: Duration::ZERO,
            vus: None,
        },
        stop: Stop {
            n_requests: None,
            duration: Some(a.duration),
        },
        start_after: Duration::ZERO,
        n_connections: vus,
        steps,
        vars: Vec::new(),
        tags: Vec::new(),
    };
    let target = Target::parse(&server.url())?;
    let mut plan = Plan {
        target,
        scenarios: vec![
            scenario("image-pulls", pullers, vec![pull]),
            scenario("catalog-crawl", 1, vec![catalog]),
            scenario("service-registry", readers, service),
        ],
        n_workers: a.threads.min(a.connections),
        keepalive: true,
        timeout: Duration::from_secs(10),
        segment: Segment::WHOLE,
        max_lag: None,
        seed: 1,
        data: Vec::new(),
        tls: TlsOptions::default(),
        http: crate::plan::HttpOptions::default(),
    };
    plan.validate()?;
    plan.clamp_workers();
    Ok(plan)
}

/// `--user U [--password-env VAR]`: the user and the password read from the environment.
fn credentials(
    user: &Option<String>,
    password_env: &Option<String>,
) -> Result<Option<(String, String)>, Failure> {
    let Some(u) = user else {
        return Ok(None);
    };
    let password = match password_env {
        Some(var) => std::env::var(var)
            .map_err(|_| usage(anyhow!("--password-env {var}: the variable is not set")))?,
        None => String::new(),
    };
    Ok(Some((u.clone(), password)))
}

/// `regbench oci seed`: push what is missing, report what was pushed and what was already there.
fn cmd_oci_seed(a: &crate::cli::SeedArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let target = Target::parse(&a.registry).map_err(usage)?;
    let pins = parse_pins(&a.resolve)?;
    let user = credentials(&a.user, &a.password_env)?;
    let resolved = connect::resolve(&target, &pins).map_err(run_failed)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(run_failed)?;
    let spec = crate::registry::seed::SeedSpec {
        prefix: a.prefix.clone(),
        repos: a.repos,
        tags: a.tags,
        layers: a.layers,
        layer_size: a.layer_size,
    };
    let bar = (!a.quiet && std::io::stderr().is_terminal())
        .then(|| indicatif::ProgressBar::new((a.repos * a.tags) as u64));
    let report = rt.block_on(async {
        let tls = if target.tls {
            Some(
                // The registry client speaks HTTP/1.1.
                crate::engine::tls::TlsClient::new(
                    &a.tls.apply(&TlsOptions::default()),
                    &target.host,
                    crate::plan::HttpVersion::Http1.alpn(),
                )
                .map_err(usage)?,
            )
        } else {
            None
        };
        let mut client =
            crate::registry::client::Client::new(target.clone(), resolved.addr, tls, user);
        crate::registry::seed::seed(&mut client, &spec, |done, _| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        })
        .await
        .map_err(run_failed)
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let _ = writeln!(
        out,
        "seeded {} repositories × {} tags at {}: {} blobs pushed ({}), {} already there; {} manifests pushed, {} already there; {}",
        a.repos,
        a.tags,
        target.url,
        report.blobs_pushed,
        crate::util::fmt_bytes(report.bytes_pushed as f64),
        report.blobs_present,
        report.manifests_pushed,
        report.manifests_present,
        crate::util::fmt_duration(report.took)
    );
    Ok(exit::OK)
}

fn cmd_serve(a: &ServeArgs, opts: Options) -> Result<u8, Failure> {
    let config = serve::ServeConfig::try_from(a).map_err(|e| usage(anyhow!(e)))?;
    let server = serve::spawn(a.addr, config)
        .with_context(|| format!("cannot listen on {}", a.addr))
        .map_err(run_failed)?;
    eprintln!(
        "regbench serve: listening on {} ({} repositories × {} tags, {} servers); Ctrl-C stops",
        server.url(),
        a.repos,
        a.tags,
        a.servers
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(run_failed)?;
    if opts.handle_signals {
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    server.shutdown();
    Ok(exit::OK)
}

/// A progress bar on stderr, only when stderr is a terminal and not `--quiet`.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    by_count: bool,
}

impl Progress {
    fn new(plan: &Plan, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                by_count: false,
            };
        }
        // One bounded single-step scenario: a bar of requests; otherwise a bar of time.
        let only = match plan.scenarios.as_slice() {
            [s] if s.steps.len() == 1 => Some(s),
            _ => None,
        };
        let span = plan
            .scenarios
            .iter()
            .filter_map(|s| Some(s.start_after + s.time_bound()?))
            .max();
        let (len, by_count) = match (only.and_then(|s| s.stop.n_requests), span) {
            (Some(n), None) => (n, true),
            (_, Some(d)) => (d.as_millis() as u64, false),
            (None, None) => (0, true),
        };
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}%  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Progress {
            bar: Some(bar),
            by_count,
        }
    }

    fn update(&self, n_done: u64, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(if self.by_count {
                n_done
            } else {
                elapsed.as_millis() as u64
            });
            let rate = n_done as f64 / elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!("{n_done} requests, {rate:.0} req/s"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
