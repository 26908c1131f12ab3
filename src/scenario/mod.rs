//! Stage: scenario — the TOML scenario file: its format, its validation and its errors. Turns a
//! file (plus CLI overrides) into a validated [`Plan`](crate::plan::Plan) and thresholds, refusing bad
//! input with `file:line:column: what was expected` before any request is sent.
//!
//! Must not do I/O against targets.

pub mod data;
pub mod file;
pub mod grpc;
mod load;

pub use load::{load, Loaded, Overrides, ScenarioError};
