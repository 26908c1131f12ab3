//! `regbench merge SHARD.json…`: the shards of one distributed run (`--segment i/n --start-at T`)
//! merged into one report, as if one process had run the whole plan — every counter and histogram
//! summed (in total, per second and per step), rates over the common window, the plan's thresholds
//! judged once on the merged data, validity combined with the shard at fault named.

use std::io::{Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::anyhow;

use super::execute::{check_outputs, emit, judge_all, verdict};
use crate::aggregate::SecondStats;
use crate::app::{run_failed, usage, Failure};
use crate::cli::MergeArgs;
use crate::plan::threshold::Threshold;
use crate::plan::Segment;
use crate::report::saved::{parse_any, Saved};
use crate::report::RunReport;

/// Shards whose start times differ by more than this did not share a `--start-at`: their seconds
/// do not line up, and a merged per-second series would be false.
const START_TOLERANCE: Duration = Duration::from_millis(500);

pub(crate) fn cmd_merge(a: &MergeArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    check_outputs(&a.output)?;
    let mut shards = Vec::new();
    for path in &a.shards {
        let (name, text) = match path.to_str() {
            Some("-") => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| run_failed(anyhow!(e).context("cannot read stdin")))?;
                ("stdin".to_string(), text)
            }
            _ => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    run_failed(anyhow!(e).context(format!("cannot read '{}'", path.display())))
                })?;
                (path.display().to_string(), text)
            }
        };
        // A file (or stdin: `kubectl logs` of every pod) may hold several results one after another.
        let docs = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
        for (k, doc) in docs.enumerate() {
            let doc = doc.map_err(|e| usage(anyhow!("{name}: result {}: not JSON: {e}", k + 1)))?;
            let report = match parse_any(&doc.to_string()) {
                Ok(Saved::Run(r)) => *r,
                Ok(Saved::Stress(_)) => {
                    return Err(usage(anyhow!(
                        "{name}: a stress result cannot be merged (merge takes the shards of a \
                         `regbench run --segment i/n`)"
                    )))
                }
                Err(e) => return Err(usage(anyhow!("{name}: not a regbench result: {e}"))),
            };
            shards.push((format!("{name} (result {})", k + 1), report));
        }
    }
    let merged = merge(shards).map_err(|e| usage(anyhow!(e)))?;
    let code = emit(&merged, &a.output, out)?;
    Ok(verdict(&merged, code, a.strict, a.output.quiet))
}

/// Merges the shards of one run. Errors say which shard is missing, doubled or foreign.
pub(crate) fn merge(shards: Vec<(String, RunReport)>) -> Result<RunReport, String> {
    let Some((_, first)) = shards.first() else {
        return Err("no shards to merge".into());
    };
    let n = first.info.segment.count;
    // Read from a file: the count sizes an allocation below, and must be one a run could have.
    if n == 0 || n > 1_000_000 {
        return Err(format!("a segment count of {n} is not a run's"));
    }
    let mut by_index: Vec<Option<(String, RunReport)>> = (0..n).map(|_| None).collect();
    for (name, r) in shards.iter().cloned() {
        let seg = r.info.segment;
        let (f0, fr) = (&first.info.plan.fingerprint, &r.info.plan.fingerprint);
        if fr != f0 || r.info.seed != first.info.seed || seg.count != n {
            return Err(format!(
                "{name} is not a shard of the same run as the first (plan {}…/{}…, seed {}/{}, \
                 segments {}/{}): merge takes the shards of one `--segment i/n` run",
                fr.chars().take(12).collect::<String>(),
                f0.chars().take(12).collect::<String>(),
                r.info.seed,
                first.info.seed,
                seg.count,
                n
            ));
        }
        // invariant: a result read back has index < count (saved::parse checks), and count == n.
        match &by_index[seg.index as usize] {
            Some((other, _)) => {
                return Err(format!(
                    "shard {}/{n} is given twice: {other} and {name}",
                    seg.index
                ))
            }
            None => by_index[seg.index as usize] = Some((name, r)),
        }
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
        let more = match missing.len() > shown.len() {
            true => format!(" and {} more", missing.len() - shown.len()),
            false => String::new(),
        };
        return Err(format!(
            "shard{} {}{more} missing: a merged report of part of a run would show less load than \
             was sent",
            if missing.len() > 1 { "s" } else { "" },
            shown.join(", ")
        ));
    }
    let shards: Vec<(String, RunReport)> = by_index.into_iter().flatten().collect();
    let starts: Vec<u128> = shards
        .iter()
        .map(|(_, r)| {
            r.info
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        })
        .collect();
    let spread = starts.iter().max().unwrap_or(&0) - starts.iter().min().unwrap_or(&0);
    if spread > START_TOLERANCE.as_millis() {
        return Err(format!(
            "the shards started {spread} ms apart: their seconds do not line up. Give every \
             segment the same --start-at (regbench k8s render does)"
        ));
    }
    let list = thresholds(&shards)?;

    let mut iter = shards.into_iter();
    let Some((_, mut m)) = iter.next() else {
        return Err("no shards to merge".into());
    };
    let order: Vec<String> = m.agg.total.tags.iter().map(|t| t.name.clone()).collect();
    let order: Vec<&str> = order.iter().map(String::as_str).collect();
    let iteration: Vec<String> = m
        .agg
        .total
        .tags
        .iter()
        .filter(|t| t.iteration)
        .map(|t| t.name.clone())
        .collect();
    let is_iteration = |name: &str| iteration.iter().any(|i| i == name);
    m.validity.reasons = prefixed(0, n, &m.validity.reasons);
    for d in &mut m.diagnosis {
        d.evidence = prefixed(0, n, &d.evidence);
    }
    for (k, (_, r)) in iter.enumerate() {
        let k = k as u64 + 1;
        let (mi, ri) = (&mut m.info, &r.info);
        mi.started_at = mi.started_at.min(ri.started_at);
        mi.duration = mi.duration.max(ri.duration);
        mi.window = mi.window.max(ri.window);
        mi.n_workers += ri.n_workers;
        mi.interrupted = mi.interrupted.or(ri.interrupted);
        mi.cut_off |= ri.cut_off;
        mi.process_cpu += ri.process_cpu;
        mi.max_rss = mi.max_rss.max(ri.max_rss);
        if mi.aborted_by.is_none() {
            mi.aborted_by.clone_from(&ri.aborted_by);
        }
        for (sc, o) in mi.scenarios.iter_mut().zip(&ri.scenarios) {
            sc.segment_connections += o.segment_connections;
            sc.segment_slots += o.segment_slots;
            sc.window = sc.window.max(o.window);
        }
        m.agg.total += &r.agg.total;
        m.agg.judged = match (m.agg.judged.take(), &r.agg.judged) {
            (Some(mut j), Some(o)) => {
                j += o;
                Some(j)
            }
            _ => None,
        };
        for s in &r.agg.series {
            while m.agg.series.len() as u64 <= s.t_s {
                let t = m.agg.series.len() as u64;
                m.agg.series.push(SecondStats::empty(t));
            }
            m.agg.series[s.t_s as usize].merge(s, &order, &is_iteration)?;
        }
        m.agg.workers.extend(r.agg.workers.iter().copied());
        let v = &mut m.validity;
        v.valid &= r.validity.valid;
        v.max_worker_cpu_share = v.max_worker_cpu_share.max(r.validity.max_worker_cpu_share);
        v.generator_bound |= r.validity.generator_bound;
        v.reasons.extend(prefixed(k, n, &r.validity.reasons));
        for d in &r.diagnosis {
            match m.diagnosis.iter_mut().find(|x| x.kind == d.kind) {
                Some(x) => {
                    x.count += d.count;
                    x.evidence.extend(prefixed(k, n, &d.evidence));
                }
                None => {
                    let mut d = d.clone();
                    d.evidence = prefixed(k, n, &d.evidence);
                    m.diagnosis.push(d);
                }
            }
        }
    }
    // The merged report is the whole run's; a watched target and events are segment 0's (each
    // pod watched its own view; events are carried out by every segment).
    m.info.segment = Segment::WHOLE;
    m.info.shards = n;
    let scenario_tags = |name: &str| {
        m.info
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.first_tag..s.first_tag + s.n_tags)
    };
    m.thresholds = judge_all(
        &list,
        &m.agg,
        m.info.duration,
        m.info.plan.warmup_secs(),
        m.target.as_ref(),
        m.events.as_ref(),
        &scenario_tags,
    );
    Ok(m)
}

/// The thresholds the run was judged by: every shard's must be the same list.
fn thresholds(shards: &[(String, RunReport)]) -> Result<Vec<Threshold>, String> {
    let keys = |r: &RunReport| -> Vec<(String, String)> {
        r.thresholds
            .iter()
            .map(|t| (t.threshold.key.clone(), t.threshold.expr.clone()))
            .collect()
    };
    let first = keys(&shards[0].1);
    if let Some((name, _)) = shards.iter().find(|(_, r)| keys(r) != first) {
        return Err(format!(
            "{name} was judged by other thresholds than shard 0/{}: run every segment with the \
             same plan and --threshold flags",
            shards.len()
        ));
    }
    Ok(shards[0]
        .1
        .thresholds
        .iter()
        .map(|t| t.threshold.clone())
        .collect())
}

fn prefixed(k: u64, n: u64, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("shard {k}/{n}: {l}"))
        .collect()
}
