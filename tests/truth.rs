//! Regressions of issue 13 ("Every run shape tells the truth"): what regbench sends is exactly what the
//! plan says, counted at the target; deadlines, drops, signals and hostile values.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::util::*;

/// One scenario of a generated layout.
struct Layout {
    name: String,
    open: bool,
    vus: usize,
    /// Open: iterations per second for 500 ms; closed: shared iterations.
    amount: u64,
    /// (method, path, X-Step) per step.
    steps: Vec<(&'static str, String, String)>,
    /// Render its URLs per iteration (a template) rather than encode them once.
    templated: bool,
}

impl Layout {
    fn iterations(&self) -> u64 {
        if self.open {
            self.amount / 2
        } else {
            self.amount
        }
    }
}

/// A scenario file for these layouts against `addr`: every step carries a status check.
fn scenario_file(addr: std::net::SocketAddr, layouts: &[Layout]) -> String {
    let mut f = format!("[defaults]\nbase_url = \"http://{addr}\"\ntimeout = \"5s\"\n");
    for l in layouts {
        let _ = writeln!(f, "\n[[scenario]]\nname = \"{}\"", l.name);
        if l.open {
            let _ = writeln!(
                f,
                "executor = \"constant-arrival-rate\"\nrate = {}\nduration = \"500ms\"\nmax_vus = {}",
                l.amount, l.vus
            );
        } else {
            let _ = writeln!(
                f,
                "executor = \"shared-iterations\"\niterations = {}\nvus = {}\nmax_duration = \"20s\"",
                l.amount, l.vus
            );
        }
        for (method, path, step) in &l.steps {
            let _ =
                writeln!(
                f,
                "[[scenario.step]]\nname = \"{step}\"\nmethod = \"{method}\"\nurl = \"{path}{}\"\n\
                 headers = {{ X-Step = \"{step}\" }}\ncheck = {{ status = [200] }}",
                if l.templated { "?it={{iteration}}&vu={{vu}}" } else { "" }
            );
            if *method != "GET" && *method != "DELETE" {
                let _ = writeln!(f, "body = \"{step}\"");
            }
        }
    }
    f
}

/// Runs the layouts on `threads` worker threads and checks that the target saw exactly each
/// scenario's own requests — method, path and step header — as many times as it has iterations, and
/// that every check passed.
fn assert_sends_exactly(layouts: &[Layout], threads: usize, what: &str) {
    let (addr, seen) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout.toml");
    std::fs::write(&path, scenario_file(addr, layouts)).unwrap();
    let threads = threads.to_string();
    let (code, r) = regbench_json(&["run", path.to_str().unwrap(), "--threads", &threads]);
    let mut want = BTreeMap::new();
    for l in layouts {
        for (method, path, step) in &l.steps {
            want.insert(format!("{method} {path} {step}"), l.iterations());
        }
    }
    let got = seen.lock().unwrap().clone();
    assert_eq!(got, want, "{what}: requests counted at the target");
    for l in layouts {
        for (_, _, name) in &l.steps {
            let s = step(&r, name);
            assert_eq!(
                s["requests"],
                l.iterations(),
                "{what}: {name} in the report"
            );
            for c in s["checks"].as_array().unwrap() {
                assert_eq!(c["failed"], 0, "{what}: {name}: {c}");
            }
        }
    }
    assert_eq!(code, 0, "{what}: every response was 200");
}

fn layout(i: usize, open: bool, vus: usize, amount: u64, methods: &[&'static str]) -> Layout {
    Layout {
        templated: i % 2 == 1,
        name: format!("s{i}"),
        open,
        vus,
        amount,
        steps: methods
            .iter()
            .enumerate()
            .map(|(j, m)| (*m, format!("/s{i}/t{j}"), format!("s{i}t{j}")))
            .collect(),
    }
}

/// The reproduction from the issue: a 1-VU scenario listed first, a larger one after it, on 2
/// threads. The worker with no share of the first ran the second with the first's steps.
#[test]
fn issue_13_small_scenario_first_does_not_lend_its_steps_to_the_next() {
    let layouts = [
        layout(0, true, 1, 10, &["POST"]),
        layout(1, true, 10, 100, &["GET"]),
    ];
    for threads in [1, 2, 4] {
        assert_sends_exactly(&layouts, threads, &format!("{threads} threads"));
    }
    // A one-shot trigger (1 VU, 1 iteration) before a closed scenario.
    let layouts = [
        layout(0, false, 1, 1, &["POST"]),
        layout(1, false, 6, 40, &["GET", "PUT"]),
    ];
    assert_sends_exactly(&layouts, 2, "trigger first");
}

/// Random layouts (1–5 scenarios of 1–50 VUs, open and closed, 1–3 steps) on 1–4 threads send exactly
/// their own requests. Seeded: set REGBENCH_LAYOUT_SEED to replay another draw.
#[test]
fn issue_13_random_layouts_send_exactly_their_own_requests() {
    let seed: u64 = std::env::var("REGBENCH_LAYOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let mut rng = regbench::util::Rng::new(seed);
    let mut pick = |n: u64| rng.next_u64() % n;
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    for round in 0..12 {
        let n_sc = 1 + pick(5) as usize;
        let layouts: Vec<Layout> = (0..n_sc)
            .map(|i| {
                let open = pick(2) == 0;
                // Scenarios smaller than the thread count are where workers sit some out.
                let most = if pick(3) == 0 { 3 } else { 50 };
                let vus = 1 + pick(most) as usize;
                let amount = if open {
                    2 * (1 + pick(60))
                } else {
                    1 + pick(80)
                };
                let methods: Vec<&'static str> = (0..1 + pick(3))
                    .map(|_| METHODS[pick(4) as usize])
                    .collect();
                let mut l = layout(i, open, vus, amount, &methods);
                l.templated = pick(2) == 0;
                l
            })
            .collect();
        let threads = 1 + pick(4) as usize;
        let what = format!(
            "seed {seed} round {round}: {threads} threads, {:?}",
            layouts
                .iter()
                .map(|l| (l.open, l.vus, l.amount, l.steps.len(), l.templated))
                .collect::<Vec<_>>()
        );
        assert_sends_exactly(&layouts, threads, &what);
    }
}
