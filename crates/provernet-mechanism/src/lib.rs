//! Pricing and allocation mechanisms: pure integer math shared by the chain and the simulator.
//!
//! Nothing here does I/O, reads a clock or uses floating point. Randomness comes in as a
//! [`Seed`] derived from the block's randomness, so every validator computes the same answer.

pub mod allocation;
pub mod pricing;

pub use allocation::{
    allocator, pick_committee, Allocator, Candidate, RandomWithFallback, Request, Seed,
};
pub use pricing::PriceTable;
