//! One file per subcommand: each wires the stages for its command, owns its help examples' meaning,
//! and maps failures to exit codes through `app`. `execute` runs a built plan for `run`, `demo`,
//! `oci` and `stress`; `progress` (the live view) and `metrics` (the live endpoint) show it going;
//! `events` carries out a plan's events beside the load.

pub mod compare;
pub mod demo;
pub mod docs;
pub mod doctor;
pub mod events;
pub mod execute;
pub mod k8s;
pub mod merge;
pub mod metrics;
pub mod oci;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod stress;
