use regbench::serve::digest;
use serde_json::Value;

use crate::util::registry::Registry;
use crate::util::*;

/// A push then a pull, written as an ordinary scenario flow: monolithic blob uploads (POST, then PUT
/// to the Location the registry answered), a manifest PUT, then HEAD/GET of the manifest, a blob,
/// the tag list and the catalog — every step checked.
const FLOW: &str = r#"
[defaults]
base_url = "{{base_url}}"
headers = { Authorization = "{{authorization}}" }

[defaults.vars]
authorization = "none"

[[scenario]]
name = "push-pull"
executor = "per-vu-iterations"
vus = 1
iterations = 1

[[scenario.step]]
name = "layer-start"
method = "POST"
url = "/v2/test/app/blobs/uploads/"
extract = { loc = { header = "Location" } }
check = { status = [202], header = ["Docker-Upload-UUID"] }

[[scenario.step]]
name = "layer-put"
method = "PUT"
url = "{{loc}}&digest={{layer_digest}}"
body = "{{layer}}"
check = { status = [201] }

[[scenario.step]]
name = "config-start"
method = "POST"
url = "/v2/test/app/blobs/uploads/"
extract = { loc2 = { header = "Location" } }
check = { status = [202] }

[[scenario.step]]
name = "config-put"
method = "PUT"
url = "{{loc2}}&digest={{config_digest}}"
body = "{{config}}"
check = { status = [201] }

[[scenario.step]]
name = "manifest-put"
method = "PUT"
url = "/v2/test/app/manifests/v1"
headers = { Content-Type = "application/vnd.oci.image.manifest.v1+json" }
body = "{{manifest}}"
extract = { digest = { header = "Docker-Content-Digest" } }
check = { status = [201] }

[[scenario.step]]
name = "manifest-head"
method = "HEAD"
url = "/v2/test/app/manifests/v1"
headers = { Accept = "application/vnd.oci.image.manifest.v1+json" }
check = { status = [200], header = ["Docker-Content-Digest"] }

[[scenario.step]]
name = "manifest-get"
url = "/v2/test/app/manifests/{{digest}}"
headers = { Accept = "application/vnd.oci.image.manifest.v1+json" }
check = { status = [200], json_exists = ["/layers/0/digest"] }

[[scenario.step]]
name = "layer-get"
url = "/v2/test/app/blobs/{{layer_digest}}"
check = { status = [200], body_contains = "layer-bytes" }

[[scenario.step]]
name = "tags"
url = "/v2/test/app/tags/list"
check = { status = [200], json = { "/tags/0" = "v1" } }

[[scenario.step]]
name = "catalog"
url = "/v2/_catalog?n=10"
check = { status = [200], json = { "/repositories/0" = "test/app" } }

[thresholds]
"checks" = ["rate==1"]
"#;

fn run_flow(reg: &Registry, authorization: &str) -> (u8, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.toml");
    std::fs::write(&file, FLOW).unwrap();
    let layer = "layer-bytes-".repeat(50);
    let config =
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        digest(config.as_bytes()),
        config.len(),
        digest(layer.as_bytes()),
        layer.len()
    );
    let vars = [
        format!("base_url={}", reg.url()),
        format!("authorization={authorization}"),
        format!("layer={layer}"),
        format!("layer_digest={}", digest(layer.as_bytes())),
        format!("config={config}"),
        format!("config_digest={}", digest(config.as_bytes())),
        format!("manifest={manifest}"),
    ];
    let mut args = vec!["run", file.to_str().unwrap()];
    for v in &vars {
        args.extend(["-e", v.as_str()]);
    }
    regbench_json(&args)
}

#[test]
fn push_and_pull_against_a_real_registry() {
    let reg = Registry::start(None);
    let (code, r) = run_flow(&reg, "none");
    let failed: Vec<String> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["failed"] != 0)
                .map(move |c| format!("{}: {}", s["name"], c["name"]))
        })
        .collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    assert_eq!(code, 0);
    assert_valid(&r);
    // The registry's own Prometheus endpoint on its debug address counts what we sent.
    let metrics = String::from_utf8(http(reg.debug, "GET", "/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("registry_http_requests_total"),
        "{}",
        &metrics[..metrics.len().min(300)]
    );
}

#[test]
fn the_same_flow_behind_htpasswd_basic_auth() {
    let reg = Registry::start(Some(("ci", "s3cret")));
    let r = http(reg.addr, "GET", "/v2/", &[]);
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm=\"regbench\""));
    let (code, _) = run_flow(&reg, "Basic Y2k6czNjcmV0"); // ci:s3cret
    assert_eq!(code, 0, "with credentials every check passes");
    let (code, r) = run_flow(&reg, "Basic bm9wZTpub3Bl");
    assert_eq!(code, 3);
    assert_eq!(
        r["steps"][0]["status_codes"]["401"], 1,
        "wrong credentials are refused"
    );
}

#[test]
fn seed_pushes_once_then_nothing_against_the_real_registry() {
    let reg = Registry::start(Some(("ci", "s3cret")));
    std::env::set_var("REGBENCH_TEST_SEED_PW", "s3cret");
    let seed = || {
        regbench(&[
            "oci",
            "seed",
            &reg.url(),
            "--repos",
            "2",
            "--tags",
            "2",
            "--layers",
            "2",
            "--layer-size",
            "32KiB",
            "--user",
            "ci",
            "--password-env",
            "REGBENCH_TEST_SEED_PW",
            "--quiet",
        ])
    };
    let (code, first) = seed();
    assert_eq!(code, 0, "{first}");
    assert!(
        first.contains("4 manifests pushed, 0 already there"),
        "{first}"
    );
    let (code, second) = seed();
    assert_eq!(code, 0);
    assert!(
        second.contains("0 blobs pushed") && second.contains("0 manifests pushed, 4 already there"),
        "{second}"
    );
    let cat = http(
        reg.addr,
        "GET",
        "/v2/_catalog",
        &[("Authorization", "Basic Y2k6czNjcmV0")],
    )
    .json();
    assert_eq!(
        cat["repositories"],
        serde_json::json!(["seed/app-000", "seed/app-001"])
    );
    // Without credentials the registry's Basic challenge is a clear error, exit 1.
    let (code, _) = regbench(&["oci", "seed", &reg.url(), "--repos", "1", "--quiet"]);
    assert_eq!(code, 1);
}

#[test]
fn seed_answers_bearer_challenges_with_scoped_tokens() {
    let t = demo_target(regbench::serve::ServeConfig {
        auth: regbench::serve::auth::Auth::parse("bearer").unwrap(),
        ..regbench::serve::ServeConfig::default()
    });
    let args = [
        "oci",
        "seed",
        &t.url(),
        "--repos",
        "2",
        "--tags",
        "3",
        "--layers",
        "1",
        "--layer-size",
        "4KiB",
        "--quiet",
    ];
    let (code, first) = regbench(&args);
    assert_eq!(code, 0, "{first}");
    assert!(first.contains("6 manifests pushed"), "{first}");
    let (_, second) = regbench(&args);
    assert!(
        second.contains("0 manifests pushed, 6 already there"),
        "{second}"
    );
}

#[test]
fn catalog_and_tags_pagination_against_the_real_registry() {
    let reg = Registry::start(None);
    let (code, out) = regbench(&[
        "oci",
        "seed",
        &reg.url(),
        "--repos",
        "3",
        "--tags",
        "4",
        "--layers",
        "1",
        "--layer-size",
        "1KiB",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{out}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crawl.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbase_url = \"{}\"\n\n[[scenario]]\nname = \"crawl\"\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n\n\
             [[scenario.step]]\nname = \"catalog\"\nurl = \"/v2/_catalog?n=1\"\npaginate = {{ link = true }}\ncheck = {{ status = [200] }}\n\n\
             [[scenario.step]]\nname = \"tags\"\nurl = \"/v2/seed/app-001/tags/list?n=3\"\npaginate = {{ link = true }}\ncheck = {{ status = [200] }}\n",
            reg.url()
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let steps = r["steps"].as_array().unwrap();
    // distribution answers a Link on every full page, so the last walk ends on an empty page.
    let catalog_pages = steps[0]["requests"].as_u64().unwrap();
    assert!(
        (3..=4).contains(&catalog_pages),
        "3 repositories, 1 a page: {catalog_pages}"
    );
    // distribution 2.8 ignores n/last on tags/list: one page with every tag (docs/registries.md).
    assert_eq!(steps[1]["requests"], 1);
    assert_eq!(steps[0]["checks"][0]["failed"], 0);
}

pub(crate) fn seed(reg: &Registry, extra: &[&str]) {
    let url = reg.url();
    let mut args = vec![
        "oci",
        "seed",
        &url,
        "--repos",
        "2",
        "--tags",
        "2",
        "--layers",
        "3",
        "--layer-size",
        "64KiB",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let (code, out) = regbench(&args);
    assert_eq!(code, 0, "{out}");
}

/// The registry flow commands against distribution: whole pulls (every blob verified), Range pulls,
/// chunked pushes with a cross-repository mount, catalog and tag walks. Nothing may fail.
#[test]
fn oci_pull_push_catalog_and_tags_against_the_real_registry() {
    let reg = Registry::start(None);
    seed(&reg, &[]);
    let url = reg.url();
    let images = ["--image", "seed/app-000:v1", "--image", "seed/app-001:v2"];
    let mut args = vec!["oci", "pull", &url, "-n", "8", "-c", "2"];
    args.extend_from_slice(&images);
    let (code, r) = regbench_json(&args);
    assert_eq!(code, 0);
    assert_valid(&r);
    let pull = step(&r, "pull");
    assert_eq!(
        (pull["requests"].as_u64(), pull["errors_total"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(pull["success"], 8, "{pull}");
    assert!(pull["body_bytes"].as_u64().unwrap() >= 8 * 3 * 64 * 1024);
    for (phase, n) in [
        ("ping", 8),
        ("head", 8),
        ("manifest", 8),
        ("config", 8),
        ("layer", 24),
        ("token", 0),
    ] {
        let s = step(&r, &format!("pull/{phase}"));
        assert_eq!(s["requests"], n, "pull/{phase}: {s}");
        assert_eq!(s["errors_total"], 0, "pull/{phase}");
    }
    assert_eq!(r["overall"]["errors_total"], 0);

    // Range: 64 KiB layers in 20 KiB pieces are 4 requests each, answered 206.
    let mut args = vec![
        "oci", "pull", &url, "-n", "2", "-c", "1", "--range", "20KiB",
    ];
    args.extend_from_slice(&images);
    let (_, r) = regbench_json(&args);
    let layer = step(&r, "pull/layer");
    assert_eq!(layer["requests"], 2 * 3 * 4, "{layer}");
    assert_eq!(layer["status_codes"]["206"], 24);
    assert_eq!(step(&r, "pull")["success"], 2);

    // Chunked pushes with a mount: per push, layer 0 mounted from load/base (pushed there once per
    // virtual user, in 3 chunks), layer 1 in 3 chunks, the config monolithic, then the manifest.
    // One virtual user: docker-registry answers 400 to one of two concurrent manifest PUTs to the
    // same tag now and then (a race in the registry; concurrent pushes are tested on the demo).
    let (code, r) = regbench_json(&[
        "oci",
        "push",
        &url,
        "--image",
        "load/app:ci",
        "-n",
        "4",
        "-c",
        "1",
        "--layers",
        "2",
        "--layer-size",
        "50KiB",
        "--chunk",
        "20KiB",
        "--mount-from",
        "load/base",
    ]);
    assert_eq!(code, 0);
    assert_eq!(step(&r, "push")["success"], 4, "{}", r["steps"]);
    assert_eq!(
        step(&r, "push/mount")["status_codes"]["201"],
        4,
        "distribution mounts"
    );
    assert_eq!(step(&r, "push/chunk")["requests"], 4 * 3 + 3);
    assert_eq!(step(&r, "push/manifest")["status_codes"]["201"], 4);
    assert_eq!(r["overall"]["errors_total"], 0);
    let tags = http(reg.addr, "GET", "/v2/load/app/tags/list", &[]).json();
    assert_eq!(tags["tags"], serde_json::json!(["ci"]));
    // What was pushed pulls back, verified.
    let (_, r) = regbench_json(&[
        "oci",
        "pull",
        &url,
        "--image",
        "load/app:ci",
        "-n",
        "1",
        "-c",
        "1",
    ]);
    assert_eq!(step(&r, "pull")["success"], 1, "{}", r["steps"]);

    // Catalog: 4 repositories a page at a time (distribution adds a Link to every full page, so a
    // walk may end on an empty one); tags: distribution 2.8 answers every tag in one page.
    let (_, r) = regbench_json(&[
        "oci",
        "catalog",
        &url,
        "--page-size",
        "1",
        "-n",
        "2",
        "-c",
        "1",
    ]);
    let pages = step(&r, "catalog/page")["requests"].as_u64().unwrap();
    assert!(
        (8..=10).contains(&pages),
        "2 walks of 4 repositories: {pages}"
    );
    assert_eq!(step(&r, "catalog")["success"], 2);
    let (_, r) = regbench_json(&[
        "oci",
        "tags",
        &url,
        "--repo",
        "seed/app-000",
        "-n",
        "3",
        "-c",
        "1",
    ]);
    assert_eq!(step(&r, "tags/page")["requests"], 3);
    assert_eq!(step(&r, "tags")["success"], 3);
}

/// Behind htpasswd: the ping's 401 is the expected challenge (a success), every later request
/// carries Basic credentials; without them each pull is the `auth` error.
#[test]
fn oci_pull_and_push_behind_htpasswd_basic_auth() {
    let reg = Registry::start(Some(("ci", "s3cret")));
    std::env::set_var("REGBENCH_TEST_FLOW_PW", "s3cret");
    let creds = ["--user", "ci", "--password-env", "REGBENCH_TEST_FLOW_PW"];
    seed(&reg, &creds);
    let url = reg.url();
    let mut args = vec![
        "oci",
        "pull",
        &url,
        "--image",
        "seed/app-001:v1",
        "-n",
        "4",
        "-c",
        "2",
    ];
    args.extend_from_slice(&creds);
    let (code, r) = regbench_json(&args);
    assert_eq!(code, 0);
    let ping = step(&r, "pull/ping");
    assert_eq!(ping["status_codes"]["401"], 4);
    assert_eq!(ping["auth_challenges"], 4);
    assert_eq!(ping["success"], 4);
    assert_eq!(step(&r, "pull")["success"], 4, "{}", r["steps"]);
    assert_eq!(step(&r, "pull/layer")["requests"], 12);
    assert_eq!(
        r["overall"]["errors_total"], 0,
        "challenges are not failures"
    );

    let mut args = vec![
        "oci",
        "push",
        &url,
        "--image",
        "load/app:v1",
        "-n",
        "2",
        "-c",
        "1",
    ];
    args.extend_from_slice(&creds);
    let (_, r) = regbench_json(&args);
    assert_eq!(step(&r, "push")["success"], 2, "{}", r["steps"]);

    let (_, r) = regbench_json(&[
        "oci",
        "pull",
        &url,
        "--image",
        "seed/app-001:v1",
        "-n",
        "3",
        "-c",
        "1",
    ]);
    let pull = step(&r, "pull");
    assert_eq!(
        pull["errors"]["auth"], 3,
        "no credentials for a Basic challenge: {pull}"
    );
    assert_eq!(step(&r, "pull/head")["requests"], 0);
}
