//! Thresholds, k6-style: `"latency{step:get-server}" = ["p(95)<50ms", "p(99)<100ms"]`,
//! `"errors" = ["rate<0.01"]`, `"checks" = ["rate>0.99"]`, `"rps" = ["rate>90"]`.
//!
//! Metrics and their statistics: `latency`, `service_time`, `ttfb` take `p(N)`, `avg`, `med`, `min`,
//! `max` with a duration (`50ms`, `1.5s`, `200us`; a bare number is refused: k6 reads it as milliseconds, a load tool's -z as seconds); `errors` takes
//! `rate` (failed / requests: transport errors and 4xx/5xx) and `count`; `grpc_CODE`
//! (`grpc_unavailable`, `grpc_deadline_exceeded`, any gRPC status code by name) the same of calls that
//! ended with that code; `checks` takes `rate`
//! (passed / evaluated) and `count` (failed); `rps` takes `rate` (requests per second of the run).
//!
//! The watched target (`plan::watch`): `target_cpu`, `target_rss`, `target_fds`, … (every process
//! metric, `target_` + its name) and `metric{name:SELECTOR}` (a scraped series) take `min`, `max`,
//! `avg`, `last`, `p(N)` and `med` over the per-second values, with a number, a byte size
//! (`256MiB`) or a percentage (`150%` of a core); `{pid:NAME}` (or `{watch:NAME}`) picks a watch when
//! there are several. `target_rss_slope`, `metric_slope{name:…}` and every `target_…_slope` are the
//! least-squares growth per unit of time: `["<1MiB/h"]`, `["slope<10/min"]`.

use std::time::Duration;

use super::watch::PROCESS_METRICS;
use crate::util::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Latency,
    ServiceTime,
    Ttfb,
    Errors,
    Checks,
    Rps,
    /// A process metric of a watched target: the index in `watch::PROCESS_METRICS`; with `slope`,
    /// its least-squares growth per second.
    Process {
        index: usize,
        slope: bool,
    },
    /// A scraped series (named by the filter's `name:`).
    Scraped {
        slope: bool,
    },
    /// The longest span of failures (`Summary::downtime`).
    Downtime,
    /// An event window's convergence times (`{window:NAME}`).
    Convergence,
    /// gRPC calls that ended with this status code (`grpc_unavailable`, `grpc_deadline_exceeded`,
    /// `grpc_ok`): `rate` of all requests, or `count`.
    Grpc(u8),
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "latency" => Metric::Latency,
            "service_time" => Metric::ServiceTime,
            "ttfb" => Metric::Ttfb,
            "errors" => Metric::Errors,
            "checks" => Metric::Checks,
            "rps" => Metric::Rps,
            // k6's names for the same things (docs/compatibility.md). k6's http_req_duration leaves
            // out time spent waiting to be sent; regbench's latency does not, so it is stricter.
            "http_req_duration" => Metric::Latency,
            "http_req_waiting" => Metric::Ttfb,
            "http_req_failed" => Metric::Errors,
            "http_reqs" => Metric::Rps,
            "downtime" => Metric::Downtime,
            "convergence" => Metric::Convergence,
            "metric" => Metric::Scraped { slope: false },
            "metric_slope" => Metric::Scraped { slope: true },
            other if other.starts_with("grpc_") => {
                let code = crate::sample::grpc_code_from_name(&other["grpc_".len()..])?;
                Metric::Grpc(code)
            }
            other => {
                let name = other.strip_prefix("target_")?;
                let (name, slope) = match name.strip_suffix("_slope") {
                    Some(n) => (n, true),
                    None => (name, false),
                };
                let index = PROCESS_METRICS.iter().position(|m| *m == name)?;
                Metric::Process { index, slope }
            }
        })
    }

    /// A metric of the watched target rather than of the requests.
    pub fn is_target(self) -> bool {
        matches!(self, Metric::Process { .. } | Metric::Scraped { .. })
    }

    pub fn is_slope(self) -> bool {
        matches!(
            self,
            Metric::Process { slope: true, .. } | Metric::Scraped { slope: true }
        )
    }

    pub fn is_duration(self) -> bool {
        matches!(
            self,
            Metric::Latency
                | Metric::ServiceTime
                | Metric::Ttfb
                | Metric::Downtime
                | Metric::Convergence
        )
    }
}

/// Which requests a threshold looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Step(String),
    Scenario(String),
    /// A target metric: of the watch with this name (any, when there is one), and for a scraped
    /// series its selector as written in the watch.
    Target {
        watch: Option<String>,
        name: Option<String>,
    },
    /// The requests (of `base`) intended while window `window` was open; `outside`: outside them
    /// all.
    During {
        base: Box<Filter>,
        window: String,
    },
    /// `STAT during W < F × outside`: the statistic during window `window` over the same outside
    /// every window, as a ratio (the threshold's bound is `F`).
    Relative {
        base: Box<Filter>,
        window: String,
    },
    /// An event window, for `convergence`.
    Window(String),
}

impl Filter {
    /// The step/scenario selection under a window filter.
    pub fn base(&self) -> &Filter {
        match self {
            Filter::During { base, .. } | Filter::Relative { base, .. } => base,
            other => other,
        }
    }

    /// The event window this filter names, if any.
    pub fn window(&self) -> Option<&str> {
        match self {
            Filter::During { window, .. }
            | Filter::Relative { window, .. }
            | Filter::Window(window) => Some(window),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// Percentile, 0–100.
    P(f64),
    Avg,
    Min,
    Max,
    Rate,
    Count,
    /// The last per-second value.
    Last,
    /// The least-squares slope, per second.
    Slope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    pub fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
            Op::Eq => observed == bound,
        }
    }
}

/// One condition on one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The key as written (`latency{step:get-server}`).
    pub key: String,
    /// The condition as written (`p(95)<50ms`).
    pub expr: String,
    pub metric: Metric,
    pub filter: Filter,
    pub stat: Stat,
    pub op: Op,
    /// Nanoseconds for duration metrics; a plain number otherwise.
    pub bound: f64,
    /// Stop the run as soon as this fails (after `grace`), instead of only failing at the end.
    pub abort_on_fail: bool,
    pub grace: Duration,
}

impl Threshold {
    /// `key` and `expr` as written (`latency{step:get}`, `p(99)<1s`), judged at the end only.
    pub fn parse(key: &str, expr: &str) -> Result<Threshold, String> {
        let (metric, mut filter) = parse_key(key)?;
        let (stat, op, bound) = match relative(expr) {
            Some(rel) => {
                let (stat_s, window, op, factor) = rel?;
                if !matches!(metric, Metric::Latency | Metric::ServiceTime | Metric::Ttfb) {
                    return Err(format!(
                        "'{expr}': a during-vs-outside comparison is for latency, service_time or ttfb"
                    ));
                }
                if matches!(filter, Filter::During { .. }) {
                    return Err(format!(
                        "'{key}': the comparison names its window; drop during: from the key"
                    ));
                }
                let (stat, _, _) = parse_expr(metric, &format!("{stat_s}<1s"))?;
                filter = Filter::Relative {
                    base: Box::new(filter),
                    window,
                };
                (stat, op, factor)
            }
            None => parse_expr(metric, expr)?,
        };
        Ok(Threshold {
            key: key.into(),
            expr: expr.into(),
            metric,
            filter,
            stat,
            op,
            bound,
            abort_on_fail: false,
            grace: Duration::ZERO,
        })
    }
}

impl Threshold {
    /// A threshold on the target must read a series some watch provides, and say which watch when
    /// several could.
    pub fn check_watches(&self, watches: &[super::watch::Watch]) -> Result<(), String> {
        let Filter::Target { watch, name } = self.filter.base() else {
            return Ok(());
        };
        let key = &self.key;
        let named: Vec<&super::watch::Watch> = watches
            .iter()
            .filter(|w| watch.as_ref().is_none_or(|n| *n == w.name))
            .collect();
        if let (Some(n), true) = (watch, named.is_empty()) {
            let all: Vec<&str> = watches.iter().map(|w| w.name.as_str()).collect();
            return Err(format!(
                "'{key}': no watch is named '{n}' (watches: {})",
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                }
            ));
        }
        let having: Vec<&str> = match (self.metric, name) {
            (Metric::Scraped { .. }, Some(series)) => {
                // `x.p99` reads the histogram `x`.
                let base = series
                    .rsplit_once('.')
                    .filter(|(_, s)| *s == "rate" || s.starts_with('p'))
                    .map_or(series.as_str(), |(b, _)| b);
                named
                    .iter()
                    .filter(|w| {
                        w.scrape.as_ref().is_some_and(|s| {
                            s.metrics
                                .iter()
                                .any(|m| m.text == *series || m.text == base)
                        })
                    })
                    .map(|w| w.name.as_str())
                    .collect()
            }
            _ => named
                .iter()
                .filter(|w| w.process.is_some())
                .map(|w| w.name.as_str())
                .collect(),
        };
        match having.len() {
            0 if matches!(self.metric, Metric::Scraped { .. }) => Err(format!(
                "'{key}': no watch scrapes '{}' (name it in the watch's metrics, or --scrape-metric)",
                name.as_deref().unwrap_or("")
            )),
            0 => Err(format!(
                "'{key}': nothing watches a process (add --watch-pid/--watch-cmd, or pid/cmd in [[watch]])"
            )),
            1 => Ok(()),
            _ => Err(format!(
                "'{key}': several watches have it ({}): name one, e.g. {{pid:{}}}",
                having.join(", "),
                having[0]
            )),
        }
    }

    /// A threshold on an event window must name one of the plan's (`outside` too, for `during:`).
    pub fn check_windows(&self, names: &[&str]) -> Result<(), String> {
        let Some(w) = self.filter.window() else {
            return Ok(());
        };
        let outside_ok = matches!(self.filter, Filter::During { .. });
        if names.contains(&w) || (outside_ok && w == "outside") {
            return Ok(());
        }
        Err(format!(
            "'{}': no event window is named '{w}' (windows: {})",
            self.key,
            match names.is_empty() {
                true => "none: add [[event.window]]".to_string(),
                false => names.join(", "),
            }
        ))
    }

    /// `KEY:EXPR` as the command line gives it (`--threshold`, `--slo`): the key may hold a tag
    /// filter with colons of its own (`latency{step:get}:p(99)<1s`).
    pub fn parse_flag(s: &str) -> Result<Threshold, String> {
        let text = s.trim();
        // A condition never holds a brace: the key ends at the last one.
        let key_end = match text.rfind('}') {
            Some(b) => Some(b + 1),
            None => text.find(':'),
        };
        let (key, expr) = match key_end.map(|k| text.split_at(k)) {
            Some((k, rest)) if rest.starts_with(':') => (k.trim(), rest[1..].trim()),
            _ => {
                return Err(format!(
                "'{s}': expected KEY:CONDITION, e.g. latency:p(99)<200ms or target_rss:max<256MiB"
            ))
            }
        };
        Threshold::parse(key, expr)
    }
}

/// Parses a key: `metric` or `metric{step:NAME}` / `metric{scenario:NAME}`; a target metric's
/// `{pid:NAME}`, `{watch:NAME}`, `{name:SELECTOR}`, comma-separated.
pub fn parse_key(key: &str) -> Result<(Metric, Filter), String> {
    let (name, inner) = match key.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("'{key}': a tag filter ends with '}}'"))?;
            (name.trim(), Some(inner))
        }
        None => (key.trim(), None),
    };
    let metric = Metric::parse(name).ok_or_else(|| {
        format!("'{name}' is not a metric (expected latency, service_time, ttfb, errors, checks or rps; k6's http_req_duration, http_req_waiting, http_req_failed, http_reqs; a watched target's target_cpu, target_rss, target_fds, … or metric{{name:…}}, with _slope for a trend; a gRPC status code: grpc_unavailable, grpc_deadline_exceeded, …)")
    })?;
    if metric.is_target() {
        let (mut watch, mut series, mut during) = (None, None, None);
        // A selector's own labels hold commas and colons: `name:` takes the rest of the key.
        let mut rest = inner.unwrap_or("").trim();
        while !rest.is_empty() {
            let (k, v) = rest
                .split_once(':')
                .ok_or_else(|| format!("'{key}': expected {{pid:NAME}} or {{name:METRIC}}"))?;
            let (v, next) = match k.trim() {
                "name" => (v, ""),
                _ => v.split_once(',').unwrap_or((v, "")),
            };
            let v = Some(v.trim().to_string());
            match k.trim() {
                "pid" | "watch" => watch = v,
                "during" if !metric.is_slope() => during = v,
                "name" if matches!(metric, Metric::Scraped { .. }) => series = v,
                other => {
                    return Err(format!(
                        "'{key}': cannot filter by '{other}' (expected pid, watch, during{})",
                        if matches!(metric, Metric::Scraped { .. }) {
                            " or name"
                        } else {
                            ""
                        }
                    ))
                }
            }
            rest = next.trim();
        }
        if matches!(metric, Metric::Scraped { .. }) && series.is_none() {
            return Err(format!(
                "'{key}': a scraped metric is named: {name}{{name:go_goroutines}}"
            ));
        }
        let target = Filter::Target {
            watch,
            name: series,
        };
        return Ok((
            metric,
            match during {
                Some(window) => Filter::During {
                    base: Box::new(target),
                    window,
                },
                None => target,
            },
        ));
    }
    if metric == Metric::Convergence {
        let window = inner
            .and_then(|i| i.trim().strip_prefix("window:"))
            .map(|w| w.trim().to_string())
            .ok_or_else(|| format!("'{key}': name the window: convergence{{window:sync}}"))?;
        return Ok((metric, Filter::Window(window)));
    }
    let mut filter = Filter::All;
    let mut during = None;
    for pair in inner
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once(':').ok_or_else(|| {
            format!("'{key}': expected {{step:NAME}}, {{scenario:NAME}} or {{during:WINDOW}}")
        })?;
        let v = v.trim().to_string();
        match k.trim() {
            "step" if filter == Filter::All => filter = Filter::Step(v),
            "scenario" if filter == Filter::All => filter = Filter::Scenario(v),
            "step" | "scenario" => {
                return Err(format!("'{key}': one step or one scenario"));
            }
            "during" if metric != Metric::Downtime => during = Some(v),
            other => {
                return Err(format!(
                    "'{key}': cannot filter by '{other}' (expected step, scenario or during)"
                ))
            }
        }
    }
    if metric == Metric::Downtime && filter != Filter::All {
        return Err(format!("'{key}': downtime is the whole run's"));
    }
    if let Some(window) = during {
        if !matches!(
            metric,
            Metric::Latency | Metric::ServiceTime | Metric::Ttfb | Metric::Errors
        ) {
            return Err(format!(
                "'{key}': during: selects requests of latency, service_time, ttfb or errors"
            ));
        }
        filter = Filter::During {
            base: Box::new(filter),
            window,
        };
    }
    Ok((metric, filter))
}

/// Parses a condition such as `p(95)<50ms` for `metric`.
pub fn parse_expr(metric: Metric, expr: &str) -> Result<(Stat, Op, f64), String> {
    let e = expr.trim();
    let at = e.find(['<', '>', '=']).ok_or_else(|| {
        format!("'{expr}': expected STAT OP VALUE, e.g. p(95)<200ms or rate<0.01")
    })?;
    let (stat_s, rest) = e.split_at(at);
    let (op, value_s) = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find_map(|(t, op)| rest.strip_prefix(t).map(|v| (*op, v)))
    .ok_or_else(|| format!("'{expr}': unknown comparison"))?;
    let stat_s = stat_s.trim();
    let stat = if let Some(p) = stat_s.strip_prefix("p(").and_then(|r| r.strip_suffix(')')) {
        let p: f64 = p
            .trim()
            .parse()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| format!("'{expr}': the percentile must be a number from 0 to 100"))?;
        Stat::P(p)
    } else {
        match stat_s {
            "avg" => Stat::Avg,
            "med" => Stat::P(50.0),
            "min" => Stat::Min,
            "max" => Stat::Max,
            "rate" => Stat::Rate,
            "count" => Stat::Count,
            "last" => Stat::Last,
            "slope" | "" if metric.is_slope() => Stat::Slope,
            _ => return Err(format!("'{expr}': unknown statistic '{stat_s}'")),
        }
    };
    let allowed = match metric {
        Metric::Downtime => stat == Stat::Max,
        m if m.is_duration() => matches!(stat, Stat::P(_) | Stat::Avg | Stat::Min | Stat::Max),
        Metric::Errors | Metric::Checks | Metric::Grpc(_) => {
            matches!(stat, Stat::Rate | Stat::Count)
        }
        m if m.is_slope() => stat == Stat::Slope,
        m if m.is_target() => matches!(
            stat,
            Stat::P(_) | Stat::Avg | Stat::Min | Stat::Max | Stat::Last
        ),
        _ => matches!(stat, Stat::Rate),
    };
    if !allowed {
        let takes = match metric {
            Metric::Downtime => "max (the longest span of failures)",
            m if m.is_duration() => "p(N), avg, med, min or max",
            Metric::Errors | Metric::Checks | Metric::Grpc(_) => "rate or count",
            m if m.is_slope() => "a growth per unit of time, e.g. <1MiB/h or slope<10/min",
            m if m.is_target() => "min, max, avg, last, med or p(N)",
            _ => "rate",
        };
        return Err(format!("'{expr}': this metric takes {takes}"));
    }
    let value_s = value_s.trim();
    let bound = if metric.is_duration() {
        // A bare number is refused here as everywhere (k6 reads it as ms, `-z` as s).
        let d = parse_duration(value_s).map_err(|e| format!("'{expr}': {e}"))?;
        d.as_nanos() as f64
    } else if metric.is_target() {
        target_bound(value_s, metric.is_slope()).map_err(|e| format!("'{expr}': {e}"))?
    } else {
        // A share may be written as a percentage: `errors` `rate<1%` is `rate<0.01`.
        let (digits, scale) = match value_s.strip_suffix('%') {
            Some(d)
                if matches!(metric, Metric::Errors | Metric::Checks | Metric::Grpc(_))
                    && stat == Stat::Rate =>
            {
                (d.trim(), 0.01)
            }
            _ => (value_s, 1.0),
        };
        digits
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| v * scale)
            .ok_or_else(|| format!("'{expr}': '{value_s}' is not a number"))?
    };
    Ok((stat, op, bound))
}

/// `STAT during WINDOW OP FACTOR × outside` (`×`, `x` or `*`): `Some` when the condition is one,
/// with its statistic, window, comparison and factor.
#[allow(clippy::type_complexity)]
fn relative(expr: &str) -> Option<Result<(String, String, Op, f64), String>> {
    let (stat, rest) = expr.trim().split_once(" during ")?;
    let bad = || {
        format!("'{expr}': expected e.g. 'p(99) during sync < 1.5 × outside' (a factor of the same statistic outside every window)")
    };
    let parse = || -> Option<(String, String, Op, f64)> {
        let rest = rest.trim();
        let at = rest.find(['<', '>', '='])?;
        let (window, cond) = rest.split_at(at);
        let (op, cond) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(t, op)| cond.strip_prefix(t).map(|c| (*op, c)))?;
        let factor = cond.trim().strip_suffix("outside")?.trim();
        let factor = factor
            .strip_suffix('×')
            .or_else(|| factor.strip_suffix('x'))
            .or_else(|| factor.strip_suffix('*'))?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f > 0.0)?;
        let window = window.trim();
        (!window.is_empty()).then(|| (stat.trim().to_string(), window.to_string(), op, factor))
    };
    Some(parse().ok_or_else(bad))
}

/// A target metric's bound: a number, a byte size (`256MiB`), a percentage (`150%` = 1.5); a slope's
/// per unit of time (`1MiB/h`, `10/min`, `0.5/s`), returned per second.
fn target_bound(value: &str, slope: bool) -> Result<f64, String> {
    let (amount, per) = match value.rsplit_once('/') {
        Some((a, unit)) if slope => {
            let per = match unit.trim() {
                "s" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                u => return Err(format!("unknown unit '/{u}' (expected /s, /min, /h or /d)")),
            };
            (a.trim(), per)
        }
        None if slope => {
            return Err(format!(
                "'{value}' has no time unit: a slope is per /s, /min, /h or /d (e.g. 1MiB/h)"
            ))
        }
        _ => (value, 1.0),
    };
    let v = match amount.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0).ok(),
        None => amount
            .parse::<f64>()
            .ok()
            .or_else(|| crate::util::parse_bytes(amount).ok()),
    };
    v.filter(|v| v.is_finite())
        .map(|v| v / per)
        .ok_or_else(|| format!("'{value}' is not a number, a size such as 256MiB, or a percentage"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_downtime_and_convergence() {
        let t = Threshold::parse("latency{step:get,during:sync}", "p(99)<200ms").unwrap();
        assert_eq!(
            t.filter,
            Filter::During {
                base: Box::new(Filter::Step("get".into())),
                window: "sync".into()
            }
        );
        let t = Threshold::parse("latency{step:get}", "p(99) during sync < 1.5 × outside").unwrap();
        assert_eq!(
            (t.stat, t.op, t.bound, t.filter.window()),
            (Stat::P(99.0), Op::Lt, 1.5, Some("sync"))
        );
        assert_eq!(
            Threshold::parse("latency", "p(95) during reload <= 2x outside")
                .unwrap()
                .bound,
            2.0
        );
        assert!(Threshold::parse("latency", "p(99) during sync < fast")
            .unwrap_err()
            .contains("1.5 × outside"));
        assert!(Threshold::parse("errors", "rate during sync < 2x outside").is_err());
        let t = Threshold::parse("errors{during:reload}", "count==0").unwrap();
        assert_eq!(t.filter.window(), Some("reload"));
        let t = Threshold::parse("downtime", "max<1ms").unwrap();
        assert_eq!((t.metric, t.bound), (Metric::Downtime, 1e6));
        assert!(Threshold::parse("downtime", "p(99)<1ms").is_err());
        let t = Threshold::parse("convergence{window:sync}", "max<2s").unwrap();
        assert_eq!(t.filter, Filter::Window("sync".into()));
        assert!(Threshold::parse("convergence", "max<2s").is_err());
    }

    #[test]
    fn command_line_thresholds_split_after_the_key() {
        let t = Threshold::parse_flag("latency{step:get}:p(99)<1s").unwrap();
        assert_eq!(
            (t.filter, t.stat, t.bound),
            (Filter::Step("get".into()), Stat::P(99.0), 1e9)
        );
        let t = Threshold::parse_flag(r#"metric{name:x{a="b,c"}.p99}:last<5"#).unwrap();
        assert_eq!(
            t.filter,
            Filter::Target {
                watch: None,
                name: Some(r#"x{a="b,c"}.p99"#.into())
            }
        );
        let t = Threshold::parse_flag("target_rss_slope:<1MiB/h").unwrap();
        assert_eq!(t.stat, Stat::Slope);
        assert!(Threshold::parse_flag("p(99)<1s")
            .unwrap_err()
            .contains("KEY:CONDITION"));
    }

    #[test]
    fn target_keys_and_bounds() {
        let rss = PROCESS_METRICS.iter().position(|m| *m == "rss").unwrap();
        assert_eq!(
            parse_key("target_rss{pid:registry}").unwrap(),
            (
                Metric::Process {
                    index: rss,
                    slope: false
                },
                Filter::Target {
                    watch: Some("registry".into()),
                    name: None
                }
            )
        );
        assert_eq!(
            parse_key("target_rss_slope").unwrap().0,
            Metric::Process {
                index: rss,
                slope: true
            }
        );
        assert_eq!(
            parse_key(r#"metric{watch:reg, name:http_requests_total{code="200",method="get"}}"#)
                .unwrap()
                .1,
            Filter::Target {
                watch: Some("reg".into()),
                name: Some(r#"http_requests_total{code="200",method="get"}"#.into())
            }
        );
        assert!(parse_key("metric").unwrap_err().contains("is named"));
        assert!(parse_key("target_cpu{step:x}")
            .unwrap_err()
            .contains("cannot filter by 'step'"));
        assert!(parse_key("target_nope").is_err());
        let (cpu, _) = parse_key("target_cpu").unwrap();
        assert_eq!(
            parse_expr(cpu, "avg<0.5").unwrap(),
            (Stat::Avg, Op::Lt, 0.5)
        );
        assert_eq!(
            parse_expr(cpu, "max<150%").unwrap(),
            (Stat::Max, Op::Lt, 1.5)
        );
        let (mem, _) = parse_key("target_rss").unwrap();
        assert_eq!(
            parse_expr(mem, "max<256MiB").unwrap(),
            (Stat::Max, Op::Lt, 256.0 * 1024.0 * 1024.0)
        );
        assert_eq!(parse_expr(mem, "last<4.8e+07").unwrap().2, 4.8e7);
        assert!(parse_expr(mem, "rate<1")
            .unwrap_err()
            .contains("takes min, max"));
        let (slope, _) = parse_key("target_rss_slope").unwrap();
        assert_eq!(
            parse_expr(slope, "<1MiB/h").unwrap(),
            (Stat::Slope, Op::Lt, 1024.0 * 1024.0 / 3600.0)
        );
        assert_eq!(parse_expr(slope, "slope < 10/min").unwrap().2, 10.0 / 60.0);
        assert!(parse_expr(slope, "<1MiB")
            .unwrap_err()
            .contains("no time unit"));
        assert!(parse_expr(slope, "max<1MiB/h")
            .unwrap_err()
            .contains("growth per unit"));
    }

    #[test]
    fn keys() {
        assert_eq!(
            parse_key("latency").unwrap(),
            (Metric::Latency, Filter::All)
        );
        assert_eq!(
            parse_key("latency{step:get-server}").unwrap(),
            (Metric::Latency, Filter::Step("get-server".into()))
        );
        assert_eq!(
            parse_key("errors{scenario:list}").unwrap(),
            (Metric::Errors, Filter::Scenario("list".into()))
        );
        assert!(parse_key("latency{team:x}")
            .unwrap_err()
            .contains("cannot filter by 'team'"));
        assert!(parse_key("lat").unwrap_err().contains("not a metric"));
        assert!(parse_key("latency{step:x").is_err());
    }

    #[test]
    fn exprs() {
        assert_eq!(
            parse_expr(Metric::Latency, "p(95)<50ms").unwrap(),
            (Stat::P(95.0), Op::Lt, 50e6)
        );
        assert_eq!(
            parse_expr(Metric::Latency, "p(99.9) <= 1.5s").unwrap(),
            (Stat::P(99.9), Op::Le, 1.5e9)
        );
        let bare = parse_expr(Metric::Latency, "avg<200").unwrap_err();
        assert!(
            bare.contains("200ms or 200s"),
            "a bare number has no unit: {bare}"
        );
        assert_eq!(
            parse_expr(Metric::Latency, "med<1ms").unwrap().0,
            Stat::P(50.0)
        );
        assert_eq!(
            parse_expr(Metric::Errors, "rate<0.01").unwrap(),
            (Stat::Rate, Op::Lt, 0.01)
        );
        assert_eq!(
            parse_expr(Metric::Checks, "rate>0.99").unwrap(),
            (Stat::Rate, Op::Gt, 0.99)
        );
        assert_eq!(
            parse_expr(Metric::Rps, "rate>=90").unwrap(),
            (Stat::Rate, Op::Ge, 90.0)
        );
        assert!(parse_expr(Metric::Errors, "p(95)<1")
            .unwrap_err()
            .contains("takes rate or count"));
        assert!(parse_expr(Metric::Latency, "p(101)<1ms").is_err());
        assert!(parse_expr(Metric::Latency, "p(95)")
            .unwrap_err()
            .contains("expected STAT OP VALUE"));
        assert!(parse_expr(Metric::Latency, "p(95)<fast").is_err());
        assert!(parse_expr(Metric::Latency, "mode<1ms")
            .unwrap_err()
            .contains("unknown statistic"));
    }
}
