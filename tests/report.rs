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
    assert_eq!(ok["schema_version"], 3);
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

/// Issue 18: `-o csv=FILE` (per step per second, and a summary beside it) and `-o hdr=FILE` (an
/// HdrHistogram interval log) agree with the JSON; the log is read by an independent
/// implementation, Python's `hdrhistogram` (installed by scripts/test.sh).
#[test]
fn csv_and_hdr_logs_agree_with_the_json() {
    let target = demo_target(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let (csv, hdr) = (dir.path().join("r.csv"), dir.path().join("r.hdr"));
    let url = format!("http://{}/v2/", target.addr());
    let (code, r) = regbench_json(&[
        "run",
        &url,
        "--rate",
        "100",
        "-z",
        "3s",
        "-o",
        &format!("csv={}", csv.display()),
        "-o",
        &format!("hdr={}", hdr.display()),
    ]);
    assert_eq!(code, 0);
    let requests = r["steps"][0]["requests"].as_u64().unwrap();
    let series = std::fs::read_to_string(&csv).unwrap();
    let mut lines = series.lines();
    assert_eq!(
        lines.next(),
        Some("t_s,step,requests,failed,dropped,latency_p50_ms,latency_p95_ms,latency_p99_ms,latency_max_ms")
    );
    let per_second: u64 = lines
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(per_second, requests);
    let summary = std::fs::read_to_string(dir.path().join("r.summary.csv")).unwrap();
    let row: Vec<&str> = summary.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        (row[0], row[2]),
        ("GET /v2/", requests.to_string().as_str())
    );
    let p99_ms: f64 = row[11].parse().unwrap();
    let json_p99 = r["steps"][0]["latency"]["p99_ns"].as_f64().unwrap() / 1e6;
    assert!((p99_ms - json_p99).abs() < 0.001, "{p99_ms} vs {json_p99}");

    // Each line as it is (a `\` continuation would eat Python's indentation).
    let script = [
        "import sys",
        "from hdrh.log import HistogramLogReader",
        "from hdrh.histogram import HdrHistogram",
        "reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600 * 10**9, 3))",
        "total, n = HdrHistogram(1, 3600 * 10**9, 3), 0",
        "while True:",
        "    h = reader.get_next_interval_histogram()",
        "    if h is None:",
        "        break",
        "    total.add(h)",
        "    n += 1",
        "print(n, total.get_total_count(), total.get_value_at_percentile(99))",
    ]
    .join("\n");
    let out = std::process::Command::new("python3")
        .args(["-c", &script, hdr.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 hdrhistogram failed (install it: pip install hdrhistogram; scripts/test.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(v[0] >= 3, "{text}");
    assert_eq!(v[1], requests);
    assert_eq!(
        v[2] as f64,
        r["steps"][0]["latency"]["p99_ns"].as_f64().unwrap()
    );
}

/// The outputs a run writes into `dir`, to be rendered again.
const FORMATS: [(&str, &str); 6] = [
    ("json", "run.json"),
    ("junit", "run.xml"),
    ("text", "run.txt"),
    ("html", "run.html"),
    ("csv", "run.csv"),
    ("hdr", "run.hlog"),
];

pub(crate) fn outputs(dir: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = FORMATS
        .iter()
        .flat_map(|(f, file)| {
            [
                "-o".to_string(),
                format!("{f}={}", dir.join(file).display()),
            ]
        })
        .collect();
    args.push("--quiet".into());
    args
}

/// Renders the run's JSON again with `regbench report` and checks every format comes out byte for
/// byte as the run wrote it, with the run's exit code.
pub(crate) fn assert_renders_again(dir: &std::path::Path, run_code: u8) {
    let again = dir.join("again");
    std::fs::create_dir(&again).unwrap();
    let mut args = vec![
        "report".to_string(),
        dir.join("run.json").display().to_string(),
    ];
    args.extend(outputs(&again));
    let (code, _) = regbench(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, run_code, "report exits as the run did");
    for (format, file) in FORMATS {
        let (a, b) = (dir.join(file), again.join(file));
        let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(a == b, "{format} differs when rendered again");
    }
    let summary = |d: &std::path::Path| std::fs::read(d.join("run.summary.csv")).unwrap();
    assert!(summary(dir) == summary(&again), "the CSV summary differs");
}

/// The JUnit report validates against the Jenkins xunit-plugin schema (junit-10.xsd, fetched by
/// scripts/test.sh) with xmllint, and has a test case per threshold, per check and for validity,
/// failures saying what was observed against what limit.
fn assert_junit_valid(xml: &std::path::Path, r: &Value) {
    let xsd =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/junit-10.xsd");
    assert!(
        xsd.exists(),
        "{} missing: run scripts/test.sh (it fetches pytest's copy of the schema)",
        xsd.display()
    );
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(xml)
        .output()
        .expect("xmllint not found: apt-get install -y libxml2-utils (scripts/test.sh does)");
    assert!(
        out.status.success(),
        "JUnit report invalid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = std::fs::read_to_string(xml).unwrap();
    let thresholds = r["thresholds"].as_array().unwrap();
    let checks: Vec<&Value> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .collect();
    assert_eq!(
        doc.matches("<testcase ").count(),
        thresholds.len() + checks.len() + 1
    );
    let failed = thresholds.iter().filter(|t| t["pass"] == false).count()
        + checks
            .iter()
            .filter(|c| c["failed"].as_u64().unwrap() > 0)
            .count()
        + usize::from(r["validity"]["valid"] == false);
    assert_eq!(doc.matches("<failure ").count(), failed, "{doc}");
    for t in thresholds.iter().filter(|t| t["pass"] == false) {
        let expr = t["expr"].as_str().unwrap().replace('<', "&lt;");
        assert!(doc.contains(&format!("limit {expr}")), "{doc}");
    }
}

/// The run report's page in headless Chromium: every chart drawn, the sections the run calls for.
fn assert_renders_in_chromium(html: &std::path::Path, r: &Value) {
    let probe = chromium_probe(html);
    // One status chart, one per step that saw requests (up to 12), the spectrum, one per watched
    // series with points.
    let steps = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["requests"].as_u64().unwrap() > 0)
        .count()
        .min(12);
    let series = r["target"]["series"].as_array().map_or(0, |s| {
        s.iter()
            .filter(|s| !s["points"].as_array().unwrap().is_empty())
            .count()
    });
    let charts = 2 + steps + series;
    assert_eq!(probe["charts"], charts, "{probe}");
    assert_eq!(probe["drawn"], charts, "every chart is drawn: {probe}");
    let mut sections = vec!["summary", "over-time", "spectrum", "steps"];
    if !r["thresholds"].as_array().unwrap().is_empty() {
        sections.insert(1, "thresholds");
    }
    if r["target"].is_object() {
        sections.push("target");
    }
    if r["events"].is_object() {
        sections.push("events");
        assert!(
            probe["windows"].as_u64().unwrap() > 0,
            "event windows shaded: {probe}"
        );
    }
    assert_eq!(probe["sections"], serde_json::json!(sections));
}

/// Issue 18: `regbench report RESULT.json` renders a saved result in every format exactly as the run
/// did; the HTML report of each run renders in headless Chromium with every chart drawn, and its
/// JUnit report validates against the schema CI systems use — a
/// closed-model demo with registry flows, and a service-registry plan with open-model scenarios,
/// events and their windows, a watched target and a failed threshold (exit 3 both times).
#[test]
fn saved_results_render_again_exactly_html_draws_every_chart_junit_validates() {
    let _machine = machine();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    std::fs::create_dir(&demo).unwrap();
    let mut args = vec!["demo".to_string(), "--duration".into(), "2s".into()];
    args.extend(outputs(&demo));
    let (code, _) = regbench(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0);
    assert_renders_again(&demo, 0);
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("run.json")).unwrap()).unwrap();
    assert_renders_in_chromium(&demo.join("run.html"), &r);
    assert_junit_valid(&demo.join("run.xml"), &r);

    let plan = dir.path().join("plan");
    std::fs::create_dir(&plan).unwrap();
    let config = dir.path().join("registry.conf");
    let target = Served::start(&[
        "--servers",
        "200",
        "--config",
        config.to_str().unwrap(),
        "--config-poll",
        "100ms",
    ]);
    let mut args: Vec<String> = [
        "run",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/service-registry-plan.toml"
        ),
        "-z",
        "5s",
        "--threshold",
        "latency:p(99)<1us",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "-e".into(),
        format!("base_url={}", target.url()),
        "-e".into(),
        format!("config_file={}", config.display()),
        "-e".into(),
        format!("target_cmdline=serve --addr {}", target.addr),
    ]);
    args.extend(outputs(&plan));
    let (code, _) = regbench(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 3, "the 1 µs threshold fails");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(plan.join("run.json")).unwrap()).unwrap();
    assert!(!r["events"]["events"][0]["occurrences"][0]["windows"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(r["steps"][0]["during"].is_object());
    assert!(!r["target"]["series"].as_array().unwrap().is_empty());
    assert_renders_again(&plan, 3);
}

/// A file that is not a result, or lacks a field, is a usage error naming the field.
#[test]
fn report_names_what_is_wrong_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = demo_target(ServeConfig::default());
    let good = dir.path().join("good.json");
    let (code, _) = regbench(&[
        "run",
        &format!("{}/v2/", t.url()),
        "-n",
        "20",
        "-o",
        &format!("json={}", good.display()),
        "--quiet",
    ]);
    assert_eq!(code, 0);
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    r["run"]["scenarios"][0]
        .as_object_mut()
        .unwrap()
        .remove("window_ns");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
        .args(["report", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run.scenarios[0].window_ns: missing"), "{err}");
    // A series row out of place is a damaged file (merge must not size anything by it).
    let mut holed: Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    holed["time_series"][0]["t_s"] = Value::from(1u64 << 40);
    std::fs::write(&bad, holed.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
        .args(["report", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("time_series[0].t_s: expected 0"));
    // A result from another schema version says so rather than naming a missing field.
    let mut older: Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    older["schema_version"] = Value::from(2);
    std::fs::write(&bad, older.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
        .args(["report", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("schema_version 2: this regbench reads version 3"));
    std::fs::write(&bad, "{\"kind\": \"stress\", \"model\": \"open\"}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regbench"))
        .args(["report", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("steps: missing"));
}
