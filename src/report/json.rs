//! The JSON report. Its shape is `schema/report.schema.json` (checked by a test); bump
//! [`SCHEMA_VERSION`] on any incompatible change. Durations are integer nanoseconds (`*_ns`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::PlanRecord;
use super::{RunReport, ScenarioInfo};
use crate::aggregate::{Dist, TagStats, HIST_MAX_NS, HIST_SIGFIG, HIST_UNIT, QUANTILES};
use crate::analyze::target;
use crate::plan::{HttpVersion, Model, Stage};
use crate::telemetry::Telemetry;

pub const SCHEMA_VERSION: u32 = 3;

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn dist(d: &Dist) -> Value {
    let mut m = Map::new();
    m.insert("count".into(), d.count.into());
    m.insert("min_ns".into(), ns(d.min).into());
    m.insert("mean_ns".into(), ns(d.mean).into());
    m.insert("stdev_ns".into(), ns(d.stdev).into());
    m.insert("max_ns".into(), ns(d.max).into());
    for (i, (_, name)) in QUANTILES.iter().enumerate() {
        m.insert(
            format!("{}_ns", name.replace('.', "_")),
            ns(d.quantiles[i]).into(),
        );
    }
    // Lower bounds: statistics that dropped requests (latency unknown, at least their lag) fall into.
    let mut censored: Vec<&str> = QUANTILES
        .iter()
        .zip(d.censored)
        .filter(|(_, c)| *c)
        .map(|((_, name), _)| *name)
        .collect();
    if d.n_censored > 0 {
        censored.extend(["mean", "stdev", "max"]);
    }
    m.insert("censored".into(), json!(censored));
    m.insert("lower_bounds".into(), d.n_censored.into());
    Value::Object(m)
}

fn counts(t: &TagStats) -> (Value, Value) {
    let status: Map<String, Value> = t
        .status
        .iter()
        .map(|(code, n)| (code.to_string(), (*n).into()))
        .collect();
    let errors: Map<String, Value> = crate::sample::ErrorKind::ALL
        .iter()
        .filter(|k| t.errors[k.index()] > 0)
        .map(|k| (k.name().to_string(), t.errors[k.index()].into()))
        .collect();
    (Value::Object(status), Value::Object(errors))
}

/// gRPC status counts by code name (`OK`, `UNAVAILABLE`).
fn grpc_counts(grpc: &std::collections::BTreeMap<u8, u64>) -> Value {
    grpc.iter()
        .map(|(code, n)| {
            (
                crate::sample::grpc_code_name(*code).into_owned(),
                Value::from(*n),
            )
        })
        .collect::<Map<String, Value>>()
        .into()
}

fn tag(t: &TagStats, secs: f64) -> Value {
    let (status, errors) = counts(t);
    json!({
        "name": t.name,
        "requests": t.n_requests,
        "dropped": t.n_dropped,
        "redirects": t.n_redirects,
        "success": t.n_success(),
        "auth_challenges": t.n_challenges,
        "errors_total": t.n_errors(),
        "rps": t.n_requests as f64 / secs,
        "bytes_in": t.bytes_in,
        "body_bytes": t.body_bytes,
        "decoded_bytes": t.decoded_bytes,
        "compressed": t.n_compressed,
        "undecoded": t.n_undecoded,
        "bytes_out": t.bytes_out,
        "latency": dist(&Dist::latency(t)),
        "service_time": dist(&Dist::of(&t.service_time)),
        "ttfb": dist(&Dist::of(&t.ttfb)),
        "lag": dist(&Dist::of(&t.lag)),
        "status_codes": status,
        "grpc_status": grpc_counts(&t.grpc),
        "delivered": t.n_delivered,
        "ws_close_codes": t.ws_close.iter().map(|(code, n)| (code.to_string(), Value::from(*n))).collect::<Map<String, Value>>(),
        "errors": errors,
        "checks": t.checks.iter().map(|c| json!({ "name": c.name, "passed": c.passed, "failed": c.failed })).collect::<Vec<_>>(),
    })
}

fn scenario(r: &RunReport, sc: &ScenarioInfo) -> Value {
    let http = r.info.http;
    let connections = |slots: u64, conns: u64| match http.version {
        HttpVersion::Http2 => http.h2_connections(slots),
        _ => conns,
    };
    let whole_slots = match &sc.model {
        Model::Open { max_inflight, .. } => (*max_inflight).min(sc.n_connections) as u64,
        Model::Closed { .. } => sc.n_connections as u64,
    };
    json!({
        "name": sc.name,
        "model": if sc.model.is_open() { "open" } else { "closed" },
        // This process's share; `whole_run` is every segment's together.
        "connections": connections(sc.segment_slots, sc.segment_connections),
        "slots": sc.segment_slots,
        "whole_run": {
            "connections": connections(whole_slots, sc.n_connections as u64),
            "slots": whole_slots,
        },
        "start_after_ns": ns(sc.start_after),
        "window_ns": ns(sc.window),
        // Where its entries are in `steps`: its steps and flow phases, and the entry its dropped
        // iterations are counted under.
        "step_index": { "first": sc.first_tag, "count": sc.n_tags, "drops": sc.drop_tag },
        "tags": sc.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<Map<String, Value>>(),
        "requested": {
            "iterations": sc.requested.n_requests,
            "duration_ns": sc.requested.duration.map(ns),
        },
        "open": match &sc.model {
            Model::Open { rate, arrival, max_inflight } => json!({
                "offered_rps": r.offered_rate(sc).unwrap_or(0.0),
                "achieved_rps": r.iteration_rate(sc),
                "arrival": arrival.name(),
                "start_rate": rate.start,
                "stages": stages(&rate.stages),
                "max_inflight": sc.segment_slots,
                "whole_run_max_inflight": max_inflight,
                "max_lag_ns": r.info.max_lag.map(ns),
                "dropped": r.n_dropped(sc),
                "queued": r.first_tag(sc).map_or(0, |t| t.n_queued),
                "unsent": r.first_tag(sc).map_or(0, |t| t.n_unsent),
            }),
            Model::Closed { .. } => Value::Null,
        },
        "closed": match &sc.model {
            Model::Closed { think, vus } => json!({
                "think_ns": ns(*think),
                "vu_stages": vus.as_ref().map(|p| stages(&p.stages)),
            }),
            Model::Open { .. } => Value::Null,
        },
    })
}

/// The whole run's plan: what every segment together sends, and its fingerprint. Headers and bodies
/// are left out (they may carry secrets) but are in the fingerprint.
fn plan(p: &PlanRecord) -> Value {
    json!({
        "fingerprint": p.fingerprint,
        "target": p.target,
        "unix_socket": p.unix_socket.as_ref().map(|p| p.display().to_string()),
        "keepalive": p.keepalive,
        "timeout_ns": ns(p.timeout),
        "max_lag_ns": p.max_lag.map(ns),
        "timer_slack_ns": ns(p.timer_slack),
        "warmup_ns": ns(p.warmup),
        "watch": p.watch.iter().map(|w| json!({
            "name": w.name,
            "pid": w.pid,
            "cmd": w.cmd,
            "scrape": w.scrape,
            "metrics": w.metrics,
        })).collect::<Vec<_>>(),
        "seed": p.seed,
        "segments": p.segments,
        "http": { "version": http_version(p.http.version), "streams": p.http.streams },
        "windows": p.windows,
        "scenarios": p.scenarios.iter().map(|s| json!({
            "name": s.name,
            "connections": s.connections,
            "start_after_ns": ns(s.start_after),
            "iterations": s.stop.n_requests,
            "duration_ns": s.stop.duration.map(ns),
            "model": match &s.model {
                Model::Open { rate, arrival, max_inflight } => json!({
                    "type": "open",
                    "arrival": arrival.name(),
                    "max_inflight": max_inflight,
                    "start_rate": rate.start,
                    "stages": stages(&rate.stages),
                }),
                Model::Closed { think, vus } => json!({
                    "type": "closed",
                    "think_ns": ns(*think),
                    "vu_start": vus.as_ref().map(|p| p.start),
                    "vu_stages": vus.as_ref().map(|p| stages(&p.stages)),
                }),
            },
            "steps": s.steps.iter().map(|st| json!({
                "name": st.name,
                "method": st.method,
                "path": st.path,
                "templated": st.templated,
                "flow": st.flow,
                "think_ns": ns(st.think),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn http_version(v: HttpVersion) -> &'static str {
    match v {
        HttpVersion::Auto => "auto",
        HttpVersion::Http1 => "1.1",
        HttpVersion::Http2 => "2",
    }
}

fn stages(s: &[Stage]) -> Vec<Value> {
    s.iter()
        .map(|st| json!({ "duration_ns": ns(st.duration), "target": st.target }))
        .collect()
}

/// A step's requests by the windows open when they were intended, and outside them all.
fn during(r: &RunReport, t: &TagStats) -> Value {
    let names = r.window_names();
    let mut m = Map::new();
    for (k, w) in t.during.iter().enumerate() {
        let name = names.get(k).copied().unwrap_or("outside");
        m.insert(
            name.to_string(),
            json!({
                "requests": w.n_requests,
                "failed": w.n_failed,
                "refused": w.n_refused,
                "latency": dist(&Dist::of(&w.latency)),
            }),
        );
    }
    Value::Object(m)
}

/// Every event's occurrences, and each window's convergence times.
fn events(r: &RunReport, log: &crate::report::EventLog) -> Value {
    json!({
        "events": log.events.iter().map(|e| json!({
            "name": e.name,
            "windows": e.windows,
            "skipped": e.n_skipped,
            "occurrences": e.occurrences.iter().map(|o| json!({
                "n": o.n,
                "due_ns": ns(o.due),
                "fired_ns": ns(o.fired),
                "fired_unix_ms": o.fired_unix_ms,
                "action_ok": o.action.is_ok(),
                "action_error": o.action.as_ref().err(),
                "windows": o.windows.iter().map(|w| json!({
                    "name": w.name,
                    "duration_ns": ns(w.duration),
                    "converged": w.converged,
                    "probes": w.n_probes,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "convergence": r.window_names().iter().map(|name| {
            let (h, n_open) = r.convergence(name);
            json!({ "window": name, "unconverged": n_open, "duration": dist(&Dist::of(&h)) })
        }).collect::<Vec<_>>(),
    })
}

/// The unit a threshold's observed value is in: ns for request durations, the series' own for a
/// target metric (per second for a slope).
fn threshold_unit(r: &RunReport, t: &crate::plan::threshold::Threshold) -> String {
    if matches!(t.filter, crate::plan::threshold::Filter::Relative { .. }) {
        return "ratio".into();
    }
    if t.metric.is_duration() {
        return "ns".into();
    }
    let series = r.target.as_ref().and_then(|tel| target::series_of(t, tel));
    match (series, t.metric.is_slope()) {
        (Some(s), true) => format!("{}/s", s.unit.name()),
        (Some(s), false) => s.unit.name().into(),
        (None, _) => String::new(),
    }
}

/// The watched target's values in second `t`, by watch and series.
fn target_at(tel: &Telemetry, t: u64) -> Value {
    let mut by_watch = Map::new();
    for s in &tel.series {
        if let Ok(i) = s.points.binary_search_by_key(&t, |p| p.0) {
            let w = by_watch.entry(s.watch.clone()).or_insert_with(|| json!({}));
            w[&s.name] = json!(s.points[i].1);
        }
    }
    Value::Object(by_watch)
}

/// The watched target: what was watched, each series with its summary, trend and points, and what
/// watching cost.
fn target(tel: &Telemetry, from: u64) -> Value {
    json!({
        "judged_from_s": from,
        "watches": tel.watches.iter().map(|w| json!({
            "name": w.name,
            "pids": w.pids,
            "exited": w.exited.iter().map(|(pid, at)| json!({"pid": pid, "at_s": at})).collect::<Vec<_>>(),
            "scrape": w.scrape,
            "scrapes_ok": w.scrapes_ok,
            "scrapes_failed": w.scrapes_failed,
            "last_error": w.last_error,
            "never_seen": w.never_seen,
        })).collect::<Vec<_>>(),
        "series": tel.series.iter().map(|s| {
            let sum = target::summarize(&s.points, from);
            let trend = target::trend(&s.points, from);
            json!({
                "watch": s.watch,
                "name": s.name,
                "unit": s.unit.name(),
                "n": sum.map_or(0, |x| x.n),
                "min": sum.map(|x| x.min),
                "mean": sum.map(|x| x.mean),
                "max": sum.map(|x| x.max),
                "last": sum.map(|x| x.last),
                "trend": trend.map(|t| json!({
                    "slope_per_s": t.slope,
                    "ci95_per_s": [t.lo, t.hi],
                    "r2": t.r2,
                    "n": t.n,
                    "span_s": t.span,
                    "direction": match t.direction {
                        target::Direction::Grows => "grows",
                        target::Direction::Shrinks => "shrinks",
                        target::Direction::Flat => "flat",
                    },
                })),
                "points": s.points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "cost": {
            "cpu_ns": ns(tel.cost_cpu),
            "elapsed_ns": ns(tel.elapsed),
            "cpu_s": tel.cost_cpu.as_secs_f64(),
            "elapsed_s": tel.elapsed.as_secs_f64(),
            "share_of_core": tel.cost_cpu.as_secs_f64() / tel.elapsed.as_secs_f64().max(1e-9),
        },
    })
}

pub fn render(r: &RunReport) -> String {
    let info = &r.info;
    let secs = info.window.as_secs_f64().max(1e-9);
    let all = r.agg.total.total();
    let mut overall = tag(&all, secs);
    // The whole run's object carries connection stats too.
    overall["connections"] = json!({
        "new": all.n_new_connections,
        "reused": all.n_reused,
        "connect": dist(&Dist::of(&all.connect)),
        "tls": (all.n_tls_handshakes > 0).then(|| json!({
            "handshakes": all.n_tls_handshakes,
            "resumed": all.n_tls_resumed,
            "handshake": dist(&Dist::of(&all.tls_handshake)),
            "negotiated": all.tls_sessions.iter().map(|t| json!({
                "version": t.version, "cipher": t.cipher, "alpn": t.alpn, "count": t.count,
            })).collect::<Vec<_>>(),
        })),
    });
    let started_ms = info
        .started_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "tool": { "name": "regbench", "version": env!("CARGO_PKG_VERSION") },
        "run": {
            "target": info.target,
            "address": match &info.plan.unix_socket {
                Some(path) => format!("unix:{}", path.display()),
                None => info.addr.to_string(),
            },
            "dns_ns": info.dns.map(ns),
            "proxy": info.proxy.map(|p| p.to_string()),
            "scenarios": info.scenarios.iter().map(|sc| scenario(r, sc)).collect::<Vec<_>>(),
            "segment": { "index": info.segment.index, "count": info.segment.count },
            "shards": info.shards,
            "seed": info.seed,
            "plan": plan(&info.plan),
            "started_at_unix_ms": started_ms,
            "duration_ns": ns(info.duration),
            "threads": info.n_workers,
            "keepalive": info.keepalive,
            "http": {
                "version": http_version(info.http.version),
                "streams": info.http.streams,
                "described": info.http_described,
            },
            "timeout_ns": ns(info.timeout),
            "partial": info.partial(),
            "interrupted_by": info.interrupted.map(|i| i.name),
            "cut_off": info.cut_off,
            "window_ns": ns(info.window),
            "cancelled_in_flight": r.n_cancelled(),
            "aborted_by": info.aborted_by,
            "tags": info.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<Map<String, Value>>(),
            "queued": r.n_queued(),
            "unsent": r.n_unsent(),
        },
        "overall": overall,
        "steps": r.agg.total.tags.iter().enumerate().map(|(i, t)| {
            let mut v = tag(t, secs);
            v["scenario"] = json!(r.scenario_of(i).map(|s| s.name.as_str()));
            if !t.during.is_empty() {
                v["during"] = during(r, t);
            }
            v
        }).collect::<Vec<_>>(),
        "downtime": {
            "longest_ns": r.agg.total.downtime.longest_ns,
            "spans": r.agg.total.downtime.n_spans,
        },
        "events": r.events.as_ref().map(|log| events(r, log)),
        "time_series": r.agg.series.iter().map(|s| { let mut row = json!({
            "t_s": s.t_s,
            "requests": s.n_requests,
            "errors": s.n_errors,
            "dropped": s.n_dropped,
            "inflight_max": s.inflight.max,
            "inflight_mean": s.inflight.mean,
            "tags": s.tags.iter().map(|t| json!({
                "name": t.name,
                "requests": t.n_requests,
                "failed": t.n_failed,
                "dropped": t.n_dropped,
                "latency": t.latency,
                "service_time": t.service_time,
                "dropped_lag": t.dropped_lag,
            })).collect::<Vec<_>>(),
            "bytes_in": s.bytes_in,
            "status_codes": s.status.iter().map(|(code, n)| (code.to_string(), Value::from(*n))).collect::<Map<String, Value>>(),
            "grpc_status": grpc_counts(&s.grpc),
            "delivered": s.n_delivered,
            "latency_p50_ns": ns(s.latency.quantile("p50").unwrap_or_default()),
            "latency_p99_ns": ns(s.latency.quantile("p99").unwrap_or_default()),
            "latency_max_ns": ns(s.latency.max),
        });
        if let Some(tel) = &r.target {
            row["target"] = target_at(tel, s.t_s);
        }
        row }).collect::<Vec<_>>(),
        "target": r.target.as_ref().map(|tel| target(tel, r.info.plan.warmup_secs())),
        "generator": {
            "workers_cpu_ns": ns(r.workers_cpu()),
            "process_cpu_ns": ns(info.process_cpu),
            "max_rss_bytes": info.max_rss,
            "workers": r.agg.workers.iter().map(|w| json!({
                "cpu_ns": ns(w.cpu),
                "run_queue_wait_ns": w.run_queue_wait.map(ns),
                "runs": w.n_runs,
                "involuntary_switches": w.n_involuntary_switches,
                "cancelled": w.n_cancelled,
            })).collect::<Vec<_>>(),
        },
        "validity": {
            "valid": r.validity.valid,
            "max_worker_cpu_share": r.validity.max_worker_cpu_share,
            "lag_limit_ns": r.validity.lag_limit.map(ns),
            "reasons": r.validity.reasons,
            "generator_bound": r.validity.generator_bound,
        },
        "thresholds": r.thresholds.iter().map(|t| json!({
            "metric": t.threshold.key,
            "expr": t.threshold.expr,
            "observed": t.observed,
            "censored": t.censored,
            "unit": threshold_unit(r, &t.threshold),
            "detail": t.detail,
            "pass": t.pass,
        })).collect::<Vec<_>>(),
        "diagnosis": r.diagnosis.iter().map(|d| json!({
            "kind": d.kind,
            "count": d.count,
            "cause": d.cause,
            "remedy": d.remedy,
            "evidence": d.evidence,
        })).collect::<Vec<_>>(),
        "histograms": {
            "unit": HIST_UNIT,
            "highest_trackable": HIST_MAX_NS,
            "significant_digits": HIST_SIGFIG,
            "encoding": "hdrhistogram-v2-deflate-base64",
            "summary": r.agg.total,
            "judged": r.agg.judged,
        },
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        // invariant: every value above is a plain JSON value or a Summary, whose serialisation only
        // fails if histogram compression fails, which writing into a Vec cannot.
        format!("{{\"error\": \"could not serialise the report: {e}\"}}")
    });
    s.push('\n');
    s
}
