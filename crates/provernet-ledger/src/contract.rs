//! Ledger records in the wire contract's types ([`provernet_api_types`]), and the work listing
//! of a prover (`GET /v1/provers/{id}/work`), derived here next to the rules it mirrors. The
//! API serves these; the ledger's test agent feeds the same listing to the node's core.

use crate::entities::{
    Account, Attempt, AttemptState, Job, NodeStatus, Program, Prover, ProverStatus, Workflow,
};
use crate::error::TxError;
use crate::events::{Event, Fault, PaymentKind};
use crate::market::Opening;
use crate::state::State;
use provernet_api_types as t;
use provernet_types::workflow::node_job_id;
use provernet_types::{
    AccountId, Height, JobId, ProgramFailure, ProgramId, ProverId, Verdict, VerifierSpec,
    WorkflowId,
};

/// What prover (or validator) `me` has to do now: attempts assigned to it awaiting an accept
/// (`accept`), attempts it runs (`run`), committed proofs whose reveal is due (`reveal_proof`),
/// proofs awaiting its vote (`vote`), open races (`race`), reverse-Dutch jobs it may lock
/// (`lock`), and lowest-bid rounds taking (`bid`) or revealing (`reveal`) its sealed bid. At most
/// [`t::WORK_TASKS_MAX`] tasks.
///
/// Read from the state's indexes ([`State::tasks_of`], [`State::markets`]): the cost is the
/// account's own tasks and the open markets, never the jobs in the state, so an unknown id
/// costs what a prover with no work costs.
pub fn work(s: &State, me: &AccountId) -> t::Work {
    let mut ids: Vec<JobId> = s.tasks_of(me).collect();
    ids.extend(s.markets());
    ids.sort_unstable();
    ids.dedup();
    work_in(s, me, ids.iter().filter_map(|id| s.job(id).map(|j| (id, j))))
}

/// [`work`] by a scan of every live job: what the indexes must always agree with.
#[cfg(any(test, feature = "testkit"))]
pub fn work_by_scan(s: &State, me: &AccountId) -> t::Work {
    work_in(s, me, s.jobs())
}

/// The work listing over `jobs`, in id order.
fn work_in<'a>(
    s: &State,
    me: &AccountId,
    jobs: impl Iterator<Item = (&'a JobId, &'a Job)>,
) -> t::Work {
    let pid = ProverId::from(*me);
    let mut tasks = Vec::new();
    'jobs: for (jid, j) in jobs.filter(|(_, j)| !j.settled) {
        for (i, a) in j.attempts.iter().enumerate() {
            let kind = match a.state {
                AttemptState::Assigned if a.prover == pid => t::TaskKind::Accept,
                AttemptState::Running if a.prover == pid => t::TaskKind::Run,
                // Revealed in a later block, once no co-prover can still commit.
                AttemptState::Committed if a.prover == pid => {
                    let at = a.commitment.map_or(a.assigned_at, |(h, _)| h);
                    let next = Height(s.height().0 + 1);
                    if next > at && crate::apply::gate_open(j, at, next) {
                        t::TaskKind::RevealProof
                    } else {
                        continue;
                    }
                }
                AttemptState::Proven => {
                    let pos = a.committee.iter().position(|m| m == me);
                    match pos.and_then(|p| a.votes.get(p)) {
                        Some(None) => t::TaskKind::Vote,
                        _ => continue,
                    }
                }
                _ => continue,
            };
            if tasks.len() == t::WORK_TASKS_MAX {
                break 'jobs;
            }
            tasks.push(t::Task {
                kind,
                attempt: u8::try_from(i).unwrap_or(u8::MAX),
                deadline: a.deadline,
                price_micro_credits: None,
                round: None,
                job: job(jid, j),
            });
        }
        if let Some(o) = crate::market::opening(s, j, &pid) {
            if tasks.len() == t::WORK_TASKS_MAX {
                break 'jobs;
            }
            tasks.push(opening(jid, j, &o));
        }
    }
    t::Work { height: s.height().0, prover: s.prover(&pid).map(|p| prover(&pid, p)), tasks }
}

pub fn account(id: &AccountId, a: &Account) -> t::Account {
    t::Account { id: *id, balance_micro_credits: a.balance, nonce: a.nonce, open_jobs: a.open_jobs }
}

pub fn program(id: &ProgramId, p: &Program) -> t::Program {
    let m = &p.manifest;
    let verifier = match &m.verifier {
        VerifierSpec::Program { blob, limits } => {
            t::Verifier::Program { code: blob.into(), limits: (*limits).into() }
        }
        VerifierSpec::Builtin(b) => t::Verifier::Builtin { name: (*b).into() },
    };
    t::Program {
        id: *id,
        name: m.name.clone(),
        owner: p.owner,
        registered_at: p.registered_at,
        prover: (&m.prover).into(),
        verifier,
        default_resources: m.default_resources.into(),
        default_time_limit_s: m.default_time_limit,
        requires: m.requires.iter().cloned().collect(),
        inputs: m.inputs.iter().cloned().collect(),
        outputs: m.outputs.iter().cloned().collect(),
    }
}

pub fn prover(id: &ProverId, p: &Prover) -> t::Prover {
    let (status, exiting_until) = match p.status {
        ProverStatus::Probing { .. } => (t::ProverStatus::Probing, None),
        ProverStatus::Active => (t::ProverStatus::Active, None),
        ProverStatus::Exiting { until, ejected: false } => (t::ProverStatus::Exiting, Some(until)),
        ProverStatus::Exiting { until, ejected: true } => (t::ProverStatus::Ejected, Some(until)),
    };
    t::Prover {
        id: *id,
        status,
        active: p.is_active(),
        exiting_until,
        capacity: p.capacity.into(),
        used: p.used.into(),
        labels: p.labels.iter().cloned().collect(),
        stake_micro_credits: p.stake,
        bonded_micro_credits: p.bonded,
        earned_micro_credits: p.earned,
        slashed_micro_credits: p.slashed,
        faults: p.faults,
        completed: p.completed,
        registered_at: p.registered_at,
    }
}

pub fn attempt_state(s: AttemptState) -> t::AttemptState {
    use t::AttemptState as T;
    match s {
        AttemptState::Assigned => T::Assigned,
        AttemptState::Running => T::Running,
        AttemptState::Committed => T::Committed,
        AttemptState::Proven => T::Proven,
        AttemptState::Verified => T::Verified,
        AttemptState::Rejected => T::Rejected,
        AttemptState::MissedAccept => T::MissedAccept,
        AttemptState::MissedDeadline => T::MissedDeadline,
        AttemptState::Declined => T::Declined,
        AttemptState::ProgramError => T::ProgramError,
        AttemptState::Cancelled => T::Cancelled,
        AttemptState::Superseded => T::Superseded,
        AttemptState::Unverifiable => T::Unverifiable,
        AttemptState::TimeLimit => T::TimeLimit,
        AttemptState::Refuted => T::Refuted,
        AttemptState::CannotVerify => T::CannotVerify,
    }
}

fn verdict(v: Verdict) -> t::Verdict {
    match v {
        Verdict::Valid => t::Verdict::Valid,
        Verdict::Invalid => t::Verdict::Invalid,
        Verdict::CannotVerify => t::Verdict::CannotVerify,
    }
}

fn attempt(a: &Attempt) -> t::Attempt {
    t::Attempt {
        prover: a.prover,
        state: attempt_state(a.state),
        race: a.race,
        assigned_at: a.assigned_at,
        deadline: a.deadline,
        proof: a.proof.iter().map(t::NamedBlob::from).collect(),
        usage: t::Usage {
            wall_ms: a.usage.wall.0,
            cpu_ms: a.usage.cpu.0,
            peak_memory_bytes: a.usage.peak_memory,
        },
        exit_code: match a.failure {
            Some(ProgramFailure::Exit(c)) => Some(c),
            _ => None,
        },
        failure: a.failure.map(|f| f.name()),
        committed_at: a.commitment.map(|(h, _)| h),
        reported_at: a.reported_at,
        committee: a.committee.iter().copied().collect(),
        votes: a.votes.iter().map(|v| v.map(verdict)).collect(),
        verify_round: a.verify_round,
        price_micro_credits: a.price,
        collateral_micro_credits: a.collateral,
    }
}

pub fn job_status(s: crate::entities::JobStatus) -> t::JobStatus {
    use crate::entities::{FailReason as R, JobStatus as S};
    match s {
        S::Pending => t::JobStatus::Pending,
        S::Assigned => t::JobStatus::Assigned,
        S::Running => t::JobStatus::Running,
        S::Proven => t::JobStatus::Proven,
        S::Race => t::JobStatus::Race,
        S::Verified => t::JobStatus::Verified,
        S::Failed(R::Program) => t::JobStatus::FailedProgram,
        S::Failed(R::NoProof) => t::JobStatus::FailedNoProof,
        S::Failed(R::TimeLimit) => t::JobStatus::FailedTimeLimit,
        S::Failed(R::Unverifiable) => t::JobStatus::FailedUnverifiable,
        S::Cancelled => t::JobStatus::Cancelled,
        S::Expired => t::JobStatus::Expired,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn job(id: &JobId, j: &Job) -> t::Job {
    t::Job {
        id: *id,
        requester: j.requester,
        program: j.program,
        status: job_status(j.status),
        is_final: j.status.is_final(),
        inputs: j.inputs.iter().map(t::NamedBlob::from).collect(),
        resources: j.resources.into(),
        time_limit_s: j.time_limit,
        redundancy: j.redundancy,
        mechanism: j.mechanism.into(),
        fee_per_prover_micro_credits: j.fee_per_prover,
        max_fee_micro_credits: j.max_fee,
        race_price_micro_credits: j.race_price,
        race_until: j.race_until,
        auction_round_opened_at: j.round,
        sealed_bids: count(j.bids.len()),
        revealed_bids: count(j.bids.iter().filter(|b| b.price.is_some()).count()),
        bounty_micro_credits: j.bounty,
        escrow_micro_credits: j.escrow,
        attempts: j.attempts.iter().map(attempt).collect(),
        winner: j.winner,
        submitted_at: j.submitted_at,
        finished_at: j.finished_at,
        fallback_refund_micro_credits: j.fallback_refund,
        workflow: j.workflow.map(|r| t::NodeRef { workflow: r.workflow, node: r.node }),
    }
}

fn node_status(s: NodeStatus) -> (t::NodeStatus, Option<t::JobStatus>) {
    match s {
        NodeStatus::Waiting => (t::NodeStatus::Waiting, None),
        NodeStatus::Job => (t::NodeStatus::Job, None),
        NodeStatus::Done(j) => (t::NodeStatus::Done, Some(job_status(j))),
        NodeStatus::Skipped { .. } => (t::NodeStatus::Skipped, None),
    }
}

/// Where a workflow is, from its record (see [`t::WorkflowStatus`]).
pub fn workflow_status(w: &Workflow) -> t::WorkflowStatus {
    if w.is_finished() {
        finished_status(w.cancelled, w.failed)
    } else {
        t::WorkflowStatus::Running
    }
}

fn finished_status(cancelled: bool, failed: Option<u8>) -> t::WorkflowStatus {
    if cancelled {
        t::WorkflowStatus::Cancelled
    } else if failed.is_some() {
        t::WorkflowStatus::Failed
    } else {
        t::WorkflowStatus::Verified
    }
}

/// A workflow with each node's job status, read from `s`.
pub fn workflow(s: &State, id: &WorkflowId, w: &Workflow) -> t::Workflow {
    let name = |i: u8| w.spec.nodes.get(usize::from(i)).map(|n| n.name.clone());
    let nodes = w
        .spec
        .nodes
        .iter()
        .zip(w.nodes.iter())
        .map(|(n, state)| {
            let job_id = node_job_id(id, &n.name);
            let (status, mut ended) = node_status(state.status);
            if state.status == NodeStatus::Job {
                ended = s.job(&job_id).map(|j| job_status(j.status));
            }
            t::WorkflowNode {
                name: n.name.clone(),
                job: job_id,
                program: n.job.program,
                status,
                job_status: ended,
                skipped_because: match state.status {
                    NodeStatus::Skipped { cause: Some(c) } => name(c),
                    _ => None,
                },
                inputs: n.job.inputs.iter().map(t::NamedBlob::from).collect(),
                wires: n
                    .wires
                    .iter()
                    .map(|w| t::WorkflowWire {
                        input: w.input.clone(),
                        node: w.node.clone(),
                        output: w.output.clone(),
                    })
                    .collect(),
                escrow_micro_credits: state.escrow,
            }
        })
        .collect();
    t::Workflow {
        id: *id,
        requester: w.requester,
        status: workflow_status(w),
        is_final: w.is_finished(),
        failed_node: w.failed.and_then(name),
        cancelled: w.cancelled,
        max_fee_micro_credits: w.spec.max_fee,
        escrow_micro_credits: w.escrow,
        submitted_at: w.submitted_at,
        finished_at: w.finished_at,
        nodes,
    }
}

/// A market task for `/work`: what the job offers, by when, at what price.
pub fn opening(id: &JobId, j: &Job, o: &Opening) -> t::Task {
    let (kind, deadline, price, round) = match *o {
        Opening::Race { until, price } => (t::TaskKind::Race, until, Some(price), None),
        Opening::Lock { price, round } => (t::TaskKind::Lock, Height(0), Some(price), Some(round)),
        Opening::Bid { until, round } => (t::TaskKind::Bid, until, None, Some(round)),
        Opening::Reveal { until, round } => (t::TaskKind::Reveal, until, None, Some(round)),
    };
    t::Task {
        kind,
        attempt: u8::try_from(j.attempts.len()).unwrap_or(u8::MAX),
        deadline,
        price_micro_credits: price,
        round,
        job: job(id, j),
    }
}

/// Why the ledger refused a transaction, with the values it names.
pub fn tx_error(e: &TxError) -> t::TxErrorView {
    t::TxErrorView {
        code: t::ErrorCode::parse(e.code()),
        message: e.to_string(),
        fields: e.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// A stored block; `receipt` says how each of its transactions ended, where known.
fn payment_kind(k: PaymentKind) -> t::PaymentKind {
    match k {
        PaymentKind::ProverReward => t::PaymentKind::ProverReward,
        PaymentKind::VerifierReward => t::PaymentKind::VerifierReward,
        PaymentKind::ProgramErrorCharge => t::PaymentKind::ProgramErrorCharge,
        PaymentKind::FallbackRefund => t::PaymentKind::FallbackRefund,
        PaymentKind::EscrowRefund => t::PaymentKind::EscrowRefund,
        PaymentKind::StakeReturned => t::PaymentKind::StakeReturned,
        PaymentKind::Bounty => t::PaymentKind::Bounty,
    }
}

fn fault(f: Fault) -> t::Fault {
    match f {
        Fault::MissedAccept => t::Fault::MissedAccept,
        Fault::MissedDeadline => t::Fault::MissedDeadline,
        Fault::InvalidProof => t::Fault::InvalidProof,
        Fault::MissedVote => t::Fault::MissedVote,
        Fault::FalseClaim => t::Fault::FalseClaim,
    }
}

pub fn event(e: &Event) -> t::Event {
    use t::Event as T;
    match e.clone() {
        Event::ProgramRegistered { program } => T::ProgramRegistered { program },
        Event::ProverRegistered { prover } => T::ProverRegistered { prover },
        Event::ProverActivated { prover } => T::ProverActivated { prover },
        Event::ProverExiting { prover, ejected } => T::ProverExiting { prover, ejected },
        Event::ProverRemoved { prover } => T::ProverRemoved { prover },
        Event::JobSubmitted { job, requester, fee_per_prover } => {
            T::JobSubmitted { job, requester, fee_per_prover_micro_credits: fee_per_prover }
        }
        Event::AttemptAssigned { job, attempt, prover } => {
            T::AttemptAssigned { job, attempt, prover }
        }
        Event::AttemptChanged { job, attempt, state } => {
            T::AttemptChanged { job, attempt, state: attempt_state(state) }
        }
        Event::CommitteeDrawn { job, attempt, members } => {
            T::CommitteeDrawn { job, attempt, members }
        }
        Event::RaceOpened { job } => T::RaceOpened { job },
        Event::JobStatusChanged { job, status } => {
            T::JobStatusChanged { job, status: job_status(status) }
        }
        Event::Slashed { prover, job, fault: f, amount } => {
            T::Slashed { prover, job, fault: fault(f), amount_micro_credits: amount }
        }
        Event::CollateralForfeited { prover, job, burned, bounty } => T::CollateralForfeited {
            prover,
            job,
            burned_micro_credits: burned,
            bounty_micro_credits: bounty,
        },
        Event::Paid { to, job, kind, amount } => {
            T::Paid { to, job, kind: payment_kind(kind), amount_micro_credits: amount }
        }
        Event::WorkflowSubmitted { workflow, requester } => {
            T::WorkflowSubmitted { workflow, requester }
        }
        Event::WorkflowNodeChanged { workflow, node, status } => {
            let (s, job_status) = node_status(status);
            let skipped_because = match status {
                NodeStatus::Skipped { cause } => cause,
                _ => None,
            };
            T::WorkflowNodeChanged { workflow, node, status: s, job_status, skipped_because }
        }
        Event::WorkflowFinished { workflow, failed, cancelled } => T::WorkflowFinished {
            workflow,
            status: finished_status(cancelled, failed),
            failed_node: failed,
        },
    }
}
