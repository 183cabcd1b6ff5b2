//! Workflows (issue 17, ADR 11): a bounded graph of job specs, named, in which an input may be
//! another node's proof file instead of a blob. This module holds the graph and its wiring
//! rules, which need nothing but the graph itself: names unique, references resolving to
//! declared nodes and never to the node itself, no cycle, a bounded number of references.
//! What needs the chain's state (programs, their declared outputs, quotes, escrow) is the
//! ledger's to check. Not yet wired into a transaction.

use crate::codec::{BoundedVec, CodecError, Decode, Encode, Reader};
use crate::codec_struct;
use crate::ids::ProgramId;
use crate::limits::JOB_INPUTS_MAX;
use crate::resources::{BlobRef, FileName, ProverSet, Resources};
use crate::tx::MechanismKind;
use crate::units::{MicroCredits, Seconds};
use std::collections::BTreeMap;

/// Most nodes in one workflow.
pub const WORKFLOW_NODES_MAX: usize = 64;
/// Most references from one node's inputs to other nodes' outputs, in all.
pub const WORKFLOW_EDGES_MAX: usize = 256;

/// Where a node's input comes from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InputSource {
    /// A blob, as a job's input.
    Blob(BlobRef),
    /// The proof file `output` of node `node`, once that node's job is Verified.
    From { node: FileName, output: FileName },
}

impl Encode for InputSource {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            InputSource::Blob(b) => {
                out.push(0);
                b.encode_to(out);
            }
            InputSource::From { node, output } => {
                out.push(1);
                node.encode_to(out);
                output.encode_to(out);
            }
        }
    }
}

impl Decode for InputSource {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("input source")? {
            0 => Ok(InputSource::Blob(Decode::decode_from(r)?)),
            1 => Ok(InputSource::From {
                node: Decode::decode_from(r)?,
                output: Decode::decode_from(r)?,
            }),
            tag => Err(CodecError::InvalidTag { what: "input source", tag }),
        }
    }
}

/// One named input of a node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowInput {
    pub name: FileName,
    pub source: InputSource,
}
codec_struct!(WorkflowInput { name, source });

/// One node: a job spec whose inputs may come from other nodes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowNode {
    pub name: FileName,
    pub program: ProgramId,
    pub inputs: BoundedVec<WorkflowInput, JOB_INPUTS_MAX>,
    /// `None` takes the program's default resources.
    pub resources: Option<Resources>,
    pub time_limit: Seconds,
    pub redundancy: u8,
    pub prover_set: ProverSet,
    pub mechanism: MechanismKind,
    /// The most this node's job may cost; must cover its quote.
    pub max_fee: MicroCredits,
}
codec_struct!(WorkflowNode {
    name,
    program,
    inputs,
    resources,
    time_limit,
    redundancy,
    prover_set,
    mechanism,
    max_fee
});

/// A workflow as submitted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowSpec {
    pub nodes: BoundedVec<WorkflowNode, WORKFLOW_NODES_MAX>,
}
codec_struct!(WorkflowSpec { nodes });

/// Why a workflow's wiring is refused; each names the node (and input) at fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum GraphError {
    #[error("a workflow needs at least one node")]
    Empty,
    #[error("node `{0}` is declared twice")]
    DuplicateNode(FileName),
    #[error("node `{node}` declares input `{input}` twice")]
    DuplicateInput { node: FileName, input: FileName },
    #[error("node `{node}`'s input `{input}` reads from the node itself")]
    SelfReference { node: FileName, input: FileName },
    #[error("node `{node}`'s input `{input}` reads from `{missing}`, which is not a node of this workflow")]
    UnknownNode { node: FileName, input: FileName, missing: FileName },
    #[error("node `{node}` is on a cycle: a node cannot wait, directly or not, for itself")]
    Cycle { node: FileName },
    #[error("the workflow has {edges} references between nodes, more than the {max} allowed")]
    TooManyEdges { edges: usize, max: usize },
}

impl WorkflowSpec {
    /// The nodes that `node` reads from (by index, each once, in order).
    pub fn parents(&self, node: usize) -> Vec<usize> {
        let index: BTreeMap<&FileName, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (&n.name, i)).collect();
        let mut out: Vec<usize> = self.nodes[node]
            .inputs
            .iter()
            .filter_map(|i| match &i.source {
                InputSource::From { node, .. } => index.get(node).copied(),
                InputSource::Blob(_) => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
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
            if let Some(dup) = crate::first_duplicate(n.inputs.iter().map(|i| &i.name)) {
                return Err(GraphError::DuplicateInput {
                    node: n.name.clone(),
                    input: dup.clone(),
                });
            }
            for i in n.inputs.iter() {
                let InputSource::From { node, .. } = &i.source else { continue };
                edges += 1;
                if node == &n.name {
                    return Err(GraphError::SelfReference {
                        node: n.name.clone(),
                        input: i.name.clone(),
                    });
                }
                if !index.contains_key(node) {
                    return Err(GraphError::UnknownNode {
                        node: n.name.clone(),
                        input: i.name.clone(),
                        missing: node.clone(),
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
                .filter(|&i| self.reaches(&parents, i, i))
                .min_by(|a, b| self.nodes[*a].name.cmp(&self.nodes[*b].name))
                .unwrap_or(left[0]);
            return Err(GraphError::Cycle { node: self.nodes[on_cycle].name.clone() });
        }
        Ok(order)
    }

    /// Whether following `from`'s parents leads back to `target`.
    fn reaches(&self, parents: &[Vec<usize>], from: usize, target: usize) -> bool {
        let mut seen = vec![false; self.nodes.len()];
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_exact;

    fn name(s: &str) -> FileName {
        s.parse().expect("a name")
    }

    fn node(n: &str, from: &[&str]) -> WorkflowNode {
        let mut inputs: Vec<WorkflowInput> = from
            .iter()
            .map(|p| WorkflowInput {
                name: name(&format!("in-{p}")),
                source: InputSource::From { node: name(p), output: name("proof") },
            })
            .collect();
        inputs.push(WorkflowInput {
            name: name("statement"),
            source: InputSource::Blob(BlobRef {
                hash: crate::BlobHash([7; 32]),
                size: crate::Bytes(10),
            }),
        });
        WorkflowNode {
            name: name(n),
            program: ProgramId([1; 32]),
            inputs: BoundedVec::try_from_vec(inputs).expect("inputs"),
            resources: None,
            time_limit: Seconds(60),
            redundancy: 1,
            prover_set: ProverSet::Any,
            mechanism: MechanismKind::RandomWithFallback,
            max_fee: MicroCredits(1_000),
        }
    }

    fn spec(nodes: Vec<WorkflowNode>) -> WorkflowSpec {
        WorkflowSpec { nodes: BoundedVec::try_from_vec(nodes).expect("nodes") }
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
        let bytes = s.encode();
        assert_eq!(decode_exact::<WorkflowSpec>(&bytes, "workflow").expect("decodes"), s);
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
        let mut twice = node("a", &[]);
        twice.inputs =
            BoundedVec::try_from_vec(vec![twice.inputs[0].clone(), twice.inputs[0].clone()])
                .expect("inputs");
        let e = spec(vec![twice]).check_graph();
        assert_eq!(
            e,
            Err(GraphError::DuplicateInput { node: name("a"), input: name("statement") })
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
        // 64 nodes each reading from 5 earlier ones: 300 references, over the bound.
        let mut many = vec![
            node("n00", &[]),
            node("n01", &[]),
            node("n02", &[]),
            node("n03", &[]),
            node("n04", &[]),
        ];
        for i in 5..64 {
            let ps: Vec<String> = (1..=5).map(|k| format!("n{:02}", i - k)).collect();
            let refs: Vec<&str> = ps.iter().map(String::as_str).collect();
            many.push(node(&format!("n{i:02}"), &refs));
        }
        let e = spec(many).check_graph();
        assert_eq!(e, Err(GraphError::TooManyEdges { edges: 295, max: WORKFLOW_EDGES_MAX }));
    }
}
