//! `provernet workflow`: graphs of jobs wired output to input, submitted in one transaction
//! and run by the chain (ADR 11).
//!
//! A workflow file is YAML:
//!
//! ```yaml
//! max_fee: 20 credits          # optional: the sum of the nodes' escrows
//! nodes:
//!   - name: seg-0
//!     program: winterfell-chain          # a name or a program id
//!     inputs:
//!       statement: { text: "5 1024" }    # or { file: path/relative/to/this/file }
//!   - name: join
//!     program: winterfell-chain-join
//!     time: 60s                          # default: the program's
//!     resources: { cores: 1, memory: 1GiB, gpus: 0 }   # default: the program's
//!     mechanism: random                  # default: random
//!     redundancy: 1
//!     max_fee: 2 credits                 # default: the chain's quote
//!     inputs:
//!       statement: { text: "5 1024 2" }
//!       seg-0000: { from: seg-0/proof }  # another node's declared output
//! ```

use crate::requester::{
    explain, find_program, follow, hinted, print_json, runtime, submit_signed, upload, upload_path,
    Conn, Pushed,
};
use anyhow::{anyhow, bail, Context, Result};
use provernet_sdk::types::{self, NodeStatus, Workflow, WorkflowStatus};
use provernet_sdk::Client;
use provernet_types::workflow::{Wire, WorkflowNode, WorkflowSpec};
use provernet_types::{
    BlobRef, BoundedVec, Bytes, FileName, GpuCount, JobSpec, MechanismKind, MicroCredits,
    MilliCores, NamedBlob, ProverSet, Resources, Seconds, Transaction, TxBody, WorkflowId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The largest workflow file read.
const FILE_BYTES_MAX: u64 = 1 << 20;

#[derive(clap::Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Submit a workflow file: inputs are uploaded where validators lack them, the whole graph
    /// is checked and escrowed in one transaction, and the chain runs it.
    Submit(SubmitArgs),
    /// A workflow's graph: each node's status, job and prover.
    Status(WorkflowRef),
    /// Follow a workflow until every node is final; exits 1 unless every node verified.
    Watch(WorkflowRef),
    /// Cancel a workflow: nodes not started are skipped, jobs no prover runs yet cancelled.
    Cancel(WorkflowRef),
    /// Write the workflow file of a segmented proof of the built-in winterfell chain: `leaves`
    /// segments and a tree of joins of the given fan-in.
    Tree(TreeArgs),
}

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The workflow file (YAML).
    file: PathBuf,
    /// Wait until every node is final, showing the graph's progress.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct WorkflowRef {
    /// The workflow id.
    workflow: WorkflowId,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct TreeArgs {
    /// Leaf segments.
    #[arg(long, default_value_t = 8)]
    leaves: usize,
    /// Children per join.
    #[arg(long, default_value_t = 2)]
    fan_in: usize,
    /// The chain's start value.
    #[arg(long, default_value_t = 5)]
    start: u128,
    /// Trace rows per segment (a power of two, 8 to 2^24).
    #[arg(long, default_value_t = 1024)]
    rows: u64,
    /// Time limit of each node.
    #[arg(long, default_value = "60s")]
    time: Seconds,
    /// Write the file here instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// A workflow file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The most the whole workflow may escrow (default: the sum of its nodes' escrows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fee: Option<String>,
    pub nodes: Vec<NodeFile>,
}

/// One node of a workflow file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub name: String,
    /// A program name or id.
    pub program: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fee: Option<String>,
}

/// Where an input comes from: exactly one of a file, inline text, or another node's output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `node/output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Resources with units; each defaults to the program's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u16>,
}

/// A value written as a number or a string (`cores: 1.5` or `cores: 500m`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(u64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// Reads and parses a workflow file; YAML errors carry their line and column.
pub fn load(path: &Path) -> Result<FlowFile> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > FILE_BYTES_MAX {
        bail!("{} is {} bytes; a workflow file may be at most 1 MiB", path.display(), meta.len());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a valid workflow file", path.display()))
}

pub fn parse(text: &str) -> Result<FlowFile> {
    serde_saphyr::from_str(text).map_err(|e| anyhow!("{e}"))
}

/// Where a node's blob input's bytes come from (a wire has none: the chain provides it).
enum Source {
    File(PathBuf, BlobRef),
    Text(Vec<u8>, BlobRef),
}

/// A workflow file resolved against the chain: the spec, and the bytes behind its blobs.
pub struct Resolved {
    pub spec: WorkflowSpec,
    sources: Vec<(String, String, Source)>,
}

fn at(node: &str, field: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("node `{node}`, {field}: {e}")
}

fn name_of(node: &str, field: &str, s: &str) -> Result<FileName> {
    s.parse().map_err(|e| at(node, field, e))
}

/// Resolves `flow` (read from `base`, against which file inputs are relative): programs by
/// name, units, defaults from each program and the chain's quote, inputs hashed.
pub async fn resolve(client: &Client, flow: &FlowFile, base: &Path) -> Result<Resolved> {
    if flow.nodes.is_empty() {
        bail!("a workflow needs at least one node (`nodes:` is empty)");
    }
    let api = client.base().to_owned();
    let mut programs: BTreeMap<String, types::Program> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut sources = Vec::new();
    let mut total = MicroCredits(0);
    let mut quotes: BTreeMap<(u32, u64, u16, u64, u8), MicroCredits> = BTreeMap::new();
    for n in &flow.nodes {
        let node = n.name.as_str();
        let name = name_of(node, "name", node)?;
        if !programs.contains_key(&n.program) {
            let p = find_program(client, &n.program)
                .await
                .with_context(|| format!("node `{node}`, program"))?;
            programs.insert(n.program.clone(), p);
        }
        let program = &programs[&n.program];
        let defaults = program.default_resources.resources();
        let r = n.resources.clone().unwrap_or_default();
        let cores = match &r.cores {
            Some(c) => {
                c.to_string().parse::<MilliCores>().map_err(|e| at(node, "resources.cores", e))?
            }
            None => defaults.cores,
        };
        let memory = match &r.memory {
            Some(m) => m.parse::<Bytes>().map_err(|e| at(node, "resources.memory", e))?,
            None => defaults.memory,
        };
        let gpus = r.gpus.map(GpuCount).unwrap_or(defaults.gpus);
        let resources = Resources { cores, memory, gpus };
        resources.check_bounds().map_err(|e| at(node, "resources", e))?;
        let time = match &n.time {
            Some(t) => t.parse::<Seconds>().map_err(|e| at(node, "time", e))?,
            None => program.default_time_limit_s,
        };
        let mechanism = match &n.mechanism {
            Some(m) => m.parse::<MechanismKind>().map_err(|e| at(node, "mechanism", e))?,
            None => MechanismKind::RandomWithFallback,
        };
        let redundancy = n.redundancy.unwrap_or(1);
        // Nodes of one shape share a quote: one request each.
        let shape = (resources.cores.0, resources.memory.0, resources.gpus.0, time.0, redundancy);
        let quote = match quotes.get(&shape) {
            Some(q) => *q,
            None => {
                let q = client
                    .quote_for(&resources, time, redundancy)
                    .await
                    .map_err(|e| explain(e, &api))
                    .with_context(|| format!("node `{node}`, resources/time/redundancy"))?
                    .total_micro_credits;
                quotes.insert(shape, q);
                q
            }
        };
        let max_fee = match &n.max_fee {
            Some(f) => f.parse::<MicroCredits>().map_err(|e| at(node, "max_fee", e))?,
            None => quote,
        };
        let escrow = provernet_ledger::job_escrow(mechanism, max_fee, quote);
        total = total.checked_add(escrow).ok_or_else(|| anyhow!("the fees overflow"))?;
        let mut blobs = Vec::new();
        let mut wires = Vec::new();
        for (input, source) in &n.inputs {
            let field = format!("input `{input}`");
            let input_name = name_of(node, &field, input)?;
            let given = [source.file.is_some(), source.text.is_some(), source.from.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(at(node, &field, "give exactly one of `file`, `text` or `from`"));
            }
            let resolved = if let Some(file) = &source.file {
                let path = base.join(file);
                let blob = provernet_sdk::file_blob(&path)
                    .map_err(|e| at(node, &field, format!("{}: {e}", path.display())))?
                    .0;
                blobs.push(NamedBlob { name: input_name, blob });
                Source::File(path, blob)
            } else if let Some(text) = &source.text {
                let bytes = text.as_bytes().to_vec();
                let blob = provernet_types::tx::blob_ref(&bytes);
                blobs.push(NamedBlob { name: input_name, blob });
                Source::Text(bytes, blob)
            } else {
                let from = source.from.as_deref().unwrap_or_default();
                let Some((src, output)) = from.split_once('/') else {
                    return Err(at(node, &field, format!("`from: {from}` is not `node/output`")));
                };
                wires.push(Wire {
                    input: input_name,
                    node: name_of(node, &field, src)?,
                    output: name_of(node, &field, output)?,
                });
                continue;
            };
            sources.push((node.to_owned(), input.clone(), resolved));
        }
        let count = blobs.len() + wires.len();
        let too_many = || at(node, "inputs", format!("{count} inputs; a job takes at most 32"));
        let custom = n.resources.is_some();
        nodes.push(WorkflowNode {
            name,
            job: JobSpec {
                program: program.id,
                inputs: BoundedVec::try_from_vec(blobs).map_err(|_| too_many())?,
                resources: custom.then_some(resources),
                time_limit: time,
                redundancy,
                prover_set: ProverSet::Any,
                mechanism,
                max_fee,
            },
            wires: BoundedVec::try_from_vec(wires).map_err(|_| too_many())?,
        });
    }
    // Outputs are checked here too, with the names the file uses; the chain checks them again.
    for n in &flow.nodes {
        for (input, source) in &n.inputs {
            let Some((src, output)) = source.from.as_deref().and_then(|f| f.split_once('/')) else {
                continue;
            };
            let Some(from) = flow.nodes.iter().find(|m| m.name == src) else { continue };
            let declared = &programs[&from.program].outputs;
            if !declared.iter().any(|o| o.as_str() == output) {
                let list: Vec<&str> = declared.iter().map(FileName::as_str).collect();
                return Err(at(
                    &n.name,
                    &format!("input `{input}`"),
                    format!(
                        "node `{src}`'s program `{}` does not declare output `{output}` (it declares: {})",
                        from.program,
                        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
                    ),
                ));
            }
        }
    }
    let max_fee = match &flow.max_fee {
        Some(f) => f.parse::<MicroCredits>().map_err(|e| anyhow!("max_fee: {e}"))?,
        None => total,
    };
    let spec = WorkflowSpec {
        nodes: BoundedVec::try_from_vec(nodes).map_err(|_| {
            anyhow!(
                "{} nodes; a workflow has at most {}",
                flow.nodes.len(),
                provernet_types::workflow::WORKFLOW_NODES_MAX
            )
        })?,
        max_fee,
    };
    spec.check_graph().map_err(|e| anyhow!("{e}"))?;
    Ok(Resolved { spec, sources })
}

/// Checks the workflow against the chain's rules, uploads the inputs validators lack, and
/// submits it; its id once applied.
pub async fn submit_resolved(
    client: &Client,
    key: &provernet_types::Keypair,
    chain_id: &str,
    resolved: Resolved,
    quiet: bool,
) -> Result<WorkflowId> {
    let api = client.base().to_owned();
    let nonce = client.next_nonce(&key.account()).await.map_err(|e| explain(e, &api))?;
    let body = TxBody::SubmitWorkflow(resolved.spec);
    let signed = Transaction { signer: key.account(), nonce, body }.sign(key, chain_id);
    let size = provernet_types::Encode::encode(&signed).len();
    if size > provernet_types::limits::TX_BYTES_MAX {
        bail!(
            "the workflow's transaction is {size} bytes, above the {} a transaction may take: use fewer nodes or inputs",
            provernet_types::limits::TX_BYTES_MAX
        );
    }
    // The chain's own rules before a byte is uploaded: wiring, programs, outputs, fees.
    let check = client.check(&signed).await.map_err(|e| explain(e, &api))?;
    let missing: Vec<_> = check.missing_blobs.iter().map(|b| b.hash).collect();
    let mut sent = std::collections::BTreeSet::new();
    for (node, input, source) in resolved.sources {
        let what = format!("node {node}'s input {input}");
        match source {
            Source::File(path, blob) if missing.contains(&blob.hash) && sent.insert(blob.hash) => {
                let got = upload_path(client, key, chain_id, &what, &path, quiet).await?;
                if got != blob {
                    bail!("{} changed while it was being submitted; submit again", path.display());
                }
            }
            Source::Text(bytes, blob) if missing.contains(&blob.hash) && sent.insert(blob.hash) => {
                upload(client, key, chain_id, &what, bytes, true).await?;
            }
            Source::File(..) | Source::Text(..) => {}
        }
    }
    submit_signed(client, &signed, &api).await?;
    Ok(provernet_types::workflow::workflow_id(&key.account(), nonce))
}

pub fn run(cmd: WorkflowCommand) -> Result<()> {
    if let WorkflowCommand::Tree(a) = cmd {
        return tree_cmd(a);
    }
    let rt = runtime()?;
    match cmd {
        WorkflowCommand::Submit(a) => rt.block_on(submit(a)),
        WorkflowCommand::Status(a) => rt.block_on(async {
            let client = a.conn.client()?;
            let w = get(&client, &a.workflow).await?;
            if a.conn.json {
                return print_json(&w);
            }
            print!("{}", render(&client, &w).await);
            Ok(())
        }),
        WorkflowCommand::Watch(a) => rt.block_on(async {
            let client = a.conn.client()?;
            let w = watch(&client, &a.workflow, &a.conn).await?;
            finish(&client, &w, &a.conn).await
        }),
        WorkflowCommand::Cancel(a) => rt.block_on(async {
            let key = a.conn.keypair()?;
            let client = a.conn.client()?;
            let chain_id = client.status().await.map_err(|e| explain(e, &a.conn.api))?.chain_id;
            let body = TxBody::CancelWorkflow { workflow: a.workflow };
            crate::requester::transact(&client, &key, &chain_id, body).await?;
            let w = get(&client, &a.workflow).await?;
            if a.conn.json {
                return print_json(&w);
            }
            print!("{}", render(&client, &w).await);
            Ok(())
        }),
        WorkflowCommand::Tree(_) => unreachable!("handled above"),
    }
}

async fn submit(a: SubmitArgs) -> Result<()> {
    let flow = load(&a.file)?;
    let key = a.conn.keypair()?;
    let client = a.conn.client()?;
    let chain_id = client.status().await.map_err(|e| explain(e, &a.conn.api))?.chain_id;
    let base = a.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolved = resolve(&client, &flow, &base).await?;
    let max_fee = resolved.spec.max_fee;
    let nodes: Vec<FileName> = resolved.spec.nodes.iter().map(|n| n.name.clone()).collect();
    let id = submit_resolved(&client, &key, &chain_id, resolved, a.conn.json).await?;
    a.conn.say(format!("submitted workflow {id} ({} nodes, for up to {max_fee})", nodes.len()));
    if a.wait {
        let w = watch(&client, &id, &a.conn).await?;
        return finish(&client, &w, &a.conn).await;
    }
    if a.conn.json {
        let jobs: BTreeMap<&str, String> = nodes
            .iter()
            .map(|n| (n.as_str(), provernet_types::workflow::node_job_id(&id, n).to_string()))
            .collect();
        print_json(&json!({
            "workflow": id.to_string(),
            "max_fee_micro_credits": max_fee.0,
            "jobs": jobs,
        }))
    } else {
        println!("{id}");
        Ok(())
    }
}

async fn get(client: &Client, id: &WorkflowId) -> Result<Workflow> {
    client.workflow(id).await.map_err(|e| explain(e, client.base()))?.ok_or_else(|| {
        hinted(format!("there is no workflow {id}"), "`provernet workflow submit` prints the id")
    })
}

/// Follows a workflow's event stream until every node is final, printing each node's change
/// (polling while the stream is down); the final view.
pub async fn watch(client: &Client, id: &WorkflowId, conn: &Conn) -> Result<Workflow> {
    use futures::StreamExt;
    use provernet_sdk::WorkflowStreamItem;
    let started = Instant::now();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let show = |w: &Workflow| {
        for n in &w.nodes {
            let line = node_state(n);
            if seen.get(n.name.as_str()) != Some(&line) {
                conn.say(format!(
                    "[{:>6.1}s] {:<16} {line}",
                    started.elapsed().as_secs_f64(),
                    n.name.as_str()
                ));
                seen.insert(n.name.to_string(), line);
            }
        }
    };
    let open = async || {
        let stream = client.workflow_events(id).await?;
        Ok(stream.map(|item| match item {
            Ok(WorkflowStreamItem::Workflow(w)) => Pushed::View(*w),
            Ok(WorkflowStreamItem::Events(_)) => Pushed::Changed,
            Err(e) => Pushed::Broken(e),
        }))
    };
    let read = async || client.workflow(id).await;
    let what = format!("workflow {id}");
    follow(open, read, show, |w: &Workflow| w.is_final, &what, client.base()).await
}

fn node_state(n: &types::WorkflowNode) -> String {
    match (n.status, n.job_status, &n.skipped_because) {
        (NodeStatus::Waiting, _, _) => "waiting".to_owned(),
        (NodeStatus::Skipped, _, Some(cause)) => format!("skipped ({cause} did not verify)"),
        (NodeStatus::Skipped, _, None) => "skipped (cancelled)".to_owned(),
        (_, Some(s), _) => s.to_string(),
        (_, None, _) => "job".to_owned(),
    }
}

async fn finish(client: &Client, w: &Workflow, conn: &Conn) -> Result<()> {
    if conn.json {
        print_json(w)?;
    } else {
        print!("{}", render(client, w).await);
    }
    if w.status != WorkflowStatus::Verified {
        // Which node failed, and how its job ended.
        let why = w.failed_node.as_ref().map(|name| {
            let ended = w
                .nodes
                .iter()
                .find(|n| &n.name == name)
                .and_then(|n| n.job_status)
                .map_or("did not verify".to_owned(), |s| format!("ended {s}"));
            format!(": node `{name}` {ended}")
        });
        bail!("workflow {} ended {}{}", w.id, w.status.name(), why.unwrap_or_default());
    }
    Ok(())
}

/// The workflow as a tree: each node that nothing reads from is a root, each node's children
/// are the nodes it reads from (a node read twice is shown once, then named).
pub async fn render(client: &Client, w: &Workflow) -> String {
    let mut jobs: BTreeMap<&str, Option<types::Job>> = BTreeMap::new();
    for n in &w.nodes {
        let job = if n.status == NodeStatus::Waiting || n.status == NodeStatus::Skipped {
            None
        } else {
            client.job(&n.job).await.ok().flatten()
        };
        jobs.insert(n.name.as_str(), job);
    }
    let mut out = format!(
        "workflow {}  {}  {} nodes, escrow held {}\n",
        w.id,
        w.status.name(),
        w.nodes.len(),
        w.escrow_micro_credits
    );
    let read: std::collections::BTreeSet<&str> =
        w.nodes.iter().flat_map(|n| n.wires.iter().map(|x| x.node.as_str())).collect();
    let mut shown = std::collections::BTreeSet::new();
    for root in w.nodes.iter().filter(|n| !read.contains(n.name.as_str())) {
        draw(w, &jobs, root, "", "", &mut shown, &mut out);
    }
    out
}

fn draw<'a>(
    w: &'a Workflow,
    jobs: &BTreeMap<&str, Option<types::Job>>,
    n: &'a types::WorkflowNode,
    lead: &str,
    rest: &str,
    shown: &mut std::collections::BTreeSet<&'a str>,
    out: &mut String,
) {
    let label = format!("{lead}{}", n.name);
    let mut line = format!("{label:<28} {:<22}", node_state(n));
    if let Some(Some(j)) = jobs.get(n.name.as_str()) {
        line.push_str(&format!(" job {}", j.id.short()));
        if let Some(a) = j.winner.and_then(|i| j.attempts.get(usize::from(i))) {
            line.push_str(&format!(
                "  prover {}  {:.1} s",
                a.prover.short(),
                a.usage.wall_ms as f64 / 1000.0
            ));
        }
    }
    if !shown.insert(n.name.as_str()) {
        out.push_str(&format!("{label:<28} (shown above)\n"));
        return;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    let mut sources: Vec<&str> = n.wires.iter().map(|x| x.node.as_str()).collect();
    sources.dedup();
    for (i, s) in sources.iter().enumerate() {
        let Some(child) = w.nodes.iter().find(|m| m.name.as_str() == *s) else { continue };
        let last = i + 1 == sources.len();
        let (l, r) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
        draw(w, jobs, child, &format!("{rest}{l}"), &format!("{rest}{r}"), shown, out);
    }
}

/// The workflow file of a segmented proof of the winterfell chain `x ← x³ + 42` from `start`:
/// `leaves` segments of `rows` trace rows each (each covers `rows - 1` steps), joined by a
/// tree of `winterfell-chain-join` nodes, `fan_in` children each (a lone child is carried up a
/// level). Leaves are `leaf-NN`, joins `join-L-NN` by level; the last node is the root.
pub fn segmented_tree(
    start: u128,
    rows: u64,
    leaves: usize,
    fan_in: usize,
    time: Seconds,
) -> Result<FlowFile> {
    if !(2..=32).contains(&leaves) {
        bail!("--leaves must be 2 to 32");
    }
    if !(2..=16).contains(&fan_in) {
        bail!("--fan-in must be 2 to 16");
    }
    winterfell_chain::Statement::parse(&format!("{start} {rows}")).map_err(|e| anyhow!("{e}"))?;
    let time = Some(format!("{}s", time.0));
    let mut nodes = Vec::new();
    // (node name, its first leaf's start, leaves under it, whether it is a leaf)
    let mut level: Vec<(String, u128, usize, bool)> = Vec::new();
    let mut at = start;
    for i in 0..leaves {
        let name = format!("leaf-{i:02}");
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "statement".to_owned(),
            InputFile { text: Some(format!("{at} {rows}")), ..Default::default() },
        );
        nodes.push(NodeFile {
            name: name.clone(),
            program: "winterfell-chain".into(),
            inputs,
            time: time.clone(),
            ..Default::default()
        });
        level.push((name, at, 1, true));
        at = winterfell_chain::run_chain(at, rows);
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let mut next = Vec::new();
        for (i, group) in level.chunks(fan_in).enumerate() {
            if group.len() == 1 {
                next.push(group[0].clone());
                continue;
            }
            let name = format!("join-{depth}-{i:02}");
            let below: usize = group.iter().map(|g| g.2).sum();
            let mut inputs = BTreeMap::new();
            inputs.insert(
                "statement".to_owned(),
                InputFile {
                    text: Some(format!("{} {rows} {below}", group[0].1)),
                    ..Default::default()
                },
            );
            for (k, (child, _, _, leaf)) in group.iter().enumerate() {
                let input = if *leaf { format!("seg-{k:04}") } else { format!("part-{k:04}") };
                inputs.insert(
                    input,
                    InputFile { from: Some(format!("{child}/proof")), ..Default::default() },
                );
            }
            nodes.push(NodeFile {
                name: name.clone(),
                program: "winterfell-chain-join".into(),
                inputs,
                time: time.clone(),
                ..Default::default()
            });
            next.push((name, group[0].1, below, false));
        }
        level = next;
    }
    Ok(FlowFile { max_fee: None, nodes })
}

fn tree_cmd(a: TreeArgs) -> Result<()> {
    let flow = segmented_tree(a.start, a.rows, a.leaves, a.fan_in, a.time)?;
    let yaml = serde_saphyr::to_string(&flow).map_err(|e| anyhow!("{e}"))?;
    let text = format!(
        "# A segmented proof of the winterfell chain from {}: {} leaves of {} rows, joins of fan-in {}.\n# provernet workflow submit FILE\n{yaml}",
        a.start, a.leaves, a.rows, a.fan_in
    );
    match &a.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_eight_leaves_has_four_two_and_one_joins_and_round_trips_through_yaml() {
        let flow = segmented_tree(5, 64, 8, 2, Seconds(60)).expect("a tree");
        let joins: Vec<&str> = flow
            .nodes
            .iter()
            .filter(|n| n.name.starts_with("join"))
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(joins.len(), 7, "{joins:?}");
        assert_eq!(flow.nodes.len(), 15);
        assert_eq!(flow.nodes.last().map(|n| n.name.as_str()), Some("join-3-00"));
        let root = flow.nodes.last().expect("a root");
        assert_eq!(root.inputs["statement"].text.as_deref(), Some("5 64 8"));
        assert_eq!(root.inputs["part-0001"].from.as_deref(), Some("join-2-01/proof"));
        let yaml = serde_saphyr::to_string(&flow).expect("serializes");
        assert_eq!(parse(&yaml).expect("parses back"), flow);
        // Five leaves, fan-in 2: the odd one is carried up.
        let odd = segmented_tree(5, 64, 5, 2, Seconds(60)).expect("a tree");
        let root = odd.nodes.last().expect("a root");
        assert_eq!(root.inputs["statement"].text.as_deref(), Some("5 64 5"));
        assert_eq!(odd.nodes.iter().filter(|n| n.name.starts_with("join")).count(), 4);
    }

    #[test]
    fn bad_files_are_refused_naming_the_line_or_the_field() {
        let e = parse("nodes:\n  - name: a\n    program: p\n    colour: red\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse("nodes: [").unwrap_err();
        assert!(e.to_string().contains("line 1"), "an error names its line: {e}");
        let e = parse("nodes:\n  - name: a\n    name: b\n    program: p\n").unwrap_err();
        assert!(e.to_string().contains("name"), "duplicate keys are refused: {e}");
        let ok = parse(
            "max_fee: 3 credits\nnodes:\n  - name: a\n    program: p\n    resources: { cores: 1.5, memory: 1GiB }\n    inputs:\n      x: { from: b/proof }\n",
        )
        .expect("a valid file");
        assert_eq!(
            ok.nodes[0].resources.as_ref().and_then(|r| r.cores.clone()).map(|c| c.to_string()),
            Some("1.5".into())
        );
        assert!(segmented_tree(5, 64, 1, 2, Seconds(60)).is_err());
        assert!(segmented_tree(5, 63, 4, 2, Seconds(60)).is_err(), "rows must be a power of two");
    }
}
