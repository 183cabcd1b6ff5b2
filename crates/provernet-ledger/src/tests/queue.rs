//! Jobs waiting for a prover are served first come, first served, and the queue pass looks at a
//! bounded number of them per block however long the queue grows.

use crate::entities::JobStatus;
use crate::events::Event;
use crate::testkit::*;
use crate::QUEUE_SCAN_MAX;
use provernet_types::{JobId, TxBody};

fn assigned_in(out: &crate::BlockOutput) -> Vec<JobId> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::AttemptAssigned { job, .. } => Some(*job),
            _ => None,
        })
        .collect()
}

#[test]
fn jobs_wait_for_a_prover_first_come_first_served() {
    // One prover whose machine fits one job at a time.
    let mut c = TestChain::new(1, |_| {});
    let mut spec = c.spec(committee_program().id(), 60);
    spec.resources = Some(machine());
    let mut order = Vec::new();
    let mut txs = Vec::new();
    for who in ["alice", "bob", "alice", "bob", "alice", "bob"] {
        let (id, tx) = c.submit(who, spec.clone());
        order.push(id);
        txs.push(tx);
    }
    // Job ids are hashes: submission order is not id order.
    let mut sorted = order.clone();
    sorted.sort();
    assert_ne!(sorted, order, "pick other names if the ids happen to be sorted");
    let mut served = assigned_in(&c.block(txs));
    // The only prover proves each job in turn (its committee is the validator).
    for _ in 0..200 {
        if served.len() == order.len() {
            break;
        }
        let txs = c.agent_txs(Behaviour::HONEST);
        served.extend(assigned_in(&c.block(txs)));
    }
    assert_eq!(served, order, "served in submission order");
}

#[test]
fn the_queue_pass_looks_at_a_bounded_number_of_jobs_per_block() {
    // Room for every job at once: 64 provers fit four small jobs each.
    let mut c = TestChain::new(64, |_| {});
    let n = QUEUE_SCAN_MAX + 40;
    let txs: Vec<_> = (0..n)
        .map(|i| {
            c.submit(if i % 2 == 0 { "alice" } else { "bob" }, c.spec(committee_program().id(), 60))
                .1
        })
        .collect();
    let first = assigned_in(&c.block(txs));
    assert_eq!(first.len(), QUEUE_SCAN_MAX, "the first block serves the queue's head only");
    let second = assigned_in(&c.block(vec![]));
    assert_eq!(second.len(), n - QUEUE_SCAN_MAX, "the rest follow in the next block");
    assert_eq!(c.state.queued_jobs().count(), 0);
}

/// Accepts attempt 0 of `id` as its prover.
fn accept(c: &mut TestChain, id: JobId) -> provernet_types::VerifiedTx {
    let p = c.job(&id).unwrap().attempts[0].prover;
    let name = c.name_of(&p.into()).unwrap();
    c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 })
}

#[test]
fn a_job_that_fits_no_free_prover_does_not_block_the_ones_behind_it() {
    let mut c = TestChain::new(2, |_| {});
    // One prover runs a job that fills its machine, the other one of six cores of eight and
    // half its memory.
    let mut whole = c.spec(committee_program().id(), 60);
    whole.resources = Some(machine());
    let mut most = whole.clone();
    most.resources = Some(provernet_types::Resources {
        cores: provernet_types::MilliCores(6000),
        memory: provernet_types::Bytes::gib(16),
        ..machine()
    });
    let (a, ta) = c.submit("alice", whole.clone());
    let (b, tb) = c.submit("alice", most);
    c.block(vec![ta, tb]);
    let (xa, xb) = (accept(&mut c, a), accept(&mut c, b));
    c.block(vec![xa, xb]);
    // A job needing a whole machine waits; a small one behind it is served at once.
    let (waits, tw) = c.submit("bob", whole);
    let (small, ts) = c.submit("bob", c.spec(committee_program().id(), 60));
    let served = assigned_in(&c.block(vec![tw, ts]));
    assert_eq!(served, vec![small], "the small job does not wait behind the big one");
    assert_eq!(c.job(&waits).unwrap().status, JobStatus::Pending);
    // The first machine is freed: it goes to the waiting job.
    let p0 = c.job(&a).unwrap().attempts[0].prover;
    let name = c.name_of(&p0.into()).unwrap();
    // Its commitment frees the machine: the proving is done.
    let commit = c.commit(&name, a, 0, &proof_files(true));
    let served = assigned_in(&c.block(vec![commit]));
    assert_eq!(served, vec![waits]);
}

/// Regression: a result posted while the job's wake-up from its accept was still pending woke
/// the job before its fallback could be drawn, and the job opened its race after one attempt
/// instead of drawing another prover (seen as `Failed(no proof)` for a program that failed
/// once, on a live chain with a draw delay of two blocks).
#[test]
fn a_wake_up_before_the_draw_delay_does_not_open_the_race_early() {
    let mut c = TestChain::new(4, |p| p.draw_delay = provernet_types::Blocks(2));
    let (id, tx) = c.submit("alice", c.spec(committee_program().id(), 60));
    c.block(vec![tx]);
    let failing = Behaviour { program_error_pct: 100, race_pct: 0, ..Behaviour::HONEST };
    c.run_agent(failing, 100);
    let j = c.job(&id).unwrap();
    assert_eq!(j.status, JobStatus::Failed(crate::FailReason::Program), "{j:#?}");
    assert_eq!(j.attempts.len(), 2);
}
