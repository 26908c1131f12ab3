//! Hot paths of aggregation: recording one sample (per request, per worker) and merging summaries
//! (per second per worker, and across shards).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use regbench::aggregate::{Summary, TagStats};
use regbench::sample::{Outcome, Sample};
use regbench::util::Rng;

fn samples(n: usize) -> Vec<Sample> {
    let base = Instant::now();
    let mut rng = Rng::new(11);
    (0..n)
        .map(|_| {
            let lat = Duration::from_nanos(20_000 + rng.next_u64() % 5_000_000);
            Sample {
                tag: 0,
                intended: base,
                sent: base + Duration::from_nanos(500),
                first_byte: Some(base + lat / 2),
                done: base + lat,
                outcome: Outcome::Status(200),
                bytes_in: 120,
                body_bytes: 13,
                bytes_out: 80,
                connect: None,
            }
        })
        .collect()
}

fn record(c: &mut Criterion) {
    let xs = samples(4096);
    let mut stats = TagStats::new("bench");
    let mut i = 0;
    c.bench_function("record one sample (5 histograms + counters)", |b| {
        b.iter(|| {
            stats.record(black_box(&xs[i & 4095]));
            i += 1;
        })
    });
}

fn merge(c: &mut Criterion) {
    let xs = samples(100_000);
    let mut one = Summary::new(&["bench"]);
    for s in &xs {
        one.tags[0].record(s);
    }
    c.bench_function("merge one-tag summary (a worker's second)", |b| {
        b.iter_batched_ref(
            || Summary::new(&["bench"]),
            |into| *into += black_box(&one),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("serialise one-tag summary (V2-deflate base64)", |b| {
        b.iter(|| serde_json::to_string(black_box(&one)).unwrap())
    });
}

criterion_group!(benches, record, merge);
criterion_main!(benches);
