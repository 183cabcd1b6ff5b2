//! One test per lifecycle path of BRIEF §4.

use crate::entities::{AttemptState, FailReason, JobStatus, ProverStatus};
use crate::events::{Event, Fault, PaymentKind};
use crate::testkit::*;
use crate::ProbeSpec;
use provernet_types::{
    AccountId, BoundedVec, JobId, MechanismKind, MicroCredits, ProgramId, ProverId, TxBody,
};

fn committee() -> ProgramId {
    committee_program().id()
}

fn conserved(c: &TestChain) {
    assert_eq!(
        c.state.total_credits(),
        u128::from(c.state.meta().supply.0),
        "credits not conserved"
    );
}

fn balance(c: &TestChain, who: &str) -> u64 {
    c.state.account(&c.account(who)).map_or(0, |a| a.balance.0)
}

fn job(c: &TestChain, id: &JobId) -> crate::Job {
    c.state.job(id).expect("job exists").clone()
}

/// Runs the job's first attempt with `silent` not answering, returning the faulting prover.
fn first_prover(c: &TestChain, id: &JobId) -> ProverId {
    job(c, id).attempts[0].prover
}

#[test]
fn happy_path_pays_prover_and_verifiers_and_refunds_nothing_extra() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    let out = c.block(vec![tx]);
    assert!(out.receipts[0].result.is_ok());
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Assigned);
    let fee = j.fee_per_prover;
    assert_eq!(balance(&c, "alice"), before - fee.0, "the quote is escrowed");
    let blocks = c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert!(j.settled);
    assert!(blocks < 10, "honest lifecycle took {blocks} blocks");
    assert_eq!(j.attempts.len(), 1);
    let a = &j.attempts[0];
    assert_eq!(a.state, AttemptState::Verified);
    assert_eq!(a.committee.len(), 3);
    assert!(!a.committee.contains(&a.prover.into()), "the prover never verifies itself");
    assert_eq!(balance(&c, "alice"), before - fee.0, "charged exactly the quote");
    let p = c.state.prover(&a.prover).unwrap();
    assert_eq!(
        (p.bonded, p.used, p.completed),
        (MicroCredits(0), provernet_types::Resources::ZERO, 1)
    );
    conserved(&c);
}

#[test]
fn quote_is_resources_times_time_limit_at_posted_price() {
    let c = TestChain::new(1, |_| {});
    let prices = c.state.params().prices;
    assert_eq!(prices.quote(&small(), provernet_types::Seconds(60)), MicroCredits(148));
}

#[test]
fn missed_accept_falls_back_slashes_and_refunds_half() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let silent = first_prover(&c, &id);
    let stake_before = c.state.prover(&silent).unwrap().stake;
    // Nobody answers until the accept deadline passes.
    let mut slashed = false;
    for _ in 0..c.state.params().accept_timeout.0 {
        let out = c.block(vec![]);
        slashed |= out
            .events
            .iter()
            .any(|e| matches!(e, Event::Slashed { fault: Fault::MissedAccept, .. }));
    }
    assert!(slashed);
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::MissedAccept);
    assert_eq!(j.attempts.len(), 2, "a fallback attempt was assigned");
    assert_ne!(j.attempts[1].prover, silent, "the fallback goes to another prover");
    assert!(c.state.prover(&silent).unwrap().stake < stake_before);
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    let fee = j.fee_per_prover;
    assert_eq!(j.fallback_refund, fee.mul_bps(5_000));
    assert_eq!(balance(&c, "alice"), before - fee.0 + j.fallback_refund.0, "50% back");
    conserved(&c);
}

#[test]
fn missed_deadline_falls_back() {
    let mut c = TestChain::new(4, |_| {});
    let (id, tx) = c.submit("alice", c.spec(committee(), 10));
    c.block(vec![tx]);
    let p0 = first_prover(&c, &id);
    let name = c.name_of(&p0.into()).unwrap();
    let accept = c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 });
    c.block(vec![accept]);
    assert_eq!(job(&c, &id).status, JobStatus::Running);
    let deadline = job(&c, &id).attempts[0].deadline;
    while c.state.height() < deadline {
        c.block(vec![]);
    }
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::MissedDeadline);
    assert_eq!(c.state.prover(&p0).unwrap().faults, 1);
    c.run_agent(Behaviour::HONEST, 100);
    assert_eq!(job(&c, &id).status, JobStatus::Verified);
    conserved(&c);
}

#[test]
fn invalid_proof_is_rejected_slashed_and_reassigned() {
    let mut c = TestChain::new(5, |_| {});
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let cheat = first_prover(&c, &id);
    let name = c.name_of(&cheat.into()).unwrap();
    let accept = c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 });
    c.block(vec![accept]);
    let forged = c.tx(
        &name,
        TxBody::PostResult {
            job: id,
            attempt: 0,
            outcome: provernet_types::AttemptOutcome::Proof(proof_files(false)),
            usage: usage(),
        },
    );
    c.block(vec![forged]);
    c.block(vec![]); // committee drawn
    let a = job(&c, &id).attempts[0].clone();
    assert_eq!(a.state, AttemptState::Proven);
    let votes: Vec<_> = a
        .committee
        .iter()
        .map(|m| {
            let n = c.name_of(m).unwrap();
            c.tx(&n, TxBody::Vote { job: id, attempt: 0, valid: false })
        })
        .collect();
    let out = c.block(votes);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Slashed { fault: Fault::InvalidProof, .. })));
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::Rejected);
    assert_eq!(j.attempts.len(), 2);
    // Voters who caught it were rewarded from the slash.
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Paid { kind: PaymentKind::VerifierReward, .. })));
    c.run_agent(Behaviour::HONEST, 100);
    assert_eq!(job(&c, &id).status, JobStatus::Verified);
    conserved(&c);
}

#[test]
fn program_failing_everywhere_is_failed_program_charged_and_nobody_slashed() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let failing = Behaviour { program_error_pct: 100, ..Behaviour::HONEST };
    c.run_agent(failing, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::Program));
    assert!(j.settled);
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0, "charged one attempt");
    for a in j.attempts.iter() {
        assert_eq!(a.state, AttemptState::ProgramError);
        assert_eq!(c.state.prover(&a.prover).unwrap().faults, 0, "no prover punished");
    }
    conserved(&c);
}

#[test]
fn exhausted_attempts_open_a_race_that_an_outsider_wins() {
    // 4 provers, 1 + 2 fallback attempts: three stay silent, the fourth wins the race.
    let mut c = TestChain::new(4, |_| {});
    let (id, tx) = c.submit("alice", c.spec(committee(), 30));
    c.block(vec![tx]);
    let silent = Behaviour { accept_pct: 0, race_pct: 0, ..Behaviour::HONEST };
    for _ in 0..40 {
        if job(&c, &id).status == JobStatus::Race {
            break;
        }
        let txs = c.agent_txs(silent);
        c.block(txs);
    }
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Race, "{j:#?}");
    assert_eq!(j.assigned_attempts(), 3);
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    let winner = &j.attempts[usize::from(j.winner.unwrap())];
    assert!(winner.race);
    assert!(!j.attempts[..3].iter().any(|a| a.prover == winner.prover));
    conserved(&c);
}

#[test]
fn race_without_proof_fails_with_full_refund_of_escrow() {
    let mut c = TestChain::new(3, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 10));
    c.block(vec![tx]);
    let dead = Behaviour { accept_pct: 0, race_pct: 0, ..Behaviour::HONEST };
    c.run_agent(dead, 200);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Failed(FailReason::NoProof));
    assert!(j.settled);
    assert_eq!(balance(&c, "alice"), before, "full refund");
    conserved(&c);
}

#[test]
fn cancel_while_assigned_refunds_everything_and_frees_the_prover() {
    let mut c = TestChain::new(2, |_| {});
    let before = balance(&c, "alice");
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let p = first_prover(&c, &id);
    let bob_cancel = c.tx("bob", TxBody::CancelJob { job: id });
    let cancel = c.tx("alice", TxBody::CancelJob { job: id });
    let out = c.block(vec![bob_cancel, cancel]);
    assert_eq!(out.receipts[0].result.as_ref().unwrap_err().code(), "not_requester");
    assert!(out.receipts[1].result.is_ok());
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Cancelled);
    assert!(j.settled);
    assert_eq!(balance(&c, "alice"), before);
    let pr = c.state.prover(&p).unwrap();
    assert_eq!((pr.bonded, pr.used), (MicroCredits(0), provernet_types::Resources::ZERO));
    // Too late to cancel a running job.
    let (id2, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let name = c.name_of(&first_prover(&c, &id2).into()).unwrap();
    let accept = c.tx(&name, TxBody::AcceptJob { job: id2, attempt: 0 });
    c.block(vec![accept]);
    let cancel = c.tx("alice", TxBody::CancelJob { job: id2 });
    let out = c.block(vec![cancel]);
    assert_eq!(out.receipts[0].result.as_ref().unwrap_err().code(), "wrong_job_state");
    conserved(&c);
}

#[test]
fn job_no_prover_is_free_for_expires_with_refund() {
    let mut c = TestChain::new(1, |p| p.pending_timeout = provernet_types::Blocks(5));
    let before = balance(&c, "alice");
    // A job that takes the whole machine and runs long, then a second that cannot fit beside it.
    let mut big = c.spec(committee(), 3600);
    big.resources = Some(machine());
    let (first, tx) = c.submit("alice", big.clone());
    c.block(vec![tx]);
    let name = c.name_of(&first_prover(&c, &first).into()).unwrap();
    let accept = c.tx(&name, TxBody::AcceptJob { job: first, attempt: 0 });
    let (second, tx2) = c.submit("alice", big);
    c.block(vec![accept, tx2]);
    c.idle(6);
    let j = job(&c, &second);
    assert_eq!(j.status, JobStatus::Expired);
    assert!(j.settled);
    let fee = job(&c, &first).fee_per_prover;
    assert_eq!(balance(&c, "alice"), before - fee.0, "only the running job is escrowed");
    conserved(&c);
}

#[test]
fn builtin_verifier_is_decided_by_validators() {
    let mut c = TestChain::new(3, |_| {});
    let (id, tx) = c.submit("alice", c.spec(builtin_program().id(), 60));
    c.block(vec![tx]);
    c.run_agent(Behaviour::HONEST, 50);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    assert_eq!(j.attempts[0].committee.as_slice(), &[c.account("v0")]);
    conserved(&c);
}

#[test]
fn redundancy_runs_distinct_provers_and_pays_each_valid_proof() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let mut spec = c.spec(committee(), 60);
    spec.redundancy = 2;
    let (id, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    let j = job(&c, &id);
    assert_eq!(j.attempts.len(), 2);
    assert_ne!(j.attempts[0].prover, j.attempts[1].prover);
    assert_eq!(j.escrow.0, 2 * j.fee_per_prover.0);
    c.run_agent(Behaviour::HONEST, 50);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    assert!(j.attempts.iter().all(|a| a.state == AttemptState::Verified));
    assert_eq!(balance(&c, "alice"), before - 2 * j.fee_per_prover.0);
    conserved(&c);
}

#[test]
fn decline_is_not_punished_but_quota_limited() {
    let mut c = TestChain::new(3, |p| p.decline_quota = 1);
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let p = first_prover(&c, &id);
    let name = c.name_of(&p.into()).unwrap();
    let decline = c.tx(&name, TxBody::DeclineJob { job: id, attempt: 0 });
    c.block(vec![decline]);
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::Declined);
    assert_eq!(c.state.prover(&p).unwrap().faults, 0);
    // A second job lands on the same prover eventually; its decline is over quota.
    for _ in 0..40 {
        let (id2, tx) = c.submit("bob", c.spec(committee(), 60));
        c.block(vec![tx]);
        if first_prover(&c, &id2) == p {
            let decline = c.tx(&name, TxBody::DeclineJob { job: id2, attempt: 0 });
            let out = c.block(vec![decline]);
            assert_eq!(
                out.receipts[0].result.as_ref().unwrap_err().code(),
                "decline_quota_exhausted"
            );
            return;
        }
    }
    panic!("prover never drawn again");
}

#[test]
fn probe_activates_honest_prover_and_ejects_silent_one() {
    let mut c = TestChain::new(3, |p| {
        p.probe = Some(ProbeSpec {
            program: committee_program().id(),
            inputs: BoundedVec::new(),
            time_limit: provernet_types::Seconds(30),
        })
    });
    // The three genesis-era provers registered under the probe rule: honest ones pass.
    c.run_agent(Behaviour::HONEST, 50);
    for i in 0..3 {
        let p = c.state.prover(&c.prover_id(&format!("p{i}"))).unwrap();
        assert_eq!(p.status, ProverStatus::Active, "p{i}");
        assert_eq!(p.used, provernet_types::Resources::ZERO);
    }
    // A new prover that ignores its probe is ejected, and gets its stake back after the delay.
    let lazy = c.add_key("lazy");
    let fund = c.tx("alice", TxBody::Transfer { to: lazy, amount: MicroCredits(200_000_000) });
    c.block(vec![fund]);
    let reg = c.tx(
        "lazy",
        TxBody::RegisterProver {
            capacity: machine(),
            labels: BoundedVec::new(),
            stake: PROVER_STAKE,
        },
    );
    c.block(vec![reg]);
    let p = c.state.prover(&lazy.into()).unwrap();
    assert!(matches!(p.status, ProverStatus::Probing { .. }));
    // It takes no real work while probing.
    let (real, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    assert_ne!(first_prover(&c, &real), ProverId::from(lazy));
    c.idle(c.state.params().accept_timeout.0 + 1);
    let p = c.state.prover(&lazy.into()).unwrap();
    assert!(matches!(p.status, ProverStatus::Exiting { ejected: true, .. }), "{p:?}");
    c.idle(c.state.params().exit_delay.0 + 1);
    assert!(c.state.prover(&lazy.into()).is_none());
    assert_eq!(c.state.account(&lazy).unwrap().balance, MicroCredits(200_000_000));
    conserved(&c);
}

#[test]
fn deregistered_prover_gets_stake_back_after_exit_delay_and_work() {
    let mut c = TestChain::new(1, |_| {});
    let id = c.prover_id("p0");
    let acct: AccountId = id.into();
    let bal = c.state.account(&acct).unwrap().balance;
    let (job_id, tx) = c.submit("alice", c.spec(committee(), 60));
    c.block(vec![tx]);
    let dereg = c.tx("p0", TxBody::DeregisterProver);
    c.block(vec![dereg]);
    assert!(matches!(
        c.state.prover(&id).unwrap().status,
        ProverStatus::Exiting { ejected: false, .. }
    ));
    // It still finishes the job it holds (validator-verified with one prover in the network).
    c.run_agent(Behaviour::HONEST, 300);
    assert_eq!(job(&c, &job_id).status, JobStatus::Verified);
    c.idle(c.state.params().exit_delay.0 + 1);
    assert!(c.state.prover(&id).is_none());
    assert!(c.state.account(&acct).unwrap().balance > MicroCredits(bal.0 + PROVER_STAKE.0 - 1));
    conserved(&c);
}

#[test]
fn repeated_faults_escalate_and_eject() {
    let mut c = TestChain::new(2, |p| p.faults_to_eject = 3);
    let p0 = c.prover_id("p0");
    let mut slashes = Vec::new();
    for _ in 0..60 {
        if matches!(c.state.prover(&p0).map(|p| p.status), Some(ProverStatus::Exiting { .. })) {
            break;
        }
        let mut spec = c.spec(committee(), 30);
        spec.prover_set =
            provernet_types::ProverSet::Allow(BoundedVec::try_from_vec(vec![p0]).unwrap());
        let (_, tx) = c.submit("alice", spec);
        c.block(vec![tx]);
        for _ in 0..4 {
            let out = c.block(vec![]);
            for e in out.events {
                if let Event::Slashed { prover, amount, .. } = e {
                    if prover == p0 {
                        slashes.push(amount.0);
                    }
                }
            }
        }
    }
    assert_eq!(slashes.len(), 3, "{slashes:?}");
    assert!(slashes[0] < slashes[1] && slashes[1] < slashes[2], "escalating: {slashes:?}");
    assert!(matches!(
        c.state.prover(&p0).unwrap().status,
        ProverStatus::Exiting { ejected: true, .. }
    ));
    conserved(&c);
}

#[test]
fn with_a_draw_delay_reactions_to_transactions_wait_for_a_later_seed() {
    let mut c = TestChain::new(4, |p| p.draw_delay = provernet_types::Blocks(2));
    let (id, tx) = c.submit("alice", c.spec(committee(), 60));
    let submitted = c.state.height().0 + 1;
    c.block(vec![tx]);
    // Not assigned in the block of the submission, nor in the next one...
    assert_eq!(job(&c, &id).status, JobStatus::Pending);
    c.idle(1);
    assert_eq!(job(&c, &id).status, JobStatus::Pending);
    // ...but two blocks later, with randomness the submitting block's proposer could not know.
    c.idle(1);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Assigned, "{j:#?}");
    assert_eq!(j.attempts[0].assigned_at.0, submitted + 2);
    // The whole lifecycle still completes, within the bound that accounts for the delay.
    let blocks = c.run_agent(Behaviour::HONEST, 200);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    let bound = c.state.params().job_lifetime_bound(provernet_types::Seconds(60), 1).0;
    assert!(blocks + 3 <= bound, "{blocks} blocks against a bound of {bound}");
    conserved(&c);
}

#[test]
fn reactions_that_draw_nothing_do_not_wait_for_a_later_seed() {
    use provernet_types::{AttemptOutcome, TxBody};
    let mut c = TestChain::new(3, |p| p.draw_delay = provernet_types::Blocks(2));
    let (id, tx) = c.submit("alice", c.spec(builtin_program().id(), 60));
    c.block(vec![tx]);
    c.idle(2);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Assigned, "{j:#?}");
    let prover = c.name_of(&j.attempts[0].prover.into()).expect("a test prover");
    let accept = c.tx(&prover, TxBody::AcceptJob { job: id, attempt: 0 });
    c.block(vec![accept]);
    // A proof of a built-in program: its committee, every validator, is seated in the result's
    // own block (no randomness is involved).
    let files = crate::testkit::proof_files(true);
    let result = c.tx(
        &prover,
        TxBody::PostResult {
            job: id,
            attempt: 0,
            outcome: AttemptOutcome::Proof(files),
            usage: crate::testkit::usage(),
        },
    );
    c.block(vec![result]);
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].committee.as_slice(), &[c.account("v0")], "{j:#?}");
    // The vote that completes the quorum for the proof settles the job in its own block.
    let vote = c.tx("v0", TxBody::Vote { job: id, attempt: 0, valid: true });
    c.block(vec![vote]);
    assert_eq!(job(&c, &id).status, JobStatus::Verified);
    conserved(&c);
}

#[test]
fn stake_weighted_jobs_go_mostly_to_the_heavy_prover() {
    // p0 stakes 10 credits, p1 990: a linear lottery gives p1 99% of first attempts, the
    // square-root lottery about 91%, the uniform default 50%.
    let g = test_genesis(2, |_| {});
    let mut c = TestChain::from_state(crate::genesis(&g).unwrap(), 2);
    let regs: Vec<_> = [("p0", 10u64), ("p1", 990)]
        .into_iter()
        .map(|(who, credits)| {
            let stake = MicroCredits(credits * MicroCredits::PER_CREDIT);
            c.tx(
                who,
                TxBody::RegisterProver { capacity: machine(), labels: BoundedVec::new(), stake },
            )
        })
        .collect();
    let out = c.block(regs);
    assert!(out.receipts.iter().all(|r| r.result.is_ok()), "{:?}", out.receipts);
    let heavy = c.prover_id("p1");
    let mut won = std::collections::BTreeMap::new();
    for kind in
        [MechanismKind::StakeLinear, MechanismKind::StakeSqrt, MechanismKind::RandomWithFallback]
    {
        let mut heavy_wins = 0;
        for _ in 0..40 {
            let mut spec = c.spec(committee(), 60);
            spec.mechanism = kind;
            let (id, tx) = c.submit("alice", spec);
            c.block(vec![tx]);
            let j = job(&c, &id);
            assert_eq!(j.mechanism, kind);
            if j.attempts[0].prover == heavy {
                heavy_wins += 1;
            }
            // Free the prover for the next draw.
            let cancel = c.tx("alice", TxBody::CancelJob { job: id });
            assert!(c.block(vec![cancel]).receipts[0].result.is_ok());
        }
        won.insert(kind, heavy_wins);
    }
    // Binomial tails: P(linear ≤ 35 | 0.99) < 1e-4, P(random ≥ 33 | 0.5) < 1e-4.
    assert!(won[&MechanismKind::StakeLinear] >= 36, "{won:?}");
    assert!(won[&MechanismKind::StakeSqrt] >= 30, "{won:?}");
    assert!(won[&MechanismKind::RandomWithFallback] <= 32, "{won:?}");
    conserved(&c);
}

#[test]
fn open_race_jobs_are_won_by_the_first_valid_proof() {
    let mut c = TestChain::new(3, |_| {});
    let before = balance(&c, "alice");
    let mut spec = c.spec(committee(), 30);
    spec.mechanism = MechanismKind::OpenRace;
    let (id, tx) = c.submit("alice", spec.clone());
    c.block(vec![tx]);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Race, "{j:#?}");
    assert!(j.attempts.is_empty(), "nobody is assigned in an open race");
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert!(j.attempts[usize::from(j.winner.unwrap())].race);
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0, "charged the quote, no refund");
    // A race has one winner: redundancy is refused.
    spec.redundancy = 2;
    let (_, tx) = c.submit("alice", spec);
    let out = c.block(vec![tx]);
    assert_eq!(out.receipts[0].result.as_ref().unwrap_err().code(), "race_redundancy");
    conserved(&c);
}

#[test]
fn mechanisms_a_chain_does_not_enable_are_refused() {
    let mut c = TestChain::new(2, |p| {
        p.mechanisms = BoundedVec::try_from_vec(vec![MechanismKind::RandomWithFallback]).unwrap();
    });
    let mut spec = c.spec(committee(), 30);
    spec.mechanism = MechanismKind::StakeSqrt;
    let (_, tx) = c.submit("alice", spec);
    let out = c.block(vec![tx]);
    let err = out.receipts[0].result.as_ref().unwrap_err();
    assert_eq!(err.code(), "mechanism_not_enabled");
    assert!(err.to_string().contains("stake-sqrt"), "{err}");
    // Genesis refuses auctions whose transactions this ledger does not have yet.
    let mut g = test_genesis(0, |p| {
        p.mechanisms = BoundedVec::try_from_vec(vec![
            MechanismKind::RandomWithFallback,
            MechanismKind::ReverseDutch,
        ])
        .unwrap();
    });
    assert!(crate::genesis(&g).unwrap_err().to_string().contains("reverse-dutch"));
    g.params.mechanisms = BoundedVec::try_from_vec(vec![MechanismKind::StakeLinear]).unwrap();
    assert!(crate::genesis(&g).unwrap_err().to_string().contains("random"));
}
