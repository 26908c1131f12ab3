//! Issue 15: the target watched beside the load — a real docker-registry's processes and its own
//! Prometheus metrics, a demo target that leaks on purpose, exits and scrape failures, refusals.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::registry::Registry;
use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_regbench");

/// The `target.series` entry of a watch's series.
fn series<'r>(r: &'r Value, watch: &str, name: &str) -> &'r Value {
    r["target"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["watch"] == watch && s["name"] == name)
        .unwrap_or_else(|| panic!("no series {watch}/{name} in {}", r["target"]["series"]))
}

fn watch_info<'r>(r: &'r Value, name: &str) -> &'r Value {
    r["target"]["watches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no watch {name}"))
}

/// Under a pull load, docker-registry's RSS, CPU and fds (from /proc) and three of its own metrics
/// (from its debug address) are in every second and in the summary; its request counter agrees with
/// what regbench sent; a threshold on its RSS passes, and tightened, exits 3.
#[test]
fn docker_registry_under_a_pull_load_is_watched_with_its_own_metrics() {
    let reg = Registry::start(None);
    crate::registry::seed(&reg, &[]);
    let url = reg.url();
    let pid = format!("registry={}", reg.pid());
    let scrape = format!("registry=http://{}/metrics", reg.debug);
    let base = [
        "oci",
        "pull",
        &url,
        "--image",
        "seed/app-000:v1",
        "--rate",
        "10",
        "-z",
        "5s",
        "-c",
        "4",
        "--watch-pid",
        &pid,
        "--scrape",
        &scrape,
        "--scrape-metric",
        "go_goroutines",
        "--scrape-metric",
        "registry_http_request_duration_seconds",
        "--scrape-metric",
        "registry_http_requests_total",
    ];
    let passing = [
        "--threshold",
        "target_rss{pid:registry}:max<1GiB",
        "--threshold",
        "target_cpu:max<2",
        "--threshold",
        "metric{name:go_goroutines}:last<100000",
    ];
    let (code, r) = regbench_json(&[&base[..], &passing].concat());
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert!(r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["pass"] == true));

    // Per second, beside the requests.
    let want = [
        "rss",
        "cpu",
        "fds",
        "go_goroutines",
        "registry_http_request_duration_seconds.p99",
        "registry_http_requests_total",
    ];
    let full_rows = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            want.iter()
                .all(|m| row["target"]["registry"][m].is_number())
        })
        .count();
    assert!(full_rows >= 3, "{}", r["time_series"]);

    // In the summary, with sane values.
    let rss = series(&r, "registry", "rss");
    assert_eq!(rss["unit"], "bytes");
    assert!(rss["min"].as_f64().unwrap() > 1e6, "{rss}");
    assert!(series(&r, "registry", "cpu")["max"].as_f64().unwrap() > 0.0);
    assert!(series(&r, "registry", "fds")["min"].as_f64().unwrap() >= 3.0);
    assert!(
        series(&r, "registry", "go_goroutines")["last"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    let p99 = series(&r, "registry", "registry_http_request_duration_seconds.p99");
    assert_eq!(p99["unit"], "seconds");
    assert!(p99["max"].as_f64().unwrap() > 0.0 && p99["max"].as_f64().unwrap() < 5.0);

    // The registry's own count of requests agrees with regbench's.
    let sent: u64 = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("pull/"))
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    let seen = series(&r, "registry", "registry_http_requests_total");
    assert_eq!(seen["unit"], "per_second");
    let counted: f64 = seen["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .sum();
    // Each point is a second's rate; the seconds cover the run but for its edges.
    assert!(
        counted > 0.7 * sent as f64 && counted < 1.15 * sent as f64,
        "the registry counted {counted:.0} requests, regbench sent {sent}"
    );
    let w = watch_info(&r, "registry");
    assert_eq!(w["scrapes_failed"], 0);
    assert!(w["scrapes_ok"].as_u64().unwrap() >= 5);
    assert_eq!(w["never_seen"], serde_json::json!([]));

    // Tightened, the RSS threshold fails the run.
    let failing = ["--threshold", "target_rss{pid:registry}:max<1MiB"];
    let (code, r) = regbench_json(&[&base[..], &failing].concat());
    assert_eq!(code, 3);
    let t = &r["thresholds"][0];
    assert_eq!(t["pass"], false);
    assert_eq!(t["unit"], "bytes");
    assert!(t["observed"].as_f64().unwrap() > 1024.0 * 1024.0);
}

/// A target that leaks 1 MiB/s for 30 s: the RSS slope is reported within 10% of that and a slope
/// threshold fails; the same target without the leak passes the same threshold. Both run at once.
#[test]
fn a_leak_is_measured_and_fails_the_slope_threshold_a_steady_target_passes() {
    let leaky = Served::start(&["--leak", "1MiB/s"]);
    let steady = Served::start(&[]);
    let run = |s: &Served| {
        let url = s.url();
        let pid = format!("demo={}", s.pid());
        regbench_json(&[
            "run",
            &url,
            "--rate",
            "20",
            "-z",
            "30s",
            "-c",
            "2",
            "--threads",
            "1",
            "--watch-pid",
            &pid,
            "--warmup",
            "3s",
            "--threshold",
            "target_rss_slope:<10MiB/min",
        ])
    };
    let ((leak_code, leak), (steady_code, still)) = std::thread::scope(|scope| {
        let a = scope.spawn(|| run(&leaky));
        let b = scope.spawn(|| run(&steady));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mib = 1024.0 * 1024.0;
    let trend = &series(&leak, "demo", "rss")["trend"];
    let slope = trend["slope_per_s"].as_f64().unwrap();
    assert!(
        (slope - mib).abs() < 0.1 * mib,
        "the leak is 1 MiB/s; measured {:.3} MiB/s: {trend}",
        slope / mib
    );
    assert_eq!(trend["direction"], "grows");
    assert!(trend["r2"].as_f64().unwrap() > 0.9, "{trend}");
    assert_eq!(leak_code, 3, "{}", leak["thresholds"]);
    assert_eq!(leak["thresholds"][0]["unit"], "bytes/s");
    assert_eq!(leak["target"]["judged_from_s"], 3);

    assert_eq!(steady_code, 0, "{}", still["thresholds"]);
    let trend = &series(&still, "demo", "rss")["trend"];
    assert_ne!(trend["direction"], "grows", "{trend}");
    assert!(
        trend["slope_per_s"].as_f64().unwrap() < 0.05 * mib,
        "{trend}"
    );
}

/// A watched process that exits mid-run is reported with the time, and a metrics endpoint that
/// cannot be reached is counted as failed scrapes: neither fails the run.
#[test]
fn an_exiting_process_and_a_failing_scrape_are_reported_not_fatal() {
    let target = demo_target(Default::default());
    let mut sleeper = Command::new("sleep").arg("2").spawn().unwrap();
    let url = format!("http://{}/v2/", target.addr());
    let pid = format!("sleeper={}", sleeper.id());
    let gone = format!("gone=http://{}/metrics", closed_port());
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--rate",
        "20",
        "-z",
        "4s",
        "--watch-pid",
        &pid,
        "--scrape",
        &gone,
    ]);
    let _ = sleeper.wait();
    assert_eq!(code, 0);
    let s = watch_info(&r, "sleeper");
    let exited = s["exited"][0]["at_s"].as_f64().unwrap();
    assert!((1.0..4.0).contains(&exited), "{s}");
    let rss = series(&r, "sleeper", "rss")["points"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        (1..=3).contains(&rss),
        "its series end when it exits: {rss} points"
    );
    let g = watch_info(&r, "gone");
    assert!(g["scrapes_failed"].as_u64().unwrap() >= 3, "{g}");
    assert_eq!(g["scrapes_ok"], 0);
    assert!(g["last_error"].as_str().unwrap().contains("connect"), "{g}");

    // The text report says both.
    let (_, text) = regbench(&[
        "run", &url, "--rate", "20", "-z", "2s", "--scrape", &gone, "--quiet",
    ]);
    assert!(text.contains("scrape failures: "), "{text}");
    assert!(text.contains("never in a scrape: "), "{text}");
}

/// Mistakes in what to watch are usage errors (exit 2) that say what is wrong, before any load.
#[test]
fn watch_mistakes_are_usage_errors() {
    for (args, needle) in [
        (
            vec!["--watch-cmd", "no-such-process-xyz"],
            "no running process is named 'no-such-process-xyz'",
        ),
        (vec!["--watch-pid", "abc"], "expected [NAME=]PID"),
        (vec!["--scrape-metric", "go_goroutines"], "add one"),
        (
            vec!["--scrape", "https://127.0.0.1:1/metrics"],
            "only http://",
        ),
        (
            vec!["--threshold", "target_rss:max<1MiB"],
            "nothing watches a process",
        ),
        (
            vec!["--watch-pid", "1", "--threshold", "target_rss:max<1 parsec"],
            "is not a number, a size",
        ),
        (
            vec!["--watch-pid", "a=1", "--watch-pid", "a=1"],
            "two watches are named 'a'",
        ),
    ] {
        let mut all = vec!["run", "http://127.0.0.1:1/", "-n", "1"];
        all.extend_from_slice(&args);
        let out = Command::new(BIN).args(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: stderr was {err}");
    }
}

/// A file's `[[watch]]` and an `abort_on_fail` threshold on the target: judged each second on what
/// has been seen, it stops the run early (exit 3) and the report says which.
#[test]
fn a_target_threshold_can_stop_the_run_early() {
    let target = demo_target(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watch.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbase_url = \"http://{}\"\n\n[[scenario]]\nname = \"s\"\n\
             executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"20s\"\nmax_vus = 2\n\
             [scenario.request]\nurl = \"/v2/\"\n\n[[watch]]\nname = \"me\"\npid = {}\n\n\
             [thresholds]\n\"target_rss{{pid:me}}\" = [{{ expr = \"max<1MiB\", abort_on_fail = true, grace = \"1s\" }}]\n",
            target.addr(),
            std::process::id()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let (code, r) = regbench_json(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r["run"]["aborted_by"], "target_rss{pid:me} max<1MiB");
    assert_eq!(r["run"]["plan"]["watch"][0]["pid"], std::process::id());
}
