//! Executors (k6's vocabulary) → the plan's model, stop conditions and slots.

use super::*;
use crate::scenario::file::Amount;

/// Default in-flight cap of arrival-rate executors without `max_vus`.
pub(super) const DEFAULT_MAX_VUS: i64 = 100;

/// Default bound of iteration-count executors without `max_duration`.
pub(super) const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

/// The executor's model, stop condition and connection count, from its parameters.
pub(super) fn executor(cx: &Ctx, s: &ScenarioSpec) -> Result<(Model, Stop, usize), ScenarioError> {
    let exec = s.executor.get_ref().as_str();
    let takes: &[&str] = match exec {
        "constant-vus" => &["vus", "duration"],
        "ramping-vus" => &["stages", "start_vus"],
        "constant-arrival-rate" => &["rate", "duration", "max_vus", "arrival"],
        "ramping-arrival-rate" => &["stages", "start_rate", "max_vus", "arrival"],
        "per-vu-iterations" | "shared-iterations" => &["vus", "iterations", "max_duration"],
        _ => {
            return Err(cx.at(
                s.executor.span(),
                format!(
                    "unknown executor '{exec}' (expected constant-vus, ramping-vus, constant-arrival-rate, \
                     ramping-arrival-rate, per-vu-iterations or shared-iterations)"
                ),
            ))
        }
    };
    let given: [(&str, Option<Range<usize>>); 10] = [
        ("vus", s.vus.as_ref().map(Spanned::span)),
        ("duration", s.duration.as_ref().map(Spanned::span)),
        ("stages", s.stages.as_ref().map(Spanned::span)),
        ("start_vus", s.start_vus.as_ref().map(Spanned::span)),
        ("rate", s.rate.as_ref().map(Spanned::span)),
        ("start_rate", s.start_rate.as_ref().map(Spanned::span)),
        ("max_vus", s.max_vus.as_ref().map(Spanned::span)),
        ("arrival", s.arrival.as_ref().map(Spanned::span)),
        ("iterations", s.iterations.as_ref().map(Spanned::span)),
        ("max_duration", s.max_duration.as_ref().map(Spanned::span)),
    ];
    for (key, span) in &given {
        if let Some(span) = span {
            if !takes.contains(key) {
                return Err(cx.at(
                    span.clone(),
                    format!(
                        "'{key}' does not apply to executor '{exec}' (it takes: {})",
                        takes.join(", ")
                    ),
                ));
            }
        }
    }
    let need = |key: &str| {
        cx.at(
            s.executor.span(),
            format!(
                "executor '{exec}' needs '{key}' (it takes: {})",
                takes.join(", ")
            ),
        )
    };
    let positive = |v: &Option<Spanned<Amount>>, key: &str| -> Result<Option<u64>, ScenarioError> {
        let Some(v) = v else { return Ok(None) };
        match v.get_ref().count() {
            Ok(n) if n >= 1.0 && n <= u64::MAX as f64 => Ok(Some(n as u64)),
            Ok(n) => Err(cx.at(v.span(), format!("{key} must be at least 1, got {n}"))),
            Err(e) => Err(cx.at(v.span(), format!("{key}: {e}"))),
        }
    };
    let rate = |v: &Option<Spanned<Amount>>, key: &str| -> Result<Option<f64>, ScenarioError> {
        let Some(v) = v else { return Ok(None) };
        match v.get_ref().rate() {
            Ok(r) if r.is_finite() && r >= 0.0 => Ok(Some(r)),
            Ok(r) => Err(cx.at(
                v.span(),
                format!("{key} must be a non-negative number of iterations per second, got {r}"),
            )),
            Err(e) => Err(cx.at(v.span(), format!("{key}: {e}"))),
        }
    };
    let stages = || -> Result<Vec<Stage>, ScenarioError> {
        let st = s.stages.as_ref().ok_or_else(|| need("stages"))?;
        if st.get_ref().is_empty() {
            return Err(cx.at(st.span(), "stages must not be empty"));
        }
        st.get_ref()
            .iter()
            .map(|x| {
                let t = x
                    .target
                    .get_ref()
                    .rate()
                    .map_err(|e| cx.at(x.target.span(), format!("stage target: {e}")))?;
                if !t.is_finite() || t < 0.0 {
                    return Err(cx.at(
                        x.target.span(),
                        format!("a stage target must be ≥ 0, got {t}"),
                    ));
                }
                Ok(Stage {
                    duration: cx.duration(&x.duration, "stage duration")?,
                    target: t,
                })
            })
            .collect()
    };
    let arrival = match &s.arrival {
        Some(a) => Arrival::parse(a.get_ref()).map_err(|e| cx.at(a.span(), e))?,
        None => Arrival::Uniform,
    };
    let max_vus = positive(&s.max_vus, "max_vus")?.unwrap_or(DEFAULT_MAX_VUS as u64) as usize;
    let duration = |req: bool| -> Result<Option<Duration>, ScenarioError> {
        match &s.duration {
            Some(d) => Ok(Some(cx.duration(d, "duration")?)),
            None if req => Err(need("duration")),
            None => Ok(None),
        }
    };
    let closed = |vus: Option<Profile>| Model::Closed {
        think: Duration::ZERO,
        vus,
    };
    Ok(match exec {
        "constant-vus" => {
            let vus = positive(&s.vus, "vus")?.ok_or_else(|| need("vus"))?;
            (
                closed(None),
                Stop {
                    n_requests: None,
                    duration: duration(true)?,
                },
                vus as usize,
            )
        }
        "ramping-vus" => {
            let start = match &s.start_vus {
                Some(v) => match v.get_ref().count() {
                    Ok(n) if n >= 0.0 => n,
                    Ok(n) => return Err(cx.at(v.span(), format!("start_vus must be ≥ 0, got {n}"))),
                    Err(e) => return Err(cx.at(v.span(), format!("start_vus: {e}"))),
                },
                None => 0.0,
            };
            let p = Profile {
                start,
                stages: stages()?,
                hold: false,
            };
            let peak = p.max().ceil().max(1.0) as usize;
            (
                closed(Some(p)),
                Stop {
                    n_requests: None,
                    duration: None,
                },
                peak,
            )
        }
        "constant-arrival-rate" => {
            let r = rate(&s.rate, "rate")?.ok_or_else(|| need("rate"))?;
            let d = duration(true)?;
            let model = Model::Open {
                rate: Profile::constant(r, d),
                arrival,
                max_inflight: max_vus,
            };
            (
                model,
                Stop {
                    n_requests: None,
                    duration: d,
                },
                max_vus,
            )
        }
        "ramping-arrival-rate" => {
            let start = rate(&s.start_rate, "start_rate")?.unwrap_or(0.0);
            let p = Profile {
                start,
                stages: stages()?,
                hold: false,
            };
            let model = Model::Open {
                rate: p,
                arrival,
                max_inflight: max_vus,
            };
            (
                model,
                Stop {
                    n_requests: None,
                    duration: None,
                },
                max_vus,
            )
        }
        _ => {
            // per-vu-iterations / shared-iterations
            let vus = positive(&s.vus, "vus")?.ok_or_else(|| need("vus"))?;
            let it = positive(&s.iterations, "iterations")?.ok_or_else(|| need("iterations"))?;
            let total = if exec == "per-vu-iterations" {
                vus.saturating_mul(it)
            } else {
                it
            };
            let max = match &s.max_duration {
                Some(d) => cx.duration(d, "max_duration")?,
                None => DEFAULT_MAX_DURATION,
            };
            (
                closed(None),
                Stop {
                    n_requests: Some(total),
                    duration: Some(max),
                },
                vus as usize,
            )
        }
    })
}
