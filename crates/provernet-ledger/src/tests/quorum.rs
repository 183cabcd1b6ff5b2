//! Verdicts need a real quorum: at least two thirds of the voters (every validator for a built-in
//! verifier, the drawn committee otherwise) must agree to accept or to reject a proof. A round
//! that ends without a quorum penalises the committee members who did not vote and draws a new
//! committee; after the last round the proof is unverifiable, and nobody is paid for it or
//! punished for it.

use crate::entities::{AttemptState, JobStatus};
use crate::events::{Event, Fault, PaymentKind};
use crate::testkit::*;
use crate::{BlockOutput, Tally};
use provernet_types::{JobId, ProgramId, ProverId, TxBody, Verdict, VerifiedTx};

fn job(c: &TestChain, id: &JobId) -> crate::Job {
    c.job(id).expect("job exists").clone()
}

fn conserved(c: &TestChain) {
    assert_eq!(c.state.total_credits(), u128::from(c.state.meta().supply.0));
}

/// Submits a job of `program` and has its first prover accept it and post a proof (`valid` or a
/// forged one); returns the job and that prover once the proof's voters are seated.
fn proven(c: &mut TestChain, program: ProgramId, valid: bool) -> (JobId, ProverId) {
    let (id, tx) = c.submit("alice", c.spec(program, 60));
    c.block(vec![tx]);
    let prover = job(c, &id).attempts[0].prover;
    let name = c.name_of(&prover.into()).expect("a test prover");
    let accept = c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 });
    c.block(vec![accept]);
    c.prove(&name, id, 0, &proof_files(valid));
    assert_eq!(job(c, &id).attempts[0].state, AttemptState::Proven);
    assert!(!job(c, &id).attempts[0].committee.is_empty(), "voters are seated");
    (id, prover)
}

fn vote(c: &mut TestChain, who: &str, id: JobId, valid: bool) -> VerifiedTx {
    let verdict = if valid { Verdict::Valid } else { Verdict::Invalid };
    c.tx(who, TxBody::Vote { job: id, attempt: 0, verdict })
}

/// Runs empty blocks until attempt 0 of `id` leaves `round` (a new round drawn, or a verdict),
/// returning every block's output.
fn until_round_ends(c: &mut TestChain, id: JobId, round: u8) -> Vec<BlockOutput> {
    let mut outs = Vec::new();
    for _ in 0..100 {
        let a = &job(c, &id).attempts[0];
        if a.state != AttemptState::Proven || a.verify_round != round {
            return outs;
        }
        outs.push(c.block(vec![]));
    }
    panic!("round {round} of job {id} never ended");
}

fn missed_votes(outs: &[BlockOutput]) -> Vec<ProverId> {
    outs.iter()
        .flat_map(|o| o.events.iter())
        .filter_map(|e| match e {
            Event::Slashed { prover, fault: Fault::MissedVote, .. } => Some(*prover),
            _ => None,
        })
        .collect()
}

fn paid_to(outs: &[BlockOutput], who: ProverId) -> u64 {
    outs.iter()
        .flat_map(|o| o.events.iter())
        .filter_map(|e| match e {
            Event::Paid { to, amount, kind: PaymentKind::ProverReward, .. }
                if *to == who.into() =>
            {
                Some(amount.0)
            }
            _ => None,
        })
        .sum()
}

#[test]
fn the_quorum_is_two_thirds_of_the_seats() {
    let t = |seats, valid, invalid| Tally { seats, valid, invalid, cannot: 0 };
    assert_eq!([1, 2, 3, 4, 5, 6, 7].map(|n| t(n, 0, 0).quorum()), [1, 2, 2, 3, 4, 4, 5]);
    assert_eq!(t(4, 2, 0).verdict(), None, "two of four is not a quorum");
    assert_eq!(t(4, 3, 1).verdict(), Some(Verdict::Valid));
    assert_eq!(t(4, 1, 3).verdict(), Some(Verdict::Invalid));
    assert_eq!(t(3, 1, 0).verdict(), None, "a lone vote never decides for a committee");
    assert!(t(4, 2, 2).deadlocked() && !t(4, 2, 1).deadlocked());
    assert_eq!(t(0, 0, 0).verdict(), None);
    let cannot = Tally { seats: 4, valid: 1, invalid: 0, cannot: 3 };
    assert_eq!(cannot.verdict(), Some(Verdict::CannotVerify));
    let split = Tally { seats: 4, valid: 1, invalid: 1, cannot: 2 };
    assert!(split.deadlocked(), "no verdict can reach three of four");
}

#[test]
fn a_builtin_proof_is_decided_by_two_thirds_of_the_validators_never_by_one() {
    let mut c = TestChain::new(3, four_validators);
    let (id, prover) = proven(&mut c, builtin_program().id(), true);
    assert_eq!(job(&c, &id).attempts[0].committee.len(), 4, "every validator votes");
    let balance = c.state.account(&prover.into()).unwrap().balance;

    // Two valid votes of four are no quorum: at the deadline a new round starts.
    let votes = vec![vote(&mut c, "v0", id, true), vote(&mut c, "v1", id, true)];
    let mut outs = vec![c.block(votes)];
    outs.extend(until_round_ends(&mut c, id, 0));
    let a = &job(&c, &id).attempts[0];
    assert_eq!((a.state, a.verify_round), (AttemptState::Proven, 1));
    assert!(a.votes.iter().all(Option::is_none), "the new round starts without votes");
    assert!(missed_votes(&outs).is_empty(), "validators hold no stake to penalise");

    // In the last round one vote decides nothing either: the proof is unverifiable.
    let v = vote(&mut c, "v2", id, true);
    outs.push(c.block(vec![v]));
    outs.extend(until_round_ends(&mut c, id, 1));
    let j = job(&c, &id);
    assert_eq!(j.attempts[0].state, AttemptState::Unverifiable);
    // Nobody is paid for it or punished for it.
    let p = c.state.prover(&prover).unwrap();
    assert_eq!((p.faults, p.stake, p.bonded), (0, PROVER_STAKE, provernet_types::MicroCredits(0)));
    assert_eq!(c.state.account(&prover.into()).unwrap().balance, balance);
    assert_eq!(paid_to(&outs, prover), 0);

    // The job goes on with another prover; three validators' votes accept its proof.
    assert_eq!(j.attempts.len(), 2, "{j:#?}");
    assert_ne!(j.attempts[1].prover, prover);
    c.run_agent(Behaviour::HONEST, 100);
    let j = job(&c, &id);
    assert_eq!(j.status, JobStatus::Verified);
    let tally = Tally::of(&j.attempts[1].votes);
    assert!(tally.valid >= 3, "{tally:?}");
    conserved(&c);
}

#[test]
fn a_forged_builtin_proof_is_rejected_by_two_thirds_of_the_validators() {
    let mut c = TestChain::new(3, four_validators);
    let (id, prover) = proven(&mut c, builtin_program().id(), false);
    // One dissent and two rejections are no quorum yet...
    let votes = vec![
        vote(&mut c, "v0", id, false),
        vote(&mut c, "v1", id, true),
        vote(&mut c, "v2", id, false),
    ];
    c.block(votes);
    assert_eq!(job(&c, &id).attempts[0].state, AttemptState::Proven);
    // ...a third rejection is.
    let v = vote(&mut c, "v3", id, false);
    let out = c.block(vec![v]);
    assert_eq!(job(&c, &id).attempts[0].state, AttemptState::Rejected);
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::Slashed { prover: p, fault: Fault::InvalidProof, .. } if *p == prover
    )));
    conserved(&c);
}

#[test]
fn a_split_vote_starts_a_new_round_at_once() {
    let mut c = TestChain::new(3, four_validators);
    let (id, _) = proven(&mut c, builtin_program().id(), true);
    let deadline = job(&c, &id).attempts[0].deadline;
    let votes = vec![
        vote(&mut c, "v0", id, true),
        vote(&mut c, "v1", id, true),
        vote(&mut c, "v2", id, false),
        vote(&mut c, "v3", id, false),
    ];
    c.block(votes);
    // The vote is final at the end of the block's draw delay (none in these tests).
    c.block(vec![]);
    let a = &job(&c, &id).attempts[0];
    assert!(c.state.height() < deadline);
    assert_eq!((a.state, a.verify_round), (AttemptState::Proven, 1), "no quorum can form");
}

#[test]
fn committee_members_who_do_not_vote_are_penalised_and_a_lone_vote_decides_nothing() {
    let mut c = TestChain::new(4, |_| {});
    let (id, prover) = proven(&mut c, committee_program().id(), true);
    let fee = job(&c, &id).fee_per_prover;
    let members: Vec<ProverId> =
        job(&c, &id).attempts[0].committee.iter().map(|m| ProverId::from(*m)).collect();
    assert_eq!(members.len(), 3);
    assert!(!members.contains(&prover));
    let (voter, silent) = (members[0], &members[1..]);
    let name = c.name_of(&voter.into()).unwrap();

    // One member of three votes: no quorum; the two silent ones are slashed at the deadline.
    let v = vote(&mut c, &name, id, true);
    let mut outs = vec![c.block(vec![v])];
    outs.extend(until_round_ends(&mut c, id, 0));
    let mut slashed = missed_votes(&outs);
    slashed.sort();
    let mut want = silent.to_vec();
    want.sort();
    assert_eq!(slashed, want, "exactly the members who did not vote");
    for m in silent {
        let p = c.state.prover(m).unwrap();
        assert_eq!(p.faults, 1);
        assert_eq!(p.stake.0, PROVER_STAKE.0 - fee.mul_bps(1_000).0);
    }
    assert_eq!(c.state.prover(&voter).unwrap().faults, 0, "the voter is not punished");

    // The last round: again one vote, which decides nothing. The proof is unverifiable and
    // its prover keeps its stake.
    let a = job(&c, &id).attempts[0].clone();
    assert_eq!(a.verify_round, 1);
    let first = c.name_of(&a.committee[0]).unwrap();
    let v = vote(&mut c, &first, id, true);
    c.block(vec![v]);
    until_round_ends(&mut c, id, 1);
    assert_eq!(job(&c, &id).attempts[0].state, AttemptState::Unverifiable);
    let p = c.state.prover(&prover).unwrap();
    assert_eq!((p.faults, p.stake), (0, PROVER_STAKE));
    conserved(&c);
}
