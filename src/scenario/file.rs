//! The scenario file's shape, as serde reads it from TOML. Unknown keys are refused; values that need
//! a precise error location keep their span. Meaning and validation are in `load`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub data: BTreeMap<String, Spanned<DataSpec>>,
    #[serde(rename = "scenario", default)]
    pub scenarios: Vec<Spanned<ScenarioSpec>>,
    /// In file order, so the report's table follows the file.
    #[serde(default)]
    pub thresholds: indexmap::IndexMap<String, Spanned<Vec<Spanned<ThresholdEntry>>>>,
    /// The target's processes and metrics endpoints, sampled each second.
    #[serde(rename = "watch", default)]
    pub watches: Vec<Spanned<WatchSpec>>,
    /// Actions at set times, and the windows their probes close.
    #[serde(rename = "event", default)]
    pub events: Vec<Spanned<EventSpec>>,
}

/// `[[event]]`: one action — `request`, `write` or `command` — at `at`, again `every`, opening the
/// `[[event.window]]`s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub name: Spanned<String>,
    pub at: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    pub request: Option<Spanned<EventRequestSpec>>,
    pub write: Option<Spanned<WriteSpec>>,
    pub command: Option<Spanned<Vec<String>>>,
    /// A command's time limit.
    pub timeout: Option<Spanned<String>>,
    #[serde(rename = "window", default)]
    pub windows: Vec<Spanned<WindowSpec>>,
}

/// An event's request, or a window's probe: a path on the target (joined to `base_url`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequestSpec {
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub check: Option<Spanned<CheckSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    pub path: Spanned<String>,
    pub content: Option<Spanned<String>>,
}

/// `[[event.window]]`: open from the event until `until` holds on the probe's answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Default: the event's name.
    pub name: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Between probes [default: 50ms].
    pub interval: Option<Spanned<String>>,
    /// The window closes unconverged after this [default: 60s].
    pub timeout: Option<Spanned<String>>,
    pub until: Spanned<UntilSpec>,
}

/// A probe's conditions, all of which must hold: a check's keys (repeated from `CheckSpec`: serde
/// cannot flatten into a struct that denies unknown fields), and values that must have changed since
/// just before the event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UntilSpec {
    pub status: Option<Vec<u16>>,
    pub body_contains: Option<String>,
    #[serde(default)]
    pub json: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub json_exists: Vec<String>,
    #[serde(default)]
    pub header: Vec<String>,
    /// JSON pointers whose values must differ from their values just before the event.
    #[serde(default)]
    pub changed: Vec<String>,
    #[serde(default)]
    pub body_changed: bool,
    /// Response headers whose values must differ from theirs just before the event (`ETag`).
    #[serde(default)]
    pub header_changed: Vec<String>,
}

/// `[[watch]]`: a process (`pid` or `cmd`) and/or a metrics endpoint (`scrape`, `metrics`). Strings
/// may use constants and `{{env.NAME}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    pub name: Option<Spanned<String>>,
    pub pid: Option<Spanned<PidSpec>>,
    pub cmd: Option<Spanned<String>>,
    /// Processes whose command line contains this.
    pub cmdline: Option<Spanned<String>>,
    pub scrape: Option<Spanned<String>>,
    #[serde(default)]
    pub metrics: Vec<Spanned<String>>,
}

/// A PID as a number, or as text (`"{{env.REGISTRY_PID}}"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PidSpec {
    Number(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub keepalive: Option<bool>,
    /// Ask for gzip-compressed responses (`Accept-Encoding: gzip`) [default: true], as hey, oha and
    /// k6 do; false sends no Accept-Encoding, as wrk and `--disable-compression`.
    pub compression: Option<bool>,
    pub max_lag: Option<Spanned<String>>,
    /// Thresholds and the watched target's trends are judged after this.
    pub warmup: Option<Spanned<String>>,
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<toml::Value>>,
    pub tls: Option<TlsSpec>,
    /// "auto" (ALPN on https://), "1.1", or "2" (h2 over TLS, h2c prior knowledge on http://).
    pub http: Option<Spanned<String>>,
    /// HTTP/2 streams per connection.
    pub streams: Option<Spanned<usize>>,
    /// Credentials and token policy of registry flow steps.
    pub registry: Option<RegistrySpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    pub user: Option<Spanned<String>>,
    /// Constants and `{{env.NAME}}` only.
    pub password: Option<Spanned<String>>,
    /// "warm" (cached per scope until expiry) or "cold" (a new token every iteration).
    pub token: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    #[serde(default)]
    pub insecure: bool,
    pub cacert: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub sni: Option<String>,
    pub min: Option<Spanned<String>>,
    pub max: Option<Spanned<String>>,
    pub resumption: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub file: Spanned<String>,
    pub pick: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: Spanned<String>,
    pub executor: Spanned<String>,
    pub vus: Option<Spanned<Amount>>,
    pub duration: Option<Spanned<String>>,
    pub stages: Option<Spanned<Vec<StageSpec>>>,
    pub start_vus: Option<Spanned<Amount>>,
    pub rate: Option<Spanned<Amount>>,
    pub start_rate: Option<Spanned<Amount>>,
    pub max_vus: Option<Spanned<Amount>>,
    pub arrival: Option<Spanned<String>>,
    pub iterations: Option<Spanned<Amount>>,
    pub max_duration: Option<Spanned<String>>,
    pub start_after: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub request: Option<Spanned<StepSpec>>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Spanned<StepSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub duration: Spanned<String>,
    pub target: Spanned<Amount>,
}

/// A count or a rate as a number, or as text with the command line's suffixes and units
/// (`iterations = "10k"`, `rate = "3000/m"`): one parser for flags and files (util::parse_count,
/// util::parse_rate).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(f64),
    Text(String),
}

impl Amount {
    /// As a rate per second.
    pub fn rate(&self) -> Result<f64, String> {
        match self {
            Amount::Number(n) => Ok(*n),
            Amount::Text(t) => crate::util::parse_rate(t),
        }
    }

    /// As a whole count (may be negative only as a number, for the caller to refuse).
    pub fn count(&self) -> Result<f64, String> {
        match self {
            Amount::Number(n) if n.fract() == 0.0 => Ok(*n),
            Amount::Number(n) => Err(format!("{n} is not a whole number")),
            Amount::Text(t) => crate::util::parse_count(t).map(|n| n as f64),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: Option<Spanned<String>>,
    /// "http" (the default), a registry flow ("oci-pull", "oci-push", "oci-catalog", "oci-tags") or
    /// a service-registry call ("service-list", "service-get", "service-status", "service-sync").
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub think: Option<Spanned<String>>,
    #[serde(default)]
    pub extract: BTreeMap<String, Spanned<ExtractSpec>>,
    pub check: Option<Spanned<CheckSpec>>,
    pub paginate: Option<Spanned<PaginateSpec>>,
    pub verify_digest: Option<Spanned<String>>,
    // Registry flows.
    /// `REPO:TAG` or `REPO@DIGEST` (oci-pull, oci-push).
    pub image: Option<Spanned<String>>,
    /// The repository whose tags oci-tags lists.
    pub repo: Option<Spanned<String>>,
    pub platform: Option<Spanned<String>>,
    pub parallel: Option<Spanned<i64>>,
    pub range: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub layers: Option<Spanned<i64>>,
    pub layer_size: Option<Spanned<String>>,
    pub chunk: Option<Spanned<String>>,
    pub mount_from: Option<Spanned<String>>,
    pub page_size: Option<Spanned<i64>>,
    pub max_pages: Option<Spanned<i64>>,
    // Service registries.
    pub limit: Option<Spanned<i64>>,
    /// service-get: the server's id or name.
    pub server: Option<Spanned<String>>,
    // gRPC.
    /// `package.Service/Method`.
    pub call: Option<Spanned<String>>,
    /// `.proto` file(s) defining it, relative to the scenario file.
    pub proto: Option<Spanned<OneOrMany>>,
    /// A compiled descriptor set, relative to the scenario file.
    pub protoset: Option<Spanned<String>>,
    /// Directories imports are searched in, relative to the scenario file.
    #[serde(default)]
    pub import_paths: Vec<String>,
    /// The request message as JSON (protobuf's JSON mapping).
    pub message: Option<Spanned<String>>,
    /// Sent as `grpc-timeout`.
    pub deadline: Option<Spanned<String>>,
    // WebSocket.
    /// Subscribe: messages to receive per connection.
    pub receive: Option<Spanned<i64>>,
    /// Hold: how long each connection is held idle.
    pub hold: Option<Spanned<String>>,
    /// Subscribe: a JSON pointer to each message's send time (Unix nanoseconds).
    pub timestamp: Option<Spanned<String>>,
    // Server-Sent Events.
    /// Events to read per iteration.
    pub events: Option<Spanned<i64>>,
    /// Reopenings of an ended stream allowed per iteration.
    pub reconnects: Option<Spanned<i64>>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl StepSpec {
    /// The keys this step sets, with their spans, for refusing the ones its type does not take.
    pub fn keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        fn span<T>(
            k: &'static str,
            v: &Option<Spanned<T>>,
        ) -> Option<(&'static str, std::ops::Range<usize>)> {
            v.as_ref().map(|v| (k, v.span()))
        }
        let maps = [
            ("headers", self.headers.values().next().map(|v| v.span())),
            ("extract", self.extract.values().next().map(|v| v.span())),
        ];
        [
            span("method", &self.method),
            span("url", &self.url),
            span("body", &self.body),
            span("check", &self.check),
            span("paginate", &self.paginate),
            span("verify_digest", &self.verify_digest),
            span("image", &self.image),
            span("repo", &self.repo),
            span("platform", &self.platform),
            span("parallel", &self.parallel),
            span("range", &self.range),
            span("token", &self.token),
            span("layers", &self.layers),
            span("layer_size", &self.layer_size),
            span("chunk", &self.chunk),
            span("mount_from", &self.mount_from),
            span("page_size", &self.page_size),
            span("max_pages", &self.max_pages),
            span("limit", &self.limit),
            span("server", &self.server),
            span("call", &self.call),
            span("proto", &self.proto),
            span("protoset", &self.protoset),
            span("message", &self.message),
            span("deadline", &self.deadline),
            span("receive", &self.receive),
            span("hold", &self.hold),
            span("timestamp", &self.timestamp),
            span("events", &self.events),
            span("reconnects", &self.reconnects),
        ]
        .into_iter()
        .flatten()
        .chain(maps.into_iter().filter_map(|(k, s)| s.map(|s| (k, s))))
        .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginateSpec {
    #[serde(default)]
    pub link: bool,
    pub cursor: Option<String>,
    pub param: Option<String>,
    pub max_pages: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    pub json: Option<String>,
    pub header: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub status: Option<Vec<u16>>,
    pub body_contains: Option<String>,
    pub body_matches: Option<String>,
    #[serde(default)]
    pub json: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub json_exists: Vec<String>,
    #[serde(default)]
    pub header: Vec<String>,
    pub duration_below: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ThresholdEntry {
    Expr(String),
    Full(ThresholdFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdFull {
    /// k6 writes it `threshold`.
    #[serde(alias = "threshold")]
    pub expr: String,
    #[serde(default, alias = "abortOnFail")]
    pub abort_on_fail: bool,
    #[serde(alias = "delayAbortEval")]
    pub grace: Option<String>,
}
