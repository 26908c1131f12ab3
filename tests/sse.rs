use std::time::Duration;

use regbench::serve::ServeConfig;

use crate::util::*;

/// Events are counted and timed (from their own send time), the first one is the step's time to
/// first byte, and a stream the server ends every 4 events is reopened with Last-Event-ID, resuming
/// where it stopped: 10 events take exactly 3 connections.
#[test]
fn events_are_counted_timed_and_resumed_after_the_server_ends_the_stream() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let url = format!(
        "http://{}/sse/watch?count=10&interval_ms=5&drop_after=4",
        t.addr()
    );
    let name = "SSE /sse/watch?count=10&interval_ms=5&drop_after=4";
    let run = |events: &str| {
        regbench_json(&[
            "run",
            &url,
            "--sse-events",
            events,
            "--sse-timestamp",
            "/sent_unix_nanos",
            "--sse-reconnects",
            "3",
            "-n",
            "6",
            "-c",
            "3",
        ])
    };
    let (code, r) = run("10");
    assert_eq!(code, 0);
    let stream = step(&r, name);
    assert_eq!(stream["success"], 6, "{stream}");
    let events = step(&r, &format!("{name}/event"));
    assert_eq!(events["delivered"], 60, "{events}");
    assert_eq!(
        step(&r, &format!("{name}/reconnect"))["status_codes"]["200"],
        12
    );
    // Time to first event: the first is sent at once.
    let ttfb = ns(&stream["ttfb"]["p50_ns"]);
    assert!(ttfb < Duration::from_millis(50), "first event {ttfb:?}");
    // From each event's send time to its delivery, on loopback.
    let p50 = ns(&events["latency"]["p50_ns"]);
    assert!(p50 < Duration::from_millis(5), "delivery p50 {p50:?}");

    // Asking for more than the stream has: resumed streams hold only the 10 events (a client
    // that restarted from the beginning would get 12), then the reopenings run out.
    let (_, r) = run("12");
    let stream = step(&r, name);
    assert_eq!(stream["errors"]["closed"], 6, "{stream}");
    assert_eq!(step(&r, &format!("{name}/event"))["delivered"], 60);
}

/// An independent server (Python's standard library) whose stream is delimited by closing the
/// connection: the same counts.
#[test]
fn events_from_a_python_server_that_closes_its_streams() {
    let _machine = machine();
    let peer = PythonPeer::start("sse_peer.py", "(none: the standard library)");
    let (code, r) = regbench_json(&[
        "run",
        &format!("http://{}/events", peer.addr),
        "--sse-events",
        "12",
        "--sse-timestamp",
        "/sent_unix_nanos",
        "-n",
        "4",
        "-c",
        "2",
    ]);
    assert_eq!(code, 0);
    let events = step(&r, "SSE /events/event");
    assert_eq!(events["delivered"], 48, "{events}");
    // 5 events per connection: 12 take 3 connections, 2 of them reopenings.
    assert_eq!(step(&r, "SSE /events/reconnect")["status_codes"]["200"], 8);
}

/// A scenario step, with a threshold on the time to first event.
#[test]
fn an_sse_step_in_a_scenario_file() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("sse.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "http://{}"

[[scenario]]
name = "watchers"
executor = "per-vu-iterations"
vus = 2
iterations = 2

[[scenario.step]]
name = "watch"
type = "sse"
url = "/sse/watch?count=3&interval_ms=1"
events = 3

[thresholds]
"ttfb{{step:watch}}" = ["p(99)<1s"]
"#,
            t.addr()
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert_eq!(step(&r, "watch/event")["delivered"], 12);
    let bad = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("events = 3", "events = 0");
    std::fs::write(&plan, bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
        .args(["run", plan.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sse.toml:") && err.contains("events must be"),
        "{err}"
    );
}
