//! Issue 16: a service registry's whole plan in one file — events (a sync trigger, a config write),
//! the windows their probes close (sync time, reload detection), latency during vs outside, and
//! downtime — against the demo target in its own process.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const PLAN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/service-registry-plan.toml"
);

/// The demo target as the example plan expects it: 1,000 servers whose sync takes 1 s, 5 ms of
/// latency, a watched config file; `extra` adds knobs.
fn registry(config: &std::path::Path, extra: &[&str]) -> Served {
    let mut knobs = vec![
        "--servers",
        "1000",
        "--sync-per-server",
        "1ms",
        "--latency",
        "5ms",
        "--config",
        config.to_str().unwrap(),
        "--config-poll",
        "100ms",
    ];
    knobs.extend_from_slice(extra);
    Served::start(&knobs)
}

fn run_plan(target: &Served, config: &std::path::Path, extra: &[&str]) -> (u8, Value) {
    let base = format!("base_url=http://{}", target.addr);
    let file = format!("config_file={}", config.display());
    let cmdline = format!("target_cmdline=serve --addr {}", target.addr);
    let mut args = vec!["run", PLAN, "-e", &base, "-e", &file, "-e", &cmdline];
    args.extend_from_slice(extra);
    regbench_json(&args)
}

fn status(target: &Served) -> Value {
    http(target.addr, "GET", "/registry/status", &[]).json()
}

fn windows<'r>(r: &'r Value, name: &str) -> Vec<&'r Value> {
    r["events"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["occurrences"].as_array().unwrap())
        .flat_map(|o| o["windows"].as_array().unwrap())
        .filter(|w| w["name"] == name)
        .collect()
}

/// The example plan passes against the demo target; the same target with syncs that slow queries
/// 3× fails the during-sync gate (exit 3), naming the step and both sides. Sync time is within 10%
/// of the target's own, over ≥ 3 syncs; reload detection within 100 ms of the target's reload.
#[test]
fn the_service_registry_plan_passes_and_a_slowing_sync_fails_its_gate() {
    let _machine = machine();
    let dir = tempfile::tempdir().unwrap();
    let (calm_conf, slow_conf) = (dir.path().join("calm.conf"), dir.path().join("slow.conf"));
    let calm = registry(&calm_conf, &[]);
    let slow = registry(&slow_conf, &["--sync-slowdown", "3"]);
    // One after the other: run together, each would load the machine during the other's syncs
    // (they fall at the same seconds), and that is not what the gate is about.
    let (code, r) = run_plan(&calm, &calm_conf, &[]);
    let (slow_code, s) = run_plan(&slow, &slow_conf, &["-z", "10s"]);
    let failed: Vec<&Value> = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["pass"] == false)
        .collect();
    assert_eq!(code, 0, "failed: {failed:#?}");

    // Sync time: every window closed by its probe, within 10% of what the target says a sync
    // takes (and took, by its own clock).
    let st = status(&calm);
    let configured = st["sync_duration_ms"].as_f64().unwrap();
    let took = st["last_sync_duration_ms"].as_f64().unwrap();
    assert!((took - configured).abs() <= 0.05 * configured, "{st}");
    let syncs = windows(&r, "sync");
    assert!(syncs.len() >= 3, "{syncs:?}");
    for w in &syncs {
        assert_eq!(w["converged"], true, "{w}");
        let ms = w["duration_ns"].as_f64().unwrap() / 1e6;
        assert!(
            (ms - took).abs() <= 0.1 * took,
            "sync window {ms:.0} ms, the target's sync {took} ms"
        );
    }

    // Reload detection: the write's time plus the window is the target's own reload time.
    let reload = r["events"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "reload")
        .unwrap();
    let last = reload["occurrences"].as_array().unwrap().last().unwrap();
    let detect = last["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "reload-detect")
        .unwrap();
    let seen_ms =
        last["fired_unix_ms"].as_f64().unwrap() + detect["duration_ns"].as_f64().unwrap() / 1e6;
    let reloaded_ms = st["config_loaded_unix_ms"].as_f64().unwrap();
    assert!(
        seen_ms >= reloaded_ms - 5.0 && seen_ms - reloaded_ms <= 100.0,
        "detected at {seen_ms:.0}, the target reloaded at {reloaded_ms:.0}"
    );
    assert_eq!(st["config_version"], 2);

    // During vs outside, per step, in the JSON.
    let get = step(&r, "get-by-id");
    for w in ["sync", "reload-detect", "reload-sync", "outside"] {
        assert!(
            get["during"][w]["requests"].as_u64().unwrap() > 0,
            "{w}: {}",
            get["during"]
        );
    }
    assert_eq!(r["downtime"]["longest_ns"], 0);

    // The slowed target fails exactly the during-sync gate, which names the step and both sides.
    let failed: Vec<&Value> = s["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["pass"] == false)
        .collect();
    assert_eq!(slow_code, 3);
    let gate = failed
        .iter()
        .find(|t| t["expr"].as_str().unwrap().contains("during sync"))
        .unwrap_or_else(|| panic!("{failed:#?}"));
    assert_eq!(gate["metric"], "latency{step:get-by-id}");
    assert_eq!(gate["unit"], "ratio");
    assert!(gate["observed"].as_f64().unwrap() > 1.5, "{gate}");
    let detail = gate["detail"].as_str().unwrap();
    assert!(
        detail.contains("p95 during sync") && detail.contains("outside"),
        "{detail}"
    );
}

/// A restart of the target inside a window is downtime with its duration, and fails a zero-
/// downtime threshold; the same plan without the restart passes it.
#[test]
fn a_restart_inside_a_window_is_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restart.toml");
    let plan = |addr: std::net::SocketAddr| {
        format!(
            "[defaults]\nbase_url = \"http://{addr}\"\ntimeout = \"1s\"\n\n\
             [[scenario]]\nname = \"get\"\nexecutor = \"constant-arrival-rate\"\nrate = 50\n\
             duration = \"5s\"\nmax_vus = 10\n[scenario.request]\nname = \"get-server\"\n\
             url = \"/v1/registry/00000001-0000-4000-8000-000000000001\"\n\n\
             [[event]]\nname = \"sync\"\nat = \"1s\"\n\
             request = {{ method = \"POST\", url = \"/registry/sync\" }}\n\
             [[event.window]]\nurl = \"/registry/status\"\ninterval = \"20ms\"\ntimeout = \"3s\"\n\
             until = {{ json = {{ \"/phase\" = \"idle\" }} }}\n\n\
             [thresholds]\n\"downtime\" = [\"max<1ms\"]\n\"errors{{during:sync}}\" = [\"count==0\"]\n"
        )
    };
    let knobs = ["--servers", "1000", "--sync-per-server", "2ms"];
    let mut restarted = Served::start(&knobs);
    let steady = Served::start(&knobs);
    let (restart_file, steady_file) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&restart_file, plan(restarted.addr)).unwrap();
    std::fs::write(&steady_file, plan(steady.addr)).unwrap();
    let _ = file;
    let ((code, r), (steady_code, s), gap) = std::thread::scope(|scope| {
        let a = scope.spawn(|| regbench_json(&["run", restart_file.to_str().unwrap()]));
        let b = scope.spawn(|| regbench_json(&["run", steady_file.to_str().unwrap()]));
        // Inside the sync window (1 s – 3 s): down for about 400 ms.
        std::thread::sleep(Duration::from_millis(1600));
        let addr = restarted.addr;
        let down = Instant::now();
        restarted.kill();
        std::thread::sleep(Duration::from_millis(400));
        restarted = Served::start_at(addr, &knobs);
        let gap = down.elapsed();
        (a.join().unwrap(), b.join().unwrap(), gap)
    });
    assert_eq!(code, 3, "{}", r["thresholds"]);
    let longest = Duration::from_nanos(r["downtime"]["longest_ns"].as_u64().unwrap());
    // The first failure comes at most one request interval (20 ms per worker) after the kill, the
    // first success at most one after the restart.
    assert!(
        longest + Duration::from_millis(150) >= gap && longest <= gap + Duration::from_millis(300),
        "downtime {longest:?} for a restart of {gap:?}"
    );
    let during = &step(&r, "get-server")["during"]["sync"];
    assert!(during["failed"].as_u64().unwrap() > 0, "{during}");
    assert!(during["refused"].as_u64().unwrap() > 0, "{during}");
    let downtime = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "downtime")
        .unwrap();
    assert_eq!(downtime["pass"], false);

    assert_eq!(steady_code, 0, "{}", s["thresholds"]);
    assert_eq!(s["downtime"]["longest_ns"], 0);
    assert_eq!(windows(&s, "sync").len(), 1);
    assert_eq!(windows(&s, "sync")[0]["converged"], true);
}

/// Command and write actions run at their times; a failing or overrunning command is reported with
/// why, not fatal; a window whose probe never converges closes at its timeout, unconverged.
#[test]
fn actions_run_at_their_times_and_failures_are_reported() {
    let target = demo_target(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let written = dir.path().join("written.conf");
    let file = dir.path().join("actions.toml");
    std::fs::write(
        &file,
        format!(
            "[defaults]\nbase_url = \"http://{}\"\n\n[[scenario]]\nname = \"s\"\n\
             executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"3s\"\nmax_vus = 2\n\
             [scenario.request]\nurl = \"/v2/\"\n\n\
             [[event]]\nname = \"touch\"\nat = \"500ms\"\ncommand = [\"sh\", \"-c\", \"date +%s%N > {}\"]\n\n\
             [[event]]\nname = \"fails\"\nat = \"1s\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n\n\
             [[event]]\nname = \"hangs\"\nat = \"1s\"\ncommand = [\"sleep\", \"10\"]\ntimeout = \"300ms\"\n\n\
             [[event]]\nname = \"write\"\nat = \"1500ms\"\nwrite = {{ path = \"{}\", content = \"v = 2\\n\" }}\n\
             [[event.window]]\nname = \"never\"\nurl = \"/registry/status\"\ntimeout = \"700ms\"\n\
             until = {{ json = {{ \"/phase\" = \"never\" }} }}\n",
            target.addr(),
            marker.display(),
            written.display()
        ),
    )
    .unwrap();
    let (code, r) = regbench_json(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(marker.exists(), "the command ran");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "v = 2\n");
    let occ = |name: &str| {
        let e = r["events"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap();
        e["occurrences"][0].clone()
    };
    let touch = occ("touch");
    assert_eq!(touch["action_ok"], true);
    let fired = touch["fired_ns"].as_f64().unwrap() / 1e6;
    assert!((490.0..700.0).contains(&fired), "fired at {fired} ms");
    assert!(occ("fails")["action_error"]
        .as_str()
        .unwrap()
        .contains("exit status: 3"));
    assert!(occ("hangs")["action_error"]
        .as_str()
        .unwrap()
        .contains("was killed"));
    let never = &occ("write")["windows"][0];
    assert_eq!(never["converged"], false);
    let ms = never["duration_ns"].as_f64().unwrap() / 1e6;
    assert!(
        (690.0..800.0).contains(&ms),
        "closed at its timeout: {ms} ms"
    );
    let conv = &r["events"]["convergence"][0];
    assert_eq!(
        (conv["window"].as_str(), conv["unconverged"].as_u64()),
        (Some("never"), Some(1))
    );
}
