//! A watched process's resources from /proc (and its cgroup's from /sys/fs/cgroup): cumulative CPU
//! ticks and context switches (turned into rates by the caller), RSS and its peak, threads, open
//! file descriptors. Linux only, as the rest of the tool.

use std::path::PathBuf;

/// One reading of one process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// user + system CPU, in seconds since the process started.
    pub cpu_s: f64,
    pub rss: u64,
    /// VmHWM: the resident set's high-water mark.
    pub rss_peak: u64,
    pub threads: u64,
    /// Open file descriptors (`None` when /proc/PID/fd cannot be read: another user's process).
    pub fds: Option<u64>,
    pub ctx_voluntary: u64,
    pub ctx_involuntary: u64,
    /// Field 22 of /proc/PID/stat: tells a process from a later one that got its PID.
    pub start_ticks: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Reads `pid`; `None` once it has exited.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut r = parse_stat(&stat, clock_ticks(), page_size())?;
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        // In kB; the peak is only here.
        r.rss_peak = status_field(&status, "VmHWM").map_or(r.rss, |kb| kb * 1024);
    }
    // The process's own status counts its main thread's switches only: sum its threads'.
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                r.ctx_voluntary += status_field(&status, "voluntary_ctxt_switches").unwrap_or(0);
                r.ctx_involuntary +=
                    status_field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
            }
        }
    }
    r.fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64);
    Some(r)
}

/// A numeric field of a /proc status file (`VmHWM:  1234 kB`).
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
}

/// /proc/PID/stat: the fields after the command name (which may hold spaces and parentheses).
fn parse_stat(stat: &str, ticks: f64, page: u64) -> Option<Reading> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // A zombie has exited; only its parent has not reaped it yet.
    if matches!(f.first(), Some(&("Z" | "X"))) {
        return None;
    }
    // f[0] is field 3 (state): field N is f[N - 3].
    let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(Reading {
        cpu_s: (n(14)? + n(15)?) as f64 / ticks,
        threads: n(20)?,
        start_ticks: n(22)?,
        rss: n(24)? * page,
        ..Reading::default()
    })
}

/// The processes named `name`: their `comm` (which the kernel cuts at 15 bytes) or their program's
/// file name. This process is never one of them.
pub fn find_by_name(name: &str) -> Vec<u32> {
    // comm is cut at 15 bytes; a longer name is found by argv[0].
    pids_where(|pid| {
        comm(pid).as_deref() == Some(name) || program_name(pid).as_deref() == Some(name)
    })
}

/// The processes whose command line (arguments joined by spaces) contains `text`; not this one.
pub fn find_by_cmdline(text: &str) -> Vec<u32> {
    pids_where(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let args: Vec<String> = c
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.join(" ").contains(text)
        })
    })
}

/// Every process but this one for which `keep` holds, in PID order.
fn pids_where(keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && keep(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// The file name of argv[0].
fn program_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    let argv0 = std::str::from_utf8(argv0).ok()?;
    let base = argv0.rsplit('/').next()?;
    (!base.is_empty()).then(|| base.to_string())
}

/// `comm` of a PID, for a watch's default name.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// The files of a process's cgroup that tell its memory and CPU throttling: cgroup v2, or v1's memory
/// and cpu hierarchies. Not the root cgroup (that is the whole machine).
#[derive(Clone, Debug, Default)]
pub struct Cgroup {
    memory: Option<PathBuf>,
    cpu_stat: Option<PathBuf>,
    /// v2 counts throttled time in µs (`throttled_usec`), v1 in ns (`throttled_time`).
    v2: bool,
}

/// A reading of a cgroup.
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupReading {
    pub memory: Option<u64>,
    /// Seconds the cgroup's CPU quota held it back, cumulative.
    pub throttled_s: Option<f64>,
}

impl Cgroup {
    pub fn of(pid: u32) -> Cgroup {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return Cgroup::default();
        };
        let root = PathBuf::from("/sys/fs/cgroup");
        let mut cg = Cgroup::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if path == "/" {
                continue;
            }
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                // v2: mounted at /sys/fs/cgroup, or at /sys/fs/cgroup/unified beside v1.
                let base = match root.join("cgroup.controllers").exists() {
                    true => root.join(rel),
                    false => root.join("unified").join(rel),
                };
                if base.join("memory.current").exists() {
                    cg.memory = Some(base.join("memory.current"));
                    cg.cpu_stat = Some(base.join("cpu.stat")).filter(|p| p.exists());
                    cg.v2 = true;
                }
            } else if !cg.v2 {
                let dir = root.join(controllers).join(rel);
                let names: Vec<&str> = controllers.split(',').collect();
                if names.contains(&"memory") && dir.join("memory.usage_in_bytes").exists() {
                    cg.memory = Some(dir.join("memory.usage_in_bytes"));
                }
                if names.contains(&"cpu") && dir.join("cpu.stat").exists() {
                    cg.cpu_stat = Some(dir.join("cpu.stat"));
                }
            }
        }
        cg
    }

    pub fn read(&self) -> CgroupReading {
        let memory = self
            .memory
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
        let (key, scale) = match self.v2 {
            true => ("throttled_usec", 1e-6),
            false => ("throttled_time", 1e-9),
        };
        let throttled_s = self.cpu_stat.as_ref().and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .map(|v| v as f64 * scale)
        });
        CgroupReading {
            memory,
            throttled_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1270 0 0 0 250 50 0 0 20 0 \
                    7 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let r = parse_stat(stat, 100.0, 4096).unwrap();
        assert_eq!(r.cpu_s, 3.0);
        assert_eq!(r.threads, 7);
        assert_eq!(r.start_ticks, 123456);
        assert_eq!(r.rss, 2560 * 4096);
    }

    #[test]
    fn reads_this_process() {
        let r = read(std::process::id()).unwrap();
        assert!(r.rss > 0 && r.rss_peak >= r.rss && r.threads >= 1);
        assert!(r.fds.unwrap() >= 3);
        assert!(read(u32::MAX).is_none());
    }
}
