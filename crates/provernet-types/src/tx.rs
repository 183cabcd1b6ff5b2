//! Transactions: what accounts, provers and validators sign and the chain orders.
//!
//! Bytes from the network become a [`SignedTx`] through [`SignedTx::decode`] (bounded, no
//! trailing bytes), then a [`VerifiedTx`] through [`SignedTx::verify`]. The ledger only accepts
//! [`VerifiedTx`], so it cannot be handed a transaction whose signature nobody checked; the
//! (expensive) signature check can run at mempool admission or in parallel before execution.

use crate::codec::{decode_exact, BoundedString, BoundedVec, CodecError, Decode, Encode, Reader};
use crate::crypto::{verify, Keypair, Signature, SignatureError, TX_DOMAIN};
use crate::ids::{AccountId, BlobHash, JobId, ProgramId, TxHash, WorkflowId};
use crate::limits::*;
use crate::resources::{
    BlobRef, BuiltinVerifier, FileName, Label, NamedBlob, ProverSet, Resources,
};
use crate::units::{Bytes, Height, MicroCredits, MilliCores, Millis, Nonce, Seconds};
use crate::workflow::WorkflowSpec;
use crate::{codec_struct, codec_unit_enum};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a program's verifier may use each time a committee member runs it: the program's
/// manifest sets it, within the chain's bounds (`verifier_limits_max`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VerifierLimits {
    pub cores: MilliCores,
    pub memory: Bytes,
    pub time_limit: Seconds,
}
codec_struct!(VerifierLimits { cores, memory, time_limit });

impl VerifierLimits {
    /// 1 core, 2 GiB, 120 s: enough for the verifiers of the built-in programs.
    pub const DEFAULT: VerifierLimits = VerifierLimits {
        cores: MilliCores(1000),
        memory: Bytes(2 << 30),
        time_limit: Seconds(120),
    };

    /// The machine a committee member needs to run the verifier.
    pub fn resources(&self) -> Resources {
        Resources { cores: self.cores, memory: self.memory, gpus: crate::units::GpuCount(0) }
    }

    /// Whether every limit is at least one unit and at most `max`'s.
    pub fn within(&self, max: &VerifierLimits) -> bool {
        self.cores.0 > 0
            && self.memory.0 >= 16 << 20
            && self.time_limit.0 > 0
            && self.cores <= max.cores
            && self.memory <= max.memory
            && self.time_limit <= max.time_limit
    }
}

/// One layer of an image: its blob (the compressed tar, as the manifest lists it) and what it
/// unpacks to, which a node enforces while unpacking (a layer that writes more is refused).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LayerRef {
    pub blob: BlobRef,
    /// Bytes of file data it unpacks to.
    pub unpacked: Bytes,
    /// Entries in its tar (files, directories, links, whiteouts).
    pub entries: u32,
}
codec_struct!(LayerRef { blob, unpacked, entries });

/// An OCI image: its manifest, config and layers travel as ordinary blobs; `digest` is what
/// users know it by (`sha256:` of the manifest's bytes), and a node checks that the manifest's
/// bytes hash to it, and that the manifest names exactly these config and layer blobs, before
/// it unpacks anything.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImageRef {
    pub digest: [u8; 32],
    pub manifest: BlobRef,
    pub config: BlobRef,
    pub layers: BoundedVec<LayerRef, IMAGE_LAYERS_MAX>,
}
codec_struct!(ImageRef { digest, manifest, config, layers });

impl ImageRef {
    /// `sha256:<64 hex digits>`.
    pub fn digest_text(&self) -> String {
        let mut s = String::from("sha256:");
        for b in self.digest {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// A program's code: a static executable, or an OCI image.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Code {
    /// One executable file that needs nothing from the machine it runs on (static).
    Executable(BlobRef),
    Image(Box<ImageRef>),
}

impl Code {
    /// Every blob the code is made of.
    pub fn blobs(&self) -> Vec<BlobRef> {
        match self {
            Code::Executable(b) => vec![*b],
            Code::Image(i) => {
                let mut v = vec![i.manifest, i.config];
                v.extend(i.layers.iter().map(|l| l.blob));
                v
            }
        }
    }

    /// The executable, if the code is one.
    pub fn executable(&self) -> Option<BlobRef> {
        match self {
            Code::Executable(b) => Some(*b),
            Code::Image(_) => None,
        }
    }
}

impl From<BlobRef> for Code {
    fn from(b: BlobRef) -> Code {
        Code::Executable(b)
    }
}

impl Encode for Code {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Code::Executable(b) => {
                out.push(0);
                b.encode_to(out);
            }
            Code::Image(i) => {
                out.push(1);
                i.encode_to(out);
            }
        }
    }
}

impl Decode for Code {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("code")? {
            0 => Ok(Code::Executable(Decode::decode_from(r)?)),
            1 => Ok(Code::Image(Box::new(Decode::decode_from(r)?))),
            tag => Err(CodecError::InvalidTag { what: "code", tag }),
        }
    }
}

/// How a program's proofs are checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum VerifierSpec {
    /// A verifier (an executable or an image) run by a committee of provers, within `limits`.
    Program { blob: Code, limits: VerifierLimits },
    /// A proof system the validators check natively.
    Builtin(BuiltinVerifier),
}

impl Encode for VerifierSpec {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            VerifierSpec::Program { blob, limits } => {
                out.push(0);
                blob.encode_to(out);
                limits.encode_to(out);
            }
            VerifierSpec::Builtin(k) => {
                out.push(1);
                k.encode_to(out);
            }
        }
    }
}

impl Decode for VerifierSpec {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("verifier")? {
            0 => Ok(VerifierSpec::Program {
                blob: Decode::decode_from(r)?,
                limits: Decode::decode_from(r)?,
            }),
            1 => Ok(VerifierSpec::Builtin(Decode::decode_from(r)?)),
            tag => Err(CodecError::InvalidTag { what: "verifier", tag }),
        }
    }
}

/// A program's manifest. Its hash is the [`ProgramId`], so a program is immutable: changing any
/// byte of either executable makes a different program.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProgramManifest {
    pub name: FileName,
    pub prover: Code,
    pub verifier: VerifierSpec,
    pub default_resources: Resources,
    pub default_time_limit: Seconds,
    /// Labels a prover must carry to run this program (e.g. `cpu=x86-64-v3`).
    pub requires: BoundedVec<Label, REQUIRED_LABELS_MAX>,
    /// Inputs every job must provide, by name (jobs may add others).
    pub inputs: BoundedVec<FileName, JOB_INPUTS_MAX>,
    /// Proof files every proof of this program has, by name (a proof may add others): the
    /// ledger refuses a proof without them, and a workflow may wire them into other nodes.
    pub outputs: BoundedVec<FileName, PROOF_FILES_MAX>,
}
codec_struct!(ProgramManifest {
    name,
    prover,
    verifier,
    default_resources,
    default_time_limit,
    requires,
    inputs,
    outputs
});

impl ProgramManifest {
    pub fn id(&self) -> ProgramId {
        ProgramId(crate::ids::domain_hash("provernet program manifest v1", &[&self.encode()]))
    }
}

/// The allocation mechanism a job asks for. The rules live in `provernet-mechanism`; which
/// kinds a chain accepts is a chain parameter.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum MechanismKind {
    /// A uniformly random eligible prover per attempt, a fresh one after each failure.
    #[default]
    RandomWithFallback,
    /// A random eligible prover per attempt, weighted by its stake.
    StakeLinear,
    /// A random eligible prover per attempt, weighted by the square root of its stake.
    StakeSqrt,
    /// The price ramps from the quote to the job's max fee; the first prover to lock the job
    /// gets it at the current price and posts collateral.
    ReverseDutch,
    /// Sealed bids for a fixed window; the lowest bid wins and is paid what it bid.
    LowestBid,
    /// Nobody is assigned: the first valid proof wins the fee.
    OpenRace,
}
codec_unit_enum!(MechanismKind {
    RandomWithFallback = 0,
    StakeLinear = 1,
    StakeSqrt = 2,
    ReverseDutch = 3,
    LowestBid = 4,
    OpenRace = 5,
});

impl MechanismKind {
    pub const ALL: [MechanismKind; 6] = [
        MechanismKind::RandomWithFallback,
        MechanismKind::StakeLinear,
        MechanismKind::StakeSqrt,
        MechanismKind::ReverseDutch,
        MechanismKind::LowestBid,
        MechanismKind::OpenRace,
    ];

    /// Whether the kind allocates by auction (a round of locks or sealed bids, with
    /// collateral): the job escrows its max fee and pays the clearing price.
    pub fn is_auction(self) -> bool {
        matches!(self, MechanismKind::ReverseDutch | MechanismKind::LowestBid)
    }

    /// Whether the chain itself picks the prover at the posted price (random and the stake
    /// lotteries): such jobs wait in the chain's first-come, first-served queue for a prover.
    pub fn is_assigned(self) -> bool {
        matches!(
            self,
            MechanismKind::RandomWithFallback
                | MechanismKind::StakeLinear
                | MechanismKind::StakeSqrt
        )
    }

    /// The name used in configuration files, on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            MechanismKind::RandomWithFallback => "random",
            MechanismKind::StakeLinear => "stake-linear",
            MechanismKind::StakeSqrt => "stake-sqrt",
            MechanismKind::ReverseDutch => "reverse-dutch",
            MechanismKind::LowestBid => "lowest-bid",
            MechanismKind::OpenRace => "open-race",
        }
    }
}

impl std::fmt::Display for MechanismKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MechanismKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MechanismKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = MechanismKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown mechanism {s:?}; known: {}", names.join(", "))
        })
    }
}

/// What a requester asks for when submitting a job.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobSpec {
    pub program: ProgramId,
    pub inputs: BoundedVec<NamedBlob, JOB_INPUTS_MAX>,
    /// `None` takes the program's default resources.
    pub resources: Option<Resources>,
    pub time_limit: Seconds,
    /// Provers running the job at once (1 to [`REDUNDANCY_MAX`]).
    pub redundancy: u8,
    pub prover_set: ProverSet,
    pub mechanism: MechanismKind,
    /// The most the requester will pay; must cover the quote. The quote, not this, is charged.
    pub max_fee: MicroCredits,
}
codec_struct!(JobSpec {
    program,
    inputs,
    resources,
    time_limit,
    redundancy,
    prover_set,
    mechanism,
    max_fee
});

/// What a prover measured while running an attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Usage {
    pub wall: Millis,
    pub cpu: Millis,
    pub peak_memory: Bytes,
}
codec_struct!(Usage { wall, cpu, peak_memory });

/// How a prover program failed, as the prover that ran it saw it: the program's own doing,
/// with the job's inputs and resources. Claimed by a prover, confirmed only by another
/// prover's independent run (see the ledger's claim rules).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProgramFailure {
    /// It exited with this non-zero code.
    Exit(u32),
    /// A signal ended it (not the node's time-limit watchdog).
    Signal(u32),
    /// It ran out of the job's memory.
    OutOfMemory,
    /// It exited 0 without writing any proof file.
    NoOutput,
    /// Its outputs broke the output rules ([`check_outputs`]).
    OutputRules,
    /// Its executable is neither an ELF nor a `#!` script.
    NotExecutable,
}

impl ProgramFailure {
    pub fn name(&self) -> String {
        match self {
            ProgramFailure::Exit(c) => format!("exit {c}"),
            ProgramFailure::Signal(s) => format!("signal {s}"),
            ProgramFailure::OutOfMemory => "out of memory".into(),
            ProgramFailure::NoOutput => "no output".into(),
            ProgramFailure::OutputRules => "outputs break the rules".into(),
            ProgramFailure::NotExecutable => "not executable".into(),
        }
    }
}

impl Encode for ProgramFailure {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            ProgramFailure::Exit(c) => {
                out.push(0);
                c.encode_to(out);
            }
            ProgramFailure::Signal(s) => {
                out.push(1);
                s.encode_to(out);
            }
            ProgramFailure::OutOfMemory => out.push(2),
            ProgramFailure::NoOutput => out.push(3),
            ProgramFailure::OutputRules => out.push(4),
            ProgramFailure::NotExecutable => out.push(5),
        }
    }
}

impl Decode for ProgramFailure {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(match r.u8("program failure")? {
            0 => ProgramFailure::Exit(Decode::decode_from(r)?),
            1 => ProgramFailure::Signal(Decode::decode_from(r)?),
            2 => ProgramFailure::OutOfMemory,
            3 => ProgramFailure::NoOutput,
            4 => ProgramFailure::OutputRules,
            5 => ProgramFailure::NotExecutable,
            tag => return Err(CodecError::InvalidTag { what: "program failure", tag }),
        })
    }
}

/// Why a set of output files breaks the output rules.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OutputRuleError {
    /// No file at all: a proof has at least one.
    Empty,
    /// More than [`PROOF_FILES_MAX`] files.
    TooMany(usize),
    /// A file larger than the proof file limit ([`crate::limits::PROOF_FILE_BYTES_MAX`]).
    TooLarge { name: FileName, size: Bytes },
    /// Two files of one name.
    Duplicate(FileName),
    /// An entry that is not a plain file with a contract name (the node saw it; the chain
    /// only ever sees contract names).
    NotAFile(String),
}

impl std::fmt::Display for OutputRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputRuleError::Empty => write!(f, "no proof file"),
            OutputRuleError::TooMany(n) => {
                write!(f, "{n} proof files, more than the {PROOF_FILES_MAX} allowed")
            }
            OutputRuleError::TooLarge { name, size } => write!(
                f,
                "proof file `{name}` is {} bytes, above the limit of {} bytes",
                size.0,
                crate::limits::PROOF_FILE_BYTES_MAX.0
            ),
            OutputRuleError::Duplicate(n) => write!(f, "proof file `{n}` is given twice"),
            OutputRuleError::NotAFile(n) => {
                write!(f, "`{n}` in the output directory is not a plain file with a valid name")
            }
        }
    }
}

/// The output rules, one rule for the ledger (a result's proof files) and the prover node (what
/// a program left in `/job/out`): at least one and at most [`PROOF_FILES_MAX`] files, each
/// within the proof file limit, no name twice.
pub fn check_outputs<'a>(
    files: impl IntoIterator<Item = (&'a FileName, Bytes)>,
) -> Result<(), OutputRuleError> {
    let files: Vec<(&FileName, Bytes)> = files.into_iter().collect();
    if files.is_empty() {
        return Err(OutputRuleError::Empty);
    }
    if files.len() > PROOF_FILES_MAX {
        return Err(OutputRuleError::TooMany(files.len()));
    }
    if let Some((name, size)) = files.iter().find(|(_, s)| *s > crate::limits::PROOF_FILE_BYTES_MAX)
    {
        return Err(OutputRuleError::TooLarge { name: (*name).clone(), size: *size });
    }
    if let Some(dup) = crate::first_duplicate(files.iter().map(|(n, _)| *n)) {
        return Err(OutputRuleError::Duplicate(dup.clone()));
    }
    Ok(())
}

/// How an attempt ended, as its prover reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AttemptOutcome {
    /// The proof files, revealed after [`TxBody::CommitResult`] bound them to the prover.
    Proof(BoundedVec<NamedBlob, PROOF_FILES_MAX>),
    /// The program failed on its own (a claim; see [`ProgramFailure`]), with the tail of its
    /// stderr.
    ProgramError { failure: ProgramFailure, reason: BoundedString<REASON_BYTES_MAX> },
    /// The program was still running at the job's time limit, given the job's resources: the
    /// limit was too short, or the prover's machine too slow (a claim, settled by other
    /// provers' runs).
    TimeLimit { reason: BoundedString<REASON_BYTES_MAX> },
}

impl Encode for AttemptOutcome {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            AttemptOutcome::Proof(files) => {
                out.push(0);
                files.encode_to(out);
            }
            AttemptOutcome::ProgramError { failure, reason } => {
                out.push(1);
                failure.encode_to(out);
                reason.encode_to(out);
            }
            AttemptOutcome::TimeLimit { reason } => {
                out.push(2);
                reason.encode_to(out);
            }
        }
    }
}

impl Decode for AttemptOutcome {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("attempt outcome")? {
            0 => Ok(AttemptOutcome::Proof(Decode::decode_from(r)?)),
            1 => Ok(AttemptOutcome::ProgramError {
                failure: Decode::decode_from(r)?,
                reason: Decode::decode_from(r)?,
            }),
            2 => Ok(AttemptOutcome::TimeLimit { reason: Decode::decode_from(r)? }),
            tag => Err(CodecError::InvalidTag { what: "attempt outcome", tag }),
        }
    }
}

/// A verifier's verdict on a proof.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The proof proves the job's statement.
    Valid,
    /// It does not.
    Invalid,
    /// The verification could not run on the requester's side of the contract: its statement
    /// cannot be read, or its verifier program failed (neither 0 nor 1), ran out of its
    /// limits, or is not executable. The requester pays for the proof.
    CannotVerify,
}
codec_unit_enum!(Verdict { Valid = 0, Invalid = 1, CannotVerify = 2 });

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::CannotVerify => "cannot_verify",
        }
    }
}

/// What a prover commits to before revealing its proof: its files, bound to the prover and
/// the job, so that nobody else can post them as its own.
pub fn result_commitment(
    prover: &AccountId,
    job: &JobId,
    files: &BoundedVec<NamedBlob, PROOF_FILES_MAX>,
) -> [u8; 32] {
    crate::ids::domain_hash("provernet result commitment v1", &[&prover.0, &job.0, &files.encode()])
}

/// Everything a transaction can do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxBody {
    /// Move credits to another account (created if new).
    Transfer { to: AccountId, amount: MicroCredits },
    /// Register an immutable program.
    RegisterProgram { manifest: ProgramManifest },
    /// Register the signer as a prover with a declared capacity, staking `stake`.
    RegisterProver {
        capacity: Resources,
        labels: BoundedVec<Label, PROVER_LABELS_MAX>,
        stake: MicroCredits,
    },
    /// Announce exit; the stake returns after the exit delay once no work is held.
    DeregisterProver,
    /// Submit a proof job; the quote is escrowed.
    SubmitJob(JobSpec),
    /// Cancel a job that no prover is running yet.
    CancelJob { job: JobId },
    /// The assigned prover takes attempt `attempt` of `job`.
    AcceptJob { job: JobId, attempt: u8 },
    /// The assigned prover declines (quota-limited, not penalised).
    DeclineJob { job: JobId, attempt: u8 },
    /// The assigned prover reports the outcome of its attempt: a failure of a running one, or
    /// the proof of a committed one (its reveal).
    PostResult { job: JobId, attempt: u8, outcome: AttemptOutcome, usage: Usage },
    /// Any eligible prover enters a job's open race with the commitment
    /// ([`result_commitment`]) of its proof, to be revealed with [`TxBody::PostResult`].
    PostRaceProof { job: JobId, commitment: [u8; 32] },
    /// A committee member's verdict on an attempt's proof.
    Vote { job: JobId, attempt: u8, verdict: Verdict },
    /// Lock a reverse-Dutch job at its current price in the auction round that opened at
    /// `round`: the first eligible lock wins the attempt and posts collateral, and the attempt
    /// starts running at once. Naming the round keeps a lock that failed from being replayed in
    /// a later round, when its prover no longer expects it.
    LockJob { job: JobId, round: Height },
    /// A sealed bid on a lowest-bid job: `commitment` is [`bid_commitment`] of the price and a
    /// secret salt, revealed with [`TxBody::RevealBid`] after the bidding window.
    BidJob { job: JobId, commitment: [u8; 32] },
    /// Opens the signer's sealed bid on a lowest-bid job.
    RevealBid { job: JobId, price: MicroCredits, salt: [u8; 32] },
    /// The assigned prover of a running attempt commits to its proof ([`result_commitment`])
    /// before revealing it.
    CommitResult { job: JobId, attempt: u8, commitment: [u8; 32] },
    /// Submit a workflow: a graph of jobs wired output to input, escrowed whole
    /// ([`crate::workflow`]).
    SubmitWorkflow(WorkflowSpec),
    /// Cancel a workflow: nodes not yet jobs are skipped, node jobs no prover runs yet are
    /// cancelled, running ones finish.
    CancelWorkflow { workflow: WorkflowId },
}

impl Encode for TxBody {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            TxBody::Transfer { to, amount } => {
                out.push(1);
                to.encode_to(out);
                amount.encode_to(out);
            }
            TxBody::RegisterProgram { manifest } => {
                out.push(2);
                manifest.encode_to(out);
            }
            TxBody::RegisterProver { capacity, labels, stake } => {
                out.push(3);
                capacity.encode_to(out);
                labels.encode_to(out);
                stake.encode_to(out);
            }
            TxBody::DeregisterProver => out.push(4),
            TxBody::SubmitJob(spec) => {
                out.push(5);
                spec.encode_to(out);
            }
            TxBody::CancelJob { job } => {
                out.push(6);
                job.encode_to(out);
            }
            TxBody::AcceptJob { job, attempt } => {
                out.push(7);
                job.encode_to(out);
                attempt.encode_to(out);
            }
            TxBody::DeclineJob { job, attempt } => {
                out.push(8);
                job.encode_to(out);
                attempt.encode_to(out);
            }
            TxBody::PostResult { job, attempt, outcome, usage } => {
                out.push(9);
                job.encode_to(out);
                attempt.encode_to(out);
                outcome.encode_to(out);
                usage.encode_to(out);
            }
            TxBody::PostRaceProof { job, commitment } => {
                out.push(10);
                job.encode_to(out);
                commitment.encode_to(out);
            }
            TxBody::Vote { job, attempt, verdict } => {
                out.push(11);
                job.encode_to(out);
                attempt.encode_to(out);
                verdict.encode_to(out);
            }
            TxBody::LockJob { job, round } => {
                out.push(12);
                job.encode_to(out);
                round.encode_to(out);
            }
            TxBody::BidJob { job, commitment } => {
                out.push(13);
                job.encode_to(out);
                commitment.encode_to(out);
            }
            TxBody::RevealBid { job, price, salt } => {
                out.push(14);
                job.encode_to(out);
                price.encode_to(out);
                salt.encode_to(out);
            }
            TxBody::CommitResult { job, attempt, commitment } => {
                out.push(15);
                job.encode_to(out);
                attempt.encode_to(out);
                commitment.encode_to(out);
            }
            TxBody::SubmitWorkflow(spec) => {
                out.push(16);
                spec.encode_to(out);
            }
            TxBody::CancelWorkflow { workflow } => {
                out.push(17);
                workflow.encode_to(out);
            }
        }
    }
}

impl Decode for TxBody {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        use Decode as D;
        Ok(match r.u8("transaction kind")? {
            1 => TxBody::Transfer { to: D::decode_from(r)?, amount: D::decode_from(r)? },
            2 => TxBody::RegisterProgram { manifest: D::decode_from(r)? },
            3 => TxBody::RegisterProver {
                capacity: D::decode_from(r)?,
                labels: D::decode_from(r)?,
                stake: D::decode_from(r)?,
            },
            4 => TxBody::DeregisterProver,
            5 => TxBody::SubmitJob(D::decode_from(r)?),
            6 => TxBody::CancelJob { job: D::decode_from(r)? },
            7 => TxBody::AcceptJob { job: D::decode_from(r)?, attempt: D::decode_from(r)? },
            8 => TxBody::DeclineJob { job: D::decode_from(r)?, attempt: D::decode_from(r)? },
            9 => TxBody::PostResult {
                job: D::decode_from(r)?,
                attempt: D::decode_from(r)?,
                outcome: D::decode_from(r)?,
                usage: D::decode_from(r)?,
            },
            10 => TxBody::PostRaceProof { job: D::decode_from(r)?, commitment: D::decode_from(r)? },
            11 => TxBody::Vote {
                job: D::decode_from(r)?,
                attempt: D::decode_from(r)?,
                verdict: D::decode_from(r)?,
            },
            12 => TxBody::LockJob { job: D::decode_from(r)?, round: D::decode_from(r)? },
            13 => TxBody::BidJob { job: D::decode_from(r)?, commitment: D::decode_from(r)? },
            14 => TxBody::RevealBid {
                job: D::decode_from(r)?,
                price: D::decode_from(r)?,
                salt: D::decode_from(r)?,
            },
            15 => TxBody::CommitResult {
                job: D::decode_from(r)?,
                attempt: D::decode_from(r)?,
                commitment: D::decode_from(r)?,
            },
            16 => TxBody::SubmitWorkflow(D::decode_from(r)?),
            17 => TxBody::CancelWorkflow { workflow: D::decode_from(r)? },
            tag => return Err(CodecError::InvalidTag { what: "transaction kind", tag }),
        })
    }
}

impl TxBody {
    /// Every blob the transaction names: a program's executables, a job's inputs, a result's
    /// proof files. A validator holds them all before it admits the transaction.
    pub fn blobs(&self) -> Vec<BlobRef> {
        match self {
            TxBody::RegisterProgram { manifest } => {
                let mut v = manifest.prover.blobs();
                if let VerifierSpec::Program { blob, .. } = &manifest.verifier {
                    v.extend(blob.blobs());
                }
                v
            }
            TxBody::SubmitJob(spec) => spec.inputs.iter().map(|i| i.blob).collect(),
            // A wire's blob is a verified proof, which every validator already holds.
            TxBody::SubmitWorkflow(w) => {
                w.nodes.iter().flat_map(|n| n.job.inputs.iter().map(|i| i.blob)).collect()
            }
            TxBody::PostResult { outcome: AttemptOutcome::Proof(files), .. } => {
                files.iter().map(|f| f.blob).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether the transaction pays the chain's transaction fee (`tx_fee`): every kind anyone
    /// can send, which grows the state or takes block space at will (transfers, programs, jobs
    /// and their cancellation, prover registration and exit). A prover's duties on work the
    /// chain gave it (accept, decline, result, vote) and its market offers (lock, bid, reveal,
    /// race proof) pay none: only the assigned or eligible prover can send them, the protocol
    /// bounds them per job, and charging them would tax the work itself.
    pub fn pays_fee(&self) -> bool {
        matches!(
            self,
            TxBody::Transfer { .. }
                | TxBody::RegisterProgram { .. }
                | TxBody::RegisterProver { .. }
                | TxBody::DeregisterProver
                | TxBody::SubmitJob(_)
                | TxBody::CancelJob { .. }
                | TxBody::SubmitWorkflow(_)
                | TxBody::CancelWorkflow { .. }
        )
    }

    /// A short stable name for logs, receipts and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::RegisterProgram { .. } => "register_program",
            TxBody::RegisterProver { .. } => "register_prover",
            TxBody::DeregisterProver => "deregister_prover",
            TxBody::SubmitJob(_) => "submit_job",
            TxBody::CancelJob { .. } => "cancel_job",
            TxBody::AcceptJob { .. } => "accept_job",
            TxBody::DeclineJob { .. } => "decline_job",
            TxBody::PostResult { .. } => "post_result",
            TxBody::PostRaceProof { .. } => "post_race_proof",
            TxBody::Vote { .. } => "vote",
            TxBody::CommitResult { .. } => "commit_result",
            TxBody::LockJob { .. } => "lock_job",
            TxBody::BidJob { .. } => "bid_job",
            TxBody::RevealBid { .. } => "reveal_bid",
            TxBody::SubmitWorkflow(_) => "submit_workflow",
            TxBody::CancelWorkflow { .. } => "cancel_workflow",
        }
    }
}

/// An unsigned transaction: who, which sequence number, what.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    pub signer: AccountId,
    /// Must equal the signer's next nonce; a used nonce can never apply again.
    pub nonce: Nonce,
    pub body: TxBody,
}
codec_struct!(Transaction { signer, nonce, body });

impl Transaction {
    pub fn sign(self, key: &Keypair, chain_id: &str) -> SignedTx {
        debug_assert_eq!(key.account(), self.signer, "signing with another account's key");
        let signature = key.sign(TX_DOMAIN, chain_id, &self.encode());
        SignedTx { tx: self, signature }
    }
}

/// A transaction with its signature, as carried in blocks and over the API.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedTx {
    pub tx: Transaction,
    pub signature: Signature,
}
codec_struct!(SignedTx { tx, signature });

/// Why transaction bytes were refused before execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxDecodeError {
    #[error("transaction is {len} bytes, above the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed transaction: {0}")]
    Malformed(#[from] CodecError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl SignedTx {
    /// Decodes untrusted bytes, enforcing the size limit and every field bound.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, TxDecodeError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(TxDecodeError::TooLarge { len: bytes.len(), max: TX_BYTES_MAX });
        }
        Ok(decode_exact(bytes, "transaction")?)
    }

    pub fn hash(&self) -> TxHash {
        TxHash(*blake3::hash(&self.encode()).as_bytes())
    }

    /// Checks the signature for `chain_id`.
    pub fn verify(self, chain_id: &str) -> Result<VerifiedTx, TxDecodeError> {
        let hash = self.check_signature(chain_id)?;
        Ok(VerifiedTx { tx: self, hash })
    }

    /// Checks the signatures of `txs` for `chain_id`, each exactly as [`SignedTx::verify`]
    /// does, spread over the machine's cores when there are many: the verified transactions in
    /// the same order, or the index of the first that does not verify and why.
    ///
    /// Each signature is checked on its own (`verify_strict`), not with ed25519-dalek's
    /// `verify_batch`: that batch equation is cofactorless with coefficients derived from the
    /// batch itself, so it accepts a signature whose `R` carries a small-order component (which
    /// `verify_strict` refuses) about one time in eight, and a grinding signer can pick such a
    /// transaction. Whether a transaction is valid would then depend on which batch it was
    /// checked in (the split depends on the core count) and disagree with the one-by-one
    /// checks of admission and replay: validators could split on a block. Ruling that out
    /// means a subgroup check of every `R` and key, which costs more than the batch saves.
    pub fn verify_batch(
        txs: Vec<SignedTx>,
        chain_id: &str,
    ) -> Result<Vec<VerifiedTx>, (usize, TxDecodeError)> {
        let hashes = check_signatures(&txs, chain_id)?;
        Ok(txs.into_iter().zip(hashes).map(|(tx, hash)| VerifiedTx { tx, hash }).collect())
    }

    /// The checks of [`SignedTx::verify`], by reference: the hash of a transaction that
    /// verifies.
    fn check_signature(&self, chain_id: &str) -> Result<TxHash, TxDecodeError> {
        verify(&self.tx.signer, TX_DOMAIN, chain_id, &self.tx.encode(), &self.signature)?;
        Ok(self.hash())
    }
}

/// Batches below this many transactions are verified on the calling thread, and no thread
/// takes fewer than half of it: a thread costs more than a few signatures.
pub const VERIFY_PARALLEL_MIN: usize = 64;

/// Checks `txs[..]` in order, stopping at the first that fails or once a transaction before
/// `first` is known to (`first_bad`, shared by the threads of one batch): the hashes so far.
fn check_run(
    txs: &[SignedTx],
    chain_id: &str,
    first: usize,
    first_bad: &AtomicUsize,
) -> Result<Vec<TxHash>, (usize, TxDecodeError)> {
    let mut out = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let index = first + i;
        if first_bad.load(Ordering::Relaxed) < index {
            // An earlier transaction failed: this part's answer no longer matters.
            break;
        }
        match tx.check_signature(chain_id) {
            Ok(hash) => out.push(hash),
            Err(e) => {
                first_bad.fetch_min(index, Ordering::Relaxed);
                return Err((index, e));
            }
        }
    }
    Ok(out)
}

/// The hashes of `txs` if every signature verifies, checked in contiguous parts on scoped
/// threads (one part on the calling thread); else the lowest failing index and its error.
fn check_signatures(
    txs: &[SignedTx],
    chain_id: &str,
) -> Result<Vec<TxHash>, (usize, TxDecodeError)> {
    let first_bad = AtomicUsize::new(usize::MAX);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if txs.len() < VERIFY_PARALLEL_MIN || threads < 2 {
        return check_run(txs, chain_id, 0, &first_bad);
    }
    let part = txs.len().div_ceil(threads).max(VERIFY_PARALLEL_MIN / 2);
    let hashes = std::thread::scope(|s| {
        let first_bad = &first_bad;
        let mut parts = txs.chunks(part).enumerate();
        let (_, head) = parts.next()?;
        // A part whose thread cannot be started is checked here afterwards.
        let rest: Vec<_> = parts
            .map(|(i, txs)| {
                let first = i * part;
                let run = move || check_run(txs, chain_id, first, first_bad);
                std::thread::Builder::new()
                    .name("verify-tx".into())
                    .spawn_scoped(s, run)
                    .map_err(|_| (txs, first))
            })
            .collect();
        let mut out = Vec::with_capacity(txs.len());
        let mut next = |r: Result<Vec<TxHash>, (usize, TxDecodeError)>| match r {
            Ok(hashes) => {
                out.extend(hashes);
                None
            }
            Err(e) => Some(Err(e)),
        };
        if let Some(err) = next(check_run(head, chain_id, 0, first_bad)) {
            return Some(err);
        }
        for run in rest {
            let r = match run {
                Ok(handle) => handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err((txs, first)) => check_run(txs, chain_id, first, first_bad),
            };
            if let Some(err) = next(r) {
                return Some(err);
            }
        }
        Some(Ok(out))
    });
    match hashes {
        // Every part ran to its end (a part stops early only after a failure before it).
        Some(Ok(hashes)) if hashes.len() == txs.len() => Ok(hashes),
        Some(Err(e)) => Err(e),
        // Not expected; the one-by-one answer is the reference.
        _ => check_run(txs, chain_id, 0, &AtomicUsize::new(usize::MAX)),
    }
}

/// A transaction whose signature has been checked. Only [`SignedTx::verify`] and
/// [`SignedTx::verify_batch`] make one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedTx {
    tx: SignedTx,
    hash: TxHash,
}

impl VerifiedTx {
    pub fn signed(&self) -> &SignedTx {
        &self.tx
    }
    pub fn tx(&self) -> &Transaction {
        &self.tx.tx
    }
    pub fn hash(&self) -> TxHash {
        self.hash
    }
}

/// The id a submitted job gets: derived from the submitting account and nonce, so it is known
/// before the transaction is included and no two jobs can share one.
pub fn job_id(requester: &AccountId, nonce: Nonce) -> JobId {
    JobId(crate::ids::domain_hash("provernet job id v1", &[&requester.0, &nonce.0.to_le_bytes()]))
}

/// The commitment a sealed bid carries: binds the job, the bidder, the price and a secret
/// salt, so the bid cannot be read before the reveal nor changed after it, and cannot be
/// replayed by another prover or on another job.
pub fn bid_commitment(
    job: &JobId,
    bidder: &AccountId,
    price: MicroCredits,
    salt: &[u8; 32],
) -> [u8; 32] {
    crate::ids::domain_hash(
        "provernet sealed bid v1",
        &[&job.0, &bidder.0, &price.0.to_le_bytes(), salt],
    )
}

/// Convenience for tests and tools: a blob reference for known bytes.
pub fn blob_ref(bytes: &[u8]) -> BlobRef {
    BlobRef { hash: BlobHash::of(bytes), size: Bytes(bytes.len() as u64) }
}

/// What an uploader signs (in [`crate::crypto::BLOB_UPLOAD_DOMAIN`]) to store a blob: its hash
/// then its size, little-endian.
pub fn blob_upload_message(blob: &BlobRef) -> Vec<u8> {
    let mut m = blob.hash.0.to_vec();
    m.extend_from_slice(&blob.size.0.to_le_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{GpuCount, MilliCores};

    fn sample() -> Transaction {
        let key = Keypair::insecure_from_label("alice");
        Transaction {
            signer: key.account(),
            nonce: Nonce(3),
            body: TxBody::SubmitJob(JobSpec {
                program: ProgramId([7; 32]),
                inputs: BoundedVec::try_from_vec(vec![NamedBlob {
                    name: "digest".parse().unwrap(),
                    blob: blob_ref(b"abc"),
                }])
                .unwrap(),
                resources: Some(Resources {
                    cores: MilliCores(2000),
                    memory: Bytes::gib(2),
                    gpus: GpuCount(0),
                }),
                time_limit: Seconds(60),
                redundancy: 1,
                prover_set: ProverSet::Any,
                mechanism: MechanismKind::RandomWithFallback,
                max_fee: MicroCredits(10_000),
            }),
        }
    }

    #[test]
    fn sign_encode_decode_verify() {
        let key = Keypair::insecure_from_label("alice");
        let signed = sample().sign(&key, "devnet");
        let bytes = signed.encode();
        let decoded = SignedTx::decode(&bytes).unwrap();
        assert_eq!(decoded, signed);
        let verified = decoded.verify("devnet").unwrap();
        assert_eq!(verified.hash(), signed.hash());
        assert!(SignedTx::decode(&bytes).unwrap().verify("other-chain").is_err());
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = Keypair::insecure_from_label("alice");
        let mut signed = sample().sign(&key, "devnet");
        signed.tx.nonce = Nonce(4);
        assert!(matches!(signed.verify("devnet"), Err(TxDecodeError::Signature(_))));
    }

    /// `n` transfers signed by a few accounts for `chain_id`.
    fn transfers(n: usize, chain_id: &str) -> Vec<SignedTx> {
        let keys: Vec<Keypair> =
            (0..3).map(|i| Keypair::insecure_from_label(&format!("k{i}"))).collect();
        (0..n)
            .map(|i| {
                let key = &keys[i % keys.len()];
                let body = TxBody::Transfer { to: AccountId([1; 32]), amount: MicroCredits(5) };
                Transaction { signer: key.account(), nonce: Nonce(i as u64), body }
                    .sign(key, chain_id)
            })
            .collect()
    }

    /// Sizes below and above [`VERIFY_PARALLEL_MIN`], so both the one-thread and the
    /// threaded paths run.
    const BATCH_SIZES: [usize; 4] = [1, 10, VERIFY_PARALLEL_MIN, 300];

    #[test]
    fn a_valid_batch_verifies_like_one_by_one() {
        for n in BATCH_SIZES {
            let txs = transfers(n, "devnet");
            let one_by_one: Vec<VerifiedTx> =
                txs.iter().map(|t| t.clone().verify("devnet").unwrap()).collect();
            let batch = SignedTx::verify_batch(txs.clone(), "devnet").unwrap();
            assert_eq!(batch, one_by_one, "batch of {n}");
            let hashes: Vec<TxHash> = txs.iter().map(SignedTx::hash).collect();
            assert_eq!(batch.iter().map(VerifiedTx::hash).collect::<Vec<_>>(), hashes);
        }
    }

    #[test]
    fn an_empty_batch_verifies_to_nothing() {
        assert_eq!(SignedTx::verify_batch(Vec::new(), "devnet"), Ok(Vec::new()));
    }

    #[test]
    fn a_forged_signature_in_a_batch_is_named_by_its_index() {
        for n in BATCH_SIZES {
            for bad in [0, n / 2, n - 1] {
                let mut txs = transfers(n, "devnet");
                txs[bad].signature.0[5] ^= 1;
                let want = txs[bad].clone().verify("devnet").unwrap_err();
                assert!(matches!(want, TxDecodeError::Signature(SignatureError::Invalid(_))));
                assert_eq!(
                    SignedTx::verify_batch(txs, "devnet"),
                    Err((bad, want)),
                    "batch of {n}, forged at {bad}"
                );
            }
        }
        // With two bad ones, in different threads' parts, the first is named.
        let mut txs = transfers(300, "devnet");
        txs[250].signature.0[0] ^= 1;
        txs[40].tx.nonce = Nonce(7);
        assert_eq!(SignedTx::verify_batch(txs, "devnet").map_err(|(i, _)| i), Err(40));
    }

    #[test]
    fn a_transaction_for_another_chain_in_a_batch_is_named_by_its_index() {
        for n in BATCH_SIZES {
            let bad = n * 2 / 3;
            let mut txs = transfers(n, "devnet");
            txs[bad] = transfers(n, "other-chain").swap_remove(bad);
            let got = SignedTx::verify_batch(txs, "devnet");
            assert!(
                matches!(got, Err((i, TxDecodeError::Signature(SignatureError::Invalid(_)))) if i == bad),
                "batch of {n}: {got:?}"
            );
        }
    }

    #[test]
    fn oversized_and_trailing_bytes_are_refused() {
        let key = Keypair::insecure_from_label("alice");
        let mut bytes = sample().sign(&key, "devnet").encode();
        bytes.push(0);
        assert!(matches!(
            SignedTx::decode(&bytes),
            Err(TxDecodeError::Malformed(CodecError::TrailingBytes { .. }))
        ));
        let big = vec![0u8; TX_BYTES_MAX + 1];
        assert!(matches!(SignedTx::decode(&big), Err(TxDecodeError::TooLarge { .. })));
    }

    fn samples() -> Vec<Vec<u8>> {
        let key = Keypair::insecure_from_label("alice");
        let mut out = vec![sample().sign(&key, "devnet").encode()];
        let bodies = [
            TxBody::Transfer { to: AccountId([1; 32]), amount: MicroCredits(5) },
            TxBody::DeregisterProver,
            TxBody::Vote { job: JobId([2; 32]), attempt: 1, verdict: Verdict::CannotVerify },
            TxBody::CommitResult { job: JobId([6; 32]), attempt: 2, commitment: [7; 32] },
            TxBody::RevealBid { job: JobId([4; 32]), price: MicroCredits(9), salt: [5; 32] },
            TxBody::PostResult {
                job: JobId([3; 32]),
                attempt: 0,
                outcome: AttemptOutcome::ProgramError {
                    failure: ProgramFailure::Exit(101),
                    reason: BoundedString::try_new("panicked at main.rs").unwrap(),
                },
                usage: Usage::default(),
            },
        ];
        for body in bodies {
            let tx = Transaction { signer: key.account(), nonce: Nonce(1), body };
            out.push(tx.sign(&key, "devnet").encode());
        }
        out
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = SignedTx::decode(&bytes);
        }

        /// Whatever decodes re-encodes to exactly the same bytes: one value, one encoding.
        #[test]
        fn mutated_encodings_are_rejected_or_canonical(
            which in 0usize..7,
            edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..4),
        ) {
            let mut bytes = samples()[which].clone();
            for (pos, val) in edits {
                let i = pos % bytes.len();
                bytes[i] = val;
            }
            if let Ok(tx) = SignedTx::decode(&bytes) {
                proptest::prop_assert_eq!(tx.encode(), bytes);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let key = Keypair::insecure_from_label("alice");
        let bytes = sample().sign(&key, "devnet").encode();
        for cut in 0..bytes.len() {
            assert!(SignedTx::decode(&bytes[..cut]).is_err());
        }
    }
}
