//! Loading a scenario file: parse, validate, compile templates, load data files, build the plan.
//! Every refusal names `file:line:column` and says what was expected; nothing here touches a target.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use regex::bytes::Regex;
use thiserror::Error;
use toml::Spanned;

mod events;
mod executor;
mod steps;

use crate::plan::check::{Check, CheckKind, Extract, Source};
use crate::plan::data::Pick;
use crate::plan::flow::{Flow, FlowAuth, Platform, Pull, Push, TokenMode, Walk};
use crate::plan::template::{Scope, Template};
use crate::plan::threshold::{parse_key, Filter, Threshold};
use crate::plan::{
    self, Arrival, Model, Plan, Profile, RequestSpec, RequestTemplate, ScenarioPlan, Segment,
    Stage, Step, Stop, Target,
};
use crate::scenario::file::{
    CheckSpec, File, RegistrySpec, ScenarioSpec, StepSpec, ThresholdEntry,
};
use crate::util::parse_duration;
use executor::*;
use steps::*;

/// A scenario file that cannot be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}:{line}:{col}: {message}")]
    At {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// What the command line adds to or overrides in the file.
pub struct Overrides<'a> {
    /// `-e KEY=VALUE`: template constants, over `[defaults.vars]`.
    pub vars: &'a [(String, String)],
    /// `-z`/`--duration`: every scenario stops starting iterations after this.
    pub duration: Option<Duration>,
    pub n_workers: usize,
    pub segment: Segment,
    pub seed: u64,
    pub max_lag: Option<Duration>,
    /// `--warmup`, over `[defaults] warmup`.
    pub warmup: Option<Duration>,
    /// The command line's watches (`--watch-pid`, `--watch-cmd`, `--scrape`), after the file's.
    pub watch: &'a [crate::plan::watch::Watch],
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The command line's HTTP flags over the file's (`--http1/--http2/--h2c/--streams`), for a
    /// target that is `https://` when the flag is true; `Err` explains a combination that cannot run.
    pub http: &'a dyn Fn(plan::HttpOptions, bool) -> Result<plan::HttpOptions, String>,
}

/// A loaded file: the plan and the thresholds to judge it by.
pub struct Loaded {
    pub plan: Plan,
    pub thresholds: Vec<Threshold>,
    /// Scenario name → its tags (steps), for thresholds filtered by scenario.
    pub scenario_tags: BTreeMap<String, Range<usize>>,
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError::At {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    /// `line N` of a span, for messages that point at a second place.
    fn line_of(&self, span: Range<usize>) -> String {
        let offset = span.start.min(self.text.len());
        format!("line {}", self.text[..offset].matches('\n').count() + 1)
    }

    fn duration(&self, s: &Spanned<String>, what: &str) -> Result<Duration, ScenarioError> {
        parse_duration(s.get_ref()).map_err(|e| self.at(s.span(), format!("{what}: {e}")))
    }

    /// A string that may use only constants and `{{env.NAME}}` (no per-request values), rendered.
    fn constant_text(
        &self,
        s: &Spanned<String>,
        scope: &Scope,
        what: &str,
    ) -> Result<String, ScenarioError> {
        self.template(s, scope)?.static_text().ok_or_else(|| {
            self.at(
                s.span(),
                format!("{what} may use only constants and env.NAME"),
            )
        })
    }

    /// A template in a string value; its errors point inside the string.
    fn template(&self, s: &Spanned<String>, scope: &Scope) -> Result<Template, ScenarioError> {
        Template::compile(s.get_ref(), scope).map_err(|e| {
            // +1: the span starts at the opening quote.
            self.at(s.span().start + 1 + e.offset..s.span().end, e.message)
        })
    }
}

/// Loads `path`.
pub fn load(path: &Path, ov: &Overrides) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let text = crate::util::read_text_bounded(path, crate::util::MAX_INPUT_FILE).map_err(|e| {
        ScenarioError::File {
            file: file.clone(),
            message: format!("cannot read the scenario file: {e}"),
        }
    })?;
    let cx = Ctx { file, text: &text };
    let f: File = toml::from_str(&text).map_err(|e| match e.span() {
        Some(span) => cx.at(span, e.message().trim_end().to_string()),
        None => ScenarioError::File {
            file: cx.file.clone(),
            message: e.message().trim_end().to_string(),
        },
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));

    // Constants: [defaults.vars], then -e.
    let mut consts: HashMap<String, String> = HashMap::new();
    for (k, v) in &f.defaults.vars {
        let s = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                v.get_ref().to_string()
            }
            _ => return Err(cx.at(v.span(), "a variable is a string, number or boolean")),
        };
        consts.insert(k.clone(), s);
    }
    for (k, v) in ov.vars {
        consts.insert(k.clone(), v.clone());
    }
    let no_vars = HashMap::new();

    // Data tables.
    let mut tables: HashMap<String, (usize, Vec<String>)> = HashMap::new();
    let mut data = Vec::new();
    for (name, spec) in &f.data {
        let spec = spec.get_ref();
        let pick = match &spec.pick {
            Some(p) => Pick::parse(p.get_ref()).map_err(|e| cx.at(p.span(), e))?,
            None => Pick::Sequential,
        };
        let table = super::data::load(name, &dir.join(spec.file.get_ref()), pick)
            .map_err(|e| cx.at(spec.file.span(), e))?;
        tables.insert(name.clone(), (data.len(), table.columns.clone()));
        data.push(Arc::new(table));
    }
    let const_scope = Scope {
        consts: &consts,
        vars: &no_vars,
        tables: &HashMap::new(),
        env: ov.env,
    };

    // The target.
    let base = match &f.defaults.base_url {
        Some(b) => {
            let t = cx.template(b, &const_scope)?;
            let url = t.static_text().ok_or_else(|| {
                cx.at(
                    b.span(),
                    "base_url may use only constants and env.NAME, not per-request values",
                )
            })?;
            Some((
                Target::parse(&url).map_err(|e| cx.at(b.span(), e.to_string()))?,
                b.span(),
            ))
        }
        None => None,
    };
    let mut default_headers = Vec::new();
    for (name, value) in &f.defaults.headers {
        plan::parse_header(&format!("{name}: x"))
            .map_err(|e| cx.at(value.span(), e.to_string()))?;
        default_headers.push((name.clone(), value));
    }

    let registry = registry_auth(&cx, f.defaults.registry.as_ref(), &const_scope)?;

    if f.scenarios.is_empty() {
        return Err(ScenarioError::File {
            file: cx.file.clone(),
            message: "no [[scenario]]: a scenario file needs at least one".into(),
        });
    }
    let mut scenarios = Vec::new();
    let mut scenario_names: HashMap<String, Range<usize>> = HashMap::new();
    let mut step_names: HashMap<String, Range<usize>> = HashMap::new();
    let mut scenario_tags = BTreeMap::new();
    let mut n_tags_before = 0;
    let mut target: Option<Target> = base.as_ref().map(|b| b.0.clone());
    for sspec in &f.scenarios {
        let s = sspec.get_ref();
        let name = s.name.get_ref().clone();
        if let Some(prev) = scenario_names.insert(name.clone(), s.name.span()) {
            let line = cx.line_of(prev);
            return Err(cx.at(
                s.name.span(),
                format!("scenario '{name}' is defined twice (first at {line})"),
            ));
        }
        let (model, mut stop, n_connections) = executor(&cx, s)?;
        if let Some(d) = ov.duration {
            stop.duration = Some(stop.duration.map_or(d, |x| x.min(d)));
        }
        let start_after = match &s.start_after {
            Some(d) => cx.duration(d, "start_after")?,
            None => Duration::ZERO,
        };
        let step_specs: Vec<&Spanned<StepSpec>> =
            match (&s.request, s.steps.is_empty()) {
                (Some(r), true) => vec![r],
                (None, false) => s.steps.iter().collect(),
                (Some(r), false) => return Err(cx.at(
                    r.span(),
                    "a scenario has either one [scenario.request] or [[scenario.step]]s, not both",
                )),
                (None, true) => {
                    return Err(cx.at(
                        sspec.span(),
                        format!(
                    "scenario '{name}' has no request: add [scenario.request] or [[scenario.step]]"
                ),
                    ))
                }
            };
        let first_tag = n_tags_before;
        let mut vars: HashMap<String, usize> = HashMap::new();
        let mut var_names = Vec::new();
        let mut steps = Vec::new();
        for st in step_specs {
            let step = compile_step(
                &cx,
                st,
                s.request.is_some().then_some(name.as_str()),
                &consts,
                &mut vars,
                &mut var_names,
                &tables,
                ov.env,
                &default_headers,
                base.as_ref().map(|b| &b.0),
                &mut target,
                &registry,
            )?;
            // A flow step's phases are tags too (`STEP/PHASE`), usable in threshold filters.
            let phases = step.phases();
            let names = std::iter::once(step.name.clone())
                .chain(phases.iter().map(|p| format!("{}/{p}", step.name)));
            for tag_name in names {
                if let Some(prev) = step_names.insert(tag_name.clone(), st.span()) {
                    let first = cx.line_of(prev);
                    return Err(cx.at(st.span(), format!(
                        "step name '{tag_name}' is used twice (first at {first}); step names are report tags and must be unique in the file",
                    )));
                }
            }
            n_tags_before += step.n_tags();
            steps.push(step);
        }
        scenario_tags.insert(name.clone(), first_tag..n_tags_before);
        scenarios.push(ScenarioPlan {
            name,
            model,
            stop,
            start_after,
            n_connections,
            steps,
            vars: var_names,
            tags: s.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
    }

    let mut watches = Vec::new();
    for w in &f.watches {
        watches.push(watch(&cx, w, &const_scope)?);
    }
    watches.extend(ov.watch.iter().cloned());
    crate::plan::watch::check_names(&watches).map_err(|(i, e)| {
        // A command-line watch has no place in the file: point at the file's last.
        let at = f.watches.get(i).or(f.watches.last());
        cx.at(at.map_or(0..0, |w| w.span()), e)
    })?;

    let events = events::compile_events(
        &cx,
        &f.events,
        &const_scope,
        base.as_ref().map(|(t, _)| t),
        dir,
    )?;

    let window_names: Vec<&str> = events
        .iter()
        .flat_map(|e| e.windows.iter().map(|w| w.name.as_str()))
        .collect();
    let mut thresholds = Vec::new();
    for (key, entries) in &f.thresholds {
        let (_, filter) = parse_key(key).map_err(|e| cx.at(entries.span(), e))?;
        match filter.base() {
            Filter::Step(n) if !step_names.contains_key(n) => {
                let mut known: Vec<&str> = step_names.keys().map(String::as_str).collect();
                known.sort();
                return Err(cx.at(
                    entries.span(),
                    format!("'{key}': no step named '{n}' (steps: {})", known.join(", ")),
                ));
            }
            Filter::Scenario(n) if !scenario_names.contains_key(n) => {
                let mut known: Vec<&str> = scenario_names.keys().map(String::as_str).collect();
                known.sort();
                return Err(cx.at(
                    entries.span(),
                    format!(
                        "'{key}': no scenario named '{n}' (scenarios: {})",
                        known.join(", ")
                    ),
                ));
            }
            _ => {}
        }
        for entry in entries.get_ref() {
            let (expr, abort_on_fail, grace) = match entry.get_ref() {
                ThresholdEntry::Expr(e) => (e.clone(), false, Duration::ZERO),
                ThresholdEntry::Full(full) => {
                    let grace = match &full.grace {
                        Some(g) => parse_duration(g)
                            .map_err(|e| cx.at(entry.span(), format!("grace: {e}")))?,
                        None => Duration::ZERO,
                    };
                    (full.expr.clone(), full.abort_on_fail, grace)
                }
            };
            let mut t = Threshold::parse(key, &expr).map_err(|e| cx.at(entry.span(), e))?;
            let at_end = t.metric == crate::plan::threshold::Metric::Convergence
                || (t.metric.is_target() && t.filter.window().is_some());
            if abort_on_fail && at_end {
                return Err(cx.at(
                    entry.span(),
                    "windows are known when the run ends: abort_on_fail does not apply",
                ));
            }
            t.abort_on_fail = abort_on_fail;
            t.grace = grace;
            t.check_watches(&watches)
                .map_err(|e| cx.at(entries.span(), e))?;
            t.check_windows(&window_names)
                .map_err(|e| cx.at(entries.span(), e))?;
            thresholds.push(t);
        }
    }

    let target = target.ok_or_else(|| ScenarioError::File {
        file: cx.file.clone(),
        message: "no target: set [defaults] base_url, or give steps absolute URLs".into(),
    })?;
    let max_lag = match (&f.defaults.max_lag, ov.max_lag) {
        (_, Some(l)) => Some(l),
        (Some(l), None) => Some(cx.duration(l, "max_lag")?),
        (None, None) => None,
    };
    let timeout = match &f.defaults.timeout {
        Some(t) => cx.duration(t, "timeout")?,
        None => Duration::from_secs(30),
    };
    let http = http_options(&cx, &f.defaults, &target, ov)?;
    let mut scenarios = scenarios;
    if f.defaults.compression.unwrap_or(true) {
        for step in scenarios.iter_mut().flat_map(|s| s.steps.iter_mut()) {
            step.ask_compressed();
        }
    }
    let mut plan = Plan {
        target,
        scenarios,
        n_workers: ov.n_workers,
        keepalive: f.defaults.keepalive.unwrap_or(true),
        timeout,
        segment: ov.segment,
        max_lag,
        seed: ov.seed,
        data,
        tls: tls_options(&cx, f.defaults.tls.as_ref(), dir)?,
        http,
        timer_slack: crate::plan::DEFAULT_TIMER_SLACK,
        warmup: match (&f.defaults.warmup, ov.warmup) {
            (_, Some(w)) => w,
            (Some(w), None) => cx.duration(w, "warmup")?,
            (None, None) => Duration::ZERO,
        },
        watch: watches,
        events,
    };
    plan.validate().map_err(|e| ScenarioError::File {
        file: cx.file.clone(),
        message: e.to_string(),
    })?;
    plan.clamp_workers();
    Ok(Loaded {
        plan,
        thresholds,
        scenario_tags,
    })
}

/// A `[[watch]]` table.
fn watch(
    cx: &Ctx,
    spec: &Spanned<crate::scenario::file::WatchSpec>,
    scope: &Scope,
) -> Result<crate::plan::watch::Watch, ScenarioError> {
    use crate::plan::watch::{Process, Scrape, Watch};
    use crate::scenario::file::PidSpec;
    let w = spec.get_ref();
    let text = |s: &Spanned<String>, what: &str| cx.constant_text(s, scope, what);
    if let (Some(c), true) = (&w.cmdline, w.pid.is_some() || w.cmd.is_some()) {
        return Err(cx.at(c.span(), "a watch has one of pid, cmd or cmdline"));
    }
    let process = match (&w.pid, &w.cmd) {
        (Some(_), Some(c)) => return Err(cx.at(c.span(), "a watch has pid or cmd, not both")),
        (None, None) if w.cmdline.is_some() => w
            .cmdline
            .as_ref()
            .map(|c| text(c, "cmdline").map(Process::CommandLine))
            .transpose()?,
        (Some(p), None) => {
            let n = match p.get_ref() {
                PidSpec::Number(n) => n.to_string(),
                PidSpec::Text(t) => {
                    let s = Spanned::new(p.span(), t.clone());
                    text(&s, "pid")?
                }
            };
            let pid = n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| cx.at(p.span(), format!("pid: '{n}' is not a process ID")))?;
            Some(Process::Pid(pid))
        }
        (None, Some(c)) => Some(Process::Command(text(c, "cmd")?)),
        (None, None) => None,
    };
    let scrape = match &w.scrape {
        Some(url) => {
            let metrics = w
                .metrics
                .iter()
                .map(|m| text(m, "metrics"))
                .collect::<Result<Vec<_>, _>>()?;
            let s = Scrape::parse(&text(url, "scrape")?, &metrics).map_err(|e| {
                let at = w.metrics.first().filter(|_| e.starts_with("metric '"));
                cx.at(at.map_or(url.span(), |m| m.span()), e)
            })?;
            Some(s)
        }
        None if !w.metrics.is_empty() => {
            return Err(cx.at(
                w.metrics[0].span(),
                "metrics are kept from a scrape: add scrape = \"http://…/metrics\"",
            ))
        }
        None => None,
    };
    if process.is_none() && scrape.is_none() {
        return Err(cx.at(spec.span(), "a [[watch]] needs pid, cmd, cmdline or scrape"));
    }
    let name = match (&w.name, &process) {
        (Some(n), _) => text(n, "name")?,
        (None, Some(Process::Command(c) | Process::CommandLine(c))) => c.clone(),
        (None, Some(Process::Pid(pid))) => {
            crate::telemetry::proc::comm(*pid).unwrap_or(format!("pid{pid}"))
        }
        (None, None) => scrape
            .as_ref()
            .map_or(String::new(), |s| format!("{}:{}", s.host, s.port)),
    };
    Ok(Watch {
        name,
        process,
        scrape,
    })
}

/// `[defaults] http` and `streams`, then the command line's flags over them.
fn http_options(
    cx: &Ctx,
    d: &super::file::Defaults,
    target: &Target,
    ov: &Overrides,
) -> Result<plan::HttpOptions, ScenarioError> {
    let mut o = plan::HttpOptions::default();
    // gRPC rides HTTP/2: h2c with prior knowledge on grpc://, ALPN h2 on grpcs://.
    if target.grpc {
        o.version = plan::HttpVersion::Http2;
    }
    // A WebSocket is an HTTP/1.1 upgrade.
    if target.ws {
        o.version = plan::HttpVersion::Http1;
    }
    if let Some(v) = &d.http {
        o.version = match v.get_ref().as_str() {
            "auto" => plan::HttpVersion::Auto,
            "1.1" => plan::HttpVersion::Http1,
            "2" => plan::HttpVersion::Http2,
            other => {
                return Err(cx.at(
                    v.span(),
                    format!("unknown http version '{other}' (expected \"auto\", \"1.1\" or \"2\")"),
                ))
            }
        };
    }
    if let Some(n) = &d.streams {
        if *n.get_ref() == 0 || o.version != plan::HttpVersion::Http2 && *n.get_ref() > 1 {
            return Err(cx.at(
                n.span(),
                "streams must be at least 1, and more than 1 needs http = \"2\"",
            ));
        }
        o.streams = *n.get_ref();
    }
    let o = (ov.http)(o, target.tls).map_err(|message| ScenarioError::File {
        file: cx.file.clone(),
        message,
    })?;
    if target.ws && o.version != plan::HttpVersion::Http1 {
        return Err(ScenarioError::File {
            file: cx.file.clone(),
            message: "a WebSocket is an HTTP/1.1 upgrade: the base_url is ws:// but http is \"2\""
                .into(),
        });
    }
    if target.grpc && o.version != plan::HttpVersion::Http2 {
        return Err(ScenarioError::File {
            file: cx.file.clone(),
            message: "gRPC needs HTTP/2: the base_url is grpc:// but http is not \"2\"".into(),
        });
    }
    Ok(o)
}

/// `[defaults.tls]`: paths are relative to the scenario file.
fn tls_options(
    cx: &Ctx,
    spec: Option<&super::file::TlsSpec>,
    dir: &Path,
) -> Result<plan::TlsOptions, ScenarioError> {
    let Some(t) = spec else {
        return Ok(plan::TlsOptions::default());
    };
    let version = |v: &Option<Spanned<String>>| -> Result<Option<plan::TlsVersion>, ScenarioError> {
        v.as_ref()
            .map(|v| plan::TlsVersion::parse(v.get_ref()).map_err(|e| cx.at(v.span(), e)))
            .transpose()
    };
    let client_cert = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => Some((dir.join(c.get_ref()), dir.join(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) => return Err(cx.at(c.span(), "cert needs key (the client's private key)")),
        (None, Some(k)) => return Err(cx.at(k.span(), "key needs cert (the client's certificate)")),
    };
    Ok(plan::TlsOptions {
        insecure: t.insecure,
        cacert: t.cacert.as_ref().map(|c| dir.join(c.get_ref())),
        client_cert,
        sni: t.sni.clone(),
        min: version(&t.min)?,
        max: version(&t.max)?,
        resumption: t.resumption.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, vars: &[(String, String)]) -> Result<Loaded, ScenarioError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            "name,token\nalice,a1\nbob,b2\n",
        )
        .unwrap();
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, toml).unwrap();
        let env = |k: &str| (k == "TARGET").then(|| "http://127.0.0.1:9".to_string());
        load(
            &path,
            &Overrides {
                vars,
                duration: None,
                n_workers: 2,
                segment: Segment::WHOLE,
                seed: 1,
                max_lag: None,
                warmup: None,
                watch: &[],
                env: &env,
                http: &|base, _| Ok(base),
            },
        )
    }

    /// The error's text after the file name: `line:col: message`.
    fn error(toml: &str) -> String {
        let e = load_str(toml, &[])
            .err()
            .expect("the file must be refused")
            .to_string();
        e.split_once("plan.toml:")
            .map(|(_, rest)| rest.to_string())
            .unwrap_or(e)
    }

    const HEAD: &str = "[defaults]\nbase_url = \"http://127.0.0.1:9\"\n\n";

    fn scenario(body: &str) -> String {
        format!("{HEAD}[[scenario]]\nname = \"s\"\n{body}")
    }

    #[test]
    fn flow_step_mistakes_are_refused_with_their_place() {
        let step = |body: &str| {
            scenario(&format!(
                "executor = \"shared-iterations\"\nvus = 1\niterations = 1\n\n[[scenario.step]]\nname = \"x\"\n{body}\n"
            ))
        };
        // The step's keys start on line 12.
        let cases = [
            (
                "type = \"oci-pull\"\nimage = \"a:b\"\nurl = \"/x\"",
                "14:7",
                "a step of type oci-pull does not take 'url'",
            ),
            ("type = \"oci-pul\"", "12:8", "is not a step type"),
            ("type = \"oci-pull\"", "12:8", "needs image = \"REPO:TAG\""),
            (
                "type = \"oci-pull\"\nimage = \"a:b\"\nplatform = \"linux\"",
                "14:12",
                "not a platform",
            ),
            (
                "type = \"oci-push\"\nimage = \"a:b\"\nlayer_size = \"lots\"",
                "14:14",
                "layer_size",
            ),
            (
                "type = \"oci-pull\"\nimage = \"a:b\"\ntoken = \"hot\"",
                "14:9",
                "warm or cold",
            ),
            (
                "type = \"oci-pull\"\nimage = \"a:b\"\nparallel = 0",
                "14:12",
                "parallel must be",
            ),
            ("type = \"oci-tags\"\nrepo = \"{{nope}}\"", "13:9", "nope"),
            ("type = \"service-get\"", "12:8", "needs server"),
            (
                "type = \"service-list\"\nimage = \"a\"",
                "13:9",
                "does not take 'image'",
            ),
        ];
        for (body, at, message) in cases {
            let e = error(&step(body));
            assert!(e.starts_with(at), "{body}: {e}");
            assert!(e.contains(message), "{body}: {e}");
        }
        // A phase name is a tag: another step cannot take it.
        let e = error(&step(
            "type = \"oci-pull\"\nimage = \"a:b\"\n\n[[scenario.step]]\nname = \"x/layer\"\nurl = \"/\"",
        ));
        assert!(e.contains("'x/layer' is used twice"), "{e}");
        let e = error(&format!(
            "{HEAD}[defaults.registry]\npassword = \"p\"\n\n[[scenario]]\nname = \"s\"\nexecutor = \"shared-iterations\"\nvus = 1\niterations = 1\n[scenario.request]\ntype = \"oci-catalog\"\n"
        ));
        assert!(e.contains("a password needs a user"), "{e}");
    }

    #[test]
    fn flow_steps_compile_with_their_phases_as_tags() {
        let l = load_str(
            &scenario(
                "executor = \"shared-iterations\"\nvus = 1\niterations = 1\n\n[[scenario.step]]\nname = \"pull\"\ntype = \"oci-pull\"\nimage = \"a/b:v1\"\nrange = \"1MiB\"\n\n[[scenario.step]]\nname = \"list\"\ntype = \"service-list\"\n",
            ),
            &[],
        )
        .unwrap();
        let names: Vec<String> = l.plan.tag_specs().into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "pull",
                "pull/ping",
                "pull/token",
                "pull/head",
                "pull/manifest",
                "pull/config",
                "pull/layer",
                "list",
                "s (iteration)"
            ]
        );
        assert_eq!(l.plan.step_tags(0), [0, 7]);
        assert_eq!(
            l.plan.drop_tag(0),
            1,
            "drops count on the first request's tag"
        );
        let Some(Flow::Pull(p)) = l.plan.scenarios[0].steps[0].flow.as_deref() else {
            panic!("an oci-pull flow");
        };
        assert_eq!((p.parallel, p.range), (3, Some(1 << 20)));
        let list = &l.plan.scenarios[0].steps[1];
        assert_eq!(list.request.path, "/v1/registry?limit=50");
        assert!(list.paginate.is_some());
        assert_eq!(l.scenario_tags["s"], 0..8);
    }

    #[test]
    fn a_full_flow_compiles() {
        let toml = format!(
            "{HEAD}[defaults.vars]\nregion = \"eu\"\n\n[data.users]\nfile = \"users.csv\"\npick = \"unique\"\n\n\
             [[scenario]]\nname = \"login\"\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 3\n\n\
             [[scenario.step]]\nname = \"login\"\nmethod = \"POST\"\nurl = \"/login/{{{{region}}}}\"\n\
             body = '{{\"user\":\"{{{{data.users.name}}}}\"}}'\nextract = {{ token = {{ json = \"/token\" }} }}\n\
             check = {{ status = [200], json_exists = [\"/token\"] }}\n\n\
             [[scenario.step]]\nname = \"me\"\nurl = \"/me\"\nheaders = {{ Authorization = \"Bearer {{{{token}}}}\" }}\n\
             think = \"10ms\"\n\n[thresholds]\n\"latency{{step:me}}\" = [\"p(95)<50ms\"]\n\"checks\" = [{{ expr = \"rate>0.99\", abort_on_fail = true, grace = \"5s\" }}]\n"
        );
        let l = load_str(&toml, &[]).unwrap();
        let s = &l.plan.scenarios[0];
        assert_eq!(s.stop.n_requests, Some(6), "per-vu-iterations: 2 VUs × 3");
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.vars, ["token"]);
        assert!(s.steps[0].template.is_some(), "the body reads a data row");
        assert_eq!(s.steps[0].request.method, "POST");
        assert_eq!(s.steps[0].checks.len(), 2);
        assert!(
            s.steps[1].template.is_some(),
            "the header reads an extracted variable"
        );
        assert_eq!(s.steps[1].think, Duration::from_millis(10));
        assert_eq!(l.thresholds.len(), 2);
        assert!(l
            .thresholds
            .iter()
            .any(|t| t.abort_on_fail && t.grace == Duration::from_secs(5)));
        assert_eq!(l.plan.data[0].rows.len(), 2);
    }

    #[test]
    fn constants_env_and_overrides_fold_in() {
        let toml = "[defaults]\nbase_url = \"{{env.TARGET}}\"\n[defaults.vars]\nid = \"1\"\n\n\
                    [[scenario]]\nname = \"s\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n\
                    [scenario.request]\nurl = \"/x/{{id}}\"\n";
        let l = load_str(toml, &[("id".into(), "42".into())]).unwrap();
        let step = &l.plan.scenarios[0].steps[0];
        assert!(step.template.is_none(), "constants make a static request");
        assert_eq!(step.request.path, "/x/42", "-e overrides [defaults.vars]");
        assert_eq!(l.plan.target.port, 9);
    }

    #[test]
    fn errors_name_line_column_and_expectation() {
        let cases: Vec<(String, &str, &str)> = vec![
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nspeed = 3\n"), "9:1:", "unknown field `speed`, expected one of `name`"),
            (scenario("executor = \"constant-arrival-rate\"\nrate = -5\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n"), "7:8:", "rate must be a non-negative number"),
            (scenario("executor = \"constant-vu\"\n[scenario.request]\nurl = \"/\"\n"), "6:12:", "unknown executor 'constant-vu' (expected constant-vus"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nrate = 5\n[scenario.request]\nurl = \"/\"\n"), "9:8:", "'rate' does not apply to executor 'constant-vus' (it takes: vus, duration)"),
            (scenario("executor = \"constant-vus\"\nvus = 1\n[scenario.request]\nurl = \"/\"\n"), "6:12:", "needs 'duration'"),
            (scenario("executor = \"constant-vus\"\nvus = 0\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n"), "7:7:", "vus must be at least 1"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1 parsec\"\n[scenario.request]\nurl = \"/\"\n"), "8:12:", "duration: '1 parsec' has unknown unit"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/a/{{who}}\"\n"), "10:11:", "undefined template variable 'who'"),
            (format!("{HEAD}[data.users]\nfile = \"missing.csv\"\n\n[[scenario]]\nname = \"s\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n"), "5:8:", "cannot read data file"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n\n[thresholds]\n\"latency{step:nope}\" = [\"p(95)<1s\"]\n"), "13:24:", "no step named 'nope' (steps: s)"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n\n[thresholds]\n\"errors\" = [\"p(95)<1s\"]\n"), "13:13:", "this metric takes rate or count"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"http://other.test/\"\n"), "10:7:", "every step targets one origin"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[scenario.step]]\nname = \"a\"\nurl = \"/\"\n[[scenario.step]]\nname = \"a\"\nurl = \"/\"\n"), "12:1:", "step name 'a' is used twice (first at line 9)"),
            (scenario("executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[scenario.step]]\nname = \"a\"\nurl = \"/\"\nextract = { t = { json = \"token\" } }\n"), "12:17:", "not a JSON pointer"),
            (format!("{HEAD}[[scenario]]\nname = \"s\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n"), "4:1:", "has no request"),
            ("[[scenario]\nname = 1".to_string(), "1:11:", "invalid table header"),
        ];
        for (toml, at, want) in cases {
            let e = error(&toml);
            assert!(
                e.starts_with(at),
                "expected the error at {at}, got: {e}\n--- file ---\n{toml}"
            );
            assert!(e.contains(want), "expected '{want}' in: {e}");
        }
    }

    #[test]
    fn watch_tables_and_their_mistakes() {
        let base = scenario(
            "executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/\"\n",
        );
        // The line of the n-th line after `base` (1-based).
        let at = |n: usize| format!("{}:", base.lines().count() + n);
        let ok = format!(
            "{base}[[watch]]\nname = \"registry\"\ncmd = \"docker-registry\"\n\
             scrape = \"http://127.0.0.1:5001/metrics\"\nmetrics = [\"go_goroutines\", \
             'x_seconds{{handler=\"blob\"}}']\n\
             [[watch]]\npid = \"{{{{pid}}}}\"\nname = \"other\"\n\
             [defaults.vars]\npid = 4242\n\
             [thresholds]\n\"target_rss{{pid:registry}}\" = [\"max<256MiB\"]\n\
             \"metric{{name:go_goroutines}}\" = [\"last<500\"]\n\
             \"metric_slope{{name:x_seconds{{handler=\\\"blob\\\"}}.p99}}\" = [\"<1/min\"]\n"
        );
        let l = load_str(&ok, &[]).unwrap();
        let w = &l.plan.watch;
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[0].process,
            Some(crate::plan::watch::Process::Command(
                "docker-registry".into()
            ))
        );
        assert_eq!(w[0].scrape.as_ref().unwrap().metrics[1].labels[0].1, "blob");
        assert_eq!(w[1].process, Some(crate::plan::watch::Process::Pid(4242)));
        assert_eq!(l.thresholds.len(), 3);

        let cases = [
            ("[[watch]]\npid = 1\ncmd = \"x\"\n", at(3), "pid or cmd, not both"),
            ("[[watch]]\ncmd = \"x\"\nmetrics = [\"a\"]\n", at(3), "kept from a scrape"),
            ("[[watch]]\nname = \"x\"\n", at(1), "needs pid, cmd, cmdline or scrape"),
            ("[[watch]]\npid = -3\n", at(2), "not a process ID"),
            ("[[watch]]\nscrape = \"https://h/metrics\"\n", at(2), "only http://"),
            ("[[watch]]\ncmd = \"x\"\n[[watch]]\ncmd = \"x\"\n", at(3), "two watches are named 'x'"),
            ("[[watch]]\ncmd = \"x\"\nscrape = \"http://h:1/m\"\nmetrics = [\"9bad\"]\n", at(4), "not a metric name"),
            ("[[watch]]\ncmd = \"x\"\n[thresholds]\n\"target_rss{pid:y}\" = [\"max<1MiB\"]\n", at(4), "no watch is named 'y' (watches: x)"),
            ("[thresholds]\n\"target_cpu\" = [\"avg<0.5\"]\n", at(2), "nothing watches a process"),
            ("[[watch]]\ncmd = \"x\"\n[[watch]]\ncmd = \"y\"\n[thresholds]\n\"target_cpu\" = [\"avg<0.5\"]\n", at(6), "several watches have it (x, y)"),
            ("[[watch]]\ncmd = \"x\"\n[thresholds]\n\"metric{name:go_goroutines}\" = [\"last<5\"]\n", at(4), "no watch scrapes 'go_goroutines'"),
            ("[[watch]]\ncmd = \"x\"\n[thresholds]\n\"target_rss_slope\" = [\"<1MiB\"]\n", at(4), "no time unit"),
        ];
        for (tail, line, want) in cases {
            let e = error(&format!("{base}{tail}"));
            assert!(
                e.starts_with(&line),
                "expected the error at {line}, got: {e}\n{tail}"
            );
            assert!(e.contains(want), "expected '{want}' in: {e}");
        }
    }

    #[test]
    fn event_tables_and_their_mistakes() {
        let base = scenario(
            "executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nname = \"get\"\nurl = \"/\"\n",
        );
        let at = |n: usize| format!("{}:", base.lines().count() + n);
        let ok = format!(
            "{base}[[event]]\nname = \"sync\"\nat = \"2s\"\nevery = \"5s\"\n\
             request = {{ method = \"POST\", url = \"/registry/sync\", check = {{ status = [202] }} }}\n\
             [[event.window]]\nurl = \"/registry/status\"\ninterval = \"20ms\"\n\
             until = {{ json = {{ \"/phase\" = \"idle\" }}, changed = [\"/syncs_completed\"] }}\n\
             [[event]]\nname = \"reload\"\nwrite = {{ path = \"conf\", content = \"x\" }}\n\
             [[event.window]]\nname = \"detect\"\nurl = \"/registry/status\"\nuntil = {{ body_changed = true }}\n\
             [[event]]\nname = \"script\"\ncommand = [\"true\"]\ntimeout = \"2s\"\n\
             [thresholds]\n\"latency{{step:get,during:sync}}\" = [\"p(99)<1s\"]\n\
             \"latency{{step:get}}\" = [\"p(99) during sync < 1.5 × outside\"]\n\
             \"convergence{{window:detect}}\" = [\"max<3s\"]\n\"downtime\" = [\"max<1ms\"]\n"
        );
        let l = load_str(&ok, &[]).unwrap();
        let e = &l.plan.events;
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].at, e[0].every, e[0].windows[0].name.as_str()),
            (Duration::from_secs(2), Some(Duration::from_secs(5)), "sync")
        );
        assert_eq!(e[0].windows[0].changed, ["/syncs_completed"]);
        assert!(e[1].windows[0].body_changed);
        assert!(
            matches!(&e[1].action, crate::plan::event::Action::Write { path, .. } if path.ends_with("conf"))
        );
        assert_eq!(l.thresholds.len(), 4);

        let ev = "[[event]]\nname = \"e\"\n";
        let cases = [
            (format!("{ev}at = \"1s\"\n"), at(1), "exactly one of request, write or command"),
            (format!("{ev}command = []\n"), at(3), "a program and its arguments"),
            (format!("{ev}write = {{ path = \"p\" }}\ntimeout = \"1s\"\n"), at(1), "timeout bounds a command"),
            (format!("{ev}every = \"1ms\"\ncommand = [\"true\"]\n"), at(3), "every: at least 10ms"),
            (format!("{ev}command = [\"true\"]\n[[event.window]]\nurl = \"status\"\nuntil = {{ status = [200] }}\n"), at(5), "a path on the target"),
            (format!("{ev}command = [\"true\"]\n[[event.window]]\nurl = \"/s\"\nuntil = {{}}\n"), at(6), "until needs a condition"),
            (format!("{ev}command = [\"true\"]\n[[event.window]]\nurl = \"/s\"\nuntil = {{ changed = [\"x\"] }}\n"), at(6), "not a JSON pointer"),
            (format!("{ev}command = [\"true\"]\n[[event.window]]\nurl = \"/s\"\nuntil = {{ json = {{ \"/a\" = 1 }}, soon = true }}\n"), at(6), "unknown field `soon`"),
            (format!("{ev}command = [\"true\"]\n[[event]]\nname = \"e\"\ncommand = [\"true\"]\n"), at(5), "two events are named 'e'"),
            (format!("{ev}command = [\"true\"]\n[thresholds]\n\"latency{{during:nope}}\" = [\"p(99)<1s\"]\n"), at(5), "no event window is named 'nope'"),
            (format!("{ev}command = [\"true\"]\n[[event.window]]\nurl = \"/s\"\nuntil = {{ status = [200] }}\n[thresholds]\n\"convergence{{window:e}}\" = [{{ expr = \"max<1s\", abort_on_fail = true }}]\n"), at(8), "abort_on_fail does not apply"),
        ];
        for (tail, line, want) in cases {
            let e = error(&format!("{base}{tail}"));
            assert!(
                e.starts_with(&line),
                "expected the error at {line}, got: {e}\n{tail}"
            );
            assert!(e.contains(want), "expected '{want}' in: {e}");
        }
    }

    #[test]
    fn an_extracted_variable_is_only_for_later_steps() {
        let toml = scenario(
            "executor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n\
             [[scenario.step]]\nname = \"a\"\nurl = \"/{{t}}\"\nextract = { t = { header = \"X-T\" } }\n",
        );
        assert!(error(&toml).contains("undefined template variable 't'"));
    }

    #[test]
    fn executors_map_to_models() {
        let one = |exec: &str| {
            let toml = scenario(&format!("{exec}\n[scenario.request]\nurl = \"/\"\n"));
            let l = load_str(&toml, &[]).unwrap();
            let s = &l.plan.scenarios[0];
            (s.model.clone(), s.stop, s.n_connections)
        };
        // Counts and rates as text take the command line's suffixes and units.
        let (m, stop, c) = one("executor = \"constant-arrival-rate\"\nrate = \"3000/m\"\nduration = \"10s\"\nmax_vus = \"1k\"");
        assert!(
            matches!(&m, Model::Open { rate, max_inflight: 1000, .. } if rate.start == 50.0),
            "{m:?}"
        );
        assert_eq!((stop.duration, c), (Some(Duration::from_secs(10)), 1000));
        let (_, stop, _) = one("executor = \"shared-iterations\"\nvus = 2\niterations = \"10k\"");
        assert_eq!(stop.n_requests, Some(10_000));
        let bad = scenario("executor = \"shared-iterations\"\nvus = 2\niterations = \"lots\"\n[scenario.request]\nurl = \"/\"\n");
        let Err(e) = load_str(&bad, &[]) else {
            panic!("'lots' is not a count")
        };
        let e = e.to_string();
        assert!(e.contains("iterations: 'lots' is not a count"), "{e}");
        let (m, stop, c) = one("executor = \"constant-arrival-rate\"\nrate = 50\nduration = \"10s\"\nmax_vus = 7\narrival = \"poisson\"");
        assert!(matches!(
            m,
            Model::Open {
                arrival: Arrival::Poisson,
                max_inflight: 7,
                ..
            }
        ));
        assert_eq!((stop.duration, c), (Some(Duration::from_secs(10)), 7));
        let (m, _, c) = one("executor = \"ramping-vus\"\nstages = [{ duration = \"1s\", target = 4 }, { duration = \"1s\", target = 0 }]");
        assert!(matches!(m, Model::Closed { vus: Some(_), .. }));
        assert_eq!(c, 4);
        let (m, _, _) = one("executor = \"ramping-arrival-rate\"\nstart_rate = 5\nstages = [{ duration = \"1s\", target = 10 }]");
        assert!(matches!(m, Model::Open { ref rate, .. } if rate.start == 5.0));
        let (_, stop, c) = one("executor = \"shared-iterations\"\nvus = 3\niterations = 10");
        assert_eq!((stop.n_requests, c), (Some(10), 3));
    }
}
