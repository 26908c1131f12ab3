//! Issue 19: `regbench compare` as a CI gate — ten reruns of the same build against the same target
//! pass it, a target 30% slower fails it (exit 3); its outputs and refusals.

use serde_json::Value;

use crate::util::*;

fn run(target: &Served, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    let (code, _) = regbench(&[
        "run",
        &format!("{}/v2/", target.url()),
        "--rate",
        "100",
        "-z",
        "5s",
        "-o",
        &format!("json={}", path.display()),
        "--quiet",
    ]);
    assert_eq!(code, 0);
    path
}

fn compare(base: &std::path::Path, new: &std::path::Path, extra: &[&str]) -> (u8, Value) {
    let mut args = vec![
        "compare",
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, out) = regbench(&args);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

#[test]
fn reruns_pass_the_gate_and_a_30_percent_slower_target_fails_it() {
    let _machine = machine();
    let dir = tempfile::tempdir().unwrap();
    // Latency mostly the target's own (50 ms), so that other tests loading the machine move it
    // little; the slower target adds 30%.
    let target = Served::start(&["--latency", "50ms"]);
    let slower = Served::start(&["--latency", "65ms"]);
    let base = run(&target, dir.path(), "base");
    for i in 0..10 {
        let again = run(&target, dir.path(), &format!("rerun-{i}"));
        let (code, c) = compare(&base, &again, &[]);
        assert_eq!(code, 0, "rerun {i} failed the gate: {c:#}");
        assert_eq!(c["verdict"], "no regression beyond the limit");
    }
    let slow = run(&slower, dir.path(), "slow");
    let (code, c) = compare(&base, &slow, &[]);
    assert_eq!(code, 3, "{c:#}");
    let p50 = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["step"] == "all" && x["metric"] == "p50")
        .unwrap();
    assert_eq!(p50["verdict"], "regressed", "{p50}");
    let change = p50["change"].as_f64().unwrap();
    assert!((0.2..0.4).contains(&change), "{p50}");
    let ci = p50["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() > 0.0 && ci[1].as_f64().unwrap() >= change);
    // A generous limit lets the same slowdown through: significant, but within it.
    let (code, c) = compare(
        &base,
        &slow,
        &["--max-regression", "50%", "--metric", "p50"],
    );
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["changes"][0]["verdict"], "worse within limit");
    // Text and HTML say the same.
    let html = dir.path().join("compare.html");
    let (code, text) = regbench(&[
        "compare",
        base.to_str().unwrap(),
        slow.to_str().unwrap(),
        "-o",
        &format!("html={}", html.display()),
    ]);
    assert_eq!(code, 3);
    assert!(
        text.contains("FAIL") && text.contains("regressed"),
        "{text}"
    );
    let probe = chromium_probe(&html);
    assert_eq!(probe["charts"], 1, "{probe}");
    assert_eq!(probe["drawn"], 1, "{probe}");
}

#[test]
fn compare_refuses_what_it_cannot_judge() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{}").unwrap();
    let (code, _) = regbench(&["compare", bogus.to_str().unwrap(), bogus.to_str().unwrap()]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["compare", "a.json", "b.json", "-o", "hdr"]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["compare", "a.json", "b.json", "--metric", "p100"]);
    assert_eq!(code, 2);
    let (code, _) = regbench(&["compare", "a.json", "b.json", "--max-regression", "-5%"]);
    assert_eq!(code, 2);
}
