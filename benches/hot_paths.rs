//! Hot paths, so a regression shows: recording one sample (per request), merging summaries (per second
//! per worker, and across shards), the pacer (per tick) and rendering a templated request (per request
//! of a templated step).

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
                coding: regbench::sample::Coding::Identity,
                decoded_bytes: 13,
                bytes_out: 80,
                connect: None,
                tls: None,
                reused: true,
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

fn pacer(c: &mut Criterion) {
    use regbench::plan::{parse_stages, Profile};
    let constant = Profile::constant(20_000.0, None);
    let ramp = Profile {
        start: 0.0,
        stages: parse_stages("30s:1000,2m:1000,30s:0,10s:500,1m:2000").unwrap(),
        hold: false,
    };
    let mut n = 0u64;
    c.bench_function("pace one tick (constant rate)", |b| {
        b.iter(|| {
            n = (n + 1) % 100_000;
            regbench::schedule::pace(black_box(&constant), n as f64)
        })
    });
    c.bench_function("pace one tick (5-stage ramp)", |b| {
        b.iter(|| {
            n = (n + 1) % 200_000;
            regbench::schedule::pace(black_box(&ramp), n as f64)
        })
    });
}

fn template(c: &mut Criterion) {
    use regbench::plan::data::{DataTable, Pick};
    use regbench::plan::template::{Ctx, Scope, Template};
    use std::collections::HashMap;
    use std::sync::Arc;
    let consts = HashMap::from([("region".to_string(), "eu-west".to_string())]);
    let vars = HashMap::from([("token".to_string(), 0usize)]);
    let tables = HashMap::from([("users".to_string(), (0usize, vec!["name".to_string()]))]);
    let env = |_: &str| None;
    let scope = Scope {
        consts: &consts,
        vars: &vars,
        tables: &tables,
        env: &env,
    };
    let path = Template::compile(
        "/v2/{{region}}/repo-{{random.int(1,1000)}}/manifests/{{data.users.name}}?i={{iteration}}&vu={{vu}}",
        &scope,
    )
    .unwrap();
    let header = Template::compile("Bearer {{token}}", &scope).unwrap();
    let table = DataTable {
        name: "users".into(),
        columns: vec!["name".into()],
        rows: (0..100).map(|i| vec![format!("user-{i}")]).collect(),
        pick: Pick::Sequential,
    };
    let data = vec![Arc::new(table)];
    let values = vec!["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWdiZW5jaCJ9.c2lnbmF0dXJl".to_string()];
    let mut rng = Rng::new(3);
    let mut out = Vec::with_capacity(512);
    let mut i = 0u64;
    c.bench_function("render path + auth header (6 placeholders)", |b| {
        b.iter(|| {
            i += 1;
            let mut ctx = Ctx {
                vars: &values,
                iteration: i,
                vu: 7,
                data: &data,
                rows: &[(i % 100) as usize],
                rng: &mut rng,
            };
            out.clear();
            path.render(&mut ctx, &mut out);
            header.render(&mut ctx, &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, record, merge, pacer, template);
criterion_main!(benches);
