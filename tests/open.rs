use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regbench::serve::{LatencyModel, ServeConfig, Stall};
use serde_json::Value;

use crate::util::*;

fn p(r: &Value, metric: &str, q: &str) -> Duration {
    ns(&r["overall"][metric][format!("{q}_ns")])
}

#[test]
fn constant_rate_is_accurate() {
    let t = demo_target(ServeConfig::default());
    let (code, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "2000",
        "-z",
        "5s",
        "-c",
        "50",
    ]);
    assert_eq!(code, 0);
    assert_eq!(r["run"]["scenarios"][0]["model"], "open");
    assert_eq!(
        r["overall"]["requests"], 10_000,
        "2000/s for 5 s is exactly 10 000 ticks"
    );
    let achieved = r["run"]["scenarios"][0]["open"]["achieved_rps"]
        .as_f64()
        .unwrap();
    assert!(
        (achieved - 2000.0).abs() / 2000.0 < 0.02,
        "achieved {achieved} req/s"
    );
    assert_eq!(
        r["run"]["scenarios"][0]["open"]["offered_rps"]
            .as_f64()
            .unwrap(),
        2000.0
    );
    // Requests are spread over the run, not sent in a burst: every full second has ≈2000.
    for s in r["time_series"].as_array().unwrap().iter().take(4).skip(1) {
        let n = s["requests"].as_u64().unwrap();
        assert!((1900..=2100).contains(&n), "second {}: {n}", s["t_s"]);
    }
}

/// The coordinated-omission test. The target holds every response during the first 500 ms of every
/// 2 s (stall fraction f = 0.25). A request intended during a stall waits until it ends, so its
/// latency is uniform on (0, 500 ms]: P(latency > x) = f·(1 − x/500 ms), which predicts p90 = 300 ms
/// and p99 = 480 ms.
#[test]
fn open_model_latency_shows_stalls_that_closed_model_hides() {
    let target = || {
        demo_target(ServeConfig {
            latency: LatencyModel::Fixed(Duration::from_millis(1)),
            stall: Some(Stall {
                pause: Duration::from_millis(500),
                period: Duration::from_secs(2),
            }),
            ..ServeConfig::default()
        })
    };
    // Enough connections that every request is sent on time: latency follows the prediction.
    let t = target();
    let (_, open) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "200",
        "-z",
        "4s",
        "-c",
        "200",
    ]);
    let (p90, p99) = (p(&open, "latency", "p90"), p(&open, "latency", "p99"));
    assert!(
        p90 > Duration::from_millis(240) && p90 < Duration::from_millis(360),
        "p90 {p90:?}"
    );
    assert!(
        p99 > Duration::from_millis(440) && p99 < Duration::from_millis(520),
        "p99 {p99:?}"
    );
    assert!(p(&open, "latency", "p50") < Duration::from_millis(20));

    // Two connections: during a stall both are held and the other requests wait in the generator.
    // Latency still shows the stall; service time (done − sent) does not.
    let t = target();
    let (_, few) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "200",
        "-z",
        "4s",
        "-c",
        "2",
    ]);
    assert!(
        p(&few, "latency", "p90") > Duration::from_millis(200),
        "{}",
        few["overall"]["latency"]
    );
    assert!(
        p(&few, "service_time", "p95") < Duration::from_millis(30),
        "{}",
        few["overall"]["service_time"]
    );
    assert!(
        p(&few, "lag", "p90") > Duration::from_millis(100),
        "the queueing is visible as lag"
    );
    assert!(few["run"]["queued"].as_u64().unwrap() > 100);
    assert_eq!(
        few["validity"]["valid"], false,
        "lag p99 over its limit: the load was not applied as planned"
    );

    // The closed model against the same target sees one slow request per connection per stall.
    let t = target();
    let (_, closed) = regbench_json(&["run", &format!("{}/v2/", t.url()), "-c", "2", "-z", "4s"]);
    assert_eq!(closed["run"]["scenarios"][0]["model"], "closed");
    assert!(
        p(&closed, "latency", "p99") < Duration::from_millis(50),
        "{}",
        closed["overall"]["latency"]
    );
    let (_, text) = regbench(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-c",
        "2",
        "-n",
        "50",
        "--quiet",
    ]);
    assert!(
        text.contains("closed model"),
        "the report says it is closed-model"
    );
}

#[test]
fn late_requests_are_dropped_counted_and_fail_strict() {
    // 2 connections × 50 ms = 40 req/s of capacity against 400 req/s offered.
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(50)),
        ..ServeConfig::default()
    });
    let args = [
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "400",
        "-z",
        "1s",
        "-c",
        "2",
        "--max-lag",
        "20ms",
    ];
    let (code, r) = regbench_json(&args);
    assert_eq!(code, 0, "without --strict an invalid run still exits 0");
    let (sent, dropped, unsent) = (
        r["overall"]["requests"].as_u64().unwrap(),
        r["overall"]["dropped"].as_u64().unwrap(),
        r["run"]["unsent"].as_u64().unwrap(),
    );
    assert_eq!(
        sent + dropped + unsent,
        400,
        "every tick is sent, counted as dropped, or counted as not sent when the run ended"
    );
    assert!(dropped > 300, "{dropped} dropped");
    assert_valid(&r);
    assert_eq!(r["validity"]["valid"], false);
    assert!(r["validity"]["reasons"].to_string().contains("dropped"));
    let dropped_series: u64 = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(dropped_series, dropped);
    let mut strict = args.to_vec();
    strict.push("--strict");
    let (code, _) = regbench_json(&strict);
    assert_eq!(code, 4);
}

#[test]
fn poisson_arrivals_average_the_rate() {
    let t = demo_target(ServeConfig::default());
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "1000",
        "-z",
        "2s",
        "--arrival",
        "poisson",
    ]);
    let n = r["overall"]["requests"].as_u64().unwrap();
    assert!((1850..=2150).contains(&n), "{n} (expected 2000 ± 3.4σ)");
    assert_eq!(r["run"]["scenarios"][0]["open"]["arrival"], "poisson");
}

#[test]
fn rate_stages_ramp_exactly() {
    let t = demo_target(ServeConfig::default());
    // 0 → 400/s over 1 s (200 ticks), then 400/s for 1 s (400 ticks).
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--rate",
        "0",
        "--stages",
        "1s:400,1s:400",
        "-c",
        "20",
    ]);
    assert_eq!(r["overall"]["requests"], 600);
    assert_valid(&r);
    let series = r["time_series"].as_array().unwrap();
    let first = series[0]["requests"].as_u64().unwrap();
    assert!(
        (150..=250).contains(&first),
        "the ramp's first second: {first}"
    );
}

#[test]
fn ramping_virtual_users() {
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(10)),
        ..ServeConfig::default()
    });
    let (_, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "--stages",
        "1s:4,1s:4",
        "--think",
        "10ms",
    ]);
    assert_eq!(r["run"]["scenarios"][0]["model"], "closed");
    assert_eq!(r["run"]["scenarios"][0]["connections"], 4);
    assert_valid(&r);
    let s = r["time_series"].as_array().unwrap();
    let (first, second) = (
        s[0]["requests"].as_u64().unwrap(),
        s[1]["requests"].as_u64().unwrap(),
    );
    // 4 VUs × 1 request per ~20 ms = ~200/s at full strength; the ramp second has about half.
    assert!(
        first < second,
        "ramp-up second {first} < full second {second}"
    );
    assert!((150..=210).contains(&second), "{second}");
}

#[test]
fn segments_add_up_to_the_whole_run() {
    let t = demo_target(ServeConfig::default());
    let url = format!("{}/v2/", t.url());
    for extra in [
        vec!["--rate", "3000", "-n", "1001", "-c", "8"],
        vec!["-c", "7", "-n", "1001"],
    ] {
        let mut total = 0;
        for i in 0..3 {
            let seg = format!("{i}/3");
            let mut args = vec![
                "run",
                url.as_str(),
                "--segment",
                seg.as_str(),
                "--seed",
                "7",
                "--threads",
                "2",
            ];
            args.extend(extra.iter().copied());
            let (code, r) = regbench_json(&args);
            assert_eq!(code, 0);
            assert_eq!(r["run"]["segment"]["count"], 3);
            total += r["overall"]["requests"].as_u64().unwrap();
        }
        assert_eq!(total, 1001, "{extra:?}");
    }
}

#[test]
fn start_at_waits_for_an_absolute_time() {
    let t = demo_target(ServeConfig::default());
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(1200);
    let t0 = Instant::now();
    let (code, r) = regbench_json(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-n",
        "10",
        "-c",
        "1",
        "--start-at",
        &at.as_millis().to_string(),
    ]);
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(1150),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        r["run"]["started_at_unix_ms"].as_u64().unwrap() as u128,
        at.as_millis()
    );
    let (code, _) = regbench(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-n",
        "1",
        "--start-at",
        "2000-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 2, "a start far in the past is refused");
}

#[test]
fn open_model_usage_errors() {
    for (args, code) in [
        (vec!["--rate=-5", "-n", "1"], 2),
        (vec!["--rate", "10", "--think", "1s", "-n", "1"], 2),
        (vec!["--max-lag", "1s", "-n", "1"], 2),
        (vec!["--rate", "10", "--max-inflight", "0", "-n", "1"], 2),
        (vec!["--stages", "1s"], 2),
        (
            vec!["--rate", "10", "-n", "5", "--segment", "3/3", "--seed", "1"],
            2,
        ),
        (vec!["--rate", "10", "-n", "5", "--segment", "1/3"], 2),
    ] {
        let mut all = vec!["run", "http://127.0.0.1:9/"];
        all.extend(args.iter().copied());
        assert_eq!(regbench(&all).0, code, "{args:?}");
    }
}

/// `--timer-slack` trades schedule lag for CPU: a coarser grid still sends every tick, never early,
/// and the run records the grid it used; past 10 ms it is a usage error.
#[test]
fn timer_slack_is_recorded_and_bounded() {
    let t = demo_target(ServeConfig::default());
    let url = format!("{}/v2/", t.url());
    for (slack, ns_) in [("200us", 200_000u64), ("2ms", 2_000_000)] {
        let (code, r) = regbench_json(&[
            "run",
            &url,
            "--rate",
            "500",
            "-z",
            "2s",
            "-c",
            "10",
            "--timer-slack",
            slack,
        ]);
        assert_eq!(code, 0, "{}", r["validity"]);
        assert_eq!(r["run"]["plan"]["timer_slack_ns"], ns_);
        assert_eq!(r["overall"]["requests"], 1000, "every tick is sent");
        // A tick waits at most one grid step (plus scheduling) for its wake-up, and is never sent
        // before it is due (lag is never negative; its minimum is a real wait).
        let lag_p50 = p(&r, "lag", "p50");
        assert!(
            lag_p50 < Duration::from_nanos(ns_) + Duration::from_millis(5),
            "{slack}: lag p50 {lag_p50:?}"
        );
    }
    let (code, out) = regbench(&[
        "run",
        &url,
        "--rate",
        "100",
        "-n",
        "20",
        "--timer-slack",
        "300us",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("timer slack 300µs"), "{out}");
    let (code, out) = regbench(&["run", &url, "--timer-slack", "11ms"]);
    assert_eq!(code, 2, "{out}");
}
