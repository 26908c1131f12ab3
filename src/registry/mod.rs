//! Stage: registry — OCI distribution workflows built on the engine's connections: auth (Basic and
//! Bearer challenges, tokens cached per scope), the load flows (`oci-pull`, `oci-push`, catalog and
//! tags walks) and the one-at-a-time client behind `oci seed`.
//!
//! Must not bypass `engine` (connections, TLS and HTTP/1.1 come from there).

pub mod auth;
pub mod client;
pub mod flow;
pub mod seed;
