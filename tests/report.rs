use regbench::serve::ServeConfig;
use serde_json::Value;

use crate::util::*;

#[test]
fn json_report_validates_against_the_schema() {
    let t = demo_target(ServeConfig::default());
    let (_, ok) = regbench_json(&["run", &format!("{}/v2/", t.url()), "-c", "2", "-n", "100"]);
    assert_valid(&ok);
    // Errors, several status codes and the refused path exercise the optional parts.
    let (_, refused) = regbench_json(&[
        "run",
        &format!("http://{}/", closed_port()),
        "-c",
        "1",
        "-n",
        "3",
    ]);
    assert_valid(&refused);
    assert_eq!(ok["schema_version"], 2);
}

#[test]
fn schema_rejects_a_broken_report() {
    let t = demo_target(ServeConfig::default());
    let (_, mut r) = regbench_json(&["run", &format!("{}/v2/", t.url()), "-c", "1", "-n", "5"]);
    r["overall"]["latency"]["p99_ns"] = Value::from("fast");
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(
        !validator.is_valid(&r),
        "the schema must catch a wrong type"
    );
}

#[test]
fn json_histograms_merge_back_to_the_reported_numbers() {
    let t = demo_target(ServeConfig::default());
    let (_, r) = regbench_json(&["run", &format!("{}/v2/", t.url()), "-c", "2", "-n", "500"]);
    let summary: regbench::aggregate::Summary =
        serde_json::from_value(r["histograms"]["summary"].clone())
            .expect("the summary deserialises");
    let total = summary.total();
    assert_eq!(total.n_requests, 500);
    let d = regbench::aggregate::Dist::of(&total.latency);
    assert_eq!(
        d.quantile("p99").unwrap().as_nanos() as u64,
        r["overall"]["latency"]["p99_ns"].as_u64().unwrap()
    );
}

#[test]
fn text_report_has_every_section() {
    let t = demo_target(ServeConfig::default());
    let (code, out) = regbench(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-c",
        "2",
        "-n",
        "200",
        "--quiet",
    ]);
    assert_eq!(code, 0);
    for needle in [
        "requests     200 in",
        "req/s",
        "Latency",
        "p99.99",
        "Latency histogram",
        "[200]        200",
        "Connections",
        "new 2, reused 198",
        "validity",
        "closed model",
    ] {
        assert!(out.contains(needle), "missing '{needle}' in:\n{out}");
    }
}

#[test]
fn output_files_are_written_atomically() {
    let t = demo_target(ServeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let text = dir.path().join("r.txt");
    let (code, stdout) = regbench(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-n",
        "20",
        "-c",
        "1",
        "--quiet",
        "-o",
        &format!("json={}", json.display()),
        "-o",
        &format!("text={}", text.display()),
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["overall"]["requests"], 20);
    assert!(std::fs::read_to_string(&text)
        .unwrap()
        .contains("requests     20 in"));
    assert!(
        stdout.contains("Summary"),
        "stdout still gets the text report"
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "no temporary files left behind");
}
