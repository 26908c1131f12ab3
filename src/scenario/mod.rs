//! Stage: scenario — the TOML scenario file: its format, validation, templates and data files. Turns a
//! file (plus CLI overrides) into a validated [`Plan`](crate::plan::Plan) and thresholds, refusing bad
//! input with `file:line:column: what was expected` before any request is sent.
//!
//! Must not do I/O against targets.

pub mod check;
pub mod data;
pub mod file;
mod load;
pub mod template;
pub mod threshold;

pub use load::{load, Loaded, Overrides, ScenarioError};
