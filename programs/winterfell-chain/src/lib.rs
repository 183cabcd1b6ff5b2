//! Built-in program: a winterfell STARK that x_(i+1) = x_i^3 + 42 was iterated a given number of
//! steps from a given start.
//!
//! The computation is sequential (each step needs the last), so the proof certifies work that
//! cannot be parallelised, and checking it takes milliseconds instead of re-running it. Over the
//! 128-bit field `f128`, with 32 queries, blowup 8 and no grinding (~96 bits of conjectured
//! security); the verifier refuses proofs below 95 bits.
//!
//! Statement (the job input `statement`, ASCII): `"<start> <steps>"`, where `steps` is a power
//! of two in `8..=2^24`. The proof file holds the result and the STARK proof. The verifier checks
//! the proof against the start and step count *from the job* (the step count is also checked
//! against the trace length inside the proof) and reports the proven result.
//!
//! Not zero-knowledge: the trace is not hidden (winterfell does not blind it), which is fine
//! here because the statement has no secret.

pub mod segments;

use winterfell::crypto::{hashers::Blake3_256, DefaultRandomCoin, MerkleTree};
use winterfell::math::{fields::f128::BaseElement, FieldElement, StarkField, ToElements};
use winterfell::matrix::ColMatrix;
use winterfell::{
    AcceptableOptions, Air, AirContext, Assertion, AuxRandElements, BatchingMethod,
    CompositionPoly, CompositionPolyTrace, ConstraintCompositionCoefficients,
    DefaultConstraintCommitment, DefaultConstraintEvaluator, DefaultTraceLde, EvaluationFrame,
    FieldExtension, PartitionOptions, Proof, ProofOptions, Prover, StarkDomain, Trace, TraceInfo,
    TracePolyTable, TraceTable, TransitionConstraintDegree,
};

pub const STEPS_MIN: u64 = 8;
pub const STEPS_MAX: u64 = 1 << 24;
/// Largest proof file accepted (proofs are ~70–100 KB at these sizes).
pub const PROOF_BYTES_MAX: usize = 4 << 20;
const MIN_SECURITY_BITS: u32 = 95;

type Hash = Blake3_256<BaseElement>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("statement is malformed: {0} (want \"<start> <steps>\", steps a power of two in 8..=16777216)")]
    Statement(String),
    #[error("proof file is malformed: {0}")]
    ProofFile(String),
    #[error("proving failed: {0}")]
    Proving(String),
}

/// What a job asks to be proven.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Statement {
    pub start: u128,
    pub steps: u64,
}

impl Statement {
    pub fn parse(text: &str) -> Result<Statement, Error> {
        let mut it = text.split_whitespace();
        let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Statement("expected two numbers".into()));
        };
        let start: u128 =
            a.parse().map_err(|_| Error::Statement(format!("start `{a}` is not a number")))?;
        let steps: u64 =
            b.parse().map_err(|_| Error::Statement(format!("steps `{b}` is not a number")))?;
        if !(STEPS_MIN..=STEPS_MAX).contains(&steps) || !steps.is_power_of_two() {
            return Err(Error::Statement(format!("steps {steps} out of range")));
        }
        if start >= BaseElement::MODULUS {
            return Err(Error::Statement("start is not below the field modulus".into()));
        }
        Ok(Statement { start, steps })
    }
}

/// The sequential function itself.
pub fn run_chain(start: u128, steps: u64) -> u128 {
    let mut x = BaseElement::new(start);
    for _ in 1..steps {
        x = x.exp(3u32.into()) + BaseElement::new(42);
    }
    x.as_int()
}

#[derive(Clone, Copy, Debug)]
pub struct PublicInputs {
    start: BaseElement,
    result: BaseElement,
}

impl ToElements<BaseElement> for PublicInputs {
    fn to_elements(&self) -> Vec<BaseElement> {
        vec![self.start, self.result]
    }
}

pub struct ChainAir {
    context: AirContext<BaseElement>,
    start: BaseElement,
    result: BaseElement,
}

impl std::fmt::Debug for ChainAir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainAir({} steps)", self.trace_length())
    }
}

impl Air for ChainAir {
    type BaseField = BaseElement;
    type PublicInputs = PublicInputs;

    fn new(trace_info: TraceInfo, pub_inputs: PublicInputs, options: ProofOptions) -> Self {
        let degrees = vec![TransitionConstraintDegree::new(3)];
        ChainAir {
            context: AirContext::new(trace_info, degrees, 2, options),
            start: pub_inputs.start,
            result: pub_inputs.result,
        }
    }

    fn evaluate_transition<E: FieldElement + From<Self::BaseField>>(
        &self,
        frame: &EvaluationFrame<E>,
        _periodic_values: &[E],
        result: &mut [E],
    ) {
        let x = frame.current()[0];
        result[0] = frame.next()[0] - (x.exp(3u32.into()) + E::from(42u32));
    }

    fn get_assertions(&self) -> Vec<Assertion<Self::BaseField>> {
        let last = self.trace_length() - 1;
        vec![Assertion::single(0, 0, self.start), Assertion::single(0, last, self.result)]
    }

    fn context(&self) -> &AirContext<Self::BaseField> {
        &self.context
    }
}

struct ChainProver {
    options: ProofOptions,
}

impl Prover for ChainProver {
    type BaseField = BaseElement;
    type Air = ChainAir;
    type Trace = TraceTable<BaseElement>;
    type HashFn = Hash;
    type VC = MerkleTree<Hash>;
    type RandomCoin = DefaultRandomCoin<Hash>;
    type TraceLde<E: FieldElement<BaseField = Self::BaseField>> =
        DefaultTraceLde<E, Hash, Self::VC>;
    type ConstraintCommitment<E: FieldElement<BaseField = Self::BaseField>> =
        DefaultConstraintCommitment<E, Hash, Self::VC>;
    type ConstraintEvaluator<'a, E: FieldElement<BaseField = Self::BaseField>> =
        DefaultConstraintEvaluator<'a, ChainAir, E>;

    fn get_pub_inputs(&self, trace: &Self::Trace) -> PublicInputs {
        PublicInputs { start: trace.get(0, 0), result: trace.get(0, trace.length() - 1) }
    }

    fn options(&self) -> &ProofOptions {
        &self.options
    }

    fn new_trace_lde<E: FieldElement<BaseField = Self::BaseField>>(
        &self,
        trace_info: &TraceInfo,
        main_trace: &ColMatrix<Self::BaseField>,
        domain: &StarkDomain<Self::BaseField>,
        partition_option: PartitionOptions,
    ) -> (Self::TraceLde<E>, TracePolyTable<E>) {
        DefaultTraceLde::new(trace_info, main_trace, domain, partition_option)
    }

    fn build_constraint_commitment<E: FieldElement<BaseField = Self::BaseField>>(
        &self,
        composition_poly_trace: CompositionPolyTrace<E>,
        num_constraint_composition_columns: usize,
        domain: &StarkDomain<Self::BaseField>,
        partition_options: PartitionOptions,
    ) -> (Self::ConstraintCommitment<E>, CompositionPoly<E>) {
        DefaultConstraintCommitment::new(
            composition_poly_trace,
            num_constraint_composition_columns,
            domain,
            partition_options,
        )
    }

    fn new_evaluator<'a, E: FieldElement<BaseField = Self::BaseField>>(
        &self,
        air: &'a ChainAir,
        aux_rand_elements: Option<AuxRandElements<E>>,
        composition_coefficients: ConstraintCompositionCoefficients<E>,
    ) -> Self::ConstraintEvaluator<'a, E> {
        DefaultConstraintEvaluator::new(air, aux_rand_elements, composition_coefficients)
    }
}

fn options() -> ProofOptions {
    ProofOptions::new(
        32,
        8,
        0,
        FieldExtension::None,
        8,
        31,
        BatchingMethod::Linear,
        BatchingMethod::Linear,
    )
}

/// Runs the chain and proves it: the proof file (result ‖ proof).
pub fn prove(s: Statement) -> Result<Vec<u8>, Error> {
    let steps = usize::try_from(s.steps).map_err(|e| Error::Proving(e.to_string()))?;
    let mut trace = TraceTable::new(1, steps);
    trace.fill(
        |state| state[0] = BaseElement::new(s.start),
        |_, state| state[0] = state[0].exp(3u32.into()) + BaseElement::new(42),
    );
    let result = trace.get(0, steps - 1);
    let proof = ChainProver { options: options() }
        .prove(trace)
        .map_err(|e| Error::Proving(e.to_string()))?;
    let mut out = result.as_int().to_le_bytes().to_vec();
    out.extend_from_slice(&proof.to_bytes());
    Ok(out)
}

/// Checks a proof file against the job's statement. `Ok(Some(result))` when valid, `Ok(None)`
/// when the proof is invalid or malformed (the prover's fault).
pub fn verify(s: Statement, proof_file: &[u8]) -> Result<Option<u128>, Error> {
    if proof_file.len() < 16 || proof_file.len() > PROOF_BYTES_MAX {
        return Ok(None);
    }
    let mut r = [0u8; 16];
    r.copy_from_slice(&proof_file[..16]);
    let result = u128::from_le_bytes(r);
    if result >= BaseElement::MODULUS {
        return Ok(None);
    }
    let Ok(proof) = Proof::from_bytes(&proof_file[16..]) else { return Ok(None) };
    if proof.trace_info().length() as u64 != s.steps {
        return Ok(None);
    }
    let inputs =
        PublicInputs { start: BaseElement::new(s.start), result: BaseElement::new(result) };
    let acceptable = AcceptableOptions::MinConjecturedSecurity(MIN_SECURITY_BITS);
    let ok = winterfell::verify::<ChainAir, Hash, DefaultRandomCoin<Hash>, MerkleTree<Hash>>(
        proof,
        inputs,
        &acceptable,
    )
    .is_ok();
    Ok(ok.then_some(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_parse_strictly() {
        assert_eq!(Statement::parse("3 1024").unwrap(), Statement { start: 3, steps: 1024 });
        for bad in ["", "3", "3 1000", "3 4", "x 1024", "3 1024 5", "3 33554432"] {
            assert!(Statement::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prove_verify_and_reject() {
        let s = Statement { start: 3, steps: 1 << 10 };
        let file = prove(s).unwrap();
        assert_eq!(verify(s, &file).unwrap(), Some(run_chain(3, 1 << 10)));
        // Another start, or another length, with the same proof.
        assert_eq!(verify(Statement { start: 4, ..s }, &file).unwrap(), None);
        assert_eq!(verify(Statement { steps: 1 << 11, ..s }, &file).unwrap(), None);
        // A wrong claimed result.
        let mut wrong = file.clone();
        wrong[0] ^= 1;
        assert_eq!(verify(s, &wrong).unwrap(), None);
        // A tampered proof body.
        let mut bad = file.clone();
        let mid = 16 + (file.len() - 16) / 2;
        bad[mid] ^= 0x10;
        assert_eq!(verify(s, &bad).unwrap(), None);
        assert_eq!(verify(s, &file[..10]).unwrap(), None);
    }
}
