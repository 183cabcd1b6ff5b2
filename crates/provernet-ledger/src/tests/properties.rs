//! Property tests over random workloads: random job and workflow submissions (valid and
//! invalid), random transactions from random parties, random prover behaviour and random block
//! randomness.

use crate::apply::apply_block;
use crate::entities::{JobStatus, NodeStatus};
use crate::state::State;
use crate::testkit::*;
use proptest::prelude::*;
use provernet_types::workflow::node_job_id;
use provernet_types::{
    AttemptOutcome, JobId, MechanismKind, MicroCredits, ProgramId, ProverId, Resources, Seconds,
    TxBody, Verdict, VerifiedTx, WorkflowId,
};

#[derive(Debug, Clone)]
enum Action {
    Submit {
        who: u8,
        builtin: bool,
        time: u16,
        redundancy: u8,
        underpay: bool,
        /// Index into the mechanisms (races and auctions only with redundancy 1 are valid).
        mechanism: u8,
    },
    Transfer {
        from: u8,
        to: u8,
        amount: u64,
    },
    Cancel {
        who: u8,
        job: u8,
    },
    /// A transaction from a random party about a random job: mostly invalid.
    Noise {
        who: u8,
        job: u8,
        kind: u8,
        attempt: u8,
    },
    Deregister {
        who: u8,
    },
    /// A workflow of `nodes` nodes wired by the bits of `edges` (node `i` reads node `j < i`
    /// when bit `8i + j` is set), programs and mechanisms by the bits of `mix`.
    Workflow {
        who: u8,
        nodes: u8,
        edges: u64,
        mix: u16,
        underpay: bool,
        bad_output: bool,
    },
    CancelWorkflow {
        who: u8,
        workflow: u8,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0u8..2, any::<bool>(), 5u16..120, 0u8..5, prop::bool::weighted(0.1), 0u8..6)
            .prop_map(|(who, builtin, time, redundancy, underpay, mechanism)| Action::Submit { who, builtin, time, redundancy, underpay, mechanism }),
        1 => (0u8..8, 0u8..8, 0u64..2_000_000_000_000).prop_map(|(from, to, amount)| Action::Transfer { from, to, amount }),
        1 => (0u8..2, any::<u8>()).prop_map(|(who, job)| Action::Cancel { who, job }),
        2 => (0u8..8, any::<u8>(), 0u8..9, 0u8..4).prop_map(|(who, job, kind, attempt)| Action::Noise { who, job, kind, attempt }),
        1 => (2u8..8).prop_map(|who| Action::Deregister { who }),
        2 => (0u8..2, 1u8..7, any::<u64>(), any::<u16>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(who, nodes, edges, mix, underpay, bad_output)| Action::Workflow { who, nodes, edges, mix, underpay, bad_output }),
        1 => (0u8..2, any::<u8>()).prop_map(|(who, workflow)| Action::CancelWorkflow { who, workflow }),
    ]
}

const NAMES: [&str; 8] = ["alice", "bob", "p0", "p1", "p2", "p3", "p4", "p5"];

/// What the actions created so far, for later actions to name.
#[derive(Default)]
struct Made {
    jobs: Vec<JobId>,
    workflows: Vec<WorkflowId>,
}

fn build(c: &mut TestChain, a: &Action, made: &mut Made) -> VerifiedTx {
    let jobs = &mut made.jobs;
    match a {
        Action::Submit { who, builtin, time, redundancy, underpay, mechanism } => {
            let program: ProgramId =
                if *builtin { builtin_program().id() } else { committee_program().id() };
            let mut spec = c.spec(program, u64::from(*time));
            spec.redundancy = *redundancy;
            spec.mechanism = MechanismKind::ALL[usize::from(*mechanism)];
            if *underpay {
                spec.max_fee = MicroCredits(1);
            }
            let (id, tx) = c.submit(NAMES[usize::from(*who)], spec);
            jobs.push(id);
            tx
        }
        Action::Transfer { from, to, amount } => {
            let to = c.account(NAMES[usize::from(*to)]);
            c.tx(NAMES[usize::from(*from)], TxBody::Transfer { to, amount: MicroCredits(*amount) })
        }
        Action::Cancel { who, job } => {
            let job = pick(jobs, *job);
            c.tx(NAMES[usize::from(*who)], TxBody::CancelJob { job })
        }
        Action::Noise { who, job, kind, attempt } => {
            let job = pick(jobs, *job);
            let body = match kind {
                0 => TxBody::AcceptJob { job, attempt: *attempt },
                1 => TxBody::DeclineJob { job, attempt: *attempt },
                2 => TxBody::PostResult {
                    job,
                    attempt: *attempt,
                    outcome: AttemptOutcome::Proof(proof_files(false)),
                    usage: usage(),
                },
                3 => TxBody::Vote { job, attempt: *attempt, verdict: Verdict::Invalid },
                4 => TxBody::LockJob { job, round: provernet_types::Height(u64::from(*attempt)) },
                5 => TxBody::BidJob { job, commitment: [*attempt; 32] },
                6 => TxBody::RevealBid { job, price: MicroCredits(1), salt: [*attempt; 32] },
                7 => TxBody::CommitResult { job, attempt: *attempt, commitment: [*attempt; 32] },
                _ => TxBody::PostRaceProof { job, commitment: [*attempt; 32] },
            };
            c.tx(NAMES[usize::from(*who)], body)
        }
        Action::Deregister { who } => c.tx(NAMES[usize::from(*who)], TxBody::DeregisterProver),
        Action::Workflow { who, nodes, edges, mix, underpay, bad_output } => {
            let names: Vec<String> = (0..*nodes).map(|i| format!("n{i}")).collect();
            let mut spec_nodes = Vec::new();
            for i in 0..usize::from(*nodes) {
                let from: Vec<&str> = (0..i)
                    .filter(|j| edges >> ((8 * i + j) % 64) & 1 == 1)
                    .map(|j| names[j].as_str())
                    .collect();
                let builtin = mix >> i & 1 == 1;
                let program = if builtin { builtin_program() } else { committee_program() };
                let mut node = workflow_node(&names[i], program.id(), 20, &from);
                node.job.mechanism =
                    MechanismKind::ALL[usize::from(mix >> (8 + i % 4) & 1) * (i % 6)];
                spec_nodes.push(node);
            }
            if *bad_output {
                if let Some(w) =
                    spec_nodes.iter_mut().find_map(|n| n.wires.as_mut_slice().first_mut())
                {
                    w.output = "trace".parse().expect("valid");
                }
            }
            let mut spec = workflow_spec(spec_nodes);
            if *underpay {
                spec.max_fee = MicroCredits(1);
            }
            let (id, tx) = c.submit_workflow(NAMES[usize::from(*who)], spec);
            jobs.extend(names.iter().map(|n| node_job_id(&id, &n.parse().expect("valid"))));
            made.workflows.push(id);
            tx
        }
        Action::CancelWorkflow { who, workflow } => {
            let workflow = match made.workflows.len() {
                0 => WorkflowId([*workflow; 32]),
                n => made.workflows[usize::from(*workflow) % n],
            };
            c.tx(NAMES[usize::from(*who)], TxBody::CancelWorkflow { workflow })
        }
    }
}

/// Every workflow agrees with its nodes' jobs: its escrow is what its waiting nodes hold, a
/// node is a job exactly when it left `Waiting` for `Job` or `Done` (and then the job points
/// back at it and, when done, ended as recorded), a waiting node still has a source not
/// Verified, and a workflow is finished exactly when every node is final.
fn check_workflows(state: &State) {
    for (id, w) in state.workflows() {
        let held: u64 = w.nodes.iter().map(|n| n.escrow.0).sum();
        assert_eq!(w.escrow.0, held, "workflow {id}'s escrow");
        for (i, (node, n)) in w.spec.nodes.iter().zip(w.nodes.iter()).enumerate() {
            let job = state.job(&node_job_id(id, &node.name));
            match n.status {
                NodeStatus::Waiting => {
                    assert!(job.is_none());
                    assert!(!w.cancelled, "a cancelled workflow has no waiting node");
                    let verified =
                        |p: &usize| w.nodes[*p].status == NodeStatus::Done(JobStatus::Verified);
                    assert!(!w.spec.parents(i).iter().all(verified), "node {i} should run");
                }
                NodeStatus::Skipped { .. } => {
                    assert!(job.is_none());
                    assert_eq!(n.escrow.0, 0);
                }
                NodeStatus::Job | NodeStatus::Done(_) => {
                    let job = job.expect("a node that started is a job");
                    assert_eq!(n.escrow.0, 0);
                    assert_eq!(
                        job.workflow.map(|r| (r.workflow, usize::from(r.node))),
                        Some((*id, i))
                    );
                    match n.status {
                        NodeStatus::Done(s) => assert_eq!(job.status, s),
                        _ => assert!(!job.status.is_final()),
                    }
                }
            }
        }
        assert_eq!(w.is_finished(), w.nodes.iter().all(|n| n.status.is_final()), "workflow {id}");
    }
}

fn pick(jobs: &[JobId], i: u8) -> JobId {
    if jobs.is_empty() {
        JobId([i; 32])
    } else {
        jobs[usize::from(i) % jobs.len()]
    }
}

/// Applies `txs` to a copy of the state keeping only those that succeeded: the result must be
/// identical, so failed transactions changed nothing.
fn check_failed_txs_changed_nothing(
    before: &State,
    c: &TestChain,
    txs: &[VerifiedTx],
    out: &crate::BlockOutput,
) {
    let kept: Vec<VerifiedTx> = txs
        .iter()
        .zip(out.receipts.iter())
        .filter(|(_, r)| r.result.is_ok())
        .map(|(t, _)| t.clone())
        .collect();
    let mut replay = before.clone();
    let ctx = crate::BlockContext { height: c.state.height(), ..c.next_context() };
    let ctx = crate::BlockContext { randomness: derive_randomness(c, ctx.height), ..ctx };
    let again = apply_block(&mut replay, &ctx, &kept).unwrap();
    assert_eq!(again.root, out.root, "failed transactions changed the state");
}

/// The state's indexes agree with a full scan, and every account's work listing read
/// through them is the one a scan of every live job gives: each prover, each validator, each
/// requester and an id nobody holds.
fn check_indexes(c: &TestChain) {
    c.state.check_indexes().unwrap();
    let mut who: Vec<provernet_types::AccountId> =
        c.state.provers().map(|(id, _)| provernet_types::AccountId::from(*id)).collect();
    who.extend(c.state.params().validators.iter().copied());
    who.extend(NAMES.iter().map(|n| c.account(n)));
    who.push(provernet_types::AccountId([0xab; 32]));
    for me in &who {
        let indexed = crate::contract::work(&c.state, me);
        let scanned = crate::contract::work_by_scan(&c.state, me);
        assert_eq!(indexed, scanned, "work of {me} differs from a scan");
    }
}

/// Each prover's bonded stake and used capacity are exactly what the attempts and bids it
/// holds account for: the bond (and collateral) of each live attempt, the deposit of each open
/// sealed bid, and the resources of each attempt assigned or running.
fn check_liens(state: &State) {
    use std::collections::BTreeMap;
    let mut bonded: BTreeMap<ProverId, u64> = BTreeMap::new();
    let mut used: BTreeMap<ProverId, Resources> = BTreeMap::new();
    for (_, j) in state.jobs() {
        for a in j.attempts.iter() {
            if a.state.is_live() {
                *bonded.entry(a.prover).or_default() += j.fee_per_prover.0 + a.collateral.0;
            }
            if a.state.holds_capacity() {
                let u = used.entry(a.prover).or_insert(Resources::ZERO);
                *u = u.checked_add(&j.resources).unwrap();
            }
        }
        for b in j.bids.iter() {
            *bonded.entry(b.prover).or_default() += b.deposit.0;
        }
    }
    for (id, p) in state.provers() {
        assert_eq!(p.bonded.0, bonded.get(id).copied().unwrap_or(0), "prover {id}'s bond");
        assert_eq!(p.used, used.get(id).copied().unwrap_or(Resources::ZERO), "prover {id}'s use");
    }
    // The queue holds exactly the jobs waiting for a prover, in submission order.
    let fallbacks = state.params().fallback_attempts_max;
    let waiting: Vec<JobId> = {
        let mut w: Vec<(u64, JobId)> = state
            .jobs()
            .filter(|(_, j)| j.waits_for_prover(fallbacks))
            .map(|(id, j)| (j.seq, *id))
            .collect();
        w.sort();
        w.into_iter().map(|(_, id)| id).collect()
    };
    assert_eq!(state.queued_jobs().collect::<Vec<_>>(), waiting);
}

/// Running totals of what each prover earned and lost, from the blocks' events.
#[derive(Default)]
struct Tallies {
    earned: std::collections::BTreeMap<ProverId, u64>,
    slashed: std::collections::BTreeMap<ProverId, u64>,
}

/// Each prover's `earned` and `slashed` are the sums of its payments for work and of its
/// slashes and forfeits, as the events report them.
fn check_tallies(state: &State, events: &[crate::events::Event], t: &mut Tallies) {
    use crate::events::{Event, PaymentKind};
    for e in events {
        match e {
            Event::Paid { to, kind, amount, .. }
                if matches!(
                    kind,
                    PaymentKind::ProverReward
                        | PaymentKind::VerifierReward
                        | PaymentKind::ProgramErrorCharge
                        | PaymentKind::Bounty
                ) && state.prover(&ProverId::from(*to)).is_some() =>
            {
                *t.earned.entry(ProverId::from(*to)).or_default() += amount.0;
            }
            Event::Slashed { prover, amount, .. } => {
                *t.slashed.entry(*prover).or_default() += amount.0;
            }
            Event::CollateralForfeited { prover, burned, bounty, .. } => {
                *t.slashed.entry(*prover).or_default() += burned.0 + bounty.0;
            }
            Event::ProverRemoved { prover } => {
                t.earned.remove(prover);
                t.slashed.remove(prover);
            }
            _ => {}
        }
    }
    for (id, p) in state.provers() {
        assert_eq!(p.earned.0, t.earned.get(id).copied().unwrap_or(0), "prover {id}'s earnings");
        assert_eq!(p.slashed.0, t.slashed.get(id).copied().unwrap_or(0), "prover {id}'s slashes");
    }
}

fn derive_randomness(c: &TestChain, h: provernet_types::Height) -> [u8; 32] {
    provernet_types::domain_hash(
        "provernet test randomness",
        &[&h.0.to_le_bytes(), &c.salt.to_le_bytes()],
    )
}

fn run(actions: Vec<Vec<Action>>, behaviour: Behaviour, salt: u64) {
    // Every draw delay a chain may use: 0 (reactions in the same block) to 2 (commit-reveal).
    // One validator or four (a built-in proof then needs three of their votes).
    let mut c = TestChain::new(6, |p| {
        p.draw_delay = provernet_types::Blocks(salt % 3);
        if salt % 2 == 1 {
            four_validators(p);
        }
        if !salt.is_multiple_of(5) {
            p.tx_fee = MicroCredits(100);
        }
    });
    c.salt = salt;
    c.seed_agent(salt);
    let mut made = Made::default();
    let supply = u128::from(c.state.meta().supply.0);
    let mut tallies = Tallies::default();
    for block in &actions {
        let mut txs: Vec<VerifiedTx> = block.iter().map(|a| build(&mut c, a, &mut made)).collect();
        txs.extend(c.agent_txs(behaviour));
        let before = c.state.clone();
        let out = c.block(txs.clone());
        check_failed_txs_changed_nothing(&before, &c, &txs, &out);
        assert_eq!(c.state.total_credits(), supply, "credits not conserved");
        check_liens(&c.state);
        check_tallies(&c.state, &out.events, &mut tallies);
        check_workflows(&c.state);
        check_indexes(&c);
    }
    // Let everything finish, with the same behaviour, then check every job's final state.
    let bound = c.state.params().job_lifetime_bound(Seconds(120), 3).0;
    let mut extra = 0;
    let busy = |s: &State| {
        s.jobs().any(|(_, j)| !j.settled) || s.workflows().any(|(_, w)| !w.is_finished())
    };
    while busy(&c.state) && extra < bound {
        let txs = c.agent_txs(behaviour);
        let out = c.block(txs);
        check_tallies(&c.state, &out.events, &mut tallies);
        extra += 1;
        assert_eq!(c.state.total_credits(), supply, "credits not conserved");
        check_liens(&c.state);
        check_workflows(&c.state);
        check_indexes(&c);
    }
    assert!(!busy(&c.state), "jobs or workflows still running after {extra} blocks");
    // Everything finished has left the live state for the archive, whose peaks the state
    // commits to.
    assert_eq!(c.state.jobs().count(), 0, "finished jobs stay live");
    assert_eq!(c.state.workflows().count(), 0, "finished workflows stay live");
    let mut archived: Vec<_> = c.archive.values().collect();
    archived.sort_by_key(|a| a.index);
    let mut peaks = crate::archive::Peaks::default();
    for (i, a) in archived.iter().enumerate() {
        assert_eq!(a.index, i as u64, "archive indices are dense");
        peaks.append(crate::archive::Peaks::leaf(&a.key, &a.record));
    }
    assert_eq!(peaks, c.state.meta().archive, "the state commits to the archive");
    for a in c.archive.values().filter(|a| a.key.table == crate::state::Table::Workflow) {
        let w: crate::Workflow = provernet_types::decode_exact(&a.record, "workflow").unwrap();
        assert!(w.is_finished(), "workflow {:?} not finished", a.key);
    }
    for (id, w) in c.state.workflows() {
        assert!(w.is_finished(), "workflow {id:?} not finished: {w:#?}");
        assert_eq!(w.escrow, MicroCredits(0));
    }
    for (id, j) in &c.all_jobs() {
        assert!(j.status.is_final() && j.settled, "job {id:?} not finished: {j:#?}");
        assert_eq!(j.escrow, MicroCredits(0));
        let bound = c.state.params().job_lifetime_bound(j.time_limit, j.redundancy);
        let took = j.finished_at.unwrap().0 - j.submitted_at.0;
        assert!(took <= bound.0, "job {id:?} took {took} blocks, bound {bound:?}");
        if j.status == JobStatus::Verified {
            assert!(j.winner.is_some());
        }
    }
    for (id, a) in c.state.accounts() {
        assert_eq!(a.open_jobs, 0, "account {id:?} still counts open jobs");
    }
    for (_, p) in c.state.provers() {
        let held: bool = c.state.jobs().any(|(_, j)| j.attempts.iter().any(|a| a.state.is_live()));
        if !held {
            assert_eq!(p.bonded, MicroCredits(0));
            assert_eq!(p.used, provernet_types::Resources::ZERO);
        }
    }
    // Loading the records back gives the same root.
    let records = crate::state::records(&c.state);
    let loaded =
        State::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).unwrap();
    assert_eq!(loaded.root(), c.state.root());
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    (50u8..=100, 50u8..=100, 50u8..=100, 0u8..30, 50u8..=100, 0u8..=100).prop_map(
        |(accept_pct, deliver_pct, valid_pct, program_error_pct, vote_pct, race_pct)| Behaviour {
            accept_pct,
            deliver_pct,
            valid_pct,
            program_error_pct,
            vote_pct,
            race_pct,
        },
    )
}

/// Cases per property: 24 by default, more where `PROVERNET_PROPTEST_CASES` says (CI: 128).
fn cases() -> u32 {
    std::env::var("PROVERNET_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn honest_provers(actions in prop::collection::vec(prop::collection::vec(action(), 0..6), 1..25), salt in any::<u64>()) {
        run(actions, Behaviour::HONEST, salt);
    }

    #[test]
    fn unreliable_provers(actions in prop::collection::vec(prop::collection::vec(action(), 0..6), 1..25), b in behaviour(), salt in any::<u64>()) {
        run(actions, b, salt);
    }
}

#[test]
fn replay_from_genesis_reproduces_every_root() {
    let mut a = TestChain::new(5, |_| {});
    let mut b = TestChain::new(5, |_| {});
    assert_eq!(a.state.root(), b.state.root());
    let unreliable = Behaviour {
        accept_pct: 80,
        deliver_pct: 80,
        valid_pct: 80,
        program_error_pct: 10,
        vote_pct: 90,
        race_pct: 50,
    };
    a.seed_agent(7);
    for i in 0..120u64 {
        let mut txs = a.agent_txs(unreliable);
        if i % 3 == 0 {
            let (_, t) = a.submit(
                if i % 2 == 0 { "alice" } else { "bob" },
                a.spec(committee_program().id(), 20),
            );
            txs.push(t);
        }
        let ctx = a.next_context();
        let out = a.block(txs.clone());
        let again = apply_block(&mut b.state, &ctx, &txs).unwrap();
        assert_eq!(again.root, out.root, "diverged at height {}", ctx.height);
    }
}
