use std::time::Duration;

use regbench::serve::ServeConfig;

use crate::util::*;

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/registry.proto");
const LOOKUP: &str = "regbench.demo.v1.Registry/Lookup";
const WATCH: &str = "regbench.demo.v1.Registry/Watch";

fn grpc_url(addr: std::net::SocketAddr, method: &str) -> String {
    format!("grpc://{addr}/{method}")
}

fn count(step: &serde_json::Value, code: &str) -> u64 {
    step["grpc_status"][code].as_u64().unwrap_or(0)
}

/// A scenario of three gRPC calls at a fixed rate: one answered, one the server fails with
/// UNAVAILABLE, one whose deadline expires in the server. Every call is counted under its status
/// code, exactly, and the thresholds on the codes are judged.
fn three_outcomes(
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    lookup_json: &str,
) -> serde_json::Value {
    let plan = dir.join("grpc.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "grpc://{addr}"

[[scenario]]
name = "calls"
executor = "constant-arrival-rate"
rate = 50
duration = "2s"

[[scenario.step]]
name = "lookup"
type = "grpc"
call = "{LOOKUP}"
proto = "{PROTO}"
message = '{lookup_json}'
headers = {{ "x-tenant" = "ci" }}

[[scenario.step]]
name = "unavailable"
type = "grpc"
call = "{LOOKUP}"
proto = "{PROTO}"
message = '{{"name": "x", "fail": "UNAVAILABLE"}}'

[[scenario.step]]
name = "late"
type = "grpc"
call = "{LOOKUP}"
proto = "{PROTO}"
message = '{{"name": "slow", "delayMs": 200}}'
deadline = "20ms"

[thresholds]
"grpc_ok{{step:lookup}}" = ["count==100"]
"grpc_unavailable" = ["count==100"]
"grpc_deadline_exceeded{{step:late}}" = ["rate==1"]
"errors{{step:lookup}}" = ["rate==0"]
"#
        ),
    )
    .unwrap();
    let saved = dir.join("result.json");
    let html = dir.join("report.html");
    let (code, r) = regbench_json(&[
        "run",
        plan.to_str().unwrap(),
        "-o",
        &format!("json={}", saved.display()),
        "-o",
        &format!("html={}", html.display()),
    ]);
    assert_eq!(code, 0, "thresholds: {}", r["thresholds"]);
    // The saved result reads back with its gRPC counts: rendered again, the same JSON.
    let (code, again) = regbench_json(&["report", saved.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        again,
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&saved).unwrap()).unwrap()
    );
    // The page stacks requests by gRPC outcome.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("gRPC OK") && page.contains("gRPC error"),
        "no gRPC classes in the page"
    );
    let ok = step(&r, "lookup");
    assert_eq!(ok["requests"], 100, "{ok}");
    assert_eq!(count(ok, "OK"), 100, "{ok}");
    let failed = step(&r, "unavailable");
    assert_eq!(count(failed, "UNAVAILABLE"), 100, "{failed}");
    assert_eq!(failed["success"], 0);
    let late = step(&r, "late");
    assert_eq!(count(late, "DEADLINE_EXCEEDED"), 100, "{late}");
    // The server gave up at the 20 ms deadline, not after the 200 ms of work.
    let p50 = ns(&late["latency"]["p50_ns"]);
    assert!(
        p50 >= Duration::from_millis(19) && p50 < Duration::from_millis(150),
        "deadline p50 {p50:?}"
    );
    assert_eq!(r["overall"]["grpc_status"]["OK"], 100);
    r
}

#[test]
fn unary_calls_at_a_fixed_rate_are_counted_by_status_code() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let r = three_outcomes(
        t.addr(),
        dir.path(),
        r#"{"name": "io.example.demo/server-0007"}"#,
    );
    // HTTP/2 with prior knowledge, connections reused.
    assert!(
        r["run"]["http"]["described"]
            .as_str()
            .unwrap()
            .contains("h2c"),
        "{}",
        r["run"]["http"]
    );
    // The per-second series carries the codes too, and adds up.
    let per_second: u64 = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["grpc_status"]["UNAVAILABLE"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_second, 100);
}

/// A templated message is rendered and encoded per call: every call names one of the demo's
/// servers. One that renders to JSON its type cannot hold is never sent, and the diagnosis names the
/// field the encoder refused.
#[test]
fn templated_messages_are_encoded_per_call() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("t.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[defaults]
base_url = "grpc://{}"

[[scenario]]
name = "t"
executor = "shared-iterations"
vus = 4
iterations = 100

[[scenario.step]]
name = "lookup"
type = "grpc"
call = "{LOOKUP}"
proto = "{PROTO}"
message = '{{"name": "io.example.demo/server-000{{{{random.int(0,9)}}}}"}}'

[[scenario.step]]
name = "bad"
type = "grpc"
call = "{LOOKUP}"
proto = "{PROTO}"
message = '{{"delayMs": "{{{{vu}}}}x"}}'
"#,
            t.addr()
        ),
    )
    .unwrap();
    let (_, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(
        count(step(&r, "lookup"), "OK"),
        100,
        "{}",
        step(&r, "lookup")
    );
    let bad = step(&r, "bad");
    assert_eq!(bad["errors"]["bad-message"], 100, "{bad}");
    let d = r["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "bad-message")
        .unwrap();
    assert!(
        d["evidence"][0]
            .as_str()
            .unwrap()
            .contains("not a valid regbench.demo.v1.LookupRequest"),
        "{d}"
    );
    // Only the good calls reached the target.
    assert_eq!(t.state().metrics.requests_total(), 100);
}

/// The same plan against an independent server, Python's grpcio: the same numbers hold.
#[test]
fn unary_calls_against_grpcio_count_the_same() {
    let _machine = machine();
    let peer = PythonPeer::start("grpc_peer.py", "grpcio");
    let dir = tempfile::tempdir().unwrap();
    three_outcomes(
        peer.addr,
        dir.path(),
        r#"{"name": "io.example.demo/server-0007"}"#,
    );
}

/// Without --proto, the method's descriptors come from the server by reflection: the demo's own,
/// and grpcio-reflection's (describing what protoc compiled). A descriptor set written by protoc
/// (grpcio-tools) works as --protoset.
#[test]
fn reflection_and_protoc_descriptor_sets_describe_the_method() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let peer = PythonPeer::start("grpc_peer.py", "grpcio grpcio-reflection grpcio-tools");
    for addr in [t.addr(), peer.addr] {
        let (code, r) = regbench_json(&[
            "run",
            &grpc_url(addr, LOOKUP),
            "-d",
            r#"{"name": "io.example.demo/server-0003"}"#,
            "-n",
            "20",
        ]);
        assert_eq!(code, 0, "{addr}");
        assert_eq!(
            r["overall"]["grpc_status"]["OK"], 20,
            "{addr}: {}",
            r["overall"]
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("registry.pb");
    let out = std::process::Command::new("python3")
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}/proto", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("--descriptor_set_out={}", set.display()))
        .args(["--include_imports", "registry.proto"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "protoc (python3 -m pip install grpcio-tools; scripts/test.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, r) = regbench_json(&[
        "run",
        &grpc_url(peer.addr, WATCH),
        "--protoset",
        set.to_str().unwrap(),
        "-n",
        "4",
    ]);
    assert_eq!(code, 0);
    assert_eq!(step(&r, &format!("{WATCH}/message"))["delivered"], 20);
}

/// A server stream: every call's messages are counted and each is timed from the one before.
#[test]
fn server_streams_count_and_time_their_messages() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let check = |url: &str, per_call: u64, gap_ms: u64| {
        let (code, r) = regbench_json(&[
            "run",
            url,
            "--proto",
            PROTO,
            "-d",
            r#"{"count": 5, "intervalMs": 5}"#,
            "-n",
            "20",
            "-c",
            "4",
        ]);
        assert_eq!(code, 0);
        let calls = step(&r, WATCH);
        assert_eq!(count(calls, "OK"), 20, "{calls}");
        let messages = step(&r, &format!("{WATCH}/message"));
        assert_eq!(messages["latency"]["count"], 20 * per_call, "{messages}");
        // Messages are parts of calls, not requests: the run counts 20.
        assert_eq!(r["overall"]["requests"], 20);
        let p50 = ns(&messages["latency"]["p50_ns"]);
        assert!(
            p50 >= Duration::from_millis(gap_ms - 1) && p50 < Duration::from_millis(gap_ms + 20),
            "message gap p50 {p50:?}"
        );
    };
    check(&grpc_url(t.addr(), WATCH), 5, 5);
    let peer = PythonPeer::start("grpc_peer.py", "grpcio");
    check(&grpc_url(peer.addr, WATCH), 5, 5);
}

/// The health service a mesh's probes call.
#[test]
fn the_standard_health_check_answers_serving() {
    let t = demo_target(ServeConfig::default());
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/health.proto");
    let (code, r) = regbench_json(&[
        "run",
        &grpc_url(t.addr(), "grpc.health.v1.Health/Check"),
        "--proto",
        proto,
        "-n",
        "50",
        "--threshold",
        "grpc_ok:count==50",
    ]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert_eq!(r["overall"]["grpc_status"]["OK"], 50);
}

/// Mistakes are usage errors naming what to fix, before any load.
#[test]
fn grpc_usage_errors_name_what_to_fix() {
    let t = demo_target(ServeConfig::default());
    let url = grpc_url(t.addr(), LOOKUP);
    let expect = |args: &[&str], says: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
            .arg("run")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected '{says}' in: {err}");
    };
    // Without descriptors, nothing to ask reflection of: the message says what to give.
    let nobody = format!("grpc://{}/{LOOKUP}", closed_port());
    expect(&[&nobody, "-n", "1"], "--proto or --protoset");
    expect(
        &[&url, "--proto", PROTO, "-d", r#"{"nmae":"x"}"#, "-n", "1"],
        "regbench.demo.v1.LookupRequest",
    );
    expect(
        &[
            &grpc_url(t.addr(), "regbench.demo.v1.Registry/Nope"),
            "--proto",
            PROTO,
            "-n",
            "1",
        ],
        "it has: Lookup, Watch",
    );
    expect(&[&url, "--proto", PROTO, "--http1", "-n", "1"], "HTTP/2");
    expect(
        &[&url, "--proto", PROTO, "-m", "GET", "-n", "1"],
        "URL's path",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.proto");
    std::fs::write(
        &bad,
        "syntax = \"proto3\";\nmessage A {\n  strin x = 1;\n}\n",
    )
    .unwrap();
    expect(
        &[&url, "--proto", bad.to_str().unwrap(), "-n", "1"],
        "bad.proto:3:3: ",
    );
    let stream = dir.path().join("up.proto");
    std::fs::write(
        &stream,
        "syntax = \"proto3\";\npackage p;\nmessage M {}\nservice S { rpc Up(stream M) returns (M); }\n",
    )
    .unwrap();
    expect(
        &[
            &grpc_url(t.addr(), "p.S/Up"),
            "--proto",
            stream.to_str().unwrap(),
            "-n",
            "1",
        ],
        "client-streaming",
    );
    expect(&[&t.url(), "--proto", PROTO, "-n", "1"], "grpc://");
    assert_eq!(t.state().metrics.requests_total(), 0, "nothing was sent");
}
