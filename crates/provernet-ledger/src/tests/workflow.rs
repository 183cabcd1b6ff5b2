//! Workflows through the real ledger: activation along the graph, failure and cancel
//! propagation, refusals with their codes, and the attacks on them.

use crate::entities::{JobStatus, NodeStatus, Workflow};
use crate::events::Event;
use crate::testkit::*;
use crate::TxError;
use provernet_types::workflow::{node_job_id, WorkflowNode, WorkflowSpec, WORKFLOW_NODES_MAX};
use provernet_types::{
    BoundedVec, Decode, Encode, FileName, JobId, MicroCredits, ProgramId, TxBody, WorkflowId,
};

fn committee() -> ProgramId {
    committee_program().id()
}

fn name(s: &str) -> FileName {
    s.parse().expect("a name")
}

fn balance(c: &TestChain, who: &str) -> u64 {
    c.state.account(&c.account(who)).map_or(0, |a| a.balance.0)
}

fn open_jobs(c: &TestChain, who: &str) -> u32 {
    c.state.account(&c.account(who)).map_or(0, |a| a.open_jobs)
}

fn conserved(c: &TestChain) {
    assert_eq!(c.state.total_credits(), u128::from(c.state.meta().supply.0), "credits");
}

fn wf(c: &TestChain, id: &WorkflowId) -> Workflow {
    c.workflow(id).expect("workflow exists")
}

fn node_job(id: &WorkflowId, node: &str) -> JobId {
    node_job_id(id, &name(node))
}

fn status(c: &TestChain, id: &WorkflowId, node: &str) -> NodeStatus {
    let w = wf(c, id);
    let i = w.spec.index_of(&name(node)).expect("a node");
    w.nodes[i].status
}

/// Runs honest provers until the workflow is finished and every job settled.
fn run_to_end(c: &mut TestChain, id: &WorkflowId) {
    run_to_end_with(c, id, Behaviour::HONEST);
}

/// Runs provers behaving as `b` until the workflow is finished and every job settled,
/// checking conservation after every block.
fn run_to_end_with(c: &mut TestChain, id: &WorkflowId, b: Behaviour) {
    for _ in 0..200 {
        if wf(c, id).is_finished() && c.state.jobs().all(|(_, j)| j.settled) {
            return;
        }
        let txs = c.agent_txs(b);
        c.block(txs);
        conserved(c);
    }
    panic!("workflow did not finish: {:#?}", wf(c, id));
}

/// What the requester paid for the jobs of a workflow that ended: the fees of its verified
/// jobs, less their fallback refunds, plus what failed jobs charged.
fn paid_for(c: &TestChain, id: &WorkflowId) -> u64 {
    let w = wf(c, id);
    w.spec
        .nodes
        .iter()
        .filter_map(|n| c.job(&node_job_id(id, &n.name)))
        .map(|j| match j.status {
            JobStatus::Verified => {
                j.fee_per_prover.0 * u64::from(j.redundancy) - j.fallback_refund.0
            }
            JobStatus::Failed(crate::FailReason::Program) => j.fee_per_prover.0,
            _ => 0,
        })
        .sum()
}

fn refused(out: &crate::BlockOutput) -> TxError {
    out.receipts[0].result.clone().expect_err("refused")
}

#[test]
fn a_diamond_runs_each_node_once_its_sources_are_verified_and_feeds_it_their_proofs() {
    let mut c = TestChain::new(5, |_| {});
    let before = balance(&c, "alice");
    let spec = workflow_spec(vec![
        workflow_node("join", committee(), 30, &["left", "right"]),
        workflow_node("left", committee(), 30, &["split"]),
        workflow_node("right", committee(), 30, &["split"]),
        workflow_node("split", committee(), 30, &[]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    let out = c.block(vec![tx]);
    assert_eq!(out.receipts[0].result, Ok(()));
    // The whole graph is escrowed at once; only the root is a job.
    let w = wf(&c, &id);
    let quote = c.job(&node_job(&id, "split")).expect("the root is a job").escrow.0;
    assert_eq!(balance(&c, "alice"), before - 4 * quote, "four nodes escrowed");
    assert_eq!(w.escrow.0, 3 * quote, "three still held by the workflow");
    assert_eq!(open_jobs(&c, "alice"), 4);
    assert_eq!(status(&c, &id, "split"), NodeStatus::Job);
    for n in ["left", "right", "join"] {
        assert_eq!(status(&c, &id, n), NodeStatus::Waiting);
        assert!(c.job(&node_job(&id, n)).is_none(), "{n} is not a job yet");
    }
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::WorkflowSubmitted { workflow, .. } if *workflow == id)));
    conserved(&c);

    run_to_end(&mut c, &id);
    let w = wf(&c, &id);
    assert_eq!(w.failed, None);
    assert!(!w.cancelled);
    assert_eq!(w.escrow, MicroCredits(0));
    for n in ["split", "left", "right", "join"] {
        assert_eq!(status(&c, &id, n), NodeStatus::Done(JobStatus::Verified), "{n}");
    }
    // Each node started only after its sources were verified, and read their winning proofs.
    let job = |n: &str| c.job(&node_job(&id, n)).expect("a job").clone();
    let split = job("split");
    let join = job("join");
    for n in ["left", "right"] {
        let j = job(n);
        assert!(j.submitted_at >= split.finished_at.expect("final"), "{n} waited for split");
        assert!(join.submitted_at >= j.finished_at.expect("final"), "join waited for {n}");
        let proof = j.attempts[usize::from(j.winner.expect("won"))].proof[0].blob;
        let input = join.inputs.iter().find(|i| i.name.as_str() == format!("in-{n}"));
        assert_eq!(input.map(|i| i.blob), Some(proof), "join reads {n}'s proof");
        assert_eq!(j.workflow.map(|r| r.workflow), Some(id));
    }
    assert_eq!(join.inputs.len(), 3, "its own statement and two wired proofs");
    assert_eq!(balance(&c, "alice"), before - paid_for(&c, &id), "charged only the jobs' fees");
    assert_eq!(open_jobs(&c, "alice"), 0);
    conserved(&c);
    // Finished and settled, the workflow and its jobs left the live state for the archive,
    // and the state reloads to the same root without them.
    assert!(c.state.workflow(&id).is_none(), "a finished workflow leaves the live state");
    for n in ["split", "left", "right", "join"] {
        assert!(c.state.job(&node_job(&id, n)).is_none(), "{n}'s job leaves with it");
    }
    let key = crate::StateKey { table: crate::Table::Workflow, id: id.0 };
    assert!(c.archive.contains_key(&key), "the workflow is archived");
    let records = crate::state::records(&c.state);
    let loaded =
        crate::State::from_records(records.iter().map(|(k, v)| (&k[..], &v[..]))).expect("loads");
    assert_eq!(loaded.root(), c.state.root());
}

#[test]
fn a_failed_node_skips_its_descendants_returns_their_escrow_and_spares_other_branches() {
    let mut c = TestChain::new(5, |_| {});
    let before = balance(&c, "alice");
    let spec = workflow_spec(vec![
        workflow_node("a", committee(), 30, &[]),
        workflow_node("b", committee(), 30, &["a"]),
        workflow_node("c", committee(), 30, &["b"]),
        workflow_node("x", committee(), 30, &[]),
        workflow_node("y", committee(), 30, &["x"]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    c.block(vec![tx]);
    // The root `a` fails: its requester cancels its job before anyone runs it.
    let cancel = c.tx("alice", TxBody::CancelJob { job: node_job(&id, "a") });
    let out = c.block(vec![cancel]);
    assert_eq!(out.receipts[0].result, Ok(()));
    let a = 0u8;
    assert_eq!(status(&c, &id, "a"), NodeStatus::Done(JobStatus::Cancelled));
    assert_eq!(status(&c, &id, "b"), NodeStatus::Skipped { cause: Some(a) });
    assert_eq!(status(&c, &id, "c"), NodeStatus::Skipped { cause: Some(a) });
    assert_eq!(wf(&c, &id).failed, Some(a), "the workflow names the node that failed");
    assert!(c.job(&node_job(&id, "b")).is_none());
    conserved(&c);
    // The other branch goes on to the end.
    run_to_end(&mut c, &id);
    assert_eq!(status(&c, &id, "x"), NodeStatus::Done(JobStatus::Verified));
    assert_eq!(status(&c, &id, "y"), NodeStatus::Done(JobStatus::Verified));
    let w = wf(&c, &id);
    assert!(w.is_finished());
    assert_eq!(w.escrow, MicroCredits(0));
    assert_eq!(crate::contract::workflow_status(&w), provernet_api_types::WorkflowStatus::Failed);
    assert_eq!(balance(&c, "alice"), before - paid_for(&c, &id), "skipped nodes cost nothing");
    assert_eq!(open_jobs(&c, "alice"), 0);
}

#[test]
fn a_node_whose_program_fails_everywhere_skips_what_reads_from_it() {
    let mut c = TestChain::new(5, |_| {});
    let before = balance(&c, "alice");
    let spec = workflow_spec(vec![
        workflow_node("seg", committee(), 30, &[]),
        workflow_node("join", committee(), 30, &["seg"]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    c.block(vec![tx]);
    run_to_end_with(&mut c, &id, Behaviour { program_error_pct: 100, ..Behaviour::HONEST });
    assert_eq!(
        status(&c, &id, "seg"),
        NodeStatus::Done(JobStatus::Failed(crate::FailReason::Program))
    );
    assert_eq!(status(&c, &id, "join"), NodeStatus::Skipped { cause: Some(0) });
    assert!(wf(&c, &id).is_finished());
    // The requester pays the failed attempt's fee (the program's fault), never the join's.
    assert_eq!(balance(&c, "alice"), before - paid_for(&c, &id));
    assert_eq!(open_jobs(&c, "alice"), 0);
}

#[test]
fn cancel_mid_way_skips_what_has_not_started_and_lets_running_jobs_finish() {
    let mut c = TestChain::new(5, |_| {});
    let before = balance(&c, "alice");
    let spec = workflow_spec(vec![
        workflow_node("a", committee(), 30, &[]),
        workflow_node("b", committee(), 30, &["a"]),
        workflow_node("c", committee(), 30, &["b"]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    c.block(vec![tx]);
    // One honest turn: a's prover accepts; a is running.
    let txs = c.agent_txs(Behaviour::HONEST);
    c.block(txs);
    let a = c.job(&node_job(&id, "a")).expect("a job").clone();
    assert_eq!(a.status, JobStatus::Running, "{a:#?}");
    // A stranger may not cancel it; the requester may.
    let stranger = c.tx("bob", TxBody::CancelWorkflow { workflow: id });
    assert_eq!(refused(&c.block(vec![stranger])).code(), "not_requester");
    let cancel = c.tx("alice", TxBody::CancelWorkflow { workflow: id });
    let out = c.block(vec![cancel]);
    assert_eq!(out.receipts[0].result, Ok(()));
    assert_eq!(status(&c, &id, "b"), NodeStatus::Skipped { cause: None });
    assert_eq!(status(&c, &id, "c"), NodeStatus::Skipped { cause: None });
    assert_eq!(status(&c, &id, "a"), NodeStatus::Job, "a running job finishes");
    let again = c.tx("alice", TxBody::CancelWorkflow { workflow: id });
    assert_eq!(refused(&c.block(vec![again])).code(), "workflow_closed");
    run_to_end(&mut c, &id);
    assert_eq!(status(&c, &id, "a"), NodeStatus::Done(JobStatus::Verified));
    assert!(c.job(&node_job(&id, "b")).is_none(), "nothing started after the cancel");
    let w = wf(&c, &id);
    assert_eq!(
        crate::contract::workflow_status(&w),
        provernet_api_types::WorkflowStatus::Cancelled
    );
    assert_eq!(w.failed, None);
    assert_eq!(balance(&c, "alice"), before - paid_for(&c, &id), "only a was paid for");
    assert_eq!(open_jobs(&c, "alice"), 0);
    conserved(&c);
}

#[test]
fn cancelling_a_workflow_cancels_its_jobs_no_prover_runs_yet() {
    let mut c = TestChain::new(5, |_| {});
    let before = balance(&c, "alice");
    let spec = workflow_spec(vec![
        workflow_node("a", committee(), 30, &[]),
        workflow_node("b", committee(), 30, &[]),
        workflow_node("j", committee(), 30, &["a", "b"]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    c.block(vec![tx]);
    let cancel = c.tx("alice", TxBody::CancelWorkflow { workflow: id });
    assert_eq!(c.block(vec![cancel]).receipts[0].result, Ok(()));
    c.idle(2);
    for n in ["a", "b"] {
        assert_eq!(status(&c, &id, n), NodeStatus::Done(JobStatus::Cancelled), "{n}");
    }
    assert_eq!(status(&c, &id, "j"), NodeStatus::Skipped { cause: None });
    assert!(wf(&c, &id).is_finished());
    assert!(c.state.jobs().all(|(_, j)| j.settled));
    assert_eq!(balance(&c, "alice"), before, "everything came back");
    assert_eq!(open_jobs(&c, "alice"), 0);
    conserved(&c);
}

#[test]
fn bad_workflows_are_refused_with_their_codes_naming_the_node_and_change_nothing() {
    let mut c = TestChain::new(3, |p| p.tx_fee = MicroCredits(100));
    let node = |n: &str, from: &[&str]| workflow_node(n, committee(), 30, from);
    let mut cases: Vec<(WorkflowSpec, &str, Option<&str>)> = vec![
        (workflow_spec(vec![node("a", &["b"]), node("b", &["a"])]), "workflow_cycle", Some("a")),
        (workflow_spec(vec![node("a", &["ghost"])]), "unknown_node", Some("a")),
        (workflow_spec(vec![node("a", &["a"])]), "self_reference", Some("a")),
        (workflow_spec(vec![node("a", &[]), node("a", &[])]), "duplicate_node", Some("a")),
        (workflow_spec(vec![]), "workflow_empty", None),
    ];
    // A wire to an output the source's program does not declare.
    let mut undeclared = node("b", &["a"]);
    undeclared.wires.as_mut_slice()[0].output = name("trace");
    cases.push((workflow_spec(vec![node("a", &[]), undeclared]), "undeclared_output", Some("b")));
    // A node's own max fee below its quote.
    let mut cheap = node("b", &[]);
    cheap.job.max_fee = MicroCredits(1);
    cases.push((workflow_spec(vec![node("a", &[]), cheap]), "fee_below_quote", Some("b")));
    // A node asking for an unknown program.
    let mut unknown = node("b", &[]);
    unknown.job.program = ProgramId([9; 32]);
    cases.push((workflow_spec(vec![node("a", &[]), unknown]), "unknown_program", Some("b")));
    // The workflow's max fee below the sum of its nodes' quotes.
    let mut short = workflow_spec(vec![node("a", &[]), node("b", &["a"])]);
    short.max_fee = MicroCredits(10);
    cases.push((short, "fee_below_quote", None));
    // Too many wires in all: 40 nodes each reading up to 8 earlier ones (284 wires).
    let names: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    let wide: Vec<WorkflowNode> = (0..40)
        .map(|i| {
            let from: Vec<&str> =
                (1..=8).filter(|k| *k <= i).map(|k| names[i - k].as_str()).collect();
            node(&names[i], &from)
        })
        .collect();
    cases.push((workflow_spec(wide), "workflow_too_large", None));
    for (spec, code, node_name) in cases {
        let before = (balance(&c, "alice"), c.state.root());
        let (_, tx) = c.submit_workflow("alice", spec);
        let e = refused(&c.block(vec![tx]));
        assert_eq!(e.code(), code, "{e}");
        let named = e.fields().into_iter().find(|(k, _)| *k == "node").map(|(_, v)| v);
        assert_eq!(named.as_deref(), node_name, "{e}");
        if let Some(n) = node_name {
            assert!(e.to_string().contains(&format!("`{n}`")), "the message names it: {e}");
        }
        assert_eq!(balance(&c, "alice"), before.0, "a refused workflow costs nothing");
        assert_eq!(c.state.workflows().count(), 0);
    }
    // A graph over the node limit does not even decode.
    let too_many: Vec<WorkflowNode> =
        (0..=WORKFLOW_NODES_MAX).map(|i| node(&format!("n{i}"), &[])).collect();
    // The same encoding as a workflow's list of nodes, under a looser bound.
    let loose = BoundedVec::<WorkflowNode, 128>::try_from_vec(too_many).expect("65 < 128");
    let mut bytes = Vec::new();
    loose.encode_to(&mut bytes);
    MicroCredits(1).encode_to(&mut bytes);
    assert!(provernet_types::decode_exact::<WorkflowSpec>(&bytes, "workflow").is_err());
    let mut r = provernet_types::Reader::new(&bytes);
    assert!(WorkflowSpec::decode_from(&mut r).is_err());
}

#[test]
fn a_workflow_pays_the_transaction_fee_for_each_of_its_nodes() {
    let fee = 100;
    let mut c = TestChain::new(3, |p| p.tx_fee = MicroCredits(fee));
    let spec = workflow_spec(vec![
        workflow_node("a", committee(), 30, &[]),
        workflow_node("b", committee(), 30, &["a"]),
        workflow_node("c", committee(), 30, &["a"]),
    ]);
    let burned = c.state.meta().burned.0;
    let (_, tx) = c.submit_workflow("alice", spec);
    assert_eq!(c.block(vec![tx]).receipts[0].result, Ok(()));
    assert_eq!(c.state.meta().burned.0 - burned, 3 * fee, "three nodes, three fees");
}

#[test]
fn a_prover_cannot_starve_a_workflow_by_leaving_out_a_wired_output() {
    let mut c = TestChain::new(4, |_| {});
    let spec = workflow_spec(vec![
        workflow_node("seg", committee(), 30, &[]),
        workflow_node("join", committee(), 30, &["seg"]),
    ]);
    let (id, tx) = c.submit_workflow("alice", spec);
    c.block(vec![tx]);
    let seg = node_job(&id, "seg");
    let prover = c.job(&seg).expect("a job").attempts[0].prover;
    let who = c.name_of(&prover.into()).expect("a test prover");
    let accept = c.tx(&who, TxBody::AcceptJob { job: seg, attempt: 0 });
    c.block(vec![accept]);
    // A proof without the declared `proof` output: its commitment lands, its reveal is refused.
    let files: ProofFiles = BoundedVec::try_from_vec(vec![provernet_types::NamedBlob {
        name: name("other"),
        blob: provernet_types::tx::blob_ref(b"valid proof"),
    }])
    .expect("one file");
    let commit = c.commit(&who, seg, 0, &files);
    assert_eq!(c.block(vec![commit]).receipts[0].result, Ok(()));
    let reveal = c.reveal(&who, seg, 0, &files);
    let e = refused(&c.block(vec![reveal]));
    assert_eq!(e.code(), "missing_output", "{e}");
    assert_eq!(status(&c, &id, "join"), NodeStatus::Waiting);
    conserved(&c);
}

#[test]
fn a_lone_job_cannot_take_a_workflow_nodes_id_and_nodes_of_two_workflows_never_collide() {
    let mut c = TestChain::new(3, |_| {});
    let spec = || workflow_spec(vec![workflow_node("a", committee(), 30, &[])]);
    let (w1, t1) = c.submit_workflow("alice", spec());
    let (w2, t2) = c.submit_workflow("alice", spec());
    let (job, t3) = c.submit("alice", c.spec(committee(), 30));
    let out = c.block(vec![t1, t2, t3]);
    assert!(out.receipts.iter().all(|r| r.result.is_ok()));
    let ids = [node_job(&w1, "a"), node_job(&w2, "a"), job];
    assert!(ids.iter().all(|i| c.job(i).is_some()));
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
}
