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
    assert_eq!(r["steps"].as_array().unwrap().len(), 9);
}
