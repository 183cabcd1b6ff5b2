//! The API's answers (the wire contract, [`provernet_api_types`]) as the node works with them.

use provernet_api_types as t;
use provernet_types::{BuiltinVerifier, Code, VerifierLimits};

pub use provernet_node_core::{keys, JobWork};
pub use t::{TaskKind, Work};

/// A program as the node works with it.
#[derive(Clone, Debug)]
pub struct ProgramWork {
    pub name: String,
    pub prover: Code,
    /// `None` for built-in verifiers, which the validators run; else the verifier and what it
    /// may use on each run.
    pub verifier: Option<(Code, VerifierLimits)>,
    /// The built-in verifier, if it has one.
    pub builtin: Option<BuiltinVerifier>,
    /// The proof files every proof of it must have.
    pub outputs: Vec<provernet_types::FileName>,
}

impl TryFrom<&t::Program> for ProgramWork {
    type Error = String;
    fn try_from(p: &t::Program) -> Result<Self, String> {
        let code = |c: &t::Code| {
            c.code().ok_or_else(|| format!("program {}: an image digest that is not sha256", p.id))
        };
        let (verifier, builtin) = match &p.verifier {
            t::Verifier::Program { code: c, limits } => {
                (Some((code(c)?, VerifierLimits::from(*limits))), None)
            }
            t::Verifier::Builtin { name } => (None, Some(BuiltinVerifier::from(*name))),
        };
        Ok(ProgramWork {
            name: p.name.to_string(),
            prover: code(&p.prover)?,
            verifier,
            builtin,
            outputs: p.outputs.clone(),
        })
    }
}
