//! Stage: analyze — verdicts from what was measured and observed: `doctor` judges the host for a
//! planned load; `diagnosis` explains a run's failures with the evidence it saw; `stress` finds the
//! breaking point; `target` judges the watched target's series (trends, leaks, thresholds).
//!
//! Must not import `engine` or `report`.

pub mod compare;
pub mod diagnosis;
pub mod doctor;
pub mod stress;
pub mod target;
