//! `regbench run URL|FILE.toml`: command-line flags or a scenario file → a validated plan → a run.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use bytes::Bytes;

use super::execute::{emit, execute, verdict, Show, Thresholds};
use crate::app::{run_failed, usage, Failure, Options};
use crate::cli::{RunArgs, WatchArgs};
use crate::engine::connect;
use crate::plan::threshold::{Filter, Threshold};
use crate::plan::watch::{Process, Scrape, Watch};
use crate::plan::{
    self, Model, Plan, Profile, RequestSpec, ScenarioPlan, Segment, Step, Stop, Target, TlsOptions,
};

/// The requests sent when neither -n nor -z is given (hey and oha use the same default).
pub const DEFAULT_REQUESTS: u64 = 200;

/// Workers start this long after the run is set up, so thread start-up is not counted as lag.
const START_LEAD: Duration = Duration::from_millis(5);

/// A `--start-at` further in the past than this is a mistake, not a late start.
pub(crate) const MAX_START_AT_PAST: Duration = Duration::from_secs(10);

pub(crate) fn cmd_run(a: RunArgs, out: &mut dyn Write, opts: Options) -> Result<u8, Failure> {
    let (plan, judge_by) = plan_for(&a)?;
    run_plan(plan, &judge_by, &a, out, opts)
}

/// The plan a `run` command line asks for (a scenario file's, or the URL and flags'), and the
/// thresholds from the file.
pub(crate) fn plan_for(a: &RunArgs) -> Result<(Plan, Thresholds), Failure> {
    if is_scenario_file(&a.url) {
        return scenario_from_args(a);
    }
    if !a.vars.is_empty() {
        return Err(usage(anyhow!(
            "-e KEY=VALUE sets scenario-file constants; a URL run has none"
        )));
    }
    Ok((plan_from_args(a)?, Thresholds::default()))
}

/// `--watch-pid`, `--watch-cmd`, `--scrape`, `--scrape-metric` → watches (a scrape named like a
/// process watch joins it).
pub(crate) fn watches_from_args(w: &WatchArgs) -> Result<Vec<Watch>, Failure> {
    // `NAME=VALUE`, unless the `=` is a URL's (a query string).
    fn named(s: &str) -> (Option<&str>, &str) {
        match s.split_once('=') {
            Some((n, v)) if !n.contains("://") && !n.is_empty() => (Some(n.trim()), v.trim()),
            _ => (None, s.trim()),
        }
    }
    let mut out: Vec<Watch> = Vec::new();
    for p in &w.pids {
        let (name, pid) = named(p);
        let pid = pid.parse::<u32>().ok().filter(|p| *p > 0).ok_or_else(|| {
            usage(anyhow!(
                "--watch-pid '{p}': expected [NAME=]PID, e.g. registry=1234"
            ))
        })?;
        let name = match name {
            Some(n) => n.to_string(),
            None => crate::telemetry::proc::comm(pid).unwrap_or(format!("pid{pid}")),
        };
        out.push(Watch {
            name,
            process: Some(Process::Pid(pid)),
            scrape: None,
        });
    }
    for c in &w.commands {
        out.push(Watch {
            name: c.clone(),
            process: Some(Process::Command(c.clone())),
            scrape: None,
        });
    }
    if !w.metrics.is_empty() && w.scrapes.is_empty() {
        return Err(usage(anyhow!(
            "--scrape-metric picks series of a --scrape URL: add one"
        )));
    }
    for s in &w.scrapes {
        let (name, url) = named(s);
        let scrape = Scrape::parse(url, &w.metrics).map_err(|e| usage(anyhow!("--scrape: {e}")))?;
        match name.and_then(|n| out.iter_mut().find(|o| o.name == n)) {
            Some(o) if o.scrape.is_some() => {
                return Err(usage(anyhow!(
                    "--scrape '{s}': watch '{}' already scrapes a URL",
                    o.name
                )))
            }
            Some(o) => o.scrape = Some(scrape),
            None => out.push(Watch {
                name: name.map_or(format!("{}:{}", scrape.host, scrape.port), str::to_string),
                process: None,
                scrape: Some(scrape),
            }),
        }
    }
    crate::plan::watch::check_names(&out).map_err(|(_, e)| usage(anyhow!(e)))?;
    Ok(out)
}

/// Runs a built plan and reports it; the exit code says whether thresholds and validity held.
pub(crate) fn run_plan(
    plan: Plan,
    judge_by: &Thresholds,
    a: &RunArgs,
    out: &mut dyn Write,
    opts: Options,
) -> Result<u8, Failure> {
    let judge_by = &with_flag_thresholds(judge_by, &plan, a)?;
    let pins = parse_pins(&a.resolve, &a.connect_to)?;
    let mut resolved = connect::resolve(&plan.target, &pins, family(a)).map_err(run_failed)?;
    if let Some(url) = &a.proxy {
        let proxy = Target::parse(url).map_err(usage)?;
        if proxy.tls {
            return Err(usage(anyhow!(
                "--proxy '{url}': an http:// proxy is supported (a CONNECT tunnel); not https://"
            )));
        }
        resolved.proxy = Some(
            connect::resolve(&proxy, &pins, family(a))
                .map_err(run_failed)?
                .addr,
        );
    }
    let mut report = execute(
        Arc::new(plan),
        resolved,
        a.start_at,
        judge_by,
        Show {
            output: &a.output,
            live: &a.live,
        },
        opts,
        a.strict,
    )?;
    report.info.tags = a.tags.clone();
    let code = emit(&report, &a.output, out)?;
    Ok(verdict(&report, code, a.strict, a.output.quiet))
}

/// The thresholds to judge by: the file's (or none), then `--threshold`s, each checked against the
/// plan's steps, scenarios and watches.
fn with_flag_thresholds(
    base: &Thresholds,
    plan: &Plan,
    a: &RunArgs,
) -> Result<Thresholds, Failure> {
    let mut judge_by = Thresholds {
        list: base.list.clone(),
        scenario_tags: base.scenario_tags.clone(),
    };
    let windows = plan.window_names();
    for t in &a.thresholds {
        let t = Threshold::parse_flag(t)
            .and_then(|th| th.check_watches(&plan.watch).map(|_| th))
            .and_then(|th| th.check_windows(&windows).map(|_| th))
            .map_err(|e| usage(anyhow!("--threshold: {e}")))?;
        if let Filter::Step(n) = t.filter.base() {
            if !plan.tag_specs().iter().any(|s| s.name == *n) {
                return Err(usage(anyhow!(
                    "--threshold '{}': no step named '{n}'",
                    t.key
                )));
            }
        }
        if let Filter::Scenario(n) = t.filter.base() {
            if !judge_by.scenario_tags.contains_key(n.as_str()) {
                return Err(usage(anyhow!(
                    "--threshold '{}': no scenario named '{n}'",
                    t.key
                )));
            }
        }
        judge_by.list.push(t);
    }
    Ok(judge_by)
}

/// `--timer-slack`, bounded: past 10 ms the open model's schedule itself would be coarse.
fn timer_slack(a: &RunArgs) -> Result<Duration, Failure> {
    match a.timer_slack {
        None => Ok(plan::DEFAULT_TIMER_SLACK),
        Some(s) if s <= plan::MAX_TIMER_SLACK => Ok(s),
        Some(s) => Err(usage(anyhow!(
            "--timer-slack {s:?} is more than {:?}: the schedule would be that coarse (try 50us–1ms)",
            plan::MAX_TIMER_SLACK
        ))),
    }
}

/// `--ipv4`/`--ipv6`.
pub(crate) fn family(a: &RunArgs) -> connect::Family {
    match (a.ipv4, a.ipv6) {
        (true, _) => connect::Family::V4,
        (_, true) => connect::Family::V6,
        _ => connect::Family::Any,
    }
}

/// `--resolve HOST:PORT:ADDR` pins and `--connect-to HOST:PORT:HOST2:PORT2` redirections.
pub(crate) fn parse_pins(
    resolve: &[String],
    connect_to: &[String],
) -> Result<Vec<plan::Resolve>, Failure> {
    let pins = resolve.iter().map(|r| plan::parse_resolve(r));
    let moves = connect_to.iter().map(|c| plan::parse_connect_to(c));
    pins.chain(moves)
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)
}

/// A scenario file rather than a URL: an existing file, or a name ending in .toml.
pub(crate) fn is_scenario_file(arg: &str) -> bool {
    !arg.contains("://") && (arg.ends_with(".toml") || std::path::Path::new(arg).is_file())
}

/// `regbench run FILE.toml`: the file is the plan; the command line may only override what the file
/// cannot know (duration, constants, threads, segment, seed, outputs).
pub(crate) fn scenario_from_args(a: &RunArgs) -> Result<(Plan, Thresholds), Failure> {
    let in_file = [
        ("-c/--connections", a.connections.is_some()),
        ("-n/--requests", a.requests.is_some()),
        ("-m/--method", a.method.is_some()),
        ("-H/--header", !a.headers.is_empty()),
        ("-d/--body", a.body.is_some()),
        ("-D/--body-file", a.body_file.is_some()),
        ("-T/--content-type", a.content_type.is_some()),
        ("--host", a.host.is_some()),
        ("-A/--accept", a.accept.is_some()),
        ("-a/--basic-auth", a.basic_auth.is_some()),
        ("--unix-socket", a.unix_socket.is_some()),
        ("-x/--proxy", a.proxy.is_some()),
        ("--timeout", a.timeout.is_some()),
        ("--no-keepalive", a.no_keepalive),
        ("--disable-compression", a.disable_compression),
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
    let segment = segment(a)?;
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
            warmup: a.warmup,
            watch: &watches_from_args(&a.watch)?,
            env: &env,
            http: &|base, tls| a.http.apply(base, tls),
        },
    )
    .map_err(usage)?;
    let mut plan = loaded.plan;
    plan.tls = a.tls.apply(&plan.tls);
    plan.timer_slack = timer_slack(a)?;
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
pub(crate) fn start_time(at: Option<SystemTime>) -> Result<(SystemTime, Instant), Failure> {
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
pub(crate) fn plan_from_args(a: &RunArgs) -> Result<Plan, Failure> {
    let mut target = Target::parse(&a.url).map_err(usage)?;
    if let Some(path) = &a.unix_socket {
        if target.tls {
            return Err(usage(anyhow!(
                "--unix-socket speaks plain HTTP: use an http:// URL (it gives the Host and the path)"
            )));
        }
        target.unix_socket = Some(path.clone());
    }
    let method = plan::parse_method(a.method.as_deref().unwrap_or("GET")).map_err(usage)?;
    let mut headers = a
        .headers
        .iter()
        .map(|h| plan::parse_header(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let basic = a.basic_auth.as_ref().map(|up| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(up)
        )
    });
    // Shorthands for one header each; the shorthand wins over a -H of the same name.
    for (name, value) in [
        ("Content-Type", &a.content_type),
        ("Host", &a.host),
        ("Accept", &a.accept),
        ("Authorization", &basic),
    ] {
        if let Some(v) = value {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.into(), v.clone()));
        }
    }
    let not_http = target.grpc || target.ws || a.sse.sse_events.is_some();
    if a.body.is_some() && !not_http && matches!(method.as_str(), "GET" | "HEAD") {
        // k6's -d is a duration; here it is the body.
        eprintln!(
            "regbench: warning: sending a body with {method} (-d is the request body; the run's \
             duration is -z)"
        );
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
    let segment = segment(a)?;
    let stages = a
        .stages
        .as_deref()
        .map(plan::parse_stages)
        .transpose()
        .map_err(usage)?;
    // gRPC rides HTTP/2: h2c with prior knowledge on grpc://, ALPN h2 on grpcs://. A WebSocket
    // is an HTTP/1.1 upgrade.
    let base = plan::HttpOptions {
        version: match (target.grpc, target.ws) {
            (true, _) => plan::HttpVersion::Http2,
            (_, true) => plan::HttpVersion::Http1,
            _ => plan::HttpOptions::default().version,
        },
        ..plan::HttpOptions::default()
    };
    let http = a
        .http
        .apply(base, target.tls)
        .map_err(|e| usage(anyhow!(e)))?;
    if target.grpc && http.version != plan::HttpVersion::Http2 {
        return Err(usage(anyhow!("gRPC needs HTTP/2: drop --http1")));
    }
    if target.ws && http.version != plan::HttpVersion::Http1 {
        return Err(usage(anyhow!(
            "a WebSocket is an HTTP/1.1 upgrade: drop --http2/--h2c"
        )));
    }
    if !target.ws && (a.ws.ws_receive.is_some() || a.ws.ws_hold.is_some()) {
        return Err(usage(anyhow!(
            "--ws-receive and --ws-hold are for WebSockets: the URL is ws://HOST:PORT/PATH"
        )));
    }
    if !target.grpc
        && (!a.grpc.protos.is_empty() || a.grpc.protoset.is_some() || a.grpc.deadline.is_some())
    {
        return Err(usage(anyhow!(
            "--proto, --protoset and --deadline are for gRPC: the URL is grpc://HOST:PORT/package.Service/Method"
        )));
    }
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
    let step = match (target.grpc, target.ws, a.sse.sse_events) {
        (true, _, None) => grpc_step(a, &target, &headers, &body)?,
        (_, true, None) => ws_step(a, &target, headers, &body)?,
        (false, false, Some(events)) => sse_step(a, &target, headers, &body, events)?,
        (_, _, Some(_)) => {
            return Err(usage(anyhow!(
                "--sse-events reads an http:// or https:// URL as an event stream"
            )))
        }
        _ => {
            let path = target.path.clone();
            let request = RequestSpec {
                name: format!("{method} {path}"),
                method,
                path,
                headers,
                body,
            };
            let mut step = Step::new(request);
            if !a.disable_compression {
                step.ask_compressed();
            }
            step
        }
    };
    let mut plan = Plan {
        target,
        scenarios: vec![ScenarioPlan {
            name: "default".into(),
            model,
            stop,
            start_after: Duration::ZERO,
            n_connections,
            steps: vec![step],
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
        timer_slack: timer_slack(a)?,
        warmup: a.warmup.unwrap_or(Duration::ZERO),
        watch: watches_from_args(&a.watch)?,
        events: Vec::new(),
    };
    plan.validate().map_err(usage)?;
    plan.clamp_workers();
    Ok(plan)
}

/// The step of `grpc://HOST:PORT/package.Service/Method`: the method from `--proto`/`--protoset`,
/// `-d` as its JSON request message, `-H` as metadata.
fn grpc_step(
    a: &RunArgs,
    target: &Target,
    headers: &[(String, String)],
    body: &Bytes,
) -> Result<Step, Failure> {
    let protos = crate::scenario::grpc::Protos {
        files: a.grpc.protos.clone(),
        includes: a.grpc.import_paths.clone(),
        protoset: a.grpc.protoset.clone(),
    };
    if a.method.is_some() {
        return Err(usage(anyhow!(
            "-m/--method is HTTP's: a gRPC call's method is the URL's path (package.Service/Method)"
        )));
    }
    let pool = match protos.is_empty() {
        true => reflected(a, target)?,
        false => protos.load().map_err(|e| usage(anyhow!(e)))?,
    };
    let json = std::str::from_utf8(body)
        .map_err(|_| usage(anyhow!("the gRPC request message (-d) must be JSON text")))?;
    crate::scenario::grpc::step(&pool, None, &target.path, json, headers, a.grpc.deadline)
        .map_err(|e| usage(anyhow!(e)))
}

/// The step of `--sse-events N`: the URL read as an event stream, N events per iteration.
fn sse_step(
    a: &RunArgs,
    target: &Target,
    headers: Vec<(String, String)>,
    body: &Bytes,
    events: u32,
) -> Result<Step, Failure> {
    if events == 0 {
        return Err(usage(anyhow!("--sse-events must be at least 1")));
    }
    if !body.is_empty()
        || a.method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
    {
        return Err(usage(anyhow!(
            "an event stream is opened with GET and no body: drop -d/-m"
        )));
    }
    let mut step = Step::new(RequestSpec::get(
        &format!("SSE {}", target.path),
        &target.path,
    ));
    step.sse = Some(std::sync::Arc::new(crate::plan::sse::Sse {
        path: target.path.clone(),
        headers,
        events,
        timestamp: a.sse.sse_timestamp.clone(),
        max_reconnects: a.sse.sse_reconnects.unwrap_or(10),
    }));
    Ok(step)
}

/// Without `--proto` or `--protoset`: the method's descriptors from the server itself (gRPC server
/// reflection), fetched once before the run.
fn reflected(a: &RunArgs, target: &Target) -> Result<prost_reflect::DescriptorPool, Failure> {
    let service = target
        .path
        .trim_start_matches('/')
        .rsplit_once('/')
        .map(|(service, _)| service.to_string())
        .ok_or_else(|| {
            usage(anyhow!(
                "'{}' names no method: grpc://HOST:PORT/package.Service/Method",
                target.url
            ))
        })?;
    let pins = parse_pins(&a.resolve, &a.connect_to)?;
    let addr = connect::resolve(target, &pins, family(a))
        .map_err(run_failed)?
        .addr;
    let tls = match target.tls {
        true => Some(
            crate::engine::tls::TlsClient::new(
                &a.tls.apply(&TlsOptions::default()),
                &target.host,
                vec![b"h2".to_vec()],
            )
            .map_err(usage)?,
        ),
        false => None,
    };
    let timeout = a.timeout.unwrap_or(Duration::from_secs(10));
    let files = crate::engine::grpc::reflect(addr, target, tls.as_ref(), &service, timeout)
        .map_err(|e| {
            usage(anyhow!(
                "{e} (without --proto or --protoset, the method's descriptors are asked of the \
                 server by reflection)"
            ))
        })?;
    crate::scenario::grpc::Protos::pool_of(files).map_err(|e| usage(anyhow!(e)))
}

/// The step of `ws://HOST:PORT/PATH`: echo `-d` (the default), subscribe (`--ws-receive`) or hold
/// (`--ws-hold`); `-H` headers go on the upgrade request.
fn ws_step(
    a: &RunArgs,
    target: &Target,
    headers: Vec<(String, String)>,
    body: &Bytes,
) -> Result<Step, Failure> {
    use crate::plan::{template::Template, ws};
    let text = std::str::from_utf8(body)
        .map_err(|_| usage(anyhow!("the WebSocket message (-d) must be text")))?;
    let mode = match (a.ws.ws_receive, a.ws.ws_hold) {
        (Some(0), _) => return Err(usage(anyhow!("--ws-receive must be at least 1"))),
        (Some(receive), _) => ws::Mode::Subscribe {
            send: (!text.is_empty()).then(|| Template::literal(text)),
            receive,
            timestamp: a.ws.ws_timestamp.clone(),
        },
        (None, Some(hold)) => ws::Mode::Hold { hold },
        (None, None) if text.is_empty() => {
            return Err(usage(anyhow!(
                "a WebSocket echo sends a message: add -d 'MESSAGE' (or --ws-receive N to subscribe, --ws-hold DURATION to hold)"
            )))
        }
        (None, None) => ws::Mode::Echo {
            message: Template::literal(text),
        },
    };
    if a.method.is_some() {
        return Err(usage(anyhow!(
            "-m/--method is HTTP's: a WebSocket opens with GET"
        )));
    }
    let name = match &mode {
        ws::Mode::Echo { .. } => format!("WS {}", target.path),
        ws::Mode::Subscribe { .. } => format!("WS subscribe {}", target.path),
        ws::Mode::Hold { .. } => format!("WS hold {}", target.path),
    };
    let mut step = Step::new(RequestSpec::get(&name, &target.path));
    step.ws = Some(std::sync::Arc::new(ws::Ws {
        path: target.path.clone(),
        headers,
        mode,
    }));
    Ok(step)
}

/// `--segment I/N`, or `auto/N`: I from `JOB_COMPLETION_INDEX`, which Kubernetes sets in the pods of
/// an Indexed Job (deploy/kubernetes/).
pub(crate) fn segment(a: &RunArgs) -> Result<Segment, Failure> {
    let Some(text) = &a.segment else {
        return Ok(Segment::WHOLE);
    };
    match text.strip_prefix("auto/") {
        Some(n) => {
            let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                usage(anyhow!(
                    "--segment {text}: JOB_COMPLETION_INDEX is not set (Kubernetes sets it in the \
                     pods of an Indexed Job; elsewhere give --segment I/N)"
                ))
            })?;
            Segment::parse(&format!("{}/{n}", index.trim())).map_err(|e| {
                usage(anyhow!(e).context(format!(
                    "--segment {text} with JOB_COMPLETION_INDEX={index}"
                )))
            })
        }
        None => Segment::parse(text).map_err(usage),
    }
}

/// The run's seed: `--seed`, or a fresh random one (recorded in the report, so `--seed` replays the
/// run's Poisson schedule and random picks). A distributed run's processes must draw one schedule,
/// so `--segment` needs an explicit seed.
pub(crate) fn run_seed(a: &RunArgs) -> Result<u64, Failure> {
    match (a.seed, &a.segment) {
        (Some(seed), _) => Ok(seed),
        (None, Some(_)) => Err(usage(anyhow!(
            "--segment needs --seed: every process of a distributed run must draw the same schedule"
        ))),
        (None, None) => Ok(fresh_seed()),
    }
}

/// A seed no other run is likely to draw (the clock and the process id, mixed).
pub(crate) fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::util::Rng::new(nanos ^ u64::from(std::process::id()).rotate_left(32)).next_u64()
}
