//! The API's answers (the wire contract, [`provernet_api_types`]) as the node works with them.

use provernet_api_types as t;
use provernet_types::{
    BlobRef, BuiltinVerifier, FileName, JobId, MicroCredits, ProgramId, Resources, Seconds,
    VerifierLimits,
};

pub use t::{TaskKind, Work};

/// The attempts `work` lists, as (job, attempt).
pub fn keys(work: &Work) -> std::collections::BTreeSet<(JobId, u8)> {
    work.tasks.iter().map(|t| (t.job.id, t.attempt)).collect()
}

/// A job as the node works with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobWork {
    pub id: JobId,
    pub program: ProgramId,
    pub inputs: Vec<(FileName, BlobRef)>,
    pub resources: Resources,
    pub time_limit: Seconds,
    /// The proof files of each attempt.
    pub proofs: Vec<Vec<(FileName, BlobRef)>>,
    /// The chain's posted price for one attempt.
    pub quote: MicroCredits,
    /// The most one attempt may be paid (auctions).
    pub max_fee: MicroCredits,
}

fn named(list: &[t::NamedBlob]) -> Vec<(FileName, BlobRef)> {
    list.iter().map(|n| (n.name.clone(), n.blob_ref())).collect()
}

impl From<&t::Job> for JobWork {
    fn from(j: &t::Job) -> Self {
        JobWork {
            id: j.id,
            program: j.program,
            inputs: named(&j.inputs),
            resources: j.resources.resources(),
            time_limit: j.time_limit_s,
            proofs: j.attempts.iter().map(|a| named(&a.proof)).collect(),
            quote: j.fee_per_prover_micro_credits,
            max_fee: j.max_fee_micro_credits,
        }
    }
}

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
