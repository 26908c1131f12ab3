//! The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched), readable
//! offline and printable. Charts are drawn here as SVG rather than with a vendored JavaScript library:
//! the report has a handful of chart shapes, SVG prints and scales, needs no build step and no
//! dependency to keep patched, and the file stays deterministic and small. Hovering a point shows its
//! value (SVG `<title>`).
//!
//! Like every reporter it formats the report model, which a saved JSON result reads back into
//! exactly (`saved::parse`): `regbench report RESULT.json -o html=FILE` draws the same page.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::compare::CompareReport;
use super::stress::{StepRow, StressReport, Verdict as StressVerdict};
use super::RunReport;
use crate::aggregate::{decode_histogram, Dist, TagStats, QUANTILES};
use crate::analyze::compare::Verdict;
use crate::analyze::stress::Broke;
use crate::telemetry::Unit;
use crate::util::{fmt_bytes, fmt_duration};

/// Chart heights: the overview charts, and the many small ones (a step's, a watched series').
const TALL: f64 = 220.0;
const SHORT: f64 = 150.0;

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];
/// Status classes and colours, in stacking order.
const CLASSES: [(&str, &str); 9] = [
    ("2xx", "#2ca02c"),
    ("3xx", "#17becf"),
    ("4xx", "#ff7f0e"),
    ("5xx", "#d62728"),
    ("gRPC OK", "#98df8a"),
    ("gRPC error", "#9467bd"),
    ("delivered", "#bcbd22"),
    ("no response", "#7f7f7f"),
    ("dropped", "#000000"),
];
/// Steps charted one by one at most; the table lists them all.
const MAX_STEP_CHARTS: usize = 12;

pub fn render(r: &RunReport) -> String {
    let mut o = page(&format!("regbench — {}", r.info.target));
    summary(&mut o, r);
    thresholds(&mut o, r);
    let shades = shades(r);
    over_time(&mut o, r, &shades);
    spectrum(&mut o, r);
    steps_table(&mut o, r);
    target(&mut o, r, &shades);
    events(&mut o, r);
    let _ = writeln!(
        o,
        "<footer>regbench {} · schema v{} · every number from the run's result model (the JSON \
         report)</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        super::json::SCHEMA_VERSION
    );
    o
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1000px;\
color:#222;padding:0 16px}h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:28px 0 8px;\
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:16px 0 4px}\
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}\
th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}th{background:#f6f6f6}\
td:first-child,th:first-child{text-align:left}.verdict{display:inline-block;padding:2px 10px;\
border-radius:4px;font-weight:600;color:#fff}.pass{background:#2ca02c}.fail{background:#d62728}\
.warn{background:#ff7f0e}.note{color:#555;font-size:13px}svg{display:block;margin:4px 0 12px}\
svg text{font:11px system-ui,sans-serif;fill:#444}.legend span{margin-right:14px;font-size:12px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
footer{margin-top:32px;color:#888;font-size:12px}dl{display:grid;grid-template-columns:max-content 1fr;\
gap:2px 16px;margin:8px 0}dt{color:#666}dd{margin:0}\
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg,table{break-inside:avoid}}";

/// A page's head (styles inline) and its title as the first heading.
fn page(title: &str) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{0}</title><style>{STYLE}</style></head><body>\n<h1>{0}</h1>\n",
        esc(title)
    );
    o
}

fn esc(s: &str) -> String {
    super::escape_markup(s, false)
}

fn fmt_ns(v: f64) -> String {
    fmt_duration(Duration::from_nanos(v.max(0.0) as u64))
}

/// A quantile as the report prints it, marked `≥` when it is only a lower bound.
fn quantile(d: &Dist, name: &str) -> String {
    match d.quantile_bound(name) {
        Some((v, true)) => format!("≥{}", fmt_duration(v)),
        Some((v, false)) if d.count > 0 => fmt_duration(v),
        _ => "–".into(),
    }
}

fn summary(o: &mut String, r: &RunReport) {
    let info = &r.info;
    let all = r.agg.total.total();
    let lat = Dist::latency(&all);
    let (verdict, class) = match (r.validity.valid, info.partial()) {
        (true, false) => ("VALID", "pass"),
        (true, true) => ("PARTIAL", "warn"),
        (false, _) => ("INVALID", "fail"),
    };
    let n_failed = r.thresholds.iter().filter(|t| !t.pass).count();
    let _ = writeln!(o, "<section id=\"summary\"><h2>Run</h2>");
    let _ = write!(o, "<p><span class=\"verdict {class}\">{verdict}</span> ");
    if !r.thresholds.is_empty() {
        let (v, c) = match n_failed {
            0 => ("thresholds passed".to_string(), "pass"),
            n => (
                format!("{n} of {} thresholds failed", r.thresholds.len()),
                "fail",
            ),
        };
        let _ = write!(o, "<span class=\"verdict {c}\">{v}</span>");
    }
    let _ = writeln!(o, "</p>");
    if let Some(sig) = info.interrupted {
        let _ = writeln!(
            o,
            "<p class=\"note\">{} after {}: the report covers what ran.</p>",
            esc(sig.name),
            fmt_duration(info.duration)
        );
    }
    if let Some(t) = &info.aborted_by {
        let _ = writeln!(
            o,
            "<p class=\"note\">Aborted: threshold {} failed (abort_on_fail).</p>",
            esc(t)
        );
    }
    if !r.validity.reasons.is_empty() {
        let _ = writeln!(o, "<ul>");
        for reason in &r.validity.reasons {
            let _ = writeln!(o, "<li>{}</li>", esc(reason));
        }
        let _ = writeln!(o, "</ul>");
    }
    let models: Vec<String> = info
        .scenarios
        .iter()
        .map(|s| {
            let model = match s.model.is_open() {
                true => "open model",
                false => "closed model",
            };
            format!("{} ({model}, {} connections)", s.name, s.n_connections)
        })
        .collect();
    let _ = writeln!(o, "<dl>");
    for (k, v) in [
        ("target", esc(&info.target)),
        ("started", crate::util::fmt_utc(info.started_at)),
        ("duration", fmt_duration(info.duration)),
        ("scenarios", esc(&models.join(", "))),
        ("http", esc(&info.http_described)),
        ("threads", info.n_workers.to_string()),
        ("seed", info.seed.to_string()),
        ("requests", all.n_requests.to_string()),
        ("rate", format!("{:.1}/s", r.rate())),
        (
            "errors",
            format!(
                "{} ({:.2}%)",
                all.n_errors(),
                pct(all.n_errors(), all.n_requests)
            ),
        ),
        ("dropped", all.n_dropped.to_string()),
        (
            "latency",
            format!(
                "p50 {} · p95 {} · p99 {} · p99.9 {} · max {}",
                quantile(&lat, "p50"),
                quantile(&lat, "p95"),
                quantile(&lat, "p99"),
                quantile(&lat, "p99.9"),
                fmt_duration(lat.max)
            ),
        ),
        ("received", fmt_bytes(all.bytes_in as f64)),
    ] {
        let _ = writeln!(o, "<dt>{k}</dt><dd>{v}</dd>");
    }
    let _ = writeln!(o, "</dl>");
    let _ = writeln!(o, "<p class=\"note\">{}</p></section>", model_note(r));
}

/// What "latency" means in this run: from the intended send time (open model) or from the send
/// (closed model), as DESIGN.md defines it.
fn model_note(r: &RunReport) -> &'static str {
    let any_open = r.info.scenarios.iter().any(|s| s.model.is_open());
    let any_closed = r.info.scenarios.iter().any(|s| !s.model.is_open());
    match (any_open, any_closed) {
        (true, false) => {
            "Open model: latency is measured from each request's intended send time, so time spent \
             waiting behind a slow target counts (no coordinated omission)."
        }
        (false, _) => {
            "Closed model: each virtual user sends when its previous request is done, so latency \
             is measured from the actual send; a stalled target also slows the senders (rates and \
             latency are those of this load, not of a fixed arrival rate)."
        }
        (true, true) => {
            "Open-model scenarios measure latency from the intended send time; closed-model ones \
             from the actual send."
        }
    }
}

fn pct(n: u64, of: u64) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

fn thresholds(o: &mut String, r: &RunReport) {
    if r.thresholds.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<section id=\"thresholds\"><h2>Thresholds</h2><table><tr><th>metric</th><th>condition</th>\
         <th>observed</th><th>result</th></tr>"
    );
    for t in &r.thresholds {
        let observed = match super::text::threshold_observed(r, t) {
            (observed, Some(why)) => format!("{} ({})", esc(&observed), esc(&why)),
            (observed, None) => esc(&observed),
        };
        let (v, c) = if t.pass {
            ("pass", "pass")
        } else {
            ("FAIL", "fail")
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{observed}</td><td><span class=\"verdict {c}\">{v}</span></td></tr>",
            esc(&t.threshold.key),
            esc(&t.threshold.expr)
        );
    }
    let _ = writeln!(o, "</table></section>");
}

/// A shaded span of the time axis: an event window's occurrence.
struct Shade {
    from: f64,
    to: f64,
    label: String,
}

fn shades(r: &RunReport) -> Vec<Shade> {
    let Some(log) = &r.events else {
        return Vec::new();
    };
    log.events
        .iter()
        .flat_map(|e| &e.occurrences)
        .flat_map(|o| {
            o.windows.iter().map(move |w| Shade {
                from: o.fired.as_secs_f64(),
                to: (o.fired + w.duration).as_secs_f64(),
                label: format!(
                    "{} #{}: {}{}",
                    w.name,
                    o.n,
                    fmt_duration(w.duration),
                    if w.converged {
                        ""
                    } else {
                        " (never converged)"
                    }
                ),
            })
        })
        .collect()
}

/// Latency percentiles over time per step, and requests per second by status class.
fn over_time(o: &mut String, r: &RunReport, shades: &[Shade]) {
    let series = &r.agg.series;
    let _ = writeln!(o, "<section id=\"over-time\"><h2>Over time</h2>");
    if series.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">No whole second was recorded.</p></section>"
        );
        return;
    }
    let x_max = series.last().map_or(1.0, |s| s.t_s as f64 + 1.0);
    // Requests per second by status class (and failures without a response, and drops).
    let mut stacks: Vec<Vec<f64>> = vec![Vec::with_capacity(series.len()); CLASSES.len()];
    for s in series {
        let mut by_class = [0u64; 4];
        for (code, n) in &s.status {
            if let Some(c) = (*code as usize / 100).checked_sub(2).filter(|c| *c < 4) {
                by_class[c] += n;
            }
        }
        let grpc_ok = s.grpc.get(&0).copied().unwrap_or(0);
        let grpc_failed = s.grpc.values().sum::<u64>() - grpc_ok;
        let answered: u64 = s.status.values().sum::<u64>() + grpc_ok + grpc_failed + s.n_delivered;
        for (c, n) in by_class.iter().enumerate() {
            stacks[c].push(*n as f64);
        }
        stacks[4].push(grpc_ok as f64);
        stacks[5].push(grpc_failed as f64);
        stacks[6].push(s.n_delivered as f64);
        stacks[7].push(s.n_requests.saturating_sub(answered) as f64);
        stacks[8].push(s.n_dropped as f64);
    }
    // The gRPC and message classes only when there were any (an HTTP run's legend stays as it was).
    let grpc = series.iter().any(|s| !s.grpc.is_empty());
    let delivered = series.iter().any(|s| s.n_delivered > 0);
    let shown = |i: usize| match i {
        4 | 5 => grpc,
        6 => delivered,
        _ => true,
    };
    let _ = writeln!(o, "<h3>Requests per second by status class</h3>");
    legend(
        o,
        CLASSES
            .iter()
            .enumerate()
            .filter(|(i, _)| shown(*i))
            .map(|(_, (n, c))| (*n, *c)),
    );
    let bars: Vec<(&str, &str, Vec<f64>)> = CLASSES
        .iter()
        .zip(stacks)
        .enumerate()
        .filter(|(i, _)| shown(*i))
        .map(|(_, ((n, c), v))| (*n, *c, v))
        .collect();
    o.push_str(&bar_chart("requests per second", x_max, &bars, shades));
    if !shades.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">Shaded: event windows (from the action to the probe that \
             converged); hover for their names and durations.</p>"
        );
    }
    let _ = writeln!(
        o,
        "<h3>Latency percentiles per second, by step</h3><p class=\"note\">Log scale. {} A point \
         marked ≥ in its tooltip is a lower bound: dropped requests fall in it.</p>",
        model_note(r)
    );
    let names: Vec<&str> = QUANTILE_LINES.iter().map(|(n, _)| *n).collect();
    legend(o, names.iter().copied().zip(PALETTE));
    let tags = timed_steps(r);
    for t in tags.iter().take(MAX_STEP_CHARTS) {
        let mut lines: Vec<Line> = QUANTILE_LINES
            .iter()
            .zip(PALETTE)
            .map(|((name, _), color)| Line {
                name: name.to_string(),
                color,
                points: Vec::new(),
            })
            .collect();
        for s in series {
            let Some(st) = s.tags.iter().find(|x| x.name == t.name) else {
                continue;
            };
            let Some(h) = second_latency(&st.latency, &st.dropped_lag) else {
                continue;
            };
            for (line, (_, q)) in lines.iter_mut().zip(QUANTILE_LINES) {
                let v = match q {
                    Some(q) => h.value_at_quantile(q),
                    None => h.max(),
                };
                line.points.push((s.t_s as f64 + 0.5, v as f64));
            }
        }
        let _ = writeln!(o, "<h3>{}</h3>", esc(&t.name));
        o.push_str(&line_chart(
            &format!("latency of {}", t.name),
            Axis::Time { max: x_max },
            &lines,
            shades,
            SHORT,
        ));
    }
    if tags.len() > MAX_STEP_CHARTS {
        let _ = writeln!(
            o,
            "<p class=\"note\">{} more steps are in the table below.</p>",
            tags.len() - MAX_STEP_CHARTS
        );
    }
    let _ = writeln!(o, "</section>");
}

const QUANTILE_LINES: [(&str, Option<f64>); 4] = [
    ("p50", Some(0.5)),
    ("p95", Some(0.95)),
    ("p99", Some(0.99)),
    ("max", None),
];

/// A second's latency with its dropped requests' lower bounds in it (as the report's totals count
/// them); `None` when empty or undecodable.
fn second_latency(latency: &str, dropped: &str) -> Option<Histogram<u64>> {
    let mut h = decode_histogram(latency).ok()?;
    if let Ok(d) = decode_histogram(dropped) {
        h.add(&d).ok()?;
    }
    (!h.is_empty()).then_some(h)
}

/// The steps (tags) that saw requests: the ones with something to chart.
fn timed_steps(r: &RunReport) -> Vec<&TagStats> {
    r.agg
        .total
        .tags
        .iter()
        .filter(|t| t.n_requests > 0)
        .collect()
}

/// The percentile spectrum of each step's latency: log scale to 99.999%, as HdrHistogram plots it.
fn spectrum(o: &mut String, r: &RunReport) {
    let tags = timed_steps(r);
    if tags.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<section id=\"spectrum\"><h2>Latency by percentile</h2><p class=\"note\">The whole run \
         per step; x: percentile on a log scale of 1/(1−q), so each step right is ten times rarer.</p>"
    );
    legend(
        o,
        tags.iter()
            .take(PALETTE.len())
            .map(|t| t.name.as_str())
            .zip(PALETTE),
    );
    let lines: Vec<Line> = tags
        .iter()
        .take(PALETTE.len())
        .zip(PALETTE)
        .map(|(t, color)| {
            let mut h = t.latency.clone();
            if !t.dropped_lag.is_empty() {
                let _ = h.add(&t.dropped_lag);
            }
            let top = (h.len() as f64).log10().min(5.0);
            let points = (0..=50)
                .map(|i| i as f64 / 10.0)
                .take_while(|x| *x <= top.max(0.1) + 1e-9)
                .map(|x| (x, h.value_at_quantile(1.0 - 10f64.powf(-x)) as f64))
                .collect();
            Line {
                name: t.name.clone(),
                color,
                points,
            }
        })
        .collect();
    o.push_str(&line_chart(
        "latency by percentile",
        Axis::Percentile,
        &lines,
        &[],
        TALL,
    ));
    let _ = writeln!(o, "</section>");
}

fn steps_table(o: &mut String, r: &RunReport) {
    let secs = r.info.window.as_secs_f64().max(1e-9);
    let _ = writeln!(
        o,
        "<section id=\"steps\"><h2>Steps</h2><table><tr><th>step</th><th>scenario</th>\
         <th>requests</th><th>req/s</th><th>errors</th><th>dropped</th>"
    );
    for (_, name) in QUANTILES.iter().filter(|(q, _)| *q != 0.75 && *q != 0.9) {
        let _ = write!(o, "<th>{name}</th>");
    }
    let _ = writeln!(o, "<th>max</th><th>checks failed</th></tr>");
    for (i, t) in r.agg.total.tags.iter().enumerate() {
        let lat = Dist::latency(t);
        let (passed, failed) = t.check_totals();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td>",
            esc(&t.name),
            esc(r.scenario_of(i).map_or("", |s| s.name.as_str())),
            t.n_requests,
            t.n_requests as f64 / secs,
            t.n_errors(),
            t.n_dropped
        );
        for (_, name) in QUANTILES.iter().filter(|(q, _)| *q != 0.75 && *q != 0.9) {
            let _ = write!(o, "<td>{}</td>", quantile(&lat, name));
        }
        let checks = match passed + failed {
            0 => "–".to_string(),
            n => format!("{failed} of {n}"),
        };
        let _ = writeln!(
            o,
            "<td>{}</td><td>{checks}</td></tr>",
            match lat.count {
                0 => "–".to_string(),
                _ => fmt_duration(lat.max),
            }
        );
    }
    let _ = writeln!(o, "</table></section>");
}

fn target(o: &mut String, r: &RunReport, shades: &[Shade]) {
    let Some(tel) = &r.target else {
        return;
    };
    let _ = writeln!(
        o,
        "<section id=\"target\"><h2>Target</h2><p class=\"note\">What was watched, each second \
         (watching cost {:.2}% of a core).</p>",
        100.0 * tel.cost_cpu.as_secs_f64() / tel.elapsed.as_secs_f64().max(1e-9)
    );
    let x_max = r.agg.series.len().max(1) as f64;
    for (i, s) in tel.series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "<h3>{} · {} ({})</h3>",
            esc(&s.watch),
            esc(&s.name),
            s.unit.name()
        );
        let line = Line {
            name: s.name.clone(),
            color: PALETTE[i % PALETTE.len()],
            points: s
                .points
                .iter()
                .map(|(t, v)| (*t as f64 + 0.5, *v))
                .collect(),
        };
        let fmt = match s.unit {
            Unit::Bytes => ValueFormat::Bytes,
            Unit::Seconds => ValueFormat::Seconds,
            _ => ValueFormat::Plain,
        };
        o.push_str(&chart(
            &s.name,
            Axis::Time {
                max: x_max.max(line.points.last().map_or(1.0, |p| p.0 + 0.5)),
            },
            &[line],
            &[],
            shades,
            fmt,
            SHORT,
        ));
    }
    let _ = writeln!(o, "</section>");
}

fn events(o: &mut String, r: &RunReport) {
    let Some(log) = &r.events else {
        return;
    };
    let _ = writeln!(
        o,
        "<section id=\"events\"><h2>Events</h2><table><tr><th>event</th><th>#</th><th>fired at</th>\
         <th>action</th><th>window</th><th>took</th><th>converged</th></tr>"
    );
    for e in &log.events {
        for occ in &e.occurrences {
            let action = match &occ.action {
                Ok(()) => "ok".to_string(),
                Err(why) => format!("failed: {}", esc(why)),
            };
            for w in &occ.windows {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{action}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.name),
                    occ.n,
                    fmt_duration(occ.fired),
                    esc(&w.name),
                    fmt_duration(w.duration),
                    if w.converged { "yes" } else { "no" }
                );
            }
        }
    }
    let _ = writeln!(o, "</table></section>");
}

/// `regbench stress -o html=FILE`: the degradation curve — achieved rate, latency and errors against
/// the offered load, with the SLO's limit, the knee and the breaking point marked — the recovery after
/// the burst, and every step.
pub fn render_stress(r: &StressReport) -> String {
    let mut o = page(&format!("regbench stress — {}", r.target));
    let (unit, load) = match r.model {
        "closed" => (" VUs", "virtual users"),
        _ => ("/s", "offered rate"),
    };
    let show = |v: f64| format!("{v:.1}{unit}");
    let class = match r.verdict {
        StressVerdict::Limit | StressVerdict::NoLimitBelowMax => "pass",
        StressVerdict::Interrupted | StressVerdict::OutOfTime => "warn",
        _ => "fail",
    };
    let _ = writeln!(
        o,
        "<section id=\"summary\"><h2>Result</h2><p><span class=\"verdict {class}\">{}</span></p><dl>",
        r.verdict.name()
    );
    let mut facts = vec![
        ("target", esc(&r.target)),
        ("SLO", esc(&r.slo.join(", "))),
        (
            "steps",
            format!(
                "{} of {} ({} settling), precision {:.0}%",
                r.steps.len(),
                fmt_duration(r.step),
                fmt_duration(r.settle),
                100.0 * r.precision
            ),
        ),
        (
            "max sustainable",
            r.max_sustainable.map_or("–".into(), show),
        ),
        ("first failing", r.first_failing.map_or("–".into(), show)),
        ("knee", r.knee.map_or("–".into(), show)),
        (
            "breaking point",
            r.breaking_point.map_or("–".into(), |(v, why)| {
                let why = match why {
                    Broke::Errors => "errors above 5%",
                    Broke::Throughput => "throughput fell while the load rose",
                };
                format!("{} ({why})", show(v))
            }),
        ),
    ];
    if let Some((at, why)) = &r.generator_saturated {
        facts.push((
            "generator saturated",
            format!("at {}: {}", show(*at), esc(why)),
        ));
    }
    if let Some(u) = &r.usl {
        facts.push((
            "USL fit",
            format!(
                "λ {:.1}/s, σ {:.4}, κ {:.6}, peak {} (R² {:.3})",
                u.lambda,
                u.sigma,
                u.kappa,
                u.peak_n.map_or("none".into(), |n| format!("at {n:.0} VUs")),
                u.r2
            ),
        ));
    }
    facts.push(("took", fmt_duration(r.wall)));
    for (k, v) in facts {
        let _ = writeln!(o, "<dt>{k}</dt><dd>{v}</dd>");
    }
    let _ = writeln!(o, "</dl></section>");

    let mut rows: Vec<&StepRow> = r.steps.iter().collect();
    rows.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let x_max = rows.last().map_or(1.0, |s| s.offered) * 1.05;
    let x = Axis::Load { max: x_max, unit };
    let mut marks = Vec::new();
    if let Some(first) = r.first_failing {
        marks.push(Shade {
            from: first,
            to: x_max,
            label: format!("the SLO fails from {}", show(first)),
        });
    }
    for (at, label) in [
        (r.knee, "knee"),
        (r.breaking_point.map(|b| b.0), "breaking point"),
    ] {
        if let Some(at) = at {
            marks.push(Shade {
                from: at,
                to: at + x_max / 400.0,
                label: format!("{label} at {}", show(at)),
            });
        }
    }
    let _ = writeln!(
        o,
        "<section id=\"curve\"><h2>Degradation curve</h2><p class=\"note\">Each point is a step, \
         measured after its settling time, against the {load}; shaded where the SLO fails, with the \
         knee and the breaking point marked.</p><h3>Achieved requests per second</h3>"
    );
    let mut throughput = vec![Line {
        name: "achieved".into(),
        color: PALETTE[0],
        points: rows.iter().map(|s| (s.offered, s.achieved)).collect(),
    }];
    if r.model != "closed" {
        throughput.push(Line {
            name: "offered".into(),
            color: "#bbbbbb",
            points: vec![(0.0, 0.0), (x_max, x_max)],
        });
    }
    legend(
        &mut o,
        throughput.iter().map(|l| (l.name.as_str(), l.color)),
    );
    o.push_str(&chart(
        "achieved",
        x,
        &throughput,
        &[],
        &marks,
        ValueFormat::Plain,
        TALL,
    ));
    let _ = writeln!(o, "<h3>Latency</h3>");
    let latency: Vec<Line> = ["p50", "p95", "p99", "p99.9"]
        .iter()
        .enumerate()
        .map(|(i, name)| Line {
            name: name.to_string(),
            color: PALETTE[i],
            points: rows
                .iter()
                .filter_map(|s| Some((s.offered, s.latency[i]?.as_nanos() as f64)))
                .collect(),
        })
        .collect();
    legend(&mut o, latency.iter().map(|l| (l.name.as_str(), l.color)));
    o.push_str(&chart(
        "latency",
        x,
        &latency,
        &[],
        &marks,
        ValueFormat::Duration,
        TALL,
    ));
    let _ = writeln!(o, "<h3>Errors (% of requests)</h3>");
    let errors = [Line {
        name: "errors %".into(),
        color: PALETTE[1],
        points: rows
            .iter()
            .map(|s| (s.offered, 100.0 * s.error_rate))
            .collect(),
    }];
    o.push_str(&chart(
        "errors",
        x,
        &errors,
        &[],
        &marks,
        ValueFormat::Plain,
        SHORT,
    ));
    let _ = writeln!(o, "</section>");

    if let Some(rec) = &r.recovery {
        let _ = writeln!(
            o,
            "<section id=\"recovery\"><h2>Recovery</h2><p class=\"note\">{} for {}, then {}: \
             p99 each second after the burst ended; {}.</p>",
            show(rec.burst_rate),
            fmt_duration(rec.burst_for),
            show(rec.safe_rate),
            match rec.recovered_after {
                Some(d) => format!("within the SLO again for good after {}", fmt_duration(d)),
                None => format!("not back within the SLO in {}", fmt_duration(rec.window)),
            }
        );
        let p99 = [Line {
            name: "p99".into(),
            color: PALETTE[2],
            points: rec
                .seconds
                .iter()
                .filter_map(|(t, p99, ..)| Some((*t as f64 + 0.5, (*p99)?.as_nanos() as f64)))
                .collect(),
        }];
        let secs = rec.seconds.len().max(1) as f64;
        o.push_str(&chart(
            "recovery",
            Axis::Time { max: secs },
            &p99,
            &[],
            &[],
            ValueFormat::Duration,
            SHORT,
        ));
        let _ = writeln!(o, "</section>");
    }

    let _ = writeln!(
        o,
        "<section id=\"steps\"><h2>Steps</h2><table><tr><th>phase</th><th>{load}</th>\
         <th>achieved/s</th><th>requests</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th>\
         <th>errors</th><th>SLO</th><th>valid</th></tr>"
    );
    for s in &r.steps {
        let q = |d: Option<Duration>| d.map_or("–".into(), fmt_duration);
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.2}%</td><td>{}</td><td>{}</td></tr>",
            s.phase,
            show(s.offered),
            s.achieved,
            s.requests,
            q(s.latency[0]),
            q(s.latency[1]),
            q(s.latency[2]),
            q(s.latency[3]),
            100.0 * s.error_rate,
            if s.slo_pass { "held" } else { "FAILED" },
            if s.valid { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        o,
        "</table></section><footer>regbench {}</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// `regbench compare -o html=FILE`: the verdict, and per step and metric the change from the
/// baseline with its 95% interval drawn on one axis (a forest plot) beside the table.
pub fn render_compare(r: &CompareReport) -> String {
    use super::compare::{change, value};
    let mut o = page(&format!("regbench compare — {} → {}", r.base, r.new));
    let n = r.regressions().count();
    let (verdict, class) = match n {
        0 => ("no regression beyond the limit".to_string(), "pass"),
        n => (
            format!("{n} regressed beyond {:.0}%", 100.0 * r.limit),
            "fail",
        ),
    };
    let _ = writeln!(
        o,
        "<section id=\"summary\"><h2>Verdict</h2><p><span class=\"verdict {class}\">{verdict}</span></p>\
         <p class=\"note\">Bootstrap over whole seconds ({} and {}), 95% intervals; a regression is \
         significant (its interval excludes no change) and worse than {:.0}%.</p>",
        r.seconds.0,
        r.seconds.1,
        100.0 * r.limit
    );
    for note in &r.notes {
        let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(note));
    }
    let _ = writeln!(o, "</section>");

    // The forest plot: relative changes (errors in percentage points share the axis as %).
    let rows: Vec<&crate::analyze::compare::Change> =
        r.changes.iter().filter(|c| c.low.is_finite()).collect();
    let span = rows
        .iter()
        .flat_map(|c| [c.low.abs(), c.high.abs(), c.change.abs()])
        .fold(r.limit * 1.5, f64::max)
        .min(10.0)
        * 100.0;
    let (row_h, label_w, plot_w) = (22.0, 240.0, W - 240.0 - RIGHT);
    let height = TOP + BOTTOM + row_h * rows.len().max(1) as f64;
    let sx = |pct: f64| label_w + plot_w * ((pct.clamp(-span, span) + span) / (2.0 * span));
    let _ = write!(
        o,
        "<section id=\"changes\"><h2>Changes</h2><svg xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {W} {height}\" width=\"100%\" role=\"img\" aria-label=\"changes\" class=\"chart\">"
    );
    for (x, dash) in [
        (0.0, ""),
        (100.0 * r.limit, "4 3"),
        (-100.0 * r.limit, "4 3"),
    ] {
        let _ = write!(
            o,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\" stroke=\"#999\" \
             stroke-dasharray=\"{dash}\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3:+.0}%</text>",
            sx(x),
            height - BOTTOM,
            height - 8.0,
            x
        );
    }
    for (i, c) in rows.iter().enumerate() {
        let y = TOP + row_h * (i as f64 + 0.5);
        let (color, _) = verdict_style(c.verdict);
        let tip = format!(
            "{} {}: {} → {}, {} [{}, {}], {}",
            c.step,
            c.metric.name(),
            value(c.metric, c.base),
            value(c.metric, c.new),
            change(c.metric, c.change),
            change(c.metric, c.low),
            change(c.metric, c.high),
            c.verdict.name()
        );
        let _ = write!(
            o,
            "<text x=\"4\" y=\"{:.1}\">{} {}</text>\
             <line class=\"line\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"2\"><title>{}</title></line>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\"><title>{}</title></circle>",
            y + 4.0,
            esc(&c.step),
            c.metric.name(),
            sx(100.0 * c.low),
            sx(100.0 * c.high),
            esc(&tip),
            sx(100.0 * c.change),
            esc(&tip)
        );
    }
    let _ = writeln!(o, "</svg>");
    let _ = writeln!(
        o,
        "<table><tr><th>step</th><th>metric</th><th>base</th><th>new</th><th>change</th>\
         <th>95% interval</th><th>verdict</th></tr>"
    );
    for c in &r.changes {
        let (_, class) = verdict_style(c.verdict);
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td>\
             <td><span class=\"verdict {class}\" style=\"color:{}\">{}</span></td></tr>",
            esc(&c.step),
            c.metric.name(),
            value(c.metric, c.base),
            value(c.metric, c.new),
            change(c.metric, c.change),
            change(c.metric, c.low),
            change(c.metric, c.high),
            if class.is_empty() { "#222" } else { "#fff" },
            c.verdict.name()
        );
    }
    let _ = writeln!(
        o,
        "</table></section><footer>regbench {}</footer></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// A comparison verdict's colour in the plot and its badge class in the table (none: plain text).
fn verdict_style(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Regressed => ("#d62728", "fail"),
        Verdict::WorseWithinLimit => ("#ff7f0e", "warn"),
        Verdict::Improved => ("#2ca02c", "pass"),
        _ => ("#1f77b4", ""),
    }
}

fn legend<'a>(o: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let _ = write!(o, "<div class=\"legend\">");
    for (name, color) in items {
        let _ = write!(
            o,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(name)
        );
    }
    let _ = writeln!(o, "</div>");
}

struct Line {
    name: String,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy)]
enum Axis {
    /// Seconds from 0 to `max`; a second's point sits at its middle (t + 0.5).
    Time { max: f64 },
    /// Offered load (a stress curve) from 0 to `max`, in `unit` (`/s`, ` VUs`).
    Load { max: f64, unit: &'static str },
    /// log10(1 / (1 − q)) from 0 (p0) to 5 (p99.999).
    Percentile,
}

#[derive(Clone, Copy)]
enum ValueFormat {
    /// Nanoseconds, printed as durations.
    Duration,
    Bytes,
    Seconds,
    Plain,
}

impl ValueFormat {
    fn show(self, v: f64) -> String {
        match self {
            ValueFormat::Duration => fmt_ns(v),
            ValueFormat::Bytes => fmt_bytes(v),
            ValueFormat::Seconds => fmt_duration(Duration::from_secs_f64(v.max(0.0))),
            ValueFormat::Plain if v.abs() >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
            ValueFormat::Plain => format!("{v:.3}"),
        }
    }
}

const W: f64 = 900.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// Durations on a log scale.
fn line_chart(title: &str, x: Axis, lines: &[Line], shades: &[Shade], height: f64) -> String {
    chart(title, x, lines, &[], shades, ValueFormat::Duration, height)
}

/// Stacked bars per second, counts on a linear scale.
fn bar_chart(title: &str, x_max: f64, bars: &[(&str, &str, Vec<f64>)], shades: &[Shade]) -> String {
    chart(
        title,
        Axis::Time { max: x_max },
        &[],
        bars,
        shades,
        ValueFormat::Plain,
        TALL,
    )
}

/// One SVG chart: axes and ticks, shaded spans, stacked bars (one per second), lines. Durations
/// are drawn on a log scale (tails span decades), everything else on a linear one.
fn chart(
    title: &str,
    x: Axis,
    lines: &[Line],
    bars: &[(&str, &str, Vec<f64>)],
    shades: &[Shade],
    fmt: ValueFormat,
    height: f64,
) -> String {
    let log = matches!(fmt, ValueFormat::Duration);
    let (pw, ph) = (W - LEFT - RIGHT, height - TOP - BOTTOM);
    let x_max = match x {
        Axis::Time { max } | Axis::Load { max, .. } => max.max(1.0),
        Axis::Percentile => 5.0,
    };
    let n_bars = bars.first().map_or(0, |b| b.2.len());
    let stacked_max = (0..n_bars)
        .map(|i| bars.iter().map(|b| b.2[i]).sum::<f64>())
        .fold(0.0, f64::max);
    let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, stacked_max), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (y_lo, y_hi) = match log {
        true => {
            let lo = if lo.is_finite() { lo.max(1.0) } else { 1.0 };
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.max(lo * 10.0).log10().ceil()),
            )
        }
        false => (
            0.0,
            linear_scale(hi.max(if lo.is_finite() { lo } else { 0.0 })).0,
        ),
    };
    let sx = |v: f64| LEFT + pw * (v / x_max).clamp(0.0, 1.0);
    let sy = |v: f64| {
        let f = match log {
            true => (v.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()).max(1e-9),
            false => v / y_hi.max(1e-9),
        };
        TOP + ph * (1.0 - f.clamp(0.0, 1.0))
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height}\" width=\"100%\" \
         role=\"img\" aria-label=\"{}\" class=\"chart\">",
        esc(title)
    );
    for sh in shades {
        let (a, b) = (sx(sh.from), sx(sh.to.max(sh.from)));
        let _ = write!(
            s,
            "<rect class=\"window\" x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" \
             fill=\"#ffd54f\" fill-opacity=\"0.35\"><title>{}</title></rect>",
            (b - a).max(1.5),
            esc(&sh.label)
        );
    }
    // Y grid and labels.
    let ticks: Vec<f64> = match log {
        true => {
            let mut t = Vec::new();
            let mut v = y_lo;
            while v <= y_hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        }
        false => {
            let step = linear_scale(y_hi).1;
            (0..)
                .map(|i| i as f64 * step)
                .take_while(|v| *v <= y_hi * 1.0001)
                .collect()
        }
    };
    for t in ticks {
        let y = sy(t);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&fmt.show(t))
        );
    }
    // X labels.
    let x_ticks: Vec<(f64, String)> = match x {
        Axis::Percentile => ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
        Axis::Time { .. } | Axis::Load { .. } => {
            let unit = match x {
                Axis::Load { unit, .. } => unit,
                _ => "s",
            };
            // Whole seconds (or whole units of load) at least.
            let step = nice_step(x_max / 8.0).max(1.0);
            (0..)
                .map(|i| i as f64 * step)
                .take_while(|v| *v <= x_max + 1e-9)
                .map(|v| (v, format!("{v}{unit}")))
                .collect()
        }
    };
    for (v, label) in x_ticks {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            sx(v),
            height - 8.0
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        TOP + ph,
        W - RIGHT,
        TOP + ph,
        TOP + ph
    );
    // Bars: second i spans [i, i + 1).
    let bw = (pw / x_max * 0.85).max(0.5);
    for i in 0..n_bars {
        let mut base = 0.0;
        for (name, color, values) in bars {
            let v = values[i];
            if v <= 0.0 {
                continue;
            }
            let (y0, y1) = (sy(base), sy(base + v));
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{y1:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" \
                 fill=\"{color}\"><title>{i}s: {} {}</title></rect>",
                sx(i as f64) + 0.5,
                (y0 - y1).max(0.5),
                v,
                esc(name)
            );
            base += v;
        }
    }
    for l in lines {
        if l.points.is_empty() {
            continue;
        }
        let d: Vec<String> = l
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"line\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" \
             points=\"{}\"><title>{}</title></polyline>",
            l.color,
            d.join(" "),
            esc(&l.name)
        );
        for (px, y) in &l.points {
            let at = match x {
                Axis::Time { .. } => format!("{:.0}s", px - 0.5),
                Axis::Load { unit, .. } => format!("{px:.0}{unit}"),
                Axis::Percentile => format!("p{}", fmt_percentile(*px)),
            };
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{}\"><title>{} at {at}: {}</title></circle>",
                sx(*px),
                sy(*y),
                l.color,
                esc(&l.name),
                esc(&fmt.show(*y))
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_percentile(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let s = format!("{q:.5}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1, 2 or 5 × a power of ten at or above `v`.
fn nice_step(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= v)
        .unwrap_or(10.0 * p)
}

/// A linear axis's top and tick step for values up to `v`: four or five round steps.
fn linear_scale(v: f64) -> (f64, f64) {
    if v <= 0.0 {
        return (1.0, 0.25);
    }
    let step = nice_step(v / 5.0);
    ((v / step).ceil().max(1.0) * step, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn nice_steps_are_1_2_5() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.5), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(130.0), 200.0);
        assert_eq!(nice_step(0.12), 0.2);
        assert_eq!(linear_scale(2100.0), (2500.0, 500.0));
        let (top, step) = linear_scale(0.6);
        assert!((top - 0.6).abs() < 1e-9 && (step - 0.2).abs() < 1e-12);
        assert_eq!(fmt_percentile(2.0), "99");
        assert_eq!(fmt_percentile(5.0), "99.999");
    }
}
