//! The mechanism lab's simulator (work in progress: the metrics and the closed-form contest
//! baselines come first; the discrete-event engine and the agent models follow).
//!
//! Floats are fine here: nothing in this crate is consensus state.

pub mod contest;
pub mod metrics;
