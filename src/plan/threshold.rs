//! Thresholds, k6-style: `"latency{step:get-server}" = ["p(95)<50ms", "p(99)<100ms"]`,
//! `"errors" = ["rate<0.01"]`, `"checks" = ["rate>0.99"]`, `"rps" = ["rate>90"]`.
//!
//! Metrics and their statistics: `latency`, `service_time`, `ttfb` take `p(N)`, `avg`, `med`, `min`,
//! `max` with a duration (`50ms`, `1.5s`, `200us`; a bare number is refused: k6 reads it as milliseconds, a load tool's -z as seconds); `errors` takes
//! `rate` (failed / requests: transport errors and 4xx/5xx) and `count`; `checks` takes `rate`
//! (passed / evaluated) and `count` (failed); `rps` takes `rate` (requests per second of the run).

use std::time::Duration;

use crate::util::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Latency,
    ServiceTime,
    Ttfb,
    Errors,
    Checks,
    Rps,
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
            _ => return None,
        })
    }

    pub fn is_duration(self) -> bool {
        matches!(self, Metric::Latency | Metric::ServiceTime | Metric::Ttfb)
    }
}

/// Which requests a threshold looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Step(String),
    Scenario(String),
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
        let (metric, filter) = parse_key(key)?;
        let (stat, op, bound) = parse_expr(metric, expr)?;
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

/// Parses a key: `metric` or `metric{step:NAME}` / `metric{scenario:NAME}`.
pub fn parse_key(key: &str) -> Result<(Metric, Filter), String> {
    let (name, filter) = match key.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("'{key}': a tag filter ends with '}}'"))?;
            let (k, v) = inner
                .split_once(':')
                .ok_or_else(|| format!("'{key}': expected {{step:NAME}} or {{scenario:NAME}}"))?;
            let v = v.trim().to_string();
            let filter = match k.trim() {
                "step" => Filter::Step(v),
                "scenario" => Filter::Scenario(v),
                other => {
                    return Err(format!(
                        "'{key}': cannot filter by '{other}' (expected step or scenario)"
                    ))
                }
            };
            (name.trim(), filter)
        }
        None => (key.trim(), Filter::All),
    };
    let metric = Metric::parse(name).ok_or_else(|| {
        format!("'{name}' is not a metric (expected latency, service_time, ttfb, errors, checks or rps; or k6's http_req_duration, http_req_waiting, http_req_failed, http_reqs)")
    })?;
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
            _ => return Err(format!("'{expr}': unknown statistic '{stat_s}'")),
        }
    };
    let allowed = match metric {
        m if m.is_duration() => matches!(stat, Stat::P(_) | Stat::Avg | Stat::Min | Stat::Max),
        Metric::Errors | Metric::Checks => matches!(stat, Stat::Rate | Stat::Count),
        _ => matches!(stat, Stat::Rate),
    };
    if !allowed {
        let takes = match metric {
            m if m.is_duration() => "p(N), avg, med, min or max",
            Metric::Errors | Metric::Checks => "rate or count",
            _ => "rate",
        };
        return Err(format!("'{expr}': this metric takes {takes}"));
    }
    let value_s = value_s.trim();
    let bound = if metric.is_duration() {
        // A bare number is refused here as everywhere (k6 reads it as ms, `-z` as s).
        let d = parse_duration(value_s).map_err(|e| format!("'{expr}': {e}"))?;
        d.as_nanos() as f64
    } else {
        // A share may be written as a percentage: `errors` `rate<1%` is `rate<0.01`.
        let (digits, scale) = match value_s.strip_suffix('%') {
            Some(d) if matches!(metric, Metric::Errors | Metric::Checks) && stat == Stat::Rate => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
