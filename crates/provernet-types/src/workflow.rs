//! Workflows (issue 17, ADR 11): a bounded graph of jobs, named, in which an input may be
//! another node's proof file (a *wire*) instead of a blob. Each node is an ordinary
//! [`JobSpec`] (its blob inputs in `job.inputs`) plus the wires that complete its inputs once
//! the nodes it reads from are Verified. This module holds the graph and the wiring rules that
//! need nothing but the graph itself: names unique, wires resolving to declared nodes and never
//! to the node itself, no cycle, bounded counts. What needs the chain's state (programs, their
//! declared outputs, quotes, escrow) is the ledger's to check.

use crate::codec::BoundedVec;
use crate::codec_struct;
use crate::ids::{AccountId, JobId, WorkflowId};
use crate::limits::JOB_INPUTS_MAX;
use crate::resources::FileName;
use crate::tx::JobSpec;
use crate::units::{MicroCredits, Nonce};
use std::collections::BTreeMap;

/// Most nodes in one workflow (a workflow is also bounded by the transaction's size).
pub const WORKFLOW_NODES_MAX: usize = 64;
/// Most wires in one workflow, over all its nodes.
pub const WORKFLOW_EDGES_MAX: usize = 256;

/// One input of a node that is another node's proof file: input `input` of this node is the
/// file `output` of the proof that made node `node` Verified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Wire {
    pub input: FileName,
    pub node: FileName,
    pub output: FileName,
}
codec_struct!(Wire { input, node, output });

/// One node: a job, with the inputs other nodes' proofs will provide.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowNode {
    pub name: FileName,
    /// The job this node becomes; its `inputs` are the node's blob inputs.
    pub job: JobSpec,
    /// The node's inputs that come from other nodes. With `job.inputs`, at most
    /// [`JOB_INPUTS_MAX`] in all, every name once.
    pub wires: BoundedVec<Wire, JOB_INPUTS_MAX>,
}
codec_struct!(WorkflowNode { name, job, wires });

/// A workflow as submitted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowSpec {
    pub nodes: BoundedVec<WorkflowNode, WORKFLOW_NODES_MAX>,
    /// The most the whole workflow may escrow: must cover the sum of its nodes' escrows.
    pub max_fee: MicroCredits,
}
codec_struct!(WorkflowSpec { nodes, max_fee });

/// The id of the workflow `requester` submits with `nonce`.
pub fn workflow_id(requester: &AccountId, nonce: Nonce) -> WorkflowId {
    WorkflowId(crate::ids::domain_hash(
        "provernet workflow id v1",
        &[&requester.0, &nonce.0.to_le_bytes()],
    ))
}

/// The id of the job node `node` of `workflow` becomes: anyone can find it from the names.
pub fn node_job_id(workflow: &WorkflowId, node: &FileName) -> JobId {
    JobId(crate::ids::domain_hash(
        "provernet workflow node job v1",
        &[&workflow.0, node.as_str().as_bytes()],
    ))
}

/// Why a workflow's wiring is refused; each names the node (and input) at fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum GraphError {
    #[error("a workflow needs at least one node")]
    Empty,
    #[error("node `{0}` is declared twice")]
    DuplicateNode(FileName),
    #[error("node `{node}` declares input `{input}` twice")]
    DuplicateInput { node: FileName, input: FileName },
    #[error("node `{node}` has {count} inputs, more than the {max} a job may have")]
    TooManyInputs { node: FileName, count: usize, max: usize },
    #[error("node `{node}`'s input `{input}` reads from the node itself")]
    SelfReference { node: FileName, input: FileName },
    #[error("node `{node}`'s input `{input}` reads from `{missing}`, which is not a node of this workflow")]
    UnknownNode { node: FileName, input: FileName, missing: FileName },
    #[error("node `{node}` is on a cycle: a node cannot wait, directly or not, for itself")]
    Cycle { node: FileName },
    #[error("the workflow has {edges} wires between nodes, more than the {max} allowed")]
    TooManyEdges { edges: usize, max: usize },
}

impl GraphError {
    /// A stable machine-readable code (the ledger's refusal codes share it).
    pub fn code(&self) -> &'static str {
        match self {
            GraphError::Empty => "workflow_empty",
            GraphError::DuplicateNode(_) => "duplicate_node",
            GraphError::DuplicateInput { .. } => "duplicate_name",
            GraphError::TooManyInputs { .. } => "too_many_inputs",
            GraphError::SelfReference { .. } => "self_reference",
            GraphError::UnknownNode { .. } => "unknown_node",
            GraphError::Cycle { .. } => "workflow_cycle",
            GraphError::TooManyEdges { .. } => "workflow_too_large",
        }
    }

    /// The node at fault, if one is.
    pub fn node(&self) -> Option<&FileName> {
        match self {
            GraphError::Empty | GraphError::TooManyEdges { .. } => None,
            GraphError::DuplicateNode(n) => Some(n),
            GraphError::DuplicateInput { node, .. }
            | GraphError::TooManyInputs { node, .. }
            | GraphError::SelfReference { node, .. }
            | GraphError::UnknownNode { node, .. }
            | GraphError::Cycle { node } => Some(node),
        }
    }
}

impl WorkflowSpec {
    /// The node named `name`, by index.
    pub fn index_of(&self, name: &FileName) -> Option<usize> {
        self.nodes.iter().position(|n| &n.name == name)
    }

    /// The nodes that `node` reads from (by index, each once, in order).
    pub fn parents(&self, node: usize) -> Vec<usize> {
        let index: BTreeMap<&FileName, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (&n.name, i)).collect();
        let mut out: Vec<usize> =
            self.nodes[node].wires.iter().filter_map(|w| index.get(&w.node).copied()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every node that reads, directly or not, from `node` (by index, in order).
    pub fn descendants(&self, node: usize) -> Vec<usize> {
        let parents: Vec<Vec<usize>> = (0..self.nodes.len()).map(|i| self.parents(i)).collect();
        let mut hit = vec![false; self.nodes.len()];
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for (child, ps) in parents.iter().enumerate() {
                if ps.contains(&n) && !std::mem::replace(&mut hit[child], true) {
                    stack.push(child);
                }
            }
        }
        (0..self.nodes.len()).filter(|i| hit[*i]).collect()
    }

    /// Checks the wiring (see [`GraphError`]) and returns the nodes in an order where every
    /// node comes after those it reads from (ties broken by name, so the order, and the node
    /// an error names, are the same on every validator).
    pub fn check_graph(&self) -> Result<Vec<usize>, GraphError> {
        if self.nodes.is_empty() {
            return Err(GraphError::Empty);
        }
        let mut index: BTreeMap<&FileName, usize> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if index.insert(&n.name, i).is_some() {
                return Err(GraphError::DuplicateNode(n.name.clone()));
            }
        }
        let mut edges = 0usize;
        for n in self.nodes.iter() {
            let count = n.job.inputs.len() + n.wires.len();
            if count > JOB_INPUTS_MAX {
                return Err(GraphError::TooManyInputs {
                    node: n.name.clone(),
                    count,
                    max: JOB_INPUTS_MAX,
                });
            }
            let names =
                n.job.inputs.iter().map(|i| &i.name).chain(n.wires.iter().map(|w| &w.input));
            if let Some(dup) = crate::first_duplicate(names) {
                return Err(GraphError::DuplicateInput {
                    node: n.name.clone(),
                    input: dup.clone(),
                });
            }
            for w in n.wires.iter() {
                edges += 1;
                if w.node == n.name {
                    return Err(GraphError::SelfReference {
                        node: n.name.clone(),
                        input: w.input.clone(),
                    });
                }
                if !index.contains_key(&w.node) {
                    return Err(GraphError::UnknownNode {
                        node: n.name.clone(),
                        input: w.input.clone(),
                        missing: w.node.clone(),
                    });
                }
            }
        }
        if edges > WORKFLOW_EDGES_MAX {
            return Err(GraphError::TooManyEdges { edges, max: WORKFLOW_EDGES_MAX });
        }
        // Kahn's algorithm, taking the ready node with the smallest name each time.
        let parents: Vec<Vec<usize>> = (0..self.nodes.len()).map(|i| self.parents(i)).collect();
        let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut ready: std::collections::BTreeSet<(&FileName, usize)> = waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| (&self.nodes[i].name, i))
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(first) = ready.pop_first() {
            let done = first.1;
            order.push(done);
            for (child, ps) in parents.iter().enumerate() {
                if ps.contains(&done) {
                    waiting[child] -= 1;
                    if waiting[child] == 0 {
                        ready.insert((&self.nodes[child].name, child));
                    }
                }
            }
        }
        if order.len() < self.nodes.len() {
            // Every node left waits on a cycle or on a node that does; name the smallest that
            // is itself on one.
            let left: Vec<usize> = (0..self.nodes.len()).filter(|i| !order.contains(i)).collect();
            let on_cycle = left
                .iter()
                .copied()
                .filter(|&i| reaches(&parents, i, i))
                .min_by(|a, b| self.nodes[*a].name.cmp(&self.nodes[*b].name))
                .unwrap_or(left[0]);
            return Err(GraphError::Cycle { node: self.nodes[on_cycle].name.clone() });
        }
        Ok(order)
    }
}

/// Whether following `from`'s parents leads back to `target`.
fn reaches(parents: &[Vec<usize>], from: usize, target: usize) -> bool {
    let mut seen = vec![false; parents.len()];
    let mut stack = parents[from].clone();
    while let Some(n) = stack.pop() {
        if n == target {
            return true;
        }
        if !std::mem::replace(&mut seen[n], true) {
            stack.extend(parents[n].iter().copied());
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_exact, Encode};
    use crate::ids::{BlobHash, ProgramId};
    use crate::resources::{BlobRef, NamedBlob, ProverSet};
    use crate::units::{Bytes, Seconds};
    use crate::MechanismKind;

    fn name(s: &str) -> FileName {
        s.parse().expect("a name")
    }

    fn node(n: &str, from: &[&str]) -> WorkflowNode {
        let wires: Vec<Wire> = from
            .iter()
            .map(|p| Wire { input: name(&format!("in-{p}")), node: name(p), output: name("proof") })
            .collect();
        let statement = NamedBlob {
            name: name("statement"),
            blob: BlobRef { hash: BlobHash([7; 32]), size: Bytes(10) },
        };
        WorkflowNode {
            name: name(n),
            job: JobSpec {
                program: ProgramId([1; 32]),
                inputs: BoundedVec::try_from_vec(vec![statement]).expect("inputs"),
                resources: None,
                time_limit: Seconds(60),
                redundancy: 1,
                prover_set: ProverSet::Any,
                mechanism: MechanismKind::RandomWithFallback,
                max_fee: MicroCredits(1_000),
            },
            wires: BoundedVec::try_from_vec(wires).expect("wires"),
        }
    }

    fn spec(nodes: Vec<WorkflowNode>) -> WorkflowSpec {
        WorkflowSpec {
            nodes: BoundedVec::try_from_vec(nodes).expect("nodes"),
            max_fee: MicroCredits(1_000_000),
        }
    }

    fn names(s: &WorkflowSpec, order: &[usize]) -> Vec<String> {
        order.iter().map(|i| s.nodes[*i].name.to_string()).collect()
    }

    #[test]
    fn a_diamond_orders_parents_first_and_round_trips() {
        let s = spec(vec![
            node("join", &["left", "right"]),
            node("right", &["split"]),
            node("left", &["split"]),
            node("split", &[]),
        ]);
        let order = s.check_graph().expect("a diamond is fine");
        assert_eq!(names(&s, &order), ["split", "left", "right", "join"]);
        assert_eq!(s.parents(0), vec![1, 2]);
        assert_eq!(s.descendants(3), vec![0, 1, 2]);
        assert_eq!(s.descendants(1), vec![0]);
        let bytes = s.encode();
        assert_eq!(decode_exact::<WorkflowSpec>(&bytes, "workflow").expect("decodes"), s);
        let id = workflow_id(&AccountId([1; 32]), Nonce(3));
        assert_ne!(node_job_id(&id, &name("left")), node_job_id(&id, &name("right")));
        assert_ne!(id.0, crate::tx::job_id(&AccountId([1; 32]), Nonce(3)).0);
    }

    #[test]
    fn bad_wiring_is_refused_naming_the_node() {
        assert_eq!(spec(vec![]).check_graph(), Err(GraphError::Empty));
        let e = spec(vec![node("a", &[]), node("a", &[])]).check_graph();
        assert_eq!(e, Err(GraphError::DuplicateNode(name("a"))));
        let e = spec(vec![node("a", &["a"])]).check_graph();
        assert_eq!(e, Err(GraphError::SelfReference { node: name("a"), input: name("in-a") }));
        let e = spec(vec![node("a", &["ghost"])]).check_graph();
        assert_eq!(
            e,
            Err(GraphError::UnknownNode {
                node: name("a"),
                input: name("in-ghost"),
                missing: name("ghost")
            })
        );
        // b ↔ c is a cycle; d only waits on it: the error names a node on the cycle.
        let e = spec(vec![
            node("a", &[]),
            node("d", &["c"]),
            node("c", &["b"]),
            node("b", &["c", "a"]),
        ])
        .check_graph();
        assert_eq!(e, Err(GraphError::Cycle { node: name("b") }));
        // A wire may not reuse a blob input's name.
        let mut twice = node("b", &["a"]);
        twice.wires.as_mut_slice()[0].input = name("statement");
        let e = spec(vec![node("a", &[]), twice]).check_graph();
        assert_eq!(
            e,
            Err(GraphError::DuplicateInput { node: name("b"), input: name("statement") })
        );
        // 32 inputs at most, blob inputs and wires together.
        let parents: Vec<String> = (0..JOB_INPUTS_MAX).map(|i| format!("p{i:02}")).collect();
        let refs: Vec<&str> = parents.iter().map(String::as_str).collect();
        let mut nodes: Vec<WorkflowNode> = parents.iter().map(|p| node(p, &[])).collect();
        nodes.push(node("wide", &refs));
        let e = spec(nodes).check_graph();
        assert_eq!(
            e,
            Err(GraphError::TooManyInputs { node: name("wide"), count: 33, max: JOB_INPUTS_MAX })
        );
    }

    #[test]
    fn an_aggregation_tree_of_eight_leaves_is_within_bounds_and_one_too_many_edges_is_not() {
        // 8 leaves, 4 + 2 + 1 joins of fan-in 2.
        let mut nodes: Vec<WorkflowNode> =
            (0..8).map(|i| node(&format!("leaf-{i}"), &[])).collect();
        let mut level: Vec<String> = (0..8).map(|i| format!("leaf-{i}")).collect();
        let mut depth = 0;
        while level.len() > 1 {
            depth += 1;
            let next: Vec<String> =
                (0..level.len() / 2).map(|i| format!("join-{depth}-{i}")).collect();
            for (i, n) in next.iter().enumerate() {
                nodes.push(node(n, &[&level[2 * i], &level[2 * i + 1]]));
            }
            level = next;
        }
        let s = spec(nodes);
        let order = s.check_graph().expect("a tree");
        assert_eq!(order.len(), 15);
        assert_eq!(names(&s, &order).last().map(String::as_str), Some("join-3-0"));
        assert_eq!(s.descendants(0).len(), 3);
        // 64 nodes each reading from 5 earlier ones: 295 wires, over the bound.
        let mut many: Vec<WorkflowNode> = (0..5).map(|i| node(&format!("n{i:02}"), &[])).collect();
        for i in 5..64 {
            let ps: Vec<String> = (1..=5).map(|k| format!("n{:02}", i - k)).collect();
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            many.push(node(&format!("n{i:02}"), &refs));
        }
        let e = spec(many).check_graph();
        assert_eq!(e, Err(GraphError::TooManyEdges { edges: 295, max: WORKFLOW_EDGES_MAX }));
    }
}
