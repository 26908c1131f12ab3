//! A saved JSON result read back into the report model, so that `regbench report RESULT.json` renders
//! it in any format exactly as the run would have (the JSON records every number the reporters use;
//! a test renders a run's own JSON and text again and compares them byte for byte).

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::stress::{Recovery, StepRow, StressReport, Verdict};
use super::{
    EventLog, EventReport, Interrupt, Occurrence, PlanRecord, RunInfo, RunReport, ScenarioInfo,
    ScenarioRecord, StepRecord, WatchRecord, WindowRun,
};
use crate::aggregate::{
    Aggregate, Inflight, SecondStats, SecondTag, Summary, ThresholdResult, Validity, WorkerStats,
};
use crate::analyze::diagnosis::Diagnosis;
use crate::analyze::stress::{Broke, Usl};
use crate::plan::threshold::Threshold;
use crate::plan::{Arrival, HttpOptions, HttpVersion, Model, Profile, Segment, Stage, Stop};
use crate::telemetry::{Series, Telemetry, Unit, WatchInfo};

/// A saved result: a run's or a stress search's.
pub enum Saved {
    Run(Box<RunReport>),
    Stress(Box<StressReport>),
}

/// Reads a JSON result (`-o json` of a run, or of `stress`). Errors name the field at fault
/// (`run.scenarios[0].window_ns`).
pub fn parse_any(text: &str) -> Result<Saved, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match doc.get("kind").and_then(Value::as_str) {
        Some("stress") => Ok(Saved::Stress(Box::new(stress(&At::root(&doc))?))),
        _ => Ok(Saved::Run(Box::new(run(&doc)?))),
    }
}

/// Reads a run's JSON result.
pub fn parse(text: &str) -> Result<RunReport, String> {
    match parse_any(text)? {
        Saved::Run(r) => Ok(*r),
        Saved::Stress(_) => Err("this is a `regbench stress` result, not a run's".into()),
    }
}

fn run(doc: &Value) -> Result<RunReport, String> {
    let root = At::root(doc);
    let version = root.u64("schema_version")?;
    if version != u64::from(super::json::SCHEMA_VERSION) {
        return Err(format!(
            "schema_version {version}: this regbench reads version {} (the result was written by \
             another version; render it with that one)",
            super::json::SCHEMA_VERSION
        ));
    }
    let run = root.get("run")?;
    let plan = plan(&run.get("plan")?)?;
    let segment = run.get("segment")?;
    let segment = match (segment.u64("index")?, segment.u64("count")?) {
        (index, count) if index < count => Segment { index, count },
        _ => return Err(segment.error("index", "an index below the count")),
    };
    let scenarios = run
        .array("scenarios")?
        .iter()
        .enumerate()
        .map(|(i, sc)| scenario(sc, plan.scenarios.get(i), segment))
        .collect::<Result<Vec<_>, _>>()?;
    let http = run.get("http")?;
    let interrupted = match run.opt_str("interrupted_by")? {
        Some(name) => Some(
            Interrupt::ALL
                .into_iter()
                .find(|i| i.name == name)
                .ok_or_else(|| run.error("interrupted_by", "a signal regbench stops on"))?,
        ),
        None => None,
    };
    let generator = root.get("generator")?;
    let address = run.str("address")?;
    let info = RunInfo {
        target: run.str("target")?.to_string(),
        addr: match address.starts_with("unix:") {
            true => SocketAddr::from(([0, 0, 0, 0], 0)),
            false => address
                .parse()
                .map_err(|_| run.error("address", "an address (host:port) or unix:PATH"))?,
        },
        proxy: match run.opt_str("proxy")? {
            Some(p) => Some(p.parse().map_err(|_| run.error("proxy", "host:port"))?),
            None => None,
        },
        dns: run.opt_ns("dns_ns")?,
        started_at: UNIX_EPOCH + Duration::from_millis(run.u64("started_at_unix_ms")?),
        duration: run.ns("duration_ns")?,
        window: run.ns("window_ns")?,
        n_workers: run.usize("threads")?,
        keepalive: run.bool("keepalive")?,
        timeout: run.ns("timeout_ns")?,
        http: HttpOptions {
            version: http_version(&http)?,
            streams: http.usize("streams")?,
            ..plan.http
        },
        http_described: http.str("described")?.to_string(),
        scenarios,
        segment,
        max_lag: plan.max_lag,
        seed: run.u64("seed")?,
        interrupted,
        cut_off: run.bool("cut_off")?,
        process_cpu: generator.ns("process_cpu_ns")?,
        max_rss: generator.u64("max_rss_bytes")?,
        aborted_by: run.opt_str("aborted_by")?.map(String::from),
        tags: string_map(&run.get("tags")?)?,
        shards: run.u64("shards")?,
        plan,
    };
    let histograms = root.get("histograms")?;
    let summary = |key: &str| -> Result<Option<Summary>, String> {
        match histograms.opt(key) {
            Some(s) => serde_json::from_value(s.v.clone())
                .map(Some)
                .map_err(|e| histograms.error(key, &format!("a summary of every step ({e})"))),
            None => Ok(None),
        }
    };
    let total = summary("summary")?.ok_or_else(|| histograms.error("summary", "a summary"))?;
    let judged = summary("judged")?;
    // The series has a row for every second, in order (the collector leaves no holes): a row
    // out of place is a damaged file, and merging must not size anything by a stray `t_s`.
    let series = root
        .array("time_series")?
        .iter()
        .enumerate()
        .map(|(i, s)| match s.u64("t_s")? == i as u64 {
            true => second(s, &total),
            false => Err(s.error("t_s", &format!("{i} (one row per second, in order)"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let workers = generator
        .array("workers")?
        .iter()
        .map(|w| {
            Ok(WorkerStats {
                cpu: w.ns("cpu_ns")?,
                n_cancelled: w.u64("cancelled")?,
                run_queue_wait: w.opt_ns("run_queue_wait_ns")?,
                n_runs: w.u64("runs")?,
                n_involuntary_switches: w.u64("involuntary_switches")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let validity = root.get("validity")?;
    let validity = Validity {
        valid: validity.bool("valid")?,
        max_worker_cpu_share: validity.f64("max_worker_cpu_share")?,
        lag_limit: validity.opt_ns("lag_limit_ns")?,
        reasons: validity.strings("reasons")?,
        generator_bound: validity.bool("generator_bound")?,
    };
    let thresholds = root
        .array("thresholds")?
        .iter()
        .map(|t| {
            let (key, expr) = (t.str("metric")?, t.str("expr")?);
            Ok(ThresholdResult {
                threshold: Threshold::parse(key, expr).map_err(|e| t.error("expr", &e))?,
                observed: t.opt_f64("observed")?,
                detail: t.opt_str("detail")?.map(String::from),
                censored: t.bool("censored")?,
                pass: t.bool("pass")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let diagnosis = root
        .array("diagnosis")?
        .iter()
        .map(|d| {
            Ok(Diagnosis {
                kind: d.str("kind")?.to_string(),
                count: d.u64("count")?,
                cause: d.str("cause")?.to_string(),
                remedy: d.str("remedy")?.to_string(),
                evidence: d.strings("evidence")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let target = match root.opt("target") {
        Some(t) => Some(telemetry(&t)?),
        None => None,
    };
    let events = match root.opt("events") {
        Some(e) => Some(event_log(&e)?),
        None => None,
    };
    Ok(RunReport {
        info,
        agg: Aggregate {
            total,
            judged,
            series,
            workers,
        },
        validity,
        thresholds,
        diagnosis,
        target,
        events,
    })
}

/// A `regbench stress` result (`"kind": "stress"`, docs/stress.md).
fn stress(root: &At) -> Result<StressReport, String> {
    let model = match root.str("model")? {
        "open" => "open",
        "closed" => "closed",
        _ => return Err(root.error("model", "open or closed")),
    };
    let steps = root
        .array("steps")?
        .iter()
        .map(|s| {
            let lat = s.get("latency")?;
            let q = |k: &str| lat.opt_ns(k);
            Ok(StepRow {
                phase: match s.str("phase")? {
                    "ramp" => "ramp",
                    "bisect" => "bisect",
                    "sweep" => "sweep",
                    _ => return Err(s.error("phase", "ramp, bisect or sweep")),
                },
                offered: s.f64("offered")?,
                achieved: s.f64("achieved_rps")?,
                requests: s.u64("requests")?,
                latency: [q("p50_ns")?, q("p95_ns")?, q("p99_ns")?, q("p99_9_ns")?],
                error_rate: s.f64("error_rate")?,
                errors: {
                    let mut e = string_map_of(&s.get("errors")?, Value::as_u64)?;
                    // The order the search wrote them in: most frequent first, then by name.
                    e.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    e
                },
                slo: s
                    .array("slo")?
                    .iter()
                    .map(|x| {
                        Ok((
                            x.str("slo")?.to_string(),
                            x.str("observed")?.to_string(),
                            x.bool("pass")?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
                slo_pass: s.bool("slo_pass")?,
                valid: s.bool("valid")?,
                generator_bound: s.bool("generator_bound")?,
                reasons: s.strings("reasons")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let res = root.get("result")?;
    let verdict = res.str("verdict")?;
    let broke = match res.opt("breaking_point") {
        Some(b) => {
            let why = b.str("why")?;
            let why = [Broke::Errors, Broke::Throughput]
                .into_iter()
                .find(|w| super::stress::broke_name(*w) == why)
                .ok_or_else(|| b.error("why", "why the target broke"))?;
            Some((b.f64("offered")?, why))
        }
        None => None,
    };
    let recovery = match res.opt("recovery") {
        Some(rec) => Some(Recovery {
            burst_rate: rec.f64("burst_rps")?,
            burst_for: rec.ns("burst_ns")?,
            safe_rate: rec.f64("safe_rps")?,
            window: rec.ns("window_ns")?,
            recovered_after: rec.opt_ns("recovered_after_ns")?,
            seconds: rec
                .array("seconds")?
                .iter()
                .map(|x| {
                    Ok((
                        x.u64("t_s")?,
                        x.opt_ns("p99_ns")?,
                        x.f64("error_rate")?,
                        x.bool("within_slo")?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        }),
        None => None,
    };
    let usl = match res.opt("usl") {
        Some(u) => Some(Usl {
            lambda: u.f64("lambda")?,
            sigma: u.f64("sigma")?,
            kappa: u.f64("kappa")?,
            peak_n: u.opt_f64("peak_vus")?,
            // Without a peak the throughput approaches an asymptote the JSON cannot hold.
            peak_x: u.opt_f64("peak_rps")?.unwrap_or(f64::INFINITY),
            r2: u.f64("r2")?,
        }),
        None => None,
    };
    Ok(StressReport {
        target: root.str("target")?.to_string(),
        model,
        slo: root.strings("slo")?,
        step: root.ns("step_ns")?,
        settle: root.ns("settle_ns")?,
        precision: root.f64("precision")?,
        steps,
        verdict: Verdict::from_name(verdict)
            .ok_or_else(|| res.error("verdict", "a verdict of the search"))?,
        max_sustainable: res.opt_f64("max_sustainable")?,
        first_failing: res.opt_f64("first_failing")?,
        generator_saturated: match res.opt_f64("generator_saturated_at")? {
            Some(at) => Some((
                at,
                res.opt_str("generator_saturated_because")?
                    .unwrap_or("")
                    .to_string(),
            )),
            None => None,
        },
        knee: match res.opt("knee") {
            Some(k) => Some(k.f64("offered")?),
            None => None,
        },
        knee_factor: root.f64("knee_factor")?,
        breaking_point: broke,
        recovery,
        usl,
        wall: root.ns("wall_ns")?,
        interrupted: root.opt_u64("interrupted_exit_code")?.map(|c| c as u8),
    })
}

fn plan(p: &At) -> Result<PlanRecord, String> {
    let http = p.get("http")?;
    Ok(PlanRecord {
        fingerprint: p.str("fingerprint")?.to_string(),
        target: p.str("target")?.to_string(),
        unix_socket: p.opt_str("unix_socket")?.map(Into::into),
        keepalive: p.bool("keepalive")?,
        timeout: p.ns("timeout_ns")?,
        max_lag: p.opt_ns("max_lag_ns")?,
        timer_slack: p.ns("timer_slack_ns")?,
        warmup: p.ns("warmup_ns")?,
        watch: p
            .array("watch")?
            .iter()
            .map(|w| {
                Ok(WatchRecord {
                    name: w.str("name")?.to_string(),
                    pid: w.opt_u64("pid")?.map(|p| p as u32),
                    cmd: w.opt_str("cmd")?.map(String::from),
                    scrape: w.opt_str("scrape")?.map(String::from),
                    metrics: match w.opt("metrics") {
                        Some(_) => Some(w.strings("metrics")?),
                        None => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        seed: p.u64("seed")?,
        segments: p.u64("segments")?,
        http: HttpOptions {
            version: http_version(&http)?,
            streams: http.usize("streams")?,
            ..HttpOptions::default()
        },
        scenarios: p
            .array("scenarios")?
            .iter()
            .map(scenario_record)
            .collect::<Result<Vec<_>, _>>()?,
        windows: p.strings("windows")?,
    })
}

fn scenario_record(s: &At) -> Result<ScenarioRecord, String> {
    let m = s.get("model")?;
    let model = match m.str("type")? {
        "open" => Model::Open {
            rate: Profile {
                start: m.f64("start_rate")?,
                stages: stages(&m, "stages")?,
                hold: false,
            },
            arrival: Arrival::parse(m.str("arrival")?).map_err(|e| m.error("arrival", &e))?,
            max_inflight: m.usize("max_inflight")?,
        },
        "closed" => Model::Closed {
            think: m.ns("think_ns")?,
            vus: match m.opt("vu_stages") {
                Some(_) => Some(Profile {
                    start: m.f64("vu_start")?,
                    stages: stages(&m, "vu_stages")?,
                    hold: false,
                }),
                None => None,
            },
        },
        _ => return Err(m.error("type", "open or closed")),
    };
    Ok(ScenarioRecord {
        name: s.str("name")?.to_string(),
        connections: s.usize("connections")?,
        start_after: s.ns("start_after_ns")?,
        stop: Stop {
            n_requests: s.opt_u64("iterations")?,
            duration: s.opt_ns("duration_ns")?,
        },
        model,
        steps: s
            .array("steps")?
            .iter()
            .map(|st| {
                Ok(StepRecord {
                    name: st.str("name")?.to_string(),
                    method: st.str("method")?.to_string(),
                    path: st.opt_str("path")?.map(String::from),
                    templated: st.bool("templated")?,
                    flow: st.bool("flow")?,
                    think: st.ns("think_ns")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
    })
}

fn stages(m: &At, key: &str) -> Result<Vec<Stage>, String> {
    m.array(key)?
        .iter()
        .map(|s| {
            Ok(Stage {
                duration: s.ns("duration_ns")?,
                target: s.f64("target")?,
            })
        })
        .collect()
}

fn http_version(h: &At) -> Result<HttpVersion, String> {
    match h.str("version")? {
        "auto" => Ok(HttpVersion::Auto),
        "1.1" => Ok(HttpVersion::Http1),
        "2" => Ok(HttpVersion::Http2),
        _ => Err(h.error("version", "auto, 1.1 or 2")),
    }
}

/// A scenario of this process: what it was asked to do is in the plan's record of it.
fn scenario(
    sc: &At,
    planned: Option<&ScenarioRecord>,
    segment: Segment,
) -> Result<ScenarioInfo, String> {
    let planned = planned.ok_or_else(|| sc.error("name", "a scenario of run.plan"))?;
    let requested = sc.get("requested")?;
    let index = sc.get("step_index")?;
    Ok(ScenarioInfo {
        name: sc.str("name")?.to_string(),
        model: planned.model.clone(),
        n_connections: planned.connections,
        segment_connections: crate::plan::split(
            planned.connections as u64,
            segment.count,
            segment.index,
        ),
        segment_slots: sc.u64("slots")?,
        requested: Stop {
            n_requests: requested.opt_u64("iterations")?,
            duration: requested.opt_ns("duration_ns")?,
        },
        start_after: sc.ns("start_after_ns")?,
        window: sc.ns("window_ns")?,
        first_tag: index.usize("first")?,
        n_tags: index.usize("count")?,
        n_steps: planned.steps.len(),
        drop_tag: index.usize("drops")?,
        tags: string_map(&sc.get("tags")?)?,
    })
}

/// One second of the series; its latency distribution is recomputed as the collector computed it.
fn second(s: &At, total: &Summary) -> Result<SecondStats, String> {
    let iteration = |name: &str| total.tags.iter().any(|t| t.iteration && t.name == name);
    let tags = s
        .array("tags")?
        .iter()
        .map(|t| {
            Ok(SecondTag {
                name: t.str("name")?.to_string(),
                n_requests: t.u64("requests")?,
                n_failed: t.u64("failed")?,
                n_dropped: t.u64("dropped")?,
                latency: t.str("latency")?.to_string(),
                service_time: t.str("service_time")?.to_string(),
                dropped_lag: t.str("dropped_lag")?.to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SecondStats {
        t_s: s.u64("t_s")?,
        n_requests: s.u64("requests")?,
        n_errors: s.u64("errors")?,
        n_dropped: s.u64("dropped")?,
        bytes_in: s.u64("bytes_in")?,
        status: string_map_of(&s.get("status_codes")?, |v| v.as_u64())?
            .into_iter()
            .map(|(code, n)| {
                Ok((
                    code.parse()
                        .map_err(|_| s.error("status_codes", "status codes"))?,
                    n,
                ))
            })
            .collect::<Result<_, String>>()?,
        // Written since gRPC calls were counted (same schema version: absent means none).
        grpc: match s.opt("grpc_status") {
            None => Default::default(),
            Some(g) => string_map_of(&g, |v| v.as_u64())?
                .into_iter()
                .map(|(name, n)| {
                    let code = crate::sample::grpc_code_from_name(&name)
                        .ok_or_else(|| g.error(&name, "a gRPC status code name"))?;
                    Ok((code, n))
                })
                .collect::<Result<_, String>>()?,
        },
        n_delivered: s.opt_u64("delivered")?.unwrap_or(0),
        inflight: Inflight {
            max: s.u64("inflight_max")?,
            mean: s.f64("inflight_mean")?,
        },
        latency: SecondStats::latency_of(&tags, &iteration).map_err(|e| s.error("tags", &e))?,
        tags,
    })
}

fn telemetry(t: &At) -> Result<Telemetry, String> {
    let cost = t.get("cost")?;
    Ok(Telemetry {
        watches: t
            .array("watches")?
            .iter()
            .map(|w| {
                Ok(WatchInfo {
                    name: w.str("name")?.to_string(),
                    pids: w
                        .array("pids")?
                        .iter()
                        .map(|p| p.as_u64().map(|p| p as u32))
                        .collect::<Result<_, _>>()?,
                    exited: w
                        .array("exited")?
                        .iter()
                        .map(|e| Ok((e.u64("pid")? as u32, e.f64("at_s")?)))
                        .collect::<Result<_, String>>()?,
                    scrape: w.opt_str("scrape")?.map(String::from),
                    scrapes_ok: w.u64("scrapes_ok")?,
                    scrapes_failed: w.u64("scrapes_failed")?,
                    last_error: w.opt_str("last_error")?.map(String::from),
                    never_seen: w.strings("never_seen")?,
                })
            })
            .collect::<Result<_, String>>()?,
        series: t
            .array("series")?
            .iter()
            .map(|s| {
                let unit = s.str("unit")?;
                Ok(Series {
                    watch: s.str("watch")?.to_string(),
                    name: s.str("name")?.to_string(),
                    unit: Unit::from_name(unit).ok_or_else(|| s.error("unit", "a known unit"))?,
                    points: s
                        .array("points")?
                        .iter()
                        .map(|p| match p.v.as_array().map(Vec::as_slice) {
                            Some([t, v]) => match (t.as_u64(), v.as_f64()) {
                                (Some(t), Some(v)) => Ok((t, v)),
                                _ => Err(p.error("", "[second, value]")),
                            },
                            _ => Err(p.error("", "[second, value]")),
                        })
                        .collect::<Result<_, String>>()?,
                })
            })
            .collect::<Result<_, String>>()?,
        cost_cpu: cost.ns("cpu_ns")?,
        elapsed: cost.ns("elapsed_ns")?,
    })
}

fn event_log(e: &At) -> Result<EventLog, String> {
    let events = e
        .array("events")?
        .iter()
        .map(|ev| {
            Ok(EventReport {
                name: ev.str("name")?.to_string(),
                windows: ev.strings("windows")?,
                n_skipped: ev.u64("skipped")?,
                occurrences: ev
                    .array("occurrences")?
                    .iter()
                    .map(occurrence)
                    .collect::<Result<_, String>>()?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(EventLog { events })
}

fn occurrence(o: &At) -> Result<Occurrence, String> {
    Ok(Occurrence {
        n: o.u64("n")?,
        due: o.ns("due_ns")?,
        fired: o.ns("fired_ns")?,
        fired_unix_ms: o.u64("fired_unix_ms")?,
        action: match o.bool("action_ok")? {
            true => Ok(()),
            false => Err(o.opt_str("action_error")?.unwrap_or("").to_string()),
        },
        windows: o
            .array("windows")?
            .iter()
            .map(|w| {
                Ok(WindowRun {
                    name: w.str("name")?.to_string(),
                    duration: w.ns("duration_ns")?,
                    converged: w.bool("converged")?,
                    n_probes: w.u64("probes")?,
                })
            })
            .collect::<Result<_, String>>()?,
    })
}

/// `{"k": "v", …}` as pairs (in the JSON's order).
fn string_map(m: &At) -> Result<Vec<(String, String)>, String> {
    string_map_of(m, |v| v.as_str().map(String::from))
}

/// An object's fields as pairs, each value read by `value` (`None`: not what was expected).
fn string_map_of<T>(
    m: &At,
    value: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<(String, T)>, String> {
    let obj = m.v.as_object().ok_or_else(|| m.error("", "an object"))?;
    obj.iter()
        .map(|(k, v)| match value(v) {
            Some(v) => Ok((k.clone(), v)),
            None => Err(m.error(k, "a value of the expected type")),
        })
        .collect()
}

/// A value and where it is in the document, so that every error names its field.
struct At<'a> {
    v: &'a Value,
    path: String,
}

impl<'a> At<'a> {
    fn root(v: &'a Value) -> At<'a> {
        At {
            v,
            path: String::new(),
        }
    }

    fn field(&self, key: &str) -> String {
        match (self.path.is_empty(), key.is_empty()) {
            (_, true) => self.path.clone(),
            (true, false) => key.to_string(),
            (false, false) => format!("{}.{key}", self.path),
        }
    }

    fn error(&self, key: &str, expected: &str) -> String {
        format!("{}: expected {expected}", self.field(key))
    }

    /// The field, `None` when absent or null.
    fn opt(&self, key: &str) -> Option<At<'a>> {
        match self.v.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(At {
                v,
                path: self.field(key),
            }),
        }
    }

    fn get(&self, key: &str) -> Result<At<'a>, String> {
        self.opt(key)
            .ok_or_else(|| format!("{}: missing", self.field(key)))
    }

    fn array(&self, key: &str) -> Result<Vec<At<'a>>, String> {
        let a = self.get(key)?;
        let items = a.v.as_array().ok_or_else(|| self.error(key, "an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| At {
                v,
                path: format!("{}[{i}]", a.path),
            })
            .collect())
    }

    fn as_u64(&self) -> Result<u64, String> {
        self.v
            .as_u64()
            .ok_or_else(|| self.error("", "an unsigned integer"))
    }

    fn u64(&self, key: &str) -> Result<u64, String> {
        self.get(key)?.as_u64()
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.opt(key).map(|v| v.as_u64()).transpose()
    }

    fn usize(&self, key: &str) -> Result<usize, String> {
        usize::try_from(self.u64(key)?).map_err(|_| self.error(key, "a smaller integer"))
    }

    fn f64(&self, key: &str) -> Result<f64, String> {
        self.opt_f64(key)?
            .ok_or_else(|| format!("{}: missing", self.field(key)))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, String> {
        self.opt(key)
            .map(|v| v.v.as_f64().ok_or_else(|| self.error(key, "a number")))
            .transpose()
    }

    fn ns(&self, key: &str) -> Result<Duration, String> {
        self.u64(key).map(Duration::from_nanos)
    }

    fn opt_ns(&self, key: &str) -> Result<Option<Duration>, String> {
        Ok(self.opt_u64(key)?.map(Duration::from_nanos))
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        self.get(key)?
            .v
            .as_bool()
            .ok_or_else(|| self.error(key, "true or false"))
    }

    fn str(&self, key: &str) -> Result<&'a str, String> {
        self.get(key)?
            .v
            .as_str()
            .ok_or_else(|| self.error(key, "a string"))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        self.opt(key)
            .map(|v| v.v.as_str().ok_or_else(|| self.error(key, "a string")))
            .transpose()
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        self.array(key)?
            .iter()
            .map(|s| {
                s.v.as_str()
                    .map(String::from)
                    .ok_or_else(|| s.error("", "a string"))
            })
            .collect()
    }
}
