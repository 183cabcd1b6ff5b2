//! Pricing and allocation mechanisms: pure integer math shared by the chain and the simulator.
//!
//! Nothing here does I/O, reads a clock or uses floating point. Randomness comes in as a
//! [`Seed`] derived from the block's randomness, so every validator computes the same answer.

pub mod allocation;
pub mod market;
pub mod pricing;

pub use allocation::{pick_committee, Candidate, Request, Seed};
pub use market::{
    mechanism, Decision, LowestBid, Mechanism, MechanismParams, Offer, OpenRace,
    RandomWithFallback, ReverseDutch, Round, StakeLottery,
};
pub use pricing::PriceTable;
