//! regbench: a load generator and benchmark for API registries.
//!
//! The modules are the pipeline (DESIGN.md §2; docs/design-notes.md "Layout" says what each must
//! not import, and tests/layout.rs enforces it):
//! `app` → `cmd/` → `scenario` → `plan` → `schedule` → `engine` (+ `registry` flows) → `sample` →
//! `aggregate` → `report`, plus `serve`, the built-in demo registry target.

pub mod aggregate;
pub mod analyze;
pub mod app;
pub mod civil;
pub mod cli;
pub mod cmd;
pub mod engine;
pub mod headers;
pub mod host;
pub mod plan;
pub mod registry;
pub mod report;
pub mod sample;
pub mod scenario;
pub mod schedule;
pub mod serve;
pub mod telemetry;
pub mod util;
