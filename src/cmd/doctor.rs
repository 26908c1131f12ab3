//! `regbench doctor`: judges this host for a planned load (analyze/doctor.rs) and prints each finding
//! with its fix, or a sysctl snippet. Reads only; changes nothing.

use std::io::Write;

use anyhow::anyhow;

use crate::analyze::doctor::{self, Severity};
use crate::app::{exit, run_failed, usage, Failure};
use crate::cli::DoctorArgs;
use crate::host::HostFacts;
use crate::plan::Target;

pub(crate) fn cmd_doctor(a: &DoctorArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    if a.rate.is_some_and(|r| !r.is_finite() || r < 0.0) {
        return Err(usage(anyhow!(
            "--rate must be a non-negative number of requests per second"
        )));
    }
    let target = a
        .url
        .as_deref()
        .map(Target::parse)
        .transpose()
        .map_err(usage)?;
    // A target named by a loopback address or `localhost` listens on this host's queues.
    let loopback = target.as_ref().is_some_and(|t| {
        t.host == "localhost"
            || t.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let load = doctor::Load {
        connections: a.connections,
        rate: a.rate,
        keepalive: !a.no_keepalive,
        loopback,
    };
    let findings = doctor::check(&HostFacts::read(), &load);
    let text = match a.format.as_str() {
        "sysctl" => doctor::sysctl_snippet(&findings),
        _ => render(&findings, &load, target.as_ref()),
    };
    out.write_all(text.as_bytes()).map_err(run_failed)?;
    Ok(match doctor::worst(&findings) {
        Severity::Block => exit::THRESHOLDS,
        Severity::Warn => exit::RUN_FAILED,
        _ => exit::OK,
    })
}

fn render(findings: &[doctor::Finding], load: &doctor::Load, target: Option<&Target>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let rate = load.rate.map_or(String::new(), |r| format!(", {r}/s"));
    let to = target.map_or(String::new(), |t| format!(" to {}", t.url));
    let _ = writeln!(
        o,
        "regbench doctor: {} connections, {}{rate}{to}",
        load.connections,
        if load.keepalive {
            "keep-alive"
        } else {
            "no keep-alive"
        }
    );
    for f in findings {
        let _ = writeln!(
            o,
            "  {:<5} {:<14} {}",
            f.severity.label(),
            f.topic,
            f.message
        );
        for fix in &f.fix {
            let _ = writeln!(o, "        fix: {fix}");
        }
    }
    let verdict = match doctor::worst(findings) {
        Severity::Block => "the planned load will fail on this host as it is (exit 3)",
        Severity::Warn => "warnings (exit 1)",
        _ => "nothing in the way (exit 0)",
    };
    let _ = writeln!(o, "  => {verdict}");
    o
}
