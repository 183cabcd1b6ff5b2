//! Why a transaction was rejected. A rejected transaction changes nothing, not even its
//! signer's nonce.

use crate::entities::{AttemptState, JobStatus};
use provernet_types::workflow::GraphError;
use provernet_types::{
    AccountId, FileName, Height, JobId, MechanismKind, MicroCredits, Nonce, ProgramId, ProverId,
    Resources, Seconds, WorkflowId,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("account {0} does not exist; fund it with a transfer first")]
    UnknownAccount(AccountId),
    #[error("nonce {got} is not the account's next nonce {expected}")]
    BadNonce { expected: Nonce, got: Nonce },
    #[error("balance {have} is below the {need} needed")]
    InsufficientBalance { need: MicroCredits, have: MicroCredits },
    #[error("amount must be above zero")]
    ZeroAmount,
    #[error("program {0} is already registered")]
    ProgramExists(ProgramId),
    #[error("a program named `{0}` is already registered")]
    ProgramNameTaken(FileName),
    #[error("program {0} is not registered")]
    UnknownProgram(ProgramId),
    #[error("invalid resources: {0}")]
    BadResources(&'static str),
    #[error("time limit {got} is outside {min}..={max}")]
    BadTimeLimit { got: Seconds, min: Seconds, max: Seconds },
    #[error("account {0} is already a prover")]
    ProverExists(ProverId),
    #[error("prover {0} is not registered")]
    UnknownProver(ProverId),
    #[error("stake {have} is below the minimum {need}")]
    StakeTooLow { need: MicroCredits, have: MicroCredits },
    #[error("prover {0} is already exiting")]
    ProverExiting(ProverId),
    #[error("job {0} does not exist")]
    UnknownJob(JobId),
    #[error("redundancy {0} is outside 1..=3")]
    BadRedundancy(u8),
    #[error("mechanism {0} is not enabled on this chain (see the chain's `mechanisms` parameter)")]
    MechanismNotEnabled(MechanismKind),
    #[error("a {mechanism} job takes one prover (redundancy 1), not {redundancy}; use random or a stake lottery for redundant proving")]
    SingleProver { mechanism: MechanismKind, redundancy: u8 },
    #[error("job {job} uses {mechanism}; this transaction needs a {expected} job")]
    WrongMechanism { job: JobId, mechanism: MechanismKind, expected: MechanismKind },
    #[error("job {job} takes no {what} now: {why}")]
    AuctionClosed { job: JobId, what: &'static str, why: &'static str },
    #[error("prover {prover} already bid on job {job} in this round")]
    AlreadyBid { job: JobId, prover: ProverId },
    #[error("job {0} has as many sealed bids as allowed in this round")]
    BidsFull(JobId),
    #[error("prover {prover} has no sealed bid to reveal on job {job} in this round")]
    NoBid { job: JobId, prover: ProverId },
    #[error("the revealed price and salt do not match the sealed bid on job {0}")]
    BidMismatch(JobId),
    #[error("free stake {have} is below the {need} needed for the bond and collateral")]
    CollateralTooLow { need: MicroCredits, have: MicroCredits },
    #[error("max fee {max_fee} is below the quote {quote}")]
    FeeBelowQuote { quote: MicroCredits, max_fee: MicroCredits },
    #[error("no registered prover has the capacity for {0} within the job's prover set")]
    NoProverCanFit(Resources),
    #[error("name `{0}` appears twice")]
    DuplicateName(FileName),
    #[error("the program declares input `{0}`, which the job does not provide")]
    MissingInput(FileName),
    #[error("the program's manifest is invalid: {0}")]
    BadManifest(&'static str),
    #[error("job {job} is {}; this needs it to be {expected}", status.name())]
    WrongJobState { job: JobId, status: JobStatus, expected: &'static str },
    #[error("job {job} has no attempt {attempt}")]
    UnknownAttempt { job: JobId, attempt: u8 },
    #[error("attempt {attempt} of job {job} is {}; this needs it to be {expected}", state.name())]
    WrongAttemptState { job: JobId, attempt: u8, state: AttemptState, expected: &'static str },
    #[error("attempt {attempt} of job {job} is assigned to another prover")]
    NotAssignedProver { job: JobId, attempt: u8 },
    #[error("only the requester may cancel job {0}")]
    NotRequester(JobId),
    #[error("{voter} is not on the committee of attempt {attempt} of job {job}")]
    NotCommitteeMember { job: JobId, attempt: u8, voter: AccountId },
    #[error("{voter} already voted on attempt {attempt} of job {job}")]
    AlreadyVoted { job: JobId, attempt: u8, voter: AccountId },
    #[error("prover {0} has used its decline quota for this window")]
    DeclineQuotaExhausted(ProverId),
    #[error("prover {prover} may not take part in job {job}")]
    NotEligible { job: JobId, prover: ProverId },
    #[error("job {0} has as many race proofs under verification as allowed")]
    RaceFull(JobId),
    #[error("the proof files break the output rules: {0}")]
    OutputRules(provernet_types::OutputRuleError),
    #[error("attempt {attempt} of job {job} may reveal only after the block of its commitment")]
    RevealTooEarly { job: JobId, attempt: u8 },
    #[error("attempt {attempt} of job {job} may not reveal yet: an attempt assigned no later than its commitment has not committed in an earlier block or ended")]
    RevealNotOpen { job: JobId, attempt: u8 },
    #[error(
        "the revealed proof files of attempt {attempt} of job {job} do not match its commitment"
    )]
    CommitmentMismatch { job: JobId, attempt: u8 },
    #[error("the deadline at height {deadline} has passed")]
    DeadlinePassed { deadline: Height },
    #[error("the account has {open} open jobs, the most allowed; wait for some to finish")]
    TooManyOpenJobs { open: u32 },
    #[error("the proof lacks `{0}`, an output the program declares")]
    MissingOutput(FileName),
    #[error("{0}")]
    Workflow(GraphError),
    #[error("node `{node}`: {error}")]
    WorkflowNode { node: FileName, error: Box<TxError> },
    #[error("node `{node}`'s input `{input}` reads `{output}` from node `{from}`, whose program does not declare that output")]
    UndeclaredOutput { node: FileName, input: FileName, from: FileName, output: FileName },
    #[error("workflow {0} does not exist")]
    UnknownWorkflow(WorkflowId),
    #[error("only the requester may cancel workflow {0}")]
    NotWorkflowRequester(WorkflowId),
    #[error("workflow {0} is finished or already cancelled")]
    WorkflowClosed(WorkflowId),
    #[error("amount overflow")]
    Overflow,
}

impl TxError {
    /// The values the error names, by field, as text: what a client shows or acts on
    /// without parsing the message (`need` and `have` of a balance, the `job` at fault…).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        use TxError as E;
        let s = |v: &dyn std::fmt::Display| v.to_string();
        match self {
            E::UnknownAccount(a) => vec![("account", s(a))],
            E::BadNonce { expected, got } => vec![("expected", s(&expected.0)), ("got", s(&got.0))],
            E::InsufficientBalance { need, have }
            | E::StakeTooLow { need, have }
            | E::CollateralTooLow { need, have } => {
                vec![("need", s(&need.0)), ("have", s(&have.0))]
            }
            E::ZeroAmount | E::Overflow => vec![],
            E::ProgramExists(p) | E::UnknownProgram(p) => vec![("program", s(p))],
            E::ProgramNameTaken(n) | E::DuplicateName(n) | E::MissingInput(n) => {
                vec![("name", s(n))]
            }
            E::BadResources(why) | E::BadManifest(why) => vec![("reason", s(why))],
            E::BadTimeLimit { got, min, max } => {
                vec![("got", s(&got.0)), ("min", s(&min.0)), ("max", s(&max.0))]
            }
            E::ProverExists(p) | E::UnknownProver(p) | E::ProverExiting(p) => {
                vec![("prover", s(p))]
            }
            E::DeclineQuotaExhausted(p) => vec![("prover", s(p))],
            E::UnknownJob(j) | E::BidsFull(j) | E::BidMismatch(j) | E::NotRequester(j) => {
                vec![("job", s(j))]
            }
            E::RaceFull(j) => vec![("job", s(j))],
            E::BadRedundancy(r) => vec![("redundancy", s(r))],
            E::FeeBelowQuote { quote, max_fee } => {
                vec![("quote", s(&quote.0)), ("max_fee", s(&max_fee.0))]
            }
            E::MechanismNotEnabled(m) => vec![("mechanism", s(m))],
            E::SingleProver { mechanism, redundancy } => {
                vec![("mechanism", s(mechanism)), ("redundancy", s(redundancy))]
            }
            E::WrongMechanism { job, mechanism, expected } => {
                vec![("job", s(job)), ("mechanism", s(mechanism)), ("expected", s(expected))]
            }
            E::AuctionClosed { job, what, why } => {
                vec![("job", s(job)), ("what", s(what)), ("reason", s(why))]
            }
            E::AlreadyBid { job, prover }
            | E::NoBid { job, prover }
            | E::NotEligible { job, prover } => {
                vec![("job", s(job)), ("prover", s(prover))]
            }
            E::NoProverCanFit(r) => vec![("resources", s(r))],
            E::WrongJobState { job, status, expected } => {
                vec![("job", s(job)), ("status", s(&status.name())), ("expected", s(expected))]
            }
            E::UnknownAttempt { job, attempt }
            | E::NotAssignedProver { job, attempt }
            | E::RevealTooEarly { job, attempt }
            | E::RevealNotOpen { job, attempt }
            | E::CommitmentMismatch { job, attempt } => {
                vec![("job", s(job)), ("attempt", s(attempt))]
            }
            E::WrongAttemptState { job, attempt, state, expected } => vec![
                ("job", s(job)),
                ("attempt", s(attempt)),
                ("state", s(&state.name())),
                ("expected", s(expected)),
            ],
            E::NotCommitteeMember { job, attempt, voter }
            | E::AlreadyVoted { job, attempt, voter } => {
                vec![("job", s(job)), ("attempt", s(attempt)), ("voter", s(voter))]
            }
            E::OutputRules(e) => vec![("reason", s(e))],
            E::DeadlinePassed { deadline } => vec![("deadline", s(&deadline.0))],
            E::TooManyOpenJobs { open } => vec![("open", s(open))],
            E::MissingOutput(n) => vec![("name", s(n))],
            E::Workflow(g) => g.node().map(|n| vec![("node", s(n))]).unwrap_or_default(),
            E::WorkflowNode { node, error } => {
                let mut v = vec![("node", s(node))];
                v.extend(error.fields());
                v
            }
            E::UndeclaredOutput { node, input, from, output } => vec![
                ("node", s(node)),
                ("input", s(input)),
                ("from", s(from)),
                ("output", s(output)),
            ],
            E::UnknownWorkflow(w) | E::NotWorkflowRequester(w) | E::WorkflowClosed(w) => {
                vec![("workflow", s(w))]
            }
        }
    }
    /// A stable machine-readable code, for receipts and the API.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::UnknownAccount(_) => "unknown_account",
            TxError::BadNonce { .. } => "bad_nonce",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::ZeroAmount => "zero_amount",
            TxError::ProgramExists(_) => "program_exists",
            TxError::ProgramNameTaken(_) => "program_name_taken",
            TxError::UnknownProgram(_) => "unknown_program",
            TxError::BadResources(_) => "bad_resources",
            TxError::BadTimeLimit { .. } => "bad_time_limit",
            TxError::ProverExists(_) => "prover_exists",
            TxError::UnknownProver(_) => "unknown_prover",
            TxError::StakeTooLow { .. } => "stake_too_low",
            TxError::ProverExiting(_) => "prover_exiting",
            TxError::UnknownJob(_) => "unknown_job",
            TxError::BadRedundancy(_) => "bad_redundancy",
            TxError::FeeBelowQuote { .. } => "fee_below_quote",
            TxError::MechanismNotEnabled(_) => "mechanism_not_enabled",
            TxError::SingleProver { .. } => "single_prover_mechanism",
            TxError::WrongMechanism { .. } => "wrong_mechanism",
            TxError::AuctionClosed { .. } => "auction_closed",
            TxError::AlreadyBid { .. } => "already_bid",
            TxError::BidsFull(_) => "bids_full",
            TxError::NoBid { .. } => "no_bid",
            TxError::BidMismatch(_) => "bid_mismatch",
            TxError::CollateralTooLow { .. } => "collateral_too_low",
            TxError::NoProverCanFit(_) => "no_prover_can_fit",
            TxError::DuplicateName(_) => "duplicate_name",
            TxError::MissingInput(_) => "missing_input",
            TxError::BadManifest(_) => "bad_manifest",
            TxError::WrongJobState { .. } => "wrong_job_state",
            TxError::UnknownAttempt { .. } => "unknown_attempt",
            TxError::WrongAttemptState { .. } => "wrong_attempt_state",
            TxError::NotAssignedProver { .. } => "not_assigned_prover",
            TxError::NotRequester(_) => "not_requester",
            TxError::NotCommitteeMember { .. } => "not_committee_member",
            TxError::AlreadyVoted { .. } => "already_voted",
            TxError::DeclineQuotaExhausted(_) => "decline_quota_exhausted",
            TxError::NotEligible { .. } => "not_eligible",
            TxError::RaceFull(_) => "race_full",
            TxError::OutputRules(_) => "output_rules",
            TxError::RevealTooEarly { .. } => "reveal_too_early",
            TxError::RevealNotOpen { .. } => "reveal_not_open",
            TxError::CommitmentMismatch { .. } => "commitment_mismatch",
            TxError::DeadlinePassed { .. } => "deadline_passed",
            TxError::TooManyOpenJobs { .. } => "too_many_open_jobs",
            TxError::MissingOutput(_) => "missing_output",
            TxError::Workflow(g) => g.code(),
            // A node's refusal keeps the code it has for a lone job; `fields` names the node.
            TxError::WorkflowNode { error, .. } => error.code(),
            TxError::UndeclaredOutput { .. } => "undeclared_output",
            TxError::UnknownWorkflow(_) => "unknown_workflow",
            TxError::NotWorkflowRequester(_) => "not_requester",
            TxError::WorkflowClosed(_) => "workflow_closed",
            TxError::Overflow => "overflow",
        }
    }
}
