//! Judging the host for a planned load: what it will run out of (file descriptors, local ports in
//! TIME_WAIT, listen queues, conntrack), and what slows a generator (frequency scaling, steal), each
//! finding with its severity and the exact command that fixes it. Pure: facts in, findings out.

use std::fmt::Write as _;

use crate::host::{HostFacts, TIME_WAIT_SECS};

/// The load a run will put on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Connections this process may hold open at once.
    pub connections: u64,
    /// Open model: requests per second (the peak), if known.
    pub rate: Option<f64>,
    pub keepalive: bool,
    /// The target is on this host (loopback): its listen queue is this kernel's.
    pub loopback: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Info,
    Warn,
    /// The planned load will fail on this host as it is.
    Block,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warn => "WARN",
            Severity::Block => "BLOCK",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub topic: &'static str,
    pub message: String,
    /// Commands that fix it (shell), if any.
    pub fix: Vec<String>,
}

/// How long connection tracking keeps a closed connection (nf_conntrack_tcp_timeout_time_wait's
/// default).
const CONNTRACK_TIME_WAIT_SECS: u64 = 120;

/// File descriptors regbench keeps beyond its connections (timers, epoll, stdio, report files).
pub const RESERVED_FDS: u64 = 64;

/// How long a closed connection holds its local port: TIME_WAIT, or about a second when
/// `tcp_tw_reuse` lets a new connection take a TIME_WAIT port (it must be a second old).
fn port_hold_secs(h: &HostFacts, load: &Load) -> u64 {
    match h.tcp_tw_reuse {
        Some(1) => 1,
        Some(2) if load.loopback => 1,
        _ => TIME_WAIT_SECS,
    }
}

/// Every finding for `load` on host `h`, most severe first.
pub fn check(h: &HostFacts, load: &Load) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, topic, message: String, fix: Vec<String>| {
        out.push(Finding {
            severity,
            topic,
            message,
            fix,
        })
    };
    let n = load.connections;

    // File descriptors: one per connection.
    if let Some((soft, hard)) = h.nofile {
        let need = n + RESERVED_FDS;
        if hard < need {
            add(
                Severity::Block,
                "open files",
                format!(
                    "{n} connections need {need} file descriptors; this process may open {hard} \
                     (hard limit): expect too-many-open-files"
                ),
                vec![
                    format!("ulimit -n {need}   # as root, or raise the hard limit in /etc/security/limits.conf"),
                    format!("LimitNOFILE={need}   # in the systemd unit that runs regbench"),
                ],
            );
        } else {
            let raised = match soft < hard {
                true => format!("; regbench raises the soft limit {soft} to it at start"),
                false => String::new(),
            };
            add(
                Severity::Ok,
                "open files",
                format!("limit {hard} covers {n} connections (+{RESERVED_FDS} reserved){raised}"),
                Vec::new(),
            );
        }
    }

    // Local ports: one per open connection, and each closed one holds its port for a while.
    if let Some(ports) = h.ports() {
        let range = h.port_range.unwrap_or_default();
        let widen = format!(
            "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"   # now {} {}",
            range.0, range.1
        );
        if n > ports {
            add(
                Severity::Block,
                "local ports",
                format!(
                    "{n} connections to one address:port need {n} local ports; the range has \
                     {ports}: expect addr-not-available"
                ),
                vec![widen.clone()],
            );
        }
        if !load.keepalive {
            let hold = port_hold_secs(h, load);
            let in_use = h.time_wait.unwrap_or(0);
            let free = ports.saturating_sub(in_use);
            match load.rate {
                Some(rate) if rate * hold as f64 > free as f64 => {
                    let need = rate * hold as f64;
                    let lasts = free as f64 / rate.max(1e-9);
                    add(
                        Severity::Block,
                        "local ports",
                        format!(
                            "--no-keepalive at {} /s to one address:port needs ~{} ports in {hold} s of \
                             TIME_WAIT; you have {} free ({} in the range, {in_use} in TIME_WAIT \
                             now): expect addr-not-available after ~{lasts:.1} s",
                            group(rate.round() as u64),
                            group(need.round() as u64),
                            group(free),
                            group(ports),
                        ),
                        vec![
                            widen.clone(),
                            "sysctl -w net.ipv4.tcp_tw_reuse=1   # new connections may take TIME_WAIT ports".into(),
                            "or keep connections alive (drop --no-keepalive)".into(),
                        ],
                    );
                }
                Some(rate) => add(
                    Severity::Ok,
                    "local ports",
                    format!(
                        "--no-keepalive at {} /s holds ~{} ports ({hold} s each); {} are free",
                        group(rate.round() as u64),
                        group((rate * hold as f64).round() as u64),
                        group(free)
                    ),
                    Vec::new(),
                ),
                None => add(
                    Severity::Warn,
                    "local ports",
                    format!(
                        "--no-keepalive opens a connection per request and each closed one holds its \
                         port {hold} s; {free} ports are free, so more than {} requests/s will run out \
                         (give --rate to check the plan)",
                        group(free / hold.max(1))
                    ),
                    vec![widen.clone()],
                ),
            }
        } else if n <= ports {
            add(
                Severity::Ok,
                "local ports",
                format!("{n} kept-alive connections fit the {ports} local ports"),
                Vec::new(),
            );
        }
    }

    if let Some(tw) = h.time_wait.filter(|&tw| tw > 0) {
        add(
            Severity::Info,
            "TIME_WAIT",
            format!(
                "{tw} sockets in TIME_WAIT now (each holds a local port for {TIME_WAIT_SECS} s)"
            ),
            Vec::new(),
        );
    }

    // A target on this host listens with this kernel's queue limits.
    if load.loopback {
        if let Some(max) = h.somaxconn.filter(|&m| m < n) {
            add(
                Severity::Warn,
                "listen queue",
                format!(
                    "net.core.somaxconn is {max}: a local target's accept queue holds at most {max} \
                     connections, and a burst of {n} connects may overflow it (ListenOverflows, then \
                     resets or slow connects)"
                ),
                vec![format!("sysctl -w net.core.somaxconn={}", n.next_power_of_two().max(4096))],
            );
        }
        if let Some(max) = h.tcp_max_syn_backlog.filter(|&m| m < n) {
            add(
                Severity::Warn,
                "listen queue",
                format!("net.ipv4.tcp_max_syn_backlog is {max}, below {n} concurrent connects"),
                vec![format!(
                    "sysctl -w net.ipv4.tcp_max_syn_backlog={}",
                    n.next_power_of_two().max(4096)
                )],
            );
        }
        if let Some(o) = h.listen_overflows.filter(|&o| o > 0) {
            add(
                Severity::Info,
                "listen queue",
                format!("{o} listen queue overflows since boot (TcpExt ListenOverflows)"),
                Vec::new(),
            );
        }
    }

    if let Some((count, max)) = h.conntrack {
        // A closed connection's entry stays CONNTRACK_TIME_WAIT_SECS, port reuse or not.
        let need = if load.keepalive {
            n
        } else {
            load.rate
                .map_or(n, |r| (r * CONNTRACK_TIME_WAIT_SECS as f64) as u64)
        };
        if count + need > max {
            add(
                Severity::Warn,
                "conntrack",
                format!(
                    "the connection-tracking table holds {max} and has {count}; this load adds \
                     ~{need}: new connections will be dropped when it is full"
                ),
                vec![format!(
                    "sysctl -w net.netfilter.nf_conntrack_max={}",
                    (count + need).next_power_of_two()
                )],
            );
        }
    }

    let settings: Vec<String> = [
        ("tcp_fin_timeout", h.tcp_fin_timeout),
        ("tcp_tw_reuse", h.tcp_tw_reuse),
        ("somaxconn", h.somaxconn),
        ("tcp_max_syn_backlog", h.tcp_max_syn_backlog),
        ("netdev_max_backlog", h.netdev_max_backlog),
    ]
    .iter()
    .filter_map(|(k, v)| Some(format!("{k} {}", (*v)?)))
    .collect();
    if !settings.is_empty() {
        add(Severity::Info, "kernel", settings.join(", "), Vec::new());
    }
    add(
        Severity::Info,
        "cpus",
        format!("{} available to this process", h.cpus),
        Vec::new(),
    );
    if let Some(g) = h.governor.as_deref().filter(|g| *g != "performance") {
        add(
            Severity::Warn,
            "cpu frequency",
            format!(
                "the scaling governor is '{g}': clock changes under load add jitter to timings"
            ),
            vec!["cpupower frequency-set -g performance".into()],
        );
    }
    if let Some(s) = h.steal_share.filter(|&s| s > 0.01) {
        add(
            Severity::Warn,
            "cpu steal",
            format!(
                "the hypervisor took {:.1}% of CPU time since boot: another tenant competes for these \
                 cores, so timings may wobble",
                s * 100.0
            ),
            Vec::new(),
        );
    }
    if let Some((total, avail)) = h.memory {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let severity = if avail < 512 << 20 {
            Severity::Warn
        } else {
            Severity::Info
        };
        add(
            severity,
            "memory",
            format!("{:.1} GiB available of {:.1} GiB", gib(avail), gib(total)),
            Vec::new(),
        );
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// The most severe finding's severity.
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// The fixes that are sysctl settings, as a snippet for /etc/sysctl.d/.
pub fn sysctl_snippet(findings: &[Finding]) -> String {
    let mut out =
        String::from("# regbench doctor: settings for the planned load (review before applying)\n");
    for f in findings.iter().filter(|f| f.severity >= Severity::Warn) {
        for fix in &f.fix {
            if let Some(setting) = fix.strip_prefix("sysctl -w ") {
                let setting = setting.split("   #").next().unwrap_or(setting).trim();
                let _ = writeln!(out, "{}", setting.replacen('=', " = ", 1));
            }
        }
    }
    out
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            nofile: Some((1024, 20_000)),
            port_range: Some((32_768, 60_999)),
            tcp_tw_reuse: Some(0),
            somaxconn: Some(4096),
            tcp_max_syn_backlog: Some(2048),
            time_wait: Some(0),
            listen_overflows: Some(0),
            cpus: 2,
            memory: Some((24 << 30, 20 << 30)),
            ..HostFacts::default()
        }
    }

    fn load(connections: u64, rate: Option<f64>, keepalive: bool) -> Load {
        Load {
            connections,
            rate,
            keepalive,
            loopback: false,
        }
    }

    #[test]
    fn predicts_port_exhaustion_without_keepalive() {
        let f = check(&host(), &load(50, Some(20_000.0), false));
        assert_eq!(worst(&f), Severity::Block);
        let ports = f.iter().find(|f| f.topic == "local ports").unwrap();
        assert!(
            ports.message.contains("needs ~1,200,000 ports in 60 s")
                && ports.message.contains("28,232 free")
                && ports.message.contains("after ~1.4 s"),
            "{}",
            ports.message
        );
        assert!(sysctl_snippet(&f).contains("net.ipv4.ip_local_port_range = \"1024 65535\""));
        // With keep-alive, 50 connections are nothing.
        assert_eq!(
            worst(&check(&host(), &load(50, Some(20_000.0), true))),
            Severity::Info
        );
    }

    #[test]
    fn descriptors_and_reuse() {
        let f = check(&host(), &load(30_000, None, true));
        let fds = f.iter().find(|f| f.topic == "open files").unwrap();
        assert_eq!(fds.severity, Severity::Block);
        assert!(fds.fix[0].starts_with("ulimit -n 30064"));
        // tcp_tw_reuse=1: a port is free again after a second.
        let mut h = host();
        h.tcp_tw_reuse = Some(1);
        assert_eq!(
            worst(&check(&h, &load(50, Some(20_000.0), false))),
            Severity::Info
        );
    }
}
