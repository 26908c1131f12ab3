//! Step kinds the engine runs without knowing them. A plan step that carries a `flow` (a registry
//! pull, push, catalog or tags walk today; other protocols' steps later) is handed, with the slot's
//! connections ([`Io`]), to the [`FlowRunner`] the run was given — implemented outside the engine
//! (`registry::flow::Runner`), so the engine's loop never changes for a new kind.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::Io;
use crate::plan::flow::Flow;
use crate::sample::Sample;

/// One iteration of a flow step, as the runner sees it.
pub struct Iteration {
    pub intended: Instant,
    /// The scenario's global iteration number.
    pub number: u64,
    /// The virtual user's (slot's) global index.
    pub vu: u64,
    /// The run's seed.
    pub seed: u64,
}

/// What a runner's iteration is: a future on the worker's thread, borrowing its connections.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Sample> + 'a>>;

/// Runs flow steps on a slot's connections.
pub trait FlowRunner: Send + Sync {
    /// A virtual user's state for one flow step (credentials, tokens, buffers), kept across its
    /// iterations.
    fn state(&self, flow: &Flow) -> Box<dyn Any>;

    /// Runs one iteration of `flow` with its templates rendered into `args` (in
    /// `Flow::templates` order), recording every request through `io` under `tag` and its phases,
    /// and returns the sample of the whole operation.
    fn run<'a>(
        &'a self,
        flow: &'a Flow,
        io: &'a Io<'a>,
        tag: usize,
        state: &'a mut dyn Any,
        args: &'a [String],
        it: Iteration,
    ) -> StepFuture<'a>;
}
