//! What a block did, for receipts, the API's event streams and prover nodes.

use crate::entities::{AttemptState, JobStatus, NodeStatus};
use crate::error::TxError;
use provernet_types::{AccountId, JobId, MicroCredits, ProgramId, ProverId, TxHash, WorkflowId};

/// The outcome of one transaction in a block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipt {
    pub tx: TxHash,
    pub result: Result<(), TxError>,
}

/// Why credits moved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaymentKind {
    ProverReward,
    VerifierReward,
    ProgramErrorCharge,
    FallbackRefund,
    EscrowRefund,
    StakeReturned,
    /// Forfeited collateral paid to the prover that proved the job instead.
    Bounty,
}

impl PaymentKind {
    pub fn name(&self) -> &'static str {
        match self {
            PaymentKind::ProverReward => "prover_reward",
            PaymentKind::VerifierReward => "verifier_reward",
            PaymentKind::ProgramErrorCharge => "program_error_charge",
            PaymentKind::FallbackRefund => "fallback_refund",
            PaymentKind::EscrowRefund => "escrow_refund",
            PaymentKind::StakeReturned => "stake_returned",
            PaymentKind::Bounty => "bounty",
        }
    }
}

/// Why a prover was slashed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    MissedAccept,
    MissedDeadline,
    InvalidProof,
    /// A verification committee member did not vote before the round's deadline.
    MissedVote,
    /// Its program-error or time-limit claim was refuted by another prover's verified proof.
    FalseClaim,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    ProgramRegistered {
        program: ProgramId,
    },
    ProverRegistered {
        prover: ProverId,
    },
    ProverActivated {
        prover: ProverId,
    },
    ProverExiting {
        prover: ProverId,
        ejected: bool,
    },
    ProverRemoved {
        prover: ProverId,
    },
    JobSubmitted {
        job: JobId,
        requester: AccountId,
        fee_per_prover: MicroCredits,
    },
    /// An attempt was assigned; `prover` must accept by the attempt's deadline.
    AttemptAssigned {
        job: JobId,
        attempt: u8,
        prover: ProverId,
    },
    AttemptChanged {
        job: JobId,
        attempt: u8,
        state: AttemptState,
    },
    /// A committee was drawn; its members must vote.
    CommitteeDrawn {
        job: JobId,
        attempt: u8,
        members: Vec<AccountId>,
    },
    RaceOpened {
        job: JobId,
    },
    JobStatusChanged {
        job: JobId,
        status: JobStatus,
    },
    Slashed {
        prover: ProverId,
        job: JobId,
        fault: Fault,
        amount: MicroCredits,
    },
    /// An auction winner failed its attempt (or a bidder never revealed): its collateral is
    /// partly burned, the rest held as a bounty for whoever proves the job.
    CollateralForfeited {
        prover: ProverId,
        job: JobId,
        burned: MicroCredits,
        bounty: MicroCredits,
    },
    Paid {
        to: AccountId,
        job: Option<JobId>,
        kind: PaymentKind,
        amount: MicroCredits,
    },
    WorkflowSubmitted {
        workflow: WorkflowId,
        requester: AccountId,
    },
    /// A workflow's node moved: it became a job, its job ended, or it was skipped.
    WorkflowNodeChanged {
        workflow: WorkflowId,
        node: u8,
        status: NodeStatus,
    },
    /// Every node of the workflow is final.
    WorkflowFinished {
        workflow: WorkflowId,
        /// The first node that ended other than Verified, if any.
        failed: Option<u8>,
        cancelled: bool,
    },
}
