use crate::util::*;

#[test]
fn demo_runs_a_mixed_registry_plan_and_exits_0() {
    let _machine = machine();
    let (code, out) = regbench(&["demo", "--duration", "2s", "-c", "8", "--quiet"]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "Summary",
        "Steps",
        "pull/token",
        "pull/layer",
        "catalog/page",
        "servers",
        "expected auth challenges",
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
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap();
    // An authenticated pull: the ping's challenge, one token per VU and image (warm), then
    // every manifest and blob verified.
    let pulls = step("pull")["requests"].as_u64().unwrap();
    assert!(pulls > 10, "{pulls} pulls");
    assert_eq!(step("pull")["success"], pulls);
    assert!(step("pull/ping")["auth_challenges"].as_u64().unwrap() >= pulls);
    let tokens = step("pull/token")["requests"].as_u64().unwrap();
    assert!(
        (1..=3 * 2).contains(&tokens),
        "warm tokens: {tokens} for 2 VUs × 3 images"
    );
    assert!(step("pull/layer")["requests"].as_u64().unwrap() >= 3 * pulls);
    assert_eq!(step("pull")["scenario"], "image-pulls");
    // The watch APIs: changes pushed over a WebSocket and as Server-Sent Events, all delivered.
    let (_, r) = regbench_json(&["demo", "--duration", "2s", "-c", "4"]);
    let steps = r["steps"].as_array().unwrap();
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap();
    for (session, each) in [
        ("ws-watch", "ws-watch/message"),
        ("sse-watch", "sse-watch/event"),
    ] {
        let n = step(session)["success"].as_u64().unwrap();
        assert!(n >= 1, "{session}: {}", step(session));
        assert!(
            step(each)["delivered"].as_u64().unwrap() >= 10 * n,
            "{each}"
        );
    }
    let reads = step("service-registry (iteration)");
    assert_eq!(
        reads["requests"],
        step("servers")["requests"],
        "one iteration per walk of the flow"
    );
}
