use std::io::{Read, Write};
use std::net::TcpStream;

use regbench::serve::{auth::Auth, digest, ServeConfig};

use crate::util::*;

fn bearer_target() -> regbench::serve::Server {
    demo_target(ServeConfig {
        auth: Auth::parse("bearer").unwrap(),
        ..ServeConfig::default()
    })
}

/// Warm tokens are fetched once per scope and virtual user; cold ones every iteration. Token
/// latency is its own phase, apart from the registry's.
#[test]
fn warm_tokens_are_reused_cold_tokens_are_fetched_every_pull() {
    let t = bearer_target();
    let url = t.url();
    let pull = |mode: &str| {
        regbench_json(&[
            "oci",
            "pull",
            &url,
            "--image",
            "demo/app-000:v1",
            "--image",
            "demo/app-002:v1",
            "-n",
            "10",
            "-c",
            "1",
            "--token",
            mode,
        ])
        .1
    };
    let warm = pull("warm");
    assert_eq!(step(&warm, "pull")["success"], 10, "{}", warm["steps"]);
    assert_eq!(
        step(&warm, "pull/token")["requests"],
        2,
        "one token per repository scope"
    );
    assert_eq!(step(&warm, "pull/ping")["auth_challenges"], 10);
    let cold = pull("cold");
    assert_eq!(step(&cold, "pull")["success"], 10);
    assert_eq!(
        step(&cold, "pull/token")["requests"],
        10,
        "a new token every pull"
    );
    assert!(step(&cold, "pull/token")["latency"]["count"].as_u64() == Some(10));
    assert_eq!(cold["overall"]["errors_total"], 0);
}

/// Multi-platform tags (demo/app-004 is an OCI index, demo/app-009 a Docker manifest list) resolve to
/// the asked platform: two manifest GETs per pull. A platform the index lacks is `bad-manifest`.
#[test]
fn indexes_resolve_to_the_platform() {
    let t = bearer_target();
    let url = t.url();
    for image in ["demo/app-004:v1", "demo/app-009:v2"] {
        let (_, r) = regbench_json(&[
            "oci",
            "pull",
            &url,
            "--image",
            image,
            "--platform",
            "linux/arm64/v8",
            "-n",
            "3",
            "-c",
            "1",
        ]);
        assert_eq!(step(&r, "pull")["success"], 3, "{image}: {}", r["steps"]);
        assert_eq!(
            step(&r, "pull/manifest")["requests"],
            6,
            "{image}: index then image"
        );
    }
    let (_, r) = regbench_json(&[
        "oci",
        "pull",
        &url,
        "--image",
        "demo/app-004:v1",
        "--platform",
        "linux/s390x",
        "-n",
        "2",
        "-c",
        "1",
    ]);
    assert_eq!(
        step(&r, "pull")["errors"]["bad-manifest"],
        2,
        "{}",
        r["steps"]
    );
    assert_eq!(step(&r, "pull/config")["requests"], 0);
}

/// Layers are fetched `--parallel` at a time, each lane on its own connection: with 120 ms per
/// request, 6 layers take 2 rounds at 3 lanes and 6 rounds at 1.
#[test]
fn layers_are_fetched_in_parallel() {
    let t = demo_target(ServeConfig {
        layers: 6,
        layer_size: 1024,
        latency: regbench::serve::LatencyModel::Fixed(std::time::Duration::from_millis(120)),
        ..ServeConfig::default()
    });
    let url = t.url();
    let whole = |parallel: &str| {
        let (_, r) = regbench_json(&[
            "oci",
            "pull",
            &url,
            "--image",
            "demo/app-000:v1",
            "-n",
            "1",
            "-c",
            "1",
            "--parallel",
            parallel,
        ]);
        assert_eq!(step(&r, "pull")["success"], 1, "{}", r["steps"]);
        assert_eq!(step(&r, "pull/layer")["requests"], 6);
        (ns(&step(&r, "pull")["latency"]["max_ns"]), r)
    };
    let (three, r) = whole("3");
    let (one, _) = whole("1");
    // ping, head, manifest, config = 4 × 120 ms, then the layers.
    assert!(
        three.as_millis() < 4 * 120 + 3 * 120 + 100,
        "parallel 3 took {three:?}"
    );
    assert!(
        one.as_millis() >= 4 * 120 + 6 * 120,
        "parallel 1 took {one:?}"
    );
    assert!(
        r["overall"]["connections"]["new"].as_u64().unwrap() >= 3,
        "{}",
        r["overall"]["connections"]
    );
}

/// A registry that serves a layer whose bytes do not match its digest: the layer request is the
/// `digest-mismatch` error, and so is the whole pull.
#[test]
fn a_corrupt_layer_is_a_digest_mismatch() {
    let addr = raw_server(corrupt_registry);
    let url = format!("http://{addr}");
    let (_, r) = regbench_json(&[
        "oci", "pull", &url, "--image", "x/y:v1", "-n", "2", "-c", "1",
    ]);
    assert_eq!(
        step(&r, "pull/layer")["errors"]["digest-mismatch"],
        2,
        "{}",
        r["steps"]
    );
    assert_eq!(step(&r, "pull/config")["errors_total"], 0);
    assert_eq!(step(&r, "pull")["errors"]["digest-mismatch"], 2);
    let (_, r) = regbench_json(&[
        "oci", "pull", &url, "--image", "x/y:v1", "-n", "1", "-c", "1", "--range", "2",
    ]);
    assert_eq!(
        step(&r, "pull/layer")["errors"]["digest-mismatch"],
        1,
        "{}",
        r["steps"]
    );
}

fn corrupt_registry(mut s: TcpStream) {
    let config = b"{}".to_vec();
    let layer_claimed = b"good".to_vec();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{}","size":2}},"layers":[{{"digest":"{}","size":4}}]}}"#,
        digest(&config),
        digest(&layer_claimed)
    );
    let md = digest(manifest.as_bytes());
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let line = text.lines().next().unwrap_or("").to_string();
        let range = text
            .lines()
            .find_map(|l| l.strip_prefix("Range: bytes="))
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| {
                (
                    a.parse::<usize>().unwrap(),
                    b.trim().parse::<usize>().unwrap(),
                )
            });
        let (status, extra, body): (&str, String, Vec<u8>) = if line.starts_with("GET /v2/ ") {
            ("200 OK", String::new(), Vec::new())
        } else if line.contains("/manifests/") {
            let h = format!(
                "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {md}\r\n"
            );
            ("200 OK", h, manifest.clone().into_bytes())
        } else if line.contains(&digest(&config)) {
            ("200 OK", String::new(), config.clone())
        } else if line.contains("/blobs/") {
            let evil = b"evil".to_vec();
            match range {
                Some((a, b)) => (
                    "206 Partial Content",
                    String::new(),
                    evil[a..=b.min(3)].to_vec(),
                ),
                None => ("200 OK", String::new(), evil),
            }
        } else {
            ("404 Not Found", String::new(), Vec::new())
        };
        let len = if line.starts_with("HEAD") {
            manifest.len()
        } else {
            body.len()
        };
        let mut out =
            format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n{extra}\r\n").into_bytes();
        if !line.starts_with("HEAD") {
            out.extend_from_slice(&body);
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Flow steps in a scenario file: a pull and a push in one flow, with thresholds on phases.
#[test]
fn flow_steps_in_a_scenario_file() {
    let t = demo_target(ServeConfig {
        auth: Auth::parse("bearer:ci:pw").unwrap(),
        ..ServeConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flows.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[defaults]
base_url = "{}"

[defaults.registry]
user = "ci"
password = "{{{{env.REGBENCH_TEST_FLOWS_PW}}}}"
token = "cold"

[[scenario]]
name = "ci"
executor = "per-vu-iterations"
vus = 2
iterations = 3

[[scenario.step]]
name = "pull"
type = "oci-pull"
image = "demo/app-00{{{{vu}}}}:v1"
parallel = 2

[[scenario.step]]
name = "push"
type = "oci-push"
image = "ci/out-{{{{vu}}}}:build-{{{{iteration}}}}"
layers = 1
layer_size = "8KiB"
token = "warm"

[[scenario.step]]
name = "tags"
type = "oci-tags"
repo = "ci/out-{{{{vu}}}}"

[[scenario.step]]
name = "servers"
type = "service-list"
limit = 40

[[scenario.step]]
name = "server"
type = "service-get"
server = "io.example.demo/server-0003"

[thresholds]
"errors" = ["count==0"]
"latency{{step:pull/layer}}" = ["p(99)<2s"]
"latency{{step:pull}}" = ["max<5s"]
"#,
            t.url()
        ),
    )
    .unwrap();
    std::env::set_var("REGBENCH_TEST_FLOWS_PW", "pw");
    let (code, r) = regbench_json(&["run", file.to_str().unwrap()]);
    let failed: Vec<String> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["errors_total"] != 0 || s["success"] != s["requests"])
        .map(|s| format!("{} {} {}", s["name"], s["status_codes"], s["errors"]))
        .collect();
    assert_eq!(code, 0, "{failed:?}");
    assert_eq!(step(&r, "pull")["success"], 6, "{}", r["steps"]);
    assert_eq!(
        step(&r, "pull/token")["requests"],
        6,
        "cold: a token every pull"
    );
    assert_eq!(step(&r, "push")["success"], 6);
    assert_eq!(
        step(&r, "push/token")["requests"],
        2,
        "warm: one per virtual user"
    );
    assert_eq!(step(&r, "tags")["success"], 6);
    // 100 demo servers, 40 a page.
    assert_eq!(step(&r, "servers")["requests"], 6 * 3);
    assert_eq!(step(&r, "server")["status_codes"]["200"], 6);
}

/// The registry examples run clean against the demo target: the CI fleet (seeded small and large
/// images behind a token server wanting Basic), the catalog crawl, the service-registry SLOs.
#[test]
fn registry_examples_pass_against_the_demo_target() {
    let t = demo_target(ServeConfig {
        auth: Auth::parse("bearer:ci:s3cret").unwrap(),
        ..ServeConfig::default()
    });
    let url = t.url();
    std::env::set_var("REGISTRY_PASSWORD", "s3cret");
    for (prefix, size) in [("small", "8KiB"), ("large", "256KiB")] {
        let (code, out) = regbench(&[
            "oci",
            "seed",
            &url,
            "--prefix",
            prefix,
            "--repos",
            "4",
            "--tags",
            "2",
            "--layers",
            "2",
            "--layer-size",
            size,
            "--user",
            "ci",
            "--password-env",
            "REGISTRY_PASSWORD",
            "--quiet",
        ]);
        assert_eq!(code, 0, "{out}");
    }
    let example = |name: &str| format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let base = format!("base_url={url}");
    let (code, r) = regbench_json(&[
        "run",
        &example("ci-fleet-pull.toml"),
        "-e",
        &base,
        "-z",
        "2s",
    ]);
    assert_eq!(code, 0, "{} {}", r["thresholds"], r["steps"]);
    let pulls = step(&r, "pull")["requests"].as_u64().unwrap();
    assert!(pulls > 0);
    assert_eq!(step(&r, "pull")["success"], pulls);
    assert_eq!(step(&r, "pull/token")["requests"], pulls, "cold tokens");

    let open = demo_target(ServeConfig::default());
    let base = format!("base_url={}", open.url());
    for file in ["catalog-crawl.toml", "service-registry-slo.toml"] {
        let (code, r) = regbench_json(&["run", &example(file), "-e", &base, "-z", "1s"]);
        assert_eq!(code, 0, "{file}: {} {}", r["thresholds"], r["steps"]);
        assert_eq!(r["overall"]["errors_total"], 0, "{file}");
    }
}
