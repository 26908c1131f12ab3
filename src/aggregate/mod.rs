//! Stage: aggregate — HDR histograms per tag × metric, counters, 1-second interval snapshots, exact merge.
//!
//! Must not keep per-request data: memory grows with tags × seconds, never with requests.

mod collector;
mod recorder;
mod summary;
mod thresholds;
mod validity;

pub use collector::{workers_cpu, Aggregate, Collector, SecondStats, SecondTag};
pub use recorder::{Inflight, Msg, Recorder, WorkerStats};
pub use summary::{
    decode_histogram, encode_histogram, log_bins, new_histogram, CheckCount, Dist, Downtime,
    FailureExample, Summary, TagSpec, TagStats, TlsSession, WindowStats, HIST_MAX_NS, HIST_SIGFIG,
    HIST_UNIT, QUANTILES,
};
pub use thresholds::{evaluate, evaluate_in, ThresholdResult};
pub use validity::{judge, Validity, MAX_WORKER_CPU_SHARE};
