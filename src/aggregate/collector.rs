//! The collector side of aggregation: merges worker intervals into the run total and a per-second time
//! series. Memory grows with tags × seconds (one small row per second), never with requests.

use std::collections::BTreeMap;
use std::time::Duration;

use super::recorder::Inflight;
use super::{encode_histogram, Dist, Msg, Summary, TagSpec, WorkerStats};

/// One second of the run, all workers and tags together.
#[derive(Clone, Debug, PartialEq)]
pub struct SecondStats {
    /// Seconds since the run started (this row covers [t, t+1)).
    pub t_s: u64,
    pub n_requests: u64,
    pub n_errors: u64,
    pub n_dropped: u64,
    pub bytes_in: u64,
    /// Responses by status code (requests without a response are `n_requests` minus their sum).
    pub status: std::collections::BTreeMap<u16, u64>,
    /// gRPC calls by gRPC status code (not in `status`).
    pub grpc: std::collections::BTreeMap<u8, u64>,
    /// Messages delivered on open streams and sockets (not in `status`).
    pub n_delivered: u64,
    /// Requests in flight during the second: the time-weighted mean (summed over workers, exact)
    /// and the sum of the workers' peaks (an upper bound of the peak).
    pub inflight: Inflight,
    pub latency: Dist,
    /// The tags that saw any request or drop this second, with their histograms encoded (so a
    /// long run's series stays small, and merges and plots per step).
    pub tags: Vec<SecondTag>,
}

impl SecondStats {
    /// The second's latency distribution: its requests' histograms together, whole iterations
    /// (`iteration(name)`) left out — as the collector computes it from the second's summary.
    pub fn latency_of(
        tags: &[SecondTag],
        iteration: &dyn Fn(&str) -> bool,
    ) -> Result<Dist, String> {
        let mut all = super::TagStats::new("all");
        for t in tags.iter().filter(|t| !iteration(&t.name)) {
            for (text, into) in [
                (&t.latency, &mut all.latency),
                (&t.dropped_lag, &mut all.dropped_lag),
            ] {
                let h = super::decode_histogram(text)?;
                into.add(&h)
                    .map_err(|e| format!("a histogram out of range: {e}"))?;
            }
        }
        Ok(Dist::latency(&all))
    }

    /// Adds the same second of another process of a distributed run. `order` is the tag names in
    /// plan order (tags keep it); `iteration` says which are whole iterations.
    pub fn merge(
        &mut self,
        o: &SecondStats,
        order: &[&str],
        iteration: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        self.n_requests += o.n_requests;
        self.n_errors += o.n_errors;
        self.n_dropped += o.n_dropped;
        self.bytes_in += o.bytes_in;
        for (code, n) in &o.status {
            *self.status.entry(*code).or_default() += n;
        }
        for (code, n) in &o.grpc {
            *self.grpc.entry(*code).or_default() += n;
        }
        self.n_delivered += o.n_delivered;
        self.inflight += o.inflight;
        for t in &o.tags {
            match self.tags.iter_mut().find(|x| x.name == t.name) {
                Some(x) => x.merge(t)?,
                None => self.tags.push(t.clone()),
            }
        }
        let rank = |name: &str| order.iter().position(|n| *n == name).unwrap_or(usize::MAX);
        self.tags.sort_by_key(|t| rank(&t.name));
        self.latency = SecondStats::latency_of(&self.tags, iteration)?;
        Ok(())
    }

    /// A second in which nothing finished.
    pub fn empty(t_s: u64) -> SecondStats {
        SecondStats {
            t_s,
            n_requests: 0,
            n_errors: 0,
            n_dropped: 0,
            bytes_in: 0,
            status: Default::default(),
            grpc: Default::default(),
            n_delivered: 0,
            inflight: Inflight::default(),
            latency: Dist::of(&super::new_histogram()),
            tags: Vec::new(),
        }
    }
}

impl SecondTag {
    fn merge(&mut self, o: &SecondTag) -> Result<(), String> {
        self.n_requests += o.n_requests;
        self.n_failed += o.n_failed;
        self.n_dropped += o.n_dropped;
        for (mine, theirs) in [
            (&mut self.latency, &o.latency),
            (&mut self.service_time, &o.service_time),
            (&mut self.dropped_lag, &o.dropped_lag),
        ] {
            let mut h = super::decode_histogram(mine)?;
            h.add(&super::decode_histogram(theirs)?)
                .map_err(|e| format!("a histogram out of range: {e}"))?;
            *mine = encode_histogram(&h);
        }
        Ok(())
    }
}

/// One tag's second: counters and HdrHistograms (V2-deflate, base64, ns) of latency and service
/// time. Dropped requests' lower bounds are in `dropped_lag`.
#[derive(Clone, Debug, PartialEq)]
pub struct SecondTag {
    pub name: String,
    pub n_requests: u64,
    pub n_failed: u64,
    pub n_dropped: u64,
    pub latency: String,
    pub service_time: String,
    pub dropped_lag: String,
}

/// What aggregation hands to the report stage.
#[derive(Clone, Debug)]
pub struct Aggregate {
    pub total: Summary,
    /// With a warm-up (`Collector::judging_from`): the seconds from its end on, which thresholds
    /// and SLOs are judged on. `None`: judge `total`.
    pub judged: Option<Summary>,
    pub series: Vec<SecondStats>,
    pub workers: Vec<WorkerStats>,
}

pub struct Collector {
    total: Summary,
    /// Seconds some worker has not reported yet, merged so far, with their in-flight gauge.
    pending: BTreeMap<u64, (Summary, Inflight)>,
    /// Per worker: the last second it handed over (`None`: none yet); once done, `u64::MAX`.
    reported: Vec<Option<u64>>,
    workers: Vec<Option<WorkerStats>>,
    series: Vec<SecondStats>,
    n_requests: u64,
    /// Seconds from this one on also go into `judged`.
    judged: Option<(u64, Summary)>,
    /// With live displays (`live`): the seconds finished since `take_finished_seconds`.
    finished: Option<Vec<(u64, Summary, Inflight)>>,
}

impl Collector {
    pub fn new(tags: &[TagSpec], n_workers: usize) -> Collector {
        Collector {
            total: Summary::with_specs(tags),
            pending: BTreeMap::new(),
            reported: vec![None; n_workers],
            workers: vec![None; n_workers],
            series: Vec::new(),
            n_requests: 0,
            judged: None,
            finished: None,
        }
    }

    /// Keeps each finished second's whole summary for `take_finished_seconds` (live progress and
    /// metrics read the same interval data the report does; nothing extra per request).
    pub fn live(mut self, on: bool) -> Collector {
        self.finished = on.then(Vec::new);
        self
    }

    /// The seconds every worker has reported since the last call, oldest first (empty unless
    /// `live`). Call it after every `handle`, so they do not pile up.
    pub fn take_finished_seconds(&mut self) -> Vec<(u64, Summary, Inflight)> {
        self.finished
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Also keeps the seconds from `sec` on apart: what is judged when the first seconds are a
    /// warm-up (a stress step's settle period).
    pub fn judging_from(mut self, sec: u64) -> Collector {
        if sec > 0 {
            // Called on a new collector: its total is still the empty summary of the plan's tags.
            self.judged = Some((sec, self.total.clone()));
        }
        self
    }

    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Interval {
                worker,
                sec,
                summary,
                inflight,
            } => {
                self.total += &summary;
                self.n_requests += summary.tags.iter().map(|t| t.n_requests).sum::<u64>();
                match self.pending.get_mut(&sec) {
                    Some((p, gauge)) => {
                        *p += &summary;
                        *gauge += inflight;
                    }
                    None => {
                        self.pending.insert(sec, (summary, inflight));
                    }
                }
                self.reported[worker] = Some(sec);
            }
            Msg::Done { worker, stats } => {
                self.reported[worker] = Some(u64::MAX);
                self.workers[worker] = Some(stats);
            }
        }
        self.finalize_ready();
    }

    /// Requests finished so far (as of the last handed-over intervals), for progress display.
    pub fn n_requests(&self) -> u64 {
        self.n_requests
    }

    /// The run so far (as of the last handed-over intervals).
    pub fn total(&self) -> &Summary {
        &self.total
    }

    /// True once every worker has said it is done.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(Option::is_some)
    }

    /// Turns every second that all workers have reported into a time-series row.
    fn finalize_ready(&mut self) {
        let Some(upto) = self.reported.iter().copied().min().flatten() else {
            return;
        };
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let sec = *entry.key();
            let (summary, inflight) = entry.remove();
            if let Some((from, judged)) = self.judged.as_mut() {
                if sec >= *from {
                    *judged += &summary;
                }
            }
            self.push_second(sec, &summary, inflight);
            if let Some(finished) = self.finished.as_mut() {
                finished.push((sec, summary, inflight));
            }
        }
    }

    fn push_second(&mut self, sec: u64, s: &Summary, inflight: Inflight) {
        // Seconds in which nothing finished still get a row, so the series has no holes.
        while (self.series.len() as u64) < sec {
            self.series
                .push(SecondStats::empty(self.series.len() as u64));
        }
        let all = s.total();
        let tags = s
            .tags
            .iter()
            .filter(|t| t.n_requests > 0 || t.n_dropped > 0)
            .map(|t| SecondTag {
                name: t.name.clone(),
                n_requests: t.n_requests,
                n_failed: t.n_failed(),
                n_dropped: t.n_dropped,
                latency: encode_histogram(&t.latency),
                service_time: encode_histogram(&t.service_time),
                dropped_lag: encode_histogram(&t.dropped_lag),
            })
            .collect();
        self.series.push(SecondStats {
            t_s: sec,
            n_requests: all.n_requests,
            n_errors: all.n_errors(),
            n_dropped: all.n_dropped,
            bytes_in: all.bytes_in,
            status: all.status.clone(),
            grpc: all.grpc.clone(),
            n_delivered: all.n_delivered,
            inflight,
            latency: Dist::latency(&all),
            tags,
        });
    }

    /// The run's aggregate. Workers that never reported (a crash) count as zero CPU.
    pub fn finish(mut self) -> Aggregate {
        for r in &mut self.reported {
            *r = Some(u64::MAX);
        }
        self.finalize_ready();
        Aggregate {
            total: self.total,
            judged: self.judged.map(|(_, s)| s),
            series: self.series,
            workers: self
                .workers
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        }
    }
}

/// Total CPU of the workers.
pub fn workers_cpu(workers: &[WorkerStats]) -> Duration {
    workers.iter().map(|w| w.cpu).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Outcome, Sample};
    use std::time::Instant;

    fn one(base: Instant, at_ms: u64) -> Summary {
        let mut s = Summary::new(&["t"]);
        let done = base + Duration::from_millis(at_ms);
        s.tags[0].record(&Sample {
            tag: 0,
            intended: done - Duration::from_millis(1),
            sent: done - Duration::from_millis(1),
            first_byte: Some(done),
            done,
            outcome: Outcome::Status(200),
            bytes_in: 1,
            body_bytes: 1,
            coding: crate::sample::Coding::Identity,
            decoded_bytes: 1,
            bytes_out: 1,
            connect: None,
            tls: None,
            reused: false,
        });
        s
    }

    #[test]
    fn seconds_are_final_only_when_every_worker_passed_them() {
        let base = Instant::now();
        let tags = vec![TagSpec {
            name: "t".to_string(),
            checks: Vec::new(),
            iteration: false,
        }];
        let mut c = Collector::new(&tags, 2);
        c.handle(Msg::Interval {
            worker: 0,
            sec: 0,
            summary: one(base, 10),
            inflight: Inflight { max: 3, mean: 2.5 },
        });
        c.handle(Msg::Interval {
            worker: 0,
            sec: 2,
            summary: one(base, 2100),
            inflight: Inflight { max: 3, mean: 2.5 },
        });
        assert!(c.series.is_empty(), "worker 1 has not reported second 0");
        c.handle(Msg::Interval {
            worker: 1,
            sec: 1,
            summary: one(base, 1500),
            inflight: Inflight { max: 3, mean: 2.5 },
        });
        assert_eq!(c.series.len(), 2);
        c.handle(Msg::Done {
            worker: 1,
            stats: WorkerStats::default(),
        });
        c.handle(Msg::Done {
            worker: 0,
            stats: WorkerStats::default(),
        });
        assert!(c.is_finished());
        let agg = c.finish();
        assert_eq!(agg.series.len(), 3);
        assert_eq!(agg.series.iter().map(|s| s.n_requests).sum::<u64>(), 3);
        assert_eq!(agg.total.total().n_requests, 3);
        assert_eq!(
            agg.series[0].inflight.max, 3,
            "second 0 only has worker 0's gauge"
        );
        assert_eq!(agg.series[1].inflight.mean, 2.5);
        assert_eq!(
            agg.series[0].tags.len(),
            1,
            "one tag saw requests in second 0"
        );
    }

    /// A recorded run's samples split into 4 shards (striped, as segments split a schedule), each
    /// collected on its own and merged — totals, the judged seconds and every second of the series —
    /// equal the whole run collected in one process, bit for bit.
    #[test]
    fn shards_merged_equal_the_whole_run() {
        let specs = vec![
            TagSpec {
                name: "flow".to_string(),
                checks: Vec::new(),
                iteration: true,
            },
            TagSpec {
                name: "a".to_string(),
                checks: Vec::new(),
                iteration: false,
            },
            TagSpec {
                name: "b".to_string(),
                checks: Vec::new(),
                iteration: false,
            },
        ];
        let base = Instant::now();
        let mut rng = crate::util::Rng::new(7);
        // 30,000 samples over 6 seconds, on 3 tags, with failures, drops and lag.
        let samples: Vec<(u64, Sample)> = (0..30_000u64)
            .map(|i| {
                let at = Duration::from_micros(rng.next_u64() % 6_000_000);
                let lat = Duration::from_nanos(1_000 + rng.next_u64() % 80_000_000);
                let done = base + at + lat;
                let outcome = match rng.next_u64() % 20 {
                    0 => Outcome::Dropped,
                    1 => Outcome::Error(crate::sample::ErrorKind::Timeout),
                    2 => Outcome::Status(503),
                    _ => Outcome::Status(200),
                };
                let sample = Sample {
                    tag: (i % 3) as u16,
                    intended: base + at,
                    sent: base + at + Duration::from_nanos(rng.next_u64() % 50_000),
                    first_byte: Some(done),
                    done,
                    outcome,
                    bytes_in: 10,
                    body_bytes: 5,
                    coding: crate::sample::Coding::Identity,
                    decoded_bytes: 5,
                    bytes_out: 3,
                    connect: None,
                    tls: None,
                    reused: true,
                };
                ((done - base).as_secs(), sample)
            })
            .collect();
        // Collects `samples` (one worker), judged from second 2 on.
        let collect = |samples: &[&(u64, Sample)]| {
            let mut c = Collector::new(&specs, 1).judging_from(2);
            let last = samples.iter().map(|(sec, _)| *sec).max().unwrap_or(0);
            for sec in 0..=last {
                let mut summary = Summary::with_specs(&specs);
                for (_, s) in samples.iter().filter(|(at, _)| *at == sec) {
                    summary.tags[s.tag as usize].record(s);
                }
                let inflight = Inflight {
                    max: sec + 1,
                    mean: 0.5,
                };
                c.handle(Msg::Interval {
                    worker: 0,
                    sec,
                    summary,
                    inflight,
                });
            }
            c.handle(Msg::Done {
                worker: 0,
                stats: WorkerStats::default(),
            });
            c.finish()
        };
        let all: Vec<&(u64, Sample)> = samples.iter().collect();
        let whole = collect(&all);
        let shards: Vec<Aggregate> = (0..4)
            .map(|k| collect(&samples.iter().skip(k).step_by(4).collect::<Vec<_>>()))
            .collect();

        let order = ["flow", "a", "b"];
        let iteration = |name: &str| name == "flow";
        let mut merged = shards[0].clone();
        for shard in &shards[1..] {
            merged.total += &shard.total;
            if let (Some(j), Some(o)) = (merged.judged.as_mut(), shard.judged.as_ref()) {
                *j += o;
            }
            for s in &shard.series {
                while merged.series.len() as u64 <= s.t_s {
                    let t = merged.series.len() as u64;
                    merged.series.push(SecondStats::empty(t));
                }
                merged.series[s.t_s as usize]
                    .merge(s, &order, &iteration)
                    .unwrap();
            }
        }
        assert_eq!(merged.total, whole.total);
        assert_eq!(merged.judged, whole.judged);
        assert_eq!(merged.series.len(), whole.series.len());
        for (m, w) in merged.series.iter().zip(&whole.series) {
            // The in-flight gauges of 4 processes add up (their means exactly, their peaks as a
            // bound); everything else is the same second.
            assert_eq!(m.inflight.mean, 4.0 * w.inflight.mean);
            let m = SecondStats {
                inflight: w.inflight,
                ..m.clone()
            };
            assert_eq!(&m, w, "second {}", w.t_s);
        }
    }
}
