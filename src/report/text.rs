//! The text report for people: stdout, fixed layout, every number labelled with what it measures.

use std::fmt::Write;

use super::RunReport;
use crate::aggregate::{log_bins, Dist, QUANTILES};
use crate::analyze::target::{self, Direction};
use crate::plan::threshold::{Filter, Stat};
use crate::plan::Model;
use crate::sample::ErrorKind;
use crate::telemetry::{Telemetry, Unit};
use crate::util::{fmt_bytes, fmt_duration as d};
use std::time::Duration;

const BAR_WIDTH: u64 = 40;

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    // invariant: writing into a String cannot fail, so the fmt::Results below are ignored.
    let _ = write_report(&mut o, r);
    o
}

fn write_report(o: &mut String, r: &RunReport) -> std::fmt::Result {
    let info = &r.info;
    let all = r.agg.total.total();
    let secs = info.window.as_secs_f64().max(1e-9);

    writeln!(o, "regbench {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(o, "  target       {}", info.target)?;
    let dns = match info.dns {
        Some(t) => format!("DNS {}", d(t)),
        None => "no DNS lookup".to_string(),
    };
    match &info.plan.unix_socket {
        Some(path) => writeln!(o, "  address      unix socket {}", path.display())?,
        None => writeln!(o, "  address      {} ({dns})", info.addr)?,
    }
    if let Some(proxy) = info.proxy {
        writeln!(
            o,
            "  proxy        {proxy} (a CONNECT tunnel per connection)"
        )?;
    }
    writeln!(
        o,
        "  engine       {} thread{}, {}, timeout {}{}",
        info.n_workers,
        plural(info.n_workers as u64),
        if info.keepalive {
            "keep-alive"
        } else {
            "no keep-alive"
        },
        d(info.timeout),
        // The open model's wake-up grid bounds the schedule lag the timer adds (--timer-slack).
        match info.plan.any_open() {
            true => format!(", timer slack {}", d(info.plan.timer_slack)),
            false => String::new(),
        }
    )?;
    writeln!(o, "  http         {}", info.http_described)?;
    for sc in &info.scenarios {
        let label = if info.scenarios.len() > 1 {
            format!("  {:<12} ", truncate(&sc.name, 12))
        } else {
            "  load         ".to_string()
        };
        let conns = if info.http.version == crate::plan::HttpVersion::Http2 {
            let c = info.http.h2_connections(sc.n_connections as u64);
            format!(
                "{c} connection{} × {} stream{}",
                plural(c),
                info.http.streams,
                plural(info.http.streams as u64)
            )
        } else {
            format!(
                "{} connection{}",
                sc.n_connections,
                plural(sc.n_connections as u64)
            )
        };
        let steps = if sc.n_steps > 1 {
            format!(", {}-step flow", sc.n_steps)
        } else {
            String::new()
        };
        let tags = if sc.tags.is_empty() {
            String::new()
        } else {
            let t: Vec<String> = sc.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" [{}]", t.join(" "))
        };
        let after = if sc.start_after.is_zero() {
            String::new()
        } else {
            format!(", starts after {}", d(sc.start_after))
        };
        match &sc.model {
            Model::Closed { think, vus } => {
                let think = if think.is_zero() {
                    String::new()
                } else {
                    format!(", think {}", d(*think))
                };
                let ramp = match vus {
                    Some(p) => format!(", virtual users ramped over {} stages", p.stages.len()),
                    None => String::new(),
                };
                writeln!(
                    o,
                    "{label}closed model{ramp}{think}{steps}{after}; {conns}{tags}"
                )?;
            }
            Model::Open {
                arrival,
                max_inflight,
                rate,
            } => {
                let ramped = rate.stages.len() > 1
                    || rate.stages.first().is_some_and(|s| s.target != rate.start);
                let shape = if ramped {
                    format!("{} stages from {}/s", rate.stages.len(), rate.start)
                } else {
                    format!("{}/s", rate.start)
                };
                writeln!(
                    o,
                    "{label}open model, {shape}, {} arrivals, up to {max_inflight} in flight{steps}{after}; {conns}{tags}",
                    arrival.name()
                )?;
            }
        }
    }
    if info.shards > 1 {
        writeln!(
            o,
            "  merged       {} processes' shards (regbench merge): the whole run, as if one \
             process had sent it",
            info.shards
        )?;
    }
    if info.segment.count > 1 {
        writeln!(
            o,
            "  segment      {}/{} of a distributed run (seed {}): this process's stripe of the \
             schedule; the lines above are the whole run's",
            info.segment.index, info.segment.count, info.seed
        )?;
        for sc in &info.scenarios {
            let name = match info.scenarios.len() {
                1 => String::new(),
                _ => format!("{}: ", sc.name),
            };
            let (mine, whole) = match info.http.version {
                crate::plan::HttpVersion::Http2 => (
                    info.http.h2_connections(sc.segment_slots),
                    info.http.h2_connections(sc.n_connections as u64),
                ),
                _ => (sc.segment_connections, sc.n_connections as u64),
            };
            let inflight = match &sc.model {
                Model::Open { max_inflight, .. } => {
                    format!(", {} of {max_inflight} in flight", sc.segment_slots)
                }
                Model::Closed { .. } => String::new(),
            };
            let rate = match r.offered_rate(sc) {
                Some(rate) => format!(", offered {rate:.1}/s"),
                None => String::new(),
            };
            writeln!(
                o,
                "  this process {name}{mine} of {whole} connection{}{inflight}{rate}",
                plural(whole)
            )?;
        }
    }
    if !info.tags.is_empty() {
        let tags: Vec<String> = info.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(o, "  tags         {}", tags.join(" "))?;
    }
    if let Some(t) = &info.aborted_by {
        writeln!(
            o,
            "  ABORTED      threshold {t} failed (abort_on_fail): this report covers what ran"
        )?;
    }
    if let (Some(sig), None) = (info.interrupted, &info.aborted_by) {
        writeln!(
            o,
            "  PARTIAL      {} after {}: this report covers what ran; {} request{} in flight \
             were abandoned and are not counted",
            sig.name,
            d(info.duration),
            r.n_cancelled(),
            plural(r.n_cancelled())
        )?;
    } else if info.cut_off && r.n_cancelled() > 0 {
        writeln!(
            o,
            "  CUT OFF      {} request{} still unanswered when the run's time was up were abandoned \
             and are not counted",
            r.n_cancelled(),
            plural(r.n_cancelled())
        )?;
    }

    writeln!(o, "\nSummary")?;
    writeln!(
        o,
        "  requests     {} in {}  ({:.1} req/s over {})",
        all.n_requests,
        d(info.duration),
        r.rate(),
        d(info.window)
    )?;
    let pct = |n: u64| 100.0 * n as f64 / all.n_requests.max(1) as f64;
    let challenges = match all.n_challenges {
        0 => String::new(),
        n => format!(", {n} of them expected auth challenges (401)"),
    };
    let answered_failed = all.n_requests - all.n_success() - all.n_errors();
    match all.grpc.is_empty() && all.n_delivered == 0 && all.ws_close.is_empty() {
        true => writeln!(
            o,
            "  success      {:.2}%  ({} with status < 400{challenges}; {answered_failed} 4xx/5xx; {} failed without a response)",
            pct(all.n_success()),
            all.n_success(),
            all.n_errors()
        )?,
        false => writeln!(
            o,
            "  success      {:.2}%  ({} gRPC OK, delivered, closed normally or HTTP status < 400{challenges}; {answered_failed} other gRPC status, abnormal close or HTTP 4xx/5xx; {} failed without a response)",
            pct(all.n_success()),
            all.n_success(),
            all.n_errors()
        )?,
    }
    for sc in &info.scenarios {
        let Some(offered) = r.offered_rate(sc) else {
            continue;
        };
        let name = if info.scenarios.len() > 1 {
            format!("{}: ", sc.name)
        } else {
            String::new()
        };
        let achieved = r.iteration_rate(sc);
        let dropped = match info.max_lag {
            Some(l) => format!(
                "{} dropped (later than --max-lag {})",
                r.n_dropped(sc),
                d(l)
            ),
            None => "none dropped (no --max-lag)".to_string(),
        };
        writeln!(
            o,
            "  rate         {name}offered {offered:.1}/s, achieved {achieved:.1}/s ({:+.2}%); {dropped}",
            100.0 * (achieved - offered) / offered.max(1e-9)
        )?;
    }
    if r.n_queued() > 0 {
        writeln!(
            o,
            "  queued       {} sent late, after waiting for a free in-flight slot (their wait is in \
             their latency)",
            r.n_queued()
        )?;
    }
    if r.n_unsent() > 0 {
        writeln!(
            o,
            "  not sent     {}: the run ended before they could be sent (the target or the generator \
             could not keep up)",
            r.n_unsent()
        )?;
    }
    // Compressed bodies: as received, and decoded (gzip's trailer says how large).
    let decoded = match (all.n_compressed, all.n_undecoded) {
        (0, _) => String::new(),
        (n, 0) => format!(
            ", {} decoded: {n} of {} responses compressed",
            fmt_bytes(all.decoded_bytes as f64),
            all.n_requests
        ),
        (n, u) => format!(
            ", ≥ {} decoded: {n} of {} responses compressed, {u} in a coding whose decoded size \
             regbench cannot know (br, zstd, deflate)",
            fmt_bytes(all.decoded_bytes as f64),
            all.n_requests
        ),
    };
    writeln!(
        o,
        "  received     {}  ({}/s; bodies {}{decoded})",
        fmt_bytes(all.bytes_in as f64),
        fmt_bytes(all.bytes_in as f64 / secs),
        fmt_bytes(all.body_bytes as f64)
    )?;
    writeln!(
        o,
        "  sent         {}  ({}/s)",
        fmt_bytes(all.bytes_out as f64),
        fmt_bytes(all.bytes_out as f64 / secs)
    )?;

    let lat = Dist::latency(&all);
    let svc = Dist::of(&all.service_time);
    let ttfb = Dist::of(&all.ttfb);
    let lag = Dist::of(&all.lag);
    if lat.count == 0 {
        // A table of zeros would read as a very fast target.
        writeln!(o, "\nLatency")?;
        writeln!(o, "  none: no request got a response to time")?;
        if all.n_requests > 0 && all.errors[ErrorKind::Refused.index()] == all.n_requests {
            writeln!(
                o,
                "  no server answered on {}: every connection was refused. Is it running, on this \
                 address and port?",
                info.addr
            )?;
        }
    } else {
        write_latency_table(o, r, [&lat, &svc, &ttfb, &lag])?;
    }

    let bins = log_bins(&all.latency);
    if !bins.is_empty() {
        writeln!(o, "\nLatency histogram (log-spaced; cumulative share)")?;
        let peak = bins.iter().map(|b| b.1).max().unwrap_or(1).max(1);
        let total: u64 = bins.iter().map(|b| b.1).sum();
        let mut below = 0u64;
        for (upper, n) in &bins {
            below += n;
            let bar = "■".repeat((n * BAR_WIDTH).div_ceil(peak) as usize);
            let share = 100.0 * below as f64 / total.max(1) as f64;
            writeln!(o, "  ≤ {:>9} [{n:>9}] {share:>8.3}% {bar}", d(*upper))?;
        }
    }

    if !all.status.is_empty() {
        writeln!(o, "\nStatus codes")?;
        for (code, n) in &all.status {
            writeln!(o, "  [{code}] {n:>10}  ({:.2}%)", pct(*n))?;
        }
    }
    if !all.grpc.is_empty() {
        writeln!(o, "\ngRPC status")?;
        for (code, n) in &all.grpc {
            let name = crate::sample::grpc_code_name(*code);
            writeln!(o, "  [{name}] {n:>10}  ({:.2}%)", pct(*n))?;
        }
    }
    if all.n_delivered > 0 {
        writeln!(
            o,
            "\nDelivered messages (WebSocket, SSE)\n  {:>10}  ({:.2}%)",
            all.n_delivered,
            pct(all.n_delivered)
        )?;
    }
    // Connections' ends are recorded under their steps' `close` tags, beside the requests (a
    // session step's own outcome is its close too: counted once, from the close tags).
    let mut closes = std::collections::BTreeMap::<u16, u64>::new();
    for t in r.agg.total.tags.iter().filter(|t| t.iteration) {
        for (code, n) in &t.ws_close {
            *closes.entry(*code).or_default() += n;
        }
    }
    if !closes.is_empty() {
        let total: u64 = closes.values().sum();
        writeln!(o, "\nWebSocket close codes (of {total} connections ended)")?;
        for (code, n) in &closes {
            let meaning = match code {
                1000 => "normal",
                1001 => "going away",
                1006 => "dropped without a close frame",
                1011 => "server error",
                1013 => "try again later",
                _ => "",
            };
            writeln!(o, "  [{code}] {n:>10}  {meaning}")?;
        }
    }
    if all.n_errors() > 0 {
        writeln!(o, "\nErrors (no response)")?;
        for k in ErrorKind::ALL {
            let n = all.errors[k.index()];
            if n > 0 {
                writeln!(o, "  {:<20} {n:>10}  ({:.2}%)", k.name(), pct(n))?;
            }
        }
    }

    if !r.diagnosis.is_empty() {
        writeln!(o, "\nDiagnosis")?;
        for dg in &r.diagnosis {
            writeln!(o, "  {} × {}: {}", dg.kind, dg.count, dg.cause)?;
            writeln!(o, "    do: {}", dg.remedy)?;
            for e in &dg.evidence {
                writeln!(o, "    seen: {e}")?;
            }
        }
    }

    let conn = Dist::of(&all.connect);
    writeln!(o, "\nConnections")?;
    // A request that was never meant to be sent (a message its type cannot hold) needed none.
    let unsent = all.errors[ErrorKind::BadMessage.index()];
    let failed = all
        .n_requests
        .saturating_sub(all.n_new_connections + all.n_reused + unsent);
    let failed = match failed {
        0 => String::new(),
        n => format!(", {n} request{} got no connection", plural(n)),
    };
    if conn.count == 0 {
        writeln!(
            o,
            "  new 0, reused {}{failed}; no connection was opened",
            all.n_reused
        )?;
    } else {
        writeln!(
            o,
            "  new {}, reused {}{failed}; TCP connect {}",
            all.n_new_connections,
            all.n_reused,
            spread(&conn)
        )?;
    }
    if all.n_tls_handshakes > 0 {
        let hs = Dist::of(&all.tls_handshake);
        writeln!(
            o,
            "  TLS handshakes {} ({} resumed); handshake {}",
            all.n_tls_handshakes,
            all.n_tls_resumed,
            spread(&hs)
        )?;
        for t in &all.tls_sessions {
            writeln!(
                o,
                "  negotiated   {} {} ALPN {} × {}",
                t.version, t.cipher, t.alpn, t.count
            )?;
        }
    }

    if r.agg.total.tags.len() > 1 {
        writeln!(o, "\nSteps (latency unless marked; svc = service time)")?;
        writeln!(
            o,
            "  {:<18} {:>8} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "name",
            "requests",
            "req/s",
            "bodies/s",
            "p50",
            "p95",
            "p99",
            "max",
            "svc p99",
            "ttfb p99",
            "failed"
        )?;
        for t in &r.agg.total.tags {
            let l = Dist::latency(t);
            // A whole operation (an iteration, an image pull) has no first byte of its own.
            let q = |d: &Dist, name: &str| match d.quantile_bound(name) {
                Some((v, true)) if d.count > 0 => format!("≥{}", self::d(v)),
                Some((v, false)) if d.count > 0 => self::d(v),
                _ => "-".to_string(),
            };
            writeln!(
                o,
                "  {:<18} {:>8} {:>8.1} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                truncate(&t.name, 18),
                t.n_requests,
                t.n_requests as f64 / secs,
                format!("{}/s", fmt_bytes(t.body_bytes as f64 / secs)),
                q(&l, "p50"),
                q(&l, "p95"),
                q(&l, "p99"),
                match (l.count, l.n_censored) {
                    (0, _) => "-".into(),
                    (_, 0) => d(l.max),
                    _ => format!("≥{}", d(l.max)),
                },
                q(&Dist::of(&t.service_time), "p99"),
                q(&Dist::of(&t.ttfb), "p99"),
                t.n_failed()
            )?;
        }
    }

    let with_checks: Vec<_> = r
        .agg
        .total
        .tags
        .iter()
        .filter(|t| !t.checks.is_empty())
        .collect();
    if !with_checks.is_empty() {
        writeln!(o, "\nChecks")?;
        for t in with_checks {
            for c in &t.checks {
                let total = c.passed + c.failed;
                let mark = if c.failed == 0 { "ok  " } else { "FAIL" };
                writeln!(
                    o,
                    "  {mark} {:<18} {:<40} {:>8}/{:<8} passed",
                    truncate(&t.name, 18),
                    truncate(&c.name, 40),
                    c.passed,
                    total
                )?;
            }
        }
    }

    if let Some(log) = &r.events {
        write_events(o, r, log)?;
    }
    if let Some(tel) = &r.target {
        write_target(o, tel, r.info.plan.warmup_secs())?;
    }

    writeln!(o, "\nGenerator")?;
    writeln!(
        o,
        "  CPU          workers {} (busiest {:.0}% of a core), process {}; peak RSS {}",
        d(r.workers_cpu()),
        r.validity.max_worker_cpu_share * 100.0,
        d(info.process_cpu),
        fmt_bytes(info.max_rss as f64)
    )?;
    let waited: Option<Duration> = r.agg.workers.iter().map(|w| w.run_queue_wait).sum();
    if let Some(waited) = waited {
        let switches: u64 = r.agg.workers.iter().map(|w| w.n_involuntary_switches).sum();
        writeln!(
            o,
            "  waited       {} ready to run but without a CPU, {switches} preemption{} (workers)",
            d(waited),
            plural(switches)
        )?;
    }
    if r.validity.valid {
        writeln!(
            o,
            "  validity     VALID: the generator was not the bottleneck"
        )?;
    } else {
        writeln!(o, "  validity     INVALID")?;
        for reason in &r.validity.reasons {
            writeln!(o, "    - {reason}")?;
        }
    }

    if !r.thresholds.is_empty() {
        let failed = r.thresholds.iter().filter(|t| !t.pass).count();
        writeln!(
            o,
            "\nThresholds ({} of {} passed{})",
            r.thresholds.len() - failed,
            r.thresholds.len(),
            match r.info.segment.count > 1 {
                true => "; this segment's share only: regbench merge judges the whole run",
                false => "",
            }
        )?;
        for t in &r.thresholds {
            let th = &t.threshold;
            let (observed, why) = threshold_observed(r, t);
            let why = match why {
                Some(why) => format!(" ({why})"),
                None => String::new(),
            };
            writeln!(
                o,
                "  {} {:<34} {:<16} observed {observed}{why}",
                if t.pass { "PASS" } else { "FAIL" },
                truncate(&th.key, 34),
                th.expr
            )?;
        }
    }
    Ok(())
}

/// A threshold's observed value in its unit (`≥` when only a lower bound), and what it was made of
/// or why it is not known (every reporter says it the same way).
pub(super) fn threshold_observed(
    r: &RunReport,
    t: &crate::aggregate::ThresholdResult,
) -> (String, Option<String>) {
    let th = &t.threshold;
    let at_least = if t.censored { "≥ " } else { "" };
    let series = r.target.as_ref().and_then(|tel| target::series_of(th, tel));
    let observed = match t.observed {
        None => "no data".to_string(),
        Some(v) if matches!(th.filter, Filter::Relative { .. }) => format!("{v:.2}×"),
        Some(v) if th.metric.is_slope() => {
            let [shown] = per_time(series.map_or(Unit::Value, |s| s.unit), [v]);
            shown
        }
        Some(v) if th.metric.is_target() => series.map_or(format!("{v:.4}"), |s| value(s.unit, v)),
        Some(v) if th.metric.is_duration() => {
            format!("{at_least}{}", d(Duration::from_nanos(v.max(0.0) as u64)))
        }
        Some(v) if matches!(th.stat, Stat::Count) => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
    };
    let why = match (&t.detail, t.censored && !t.pass) {
        (Some(detail), _) => Some(detail.clone()),
        (None, true) => Some("a lower bound: dropped requests hide the true value".into()),
        (None, false) => None,
    };
    (observed, why)
}

/// Events: what each did, how long its windows took to converge, latency during each window vs
/// outside, and the longest outage.
fn write_events(o: &mut String, r: &RunReport, log: &super::EventLog) -> std::fmt::Result {
    writeln!(
        o,
        "\nEvents (windows open at the action, closed by their probes)"
    )?;
    for e in &log.events {
        let failed: Vec<&String> = e
            .occurrences
            .iter()
            .filter_map(|x| x.action.as_ref().err())
            .collect();
        writeln!(
            o,
            "  {:<16} {} fired, {} failed, {} skipped (the previous one still converging)",
            truncate(&e.name, 16),
            e.occurrences.len(),
            failed.len(),
            e.n_skipped
        )?;
        if let Some(first) = failed.first() {
            writeln!(o, "    first failure: {first}")?;
        }
        for w in &e.windows {
            let (h, n_open) = r.convergence(w);
            let n = h.len();
            let dist = Dist::of(&h);
            let open = match n_open {
                0 => String::new(),
                k => format!(", {k} did not converge (timeout or run end)"),
            };
            if n == 0 {
                writeln!(o, "    window {w:<12} never converged{open}")?;
                continue;
            }
            writeln!(
                o,
                "    window {w:<12} converged {n}×: min {}  p50 {}  mean {}  max {}{open}",
                d(dist.min),
                d(dist.quantile("p50").unwrap_or_default()),
                d(dist.mean),
                d(dist.max)
            )?;
        }
    }
    let names = r.window_names();
    let with_windows: Vec<_> = r
        .agg
        .total
        .tags
        .iter()
        .filter(|t| !t.during.is_empty() && t.n_requests > 0)
        .collect();
    if !with_windows.is_empty() {
        writeln!(
            o,
            "\nDuring windows vs outside (by when a request was intended)\n  {:<18} {:<12} {:>9} {:>7} {:>9} {:>9} {:>9} {:>10}",
            "step", "window", "requests", "failed", "p50", "p95", "p99", "p99 vs out"
        )?;
        for t in with_windows {
            let Some(outside) = t.during.last() else {
                continue;
            };
            let out99 = Dist::of(&outside.latency).quantile("p99");
            for (k, w) in t.during.iter().enumerate() {
                let name = names.get(k).copied().unwrap_or("outside");
                let dist = Dist::of(&w.latency);
                let p = |q: &str| dist.quantile(q).map_or("-".to_string(), d);
                let change = match (k + 1 < t.during.len(), dist.quantile("p99"), out99) {
                    (true, Some(a), Some(b)) if !b.is_zero() && w.n_requests > 0 => {
                        format!("{:+.0}%", 100.0 * (a.as_secs_f64() / b.as_secs_f64() - 1.0))
                    }
                    _ => String::new(),
                };
                writeln!(
                    o,
                    "  {:<18} {:<12} {:>9} {:>7} {:>9} {:>9} {:>9} {:>10}",
                    if k == 0 {
                        truncate(&t.name, 18)
                    } else {
                        String::new()
                    },
                    name,
                    w.n_requests,
                    w.n_failed,
                    p("p50"),
                    p("p95"),
                    p("p99"),
                    change
                )?;
            }
        }
    }
    let dt = r.agg.total.downtime;
    match dt.n_spans {
        0 => writeln!(o, "  downtime     none: no request failed")?,
        n => writeln!(
            o,
            "  downtime     longest {} with every request failing ({n} span{} of failures)",
            d(Duration::from_nanos(dt.longest_ns)),
            plural(n)
        )?,
    }
    Ok(())
}

/// The watched target: per watch, each series' min/mean/max/last over the judged seconds, the
/// trends of its levels (the leak check), exits, scrape failures, and what watching cost.
fn write_target(o: &mut String, tel: &Telemetry, from: u64) -> std::fmt::Result {
    let after = match from {
        0 => String::new(),
        f => format!(" after a {f} s warm-up"),
    };
    writeln!(
        o,
        "\nTarget (sampled each second{after})       min        mean         max        last"
    )?;
    for w in &tel.watches {
        let mut what = Vec::new();
        if !w.pids.is_empty() {
            let pids: Vec<String> = w.pids.iter().map(u32::to_string).collect();
            what.push(format!("pid {}", pids.join(",")));
        }
        if let Some(url) = &w.scrape {
            what.push(format!(
                "{url}: {} scrape{} ok, {} failed",
                w.scrapes_ok,
                plural(w.scrapes_ok),
                w.scrapes_failed
            ));
        }
        writeln!(o, "  {} ({})", w.name, what.join("; "))?;
        let mut trends = Vec::new();
        for s in tel.series.iter().filter(|s| s.watch == w.name) {
            let Some(sum) = target::summarize(&s.points, from) else {
                continue;
            };
            // A long selector gets a line of its own rather than being cut.
            let name = match s.name.chars().count() > 32 {
                true => {
                    writeln!(o, "    {}", s.name)?;
                    String::new()
                }
                false => s.name.clone(),
            };
            writeln!(
                o,
                "    {:<32} {:>11} {:>11} {:>11} {:>11}",
                name,
                value(s.unit, sum.min),
                value(s.unit, sum.mean),
                value(s.unit, sum.max),
                value(s.unit, sum.last)
            )?;
            let is_level = matches!(s.unit, Unit::Bytes | Unit::Count | Unit::Value)
                && s.name != "rss_peak"
                && !s.name.contains('.');
            // RSS's trend always (the leak check); another level's when it moves.
            if let Some(tr) = target::trend(&s.points, from).filter(|_| is_level) {
                if s.name == "rss" || tr.direction != Direction::Flat {
                    trends.push((s, tr));
                }
            }
        }
        for (s, tr) in trends {
            let verdict = match tr.direction {
                Direction::Grows => "grows",
                Direction::Shrinks => "shrinks",
                Direction::Flat => "flat:",
            };
            let [slope, lo, hi] = per_time(s.unit, [tr.slope, tr.lo, tr.hi]);
            writeln!(
                o,
                "    trend {} {verdict} {slope} (95% CI {lo} to {hi}), R² {:.2} over {:.0} s",
                s.name, tr.r2, tr.span
            )?;
        }
        for (pid, at) in &w.exited {
            writeln!(o, "    EXITED pid {pid} at {at:.1} s: its series end there")?;
        }
        if w.scrapes_failed > 0 {
            writeln!(
                o,
                "    scrape failures: {} (last: {})",
                w.scrapes_failed,
                w.last_error.as_deref().unwrap_or("?")
            )?;
        }
        if !w.never_seen.is_empty() {
            writeln!(
                o,
                "    never in a scrape: {} (a typo, or not exported by this target)",
                w.never_seen.join(", ")
            )?;
        }
    }
    let secs = tel.elapsed.as_secs_f64().max(1e-9);
    writeln!(
        o,
        "  watching cost {} CPU over {:.0} s ({:.3}% of a core)",
        d(tel.cost_cpu),
        secs,
        100.0 * tel.cost_cpu.as_secs_f64() / secs
    )
}

/// A target value in its unit.
fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Bytes => fmt_bytes(v),
        Unit::Cores => format!("{v:.2} cores"),
        Unit::Count => format!("{v:.0}"),
        Unit::PerSecond => format!("{v:.1}/s"),
        Unit::Seconds => d(Duration::from_secs_f64(v.max(0.0))),
        Unit::Share => format!("{:.1}%", 100.0 * v),
        Unit::Value if v.abs() >= 1e6 => format!("{v:.3e}"),
        Unit::Value if v.fract() == 0.0 => format!("{v:.0}"),
        Unit::Value => format!("{v:.3}"),
    }
}

/// Slopes (units per second) in one unit, per the time unit that reads best for the first: the
/// smallest of /s, /min, /h in which it is at least one unit (a KiB for sizes), sizes in the binary
/// unit that suits it. The first carries the unit; the others (its interval) share it.
fn per_time<const N: usize>(unit: Unit, per_s: [f64; N]) -> [String; N] {
    let one = match unit {
        Unit::Bytes => 1024.0,
        _ => 1.0,
    };
    let (k, per) = [(1.0, "s"), (60.0, "min"), (3600.0, "h")]
        .into_iter()
        .find(|(k, _)| (per_s[0] * k).abs() >= one)
        .unwrap_or((3600.0, "h"));
    let (scale, name) = match unit {
        Unit::Bytes => {
            let v = (per_s[0] * k).abs();
            ["B", "KiB", "MiB", "GiB", "TiB"]
                .iter()
                .enumerate()
                .rev()
                .map(|(i, n)| (1024f64.powi(i as i32), *n))
                .find(|(s, _)| v >= *s)
                .unwrap_or((1.0, "B"))
        }
        _ => (1.0, ""),
    };
    let mut i = 0;
    per_s.map(|v| {
        let shown = format!("{:+.2}", v * k / scale);
        i += 1;
        match i {
            1 if name.is_empty() => format!("{shown}/{per}"),
            1 => format!("{shown} {name}/{per}"),
            _ => shown,
        }
    })
}

/// The latency table: latency, service time, TTFB and lag side by side. Latency values that are only
/// lower bounds (dropped requests fall at or above them) are marked `≥`.
fn write_latency_table(o: &mut String, r: &RunReport, dists: [&Dist; 4]) -> std::fmt::Result {
    let [lat, ..] = dists;
    writeln!(
        o,
        "\nLatency            latency    service       ttfb        lag"
    )?;
    writeln!(
        o,
        "  (done − intended, done − sent, first byte − sent, sent − intended; {} timed)",
        lat.count - lat.n_censored
    )?;
    let row = |o: &mut String, name: &str, f: &dyn Fn(&Dist) -> (Duration, bool)| {
        let cells = dists.map(|x| match f(x) {
            (v, true) => format!("≥ {}", d(v)),
            (v, false) => d(v),
        });
        let [a, b, c, e] = cells;
        writeln!(o, "  {name:<8} {a:>16} {b:>10} {c:>10} {e:>10}")
    };
    let bound = |x: &Dist| x.n_censored > 0;
    row(o, "min", &|x| (x.min, false))?;
    row(o, "mean", &|x| (x.mean, bound(x)))?;
    row(o, "stdev", &|x| (x.stdev, bound(x)))?;
    for (i, (_, name)) in QUANTILES.iter().enumerate() {
        row(o, name, &|x| (x.quantiles[i], x.censored[i]))?;
    }
    row(o, "max", &|x| (x.max, bound(x)))?;
    if lat.n_censored > 0 {
        writeln!(
            o,
            "  ≥: {} dropped request{} count at their lag when dropped, a lower bound of their latency; \
             these values are lower bounds, the true ones are unknown",
            lat.n_censored,
            plural(lat.n_censored)
        )?;
    }
    if r.info.scenarios.iter().any(|s| s.model.is_open()) {
        writeln!(
            o,
            "  open model: intended = the schedule's send time, so queueing and stalls count in latency"
        )?;
    } else {
        writeln!(
            o,
            "  closed model: a virtual user's next request is intended when its previous one is done \
             (plus think time), so a stalled target delays the schedule instead of showing in latency"
        )?;
    }
    Ok(())
}

/// "min X, p50 Y, p99 Z, max W" of a distribution.
fn spread(x: &Dist) -> String {
    format!(
        "min {}, p50 {}, p99 {}, max {}",
        d(x.min),
        d(x.quantiles[0]),
        d(x.quantile("p99").unwrap_or_default()),
        d(x.max)
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
