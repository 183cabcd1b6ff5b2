//! The mechanism lab's simulator: a seeded discrete-event engine that drives the chain's own
//! mechanism code (`provernet-mechanism`) with agent models, the decentralization metrics, the
//! closed-form contest baselines, the scenarios S1–S5 and the reports.
//!
//! Floats are fine here: nothing in this crate is consensus state.

pub mod contest;
pub mod engine;
pub mod metrics;
pub mod report;
pub mod scenario;

pub use engine::{run, Mech, RunResult};
pub use report::{simulate, MechReport, Report};
pub use scenario::Scenario;
