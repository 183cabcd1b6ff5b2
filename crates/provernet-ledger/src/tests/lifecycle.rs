//! One test per lifecycle path of BRIEF §4.

use crate::entities::{AttemptState, FailReason, JobStatus, ProverStatus};
use crate::events::{Event, Fault, PaymentKind};
use crate::testkit::*;
use crate::ProbeSpec;
use provernet_types::{
    AccountId, BoundedVec, JobId, MechanismKind, MicroCredits, ProgramId, ProverId, TxBody, Verdict,
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
    c.job(id).expect("job exists").clone()
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
    c.prove(&name, id, 0, &proof_files(false));
    c.block(vec![]); // committee drawn
    let a = job(&c, &id).attempts[0].clone();
    assert_eq!(a.state, AttemptState::Proven);
    let votes: Vec<_> = a
        .committee
        .iter()
        .map(|m| {
            let n = c.name_of(m).unwrap();
            c.tx(&n, TxBody::Vote { job: id, attempt: 0, verdict: Verdict::Invalid })
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
    use provernet_types::TxBody;
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
    c.prove(&prover, id, 0, &files);
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].committee.as_slice(), &[c.account("v0")], "{j:#?}");
    // The vote that completes the quorum for the proof settles the job in its own block.
    let vote = c.tx("v0", TxBody::Vote { job: id, attempt: 0, verdict: Verdict::Valid });
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
    assert_eq!(out.receipts[0].result.as_ref().unwrap_err().code(), "single_prover_mechanism");
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
    // Every chain must accept the default, and names each mechanism once.
    let mut g = test_genesis(0, |_| {});
    g.params.mechanisms = BoundedVec::try_from_vec(vec![
        MechanismKind::RandomWithFallback,
        MechanismKind::ReverseDutch,
        MechanismKind::ReverseDutch,
    ])
    .unwrap();
    assert!(crate::genesis(&g).unwrap_err().to_string().contains("twice"));
    g.params.mechanisms = BoundedVec::try_from_vec(vec![MechanismKind::StakeLinear]).unwrap();
    assert!(crate::genesis(&g).unwrap_err().to_string().contains("random"));
}

/// Submits an auctioned job with `max_fee` and returns its id and the quote.
fn auction_job(c: &mut TestChain, kind: MechanismKind, max_fee: u64) -> (JobId, MicroCredits) {
    let mut spec = c.spec(committee(), 30);
    spec.mechanism = kind;
    spec.max_fee = MicroCredits(max_fee);
    let (id, tx) = c.submit("alice", spec);
    let out = c.block(vec![tx]);
    assert!(out.receipts[0].result.is_ok(), "{:?}", out.receipts);
    (id, job(c, &id).fee_per_prover)
}

fn code(out: &crate::BlockOutput, i: usize) -> &'static str {
    out.receipts[i].result.as_ref().map_or_else(|e| e.code(), |()| "ok")
}

fn paid(out: &crate::BlockOutput, kind: PaymentKind) -> Vec<(AccountId, u64)> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, kind: k, amount, .. } if *k == kind => Some((*to, amount.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn reverse_dutch_jobs_go_to_the_first_lock_at_the_ramp_price() {
    let mut c = TestChain::new(3, |_| {});
    let before = balance(&c, "alice");
    let max_fee = 5 * MicroCredits::PER_CREDIT;
    let (id, quote) = auction_job(&mut c, MechanismKind::ReverseDutch, max_fee);
    assert_eq!(balance(&c, "alice"), before - max_fee, "an auction escrows the max fee");
    assert_eq!(job(&c, &id).status, JobStatus::Pending, "nobody is assigned before a lock");
    c.idle(3);
    // The lock lands 4 blocks into a 10-block ramp.
    let lock =
        c.tx("p1", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    let late =
        c.tx("p2", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    let out = c.block(vec![lock, late]);
    assert_eq!((code(&out, 0), code(&out, 1)), ("ok", "auction_closed"));
    let price = quote.0 + (max_fee - quote.0) * 4 / 10;
    let j = job(&c, &id);
    let a = &j.attempts[0];
    assert_eq!((a.prover, a.state, a.price.0), (c.prover_id("p1"), AttemptState::Running, price));
    assert_eq!(a.collateral.0, price, "collateral_bps 10000 in tests: collateral = price");
    let p1 = c.state.prover(&c.prover_id("p1")).unwrap();
    assert_eq!(p1.bonded.0, quote.0 + price, "bond and collateral are held");
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert!(j.settled);
    assert_eq!(balance(&c, "alice"), before - price, "charged the lock price, the rest refunded");
    let p1 = c.state.prover(&c.prover_id("p1")).unwrap();
    assert_eq!((p1.bonded.0, p1.stake), (0, PROVER_STAKE), "collateral released in full");
    conserved(&c);
}

#[test]
fn a_dutch_winner_that_misses_forfeits_its_collateral_to_burn_and_bounty() {
    let mut c = TestChain::new(3, |_| {});
    let before = balance(&c, "alice");
    let max_fee = 4 * MicroCredits::PER_CREDIT;
    let (id, quote) = auction_job(&mut c, MechanismKind::ReverseDutch, max_fee);
    let lock =
        c.tx("p0", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    assert_eq!(code(&c.block(vec![lock]), 0), "ok");
    let collateral = job(&c, &id).attempts[0].collateral;
    // p0 never delivers; its deadline passes.
    let mut forfeited = None;
    for _ in 0..200 {
        let out = c.block(vec![]);
        forfeited = out.events.iter().find_map(|e| match e {
            Event::CollateralForfeited { prover, burned, bounty, .. } => {
                Some((*prover, *burned, *bounty))
            }
            _ => None,
        });
        if forfeited.is_some() {
            break;
        }
    }
    let (prover, burned, bounty) = forfeited.expect("the missed deadline forfeits collateral");
    assert_eq!(prover, c.prover_id("p0"));
    assert_eq!((burned.0 + bounty.0, burned.0), (collateral.0, collateral.0 / 2), "half burned");
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::MissedDeadline);
    assert_eq!(j.bounty, bounty, "the rest waits for whoever proves the job");
    assert!(j.round.is_some(), "a fresh Dutch round opens for the fallback");
    let p0 = c.state.prover(&c.prover_id("p0")).unwrap();
    assert!(p0.stake.0 <= PROVER_STAKE.0 - collateral.0, "collateral left the stake");
    assert_eq!(p0.bonded.0, 0);
    // p1 locks the fallback round and proves: it is paid its price and the bounty.
    let again =
        c.tx("p0", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    let lock =
        c.tx("p1", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    let out = c.block(vec![again, lock]);
    assert_eq!((code(&out, 0), code(&out, 1)), ("not_eligible", "ok"), "the failed prover is out");
    let price = job(&c, &id).attempts[1].price;
    let mut bounties = Vec::new();
    for _ in 0..100 {
        let txs = c.agent_txs(Behaviour::HONEST);
        bounties.extend(paid(&c.block(txs), PaymentKind::Bounty));
        if job(&c, &id).settled {
            break;
        }
    }
    assert_eq!(bounties, vec![(c.account("p1"), bounty.0)]);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    let refund = j.fallback_refund.0;
    assert_eq!(balance(&c, "alice"), before - price.0 + refund, "charged the second lock only");
    assert!(price.0 >= quote.0);
    conserved(&c);
}

#[test]
fn dutch_jobs_nobody_locks_open_a_race_at_the_max_fee() {
    let mut c = TestChain::new(3, |_| {});
    let before = balance(&c, "alice");
    let max_fee = 3 * MicroCredits::PER_CREDIT;
    let (id, _) = auction_job(&mut c, MechanismKind::ReverseDutch, max_fee);
    let ramp = c.state.params().mechanism_params.dutch_ramp_blocks;
    c.idle(ramp);
    let j = job(&c, &id);
    assert_eq!((j.status, j.race_price.0), (JobStatus::Race, max_fee), "{j:#?}");
    let lock =
        c.tx("p0", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() });
    assert_eq!(code(&c.block(vec![lock]), 0), "wrong_job_state", "no locks once the race is on");
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    assert!(j.attempts[usize::from(j.winner.unwrap())].race);
    assert_eq!(balance(&c, "alice"), before - max_fee, "the race pays the max fee");
    conserved(&c);
}

#[test]
fn lowest_bid_jobs_go_to_the_lowest_revealed_sealed_bid() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let max_fee = 5 * MicroCredits::PER_CREDIT;
    let (id, quote) = auction_job(&mut c, MechanismKind::LowestBid, max_fee);
    let window = c.state.params().mechanism_params.bid_window_blocks;
    let deposit = max_fee; // collateral_bps 10000: the deposit is the collateral at the max fee
    let price = |extra: u64| MicroCredits(quote.0 + extra);
    let salt = |name: &str| [name.as_bytes()[1]; 32];
    let commit = |c: &TestChain, name: &str, p: MicroCredits| {
        provernet_types::bid_commitment(&id, &c.account(name), p, &salt(name))
    };
    let bids = vec![
        c.tx("p0", TxBody::BidJob { job: id, commitment: commit(&c, "p0", price(3_000)) }),
        c.tx("p1", TxBody::BidJob { job: id, commitment: commit(&c, "p1", price(1_000)) }),
        c.tx("p2", TxBody::BidJob { job: id, commitment: commit(&c, "p2", price(0)) }),
        c.tx("p1", TxBody::BidJob { job: id, commitment: [0; 32] }),
        c.tx("p3", TxBody::LockJob { job: id, round: job(&c, &id).round.unwrap_or_default() }),
        c.tx("p0", TxBody::RevealBid { job: id, price: price(3_000), salt: salt("p0") }),
    ];
    let out = c.block(bids);
    let codes: Vec<&str> = (0..6).map(|i| code(&out, i)).collect();
    assert_eq!(codes, ["ok", "ok", "ok", "already_bid", "wrong_mechanism", "auction_closed"]);
    assert_eq!(c.state.prover(&c.prover_id("p2")).unwrap().bonded.0, deposit);
    c.idle(window - 1);
    let late = c.tx("p3", TxBody::BidJob { job: id, commitment: [0; 32] });
    let reveals = vec![
        late,
        c.tx("p0", TxBody::RevealBid { job: id, price: price(3_000), salt: salt("p0") }),
        c.tx("p1", TxBody::RevealBid { job: id, price: price(999), salt: salt("p1") }),
    ];
    // p2 (the lowest sealed bid) never reveals.
    let out = c.block(reveals);
    let codes: Vec<&str> = (0..3).map(|i| code(&out, i)).collect();
    assert_eq!(codes, ["auction_closed", "ok", "bid_mismatch"]);
    let good = c.tx("p1", TxBody::RevealBid { job: id, price: price(1_000), salt: salt("p1") });
    assert_eq!(code(&c.block(vec![good]), 0), "ok");
    assert_eq!(job(&c, &id).status, JobStatus::Pending, "decided after the reveal window");
    let mut out = c.block(vec![]);
    for _ in 0..window {
        if !job(&c, &id).attempts.is_empty() {
            break;
        }
        out = c.block(vec![]);
    }
    let j = job(&c, &id);
    let a = &j.attempts[0];
    assert_eq!(
        (a.prover, a.price, a.state),
        (c.prover_id("p1"), price(1_000), AttemptState::Running)
    );
    assert!(j.bids.is_empty(), "the round is closed");
    let forfeits: Vec<ProverId> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CollateralForfeited { prover, .. } => Some(*prover),
            _ => None,
        })
        .collect();
    assert_eq!(forfeits, vec![c.prover_id("p2")], "an unrevealed bid forfeits its deposit");
    let p2 = c.state.prover(&c.prover_id("p2")).unwrap();
    assert_eq!((p2.bonded.0, p2.stake.0), (0, PROVER_STAKE.0 - deposit));
    assert_eq!(c.state.prover(&c.prover_id("p0")).unwrap().bonded.0, 0, "losers are released");
    let bounty = job(&c, &id).bounty;
    assert_eq!(bounty.0, deposit / 2, "half of p2's deposit is held as a bounty");
    let p1_before = balance(&c, "p1");
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    // The requester pays the winning bid; the winner also collects p2's forfeit.
    assert_eq!(balance(&c, "alice"), before - price(1_000).0);
    let share = price(1_000).mul_bps(c.state.params().verifier_reward_bps);
    assert_eq!(balance(&c, "p1") - p1_before, price(1_000).0 - share.0 + bounty.0);
    conserved(&c);
}

#[test]
fn auctions_take_one_prover() {
    let mut c = TestChain::new(3, |_| {});
    for kind in [MechanismKind::ReverseDutch, MechanismKind::LowestBid] {
        let mut spec = c.spec(committee(), 30);
        spec.mechanism = kind;
        spec.redundancy = 2;
        let (_, tx) = c.submit("alice", spec);
        let out = c.block(vec![tx]);
        assert_eq!(code(&out, 0), "single_prover_mechanism");
    }
}

#[test]
fn the_test_agent_wins_auctions_by_lock_and_bid_not_by_race() {
    // The property tests rely on the agent taking part in auctions; check that it does.
    let mut c = TestChain::new(4, |_| {});
    let (mut ids, mut txs) = (Vec::new(), Vec::new());
    for kind in [MechanismKind::ReverseDutch, MechanismKind::LowestBid] {
        for _ in 0..2 {
            let mut spec = c.spec(committee(), 30);
            spec.mechanism = kind;
            spec.max_fee = MicroCredits(2 * MicroCredits::PER_CREDIT);
            let (id, tx) = c.submit("alice", spec);
            ids.push(id);
            txs.push(tx);
        }
    }
    assert!(c.block(txs).receipts.iter().all(|r| r.result.is_ok()));
    c.run_agent(Behaviour::HONEST, 200);
    for id in ids {
        let j = job(&c, &id);
        assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
        assert!(!j.attempts[usize::from(j.winner.unwrap())].race, "{j:#?}");
    }
    conserved(&c);
}

#[test]
fn market_openings_follow_races_and_auction_phases() {
    use crate::Opening;
    let mut c = TestChain::new(3, |_| {});
    let open = |c: &TestChain, id: &JobId, who: &str| {
        crate::opening(&c.state, &job(c, id), &c.prover_id(who))
    };
    // Reverse Dutch: everyone may lock at the price the next block will have, until one does.
    let (dutch, quote) = auction_job(&mut c, MechanismKind::ReverseDutch, 2_000_000);
    let step = (2_000_000 - quote.0) / 10;
    let round = job(&c, &dutch).round.unwrap();
    let want = Opening::Lock { price: MicroCredits(quote.0 + step), round };
    assert_eq!(open(&c, &dutch, "p0"), Some(want));
    let lock = c
        .tx("p0", TxBody::LockJob { job: dutch, round: job(&c, &dutch).round.unwrap_or_default() });
    assert_eq!(code(&c.block(vec![lock]), 0), "ok");
    assert_eq!((open(&c, &dutch, "p0"), open(&c, &dutch, "p1")), (None, None));
    // Lowest bid: bid while the window is open, reveal only one's own bid, in its window.
    let (bid, quote) = auction_job(&mut c, MechanismKind::LowestBid, 2_000_000);
    let round = job(&c, &bid).round.unwrap();
    let w = c.state.params().mechanism_params.bid_window_blocks;
    assert!(
        matches!(open(&c, &bid, "p1"), Some(Opening::Bid { until, .. }) if until.0 == round.0 + w - 1)
    );
    let commitment = provernet_types::bid_commitment(&bid, &c.account("p1"), quote, &[7; 32]);
    let tx = c.tx("p1", TxBody::BidJob { job: bid, commitment });
    assert_eq!(code(&c.block(vec![tx]), 0), "ok");
    assert_eq!(open(&c, &bid, "p1"), None, "one bid per round");
    while c.state.height().0 + 1 < round.0 + w {
        c.idle(1);
    }
    assert!(matches!(open(&c, &bid, "p1"), Some(Opening::Reveal { .. })));
    assert_eq!(open(&c, &bid, "p2"), None, "nothing to reveal without a bid");
    // Open race: every eligible prover may race until it has a live race proof.
    let mut spec = c.spec(committee(), 30);
    spec.mechanism = MechanismKind::OpenRace;
    let (race, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    let fee = job(&c, &race).fee_per_prover;
    assert!(matches!(open(&c, &race, "p2"), Some(Opening::Race { price, .. }) if price == fee));
    let commitment =
        provernet_types::result_commitment(&c.account("p2"), &race, &proof_files(true));
    let tx = c.tx("p2", TxBody::PostRaceProof { job: race, commitment });
    assert_eq!(code(&c.block(vec![tx]), 0), "ok");
    assert_eq!(open(&c, &race, "p2"), None);
    assert!(open(&c, &race, "p1").is_some());
}

#[test]
fn a_race_pays_one_winner_even_when_several_proofs_verify_together() {
    let mut c = TestChain::new(4, |_| {});
    let before = balance(&c, "alice");
    let mut spec = c.spec(committee(), 30);
    spec.mechanism = MechanismKind::OpenRace;
    let (id, tx) = c.submit("alice", spec);
    c.block(vec![tx]);
    let proofs: Vec<_> = ["p0", "p1", "p2"]
        .iter()
        .map(|p| {
            let commitment =
                provernet_types::result_commitment(&c.account(p), &id, &proof_files(true));
            c.tx(p, TxBody::PostRaceProof { job: id, commitment })
        })
        .collect();
    let out = c.block(proofs);
    assert!(out.receipts.iter().all(|r| r.result.is_ok()), "{:?}", out.receipts);
    // The entries were made by hand, so the agent's nodes hold no files to reveal: the test does.
    let reveals: Vec<_> = ["p0", "p1", "p2"]
        .iter()
        .zip(0u8..)
        .map(|(p, attempt)| c.reveal(p, id, attempt, &proof_files(true)))
        .collect();
    let out = c.block(reveals);
    assert!(out.receipts.iter().all(|r| r.result.is_ok()), "{:?}", out.receipts);
    let mut rewards = Vec::new();
    for _ in 0..50 {
        let txs = c.agent_txs(Behaviour::HONEST);
        rewards.extend(paid(&c.block(txs), PaymentKind::ProverReward));
        if job(&c, &id).settled {
            break;
        }
    }
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified, "{j:#?}");
    let states: Vec<AttemptState> = j.attempts.iter().map(|a| a.state).collect();
    assert_eq!(states.iter().filter(|s| **s == AttemptState::Verified).count(), 1, "{states:?}");
    let superseded = states.iter().filter(|s| **s == AttemptState::Superseded).count();
    assert_eq!(superseded, states.len() - 1, "the others came second: {states:?}");
    assert_eq!(rewards.len(), 1, "one prover paid: {rewards:?}");
    assert_eq!(balance(&c, "alice"), before - j.fee_per_prover.0);
    for p in ["p0", "p1", "p2", "p3"] {
        assert_eq!(c.state.prover(&c.prover_id(p)).unwrap().bonded.0, 0);
    }
    conserved(&c);
}
