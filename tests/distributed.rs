//! Issue 19: distributed runs — the Kubernetes manifests (rendered, and the Kustomize base built
//! with `kubectl kustomize`) validate against the Kubernetes OpenAPI schemas, four local "pods" run the rendered Job's command and `regbench merge` makes of their
//! shards exactly the run one process makes; a missing, doubled or foreign shard is refused.

use std::process::{Command, Stdio};

use regbench::serve::ServeConfig;
use serde_json::Value;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_regbench");

fn plan(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[defaults]
base_url = "{url}"

[[scenario]]
name = "catalog"
executor = "constant-arrival-rate"
rate = 2000
duration = "3s"
max_vus = 200
[scenario.request]
url = "/v2/_catalog"
check = {{ status = [200] }}

[thresholds]
"latency" = ["p(99)<2s"]
"rps" = ["rate>1500"]
"#
        ),
    )
    .unwrap();
    path
}

fn kubernetes_validate(files: &[&std::path::Path]) {
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .expect(
            "kubernetes-validate not found: pip install kubernetes-validate (scripts/test.sh does)",
        );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rendered manifests and the Kustomize base's Job validate (strict: no unknown fields).
#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), "http://registry.default.svc:5000");
    let (code, yaml) = regbench(&[
        "k8s",
        "render",
        "--parallelism",
        "4",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{yaml}");
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &yaml).unwrap();
    // The Kustomize base, built as `kubectl apply -k` builds it.
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/base");
    let built = Command::new("kubectl")
        .arg("kustomize")
        .arg(&base)
        .output()
        .expect("kubectl not found (its `kubectl kustomize` builds the base): install kubectl");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let kustomized = dir.path().join("kustomized.yaml");
    std::fs::write(&kustomized, &built.stdout).unwrap();
    let kustomized_text = String::from_utf8_lossy(&built.stdout);
    assert!(kustomized_text.contains("completionMode: Indexed"));
    assert!(kustomized_text.contains("auto/$(SEGMENTS)"));
    kubernetes_validate(&[&rendered, &kustomized]);
    assert!(yaml.contains("completionMode: Indexed"));
    // Mistakes fail at render time, not in N pods.
    let (code, _) = regbench(&[
        "k8s",
        "render",
        "--parallelism",
        "0",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["k8s", "render", plan.to_str().unwrap(), "--", "--rate", "x"]);
    assert_eq!(code, 2);
}

/// The pod command of `regbench k8s render`'s Job, as the kubelet runs it in pod `index`: the
/// plan from the ConfigMap at /plan/plan.toml (here the file itself), JOB_COMPLETION_INDEX set.
fn pod(args: &[String], plan: &std::path::Path, index: usize) -> std::process::Child {
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "/plan/plan.toml" => plan.display().to_string(),
            _ => a.clone(),
        })
        .collect();
    Command::new(BIN)
        .args(&args)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn merge(stdin: &[u8], extra: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .arg("merge")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Four local "pods" at 4 × 500/s run the rendered Job's command; their stdout, concatenated as
/// `kubectl logs` prints it, merges into a report with exactly the 6,000 requests one process at
/// 2,000/s sends, thresholds judged once on the whole, and histograms that are the shards' sum.
#[test]
fn four_pods_merge_into_the_run_one_process_makes() {
    let _machine = machine();
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), &t.url());
    let (code, yaml) = regbench(&[
        "k8s",
        "render",
        "--parallelism",
        "4",
        "--start-in",
        "2s",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let args_line = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: "))
        .expect("the Job's args");
    let args: Vec<String> = serde_json::from_str(args_line).unwrap();
    let pods: Vec<_> = (0..4).map(|i| pod(&args, &plan, i)).collect();
    let mut logs = Vec::new();
    let mut shards = Vec::new();
    for p in pods {
        let out = p.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.extend_from_slice(&out.stdout);
        shards.push(serde_json::from_slice::<Value>(&out.stdout).unwrap());
    }
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["run"]["segment"]["index"], i);
        assert_eq!(
            s["overall"]["requests"], 1500,
            "pod {i}: a quarter of 2000/s for 3 s"
        );
    }
    let merged_json = dir.path().join("merged.json");
    let (code, text, err) = merge(
        &logs,
        &[
            "-",
            "-o",
            &format!("json={}", merged_json.display()),
            "-o",
            "text",
        ],
    );
    assert_eq!(code, Some(0), "{err}{text}");
    assert!(text.contains("merged       4 processes"), "{text}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged_json).unwrap()).unwrap();
    assert_valid(&m);
    assert_eq!(m["overall"]["requests"], 6000);
    assert_eq!(m["overall"]["status_codes"]["200"], 6000);
    assert_eq!(m["run"]["shards"], 4);
    assert_eq!(m["run"]["segment"]["count"], 1);
    let series: u64 = m["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(series, 6000, "the per-second series adds up");
    // Thresholds judged once, on the whole: a rate only the whole run reaches fails in each shard
    // (which still exits 0: a shard is not the verdict) and passes merged.
    let rps = |r: &Value| {
        r["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == "rps")
            .unwrap()
            .clone()
    };
    assert_eq!(rps(&m)["pass"], true, "{}", rps(&m));
    for s in &shards {
        assert_eq!(rps(s)["pass"], false, "{}", rps(s));
    }
    // The merged histogram is the shards' sum, bit for bit.
    let mut sum: Option<regbench::aggregate::Summary> = None;
    for s in &shards {
        let one: regbench::aggregate::Summary =
            serde_json::from_value(s["histograms"]["summary"].clone()).unwrap();
        match sum.as_mut() {
            Some(total) => *total += &one,
            None => sum = Some(one),
        }
    }
    let merged: regbench::aggregate::Summary =
        serde_json::from_value(m["histograms"]["summary"].clone()).unwrap();
    assert_eq!(Some(merged), sum);

    // One process at 2,000/s against the same target sends the same requests.
    let (code, one) = regbench_json(&["run", plan.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(one["overall"]["requests"], m["overall"]["requests"]);
    assert_eq!(one["steps"][0]["requests"], m["steps"][0]["requests"]);
    for r in [&one, &m] {
        let p50 = r["overall"]["latency"]["p50_ns"].as_u64().unwrap();
        assert!(p50 < 200_000_000, "p50 {p50} ns");
    }

    // Missing, doubled and foreign shards are refused, naming the shard.
    let shard_text: Vec<String> = shards.iter().map(|s| format!("{s:#}\n")).collect();
    let (code, _, err) = merge(shard_text[..3].concat().as_bytes(), &["-"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard 3/4 missing"), "{err}");
    let doubled = [shard_text.concat(), shard_text[1].clone()].concat();
    let (code, _, err) = merge(doubled.as_bytes(), &["-"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard 1/4 is given twice"), "{err}");
    let mut foreign = shards[2].clone();
    foreign["run"]["seed"] = Value::from(1u64);
    let mixed = [
        shard_text[0].clone(),
        shard_text[1].clone(),
        format!("{foreign:#}\n"),
        shard_text[3].clone(),
    ]
    .concat();
    let (code, _, err) = merge(mixed.as_bytes(), &["-"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a shard of the same run"), "{err}");
    // A corrupt segment is an error naming it, never a panic or a huge allocation.
    for (field, value, says) in [
        (
            "index",
            7u64,
            "run.segment.index: expected an index below the count",
        ),
        ("count", 1u64 << 50, "not a run's"),
    ] {
        let mut bad = shards[0].clone();
        bad["run"]["segment"][field] = Value::from(value);
        let text = [format!("{bad:#}\n"), shard_text[1..].concat()].concat();
        let (code, _, err) = merge(text.as_bytes(), &["-"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
