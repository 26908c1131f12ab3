//! What to watch on the target while it is loaded (`--watch-pid`, `--watch-cmd`, `--scrape`,
//! `[[watch]]`): its processes, read from /proc, and its Prometheus metrics. Plain data; the
//! sampling is `telemetry`'s.

use super::Target;

/// One watched target: a name (what thresholds and the report call it), its processes and/or the
/// metrics endpoint it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub name: String,
    pub process: Option<Process>,
    pub scrape: Option<Scrape>,
}

/// Watch names must be unique and fit in a threshold's `{pid:NAME}`: on failure, the index of the
/// watch at fault and why.
pub fn check_names(watches: &[Watch]) -> Result<(), (usize, String)> {
    for (i, w) in watches.iter().enumerate() {
        if watches[..i].iter().any(|o| o.name == w.name) {
            return Err((
                i,
                format!("two watches are named '{}': give each its own name", w.name),
            ));
        }
        if w.name.is_empty() || w.name.contains([',', '{', '}']) {
            return Err((
                i,
                format!(
                    "watch name '{}': no commas or braces (thresholds name it in {{pid:NAME}})",
                    w.name
                ),
            ));
        }
    }
    Ok(())
}

/// Which processes are the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Process {
    Pid(u32),
    /// Every process whose name (`comm`, or its program's file name) is this, found when the run
    /// starts; their resources are summed (a server with worker processes is one target).
    Command(String),
    /// Every process whose command line (arguments joined by spaces) contains this: a Java or
    /// Python server is found by its arguments, not its name.
    CommandLine(String),
}

/// A Prometheus/OpenMetrics endpoint and the series to keep from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrape {
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// `Basic …` from credentials in the URL (which `url` shows as `user:***`).
    pub auth: Option<String>,
    pub metrics: Vec<Selector>,
}

/// The series kept when a scrape names none: the standard process and Go runtime metrics most
/// exporters (docker-registry's among them) expose.
pub const DEFAULT_METRICS: [&str; 5] = [
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "go_goroutines",
    "go_memstats_heap_inuse_bytes",
];

impl Scrape {
    /// `url` must be `http://` (a metrics endpoint on a debug port; TLS is not spoken here).
    pub fn parse(url: &str, metrics: &[String]) -> Result<Scrape, String> {
        let t = Target::parse(url).map_err(|e| e.to_string())?;
        if t.tls {
            return Err(format!(
                "scrape '{url}': only http:// metrics endpoints are read (serve them on a debug port)"
            ));
        }
        let metrics: Result<Vec<Selector>, String> = match metrics.is_empty() {
            true => DEFAULT_METRICS.iter().map(|m| Selector::parse(m)).collect(),
            false => metrics.iter().map(|m| Selector::parse(m)).collect(),
        };
        Ok(Scrape {
            url: t.url,
            host: t.host,
            port: t.port,
            path: t.path,
            auth: t.basic_auth,
            metrics: metrics?,
        })
    }
}

/// A series of a scrape, PromQL-style: `name` or `name{label="value",…}`. A selector that matches
/// several labelled series sums them (a counter's rate, a histogram's buckets, gauges' values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// As written; the series' name in reports and thresholds (`metric{name:…}`).
    pub text: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        let text = s.trim();
        let bad =
            |why: &str| format!("metric '{s}': {why} (expected NAME or NAME{{label=\"value\"}})");
        let (name, labels) = match text.split_once('{') {
            None => (text, ""),
            Some((name, rest)) => (
                name,
                rest.strip_suffix('}')
                    .ok_or_else(|| bad("the labels end with '}'"))?,
            ),
        };
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid_name {
            return Err(bad("not a metric name"));
        }
        let mut pairs = Vec::new();
        for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("a label is label=\"value\""))?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| bad("a label's value is in double quotes"))?;
            pairs.push((k.trim().to_string(), v.to_string()));
        }
        Ok(Selector {
            text: text.to_string(),
            name: name.to_string(),
            labels: pairs,
        })
    }

    /// Whether a sample's labels hold every label this selector names.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| get(k).is_some_and(|have| have == *v))
    }
}

/// The process metrics read for a watched PID, by their names in reports and thresholds.
pub const PROCESS_METRICS: [&str; 9] = [
    "cpu",
    "rss",
    "rss_peak",
    "threads",
    "fds",
    "ctx_voluntary",
    "ctx_involuntary",
    "cgroup_memory",
    "cgroup_throttled",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let s =
            Selector::parse(r#"registry_http_requests_total{code="200", method="get"}"#).unwrap();
        assert_eq!(s.name, "registry_http_requests_total");
        assert_eq!(
            s.labels,
            [
                ("code".into(), "200".into()),
                ("method".into(), "get".into())
            ]
        );
        assert!(s.matches(|k| Some(if k == "code" { "200" } else { "get" }.into())));
        assert!(!s.matches(|k| (k == "code").then(|| "200".into())));
        assert_eq!(Selector::parse("go_goroutines").unwrap().labels, []);
        assert!(Selector::parse("9x").is_err());
        assert!(Selector::parse("x{a=b}")
            .unwrap_err()
            .contains("double quotes"));
        assert!(Selector::parse("x{a=\"b\"").is_err());
    }

    #[test]
    fn scrapes() {
        let s = Scrape::parse("http://127.0.0.1:5001/metrics", &[]).unwrap();
        assert_eq!((s.port, s.path.as_str()), (5001, "/metrics"));
        assert_eq!(s.metrics.len(), DEFAULT_METRICS.len());
        assert!(Scrape::parse("https://x/metrics", &[])
            .unwrap_err()
            .contains("only http://"));
    }
}
