//! Small shared helpers with no stage of their own: duration and size parsing, a tiny PRNG, process
//! resource usage, atomic file writes. Nothing here knows about HTTP or measurement.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Parses `1.5s`, `500ms`, `100us`, `2m`, `1h`, `250ns`; a bare number means seconds.
/// `sha256:` and the lowercase hex of a finished hash.
pub fn sha256_digest(hash: sha2::Sha256) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in sha2::Digest::finalize(hash) {
        // invariant: writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Whether a finished hash is `digest` (`sha256:` and 64 hex digits), compared without allocating.
pub fn sha256_is(hash: sha2::Sha256, digest: &[u8]) -> bool {
    let Some(hex) = digest.strip_prefix(b"sha256:") else {
        return false;
    };
    let got = sha2::Digest::finalize(hash);
    hex.len() == 64
        && got.iter().zip(hex.chunks(2)).all(|(b, h)| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                == Some(*b)
        })
}

/// Parses a duration with its unit: `500ms`, `30s`, `2m`, `1.5h`, `200us`, or several together as
/// humantime writes them (`1m30s`, `1h5m`). A bare number other than 0 is an error, never guessed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let mut rest = s;
    let mut secs = 0.0;
    let mut units = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        let value: f64 = num.parse().map_err(|_| {
            format!("'{s}' is not a duration (expected e.g. 500ms, 30s, 2m, 1m30s)")
        })?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            // A bare number means seconds to one tool and milliseconds to another: say which.
            "" if value != 0.0 || units > 0 => {
                return Err(format!(
                    "'{s}' has no unit: write {num}ms or {num}s (units: ns, us, ms, s, m, h)"
                ))
            }
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "'{s}' has unknown unit '{unit}' (expected ns, us, ms, s, m or h)"
                ))
            }
        };
        secs += value * scale;
        units += 1;
        rest = next;
    }
    if units == 0 {
        return Err(format!(
            "'{s}' is not a duration (expected e.g. 500ms, 30s, 2m, 1m30s)"
        ));
    }
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a count with an optional suffix, as oha takes them: `5000`, `10k`, `1.5M`, `2G`
/// (k = 1,000). The result must be a whole number.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count (expected e.g. 5000, 10k, 1M)"))?;
    let n = v * scale;
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > u64::MAX as f64 {
        return Err(format!("'{s}' is not a whole, non-negative count"));
    }
    Ok(n as u64)
}

/// Parses a rate, per second unless a unit says otherwise: `200`, `50/s`, `3000/m`, `10/h`, `5k/s`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) => (n, 60.0),
        Some((n, "h")) => (n, 3600.0),
        Some((_, u)) => {
            return Err(format!(
                "'{s}': unknown unit '/{u}' (expected /s, /m or /h, e.g. 50/s)"
            ))
        }
        None => (t, 1.0),
    };
    let v = match num.parse::<f64>() {
        Ok(v) => v,
        Err(_) => parse_count(num).map_err(|_| {
            format!("'{s}' is not a rate (expected requests per second, e.g. 200, 50/s, 3000/m)")
        })? as f64,
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' is not a non-negative rate"));
    }
    Ok(v / per)
}

/// Parses a share: `5%` or `0.05`, above 0 and below 1.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        format!("'{s}' is not a share (expected a percentage such as 5% or a number such as 0.05)")
    })?;
    if !(v > 0.0 && v < 1.0) {
        return Err(format!("'{s}' must be above 0% and below 100%"));
    }
    Ok(v)
}

/// Parses an amount of bytes that may have a fraction: `256MiB`, `1.5GiB`, `4.8e+07`, `100MB`.
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("'{s}' is not a size (expected e.g. 256MiB, 1.5GiB, 4.8e+07)"))?;
    let scale = byte_unit(unit).ok_or_else(|| {
        format!("'{s}' has unknown unit '{unit}' (expected B, KiB, MiB, GiB, KB, MB, GB)")
    })?;
    Ok(value * scale as f64)
}

/// The multiplier of a size's unit (`MiB`, `MB`, `k`, none), case-insensitive.
fn byte_unit(unit: &str) -> Option<u64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    })
}

/// Parses a byte size: `512`, `64KiB`, `1MiB`, `10MB`, `2k`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (expected e.g. 4096, 64KiB, 1MiB)"))?;
    let scale = byte_unit(unit)
        .ok_or_else(|| format!("'{s}' has unknown unit '{unit}' (expected B, KiB, MiB, GiB)"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses an absolute time: unix milliseconds (`1764000000000`) or RFC 3339
/// (`2026-11-24T12:00:00Z`, `2026-11-24T13:00:00.250+01:00`).
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    use std::time::UNIX_EPOCH;
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|_| format!("'{s}' is too large"))?;
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    let bad =
        || format!("'{s}' is not a time (expected RFC 3339 like 2026-11-24T12:00:00Z, or unix ms)");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r).and_then(|x| x.parse().ok()).ok_or_else(bad)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    // Fraction of a second, then the zone.
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return Err(bad());
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().map_err(|_| bad())?;
    }
    let offset_s: i64 = match &s[i..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && &zone[3..4] == ":" =>
        {
            let h: i64 = zone[1..3].parse().map_err(|_| bad())?;
            let m: i64 = zone[4..6].parse().map_err(|_| bad())?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    if secs < 0 {
        return Err(format!("'{s}' is before 1970"));
    }
    Ok(UNIX_EPOCH + Duration::new(secs as u64, nanos as u32))
}

/// `2026-12-08T00:39:49Z`: RFC 3339 in UTC, whole seconds (what `--start-at` reads).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::civil::from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-12-08 00:39:49 UTC`: a time for people, in UTC.
pub fn fmt_utc(t: std::time::SystemTime) -> String {
    rfc3339(t).replacen('T', " ", 1).replace('Z', " UTC")
}

/// SplitMix64: a tiny, fast, seedable generator. Each worker and each server thread owns one, so no
/// generator state is shared between threads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// CPU time and peak memory, from getrusage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: Duration,
    /// Peak resident set size in bytes (process-wide even for a thread query: the kernel keeps it per
    /// process).
    pub max_rss: u64,
    /// Times the thread (or process) was preempted while it could still run: another task took
    /// the CPU.
    pub n_involuntary_switches: u64,
}

fn rusage(who: libc::c_int) -> Usage {
    // SAFETY: getrusage only writes into the zeroed struct we pass; on failure we return zeros.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Usage::default();
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss: ru.ru_maxrss as u64 * 1024,
        n_involuntary_switches: ru.ru_nivcsw.max(0) as u64,
    }
}

/// How long the calling thread has waited on a run queue — ready to run, but another task had its
/// CPU — and how many times it got to run, from /proc/thread-self/schedstat (its second and third
/// fields). `None` where the kernel does not report it (no CONFIG_SCHEDSTATS / not Linux).
pub fn thread_run_queue_wait() -> Option<(Duration, u64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().skip(1);
    let ns: u64 = f.next()?.parse().ok()?;
    let runs: u64 = f.next()?.parse().ok()?;
    Some((Duration::from_nanos(ns), runs))
}

/// CPU used so far by the calling thread (Linux RUSAGE_THREAD).
pub fn thread_usage() -> Usage {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU used so far by the whole process.
pub fn process_usage() -> Usage {
    rusage(libc::RUSAGE_SELF)
}

/// Current resident set size in bytes, from /proc/self/statm (0 if unavailable).
pub fn current_rss() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// The largest request body file (`-D`) regbench reads: bodies are held in memory, once.
pub const MAX_BODY_FILE: u64 = 256 << 20;
/// The largest scenario or data file regbench reads.
pub const MAX_INPUT_FILE: u64 = 256 << 20;

/// Reads a whole file of at most `limit` bytes; a larger one (or an endless one, `/dev/zero`) is an
/// error that says so, not an out-of-memory abort.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("it is larger than the limit of {}", fmt_bytes(limit as f64)),
        ));
    }
    Ok(out)
}

/// [`read_bounded`] for text.
pub fn read_text_bounded(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// The directory and file name of an output path.
fn split_output(path: &Path) -> io::Result<(&Path, String)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
    })?;
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// The temporary file `write_atomic` writes `name` through: hidden, and not ending like the final
/// name, so a glob for the reports (`*.json`) never picks up a half-written one.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp.{pid}")
}

/// Checks, before a run, that `write_atomic(path)` will be able to write there (the directory exists
/// and takes a new file), and removes temporary files a killed earlier run left for this name.
pub fn prepare_output(path: &Path) -> io::Result<()> {
    let (dir, name) = split_output(path)?;
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory",
        ));
    }
    let prefix = format!(".{name}.tmp.");
    for entry in std::fs::read_dir(dir)?.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| !process_alive(pid));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let probe = dir.join(temp_name(&name, std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Whether a process with this id exists (a signal 0 probe; EPERM means it exists but is not ours).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename. A reader
/// never sees a half-written report, and a crash leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = split_output(path)?;
    let tmp = dir.join(temp_name(&name, std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Formats a duration for humans with three significant digits: `812µs`, `12.3ms`, `1.20s`.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Formats a byte count with binary units.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_format_and_round_trip() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56Z",
            "2026-12-08T00:39:49Z",
        ] {
            let t = parse_time(text).unwrap();
            assert_eq!(fmt_utc(t), text.replace('T', " ").replace('Z', " UTC"));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h5m").unwrap(), Duration::from_secs(3900));
        assert!(
            parse_duration("1m30").is_err(),
            "a bare number after a unit"
        );
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert!(
            parse_count("1.5").is_err() && parse_count("-3").is_err() && parse_count("x").is_err()
        );
        assert_eq!(parse_rate("50/s").unwrap(), 50.0);
        assert_eq!(parse_rate("3000/m").unwrap(), 50.0);
        assert_eq!(parse_rate("7200/h").unwrap(), 2.0);
        assert_eq!(parse_rate("2k").unwrap(), 2000.0);
        assert!(parse_rate("5/d").is_err() && parse_rate("fast").is_err());
        let bare = parse_duration("7").unwrap_err();
        assert!(bare.contains("7ms or 7s"), "{bare}");
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn times() {
        use std::time::UNIX_EPOCH;
        let ms = |s: &str| {
            parse_time(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ms("2000-03-01T00:00:00Z"), 951_868_800_000);
        assert_eq!(ms("2026-11-24T12:00:00.250Z"), 1_795_521_600_250);
        assert_eq!(ms("2026-11-24T13:00:00.250+01:00"), 1_795_521_600_250);
        assert_eq!(ms("1795521600250"), 1_795_521_600_250);
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(
            parse_time("2026-11-24T12:00:00").is_err(),
            "a zone is required"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("2k").unwrap(), 2000);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn rng_is_deterministic_and_roughly_uniform() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mean: f64 = (0..10_000).map(|_| a.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn human_formats() {
        assert_eq!(fmt_duration(Duration::from_micros(812)), "812µs");
        assert_eq!(fmt_duration(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_bytes(2048.0), "2.00 KiB");
    }
}
