//! Records the commit and the build date for `regbench --version` (no dependencies: `git` when the
//! source is a checkout, "unknown" otherwise; the date from the clock, or SOURCE_DATE_EPOCH).

#[path = "src/civil.rs"]
mod civil;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=REGBENCH_COMMIT={commit}");
    println!("cargo:rustc-env=REGBENCH_BUILD_DATE={}", ymd(secs / 86_400));
    // A new commit is a new version string.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}

/// Days since 1970-01-01 → "YYYY-MM-DD".
fn ymd(days: u64) -> String {
    let (y, m, d) = civil::from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}
