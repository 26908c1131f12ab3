//! Stage: registry — OCI distribution workflows built on the engine's connections: a client that
//! answers Basic and Bearer challenges (tokens cached per scope), and `oci seed`.
//!
//! Must not bypass `engine` (connections, TLS and HTTP/1.1 come from there).

pub mod client;
pub mod seed;
