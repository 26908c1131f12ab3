//! Issue 18: what a run shows while it goes — the live metrics endpoint (`--metrics-addr`), the plain
//! progress lines for CI logs (`--progress plain`), and the terminal view (checked in tmux).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regbench::serve::ServeConfig;
use serde_json::Value;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_regbench");

/// Scrapes `GET /metrics` (`None` when nothing listens) and returns each sample line
/// `name{labels} value` as name{labels} → value.
fn scrape(addr: std::net::SocketAddr) -> Option<BTreeMap<String, f64>> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// A scrape taken during an 11 s open-model run equals the report's per-second series summed over
/// the seconds the scrape says it covers; the plain progress printed a line at 10 s and one at the
/// end, and their 2xx counts add up to the report's.
#[test]
fn live_metrics_match_the_report_and_plain_progress_adds_up() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let metrics = closed_port();
    let child = Command::new(BIN)
        .args(["run", &format!("{}/v2/", t.url()), "-q", "200", "-z", "11s"])
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .args(["--progress", "plain", "-o"])
        .arg(format!("json={}", json.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut during = None;
    while t0.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(m) = scrape(metrics) {
            if m.get("regbench_seconds_recorded")
                .is_some_and(|s| *s >= 3.0)
            {
                during = Some(m);
                break;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let m = during.expect("a scrape during the run covered 3 seconds");
    assert!(
        scrape(metrics).is_none(),
        "the endpoint closes with the run"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // The counters equal the report's seconds before `seconds_recorded`, exactly.
    let k = m["regbench_seconds_recorded"] as u64;
    let rows: Vec<&Value> = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["t_s"].as_u64().unwrap() < k)
        .collect();
    let sum = |f: &dyn Fn(&Value) -> u64| rows.iter().map(|s| f(s)).sum::<u64>();
    let requests = sum(&|s| s["requests"].as_u64().unwrap());
    let ok = sum(&|s| s["status_codes"]["200"].as_u64().unwrap_or(0));
    let labels = "scenario=\"default\",step=\"GET /v2/\"";
    assert!(requests > 400, "{requests} requests in {k} s at 200/s");
    assert_eq!(
        m[&format!("regbench_requests_total{{{labels}}}")],
        requests as f64
    );
    assert_eq!(
        m[&format!("regbench_responses_total{{{labels},code=\"200\"}}")],
        ok as f64
    );
    assert_eq!(
        m[&format!("regbench_latency_seconds_count{{{labels}}}")],
        requests as f64
    );
    assert_eq!(
        m[&format!("regbench_latency_seconds_bucket{{le=\"+Inf\",{labels}}}")],
        requests as f64
    );
    assert_eq!(m["regbench_run_valid"], 1.0);
    assert!(m["regbench_schedule_lag_p99_seconds"] > 0.0);

    // Plain progress: a line at 0:10 and the rest at the end, covering every request once.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("req/s")).collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("regbench 0:10/0:11 default"),
        "{stderr}"
    );
    let count = |line: &str| -> u64 {
        let count = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("2xx="))
            .expect("a 2xx count");
        count.parse().unwrap()
    };
    let total_ok = r["overall"]["status_codes"]["200"].as_u64().unwrap();
    assert_eq!(
        lines.iter().map(|l| count(l)).sum::<u64>(),
        total_ok,
        "{stderr}"
    );
    let rate: f64 = lines[0].split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!((rate - 200.0).abs() < 10.0, "{stderr}");
}

/// Without a terminal and without `--progress plain`, nothing is printed on stderr; an address that
/// cannot be listened on is a usage error before any load.
#[test]
fn no_progress_off_a_terminal_and_a_busy_metrics_address_is_refused() {
    let t = demo_target(ServeConfig::default());
    let out = Command::new(BIN)
        .args(["run", &format!("{}/v2/", t.url()), "-n", "50"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(BIN)
        .args(["run", &format!("{}/v2/", t.url()), "-n", "50"])
        .arg("--metrics-addr")
        .arg(busy.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"));
}

/// The terminal view, as a user sees it: run in a tmux pane and captured mid-run, it shows each
/// scenario's last-second rate, p50/p99, status classes and lag.
#[test]
fn the_terminal_view_shows_each_scenario_in_tmux() {
    let tmux_ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        tmux_ok,
        "tmux not found: apt-get install -y tmux (scripts/test.sh does)"
    );
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "{}"

[[scenario]]
name = "catalog"
executor = "constant-arrival-rate"
rate = 100
duration = "6s"
[scenario.request]
url = "/v2/_catalog"

[[scenario]]
name = "ping"
executor = "constant-vus"
vus = 2
duration = "6s"
[scenario.request]
url = "/v2/"
think = "10ms"
"#,
            t.url()
        ),
    )
    .unwrap();
    let socket = format!("regbench-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .unwrap()
    };
    let cmd = format!("{BIN} run {} -o json=/dev/null; sleep 30", plan.display());
    let started = tmux(&["new-session", "-d", "-x", "160", "-y", "24", &cmd]);
    assert!(started.status.success(), "{started:?}");
    let mut screen = String::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(300));
        let cap = tmux(&["capture-pane", "-p"]);
        screen = String::from_utf8_lossy(&cap.stdout).into_owned();
        if screen.contains("second 3:") {
            break;
        }
    }
    tmux(&["kill-server"]);
    let line = |name: &str| {
        screen
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{screen}"))
            .to_string()
    };
    assert!(screen.contains("in flight"), "{screen}");
    let catalog = line("catalog");
    for part in ["req/s", "p50", "p99", "2xx=", "lag p99"] {
        assert!(catalog.contains(part), "{part} missing: {catalog}");
    }
    let rate: f64 = catalog.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((90.0..=110.0).contains(&rate), "{catalog}");
    let ping = line("ping");
    assert!(ping.contains("req/s") && ping.contains("2xx="), "{ping}");
    // 2 virtual users each thinking 10 ms: under 200 per second.
    let rate: f64 = ping.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((50.0..=200.0).contains(&rate), "{ping}");
}
