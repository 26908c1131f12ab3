//! `regbench demo`: the built-in target on an ephemeral loopback port and a mixed registry-read plan
//! against it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};

use super::execute::{emit, execute, Show, Thresholds};
use crate::app::{run_failed, usage, Failure, Options};
use crate::cli::DemoArgs;
use crate::engine::connect;
use crate::plan::{
    self, Model, Plan, RequestSpec, ScenarioPlan, Segment, Step, Stop, Target, TlsOptions,
};
use crate::serve;

/// The demo: the built-in target on an ephemeral loopback port, a mixed registry-read plan against it.
/// The demo target's token-server credentials (loopback only, printed in `regbench demo`'s help).
pub(crate) const DEMO_USER: &str = "demo";

pub(crate) const DEMO_PASSWORD: &str = "demo";

/// Think time of the demo's virtual users.
const DEMO_THINK: Duration = Duration::from_millis(20);

pub(crate) fn cmd_demo(a: DemoArgs, out: &mut dyn Write, opts: Options) -> Result<u8, Failure> {
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
        proxy: None,
    };
    let report = execute(
        plan,
        resolved,
        None,
        &Thresholds::default(),
        Show {
            output: &a.output,
            live: &a.live,
        },
        opts,
        false,
    )?;
    server.shutdown();
    emit(&report, &a.output, out)
}

/// A mix of what registry clients do: authenticated image pulls (one of them multi-platform), a
/// catalog crawl, and the service-registry list, lookup and status.
pub fn demo_plan(server: &serve::Server, a: &DemoArgs) -> Result<Plan, plan::PlanError> {
    use crate::plan::flow::{Flow, FlowAuth, Pull, TokenMode, Walk};
    use crate::plan::template::Template;
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
    // A registry's watch APIs: changes pushed over a WebSocket and as Server-Sent Events, each
    // timed from the change's own send time to its delivery.
    let mut ws = Step::new(RequestSpec::get("ws-watch", "/ws/watch"));
    ws.ws = Some(Arc::new(crate::plan::ws::Ws {
        path: "/ws/watch?count=10&interval_ms=20".into(),
        headers: Vec::new(),
        mode: crate::plan::ws::Mode::Subscribe {
            send: None,
            receive: 10,
            timestamp: Some("/sent_unix_nanos".into()),
        },
    }));
    let mut sse = Step::new(RequestSpec::get("sse-watch", "/sse/watch"));
    sse.sse = Some(Arc::new(crate::plan::sse::Sse {
        path: "/sse/watch?count=10&interval_ms=20".into(),
        headers: Vec::new(),
        events: 10,
        timestamp: Some("/sent_unix_nanos".into()),
        max_reconnects: 3,
    }));
    // Image pulls get half the virtual users, the service registry the rest, one crawls the
    // catalog and one watches.
    let pullers = (a.connections / 2).max(1);
    let readers = a.connections.saturating_sub(pullers + 2).max(1);
    let scenario = |name: &str, vus: usize, steps: Vec<Step>| ScenarioPlan {
        name: name.into(),
        // Users pause between iterations, as registry clients do: the target and the generator share
        // this machine's cores, and at full blast each would starve the other (the run would say so:
        // INVALID, the generator waited for a CPU).
        model: Model::Closed {
            think: DEMO_THINK,
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
            scenario("watchers", 1, vec![ws, sse]),
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
        timer_slack: crate::plan::DEFAULT_TIMER_SLACK,
        warmup: Duration::ZERO,
        watch: Vec::new(),
        events: Vec::new(),
    };
    plan.validate()?;
    plan.clamp_workers();
    Ok(plan)
}
