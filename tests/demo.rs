use crate::util::*;

#[test]
fn demo_runs_a_mixed_registry_plan_and_exits_0() {
    let (code, out) = regbench(&["demo", "--duration", "2s", "-c", "8", "--quiet"]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "Summary",
        "Steps",
        "manifest-head",
        "catalog",
        "servers",
        "validity",
    ] {
        assert!(out.contains(needle), "missing '{needle}' in:\n{out}");
    }
    let (code, r) = regbench_json(&["demo", "--duration", "1s", "-c", "4"]);
    assert_eq!(code, 0);
    let all = &r["overall"];
    assert!(all["requests"].as_u64().unwrap() > 100, "{all}");
    assert_eq!(
        all["success"], all["requests"],
        "every demo request is answered 2xx: {all}"
    );
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10, "9 steps and the whole iteration");
    assert_eq!(steps[9]["name"], "registry-reads (iteration)");
    assert_eq!(
        steps[9]["requests"], steps[0]["requests"],
        "one iteration per walk of the flow"
    );
    assert_eq!(steps[9]["scenario"], "registry-reads");
}
