//! Apply transactions to ledger state deterministically.
//!
//! The ledger knows accounts, programs, provers and jobs, and moves every job through its
//! lifecycle (see [`apply`] for the protocol). It is pure: no I/O, no clock, no floating point,
//! no unordered iteration. The same state and the same blocks give the same state root on every
//! machine.

pub mod apply;
pub mod archive;
pub mod contract;
pub mod entities;
pub mod error;
pub mod events;
pub mod market;
mod money;
mod overlay;
pub mod params;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod workflow;

pub use apply::{
    apply_block, check_tx, genesis, job_escrow, job_quote, BlockContext, BlockError, BlockOutput,
    GenesisError, Tally, QUEUE_SCAN_MAX,
};
pub use archive::{Archived, Peaks};
pub use entities::*;
pub use error::TxError;
pub use events::{Event, Fault, PaymentKind, Receipt};
pub use market::{opening, Opening};
pub use params::{ChainParams, Genesis, ProbeSpec};
pub use state::{ChangeSet, LoadError, Meta, State, StateKey, Table};

#[cfg(test)]
mod tests;
