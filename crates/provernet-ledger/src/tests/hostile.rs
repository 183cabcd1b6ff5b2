//! The attacks of a permissionless network, each reproduced through the real ledger and named
//! after it: nobody profits from an attack, nobody honest pays for one, and credits are
//! conserved throughout (the money never goes to the wrong people).

use crate::entities::{AttemptState, FailReason, JobStatus};
use crate::events::{Event, Fault, PaymentKind};
use crate::testkit::*;
use provernet_types::{
    AttemptOutcome, BoundedString, JobId, MechanismKind, MicroCredits, ProgramFailure, ProgramId,
    TxBody, Verdict, VerifiedTx,
};

fn job(c: &TestChain, id: &JobId) -> crate::Job {
    c.job(id).expect("job exists").clone()
}

fn balance(c: &TestChain, who: &str) -> u64 {
    c.state.account(&c.account(who)).map_or(0, |a| a.balance.0)
}

fn conserved(c: &TestChain) {
    assert_eq!(c.state.total_credits(), u128::from(c.state.meta().supply.0));
}

/// The draw delay of a live chain: a fallback is drawn at least two blocks after the claim
/// that caused it, with a seed nobody knew when the claim was made.
fn live_draw_delay(p: &mut crate::ChainParams) {
    p.draw_delay = provernet_types::Blocks(2);
}

/// Runs agent blocks until every job is settled; returns their outputs.
fn run(c: &mut TestChain, behaviour: Behaviour, max: u64) -> Vec<crate::BlockOutput> {
    let mut outs = Vec::new();
    for _ in 0..max {
        if c.state.jobs().all(|(_, j)| j.settled) {
            break;
        }
        let txs = c.agent_txs(behaviour);
        outs.push(c.block(txs));
    }
    outs
}

fn paid_in(outs: &[crate::BlockOutput], c: &TestChain, who: &str, kind: PaymentKind) -> u64 {
    outs.iter().map(|o| paid_to(o, who, c, kind)).sum()
}

fn committee() -> ProgramId {
    committee_program().id()
}

/// The name of the prover of `attempt` of `id`.
fn prover_of(c: &TestChain, id: &JobId, attempt: u8) -> String {
    let p = job(c, id).attempts[usize::from(attempt)].prover;
    c.name_of(&p.into()).expect("a test prover")
}

/// Has the prover of `attempt` accept it, once it is drawn; returns its name.
fn accept(c: &mut TestChain, id: JobId, attempt: u8) -> String {
    for _ in 0..10 {
        if job(c, &id).attempts.len() > usize::from(attempt) {
            break;
        }
        c.block(vec![]);
    }
    let name = prover_of(c, &id, attempt);
    let tx = c.tx(&name, TxBody::AcceptJob { job: id, attempt });
    let out = c.block(vec![tx]);
    assert!(out.receipts[0].result.is_ok(), "accept: {:?}", out.receipts[0].result);
    name
}

fn claim_tx(c: &mut TestChain, who: &str, id: JobId, attempt: u8, time_limit: bool) -> VerifiedTx {
    let reason = BoundedString::try_new("the program said no").expect("short");
    let outcome = if time_limit {
        AttemptOutcome::TimeLimit { reason }
    } else {
        AttemptOutcome::ProgramError { failure: ProgramFailure::NoOutput, reason }
    };
    c.tx(who, TxBody::PostResult { job: id, attempt, outcome, usage: usage() })
}

fn claim(c: &mut TestChain, who: &str, id: JobId, attempt: u8, time_limit: bool) {
    let tx = claim_tx(c, who, id, attempt, time_limit);
    let out = c.block(vec![tx]);
    assert!(out.receipts[0].result.is_ok(), "claim: {:?}", out.receipts[0].result);
}

/// Every committee member of `attempt` votes `verdict`, once its committee is seated.
fn votes(c: &mut TestChain, id: JobId, attempt: u8, verdict: Verdict) -> crate::BlockOutput {
    for _ in 0..10 {
        if !job(c, &id).attempts[usize::from(attempt)].committee.is_empty() {
            break;
        }
        c.block(vec![]);
    }
    let a = job(c, &id).attempts[usize::from(attempt)].clone();
    assert!(!a.committee.is_empty(), "no committee seated: {a:#?}");
    let txs: Vec<VerifiedTx> = a
        .committee
        .iter()
        .map(|m| {
            let n = c.name_of(m).expect("a test key");
            c.tx(&n, TxBody::Vote { job: id, attempt, verdict })
        })
        .collect();
    c.block(txs)
}

fn slashed(outs: &[crate::BlockOutput], fault: Fault) -> Vec<provernet_types::ProverId> {
    outs.iter()
        .flat_map(|o| o.events.iter())
        .filter_map(|e| match e {
            Event::Slashed { prover, fault: f, .. } if *f == fault => Some(*prover),
            _ => None,
        })
        .collect()
}

fn paid_to(out: &crate::BlockOutput, who: &str, c: &TestChain, kind: PaymentKind) -> u64 {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, kind: k, amount, .. } if *to == c.account(who) && *k == kind => {
                Some(amount.0)
            }
            _ => None,
        })
        .sum()
}

/// A committee job with redundancy 2 on a chain of six provers, both attempts accepted:
/// returns the chain, the job and the two provers.
fn redundant_pair() -> (TestChain, JobId, String, String) {
    let mut c = TestChain::new(6, |_| {});
    let mut spec = c.spec(committee(), 60);
    spec.redundancy = 2;
    let (id, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    let a = accept(&mut c, id, 0);
    let b = accept(&mut c, id, 1);
    (c, id, a, b)
}

fn dutch(c: &mut TestChain, max_credits: u64) -> JobId {
    let mut spec = c.spec(committee(), 60);
    spec.mechanism = MechanismKind::ReverseDutch;
    spec.max_fee = MicroCredits(max_credits * MicroCredits::PER_CREDIT);
    let (id, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    id
}

// 1. A requester steals auction collateral --------------------------------------------------

/// A program that exits 0 and writes nothing, as a reverse-Dutch job: each prover that locks it
/// reports the failure instead of missing its deadline, so no collateral is forfeited; claims
/// from provers drawn one after the other confirm it, the job fails as the program's, and the
/// requester pays one fee for it.
#[test]
fn a_requester_steals_auction_collateral_provers_report_the_program_instead() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let id = dutch(&mut c, 4);
    let failing = Behaviour { program_error_pct: 100, race_pct: 0, ..Behaviour::HONEST };
    c.run_agent(failing, 400);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::Program), "{j:#?}");
    assert!(j.settled);
    for p in ["p0", "p1", "p2", "p3"] {
        let pr = c.state.prover(&c.prover_id(p)).unwrap();
        assert_eq!((pr.stake, pr.bonded.0, pr.faults), (PROVER_STAKE, 0, 0), "{p} lost nothing");
    }
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0, "one fee, no gain");
    conserved(&c);
}

/// Provers that lock and then fail for real forfeit their collateral, but what is not burned
/// waits for whoever proves the job and, when nobody does, goes to the treasury: never to the
/// requester, who could otherwise profit from making provers fail.
#[test]
fn a_requester_steals_auction_collateral_an_unclaimed_bounty_is_not_refunded() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let treasury = c.state.meta().treasury.0;
    let id = dutch(&mut c, 4);
    let silent = Behaviour { deliver_pct: 0, race_pct: 0, ..Behaviour::HONEST };
    c.run_agent(silent, 600);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::NoProof), "{j:#?}");
    assert!(j.settled);
    assert!(j.attempts.iter().all(|a| a.state == AttemptState::MissedDeadline));
    assert_eq!(balance(&c, "alice"), before, "refunded in full, and not a credit more");
    assert!(c.state.meta().treasury.0 > treasury, "bounties and slashes went to the treasury");
    conserved(&c);
}

// 3. Free proofs -------------------------------------------------------------------------------

/// A built-in job whose statement the validators cannot read: they say so, the prover is paid
/// for its proof, and the requester is charged for it instead of getting its escrow back.
#[test]
fn free_proofs_a_statement_the_validators_cannot_read_is_charged_to_the_requester() {
    let mut c = TestChain::new(3, four_validators);
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(builtin_program().id(), 60));
    c.block(vec![tx]);
    let prover = accept(&mut c, id, 0);
    let earned = balance(&c, &prover);
    c.prove(&prover, id, 0, &proof_files(true));
    let out = votes(&mut c, id, 0, Verdict::CannotVerify);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::Unverifiable), "{j:#?}");
    assert_eq!(j.attempts[0].state, AttemptState::CannotVerify);
    let reward = paid_to(&out, &prover, &c, PaymentKind::ProverReward);
    assert!(reward > 0 && balance(&c, &prover) == earned + reward, "the prover is paid");
    c.idle(3);
    assert!(job(&c, &id).settled);
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0, "the proof is paid for");
    let p = c.state.prover(&c.prover_id(&prover)).unwrap();
    assert_eq!((p.stake, p.faults), (PROVER_STAKE, 0));
    conserved(&c);
}

/// A committee-verified job whose verifier fails (neither valid nor invalid): the members say
/// so, and the honest prover is paid instead of being slashed as invalid.
#[test]
fn free_proofs_a_verifier_that_fails_does_not_slash_the_prover() {
    let mut c = TestChain::new(6, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let prover = accept(&mut c, id, 0);
    c.prove(&prover, id, 0, &proof_files(true));
    let out = votes(&mut c, id, 0, Verdict::CannotVerify);
    assert!(slashed(std::slice::from_ref(&out), Fault::InvalidProof).is_empty());
    assert!(paid_to(&out, &prover, &c, PaymentKind::ProverReward) > 0);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::Unverifiable));
    c.idle(3);
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0);
    conserved(&c);
}

// 5. Paid without work ------------------------------------------------------------------------

/// Redundancy 2 with a second identity waiting for the honest co-prover's proof: the honest
/// prover may reveal only once every attempt assigned with it has committed or ended, so the
/// copier either commits blind or misses its deadline (slashed); a fallback drawn after the
/// reveal that posts the same bytes is superseded, not paid.
#[test]
fn paid_without_work_a_second_identity_cannot_copy_the_co_provers_proof() {
    let (mut c, id, honest, copier) = redundant_pair();
    let files = proof_files(true);
    let commit = c.commit(&honest, id, 0, &files);
    c.block(vec![commit]);
    assert_eq!(job(&c, &id).status, JobStatus::Running, "a committed proof is still being proven");
    // The copier waits for the proof; the honest reveal waits for the copier.
    let mut outs = Vec::new();
    loop {
        let reveal = c.reveal(&honest, id, 0, &files);
        let out = c.block(vec![reveal]);
        let refused = out.receipts[0].result.as_ref().err().map(|e| e.code());
        outs.push(out);
        match refused {
            Some("reveal_not_open") => continue,
            None => break,
            Some(other) => panic!("unexpected refusal {other}"),
        }
    }
    let j = job(&c, &id);
    assert_eq!(j.attempts[1].state, AttemptState::MissedDeadline, "{j:#?}");
    assert_eq!(slashed(&outs, Fault::MissedDeadline), vec![c.prover_id(&copier)]);
    assert_eq!(j.attempts[0].state, AttemptState::Proven);
    // A fallback for the missed attempt, drawn after the reveal, posts the very same bytes.
    let late = accept(&mut c, id, 2);
    c.prove(&late, id, 2, &files);
    assert_eq!(job(&c, &id).attempts[2].state, AttemptState::Superseded);
    let outs = run(&mut c, Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert_eq!(j.attempts[0].state, AttemptState::Verified);
    assert_eq!(paid_in(&outs, &c, &late, PaymentKind::ProverReward), 0, "the copy earned nothing");
    assert!(paid_in(&outs, &c, &honest, PaymentKind::ProverReward) > 0);
    let lp = c.state.prover(&c.prover_id(&late)).unwrap();
    assert_eq!((lp.bonded.0, lp.faults), (0, 0), "and cost its bond nothing");
    conserved(&c);
}

/// A copier that commits blind, to get past the honest prover's gate, cannot then reveal the
/// honest proof: it does not match its commitment.
#[test]
fn paid_without_work_a_blind_commitment_does_not_fit_the_real_proof() {
    let (mut c, id, honest, copier) = redundant_pair();
    let files = proof_files(true);
    let blind = c.commit(&copier, id, 1, &proof_files(false));
    let commit = c.commit(&honest, id, 0, &files);
    c.block(vec![blind, commit]);
    let reveal = c.reveal(&honest, id, 0, &files);
    assert!(c.block(vec![reveal]).receipts[0].result.is_ok());
    let copy = c.reveal(&copier, id, 1, &files);
    let out = c.block(vec![copy]);
    let err = out.receipts[0].result.as_ref().unwrap_err();
    assert_eq!(err.code(), "commitment_mismatch");
}

/// Two honest provers of a deterministic proof system post identical bytes: both committed
/// before either revealed, so both are paid.
#[test]
fn paid_without_work_two_honest_provers_with_identical_proofs_are_both_paid() {
    let mut c = TestChain::new(6, |_| {});
    let mut spec = c.spec(committee(), 60);
    spec.redundancy = 2;
    let (id, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    let verified = j.attempts.iter().filter(|a| a.state == AttemptState::Verified).count();
    assert_eq!(verified, 2, "{j:#?}");
    conserved(&c);
}

/// A program-error claim used as a free decline: a prover drawn later proves the job, which
/// refutes the claim; the claimer is slashed and paid nothing, and the requester gets its
/// fallback refund.
#[test]
fn paid_without_work_a_false_program_error_claim_is_refuted_and_slashed() {
    let mut c = TestChain::new(6, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let liar = accept(&mut c, id, 0);
    claim(&mut c, &liar, id, 0, false);
    let outs = run(&mut c, Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert_eq!(j.attempts[0].state, AttemptState::Refuted);
    let p = c.state.prover(&c.prover_id(&liar)).unwrap();
    assert_eq!(p.faults, 1);
    assert!(p.stake < PROVER_STAKE, "slashed");
    for kind in [PaymentKind::ProverReward, PaymentKind::ProgramErrorCharge] {
        assert_eq!(paid_in(&outs, &c, &liar, kind), 0, "paid nothing as {kind:?}");
    }
    assert!(j.fallback_refund.0 > 0);
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0 + j.fallback_refund.0);
    conserved(&c);
}

/// Two identities drawn for one job (redundancy 2) claim a program error together to split the
/// requester's fee: claims made side by side do not confirm each other, a fallback prover
/// drawn after them proves the job, and both are slashed.
#[test]
fn paid_without_work_two_identities_cannot_fail_a_job_together() {
    let (mut c, id, a, b) = redundant_pair();
    let (ta, tb) = (claim_tx(&mut c, &a, id, 0, false), claim_tx(&mut c, &b, id, 1, false));
    c.block(vec![ta, tb]);
    assert!(!job(&c, &id).status.is_final(), "two side-by-side claims confirm nothing");
    c.run_agent(Behaviour::HONEST, 200);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    for who in [&a, &b] {
        let p = c.state.prover(&c.prover_id(who)).unwrap();
        assert_eq!(p.faults, 1, "{who} is slashed for its false claim");
    }
    conserved(&c);
}

/// A program that really fails does so on provers drawn one after the other: their claims
/// confirm each other, the job fails as the program's, the requester pays one fee shared by
/// the claimers, and nobody is slashed.
#[test]
fn a_program_failing_on_independent_provers_is_the_requesters_fault() {
    let mut c = TestChain::new(6, live_draw_delay);
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let first = accept(&mut c, id, 0);
    claim(&mut c, &first, id, 0, false);
    let second = accept(&mut c, id, 1);
    let tx = claim_tx(&mut c, &second, id, 1, false);
    let mut outs = vec![c.block(vec![tx])];
    for _ in 0..5 {
        outs.push(c.block(vec![]));
    }
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::Program), "{j:#?}");
    assert!(slashed(&outs, Fault::FalseClaim).is_empty());
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0);
    conserved(&c);
}

// A time limit is its own outcome ----------------------------------------------------------

/// Provers drawn one after the other all run out of the job's time limit: the limit was too
/// short, the requester's fault; it pays one fee shared by them, and nobody is slashed.
#[test]
fn a_time_limit_hit_on_independent_provers_is_the_requesters_fault() {
    let mut c = TestChain::new(6, live_draw_delay);
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let first = accept(&mut c, id, 0);
    claim(&mut c, &first, id, 0, true);
    let second = accept(&mut c, id, 1);
    claim(&mut c, &second, id, 1, true);
    c.idle(3);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::TimeLimit), "{j:#?}");
    assert!(j.settled);
    for who in [&first, &second] {
        let p = c.state.prover(&c.prover_id(who)).unwrap();
        assert_eq!((p.stake, p.faults), (PROVER_STAKE, 0));
    }
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0);
    conserved(&c);
}

/// A prover too slow for the job's resources: another prover proves within the limit, which
/// shows the limit was enough; the slow prover is slashed and paid nothing.
#[test]
fn a_time_limit_refuted_by_a_proof_is_the_slow_provers_fault() {
    let mut c = TestChain::new(6, |_| {});
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let slow = accept(&mut c, id, 0);
    claim(&mut c, &slow, id, 0, true);
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    assert_eq!(j.attempts[0].state, AttemptState::Refuted);
    assert_eq!(c.state.prover(&c.prover_id(&slow)).unwrap().faults, 1);
    conserved(&c);
}
