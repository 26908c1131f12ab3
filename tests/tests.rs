//! The one integration-test binary. Each module covers one area; fixtures live in `util`.
//! Every target binds 127.0.0.1 port 0; every load is bounded in requests and time.

mod util;

/// The binary as a user runs it: exit codes, Ctrl-C writes a partial report.
mod cli;
/// Issue 19: compare as a CI gate: reruns pass, a slower target fails.
mod compare;
/// Compressed responses against nginx's gzip, and --connect-to.
mod compression;
/// `regbench demo` end to end.
mod demo;
/// Issue 20: doctor, pre-flight and the diagnosis of failures.
mod diagnosis;
/// Issue 19: Kubernetes manifests, four local pods merged into one run, merge refusals.
mod distributed;
/// Issue 16: events, windows and convergence — the service-registry plan, sync and reload times,
/// during-vs-outside gates, downtime.
mod events;
/// Registry flow steps (oci-pull, oci-push, catalog, tags, service calls) on the demo target.
mod flows;
/// Issue 23: gRPC unary and server-streaming calls against the demo target and Python grpcio.
mod grpc;
/// HTTP/2: h2c and ALPN, streams over few connections, GOAWAY, RST_STREAM, scenario settings.
mod http2;
/// The pipeline's import rules (DESIGN.md §2), read from the source.
mod layout;
/// Issue 18: live metrics (--metrics-addr), plain progress lines, the terminal view in tmux.
mod live;
/// The open model, stages, dropped requests, segments and --start-at.
mod open;
/// Against a real OCI registry (Debian docker-registry): push and pull flows, htpasswd auth.
mod registry;
/// The JSON report against its checked-in schema, and the text report's content.
mod report;
/// `regbench run`: exact counts, status and error classification, latency truth, connection handling.
mod run;
/// Scenario files: flows, extraction, checks, data files, thresholds, refusals.
mod scenario;
/// The demo registry target's API: OCI reads, service registry, metrics, knobs, shutdown.
mod serve;
/// Issue 23: Server-Sent Events: counts, delivery times, Last-Event-ID resumption (demo and Python).
mod sse;
/// `regbench stress`: the search, knee, breaking point, recovery, USL sweep, saturation, signals.
mod stress;
/// TLS: versions, trust, SNI, mutual TLS, resumption, scenario-file settings.
mod tls;
/// Issue 13: every run shape sends exactly its plan and reports the truth (deadlines, drops, signals).
mod truth;
/// Issue 15: watching the target's processes and metrics; thresholds on them; leak detection.
mod watch;
/// Issue 23: WebSocket echo, subscriptions, idle connections, close codes (demo and Python websockets).
mod ws;
