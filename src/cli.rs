//! Stage: cli — what the user typed, validated field by field (ripgrep's "low args"). `app` turns it
//! into a plan. Each flag is documented once, here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::plan::Arrival;
use crate::util::{parse_duration, parse_size};

const RUN_EXAMPLES: &str = "\
Examples:
  regbench run http://127.0.0.1:5000/v2/ -c 50 -z 30s
  regbench run examples/registry-slo.toml -e base_url=http://127.0.0.1:5000 -z 1m   # exit 3 if an SLO fails
  regbench run http://127.0.0.1:5000/v2/_catalog -n 100000 -o json=result.json
  regbench run http://registry.test:5000/v2/ --resolve registry.test:5000:127.0.0.1 -n 1000
  regbench run http://127.0.0.1:8080/v1/registry -m POST -T application/json -d '{\"q\":1}' -n 10
  regbench run http://127.0.0.1:5000/v2/ --rate 200 -z 1m --max-lag 100ms --strict   # open model
  regbench run http://127.0.0.1:5000/v2/ --rate 0 --stages 30s:500,2m:500,30s:0 --arrival poisson
  regbench run http://127.0.0.1:5000/v2/ --stages 30s:50,1m:50 --think 500ms          # ramping VUs
  regbench run http://127.0.0.1:5000/v2/ --rate 1000 -z 1m --segment 0/4 --start-at 2026-11-24T12:00:00Z
  regbench run http://127.0.0.1:5000/v2/ --rate 200 -z 10m --watch-cmd docker-registry \\
    --scrape docker-registry=http://127.0.0.1:5001/metrics --threshold 'target_rss:max<256MiB' \\
    --threshold 'target_rss_slope:<1MiB/h' --warmup 30s          # the target's CPU, memory, leaks";

const DEMO_EXAMPLES: &str = "\
Examples:
  regbench demo
  regbench demo --duration 5s -o json=demo.json";

const SERVE_EXAMPLES: &str = "\
Examples:
  regbench serve --addr 127.0.0.1:5000
  regbench serve --latency 20ms --error-rate 0.01
  regbench serve --latency exp:5ms --stall 1s/10s      # a 1 s pause every 10 s";

#[derive(Debug, Parser)]
#[command(
    name = "regbench",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("REGBENCH_COMMIT"),
        ", built ",
        env!("REGBENCH_BUILD_DATE"),
        ")"
    ),
    about = "Load generator and benchmark for API registries: truthful latency, exact percentiles.",
    long_about = None,
    after_help = "Examples:\n  regbench demo\n  regbench run http://127.0.0.1:5000/v2/ --rate 200 -z 1m\n  regbench run plan.toml -o json=result.json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a URL and report latency, throughput, status codes and errors.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Start the built-in registry target on loopback, load it with authenticated image pulls, a
    /// catalog crawl, service-registry reads and a watcher of pushed changes, report.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Serve the built-in demo registry target (OCI distribution reads, a service registry, /metrics,
    /// gRPC on h2c with server reflection, WebSockets at /ws/echo and /ws/watch, an event stream at
    /// /sse/watch).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(Box<ServeArgs>),
    /// OCI registry tools.
    #[command(subcommand)]
    Oci(OciCommand),
    /// Find the highest rate the target sustains within its SLO (open model: geometric steps up, then
    /// bisection), the knee and the breaking point, and how fast it recovers from an overload burst;
    /// or, with --vus, sweep concurrency and fit the Universal Scalability Law. Exit 0: a limit was
    /// found; 3: the SLO fails even at the lowest load; 4: the generator saturated first.
    #[command(after_help = STRESS_EXAMPLES)]
    Stress(Box<StressArgs>),
    /// Render a saved JSON result (`-o json=FILE` of `run`, `demo`, `oci` or `stress`) again, in any
    /// output format, exactly as the run would have. Exit codes as the run's: 3 when its thresholds
    /// failed, 4 when it was invalid and --strict is given, 130/143/129 when it was interrupted.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Merge the shards of one distributed run (`run --segment i/n --start-at T -o json=…`) into one
    /// report, as if one process had run it: counters and histograms summed (in total, per second,
    /// per step), the thresholds judged once on the whole. Exit 2 when a shard is missing, doubled
    /// or from another run; 3 when a threshold fails.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Compare a run with its baseline: per step and overall, each metric's change with a 95%
    /// confidence interval (a bootstrap over the runs' seconds); verdict regressed / improved / no
    /// significant change. Exit 3 only when a regression beyond --max-regression is significant.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Kubernetes: the manifests of a distributed run (deploy/kubernetes/, docs/distributed.md).
    #[command(subcommand)]
    K8s(K8sCommand),
    /// Check this host for a planned load: open files, local ports and TIME_WAIT, listen queues,
    /// conntrack, CPU and memory; each finding with the command that fixes it. Changes nothing.
    /// Exit 0: all good; 1: warnings; 3: the load will fail here as the host is.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Print a shell completion script: regbench completions bash > /etc/bash_completion.d/regbench
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): regbench man > /usr/local/share/man/man1/regbench.1
    Man,
}

const STRESS_EXAMPLES: &str = "\
Examples:
  regbench stress http://127.0.0.1:5000/v2/ --slo 'p(99)<100ms' --slo 'errors<1%'
  regbench stress plan.toml --step 20s --settle 5s --precision 2%     # SLOs from the file's thresholds
  regbench stress http://127.0.0.1:5000/v2/ --vus 1,2,4,8,16,32 --slo 'p(99)<200ms'";

const REPORT_EXAMPLES: &str = "\
Examples:
  regbench report result.json                          # the text report again
  regbench report result.json -o html=report.html -o junit=junit.xml
  regbench report result.json -o csv=per-second.csv --quiet";

const MERGE_EXAMPLES: &str = "\
Examples:
  regbench merge shard-0.json shard-1.json shard-2.json shard-3.json -o html=report.html
  kubectl logs -l job-name=regbench --tail=-1 | regbench merge - -o json=merged.json";

const DOCTOR_EXAMPLES: &str = "\
Examples:
  regbench doctor http://127.0.0.1:5000/v2/ -c 500
  regbench doctor http://10.0.0.5:8080/ --rate 20000 --no-keepalive
  regbench doctor --rate 20000 --no-keepalive --format sysctl > /etc/sysctl.d/90-regbench.conf";

#[derive(Debug, Args)]
pub struct StressArgs {
    /// The load each step sends: a URL with the request flags of `run`, or a scenario file. The
    /// stress search sets the rate (or the virtual users) and the duration itself.
    #[command(flatten)]
    pub run: RunArgs,
    /// A service-level objective, repeatable: `p(99)<100ms` (latency; also avg, med, max), `errors<1%`
    /// (failed share), or any threshold as `KEY:EXPR` (`ttfb:p(95)<50ms`, `latency{step:get}:p(99)<1s`).
    /// Without it, the scenario file's thresholds.
    #[arg(long, value_name = "EXPR")]
    pub slo: Vec<String>,
    /// How long each step is judged (after --settle).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub step: Duration,
    /// The start of each step that is not judged (connections opening, queues filling).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Duration,
    /// The bisection stops when the last passing and first failing rates are this close.
    #[arg(long, default_value = "5%", value_parser = crate::util::parse_ratio, value_name = "PERCENT")]
    pub precision: f64,
    /// The first step's rate.
    #[arg(long, default_value = "100/s", value_parser = crate::util::parse_rate, value_name = "R")]
    pub start_rate: f64,
    /// Each step up multiplies the rate by this.
    #[arg(long, default_value_t = 2.0, value_name = "F")]
    pub factor: f64,
    /// Never offer more than this.
    #[arg(long, default_value = "1M/s", value_parser = crate::util::parse_rate, value_name = "R")]
    pub max_rate: f64,
    /// The whole search (and the recovery test) ends by then; what was measured is reported.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub max_duration: Duration,
    /// The knee: the lowest load from which on the p99 stays above this multiple of the p99 at the
    /// lowest load.
    #[arg(long, default_value_t = 3.0, value_name = "F")]
    pub knee_factor: f64,
    /// Recovery test after the search: this multiple of the found limit for --burst-for, then half
    /// the limit for up to --recover-for. 0 skips it.
    #[arg(long, default_value_t = 2.0, value_name = "F")]
    pub burst: f64,
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub burst_for: Duration,
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub recover_for: Duration,
    /// Closed model instead: sweep these virtual-user counts (`1,2,4,8,16` or `1..64` for powers of
    /// two), report throughput and latency per level, and fit the Universal Scalability Law.
    #[arg(long, value_name = "LIST")]
    pub vus: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON result written by `-o json=FILE`.
    #[arg(value_name = "RESULT.json")]
    pub result: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Exit 4 when the run was invalid (as `run --strict`).
    #[arg(long)]
    pub strict: bool,
}

const COMPARE_EXAMPLES: &str = "\
Examples:
  regbench compare baseline.json result.json                      # p50, p95, p99, rps, errors; 20%
  regbench compare baseline.json result.json --max-regression 10% --metric p50,p99
  regbench compare baseline.json result.json -o html=compare.html -o json=compare.json";

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline's JSON result.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// The run to judge against it.
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,
    /// The worsening allowed before a significant change fails the gate (latency up, rps down,
    /// error rate up by this share).
    #[arg(long, default_value = "20%", value_parser = parse_percent, value_name = "PERCENT")]
    pub max_regression: f64,
    /// The metrics to compare: pN (p50, p95, p99, p99.9), rps, errors.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "p50,p95,p99,rps,errors",
        value_name = "LIST"
    )]
    pub metric: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `20%` or `0.2`.
fn parse_percent(s: &str) -> Result<f64, String> {
    let (number, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v / scale)
        .ok_or_else(|| format!("'{s}' is not a percentage (20% or 0.2)"))
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print the manifests (a ConfigMap with the scenario, an Indexed Job of N pods each running one
    /// segment, all starting at one time with one seed) for `kubectl apply -f -`.
    #[command(after_help = K8S_EXAMPLES)]
    Render(K8sRenderArgs),
}

const K8S_EXAMPLES: &str = "\
Examples:
  regbench k8s render --parallelism 4 plan.toml | kubectl apply -f -
  regbench k8s render --parallelism 8 --start-in 5m --image registry.example/regbench:0.1.0 \\
      plan.toml -- -e base_url=http://registry.default.svc:5000";

#[derive(Debug, Args)]
pub struct K8sRenderArgs {
    /// The scenario file every pod runs (put in a ConfigMap).
    #[arg(value_name = "SCENARIO.toml")]
    pub plan: PathBuf,
    /// Pods, each running one segment of the schedule, all at once.
    #[arg(long, default_value = "4", value_name = "N")]
    pub parallelism: u64,
    /// The pods start sending this long after rendering: long enough to schedule them and pull
    /// the image.
    #[arg(long, default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub start_in: Duration,
    /// The pods start sending at this time instead (RFC 3339, or unix milliseconds).
    #[arg(long, value_parser = crate::util::parse_time, value_name = "TIME")]
    pub start_at: Option<std::time::SystemTime>,
    /// The schedule's seed [default: a fresh one, written into the manifests].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The Job's name (and the ConfigMap's prefix).
    #[arg(long, default_value = "regbench")]
    pub name: String,
    /// The regbench image the pods run (deploy/Containerfile builds it).
    #[arg(long, default_value = "regbench:0.1.0")]
    pub image: String,
    /// CPU each pod requests (a generator pod wants a core of its own).
    #[arg(long, default_value = "1")]
    pub cpu: String,
    /// More `regbench run` arguments for every pod, after `--` (-e KEY=VALUE, --threads 2, …).
    #[arg(last = true, value_name = "RUN ARGS")]
    pub run_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' JSON results (`-` reads stdin; a file may hold several results one after
    /// another, as `kubectl logs` of every pod prints them).
    #[arg(value_name = "SHARD.json", required = true)]
    pub shards: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Exit 4 when the merged run is invalid.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The target (decides whether its listen queue is this host's); optional.
    pub url: Option<String>,
    /// Connections the load will hold. Suffixes: 10k.
    #[arg(short = 'c', long = "connections", default_value = "50", value_parser = crate::util::parse_count)]
    pub connections: u64,
    /// Open model: requests per second.
    #[arg(short = 'q', long = "rate", value_name = "R", value_parser = crate::util::parse_rate)]
    pub rate: Option<f64>,
    /// A new connection for every request (each closed one holds a local port in TIME_WAIT).
    #[arg(long)]
    pub no_keepalive: bool,
    /// `text` (the findings) or `sysctl` (a snippet of the sysctl settings they ask for).
    #[arg(long, default_value = "text", value_parser = ["text", "sysctl"])]
    pub format: String,
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Push deterministic synthetic images so pull benchmarks have content (idempotent).
    #[command(
        after_help = "Examples:\n  regbench oci seed http://127.0.0.1:5000 --repos 10 --tags 3 --layers 2 --layer-size 1MiB\n  \
REGISTRY_PASSWORD=s3cret regbench oci seed https://registry.test --user ci --password-env REGISTRY_PASSWORD --cacert ca.pem"
    )]
    Seed(Box<SeedArgs>),
    /// Load a registry with whole image pulls: ping, auth (Basic or Bearer tokens), HEAD and GET the
    /// manifest (an index resolved to --platform), config, layers --parallel at a time, all verified.
    #[command(after_help = OCI_PULL_EXAMPLES)]
    Pull(Box<OciPullArgs>),
    /// Load a registry with image pushes: blob uploads (monolithic, or --chunk), an optional
    /// cross-repository mount, the manifest PUT. Every iteration pushes new layers.
    #[command(
        after_help = "Examples:\n  regbench oci push http://127.0.0.1:5000 --image load/app:ci -c 4 -n 40 --layers 2 --layer-size 4MiB\n  \
regbench oci push http://127.0.0.1:5000 --image load/app:ci --chunk 1MiB --mount-from load/base -z 30s"
    )]
    Push(Box<OciPushArgs>),
    /// Load a registry with catalog walks: every page of /v2/_catalog, following Link headers.
    #[command(
        after_help = "Examples:\n  regbench oci catalog http://127.0.0.1:5000 --page-size 50 -c 2 -n 20"
    )]
    Catalog(Box<OciWalkArgs>),
    /// Load a registry with tag-list walks: every page of /v2/REPO/tags/list.
    #[command(
        after_help = "Examples:\n  regbench oci tags http://127.0.0.1:5000 --repo demo/app-000 --page-size 2 -n 50"
    )]
    Tags(Box<OciTagsArgs>),
}

const OCI_PULL_EXAMPLES: &str = "\
Examples:
  regbench oci pull http://127.0.0.1:5000 --image demo/app-000:v1 -c 8 -z 30s
  regbench oci pull http://127.0.0.1:5000 --image demo/app-004:v1 --platform linux/arm64/v8
  regbench oci pull http://127.0.0.1:5000 --image a/b:v1 --image c/d:v2 --token cold --rate 20 -z 1m
  REGISTRY_PASSWORD=s3cret regbench oci pull https://registry.test --image team/app:1.2 \\
      --user ci --password-env REGISTRY_PASSWORD --parallel 6 --range 8MiB

Every request is recorded under its phase (pull/ping, pull/token, pull/head, pull/manifest,
pull/config, pull/layer) and each whole pull under `pull`: its req/s are images/s.";

/// What every `oci` load command shares: the registry, credentials, token policy, and `run`'s
/// load flags (the URL is the registry's).
#[derive(Debug, Args)]
pub struct OciLoadArgs {
    /// User for Basic auth or the token server.
    #[arg(long)]
    pub user: Option<String>,
    /// Environment variable holding the password.
    #[arg(long, value_name = "VAR", requires = "user")]
    pub password_env: Option<String>,
    /// warm: tokens cached per scope until they expire; cold: a new token every iteration.
    #[arg(long, value_parser = crate::plan::flow::TokenMode::parse, default_value = "warm", value_name = "warm|cold")]
    pub token: crate::plan::flow::TokenMode,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct OciPullArgs {
    /// Image to pull, REPO:TAG or REPO@sha256:…; repeat to pull several in turn.
    #[arg(long = "image", required = true, value_name = "REPO:TAG")]
    pub images: Vec<String>,
    /// Platform an index is resolved to.
    #[arg(long, default_value = "linux/amd64", value_parser = crate::plan::flow::Platform::parse, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: crate::plan::flow::Platform,
    /// Layers fetched at once (each on its own connection), like dockerd's max-concurrent-downloads.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub parallel: usize,
    /// Fetch blobs in Range requests of this size.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub range: Option<u64>,
    #[command(flatten)]
    pub common: OciLoadArgs,
}

#[derive(Debug, Args)]
pub struct OciPushArgs {
    /// Where to push, REPO:TAG.
    #[arg(long, value_name = "REPO:TAG")]
    pub image: String,
    /// Layers per image (new bytes every iteration).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub layers: usize,
    /// Size of each layer (random bytes: they do not compress or deduplicate).
    #[arg(long, default_value = "1MiB", value_parser = parse_size, value_name = "SIZE")]
    pub layer_size: u64,
    /// Upload in PATCH chunks of this size (default: monolithic POST then PUT).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk: Option<u64>,
    /// Mount the first layer (a base layer shared by every push) from this repository.
    #[arg(long, value_name = "REPO")]
    pub mount_from: Option<String>,
    #[command(flatten)]
    pub common: OciLoadArgs,
}

#[derive(Debug, Args)]
pub struct OciWalkArgs {
    /// Entries per page (`?n=`).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub page_size: u32,
    /// A walk stops after this many pages.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_pages: u32,
    #[command(flatten)]
    pub common: OciLoadArgs,
}

#[derive(Debug, Args)]
pub struct OciTagsArgs {
    /// Repository whose tags to list.
    #[arg(long, value_name = "REPO")]
    pub repo: String,
    #[command(flatten)]
    pub walk: OciWalkArgs,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Registry base URL (http:// or https://).
    pub registry: String,
    /// Repositories to create (PREFIX/app-NNN).
    #[arg(long, default_value_t = 10)]
    pub repos: usize,
    /// Tags per repository (v1, v2, …).
    #[arg(long, default_value_t = 3)]
    pub tags: usize,
    /// Layers per image (shared by a repository's tags).
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Size of each layer.
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    pub layer_size: u64,
    /// Repository name prefix.
    #[arg(long, default_value = "seed")]
    pub prefix: String,
    /// User for Basic auth or the token server.
    #[arg(long)]
    pub user: Option<String>,
    /// Environment variable holding the password (never a flag: it would show in `ps`).
    #[arg(long, value_name = "VAR", requires = "user")]
    pub password_env: Option<String>,
    /// Pin a host to an address, as curl does: HOST:PORT:ADDRESS.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Send connections for HOST:PORT to HOST2:PORT2 instead (oha's and curl's --connect-to).
    #[arg(long, value_name = "HOST:PORT:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Where a report goes: `FORMAT` alone replaces the text report on stdout; `FORMAT=FILE` writes a file.
/// The format's name is checked against the report formats before the run (cmd/execute.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: String,
    pub path: Option<PathBuf>,
}

pub fn parse_output(s: &str) -> Result<OutputSpec, String> {
    let (fmt, path) = match s.split_once('=') {
        Some((f, p)) if !p.is_empty() => (f, Some(PathBuf::from(p))),
        Some(_) => return Err(format!("'{s}': missing file name after '='")),
        None => (s, None),
    };
    if fmt.is_empty() {
        return Err(format!("'{s}': missing format before '='"));
    }
    Ok(OutputSpec {
        format: fmt.to_string(),
        path,
    })
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A live view on a terminal; nothing otherwise.
    Auto,
    /// A line per scenario every 10 s, terminal or not (CI logs).
    Plain,
    /// Nothing.
    None,
}

/// Options every load-running subcommand shares.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Report output, repeatable: `json=FILE`, `text=FILE`, `csv=FILE` (per step per second, and
    /// FILE.summary.csv per step), `hdr=FILE` (an HdrHistogram interval log of each step's latency),
    /// `html=FILE` (one self-contained page with charts), `junit=FILE` (thresholds, checks and
    /// validity as JUnit test cases), or a format alone to print it on stdout instead of text.
    /// Files are written atomically, also after Ctrl-C (marked partial).
    #[arg(short = 'o', long = "output", value_name = "FORMAT[=FILE]", value_parser = parse_output)]
    pub outputs: Vec<OutputSpec>,
    /// Print the JSON report on stdout instead of text (= -o json; oha's -j).
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// No progress and no notes on stderr (the report still goes to stdout).
    #[arg(long)]
    pub quiet: bool,
}

/// What a load-running subcommand shows while it runs.
#[derive(Clone, Debug, Args)]
pub struct LiveArgs {
    /// Live progress on stderr: `auto` (per scenario each second, on a terminal only), `plain` (a
    /// line per scenario every 10 s, for CI logs), `none`.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub progress: ProgressMode,
    /// Serve live Prometheus/OpenMetrics metrics at http://ADDR/metrics during the run (requests,
    /// responses by code, errors by kind, latency histograms per step, in flight, validity), e.g.
    /// 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl LiveArgs {
    /// Nothing live (a stress search's steps).
    pub const NONE: LiveArgs = LiveArgs {
        progress: ProgressMode::None,
        metrics_addr: None,
    };
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URL (http://host[:port]/path?query), or a scenario file (plan.toml).
    #[arg(value_name = "URL|SCENARIO.toml")]
    pub url: String,
    /// Concurrent connections (each one a virtual user in the closed model) [default: 50; regbench
    /// oci: 8]. Suffixes: 10k.
    #[arg(short = 'c', long = "connections", value_name = "N", value_parser = parse_usize_count)]
    pub connections: Option<usize>,
    /// Total requests to send (default 200 when neither -n nor -z is given; regbench oci: pulls,
    /// pushes or walks). Suffixes: 10k, 1M.
    #[arg(short = 'n', long = "requests", value_name = "N", value_parser = crate::util::parse_count)]
    pub requests: Option<u64>,
    /// Send requests for this long (e.g. 30s, 2m); with -n, whichever comes first.
    #[arg(short = 'z', long = "duration", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// HTTP method [default: GET].
    #[arg(short = 'm', long = "method")]
    pub method: Option<String>,
    /// Request header `Name: value`, repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(short = 'd', long = "body", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Request body read from a file.
    #[arg(short = 'D', long = "body-file", value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Content-Type header (shorthand for -H 'Content-Type: …').
    #[arg(short = 'T', long = "content-type", value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Per-request timeout, from send (including connect) to the end of the body [default: 30s]
    /// (hey's and oha's -t; a bare number is refused: 20s or 20ms?).
    #[arg(short = 't', long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Open a new connection for every request.
    #[arg(long, visible_alias = "disable-keepalive")]
    pub no_keepalive: bool,
    /// Connect through this HTTP proxy (http://HOST:PORT), one CONNECT tunnel per connection, as
    /// hey's and curl's -x (never per request).
    #[arg(
        short = 'x',
        long = "proxy",
        value_name = "URL",
        conflicts_with = "unix_socket"
    )]
    pub proxy: Option<String>,
    /// Connect to this Unix socket instead of the URL's host and port (the URL still gives the Host
    /// header and the path), as oha's and curl's --unix-socket.
    #[arg(long, value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,
    /// Connect over IPv4 only (the first IPv4 address the name resolves to).
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Connect over IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// The Host header (hey's -host, oha's --host): the authority sent, whatever the URL's host.
    #[arg(long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// The Accept header (hey's -A; shorthand for -H 'Accept: …') [default: */*].
    #[arg(short = 'A', long = "accept", value_name = "TYPE")]
    pub accept: Option<String>,
    /// Basic authentication USER:PASS (hey's and oha's -a); never printed.
    #[arg(short = 'a', long = "basic-auth", value_name = "USER:PASS")]
    pub basic_auth: Option<String>,
    /// Send no Accept-Encoding (as wrk). By default regbench asks for gzip, as hey, oha and k6 do,
    /// and reports bodies as received and decoded (their size from gzip's trailer: no inflating
    /// unless a check reads the body).
    #[arg(long)]
    pub disable_compression: bool,
    /// Accepted for hey/oha users: redirects are not followed unless --redirect N asks; a 3xx is a
    /// result, counted under its status code.
    #[arg(long)]
    pub disable_redirects: bool,
    /// Accepted for oha users: regbench has no TUI (progress on stderr only on a terminal).
    #[arg(long)]
    pub no_tui: bool,
    /// Accepted for oha and k6 users: regbench's output has no colours.
    #[arg(long)]
    pub no_color: bool,
    /// Accepted for oha users: in the open model (--rate) latency is always measured from the
    /// intended send time, i.e. always corrected for coordinated omission.
    #[arg(long)]
    pub latency_correction: bool,
    /// Worker threads (default: the number of cores, at most one per connection); oha's
    /// --worker-threads.
    #[arg(long, visible_alias = "worker-threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Pin a host to an address, as curl does: HOST:PORT:ADDRESS (repeatable). No DNS lookup then.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Send connections for HOST:PORT to HOST2:PORT2 instead, as oha's and curl's --connect-to
    /// (repeatable); the Host header and the TLS name stay the URL's.
    #[arg(long, value_name = "HOST:PORT:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    /// Open model: requests per second in total — global across threads and segments, as oha's -q
    /// (hey's -q is per worker: multiply it by -c); requests arrive on schedule whatever the target
    /// does. Without it, the closed model. With --stages, the start rate.
    #[arg(short = 'q', long = "rate", value_name = "R", value_parser = crate::util::parse_rate)]
    pub rate: Option<f64>,
    /// Open model arrival process: uniform or poisson [default: uniform].
    #[arg(long, value_parser = Arrival::parse)]
    pub arrival: Option<Arrival>,
    /// Open model: outstanding requests at most (default and upper bound: -c, one per connection).
    #[arg(long, value_name = "N", value_parser = parse_usize_count)]
    pub max_inflight: Option<usize>,
    /// Linear ramps `DURATION:TARGET,…` (e.g. 30s:100,2m:100,30s:0): of the rate with --rate (from
    /// the --rate value), else of the number of virtual users (from 0).
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,
    /// Closed model: pause between a response and the same virtual user's next request.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub think: Option<Duration>,
    /// Open model: drop (and count) a request not sent within this long after its intended time. Also
    /// the lag limit of the validity verdict (default 10ms).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub max_lag: Option<Duration>,
    /// Open model: ticks due within this grid share one wake-up [default: 50us]. Larger costs less
    /// CPU per request and adds up to this much schedule lag (docs/performance.md, "Timer slack").
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timer_slack: Option<Duration>,
    /// Exit 4 when the run is invalid (the generator was the bottleneck or fell behind its schedule).
    #[arg(long)]
    pub strict: bool,
    /// Run only stripe I of N of the global schedule (distributed runs; counts split exactly).
    /// `auto/N` takes I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod).
    #[arg(long, value_name = "I/N")]
    pub segment: Option<String>,
    /// Start at this absolute time (RFC 3339, or unix milliseconds), so segments start together.
    #[arg(long, value_parser = crate::util::parse_time, value_name = "TIME")]
    pub start_at: Option<std::time::SystemTime>,
    /// Seed of the Poisson arrivals and random data picks [default: random, recorded in the report
    /// so `--seed` replays it]. Processes of one distributed run (--segment) must share it.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Judge the run by this threshold, `KEY:CONDITION` (repeatable; a scenario file's are added):
    /// `latency:p(99)<200ms`, `errors:rate<1%`, `target_rss:max<256MiB`,
    /// `target_rss_slope:<1MiB/h`, `metric{name:go_goroutines}:last<500`. A failure exits 3.
    #[arg(long = "threshold", value_name = "KEY:CONDITION")]
    pub thresholds: Vec<String>,
    /// Thresholds and the target's trends are judged on the seconds after this (the report's totals
    /// still cover the whole run).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub ws: WsArgs,
    #[command(flatten)]
    pub sse: SseArgs,
    /// Scenario files: set a template constant, over [defaults.vars] (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub vars: Vec<(String, String)>,
    /// Tag the run (shown in the report and its JSON), repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub tags: Vec<(String, String)>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub live: LiveArgs,
    // Last: its help heading would otherwise cover the flags after it.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// Server-Sent Events: read the URL as a `text/event-stream`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Server-Sent Events")]
pub struct SseArgs {
    /// Read the URL as an event stream: each iteration opens it and reads N events (reopening it
    /// with Last-Event-ID when the server ends it early).
    #[arg(long, value_name = "N")]
    pub sse_events: Option<u32>,
    /// A JSON pointer into each event's data to its send time in Unix nanoseconds, to time each
    /// event from its sending to its delivery.
    #[arg(long, value_name = "POINTER", requires = "sse_events")]
    pub sse_timestamp: Option<String>,
    /// Reopenings of an ended stream allowed per iteration [default: 10].
    #[arg(long, value_name = "N", requires = "sse_events")]
    pub sse_reconnects: Option<u32>,
}

/// WebSocket (`ws://HOST:PORT/PATH`, `wss://`): by default each request sends `-d` and waits for
/// the next message back (echo); `--ws-receive` subscribes, `--ws-hold` holds idle connections.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "WebSocket")]
pub struct WsArgs {
    /// Subscribe: each iteration connects, sends -d if given, receives N messages, and closes.
    #[arg(long, value_name = "N", conflicts_with = "ws_hold")]
    pub ws_receive: Option<u32>,
    /// Hold: each iteration connects, holds the idle connection this long, and closes.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ws_hold: Option<Duration>,
    /// With --ws-receive: a JSON pointer to each message's send time in Unix nanoseconds
    /// (`/sent_unix_nanos`), to time each from its event to its delivery.
    #[arg(long, value_name = "POINTER", requires = "ws_receive")]
    pub ws_timestamp: Option<String>,
}

/// gRPC (`grpc://HOST:PORT/package.Service/Method`): where the method's descriptors come from, and
/// the call's deadline. The request message is `-d '{"json":…}'` (protobuf's JSON mapping).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "gRPC")]
pub struct GrpcArgs {
    /// A .proto file defining the method (repeatable; compiled at load, no protoc needed).
    #[arg(long = "proto", value_name = "FILE")]
    pub protos: Vec<PathBuf>,
    /// A directory the .proto files' imports are searched in (repeatable; each file's own
    /// directory is searched too).
    #[arg(long = "import-path", value_name = "DIR")]
    pub import_paths: Vec<PathBuf>,
    /// A compiled descriptor set (protoc --descriptor_set_out --include_imports, buf build -o).
    #[arg(long, value_name = "FILE")]
    pub protoset: Option<PathBuf>,
    /// The call's deadline, sent as grpc-timeout: the server gives up with DEADLINE_EXCEEDED.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub deadline: Option<Duration>,
}

/// The target's resources and metrics, sampled each second beside the load (docs/scenarios.md,
/// "Watch the target").
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Watch the target")]
pub struct WatchArgs {
    /// Watch this process of the target: CPU cores, RSS and its peak, threads, open files, context
    /// switches, its cgroup's memory and throttling (repeatable; NAME= names it in the report and
    /// thresholds, default its process name).
    #[arg(long = "watch-pid", value_name = "[NAME=]PID")]
    pub pids: Vec<String>,
    /// Watch the processes with this name (found at the start, summed: a server and its workers).
    #[arg(long = "watch-cmd", value_name = "NAME")]
    pub commands: Vec<String>,
    /// Scrape this Prometheus/OpenMetrics endpoint each second (repeatable; http:// only). NAME=
    /// joins a --watch-pid/--watch-cmd of that name; default name: HOST:PORT.
    #[arg(long = "scrape", value_name = "[NAME=]URL")]
    pub scrapes: Vec<String>,
    /// A series to keep from every --scrape, `NAME` or `NAME{label="value"}` (repeatable):
    /// gauges as they are, counters as rates, histograms as p50/p95/p99 per second [default:
    /// process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, go_goroutines,
    /// go_memstats_heap_inuse_bytes].
    #[arg(long = "scrape-metric", value_name = "SELECTOR")]
    pub metrics: Vec<String>,
}

/// HTTP version settings.
#[derive(Debug, Args, Default)]
pub struct HttpArgs {
    /// Speak HTTP/1.1 only (over TLS, ALPN offers only http/1.1).
    #[arg(long, conflicts_with_all = ["http2", "h2c"])]
    pub http1: bool,
    /// Require HTTP/2: ALPN h2 over TLS (a server that declines it is the `no-h2` error); on
    /// http:// the same as --h2c. Without a version flag, https:// takes what ALPN picks.
    #[arg(long)]
    pub http2: bool,
    /// HTTP/2 with prior knowledge on cleartext http:// (h2c).
    #[arg(long)]
    pub h2c: bool,
    /// HTTP/2: concurrent streams per connection, so -c N --streams M keeps N×M requests in flight
    /// on N connections [default: 1] (oha's -p).
    #[arg(short = 'p', long, value_name = "N")]
    pub streams: Option<usize>,
    /// A new connection's TCP connect and TLS handshake must be done within this, or the request
    /// fails as a timeout (oha's --connect-timeout) [default: only --timeout bounds it].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Option<Duration>,
    /// Follow up to N same-origin redirects per step (each hop is a request of the step, counted
    /// as a redirect; the method and body are kept). Default 0: a 3xx is the result, as with
    /// hey's -disable-redirects.
    #[arg(short = 'r', long = "redirect", value_name = "N")]
    pub redirect: Option<u32>,
}

impl HttpArgs {
    /// The settings these flags give on top of `base` (a scenario file's, or the defaults), for a
    /// target that is `https://` when `tls`.
    pub fn apply(
        &self,
        base: crate::plan::HttpOptions,
        tls: bool,
    ) -> Result<crate::plan::HttpOptions, String> {
        use crate::plan::HttpVersion;
        let mut o = base;
        if self.h2c && tls {
            return Err(
                "--h2c is HTTP/2 on cleartext http://; for https:// use --http2 (ALPN h2)".into(),
            );
        }
        if self.http1 {
            o.version = HttpVersion::Http1;
            o.streams = 1;
        }
        if self.http2 || self.h2c {
            o.version = HttpVersion::Http2;
        }
        if let Some(t) = self.connect_timeout {
            o.connect_timeout = Some(t);
        }
        if let Some(n) = self.redirect {
            o.redirects = n;
        }
        if let Some(n) = self.streams {
            if n == 0 {
                return Err("--streams must be at least 1".into());
            }
            o.streams = n;
        }
        if o.streams > 1 && o.version != HttpVersion::Http2 {
            return Err(format!(
                "--streams {} needs HTTP/2: add --http2 (https://, ALPN h2) or --h2c (http://)",
                o.streams
            ));
        }
        Ok(o)
    }
}

/// TLS settings for `https://` targets.
#[derive(Debug, Args, Default)]
pub struct TlsArgs {
    /// Accept any server certificate (self-signed test targets).
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name to send (SNI) and verify, instead of the URL's host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Lowest TLS version to offer: 1.2 or 1.3.
    #[arg(long, value_parser = crate::plan::TlsVersion::parse, value_name = "VERSION")]
    pub tls_min: Option<crate::plan::TlsVersion>,
    /// Highest TLS version to offer: 1.2 or 1.3.
    #[arg(long, value_parser = crate::plan::TlsVersion::parse, value_name = "VERSION")]
    pub tls_max: Option<crate::plan::TlsVersion>,
    /// Resume TLS sessions on new connections: on or off [default: on].
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub tls_resumption: Option<bool>,
}

impl TlsArgs {
    /// The options these flags give on top of `base` (a scenario file's `[defaults.tls]`, or the
    /// defaults): each flag given replaces that one setting.
    pub fn apply(&self, base: &crate::plan::TlsOptions) -> crate::plan::TlsOptions {
        let mut o = base.clone();
        o.insecure |= self.insecure;
        if let Some(c) = &self.cacert {
            o.cacert = Some(c.clone());
        }
        if let Some(pair) = self.cert.clone().zip(self.key.clone()) {
            o.client_cert = Some(pair);
        }
        if let Some(s) = &self.sni {
            o.sni = Some(s.clone());
        }
        o.min = self.tls_min.or(o.min);
        o.max = self.tls_max.or(o.max);
        o.resumption = self.tls_resumption.unwrap_or(o.resumption);
        o
    }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to load the demo target.
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Concurrent connections.
    #[arg(
        short = 'c',
        long = "connections",
        default_value_t = 32,
        value_name = "N"
    )]
    pub connections: usize,
    /// Generator worker threads (the demo target gets its own thread).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: std::net::SocketAddr,
    /// Number of repositories in the catalog.
    #[arg(long, default_value_t = 20)]
    pub repos: usize,
    /// Tags per repository.
    #[arg(long, default_value_t = 5)]
    pub tags: usize,
    /// Layers per image (shared by the tags of a repository).
    #[arg(long, default_value_t = 3)]
    pub layers: usize,
    /// Size of each layer blob.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub layer_size: u64,
    /// Servers in the service registry.
    #[arg(long, default_value_t = 100)]
    pub servers: usize,
    /// Added response latency: `20ms`, `uniform:10ms:30ms`, `exp:20ms` (mean) or `normal:20ms:5ms`.
    #[arg(long, default_value = "0ms")]
    pub latency: String,
    /// Share of requests answered 500 (0.0–1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Periodic stall `S/P`: every P, hold every response for S (like a stop-the-world pause).
    #[arg(long, value_name = "S/P")]
    pub stall: Option<String>,
    /// Serve at most this many requests per second (`2000/s`), one at a time in FIFO order: past it,
    /// requests queue (latency rises), and past --queue they get 503 — a known breaking point.
    #[arg(long, value_name = "RATE")]
    pub capacity: Option<String>,
    /// Leak memory at this rate (1MiB/s, 10MB/min; at most 1GiB/s, 4 GiB in all): allocated and
    /// written every 100 ms and never freed, shown as regbench_demo_leaked_bytes in /metrics — a
    /// known answer for the leak check of `regbench run --watch-pid`.
    #[arg(long, value_name = "RATE")]
    pub leak: Option<String>,
    /// During a sync (POST /registry/sync, or after a --config reload), queries take this many times
    /// their --latency: a sync that competes with the load.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub sync_slowdown: f64,
    /// Watch this file: a change (its time or content) is a reload — /registry/status's
    /// config_version and config_loaded_unix_ms change — followed by a sync.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How often --config is looked at: reload detection takes up to this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub config_poll: Duration,
    /// With --capacity: requests waiting at most; more are refused with 503.
    #[arg(long, default_value = "10k", value_parser = crate::util::parse_count, value_name = "N")]
    pub queue: u64,
    /// Time a registry sync takes per server (POST /registry/sync).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub sync_per_server: Duration,
    /// Server threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Serve HTTPS with a self-signed certificate for localhost and 127.0.0.1, generated at start.
    #[arg(long)]
    pub tls: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Protect /v2/: `basic:USER:PASS`, or `bearer` (a token server at /token issuing scoped tokens;
    /// `bearer:USER:PASS` makes the token server want those credentials).
    #[arg(long, value_name = "MODE")]
    pub auth: Option<String>,
}

/// `run`'s flags an `oci` load command does not take (it sends its own requests): hidden from its
/// help, and refused if given (cmd/oci.rs).
const NOT_FOR_OCI: [&str; 9] = [
    "method",
    "headers",
    "body",
    "body_file",
    "content_type",
    "vars",
    "host",
    "accept",
    "basic_auth",
];

/// The command line as parsed and as its help, completions and manual show it.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("oci", |oci| {
        ["pull", "push", "catalog", "tags"]
            .iter()
            .fold(oci, |oci, name| {
                oci.mut_subcommand(name, |c| {
                    NOT_FOR_OCI
                        .iter()
                        .fold(c, |c, arg| c.mut_arg(arg, |a| a.hide(true)))
                })
            })
    })
}

/// Parses the arguments (with `command()`'s help).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// Long flags typed with one dash, as hey takes them (`-disable-keepalive`): clap would read them as a
/// bundle of short flags (`-d isable-keepalive`, a body) and run something else than was typed. Each
/// becomes an error with the flag meant; `None` when the arguments have none.
pub fn single_dash_long_flag<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Option<String> {
    use clap::CommandFactory;
    // Flags of hey, oha and k6 whose single-dash long form means something here.
    const PEERS: [(&str, &str); 7] = [
        ("h2", "--http2 (or --h2c for cleartext)"),
        ("host", "--host"),
        ("cpus", "--threads"),
        ("disable-keepalive", "--disable-keepalive"),
        ("disable-compression", "--disable-compression"),
        ("disable-redirects", "--disable-redirects"),
        ("duration", "-z/--duration"),
    ];
    let cmd = Cli::command();
    let mut longs: Vec<String> = Vec::new();
    let mut stack = vec![&cmd];
    while let Some(c) = stack.pop() {
        for a in c.get_arguments() {
            longs.extend(
                a.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        stack.extend(c.get_subcommands());
    }
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.as_ref().to_str() else {
            continue;
        };
        if arg == "--" {
            return None;
        }
        let Some(word) = arg.strip_prefix('-').filter(|w| !w.starts_with('-')) else {
            continue;
        };
        let name = word.split('=').next().unwrap_or(word);
        if name.len() < 2
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
        {
            continue;
        }
        if let Some((_, meant)) = PEERS.iter().find(|(peer, _)| *peer == name) {
            return Some(format!(
                "'{arg}' is read as short flags here: did you mean {meant}?"
            ));
        }
        if longs.iter().any(|l| l == name) {
            return Some(format!(
                "'{arg}' is read as short flags here: did you mean --{name}?"
            ));
        }
    }
    None
}

/// A count (`parse_count`) that fits a `usize`.
fn parse_usize_count(s: &str) -> Result<usize, String> {
    let n = crate::util::parse_count(s)?;
    usize::try_from(n).map_err(|_| format!("'{s}' is too large"))
}

/// `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn outputs() {
        assert_eq!(
            parse_output("json=out.json").unwrap(),
            OutputSpec {
                format: "json".into(),
                path: Some("out.json".into())
            }
        );
        assert_eq!(parse_output("text").unwrap().path, None);
        assert!(parse_output("=a").is_err());
        assert!(parse_output("json=").is_err());
    }

    #[test]
    fn hey_style_flags_parse() {
        let cli = Cli::try_parse_from([
            "regbench",
            "run",
            "http://127.0.0.1:1/",
            "-c",
            "5",
            "-n",
            "10",
            "-m",
            "post",
            "-H",
            "A: b",
            "-H",
            "C: d",
            "-d",
            "x",
            "-T",
            "text/plain",
            "--no-keepalive",
            "-z",
            "2s",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("run expected")
        };
        assert_eq!((a.connections, a.requests), (Some(5), Some(10)));
        assert_eq!(a.headers.len(), 2);
        assert_eq!(a.duration, Some(Duration::from_secs(2)));
        assert!(a.no_keepalive);
        assert!(
            Cli::try_parse_from(["regbench", "run", "http://x/", "-d", "a", "-D", "f"]).is_err()
        );
        assert!(parse_rate("1.5").is_err());
    }
}
