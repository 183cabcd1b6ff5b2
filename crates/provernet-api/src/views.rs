//! JSON views of ledger records. Ids and hashes are lowercase hex; credits are integer
//! micro-credits; resources are also given in their human form.

use provernet_consensus::Finalized;
use provernet_ledger::{Account, Attempt, Event, Job, Opening, Program, Prover};
use provernet_store::BlockRecord;
use provernet_types::{
    AccountId, BlobRef, JobId, NamedBlob, ProgramId, ProverId, Resources, VerifierSpec,
};
use serde_json::{json, Value};

pub fn account(id: &AccountId, a: &Account) -> Value {
    json!({
        "id": id.to_string(),
        "balance_micro_credits": a.balance.0,
        "nonce": a.nonce.0,
        "open_jobs": a.open_jobs,
    })
}

fn resources(r: &Resources) -> Value {
    json!({
        "cores": r.cores.to_string(),
        "millicores": r.cores.0,
        "memory": r.memory.to_string(),
        "memory_bytes": r.memory.0,
        "gpus": r.gpus.0,
    })
}

fn blob(b: &BlobRef) -> Value {
    json!({"hash": b.hash.to_string(), "size": b.size.0})
}

fn named(b: &NamedBlob) -> Value {
    json!({"name": b.name.as_str(), "hash": b.blob.hash.to_string(), "size": b.blob.size.0})
}

pub fn program(id: &ProgramId, p: &Program) -> Value {
    let m = &p.manifest;
    let verifier = match &m.verifier {
        VerifierSpec::Program { blob: b, limits } => json!({
            "kind": "program",
            "blob": blob(b),
            "limits": {
                "millicores": limits.cores.0,
                "memory_bytes": limits.memory.0,
                "time_limit_s": limits.time_limit.0,
            },
        }),
        VerifierSpec::Builtin(b) => json!({"kind": "builtin", "name": b.name()}),
    };
    json!({
        "id": id.to_string(),
        "name": m.name.as_str(),
        "owner": p.owner.to_string(),
        "registered_at": p.registered_at.0,
        "prover": blob(&m.prover),
        "verifier": verifier,
        "default_resources": resources(&m.default_resources),
        "default_time_limit_s": m.default_time_limit.0,
        "requires": m.requires.iter().map(|l| l.as_str().to_owned()).collect::<Vec<_>>(),
        "inputs": m.inputs.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>(),
    })
}

pub fn prover(id: &ProverId, p: &Prover) -> Value {
    json!({
        "id": id.to_string(),
        "status": format!("{:?}", p.status),
        "active": p.is_active(),
        "capacity": resources(&p.capacity),
        "used": resources(&p.used),
        "labels": p.labels.iter().map(|l| l.as_str().to_owned()).collect::<Vec<_>>(),
        "stake_micro_credits": p.stake.0,
        "bonded_micro_credits": p.bonded.0,
        "faults": p.faults,
        "completed": p.completed,
        "registered_at": p.registered_at.0,
    })
}

fn attempt(a: &Attempt) -> Value {
    json!({
        "prover": a.prover.to_string(),
        "state": format!("{:?}", a.state),
        "race": a.race,
        "assigned_at": a.assigned_at.0,
        "deadline": a.deadline.0,
        "proof": a.proof.iter().map(named).collect::<Vec<_>>(),
        "usage": {
            "wall_ms": a.usage.wall.0,
            "cpu_ms": a.usage.cpu.0,
            "peak_memory_bytes": a.usage.peak_memory.0,
        },
        "exit_code": match a.failure {
            Some(provernet_types::ProgramFailure::Exit(c)) => Some(c),
            _ => None,
        },
        "failure": a.failure.map(|f| f.name()),
        "committed_at": a.commitment.map(|(h, _)| h.0),
        "reported_at": a.reported_at.map(|h| h.0),
        "committee": a.committee.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "votes": a.votes.iter().map(|v| v.map(|v| v.name())).collect::<Vec<_>>(),
        "verify_round": a.verify_round,
        "price_micro_credits": a.price.0,
        "collateral_micro_credits": a.collateral.0,
    })
}

pub fn job(id: &JobId, j: &Job) -> Value {
    json!({
        "id": id.to_string(),
        "requester": j.requester.to_string(),
        "program": j.program.to_string(),
        "status": j.status.name(),
        "final": j.status.is_final(),
        "inputs": j.inputs.iter().map(named).collect::<Vec<_>>(),
        "resources": resources(&j.resources),
        "time_limit_s": j.time_limit.0,
        "redundancy": j.redundancy,
        "mechanism": j.mechanism.name(),
        "fee_per_prover_micro_credits": j.fee_per_prover.0,
        "max_fee_micro_credits": j.max_fee.0,
        "race_price_micro_credits": j.race_price.0,
        "race_until": j.race_until.map(|h| h.0),
        "auction_round_opened_at": j.round.map(|h| h.0),
        "sealed_bids": j.bids.len(),
        "revealed_bids": j.bids.iter().filter(|b| b.price.is_some()).count(),
        "bounty_micro_credits": j.bounty.0,
        "escrow_micro_credits": j.escrow.0,
        "attempts": j.attempts.iter().map(attempt).collect::<Vec<_>>(),
        "winner": j.winner,
        "submitted_at": j.submitted_at.0,
        "finished_at": j.finished_at.map(|h| h.0),
        "fallback_refund_micro_credits": j.fallback_refund.0,
    })
}

/// A market task for `/work`: what the job offers, by when, at what price.
pub fn opening(id: &JobId, j: &Job, o: &Opening) -> Value {
    let (deadline, price, round) = match *o {
        Opening::Race { until, price } => (until.0, Some(price.0), None),
        Opening::Lock { price, round } => (0, Some(price.0), Some(round.0)),
        Opening::Bid { until, round } => (until.0, None, Some(round.0)),
        Opening::Reveal { until, round } => (until.0, None, Some(round.0)),
    };
    json!({
        "kind": o.kind(),
        "attempt": j.attempts.len(),
        "deadline": deadline,
        "price_micro_credits": price,
        "round": round,
        "job": job(id, j),
    })
}

pub fn block(b: &BlockRecord) -> Value {
    json!({
        "height": b.height.0,
        "hash": b.hash.to_string(),
        "time_ms": b.time.0,
        "state_root": b.root.to_string(),
        "randomness": hex::encode(b.randomness),
        "txs": b.txs.iter().map(|t| t.hash().to_string()).collect::<Vec<_>>(),
    })
}

/// The job an event concerns, if any.
pub fn event_job(e: &Event) -> Option<JobId> {
    match e {
        Event::JobSubmitted { job, .. }
        | Event::AttemptAssigned { job, .. }
        | Event::AttemptChanged { job, .. }
        | Event::CommitteeDrawn { job, .. }
        | Event::RaceOpened { job }
        | Event::JobStatusChanged { job, .. }
        | Event::Slashed { job, .. }
        | Event::CollateralForfeited { job, .. } => Some(*job),
        Event::Paid { job, .. } => *job,
        _ => None,
    }
}

pub fn event(e: &Event) -> Value {
    let kind = format!("{e:?}");
    let name = kind.split([' ', '{', '(']).next().unwrap_or("").to_owned();
    json!({"type": name, "detail": kind})
}

pub fn finalized(b: &Finalized) -> Value {
    json!({
        "height": b.height.0,
        "hash": b.hash.to_string(),
        "time_ms": b.time.0,
        "state_root": b.root.to_string(),
        "txs": b.txs.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "failed_txs": b.receipts.iter().filter(|r| r.result.is_err()).count(),
        "events": b.events.iter().map(event).collect::<Vec<_>>(),
    })
}
