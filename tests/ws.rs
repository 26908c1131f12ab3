use std::time::Duration;

use regbench::serve::{LatencyModel, ServeConfig};

use crate::util::*;

fn delivered(r: &serde_json::Value, name: &str) -> u64 {
    step(r, name)["delivered"].as_u64().unwrap_or(0)
}

fn closes(r: &serde_json::Value, name: &str, code: &str) -> u64 {
    step(r, &format!("{name}/close"))["ws_close_codes"][code]
        .as_u64()
        .unwrap_or(0)
}

/// A plan with every WebSocket and SSE pattern, saved in every format and rendered again from its
/// JSON: the same bytes (delivered counts and close codes read back).
#[test]
fn websocket_and_sse_results_render_again_exactly() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("all.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "ws://{addr}"

[[scenario]]
name = "socket"
executor = "per-vu-iterations"
vus = 2
iterations = 3

[[scenario.step]]
name = "echo"
type = "ws"
url = "/ws/echo"
message = "hi"

[[scenario.step]]
name = "watch"
type = "ws"
url = "/ws/watch?count=3&interval_ms=1"
receive = 3

[[scenario.step]]
name = "held"
type = "ws"
url = "/ws/echo"
hold = "10ms"
"#,
            addr = t.addr()
        ),
    )
    .unwrap();
    let mut args = vec!["run".to_string(), plan.display().to_string()];
    args.extend(crate::report::outputs(dir.path()));
    let (code, _) = regbench(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_valid(&r);
    assert_eq!(delivered(&r, "echo"), 6);
    assert_eq!(closes(&r, "watch", "1000"), 6);
    assert_eq!(closes(&r, "held", "1000"), 6);
    let text = std::fs::read_to_string(dir.path().join("run.txt")).unwrap();
    assert!(text.contains("WebSocket close codes"), "{text}");
    crate::report::assert_renders_again(dir.path(), 0);
}

/// An echo at 1,000 messages a second (open model): every message comes back, each round trip is
/// the demo's configured 5 ms plus little, the reply is checked, and the connections are closed
/// normally at the end.
#[test]
fn echo_at_a_thousand_messages_a_second_times_each_round_trip() {
    let _machine = machine();
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(5)),
        ..ServeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("ws.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "ws://{}"

[[scenario]]
name = "echo"
executor = "constant-arrival-rate"
rate = 1000
duration = "2s"
max_vus = 40

[[scenario.step]]
name = "echo"
type = "ws"
url = "/ws/echo"
message = '{{"op": "get", "n": {{{{iteration}}}}}}'
check = {{ body_contains = '"op": "get"' }}

[thresholds]
"latency{{step:echo}}" = ["p(50)<50ms"]
"checks" = ["rate==1"]
"#,
            t.addr()
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    let echo = step(&r, "echo");
    assert_eq!(echo["requests"], 2000, "{echo}");
    assert_eq!(delivered(&r, "echo"), 2000);
    assert_eq!(echo["checks"][0]["passed"], 2000);
    let p50 = ns(&echo["latency"]["p50_ns"]);
    assert!(
        p50 >= Duration::from_millis(5) && p50 < Duration::from_millis(30),
        "echo p50 {p50:?} (the target waits 5 ms)"
    );
    // One handshake per connection used, each closed normally at the end.
    let handshakes = step(&r, "echo/handshake")["status_codes"]["101"]
        .as_u64()
        .unwrap();
    assert!((1..=40).contains(&handshakes), "{handshakes} connections");
    assert_eq!(closes(&r, "echo", "1000"), handshakes);
}

/// The same echo against an independent server (Python websockets), and a server that closes with
/// 1011: the close code is the outcome, the messages failed.
#[test]
fn echo_and_close_codes_against_python_websockets() {
    let _machine = machine();
    let peer = PythonPeer::start("ws_peer.py", "websockets");
    let (code, r) = regbench_json(&[
        "run",
        &format!("ws://{}/echo", peer.addr),
        "-d",
        "hello",
        "--rate",
        "500",
        "-z",
        "2s",
    ]);
    assert_eq!(code, 0);
    assert_eq!(delivered(&r, "WS /echo"), 1000, "{}", step(&r, "WS /echo"));
    let (_, r) = regbench_json(&[
        "run",
        &format!("ws://{}/fail", peer.addr),
        "-d",
        "hello",
        "-n",
        "6",
        "-c",
        "2",
    ]);
    let failed = step(&r, "WS /fail");
    assert_eq!(failed["errors"]["closed"], 6, "{failed}");
    assert_eq!(closes(&r, "WS /fail", "1011"), 6);
}

/// Subscriptions: every message is delivered and timed from its event (the message's own send
/// time) to its delivery; the server's normal close is counted. Against the demo and Python.
#[test]
fn subscriptions_count_messages_and_time_their_delivery() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let peer = PythonPeer::start("ws_peer.py", "websockets");
    for (url, name, per) in [
        (
            format!("ws://{}/ws/watch?count=20&interval_ms=5", t.addr()),
            "WS subscribe /ws/watch?count=20&interval_ms=5",
            20,
        ),
        (
            format!("ws://{}/watch", peer.addr),
            "WS subscribe /watch",
            5,
        ),
    ] {
        let (code, r) = regbench_json(&[
            "run",
            &url,
            "--ws-receive",
            &per.to_string(),
            "--ws-timestamp",
            "/sent_unix_nanos",
            "-n",
            "10",
            "-c",
            "5",
        ]);
        assert_eq!(code, 0, "{url}");
        let messages = step(&r, &format!("{name}/message"));
        assert_eq!(messages["delivered"], 10 * per, "{messages}");
        // From the event to its delivery on loopback: well under the 5 ms between events.
        let p50 = ns(&messages["latency"]["p50_ns"]);
        assert!(
            p50 < Duration::from_millis(5),
            "{url}: delivery p50 {p50:?}"
        );
        assert_eq!(closes(&r, name, "1000"), 10, "{url}");
        assert_eq!(step(&r, name)["success"], 10, "{url}");
    }
}

/// 5,000 idle connections held at once by one generator (and one target process), each closed
/// normally; the generator's memory is reported.
#[test]
fn five_thousand_idle_connections_are_held_with_their_memory_reported() {
    let _machine = machine();
    let target = Served::start(&[]);
    let (code, r) = regbench_json(&[
        "run",
        &format!("ws://{}/ws/echo", target.addr),
        "--ws-hold",
        "2s",
        "-n",
        "5000",
        "-c",
        "5000",
        "-t",
        "60s",
    ]);
    assert_eq!(code, 0, "{}", r["overall"]);
    let name = "WS hold /ws/echo";
    assert_eq!(
        step(&r, &format!("{name}/handshake"))["status_codes"]["101"],
        5000
    );
    assert_eq!(closes(&r, name, "1000"), 5000);
    // All held at once: every session lasted the hold, and overlapped.
    let rss = r["generator"]["max_rss_bytes"].as_u64().unwrap();
    assert!(rss > 0);
    eprintln!(
        "5,000 idle WebSocket connections: generator peak RSS {} MiB",
        rss >> 20
    );
    assert!(
        rss < 1 << 30,
        "{} MiB for 5,000 idle connections",
        rss >> 20
    );
}

#[test]
fn websocket_usage_errors_name_what_to_fix() {
    let t = demo_target(ServeConfig::default());
    let url = format!("ws://{}/ws/echo", t.addr());
    for (args, says) in [
        (vec![url.as_str(), "-n", "1"], "-d 'MESSAGE'"),
        (
            vec![url.as_str(), "-d", "x", "--h2c", "-n", "1"],
            "HTTP/1.1 upgrade",
        ),
        (
            vec![url.as_str(), "--ws-receive", "0", "-n", "1"],
            "at least 1",
        ),
        (
            vec![
                &format!("http://{}/", t.addr()),
                "--ws-hold",
                "1s",
                "-n",
                "1",
            ],
            "ws://",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
            .arg("run")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected '{says}' in: {err}");
    }
}

/// The examples of docs/protocols.md pass their own thresholds against the demo target.
#[test]
fn the_protocol_examples_pass_against_the_demo_target() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let example = |name: &str| format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    for (file, base) in [
        (
            "grpc-registry.toml",
            format!("base_url=grpc://{}", t.addr()),
        ),
        ("watch-apis.toml", format!("base_url=http://{}", t.addr())),
    ] {
        let (code, r) = regbench_json(&["run", &example(file), "-e", &base, "-z", "2s"]);
        assert_eq!(code, 0, "{file}: {} {}", r["thresholds"], r["steps"]);
        assert_eq!(r["overall"]["errors_total"], 0, "{file}");
    }
}
