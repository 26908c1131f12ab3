//! The pipeline's import rules (../shared/DESIGN.md §2, docs/design-notes.md "Layout"): a module
//! must not use the modules listed against it. Read from the source's own `crate::` paths, test
//! modules (`#[cfg(test)]` to the end of the file) aside.

use std::path::{Path, PathBuf};

/// The client's pipeline above the value types (`sample`, `headers`, `host`).
const PIPELINE: [&str; 10] = [
    "cli",
    "cmd",
    "app",
    "scenario",
    "plan",
    "schedule",
    "engine",
    "registry",
    "aggregate",
    "report",
];

/// The low modules use none of the pipeline and not the demo target.
const ABOVE_VALUES: [&str; 11] = concat(PIPELINE, "serve");

/// The demo target shares nothing with the client, its value types included.
const CLIENT: [&str; 11] = concat(PIPELINE, "sample");

const fn concat(list: [&'static str; 10], one: &'static str) -> [&'static str; 11] {
    let mut out = [one; 11];
    let mut i = 0;
    while i < 10 {
        out[i] = list[i];
        i += 1;
    }
    out
}

/// (module, modules it must not import).
const RULES: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "engine",
            "serve",
            "schedule",
            "aggregate",
            "report",
            "cmd",
            "app",
        ],
    ),
    (
        "scenario",
        &[
            "engine",
            "schedule",
            "aggregate",
            "report",
            "cmd",
            "app",
            "registry",
            "serve",
        ],
    ),
    (
        "plan",
        &[
            "engine", "schedule", "scenario", "cmd", "cli", "app", "registry", "serve", "report",
        ],
    ),
    (
        "schedule",
        &[
            "engine", "report", "cmd", "app", "registry", "scenario", "serve",
        ],
    ),
    (
        "engine",
        &[
            "registry", "scenario", "report", "cmd", "app", "serve", "cli",
        ],
    ),
    (
        "registry",
        &["report", "cmd", "app", "serve", "cli", "scenario"],
    ),
    (
        "aggregate",
        &[
            "report", "engine", "cmd", "app", "registry", "serve", "scenario",
        ],
    ),
    (
        "report",
        &[
            "engine", "schedule", "cmd", "app", "registry", "serve", "scenario",
        ],
    ),
    (
        "analyze",
        &[
            "engine", "report", "cmd", "app", "registry", "serve", "scenario", "schedule",
        ],
    ),
    (
        "telemetry",
        &[
            "engine",
            "report",
            "cmd",
            "app",
            "registry",
            "serve",
            "scenario",
            "schedule",
            "aggregate",
            "analyze",
        ],
    ),
    ("host", &ABOVE_VALUES),
    ("sample", &ABOVE_VALUES),
    ("headers", &ABOVE_VALUES),
    ("serve", &CLIENT),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::NAME` a file uses outside its test module, with the line it is on.
fn uses(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((i + 1, name));
            rest = &rest[at + 7..];
        }
    }
    found
}

#[test]
fn modules_import_only_what_the_pipeline_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (module, banned) in RULES {
        let file = src.join(format!("{module}.rs"));
        let dir = src.join(module);
        let mut files = Vec::new();
        if dir.is_dir() {
            sources(&dir, &mut files);
        }
        if file.is_file() {
            files.push(file);
        }
        assert!(
            !files.is_empty(),
            "no source for module {module}: update RULES"
        );
        for f in files {
            for (line, used) in uses(&f) {
                if banned.contains(&used.as_str()) {
                    broken.push(format!(
                        "{}:{line}: {module} uses crate::{used}",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the pipeline:\n{}",
        broken.join("\n")
    );
}

/// The scan itself sees what it must: a rule that cannot fail is no rule.
#[test]
fn the_import_scan_finds_crate_paths() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.rs");
    std::fs::write(
        &f,
        "use crate::engine::Io; // crate::report in a comment\nfn f() { crate::util::x(); }\n#[cfg(test)]\nmod tests { use crate::report; }\n",
    )
    .unwrap();
    let names: Vec<String> = uses(&f).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["engine", "util"]);
}
