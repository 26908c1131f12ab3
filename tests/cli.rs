use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regbench::serve::{LatencyModel, ServeConfig};
use serde_json::Value;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_regbench");

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    for (args, needle) in [
        (vec!["run", "not-a-url"], "not a valid URL"),
        (
            vec!["run", "ftp://127.0.0.1/"],
            "scheme 'ftp' is not supported",
        ),
        (vec!["run", "http://127.0.0.1:1/", "-c", "0"], "at least 1"),
        (
            vec!["run", "http://127.0.0.1:1/", "-H", "broken"],
            "header 'broken'",
        ),
        (
            vec!["run", "http://127.0.0.1:1/", "-z", "5 parsecs"],
            "unknown unit",
        ),
        (
            vec!["run", "http://127.0.0.1:1/", "-D", "/nonexistent/body"],
            "cannot read body file",
        ),
        (
            vec!["run", "http://127.0.0.1:1/", "--resolve", "x"],
            "HOST:PORT:ADDRESS",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: stderr was {err}");
    }
}

#[test]
fn unresolvable_host_exits_1() {
    let out = Command::new(BIN)
        .args(["run", "http://no-such-host.invalid/", "-n", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not resolve 'no-such-host.invalid'")
    );
}

#[test]
fn help_has_examples() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("--resolve"));
}

/// SIGINT (Ctrl-C), SIGTERM (a CI job's timeout) and SIGHUP (a closed terminal) each stop the run and
/// still write the partial report, with the signal's own exit code.
#[test]
fn signals_write_the_partial_report() {
    let t = demo_target(ServeConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(200)),
        ..ServeConfig::default()
    });
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
        (libc::SIGHUP, 129, "SIGHUP"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("partial.json");
        let child = Command::new(BIN)
            .args([
                "run",
                &format!("{}/v2/", t.url()),
                "-c",
                "4",
                "-z",
                "60s",
                "--quiet",
            ])
            .arg("-o")
            .arg(format!("json={}", json.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let t0 = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{name} stops promptly"
        );
        assert_eq!(out.status.code(), Some(code), "{name}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("PARTIAL") && stdout.contains(name),
            "{stdout}"
        );
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(r["run"]["partial"], true);
        assert!(r["run"]["interrupted_by"].as_str().unwrap().contains(name));
        // Rendered again later, the partial report keeps its exit code (CI gates on it).
        let again = Command::new(BIN)
            .args(["report", json.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(code), "report of a {name} run");
        assert!(String::from_utf8_lossy(&again.stdout).contains("PARTIAL"));
        let n = r["overall"]["requests"].as_u64().unwrap();
        assert!(
            (8..=24).contains(&n),
            "{name}: about 1 s of 4 connections at 200 ms: {n}"
        );
        assert_eq!(
            r["run"]["cancelled_in_flight"], 4,
            "{name}: each connection was mid-request"
        );
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 1, "{name}: only the report, no temporary file");
    }
}

/// An unknown report format is a usage error before any load (the name is checked by the command,
/// since the command line's parser does not know the report formats).
#[test]
fn unknown_output_format_is_refused_before_the_run() {
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args([
            "run",
            &format!("http://{}/", closed_port()),
            "-z",
            "30s",
            "-o",
            "xml=x.xml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected text or json or csv or hdr"));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// Every peer flag in docs/compatibility.md either runs (accepted with the documented meaning) or
/// is refused with exit 2 — none is silently read as something else.
#[test]
fn peer_flags_map_or_fail_as_documented() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/compatibility.md"
    ))
    .unwrap();
    let url = format!("http://{}/", closed_port());
    let mut n = 0;
    for line in page
        .lines()
        .filter(|l| l.starts_with("| ") && l.ends_with(" |"))
    {
        let test = line.trim_end_matches(" |").rsplit(" | ").next().unwrap();
        let (args, want) = match (test.strip_suffix(" runs"), test.strip_suffix(" exit 2")) {
            (Some(a), _) => (a, 0u8),
            (_, Some(a)) => (a, 2u8),
            _ => continue,
        };
        let args: Vec<&str> = args.trim_matches('`').split_whitespace().collect();
        let mut argv = vec!["run", url.as_str(), "--quiet"];
        // One request, unless the row sets the count or the duration itself.
        if !args.iter().any(|a| ["-n", "-z", "--duration"].contains(a)) {
            argv.extend(["-n", "1"]);
        }
        argv.extend(args.iter().copied());
        let (code, _) = regbench(&argv);
        assert_eq!(code, want, "{line}");
        n += 1;
    }
    assert!(n >= 40, "only {n} rows were tested");
    // Two meanings checked beyond being accepted.
    let (_, r) = regbench_json(&["run", &url, "-n", "1", "--disable-keepalive"]);
    assert_eq!(r["run"]["keepalive"], false);
    let (_, out) = regbench(&["run", &url, "-n", "1", "-j", "--quiet"]);
    assert!(out.trim_start().starts_with('{'), "{out}");
}

/// k6's threshold objects and metric names are understood; k6's bare-number durations get a
/// file:line:col error that says which unit to write.
#[test]
fn k6_thresholds_are_understood_or_refused_clearly() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = |body: &str| {
        let p = dir.path().join("k6.toml");
        std::fs::write(
            &p,
            format!(
                "[defaults]\nbase_url = \"{}\"\n\n[[scenario]]\nname = \"s\"\nexecutor = \"shared-iterations\"\n\
                 vus = 1\niterations = 5\n[[scenario.step]]\nname = \"v2\"\nurl = \"/v2/\"\n\n[thresholds]\n{body}\n",
                t.url()
            ),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    let ok = file(
        "http_req_duration = [{ threshold = \"p(95)<2s\", abortOnFail = true, delayAbortEval = \"1s\" }]\n\
         http_req_failed = [\"rate<0.01\"]\nhttp_req_waiting = [\"p(99)<2s\"]",
    );
    let (code, r) = regbench_json(&["run", &ok]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert_eq!(r["thresholds"].as_array().unwrap().len(), 3);
    let bare = file("http_req_duration = [\"p(95)<200\"]");
    let out = Command::new(BIN).args(["run", &bare]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("k6.toml:") && err.contains("200ms or 200s"),
        "{err}"
    );
}

/// `--version` names the commit and the build date, so a report can be traced to its build.
#[test]
fn version_names_the_commit_and_build_date() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(concat!("regbench ", env!("CARGO_PKG_VERSION"), " (commit ")),
        "{v}"
    );
    let date = v
        .split("built ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .trim_end_matches(')');
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{v}"
    );
}

/// `--ipv4`/`--ipv6` choose the address family; a literal of the other family is a clear error.
#[test]
fn address_family_flags() {
    let t = demo_target(ServeConfig::default());
    let port = t.addr().port();
    let (code, r) = regbench_json(&[
        "run",
        &format!("http://localhost:{port}/v2/"),
        "-n",
        "2",
        "-4",
    ]);
    assert_eq!(code, 0);
    assert_eq!(r["run"]["address"], format!("127.0.0.1:{port}"));
    let (code, _) = regbench(&[
        "run",
        &format!("http://127.0.0.1:{port}/v2/"),
        "-n",
        "1",
        "--ipv6",
    ]);
    assert_eq!(code, 1, "127.0.0.1 has no IPv6 address");
    let out = Command::new(BIN)
        .args(["run", &format!("http://127.0.0.1:{port}/"), "-n", "1", "-6"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("resolved to no IPv6 address"));
}

/// Completions and the manual page come from the command line's own definition.
#[test]
fn completions_and_man_page() {
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(bash.status.code(), Some(0));
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(script.contains("_regbench") && script.contains("--connect-timeout"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regbench.bash");
    std::fs::write(&file, script.as_bytes()).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(syntax.success(), "the bash completion script parses");
    for shell in ["zsh", "fish", "powershell"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    assert_eq!(regbench(&["completions", "tcsh"]).0, 2);
    let man = Command::new(BIN).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH regbench 1") && page.contains("doctor"),
        "{page}"
    );
}

/// `oci` load commands send their own requests: their help lists none of `run`'s request flags, and
/// says what the `-c` default is there.
#[test]
fn oci_help_lists_only_what_applies() {
    for sub in ["pull", "push", "catalog", "tags"] {
        let out = Command::new(BIN)
            .args(["oci", sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--method",
            "--header",
            "--body",
            "--content-type",
            "--basic-auth",
            "--accept",
        ] {
            assert!(!help.contains(flag), "oci {sub} lists {flag}");
        }
        assert!(
            help.contains("regbench\n") || help.contains("oci: 8"),
            "oci {sub}: {help}"
        );
    }
    let push = Command::new(BIN)
        .args(["oci", "push", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&push.stdout).contains("Size of each layer"));
}
