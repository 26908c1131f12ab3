//! A Server-Sent Events step (`text/event-stream`): pure data (`engine::sse` runs it).
//!
//! Each iteration opens the stream (`GET` with `Accept: text/event-stream`) and reads `events`
//! events; a stream the server ends early is reopened with `Last-Event-ID` (at most
//! `max_reconnects` times). The step's latency is the whole read, its time to first byte the
//! first event; each event is timed under `STEP/event` (the gap before it, or from its own send
//! time when its data carries one), each reopening under `STEP/reconnect`.

/// The tags an SSE step records beside its own.
pub const PHASES: [&str; 2] = ["event", "reconnect"];

#[derive(Clone, Debug)]
pub struct Sse {
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Events to read per iteration.
    pub events: u32,
    /// A JSON pointer into each event's data to its send time in Unix nanoseconds.
    pub timestamp: Option<String>,
    /// Reopenings allowed per iteration before it fails.
    pub max_reconnects: u32,
}
