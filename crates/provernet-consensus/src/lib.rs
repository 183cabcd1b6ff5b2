//! Run the ledger on commonware's simplex BFT consensus: blocks, mempool, executor, wiring.
//!
//! See ARCHITECTURE.md ("Consensus") for why commonware and how the pieces fit.

pub mod app;
pub mod blobnet;
pub mod block;
pub mod chain;
pub mod engine;
pub mod mempool;
pub mod network;
pub mod node;

pub use app::{PublicKey, Scheme};
pub use blobnet::BlobNet;
pub use block::{Block, Header};
pub use chain::{BlobGate, Chain, ChainConfig, Finalized, Tip};
pub use engine::{start, Channels, Submitter, ValidatorConfig};
pub use mempool::{AdmitError, Admitted, Mempool, MempoolConfig, Source};
