//! An HdrHistogram interval log (`-o hdr=FILE`): each step's latency (done − intended, in
//! nanoseconds) per second, one `Tag=STEP,…` line each, in the format HdrHistogram's own log readers
//! (Java's HistogramLogReader, Python's hdrh.log) read — V2 compressed histograms, base64.
//! Timestamps are seconds since the run's start (`#[BaseTime]` is the start).

use std::fmt::Write;
use std::time::UNIX_EPOCH;

use super::RunReport;
use crate::aggregate::decode_histogram;

pub fn render(r: &RunReport) -> String {
    // Whole milliseconds, as the JSON records the start (a saved result renders the same log).
    let ms = r
        .info
        .started_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let start = format!("{}.{:03}", ms / 1000, ms % 1000);
    let mut o = String::new();
    // invariant: writing into a String cannot fail.
    let _ = (|| -> std::fmt::Result {
        writeln!(o, "#[Histogram log format version 1.3]")?;
        writeln!(
            o,
            "#[regbench {}: latency (done - intended) per step per second, in nanoseconds; Interval_Max in milliseconds]",
            env!("CARGO_PKG_VERSION")
        )?;
        writeln!(o, "#[StartTime: {start} (seconds since epoch)]")?;
        writeln!(o, "#[BaseTime: {start} (seconds since epoch)]")?;
        writeln!(
            o,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        for s in &r.agg.series {
            for t in &s.tags {
                let Ok(h) = decode_histogram(&t.latency) else {
                    continue;
                };
                if h.is_empty() {
                    continue;
                }
                // A tag is the text up to the first comma, and a space ends a log field.
                let tag: String = t
                    .name
                    .chars()
                    .map(|c| {
                        if c == ',' || c.is_whitespace() {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect();
                writeln!(
                    o,
                    "Tag={tag},{:.3},1.000,{:.3},{}",
                    s.t_s as f64,
                    h.max() as f64 / 1e6,
                    t.latency
                )?;
            }
        }
        Ok(())
    })();
    o
}
