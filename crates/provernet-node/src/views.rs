//! The API's answers (the wire contract, [`provernet_api_types`]) as the node works with them.

use provernet_api_types as t;
use provernet_types::{BlobRef, BuiltinVerifier, VerifierLimits};

pub use provernet_node_core::{keys, JobWork};
pub use t::{TaskKind, Work};

/// A program as the node works with it.
#[derive(Clone, Debug)]
pub struct ProgramWork {
    pub name: String,
    pub prover: BlobRef,
    /// `None` for built-in verifiers, which the validators run; else the verifier and what it
    /// may use on each run.
    pub verifier: Option<(BlobRef, VerifierLimits)>,
    /// The built-in verifier, if it has one.
    pub builtin: Option<BuiltinVerifier>,
}

impl From<&t::Program> for ProgramWork {
    fn from(p: &t::Program) -> Self {
        let (verifier, builtin) = match &p.verifier {
            t::Verifier::Program { blob, limits } => {
                (Some((blob.blob_ref(), VerifierLimits::from(*limits))), None)
            }
            t::Verifier::Builtin { name } => (None, Some(BuiltinVerifier::from(*name))),
        };
        ProgramWork { name: p.name.to_string(), prover: p.prover.blob_ref(), verifier, builtin }
    }
}
