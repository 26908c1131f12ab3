//! CSV for spreadsheets: one row per step per second (`-o csv=FILE`), and one row per step for the
//! whole run (written beside it as `FILE.summary.csv`). Latencies in milliseconds (done − intended,
//! as everywhere); columns are documented in docs/outputs.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RunReport;
use crate::aggregate::{decode_histogram, Dist, TagStats};

/// The per-second file's columns.
pub const SERIES_COLUMNS: [&str; 9] = [
    "t_s",
    "step",
    "requests",
    "failed",
    "dropped",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
];

/// The summary file's columns.
pub const SUMMARY_COLUMNS: [&str; 14] = [
    "step",
    "scenario",
    "requests",
    "failed",
    "dropped",
    "error_rate",
    "rps",
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p99_9_ms",
    "latency_max_ms",
];

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn write_rows(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // invariant: writing CSV records into a Vec cannot fail.
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(&row);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// One row per step that saw requests (or drops) in a second.
pub fn render(r: &RunReport) -> String {
    let mut rows = Vec::new();
    for s in &r.agg.series {
        for t in &s.tags {
            let dist = decode_histogram(&t.latency)
                .ok()
                .map(|h| Dist::of(&h))
                .filter(|d| d.count > 0);
            let q = |name: &str| {
                dist.as_ref()
                    .and_then(|d| d.quantile(name))
                    .map_or(String::new(), ms)
            };
            rows.push(vec![
                s.t_s.to_string(),
                t.name.clone(),
                t.n_requests.to_string(),
                t.n_failed.to_string(),
                t.n_dropped.to_string(),
                q("p50"),
                q("p95"),
                q("p99"),
                dist.as_ref().map_or(String::new(), |d| ms(d.max)),
            ]);
        }
    }
    write_rows(&SERIES_COLUMNS, rows)
}

/// One row per step for the whole run.
pub fn summary(r: &RunReport) -> String {
    let secs = r.info.window.as_secs_f64().max(1e-9);
    let rows = r
        .agg
        .total
        .tags
        .iter()
        .enumerate()
        .map(|(i, t): (usize, &TagStats)| {
            let d = Dist::latency(t);
            let timed = d.count > 0;
            let q = |name: &str| match timed {
                true => d.quantile(name).map_or(String::new(), ms),
                false => String::new(),
            };
            vec![
                t.name.clone(),
                r.scenario_of(i).map_or(String::new(), |s| s.name.clone()),
                t.n_requests.to_string(),
                t.n_failed().to_string(),
                t.n_dropped.to_string(),
                match t.n_requests {
                    0 => String::new(),
                    n => format!("{:.6}", t.n_failed() as f64 / n as f64),
                },
                format!("{:.3}", t.n_requests as f64 / secs),
                if timed { ms(d.mean) } else { String::new() },
                q("p50"),
                q("p90"),
                q("p95"),
                q("p99"),
                q("p99.9"),
                if timed { ms(d.max) } else { String::new() },
            ]
        })
        .collect();
    write_rows(&SUMMARY_COLUMNS, rows)
}

/// Where the summary goes for `-o csv=FILE`: `FILE` with `.summary` before its extension.
pub fn summary_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "regbench".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(|| "csv".into(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.summary.{ext}"))
}
