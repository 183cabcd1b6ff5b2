//! Workflows (ADR 11): a graph of jobs submitted and escrowed in one transaction, whose nodes
//! the chain turns into jobs as the nodes they read from are Verified.
//!
//! # Rules
//!
//! - **Submission** (`SubmitWorkflow`) checks the graph whole ([`WorkflowSpec::check_graph`]),
//!   admits every node as a lone job would be admitted (naming the node in the error), checks
//!   that every wire reads an output its source node's program declares
//!   (`ProgramManifest::outputs`), and that the workflow's `max_fee` covers the sum of the
//!   nodes' escrows. The whole sum moves from the requester's balance into the workflow's
//!   escrow, node by node; each node counts as one of the requester's open jobs and pays the
//!   transaction fee, as a lone job does. Nodes
//!   that read from no node become jobs at once.
//! - **Activation.** When a node's job ends Verified, each node reading from it whose every
//!   source is now Verified becomes a job in the same step: its inputs are its own blobs plus,
//!   for each wire, the named file of the proof that decided the source's job (the ledger
//!   refuses a proof without its program's declared outputs, so the file is there). Its
//!   escrow moves from the workflow's to the job's, and the job is an ordinary job from then
//!   on (assignment, fallback, verification, settlement), with the id
//!   [`node_job_id`]`(workflow, node)`.
//! - **Failure.** A node whose job ends otherwise (Failed, Cancelled, Expired) makes every
//!   node that reads from it, directly or not, Skipped, and their escrow returns to the
//!   requester. Nodes on other branches go on. The workflow records the first node that
//!   failed.
//! - **Cancel** (`CancelWorkflow`, by the requester): nodes not yet jobs are skipped (escrow
//!   returned), node jobs no prover runs yet are cancelled as `CancelJob` would, running ones
//!   finish under the usual rules and activate nothing.
//! - A workflow is **finished** once every node is final (its job ended, or skipped); its
//!   escrow is then empty, which the ledger asserts.

use crate::apply::{
    admit_job, cancel_now, close_one, new_job, open_jobs, price_job, put_new_job, spend,
};
use crate::entities::{Job, JobStatus, NodeRef, NodeState, NodeStatus, Workflow};
use crate::error::TxError;
use crate::events::{Event, PaymentKind};
use crate::money::{must_move, pay, Purse};
use crate::overlay::Overlay;
use provernet_types::workflow::{node_job_id, workflow_id, WorkflowSpec};
use provernet_types::{
    AccountId, BoundedVec, FileName, JobId, MicroCredits, NamedBlob, Nonce, WorkflowId,
};

fn node_error(name: &FileName, error: TxError) -> TxError {
    TxError::WorkflowNode { node: name.clone(), error: Box::new(error) }
}

pub(crate) fn submit_workflow(
    ov: &mut Overlay<'_>,
    requester: AccountId,
    nonce: Nonce,
    spec: &WorkflowSpec,
) -> Result<(), TxError> {
    let order = spec.check_graph().map_err(TxError::Workflow)?;
    let mut escrows = Vec::with_capacity(spec.nodes.len());
    for n in spec.nodes.iter() {
        let wired: Vec<&FileName> = n.wires.iter().map(|w| &w.input).collect();
        let admitted = admit_job(ov, &n.job, &wired).map_err(|e| node_error(&n.name, e))?;
        escrows.push(admitted.escrow);
    }
    // Every node's program is registered now: a wire may only read a declared output.
    for n in spec.nodes.iter() {
        for w in n.wires.iter() {
            let declared = spec
                .index_of(&w.node)
                .and_then(|i| ov.program(&spec.nodes[i].job.program))
                .is_some_and(|p| p.manifest.outputs.contains(&w.output));
            if !declared {
                return Err(TxError::UndeclaredOutput {
                    node: n.name.clone(),
                    input: w.input.clone(),
                    from: w.node.clone(),
                    output: w.output.clone(),
                });
            }
        }
    }
    let total = escrows
        .iter()
        .try_fold(MicroCredits(0), |t, e| t.checked_add(*e))
        .ok_or(TxError::Overflow)?;
    if spec.max_fee < total {
        return Err(TxError::FeeBelowQuote { quote: total, max_fee: spec.max_fee });
    }
    // The transaction paid one fee; each further node pays its own, as a lone job would, so a
    // workflow is no cheaper a way to grow the state.
    let extra = ov.params().tx_fee.0.checked_mul(spec.nodes.len() as u64 - 1);
    let fees = MicroCredits(extra.ok_or(TxError::Overflow)?);
    let need = total.checked_add(fees).ok_or(TxError::Overflow)?;
    let have = ov.account(&requester).map_or(MicroCredits(0), |a| a.balance);
    if have < need {
        return Err(TxError::InsufficientBalance { need, have });
    }
    let count = u32::try_from(spec.nodes.len()).map_err(|_| TxError::Overflow)?;
    open_jobs(ov, requester, count)?;
    spend(ov, requester, Purse::Burned, fees)?;
    let id = workflow_id(&requester, nonce);
    let waiting = NodeState { status: NodeStatus::Waiting, escrow: MicroCredits(0) };
    let nodes =
        BoundedVec::try_from_vec(vec![waiting; spec.nodes.len()]).map_err(|_| TxError::Overflow)?;
    let mut wf = Workflow {
        requester,
        spec: spec.clone(),
        nodes,
        escrow: MicroCredits(0),
        submitted_at: ov.height,
        failed: None,
        cancelled: false,
        finished_at: None,
    };
    for (i, escrow) in escrows.into_iter().enumerate() {
        spend(ov, requester, Purse::Workflow(&mut wf, i), escrow)?;
    }
    ov.events.push(Event::WorkflowSubmitted { workflow: id, requester });
    for i in order {
        if spec.parents(i).is_empty() {
            activate(ov, id, &mut wf, i, None);
        }
    }
    ov.put_workflow(id, wf);
    Ok(())
}

pub(crate) fn cancel_workflow(
    ov: &mut Overlay<'_>,
    signer: AccountId,
    id: WorkflowId,
) -> Result<(), TxError> {
    let mut wf = ov.workflow(&id).ok_or(TxError::UnknownWorkflow(id))?;
    if wf.requester != signer {
        return Err(TxError::NotWorkflowRequester(id));
    }
    if wf.cancelled || wf.is_finished() {
        return Err(TxError::WorkflowClosed(id));
    }
    wf.cancelled = true;
    for i in 0..wf.nodes.len() {
        if wf.nodes[i].status == NodeStatus::Waiting {
            skip(ov, id, &mut wf, i, None);
        }
    }
    let jobs: Vec<JobId> = wf
        .spec
        .nodes
        .iter()
        .zip(wf.nodes.iter())
        .filter(|(_, s)| s.status == NodeStatus::Job)
        .map(|(n, _)| node_job_id(&id, &n.name))
        .collect();
    finish_if_done(ov, id, &mut wf);
    ov.put_workflow(id, wf);
    // Cancelling a node's job ends it, which records its end in the workflow (above, written).
    for job_id in jobs {
        if let Some(job) = ov.job(&job_id).filter(Job::cancellable) {
            cancel_now(ov, job_id, job);
        }
    }
    Ok(())
}

/// Moves a workflow on after its node's job `id` ended (`job.status` is final): called by
/// the ledger wherever a job ends.
pub(crate) fn node_finished(ov: &mut Overlay<'_>, id: JobId, job: &Job) {
    let Some(at) = job.workflow else { return };
    let Some(mut wf) = ov.workflow(&at.workflow) else {
        panic!("ledger invariant broken: job {id} belongs to a workflow that does not exist");
    };
    let i = usize::from(at.node);
    // A job ends once (`finish_job` runs on non-final jobs only), so its node is a job still.
    debug_assert_eq!(
        wf.nodes.get(i).map(|n| n.status),
        Some(NodeStatus::Job),
        "node {i} of {}",
        at.workflow
    );
    set_node(ov, at.workflow, &mut wf, i, NodeStatus::Done(job.status));
    if job.status == JobStatus::Verified {
        if !wf.cancelled {
            for child in 0..wf.nodes.len() {
                let parents = wf.spec.parents(child);
                let ready = wf.nodes[child].status == NodeStatus::Waiting
                    && parents.contains(&i)
                    && parents
                        .iter()
                        .all(|p| wf.nodes[*p].status == NodeStatus::Done(JobStatus::Verified));
                if ready {
                    activate(ov, at.workflow, &mut wf, child, Some((id, job)));
                }
            }
        }
    } else {
        if !wf.cancelled && wf.failed.is_none() {
            wf.failed = Some(at.node);
        }
        for d in wf.spec.descendants(i) {
            if wf.nodes[d].status == NodeStatus::Waiting {
                skip(ov, at.workflow, &mut wf, d, Some(at.node));
            }
        }
    }
    finish_if_done(ov, at.workflow, &mut wf);
    ov.put_workflow(at.workflow, wf);
}

/// Turns node `i` into a job: its wired inputs are read from its sources' deciding proofs
/// (`finishing` is a source whose job is not written back yet), its escrow moves to the job.
fn activate(
    ov: &mut Overlay<'_>,
    id: WorkflowId,
    wf: &mut Workflow,
    i: usize,
    finishing: Option<(JobId, &Job)>,
) {
    let node = wf.spec.nodes[i].clone();
    let mut inputs = node.job.inputs.clone().into_vec();
    for w in node.wires.iter() {
        let source = node_job_id(&id, &w.node);
        let job = match finishing {
            Some((fid, j)) if fid == source => Some(j.clone()),
            _ => ov.job(&source),
        };
        let blob = job.as_ref().and_then(|j| {
            let winner = j.attempts.get(usize::from(j.winner?))?;
            winner.proof.iter().find(|f| f.name == w.output).map(|f| f.blob)
        });
        match blob {
            Some(blob) => inputs.push(NamedBlob { name: w.input.clone(), blob }),
            None => panic!(
                "ledger invariant broken: node `{}` of workflow {id} reads `{}` from a job that has no such verified file",
                node.name, w.output
            ),
        }
    }
    let Ok(inputs) = BoundedVec::try_from_vec(inputs) else {
        panic!("ledger invariant broken: a workflow node has more inputs than a job may");
    };
    let Ok(admitted) = price_job(ov, &node.job) else {
        panic!("ledger invariant broken: a workflow node admitted at submission no longer prices");
    };
    let escrow = wf.nodes[i].escrow;
    if escrow != admitted.escrow {
        panic!("ledger invariant broken: a workflow node's escrow changed since submission");
    }
    let at = NodeRef { workflow: id, node: i as u8 };
    let mut job = new_job(ov, wf.requester, &node.job, inputs, &admitted, Some(at));
    must_move(ov, Purse::Workflow(wf, i), Purse::Escrow(&mut job), escrow, "workflow node escrow");
    put_new_job(ov, node_job_id(&id, &node.name), job);
    set_node(ov, id, wf, i, NodeStatus::Job);
}

/// Node `i` will never run: its escrow returns to the requester and it no longer counts as
/// an open job.
fn skip(ov: &mut Overlay<'_>, id: WorkflowId, wf: &mut Workflow, i: usize, cause: Option<u8>) {
    let (requester, escrow) = (wf.requester, wf.nodes[i].escrow);
    pay(ov, Purse::Workflow(wf, i), requester, None, PaymentKind::EscrowRefund, escrow);
    close_one(ov, requester);
    set_node(ov, id, wf, i, NodeStatus::Skipped { cause });
}

fn set_node(ov: &mut Overlay<'_>, id: WorkflowId, wf: &mut Workflow, i: usize, status: NodeStatus) {
    wf.nodes.as_mut_slice()[i].status = status;
    ov.events.push(Event::WorkflowNodeChanged { workflow: id, node: i as u8, status });
}

fn finish_if_done(ov: &mut Overlay<'_>, id: WorkflowId, wf: &mut Workflow) {
    if wf.is_finished() || !wf.nodes.iter().all(|n| n.status.is_final()) {
        return;
    }
    if wf.escrow.0 != 0 {
        panic!("ledger invariant broken: finished workflow {id} still holds {}", wf.escrow);
    }
    wf.finished_at = Some(ov.height);
    ov.events.push(Event::WorkflowFinished {
        workflow: id,
        failed: wf.failed,
        cancelled: wf.cancelled,
    });
}
