//! Facts about the machine the generator runs on, read from /proc and getrlimit: the limits and
//! kernel settings a load runs out of (file descriptors, local ports, TIME_WAIT, listen queues,
//! conntrack) and the CPU and memory it has. Reads only; `doctor` judges them (analyze/doctor.rs).
//! Every field is `None` where this kernel does not say, never a guess.

use std::path::Path;

/// One reading of the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostFacts {
    /// Open-file limit (soft, hard) of this process.
    pub nofile: Option<(u64, u64)>,
    /// `net.ipv4.ip_local_port_range`: the local ports outgoing connections take.
    pub port_range: Option<(u64, u64)>,
    /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only (the kernel's default).
    pub tcp_tw_reuse: Option<u64>,
    pub tcp_fin_timeout: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    pub netdev_max_backlog: Option<u64>,
    /// `nf_conntrack_count` and `nf_conntrack_max`, when connection tracking is loaded.
    pub conntrack: Option<(u64, u64)>,
    /// TCP sockets in TIME_WAIT now (IPv4 and IPv6).
    pub time_wait: Option<u64>,
    /// TcpExt ListenOverflows and ListenDrops since boot (/proc/net/netstat).
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
    pub cpus: usize,
    /// cpufreq scaling governor of CPU 0 (absent in most VMs).
    pub governor: Option<String>,
    /// Share of CPU time stolen by the hypervisor since boot (/proc/stat).
    pub steal_share: Option<f64>,
    /// MemTotal and MemAvailable, bytes.
    pub memory: Option<(u64, u64)>,
}

/// How long a closed connection's local port stays in TIME_WAIT on Linux (TCP_TIMEWAIT_LEN: fixed,
/// not `tcp_fin_timeout`).
pub const TIME_WAIT_SECS: u64 = 60;

impl HostFacts {
    /// Reads everything it can now.
    pub fn read() -> HostFacts {
        let sys = |p: &str| read_u64(Path::new("/proc/sys").join(p));
        let (overflows, drops) = listen_counters();
        HostFacts {
            nofile: nofile(),
            port_range: read_pair(Path::new("/proc/sys/net/ipv4/ip_local_port_range")),
            tcp_tw_reuse: sys("net/ipv4/tcp_tw_reuse"),
            tcp_fin_timeout: sys("net/ipv4/tcp_fin_timeout"),
            somaxconn: sys("net/core/somaxconn"),
            tcp_max_syn_backlog: sys("net/ipv4/tcp_max_syn_backlog"),
            netdev_max_backlog: sys("net/core/netdev_max_backlog"),
            conntrack: sys("net/netfilter/nf_conntrack_count")
                .zip(sys("net/netfilter/nf_conntrack_max")),
            time_wait: time_wait(),
            listen_overflows: overflows,
            listen_drops: drops,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            governor: std::fs::read_to_string(
                "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            )
            .ok()
            .map(|s| s.trim().to_string()),
            steal_share: steal_share(),
            memory: memory(),
        }
    }

    /// Local ports an outgoing connection can take.
    pub fn ports(&self) -> Option<u64> {
        self.port_range.map(|(lo, hi)| hi.saturating_sub(lo) + 1)
    }
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_pair(path: &Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>());
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

fn nofile() -> Option<(u64, u64)> {
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0)
            .then_some((lim.rlim_cur as u64, lim.rlim_max as u64))
    }
}

/// Sockets in state 06 (TIME_WAIT) in /proc/net/tcp and tcp6.
fn time_wait() -> Option<u64> {
    let mut n = 0;
    let mut any = false;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(f) else {
            continue;
        };
        any = true;
        n += s
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(3) == Some("06"))
            .count() as u64;
    }
    any.then_some(n)
}

/// TcpExt ListenOverflows and ListenDrops: a header line of names, then a line of values.
fn listen_counters() -> (Option<u64>, Option<u64>) {
    let Ok(s) = std::fs::read_to_string("/proc/net/netstat") else {
        return (None, None);
    };
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = lines.as_slice() else {
        return (None, None);
    };
    let get = |key: &str| {
        let i = names.split_whitespace().position(|n| n == key)?;
        values.split_whitespace().nth(i)?.parse().ok()
    };
    (get("ListenOverflows"), get("ListenDrops"))
}

fn steal_share() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    (total > 0.0).then(|| v.get(7).copied().unwrap_or(0.0) / total)
}

fn memory() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        let l = s.lines().find(|l| l.starts_with(key))?;
        l.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((kib("MemTotal:")? * 1024, kib("MemAvailable:")? * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_linux_host() {
        let h = HostFacts::read();
        let (lo, hi) = h.port_range.expect("ip_local_port_range");
        assert!(lo < hi && hi <= 65535);
        assert!(h.nofile.is_some_and(|(s, hh)| s <= hh));
        assert!(h.time_wait.is_some());
        assert!(h.listen_overflows.is_some() && h.listen_drops.is_some());
        assert!(h.cpus >= 1);
        assert!(h.memory.is_some_and(|(t, a)| a <= t));
    }
}
