//! `regbench serve`: the demo target on its own; its flags become the target's own `ServeConfig`.

use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::app::{exit, run_failed, usage, Failure, Options};
use crate::cli::ServeArgs;
use crate::serve;

pub(crate) fn cmd_serve(a: &ServeArgs, opts: Options) -> Result<u8, Failure> {
    let config = config(a).map_err(|e| usage(anyhow!(e)))?;
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

/// The flags as the target's own configuration (the target knows nothing of the command line).
fn config(a: &ServeArgs) -> Result<serve::ServeConfig, String> {
    use serve::tls;
    let tls = match (a.tls, &a.tls_cert, &a.tls_key) {
        (_, Some(cert), Some(key)) => Some((tls::read_certs(cert)?, tls::read_key(key)?)),
        (true, None, None) => Some(tls::self_signed()?),
        (false, None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let client_ca = a
        .tls_client_ca
        .as_deref()
        .map(tls::read_certs)
        .transpose()?;
    if client_ca.is_some() && tls.is_none() {
        return Err("--tls-client-ca needs --tls (or --tls-cert/--tls-key)".into());
    }
    let tls = match tls {
        Some((chain, key)) => Some(tls::server_config(chain, key, client_ca)?),
        None => None,
    };
    Ok(serve::ServeConfig {
        repos: a.repos,
        tags: a.tags,
        layers: a.layers,
        layer_size: a.layer_size,
        servers: a.servers,
        latency: serve::LatencyModel::parse(&a.latency).map_err(|e| format!("--latency: {e}"))?,
        error_rate: a.error_rate,
        stall: a
            .stall
            .as_deref()
            .map(serve::Stall::parse)
            .transpose()
            .map_err(|e| format!("--stall: {e}"))?,
        capacity: a
            .capacity
            .as_deref()
            .map(|c| serve::Capacity::parse(c, a.queue).map(std::sync::Arc::new))
            .transpose()
            .map_err(|e| format!("--capacity: {e}"))?,
        leak: a
            .leak
            .as_deref()
            .map(|l| serve::Leak::parse(l).map(std::sync::Arc::new))
            .transpose()
            .map_err(|e| format!("--leak: {e}"))?,
        sync_slowdown: match a.sync_slowdown {
            f if f.is_finite() && (0.0..=1000.0).contains(&f) => f,
            f => return Err(format!("--sync-slowdown {f}: a factor from 0 to 1000")),
        },
        config_file: a.config.clone(),
        config_poll: match a.config_poll {
            p if p >= Duration::from_millis(1) => p,
            _ => return Err("--config-poll: at least 1ms".into()),
        },
        sync_per_server: a.sync_per_server,
        threads: a.threads.max(1),
        tls,
        auth: match &a.auth {
            Some(s) => serve::auth::Auth::parse(s)?,
            None => serve::auth::Auth::None,
        },
    })
}
