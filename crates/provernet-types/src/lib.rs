//! Ids, quantities with units, resources, the canonical codec, keys and transactions.
//!
//! This is layer 0: everything above shares these types, and nothing here does I/O.

pub mod codec;
pub mod crypto;
pub mod ids;
pub mod limits;
pub mod pieces;
pub mod resources;
#[cfg(feature = "openapi")]
pub(crate) mod schema;
#[cfg(not(feature = "openapi"))]
pub(crate) mod schema {
    /// Without the `openapi` feature, schemas are not built.
    macro_rules! schema {
        ($($t:tt)*) => {};
    }
    pub(crate) use schema;
}
pub mod tx;
pub mod units;
pub mod workflow;

pub use codec::{decode_exact, BoundedString, BoundedVec, CodecError, Decode, Encode, Reader};
pub use crypto::{Keypair, Signature, SignatureError};
pub use ids::{
    domain_hash, AccountId, BlobHash, BlockHash, Domain, JobId, ProgramId, ProverId, StateRoot,
    TxHash, WorkflowId,
};
pub use resources::{
    first_duplicate, BlobRef, BuiltinVerifier, FileName, Label, NamedBlob, ProverSet, Resources,
};
pub use tx::{
    bid_commitment, check_outputs, result_commitment, AttemptOutcome, Code, ImageRef, JobSpec,
    LayerRef, MechanismKind, OutputRuleError, ProgramFailure, ProgramManifest, SignedTx,
    Transaction, TxBody, TxDecodeError, Usage, Verdict, VerifiedTx, VerifierLimits, VerifierSpec,
};
pub use units::{
    Blocks, Bytes, GpuCount, Height, MicroCredits, MilliCores, Millis, Nonce, ParseUnitError,
    Seconds,
};
