use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use regbench::serve::{server_id, ServeConfig};
use serde_json::Value;

use crate::util::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/registry-slo.toml");

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn registry_slo_example_passes_against_the_demo_target() {
    let t = demo_target(ServeConfig::default());
    let base = format!("base_url={}", t.url());
    let (code, r) = regbench_json(&["run", EXAMPLE, "-e", &base, "-z", "2s"]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert_valid(&r);
    let th = r["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 10);
    assert_eq!(
        th[0]["metric"], "latency{step:list-servers}",
        "thresholds keep the file's order"
    );
    assert_eq!(th[9]["metric"], "checks");
    assert!(th.iter().all(|t| t["pass"] == true));
    // Each endpoint at its own rate: 100, 200, 50 and 10 per second for 2 s.
    let steps = r["steps"].as_array().unwrap();
    let count = |name: &str| {
        steps.iter().find(|s| s["name"] == name).unwrap()["requests"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (
            count("list-servers"),
            count("get-server"),
            count("status"),
            count("sync")
        ),
        (200, 400, 100, 20)
    );
    assert_eq!(r["run"]["scenarios"].as_array().unwrap().len(), 4);
}

#[test]
fn an_slo_the_target_cannot_meet_exits_3() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let impossible = text.replace(
        r#""latency{step:get-server}" = ["p(95)<50ms", "p(99)<100ms"]"#,
        r#""latency{step:get-server}" = ["p(95)<50ms", "p(99)<1us"]"#,
    );
    assert_ne!(
        impossible, text,
        "the example's threshold line changed; update this test"
    );
    let file = write(dir.path(), "slo.toml", &impossible);
    let base = format!("base_url={}", t.url());
    let (code, out) = regbench(&["run", &file, "-e", &base, "-z", "1s", "--quiet"]);
    assert_eq!(code, 3);
    assert!(out.contains("Thresholds (9 of 10 passed)"), "{out}");
    assert!(out.contains("FAIL latency{step:get-server}"), "{out}");
}

/// A server with a login: `POST /login` answers a token, `GET /me` wants it as a Bearer token.
fn login_server(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut issued = 0u32;
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[end..end + len]).to_string();
        buf.drain(..end + len);
        let (status, reply) = if head.starts_with("POST /login ") && body.contains("\"user\":\"") {
            issued += 1;
            ("200 OK", format!("{{\"token\":\"t-{issued}\"}}"))
        } else if head.starts_with("GET /me ") {
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: Bearer t-"));
            match auth.and_then(|n| n.trim().parse::<u32>().ok()) {
                Some(n) if n == issued => ("200 OK", "{\"me\":\"ok\"}".to_string()),
                _ => ("401 Unauthorized", "{}".to_string()),
            }
        } else {
            ("404 Not Found", "{}".to_string())
        };
        let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_flow_logs_in_extracts_the_token_and_sends_it() {
    let addr = raw_server(login_server);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users.csv", "user\nalice\nbob\n");
    let file = write(
        dir.path(),
        "login.toml",
        &format!(
            r#"
[defaults]
base_url = "http://{addr}"

[data.users]
file = "users.csv"

[[scenario]]
name = "session"
executor = "per-vu-iterations"
vus = 1
iterations = 5

[[scenario.step]]
name = "login"
method = "POST"
url = "/login"
headers = {{ Content-Type = "application/json" }}
body = '{{"user":"{{{{data.users.user}}}}"}}'
extract = {{ token = {{ json = "/token" }} }}
check = {{ status = [200], json_exists = ["/token"] }}

[[scenario.step]]
name = "me"
url = "/me"
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
check = {{ status = [200], body_contains = "ok" }}

[thresholds]
"checks" = ["rate==1"]
"errors{{step:me}}" = ["count==0"]
"#
        ),
    );
    let (code, r) = regbench_json(&["run", &file]);
    assert_eq!(code, 0, "{}", r["steps"]);
    assert_valid(&r);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "login");
    assert_eq!(steps[0]["requests"], 5);
    assert_eq!(
        steps[1]["status_codes"]["200"], 5,
        "every /me carried the fresh token: {}",
        steps[1]
    );
    let me_checks = steps[1]["checks"].as_array().unwrap();
    assert_eq!(me_checks.len(), 2);
    assert!(
        me_checks
            .iter()
            .all(|c| c["passed"] == 5 && c["failed"] == 0),
        "{me_checks:?}"
    );

    // Without the extraction, /me is refused and the checks say so.
    let no_token = std::fs::read_to_string(&file)
        .unwrap()
        .replace(r#"extract = { token = { json = "/token" } }"#, "")
        .replace("Bearer {{token}}", "Bearer none");
    let file2 = write(dir.path(), "login2.toml", &no_token);
    let (code, r) = regbench_json(&["run", &file2]);
    assert_eq!(code, 3, "the thresholds catch it");
    assert_eq!(r["steps"][1]["status_codes"]["401"], 5);
    assert_eq!(r["steps"][1]["checks"][0]["failed"], 5);
    assert_eq!(
        r["steps"][2]["status_codes"]["401"], 5,
        "a failed step fails its iteration"
    );
}

#[test]
fn checks_count_per_row_of_a_data_file() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    // Two ids the registry has, two it does not: half the lookups are 404.
    write(
        dir.path(),
        "ids.csv",
        &format!("id\n{}\nnope-1\n{}\nnope-2\n", server_id(1), server_id(2)),
    );
    let file = write(
        dir.path(),
        "ids.toml",
        &format!(
            r#"
[defaults]
base_url = "{}"

[data.ids]
file = "ids.csv"

[[scenario]]
name = "lookup"
executor = "shared-iterations"
vus = 2
iterations = 40

[scenario.request]
url = "/v1/registry/{{{{data.ids.id}}}}"
check = {{ status = [200] }}

[thresholds]
"checks" = ["rate>0.99"]
"#,
            t.url()
        ),
    );
    let (code, r) = regbench_json(&["run", &file]);
    assert_eq!(code, 3);
    let step = &r["steps"][0];
    assert_eq!(step["requests"], 40);
    assert_eq!(
        (
            step["status_codes"]["200"].as_u64(),
            step["status_codes"]["404"].as_u64()
        ),
        (Some(20), Some(20))
    );
    assert_eq!(
        (
            step["checks"][0]["passed"].as_u64(),
            step["checks"][0]["failed"].as_u64()
        ),
        (Some(20), Some(20))
    );
    let th = &r["thresholds"][0];
    assert_eq!(
        (th["observed"].as_f64(), th["pass"].as_bool()),
        (Some(0.5), Some(false))
    );
}

#[test]
fn a_bad_file_never_reaches_the_network() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "[defaults]\nbase_url = \"{}\"\n\n[[scenario]]\nname = \"s\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[scenario.request]\nurl = \"/v2/\"\n",
        t.url()
    );
    for (bad, why) in [
        (
            good.replace("url = \"/v2/\"", "url = \"/v2/{{missing}}\""),
            "undefined template variable 'missing'",
        ),
        (
            good.replace("vus = 1", "vus = 1\nsped = 2"),
            "unknown field `sped`",
        ),
        (
            good.replace(
                "executor = \"constant-vus\"",
                "executor = \"ramping-arrival-rate\"\nstart_rate = -1",
            )
            .replace(
                "vus = 1\nduration = \"1s\"\n",
                "stages = [{ duration = \"1s\", target = 5 }]\n",
            ),
            "start_rate must be a non-negative",
        ),
    ] {
        let file = write(dir.path(), "bad.toml", &bad);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
            .args(["run", &file])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("{file}:")) && err.contains(why),
            "{err}"
        );
    }
    assert_eq!(t.state().metrics.requests_total(), 0, "nothing was sent");

    // A flag the file owns is refused too.
    let file = write(dir.path(), "good.toml", &good);
    let (code, _) = regbench(&["run", &file, "-c", "5"]);
    assert_eq!(code, 2);
    assert_eq!(t.state().metrics.requests_total(), 0);
}

#[test]
fn abort_on_fail_stops_the_run_early() {
    let t = demo_target(ServeConfig {
        error_rate: 1.0,
        ..ServeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "abort.toml",
        &format!(
            "[defaults]\nbase_url = \"{}\"\n\n[[scenario]]\nname = \"s\"\nexecutor = \"constant-arrival-rate\"\nrate = 50\nduration = \"30s\"\n\
             [scenario.request]\nurl = \"/v2/\"\n\n[thresholds]\n\"errors\" = [{{ expr = \"rate<0.01\", abort_on_fail = true, grace = \"1s\" }}]\n",
            t.url()
        ),
    );
    let t0 = Instant::now();
    let (code, r) = regbench_json(&["run", &file, "--tag", "ci=yes"]);
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "aborted early: {:?}",
        t0.elapsed()
    );
    assert_eq!(code, 3);
    assert_eq!(r["run"]["aborted_by"], "errors rate<0.01");
    assert_eq!(r["run"]["tags"]["ci"], "yes");
    assert_valid(&r);
}

/// The flow example end to end: JSON and header extraction feed later steps; every check passes.
#[test]
fn registry_flow_example_passes_against_the_demo_target() {
    let t = demo_target(ServeConfig::default());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/registry-flow.toml");
    let base = format!("base_url={}", t.url());
    let (code, r) = regbench_json(&["run", example, "-e", &base, "-z", "2s"]);
    assert_eq!(code, 0, "{}", r["thresholds"]);
    assert_valid(&r);
    for step in r["steps"].as_array().unwrap() {
        assert!(step["requests"].as_u64().unwrap() > 0, "{step}");
        for c in step["checks"].as_array().unwrap() {
            assert_eq!(c["failed"], 0, "{} {}", step["name"], c);
        }
    }
}

#[test]
fn every_example_file_loads() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    let env = |_: &str| Some("http://127.0.0.1:1".to_string());
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let loaded = regbench::scenario::load(
            &path,
            &regbench::scenario::Overrides {
                vars: &[],
                duration: None,
                n_workers: 2,
                segment: regbench::plan::Segment::WHOLE,
                seed: 1,
                max_lag: None,
                warmup: None,
                watch: &[],
                env: &env,
                http: &|base, _| Ok(base),
            },
        );
        assert!(
            loaded.is_ok(),
            "{}: {}",
            path.display(),
            loaded.err().unwrap()
        );
        n += 1;
    }
    assert!(n >= 3, "examples/ has {n} scenario files");
    let _: Value = Value::Null;
}

/// The authenticated-pull example: challenge, scoped token, manifest by digest, config blob.
#[test]
fn authenticated_pull_example_passes_against_a_token_server() {
    let t = demo_target(ServeConfig {
        auth: regbench::serve::auth::Auth::parse("bearer").unwrap(),
        ..ServeConfig::default()
    });
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/authenticated-pull.toml"
    );
    let base = format!("base_url={}", t.url());
    let (code, r) = regbench_json(&["run", example, "-e", &base, "-z", "1s"]);
    assert_eq!(code, 0, "{}", r["steps"]);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6, "5 steps and the whole pull");
    assert!(steps[0]["status_codes"]["401"].as_u64().unwrap() > 0);
    // The expected 401 challenge does not fail the pull: every whole pull succeeded.
    assert_eq!(steps[5]["name"], "pull (iteration)");
    for s in &steps[1..] {
        assert!(s["status_codes"]["200"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(
            s["status_codes"].as_object().unwrap().len(),
            1,
            "only 200s: {s}"
        );
    }
}

/// `paginate`: Link headers (catalog, tags) and JSON cursors (service registry) are followed, each
/// page a request of the step, and `max_pages` bounds the walk.
#[test]
fn pagination_walks_every_page() {
    let t = demo_target(ServeConfig {
        repos: 20,
        servers: 100,
        ..ServeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "crawl.toml",
        &format!(
            r#"
[defaults]
base_url = "{}"

[[scenario]]
name = "crawl"
executor = "per-vu-iterations"
vus = 1
iterations = 2

[[scenario.step]]
name = "catalog"
url = "/v2/_catalog?n=3"
paginate = {{ link = true }}
check = {{ status = [200], json_exists = ["/repositories/0"] }}

[[scenario.step]]
name = "servers"
url = "/v1/registry?limit=30"
paginate = {{ cursor = "auto" }}
check = {{ status = [200] }}

[[scenario.step]]
name = "bounded"
url = "/v2/_catalog?n=1"
paginate = {{ link = true, max_pages = 5 }}
"#,
            t.url()
        ),
    );
    let (code, r) = regbench_json(&["run", &file]);
    assert_eq!(code, 0, "{}", r["steps"]);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(
        steps[0]["requests"],
        2 * 7,
        "20 repositories, 3 a page: 7 pages per walk"
    );
    assert_eq!(steps[0]["checks"][1]["passed"], 14);
    assert_eq!(
        steps[1]["requests"],
        2 * 4,
        "100 servers, 30 a page: 4 pages per walk"
    );
    assert_eq!(steps[2]["requests"], 2 * 5, "max_pages stops a walk");
    let bad = std::fs::read_to_string(&file).unwrap().replace(
        "paginate = { cursor = \"auto\" }",
        "paginate = { link = true, cursor = \"auto\" }",
    );
    let bad_file = write(dir.path(), "bad.toml", &bad);
    let (code, _) = regbench(&["run", &bad_file]);
    assert_eq!(code, 2);
}

/// `verify_digest`: blobs are hashed as they stream in; a body that is not the expected digest is
/// the `digest-mismatch` error, not a success.
#[test]
fn blobs_are_verified_while_streaming() {
    let t = demo_target(ServeConfig {
        layer_size: 1 << 20,
        repos: 1,
        layers: 2,
        ..ServeConfig::default()
    });
    let layers = t.state().content.repos[0].layers.clone();
    let dir = tempfile::tempdir().unwrap();
    let flow = |expected: &str| {
        format!(
            "[defaults]\nbase_url = \"{}\"\n[defaults.vars]\nlayer = \"{}\"\nexpected = \"{expected}\"\n\n\
             [[scenario]]\nname = \"pull\"\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 3\n\
             [scenario.request]\nurl = \"/v2/demo/app-000/blobs/{{{{layer}}}}\"\nverify_digest = \"{{{{expected}}}}\"\n",
            t.url(),
            layers[0]
        )
    };
    let ok = write(dir.path(), "ok.toml", &flow(&layers[0]));
    let (code, r) = regbench_json(&["run", &ok]);
    assert_eq!(code, 0);
    assert_eq!(r["overall"]["status_codes"]["200"], 6);
    assert_eq!(r["overall"]["body_bytes"], 6u64 << 20);
    let bad = write(dir.path(), "bad.toml", &flow(&layers[1]));
    let (_, r) = regbench_json(&["run", &bad]);
    assert_eq!(
        r["overall"]["errors"]["digest-mismatch"], 6,
        "{}",
        r["overall"]
    );
    assert_valid(&r);
}
