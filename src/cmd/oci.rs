//! `regbench oci pull|push|catalog|tags|seed`: registry flows as load, and seeding a registry.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::anyhow;

use super::execute::Thresholds;
use super::run::{is_scenario_file, parse_pins, plan_from_args, run_plan};
use crate::app::{exit, run_failed, usage, Failure, Options};
use crate::engine::connect;
use crate::plan::{RequestSpec, Step, Target, TlsOptions};

/// `regbench oci pull|push|catalog|tags`: `run`'s load on the registry URL, each iteration one
/// registry flow.
pub(crate) fn cmd_oci_load(
    c: crate::cli::OciCommand,
    out: &mut dyn Write,
    opts: Options,
) -> Result<u8, Failure> {
    use crate::cli::OciCommand;
    use crate::plan::flow::{Flow, FlowAuth, Pull, Push, Walk};
    use crate::plan::template::Template;
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
        || a.host.is_some()
        || a.accept.is_some()
        || a.basic_auth.is_some()
    {
        return Err(usage(anyhow!(
            "regbench oci {name} sends its own requests: -m, -d, -D, -T, -H, -e, --host, -A and -a \
             do not apply (credentials: --user and --password-env)"
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

/// `--user U [--password-env VAR]`: the user and the password read from the environment.
pub(crate) fn credentials(
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
pub(crate) fn cmd_oci_seed(a: &crate::cli::SeedArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let target = Target::parse(&a.registry).map_err(usage)?;
    let pins = parse_pins(&a.resolve, &a.connect_to)?;
    let user = credentials(&a.user, &a.password_env)?;
    let resolved = connect::resolve(&target, &pins, connect::Family::Any).map_err(run_failed)?;
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
