//! Compressed responses against nginx's own gzip module (an independent encoder): regbench asks for
//! gzip as hey, oha and k6 do, counts bodies as received and decoded, checks read them decoded, and
//! `--disable-compression` / `compression = false` ask for nothing (as wrk).

use crate::util::nginx::Nginx;
use crate::util::*;

/// A JSON catalog nginx compresses well; its decoded length is what the report must say.
fn catalog() -> Vec<u8> {
    let repos: Vec<String> = (0..400)
        .map(|i| format!("\"library/app-{i:04}\""))
        .collect();
    format!("{{\"repositories\":[{}]}}\n", repos.join(",")).into_bytes()
}

fn int(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn gzip_bodies_are_counted_as_received_and_as_decoded_over_http1_and_h2c() {
    let body = catalog();
    let n = Nginx::start(&[("catalog.json", &body)]);
    let len = body.len() as u64;
    for (label, url, extra) in [
        ("http/1.1", format!("http://{}/catalog.json", n.addr), None),
        (
            "h2c",
            format!("http://{}/catalog.json", n.h2c),
            Some("--h2c"),
        ),
    ] {
        let mut args = vec!["run", url.as_str(), "-n", "20", "-c", "2"];
        args.extend(extra);
        let (code, r) = regbench_json(&args);
        assert_eq!(code, 0, "{label}: {}", r["overall"]);
        let all = &r["overall"];
        assert_eq!(all["status_codes"]["200"], 20, "{label}: {all}");
        assert_eq!(int(&all["compressed"]), 20, "{label}: {all}");
        assert_eq!(int(&all["undecoded"]), 0, "{label}: {all}");
        assert_eq!(int(&all["decoded_bytes"]), 20 * len, "{label}: {all}");
        let wire = int(&all["body_bytes"]);
        assert!(
            wire > 0 && wire * 3 < 20 * len,
            "{label}: {wire} body bytes on the wire is not compressed (decoded {})",
            20 * len
        );
        let log = n.take_log();
        assert_eq!(log.len(), 20, "{label}: {log:?}");
        assert!(
            log.iter().all(|l| l.ends_with(" gzip")),
            "{label}: regbench must send Accept-Encoding: gzip by default: {log:?}"
        );

        // The text report says it too.
        let mut args = vec!["run", url.as_str(), "-n", "4", "-c", "1"];
        args.extend(extra);
        let (code, out) = regbench(&args);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("decoded: 4 of 4 responses compressed"),
            "{label}: {out}"
        );
        n.take_log();

        // As wrk: no Accept-Encoding, so nginx sends the body as it is.
        let mut args = vec![
            "run",
            url.as_str(),
            "-n",
            "10",
            "-c",
            "1",
            "--disable-compression",
        ];
        args.extend(extra);
        let (code, r) = regbench_json(&args);
        assert_eq!(code, 0);
        let all = &r["overall"];
        assert_eq!(int(&all["compressed"]), 0, "{label}: {all}");
        assert_eq!(int(&all["body_bytes"]), 10 * len, "{label}: {all}");
        assert_eq!(int(&all["decoded_bytes"]), 10 * len, "{label}: {all}");
        let log = n.take_log();
        assert!(
            log.len() == 10 && log.iter().all(|l| l.ends_with(" -")),
            "{label}: --disable-compression must send no Accept-Encoding: {log:?}"
        );
    }
}

#[test]
fn checks_extractions_and_a_users_own_accept_encoding_see_what_the_server_meant() {
    let body = catalog();
    let n = Nginx::start(&[
        ("catalog.json", &body),
        ("library/app-0399.txt", b"found the last repository\n"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let write = |compression: &str| {
        std::fs::write(
            &plan,
            format!(
                r#"[defaults]
base_url = "http://{addr}"
{compression}

[[scenario]]
name = "catalog"
executor = "shared-iterations"
vus = 2
iterations = 6

[[scenario.step]]
name = "list"
url = "/catalog.json"
check = {{ status = [200], json = {{ "/repositories/0" = "library/app-0000" }}, body_contains = "app-0399" }}
extract = {{ last = {{ json = "/repositories/399" }} }}

[[scenario.step]]
name = "follow"
url = "/{{{{last}}}}.txt"
check = {{ status = [200], body_contains = "found the last" }}

[[scenario.step]]
name = "identity"
url = "/catalog.json"
headers = {{ Accept-Encoding = "identity" }}
"#,
                addr = n.addr
            ),
        )
        .unwrap();
    };
    write("");
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["steps"]);
    for name in ["list", "follow"] {
        for c in step(&r, name)["checks"].as_array().unwrap() {
            assert_eq!(
                (c["passed"].as_u64(), c["failed"].as_u64()),
                (Some(6), Some(0)),
                "{name}: {c}"
            );
        }
    }
    assert_eq!(int(&step(&r, "list")["compressed"]), 6);
    // A header the user set wins over the default.
    assert_eq!(int(&step(&r, "identity")["compressed"]), 0);
    let log = n.take_log();
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("GET /catalog.json ") && l.ends_with(" gzip"))
            .count(),
        6,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.ends_with(" identity")).count(),
        6,
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /library/app-0399.txt ")),
        "the extraction came from the decoded body: {log:?}"
    );

    // The file's switch: no Accept-Encoding on any step, the same checks pass.
    write("compression = false");
    let (code, r) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", r["steps"]);
    assert_eq!(int(&r["overall"]["compressed"]), 0, "{}", r["overall"]);
    let log = n.take_log();
    assert_eq!(
        log.iter().filter(|l| l.ends_with(" -")).count(),
        12,
        "{log:?}"
    );
}

#[test]
fn connect_to_sends_connections_elsewhere_and_keeps_the_host() {
    let n = Nginx::start(&[("ping.txt", b"pong, pong, pong, pong\n")]);
    let to = format!("registry.test:80:127.0.0.1:{}", n.addr.port());
    let (code, r) = regbench_json(&[
        "run",
        "http://registry.test/ping.txt",
        "-n",
        "3",
        "--connect-to",
        &to,
    ]);
    assert_eq!(code, 0, "{}", r["overall"]);
    assert_eq!(r["overall"]["status_codes"]["200"], 3);
    let log = n.take_log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter()
            .all(|l| l.starts_with("GET /ping.txt registry.test ")),
        "{log:?}"
    );
    // A malformed value is a usage error that shows the form.
    let (code, out) = regbench(&[
        "run",
        "http://registry.test/",
        "--connect-to",
        "registry.test:80",
    ]);
    assert_eq!(code, 2, "{out}");
}
