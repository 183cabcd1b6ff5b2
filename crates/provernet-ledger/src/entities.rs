//! The records the ledger keeps: accounts, programs, provers and jobs with their attempts.

use provernet_types::limits::*;
use provernet_types::workflow::{WorkflowSpec, WORKFLOW_NODES_MAX};
use provernet_types::{
    codec_struct, codec_unit_enum, AccountId, BoundedVec, CodecError, Decode, Encode, Height,
    JobId, Label, MechanismKind, MicroCredits, NamedBlob, Nonce, ProgramFailure, ProgramId,
    ProgramManifest, ProverId, ProverSet, Reader, Resources, Seconds, Usage, Verdict, WorkflowId,
};

/// Most attempts one job can have: the redundant ones, the fallbacks and the race proofs.
pub const ATTEMPTS_MAX: usize = 32;
/// Most proofs accepted in one job's open race.
pub const RACE_PROOFS_MAX: usize = 8;

/// Most sealed bids one round of a lowest-bid auction takes.
pub const BIDS_MAX: usize = 16;

/// Most fallback attempts chain parameters may allow.
pub const FALLBACK_ATTEMPTS_MAX: u8 = 16;

// Every attempt a job can make fits in its attempt list.
const _: () = assert!(
    ATTEMPTS_MAX >= REDUNDANCY_MAX as usize + FALLBACK_ATTEMPTS_MAX as usize + RACE_PROOFS_MAX
);

/// A holder of credits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Account {
    pub balance: MicroCredits,
    /// The nonce the account's next transaction must carry.
    pub nonce: Nonce,
    /// Jobs it submitted that are not settled yet.
    pub open_jobs: u32,
}
codec_struct!(Account { balance, nonce, open_jobs });

/// A registered program.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Program {
    pub manifest: ProgramManifest,
    pub owner: AccountId,
    pub registered_at: Height,
}
codec_struct!(Program { manifest, owner, registered_at });

/// Where a prover is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProverStatus {
    /// Registered; running its probe job. Takes no other work.
    Probing { probe: JobId },
    /// Takes work.
    Active,
    /// Takes no new work; its stake returns at `until` once it holds no work.
    Exiting { until: Height, ejected: bool },
}

impl Encode for ProverStatus {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            ProverStatus::Probing { probe } => {
                out.push(0);
                probe.encode_to(out);
            }
            ProverStatus::Active => out.push(1),
            ProverStatus::Exiting { until, ejected } => {
                out.push(2);
                until.encode_to(out);
                ejected.encode_to(out);
            }
        }
    }
}

impl Decode for ProverStatus {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("prover status")? {
            0 => Ok(ProverStatus::Probing { probe: Decode::decode_from(r)? }),
            1 => Ok(ProverStatus::Active),
            2 => Ok(ProverStatus::Exiting {
                until: Decode::decode_from(r)?,
                ejected: Decode::decode_from(r)?,
            }),
            tag => Err(CodecError::InvalidTag { what: "prover status", tag }),
        }
    }
}

/// A registered prover node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Prover {
    pub capacity: Resources,
    /// Sorted and deduplicated.
    pub labels: BoundedVec<Label, PROVER_LABELS_MAX>,
    pub stake: MicroCredits,
    /// Part of the stake bonded to attempts it holds.
    pub bonded: MicroCredits,
    /// Capacity held by attempts it is assigned or running.
    pub used: Resources,
    pub status: ProverStatus,
    pub faults: u32,
    pub completed: u64,
    pub decline_window: u64,
    pub declines_in_window: u32,
    pub registered_at: Height,
    /// Everything the prover's account was paid for work: rewards, verifier rewards, charges
    /// for program errors and bounties (not its returned stake).
    pub earned: MicroCredits,
    /// Everything taken from its stake: slashes and forfeited collateral.
    pub slashed: MicroCredits,
}
codec_struct!(Prover {
    capacity,
    labels,
    stake,
    bonded,
    used,
    status,
    faults,
    completed,
    decline_window,
    declines_in_window,
    registered_at,
    earned,
    slashed
});

impl Prover {
    pub fn free(&self) -> Resources {
        self.capacity.saturating_sub(&self.used)
    }

    pub fn free_stake(&self) -> MicroCredits {
        self.stake.saturating_sub(self.bonded)
    }

    pub fn is_active(&self) -> bool {
        self.status == ProverStatus::Active
    }
}

/// Why a job failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailReason {
    /// The program failed on provers drawn independently: the requester's fault; charged.
    Program,
    /// No valid proof arrived by the end of the open race; refunded.
    NoProof,
    /// The program ran out of the job's time limit on provers drawn independently: the
    /// limit was too short, the requester's fault; charged.
    TimeLimit,
    /// The verifiers could not check a proof for a reason on the requester's side (its
    /// statement, its verifier): the prover is paid, nothing is refunded.
    Unverifiable,
}
codec_unit_enum!(FailReason { Program = 0, NoProof = 1, TimeLimit = 2, Unverifiable = 3 });

/// Where a job is. The last four are final.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobStatus {
    /// Waiting for a prover to be assigned.
    Pending,
    /// A prover is assigned and has not accepted yet.
    Assigned,
    /// A prover accepted and is proving.
    Running,
    /// A proof is posted and being verified.
    Proven,
    /// Attempts are exhausted: any eligible prover may post a proof until the race ends.
    Race,
    Verified,
    Failed(FailReason),
    Cancelled,
    Expired,
}

impl JobStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Verified | JobStatus::Failed(_) | JobStatus::Cancelled | JobStatus::Expired
        )
    }

    /// The name the API and the CLI use: the wire contract's, one table for both.
    pub fn name(&self) -> &'static str {
        crate::contract::job_status(*self).name()
    }
}

impl Encode for JobStatus {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            JobStatus::Pending => out.push(0),
            JobStatus::Assigned => out.push(1),
            JobStatus::Running => out.push(2),
            JobStatus::Proven => out.push(3),
            JobStatus::Race => out.push(4),
            JobStatus::Verified => out.push(5),
            JobStatus::Failed(r) => {
                out.push(6);
                r.encode_to(out);
            }
            JobStatus::Cancelled => out.push(7),
            JobStatus::Expired => out.push(8),
        }
    }
}

impl Decode for JobStatus {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(match r.u8("job status")? {
            0 => JobStatus::Pending,
            1 => JobStatus::Assigned,
            2 => JobStatus::Running,
            3 => JobStatus::Proven,
            4 => JobStatus::Race,
            5 => JobStatus::Verified,
            6 => JobStatus::Failed(Decode::decode_from(r)?),
            7 => JobStatus::Cancelled,
            8 => JobStatus::Expired,
            tag => return Err(CodecError::InvalidTag { what: "job status", tag }),
        })
    }
}

/// Where one attempt is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttemptState {
    /// Waiting for the prover to accept by `deadline`.
    Assigned,
    /// Accepted; the result (or its commitment) is due by `deadline`.
    Running,
    /// Its proof is committed to; the reveal is due once every attempt assigned no later than
    /// the commitment has committed or ended (its gate), by `deadline`.
    Committed,
    /// A proof is posted; the committee votes by `deadline`.
    Proven,
    Verified,
    /// The committee found the proof invalid.
    Rejected,
    MissedAccept,
    MissedDeadline,
    Declined,
    /// The prover claimed that the program failed ([`ProgramFailure`]).
    ProgramError,
    /// Cancelled with its job.
    Cancelled,
    /// The job was decided by another attempt first, or the proof was a copy of one revealed
    /// before this attempt committed: not paid.
    Superseded,
    /// No committee voted in any round; nobody is paid or punished.
    Unverifiable,
    /// The prover claimed the program ran out of the job's time limit.
    TimeLimit,
    /// Its program-error or time-limit claim was refuted by another prover's verified proof:
    /// a fault of its prover.
    Refuted,
    /// Two thirds of the voters could not verify it, for a reason on the requester's side: its
    /// prover is paid, and the job fails as unverifiable.
    CannotVerify,
}
codec_unit_enum!(AttemptState {
    Assigned = 0,
    Running = 1,
    Proven = 2,
    Verified = 3,
    Rejected = 4,
    MissedAccept = 5,
    MissedDeadline = 6,
    Declined = 7,
    ProgramError = 8,
    Cancelled = 9,
    Superseded = 10,
    Unverifiable = 11,
    Committed = 12,
    TimeLimit = 13,
    Refuted = 14,
    CannotVerify = 15
});

impl AttemptState {
    /// The name the API and the CLI use: the wire contract's, one table for both.
    pub fn name(&self) -> &'static str {
        crate::contract::attempt_state(*self).name()
    }

    /// Whether the attempt still holds its prover's bond.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            AttemptState::Assigned
                | AttemptState::Running
                | AttemptState::Committed
                | AttemptState::Proven
        )
    }

    /// Whether the attempt holds its prover's capacity.
    pub fn holds_capacity(&self) -> bool {
        matches!(self, AttemptState::Assigned | AttemptState::Running)
    }

    /// Whether the attempt ended through a fault of its prover.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            AttemptState::MissedAccept
                | AttemptState::MissedDeadline
                | AttemptState::Rejected
                | AttemptState::Refuted
        )
    }

    /// Whether the attempt is a claim that the program failed (not yet refuted).
    pub fn is_claim(&self) -> bool {
        matches!(self, AttemptState::ProgramError | AttemptState::TimeLimit)
    }
}

/// One assignment of a job to one prover, or one proof posted in the open race.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Attempt {
    pub prover: ProverId,
    pub state: AttemptState,
    /// Posted in the open race rather than assigned.
    pub race: bool,
    pub assigned_at: Height,
    /// When the current state times out (accept, result or vote deadline).
    pub deadline: Height,
    pub proof: BoundedVec<NamedBlob, PROOF_FILES_MAX>,
    pub usage: Usage,
    /// How the program failed, for a program-error claim.
    pub failure: Option<ProgramFailure>,
    /// The commitment to the proof and the height it was made at (see
    /// `provernet_types::result_commitment`).
    pub commitment: Option<(Height, [u8; 32])>,
    /// When the proof was revealed, or the failure claimed.
    pub reported_at: Option<Height>,
    /// Who votes on the proof: a committee of provers, or every validator for a built-in
    /// verifier.
    pub committee: BoundedVec<AccountId, VOTERS_MAX>,
    /// Votes in committee order: `None` until the member votes.
    pub votes: BoundedVec<Option<Verdict>, VOTERS_MAX>,
    pub verify_round: u8,
    /// What the prover is paid if its proof is accepted: the posted price, or the price it
    /// won an auction at.
    pub price: MicroCredits,
    /// Collateral bonded while the attempt is live, forfeited if its prover fails it.
    pub collateral: MicroCredits,
}
codec_struct!(Attempt {
    prover,
    state,
    race,
    assigned_at,
    deadline,
    proof,
    usage,
    failure,
    commitment,
    reported_at,
    committee,
    votes,
    verify_round,
    price,
    collateral
});

/// A sealed bid in the current round of a lowest-bid auction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bid {
    pub prover: ProverId,
    pub commitment: [u8; 32],
    /// Set once revealed.
    pub price: Option<MicroCredits>,
    /// Stake bonded while the bid is open; forfeited if the bid is never revealed.
    pub deposit: MicroCredits,
}
codec_struct!(Bid { prover, commitment, price, deposit });

/// A proof job.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Job {
    pub requester: AccountId,
    pub program: ProgramId,
    pub inputs: BoundedVec<NamedBlob, JOB_INPUTS_MAX>,
    pub resources: Resources,
    pub time_limit: Seconds,
    pub redundancy: u8,
    pub prover_set: ProverSet,
    pub mechanism: MechanismKind,
    /// The posted price of one attempt: resources × time limit. Each paid prover gets this.
    pub fee_per_prover: MicroCredits,
    /// The most one attempt may be paid: the requester's max fee for auctions, the posted
    /// price otherwise.
    pub max_fee: MicroCredits,
    /// Credits still held for this job.
    pub escrow: MicroCredits,
    pub status: JobStatus,
    pub attempts: BoundedVec<Attempt, ATTEMPTS_MAX>,
    pub submitted_at: Height,
    /// The job's place in the chain's first-come, first-served order (`Meta::jobs_submitted`
    /// when it was submitted).
    pub seq: u64,
    /// No prover is drawn for the job before this height: a transaction touching it pushes
    /// this `draw_delay` blocks ahead, so the draw uses a seed its block's proposer did not know.
    pub draw_at: Height,
    pub finished_at: Option<Height>,
    /// The attempt whose proof decided the job.
    pub winner: Option<u8>,
    /// Set for a probe job: the prover it tests.
    pub probe_for: Option<ProverId>,
    pub race_until: Option<Height>,
    /// What the first accepted race proof is paid.
    pub race_price: MicroCredits,
    /// When the current auction round opened (reverse Dutch, lowest bid); `None` while no
    /// attempt is being auctioned.
    pub round: Option<Height>,
    /// Sealed bids of the current lowest-bid round, in arrival order.
    pub bids: BoundedVec<Bid, BIDS_MAX>,
    /// Forfeited collateral held for whoever proves the job; returns to the requester if
    /// nobody does.
    pub bounty: MicroCredits,
    /// The requester's 50% refund, once paid.
    pub fallback_refund: MicroCredits,
    /// All attempts are resolved and the escrow is empty.
    pub settled: bool,
    /// The height at which end-of-block processing next looks at this job.
    pub wake: Option<Height>,
    /// Set for a job that is a workflow's node: its end moves the workflow on.
    pub workflow: Option<NodeRef>,
}
codec_struct!(Job {
    requester,
    program,
    inputs,
    resources,
    time_limit,
    redundancy,
    prover_set,
    mechanism,
    fee_per_prover,
    max_fee,
    escrow,
    status,
    attempts,
    submitted_at,
    seq,
    draw_at,
    finished_at,
    winner,
    probe_for,
    race_until,
    race_price,
    round,
    bids,
    bounty,
    fallback_refund,
    settled,
    wake,
    workflow
});

/// A workflow's node, by the workflow's id and the node's index in its spec.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NodeRef {
    pub workflow: WorkflowId,
    pub node: u8,
}
codec_struct!(NodeRef { workflow, node });

/// Where one node of a workflow is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NodeStatus {
    /// Waiting for the nodes it reads from to be Verified; its escrow is the workflow's.
    Waiting,
    /// It is a job (`provernet_types::workflow::node_job_id`), not final yet.
    Job,
    /// Its job ended with this final status.
    Done(JobStatus),
    /// It will never run: node `cause` (by index) ended other than Verified, or, with no
    /// cause, the requester cancelled the workflow. Its escrow went back to the requester.
    Skipped { cause: Option<u8> },
}

impl NodeStatus {
    pub fn is_final(&self) -> bool {
        matches!(self, NodeStatus::Done(_) | NodeStatus::Skipped { .. })
    }
}

impl Encode for NodeStatus {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            NodeStatus::Waiting => out.push(0),
            NodeStatus::Job => out.push(1),
            NodeStatus::Done(s) => {
                out.push(2);
                s.encode_to(out);
            }
            NodeStatus::Skipped { cause } => {
                out.push(3);
                cause.encode_to(out);
            }
        }
    }
}

impl Decode for NodeStatus {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(match r.u8("workflow node status")? {
            0 => NodeStatus::Waiting,
            1 => NodeStatus::Job,
            2 => NodeStatus::Done(Decode::decode_from(r)?),
            3 => NodeStatus::Skipped { cause: Decode::decode_from(r)? },
            tag => return Err(CodecError::InvalidTag { what: "workflow node status", tag }),
        })
    }
}

/// One node's place in a workflow, with what is still escrowed for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NodeState {
    pub status: NodeStatus,
    /// Held in the workflow's escrow for this node until it becomes a job (then it moves to
    /// the job's escrow) or is skipped (then it returns to the requester); zero after.
    pub escrow: MicroCredits,
}
codec_struct!(NodeState { status, escrow });

/// A workflow: a graph of jobs submitted and escrowed in one transaction, whose nodes become
/// jobs as the nodes they read from are Verified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Workflow {
    pub requester: AccountId,
    pub spec: WorkflowSpec,
    /// One per node of `spec`, in the same order.
    pub nodes: BoundedVec<NodeState, WORKFLOW_NODES_MAX>,
    /// The sum of the nodes' `escrow`: credits held for nodes not yet jobs.
    pub escrow: MicroCredits,
    pub submitted_at: Height,
    /// The first node that ended other than Verified, by index.
    pub failed: Option<u8>,
    pub cancelled: bool,
    /// Set once every node is final.
    pub finished_at: Option<Height>,
}
codec_struct!(Workflow {
    requester,
    spec,
    nodes,
    escrow,
    submitted_at,
    failed,
    cancelled,
    finished_at
});

impl Workflow {
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

impl Job {
    pub fn live_attempts(&self) -> usize {
        self.attempts.iter().filter(|a| a.state.is_live()).count()
    }

    /// Attempts made by assignment (not race proofs).
    pub fn assigned_attempts(&self) -> usize {
        self.attempts.iter().filter(|a| !a.race).count()
    }

    /// Whether the requester may still cancel it: no prover runs it yet.
    pub fn cancellable(&self) -> bool {
        matches!(self.status, JobStatus::Pending | JobStatus::Assigned)
    }

    pub fn had_fault(&self) -> bool {
        self.attempts.iter().any(|a| a.state.is_fault())
    }

    /// Whether `p` (registered as `id`) may work on this job, the program requiring
    /// `requires`: active, admitted by the job's prover set and carrying the labels. Free
    /// resources, stake and earlier attempts are each caller's own rule.
    pub fn admits(&self, id: &ProverId, p: &Prover, requires: &[Label]) -> bool {
        p.is_active()
            && self.prover_set.admits(id, &p.labels)
            && requires.iter().all(|l| p.labels.contains(l))
    }

    /// Whether `prover` is kept out of this job's race: it failed the job through its own
    /// fault, or has a race proof of it under verification.
    pub fn barred_from_race(&self, prover: &ProverId) -> bool {
        self.attempts
            .iter()
            .any(|a| a.prover == *prover && (a.state.is_fault() || (a.race && a.state.is_live())))
    }

    /// Every prover that ever held an attempt of this job.
    pub fn provers(&self) -> Vec<ProverId> {
        self.attempts.iter().map(|a| a.prover).collect()
    }

    /// Whether the job waits in the chain's queue for the end-of-block rules to assign it a
    /// prover: a job of a chain-assigned mechanism (random, the stake lotteries) that is not
    /// final, not racing, not a probe, and has fewer live attempts than its redundancy while
    /// it may still make more.
    pub fn waits_for_prover(&self, fallback_attempts_max: u8) -> bool {
        let most = usize::from(self.redundancy) + usize::from(fallback_attempts_max);
        self.mechanism.is_assigned()
            && !self.settled
            && !self.status.is_final()
            && self.race_until.is_none()
            && self.probe_for.is_none()
            && self.live_attempts() < usize::from(self.redundancy)
            && self.assigned_attempts() < most
            && self.attempts.len() < ATTEMPTS_MAX
    }
}
