//! A WebSocket step: pure data (`engine::ws` runs it).
//!
//! Three patterns a registry's watch API is tested with:
//! - **echo** (request/response): a virtual user keeps one connection and, each iteration, sends a
//!   message and waits for the next one back — the step's latency is that round trip, and its
//!   checks judge the reply;
//! - **subscribe**: each iteration connects, optionally sends a subscription message, receives
//!   `receive` messages (each under `STEP/message`: the gap before it, or, when the message carries
//!   its send time, the delay from the event to its delivery), and closes;
//! - **hold**: each iteration connects, holds the idle connection for a while, and closes — many
//!   long-lived connections at a low message rate.
//!
//! Every step also records its connections' handshakes (`STEP/handshake`, with connect and TLS
//! times) and ends (`STEP/close`, by the close code the server sent; 1006 when it dropped without
//! one).

use std::time::Duration;

use super::template::Template;

/// The tags a WebSocket step records beside its own.
pub const PHASES: [&str; 3] = ["handshake", "message", "close"];

#[derive(Clone, Debug)]
pub struct Ws {
    /// Path and query of the upgrade request (`/ws/echo`).
    pub path: String,
    /// Extra headers of the upgrade request (a token, a subprotocol).
    pub headers: Vec<(String, String)>,
    pub mode: Mode,
}

#[derive(Clone, Debug)]
pub enum Mode {
    /// Send `message` (rendered per iteration), wait for the next message back.
    Echo { message: Template },
    /// Connect, send `send` if any, receive `receive` messages, close.
    Subscribe {
        send: Option<Template>,
        receive: u32,
        /// A JSON pointer to the message's send time in Unix nanoseconds (`/sent_unix_nanos`):
        /// each message is then timed from that instant to its delivery.
        timestamp: Option<String>,
    },
    /// Connect, hold the connection idle this long, close.
    Hold { hold: Duration },
}

impl Ws {
    /// Whether the step's own tag counts requests (echo round trips) or whole sessions.
    pub fn is_echo(&self) -> bool {
        matches!(self.mode, Mode::Echo { .. })
    }

    /// The templates rendered per iteration (echo's message, a subscription's).
    pub fn template(&self) -> Option<&Template> {
        match &self.mode {
            Mode::Echo { message } => Some(message),
            Mode::Subscribe { send, .. } => send.as_ref(),
            Mode::Hold { .. } => None,
        }
    }
}
