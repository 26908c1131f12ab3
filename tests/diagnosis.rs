//! Issue 20: `regbench doctor` judges the host for a planned load; every report with failures
//! explains them with what the run observed. Limits are made real: a network namespace with a
//! 100-port range, `ulimit -n 256`, a listener with a backlog of 1.

use std::process::Command;
use std::sync::Arc;

use regbench::serve::ServeConfig;
use serde_json::Value;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_regbench");

/// The diagnosis entry of `kind`, or a failure listing what there is.
fn diagnosis<'r>(r: &'r Value, kind: &str) -> &'r Value {
    r["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no diagnosis of {kind}: {}", r["diagnosis"]))
}

fn evidence(d: &Value) -> String {
    d["evidence"].to_string()
}

/// Runs `script` in a new network namespace (loopback up) with a 100-port local range and no
/// TIME_WAIT reuse; returns (exit code, stdout, stderr).
fn in_netns(script: &str) -> (Option<i32>, String, String) {
    let probe = Command::new("unshare").args(["-n", "true"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs network namespaces (run as root; unshare is in util-linux): {probe:?}"
    );
    let setup = "ip link set lo up && \
                 sysctl -qw net.ipv4.ip_local_port_range='40000 40099' && \
                 sysctl -qw net.ipv4.tcp_tw_reuse=0 && ";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &format!("{setup}{script}")])
        .env("REGBENCH", BIN)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn doctor_predicts_port_exhaustion_and_the_run_diagnoses_it() {
    let (code, out, err) =
        in_netns("\"$REGBENCH\" doctor http://127.0.0.1:18080/ --rate 1000 --no-keepalive -c 10");
    assert_eq!(code, Some(3), "a blocker: {out}{err}");
    assert!(
        out.contains("needs ~60,000 ports in 60 s") && out.contains("you have 100 free"),
        "{out}"
    );
    assert!(
        out.contains("expect addr-not-available after ~0.1 s"),
        "{out}"
    );
    assert!(
        out.contains("fix: sysctl -w net.ipv4.ip_local_port_range"),
        "{out}"
    );
    let (code, snippet, _) =
        in_netns("\"$REGBENCH\" doctor --rate 1000 --no-keepalive --format sysctl");
    assert_eq!(code, Some(3));
    assert!(
        snippet.contains("net.ipv4.ip_local_port_range = \"1024 65535\""),
        "{snippet}"
    );

    // The run: a target in the namespace, 1000/s without keep-alive for 1 s, 100 ports.
    let (code, out, err) = in_netns(
        "\"$REGBENCH\" serve --addr 127.0.0.1:18080 >/dev/null 2>&1 & \
         for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.1; done; \
         \"$REGBENCH\" run http://127.0.0.1:18080/v2/ --rate 1000 -z 1s --no-keepalive -c 20 \
           --timeout 2s -o json --quiet; code=$?; kill %1; exit $code",
    );
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_valid(&r);
    let d = diagnosis(&r, "addr-not-available");
    assert!(d["count"].as_u64().unwrap() > 100, "{d}");
    let ev = evidence(d);
    assert!(
        ev.contains("local port range 40000-40099: 100 ports"),
        "{ev}"
    );
    let tw: u64 = ev
        .split(" sockets in TIME_WAIT after the run")
        .next()
        .and_then(|s| s.rsplit('"').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("a TIME_WAIT count: {ev}"));
    assert!(
        (90..=200).contains(&tw),
        "the namespace's TIME_WAIT sockets: {tw}"
    );
    assert_eq!(r["validity"]["valid"], false);
}

#[test]
fn too_few_file_descriptors_warn_before_and_are_diagnosed_after() {
    let t = demo_target(ServeConfig::default());
    let url = format!("{}/v2/", t.url());
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 256 && exec \"{BIN}\" run {url} -c 1000 -n 2000 --timeout 5s -o json"
            ),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: open files: 1000 connections need 1064 file descriptors"),
        "pre-flight: {err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&r);
    let d = diagnosis(&r, "too-many-open-files");
    assert!(
        evidence(d).contains(
            "open-file limit 256 (hard 256) for 1000 planned connections; fix: ulimit -n 1064"
        ),
        "{d}"
    );
    // --strict refuses the run the host cannot carry.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -n 256 && exec \"{BIN}\" run {url} -c 1000 -n 10 --strict"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A listener on 127.0.0.1 with a backlog of 1 that never accepts: connects beyond the first pile up
/// and then hang. Returns its descriptor (close it) and port.
fn backlog_one_listener() -> (i32, u16) {
    // SAFETY: plain socket calls on a descriptor we own; closed at the end of the test.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 1), 0);
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut l = len;
        libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut l);
        (fd, u16::from_be(got.sin_port))
    }
}

/// A listener with a backlog of 1 that never accepts: a burst of connects overflows its queue, and
/// the report shows the host's ListenOverflows rising with the somaxconn/backlog advice.
#[test]
fn listen_queue_overflows_are_evidence() {
    let (fd, port) = backlog_one_listener();
    let (_, r) = regbench_json(&[
        "run",
        &format!("http://127.0.0.1:{port}/"),
        "-c",
        "30",
        "-n",
        "30",
        "--timeout",
        "1s",
    ]);
    // SAFETY: closing the listener opened above.
    unsafe { libc::close(fd) };
    let d = diagnosis(&r, "timeout");
    let ev = evidence(d);
    let overflows: u64 = ev
        .split("ListenOverflows +")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ev}"));
    assert!(overflows > 0, "{ev}");
    assert!(ev.contains("net.core.somaxconn"), "{ev}");
    assert!(ev.contains("raise its listen backlog"), "{ev}");
    assert!(d["remedy"].as_str().unwrap().contains("load"), "{d}");
}

/// A 429 storm with Retry-After, and an untrusted certificate: each its own diagnosis with the
/// evidence of the first failing request.
#[test]
fn rate_limits_and_certificates_are_explained() {
    let addr = raw_server(|mut s| {
        use std::io::Write;
        while read_head(&mut s) {
            let resp = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 9\r\n\r\nslow down";
            if s.write_all(resp).is_err() {
                return;
            }
        }
    });
    let (_, r) = regbench_json(&["run", &format!("http://{addr}/api"), "-c", "2", "-n", "20"]);
    let d = diagnosis(&r, "429");
    assert_eq!(d["count"], 20);
    let ev = evidence(d);
    assert!(ev.contains("GET /api → 429, Retry-After: 7"), "{ev}");
    assert!(ev.contains("slow down"), "{ev}");
    assert!(d["cause"].as_str().unwrap().contains("rate limiting"));
    let (_, text) = regbench(&["run", &format!("http://{addr}/api"), "-c", "1", "-n", "3"]);
    assert!(
        text.contains("Diagnosis") && text.contains("Retry-After: 7"),
        "{text}"
    );

    // A self-signed certificate the client does not trust.
    let (chain, key) = regbench::serve::tls::self_signed().unwrap();
    let t = demo_target(ServeConfig {
        tls: Some(Arc::clone(
            &regbench::serve::tls::server_config(chain, key, None).unwrap(),
        )),
        ..ServeConfig::default()
    });
    let url = format!("https://127.0.0.1:{}/v2/", t.addr().port());
    let (_, r) = regbench_json(&["run", &url, "-c", "1", "-n", "3", "--timeout", "2s"]);
    let d = diagnosis(&r, "tls");
    let ev = evidence(d);
    assert!(
        ev.to_lowercase().contains("certificate"),
        "the reason: {ev}"
    );
    assert!(d["remedy"].as_str().unwrap().contains("--cacert"));
}

/// `--connect-timeout` bounds a connect that hangs (its SYN dropped by a full queue) well before the
/// request's own --timeout.
#[test]
fn connect_timeout_bounds_hanging_connects() {
    let (fd, port) = backlog_one_listener();
    let t0 = std::time::Instant::now();
    let (_, r) = regbench_json(&[
        "run",
        &format!("http://127.0.0.1:{port}/"),
        "-c",
        "8",
        "-n",
        "8",
        "--timeout",
        "3s",
        "--connect-timeout",
        "300ms",
    ]);
    let took = t0.elapsed();
    // SAFETY: closing the listener opened above.
    unsafe { libc::close(fd) };
    assert!(
        r["overall"]["errors"]["timeout"].as_u64().unwrap() >= 5,
        "{}",
        r["overall"]
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}
