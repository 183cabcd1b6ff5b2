//! `provernet bench workflow`: one long computation proven as one job on one node, against the
//! same computation cut into `k` segments proven in parallel and joined by a binary tree, run
//! by the chain as a workflow over `k` nodes.
//!
//! The computation is the built-in winterfell chain over `--rows` trace rows in all: one job of
//! `rows` rows, or `k` leaves of `rows / k` rows each (the same steps, less `k - 1`). Every run
//! is on the same local network of real processes (`--provers` nodes of `--node-cores` each,
//! `--validators` validators), one run at a time. For each run the report gives the wall time
//! from submission to the final Verified (this client polls every 100 ms), the speed-up over the
//! single job, and where the time went, from the chain's own heights and block timestamps:
//! - `leaves_s`: submission to the last leaf Verified; `joins_s`: from then to the root;
//! - per node (averaged over leaves and over joins): `queue_s` (the node became a job until its
//!   prover was assigned: block waits and the draw delay), `run_s` (assigned until its proof
//!   was revealed, less the prover's own run: accept, input transfers, sandbox, commit-reveal),
//!   `prove_s` (the prover's run in the sandbox, as the node measured it), `verify_s` (revealed
//!   until Verified: the committee's or validators' votes);
//! - `critical_prove_s`: the longest leaf's proving plus each join level's longest join.

use crate::devnet::{start_deployed, LocalSpec, PROGRAMS};
use crate::workflow_cmd::{resolve, segmented_tree, submit_resolved};
use anyhow::{anyhow, bail, Result};
use provernet_sdk::types::{Job, JobStatus, WorkflowStatus};
use provernet_sdk::Client;
use provernet_types::{
    BoundedVec, Bytes, FileName, GpuCount, JobId, JobSpec, MechanismKind, MilliCores, NamedBlob,
    ProverSet, Resources, Seconds, TxBody,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct WorkflowArgs {
    /// Trace rows of the whole computation (a power of two).
    #[arg(long, default_value_t = 1 << 20)]
    rows: u64,
    /// Segment counts to compare with the single job (each a power of two, at most --provers).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    k: Vec<usize>,
    /// Validators.
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Prover nodes.
    #[arg(long, default_value_t = 8)]
    provers: usize,
    /// Cores each node offers; every job asks for one.
    #[arg(long, default_value = "1")]
    node_cores: String,
    /// Memory each node offers: enough for the single job (winterfell needs about 3.4 KiB a
    /// row; each leaf or job asks for 4 KiB a row and 512 MiB more, at least 1 GiB).
    #[arg(long, default_value = "6GiB")]
    node_memory: String,
    /// Time limit of each job.
    #[arg(long, default_value = "900s")]
    time: Seconds,
    /// Where the network keeps its state (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 18580)]
    api_port: u16,
    #[arg(long, default_value_t = 18590)]
    p2p_port: u16,
    /// Where the built-in programs' executables are (default: next to this binary).
    #[arg(long)]
    programs_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Averages over a set of nodes' jobs, in seconds.
#[derive(Serialize, Default, Clone, Copy)]
struct Phases {
    queue_s: f64,
    run_s: f64,
    prove_s: f64,
    verify_s: f64,
}

#[derive(Serialize)]
struct Run {
    /// 1 for the single job.
    k: usize,
    rows_per_leaf: u64,
    jobs: usize,
    total_s: f64,
    speedup: f64,
    /// `speedup / k`: 1 is perfect, the goal is at least 0.8 where the cores allow.
    efficiency: f64,
    leaves_s: f64,
    joins_s: f64,
    join_levels: usize,
    critical_prove_s: f64,
    /// The total less the proving on the critical path: what the network added.
    overhead_s: f64,
    leaves: Phases,
    joins: Phases,
    /// Distinct provers that ran a winning attempt.
    provers_used: usize,
    /// The final proof's size: the single job's proof, or the root join's composite receipt
    /// (every leaf's proof: the join is not succinct).
    proof_bytes: u64,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    command: String,
    block_time_ms: u64,
    validators: usize,
    provers: usize,
    node_cores: String,
    node_memory: String,
    rows: u64,
    runs: Vec<Run>,
}

fn say(a: &WorkflowArgs, line: impl AsRef<str>) {
    if !a.json {
        eprintln!("{}", line.as_ref());
    }
}

/// Block timestamps by height, read once each.
struct Clock {
    client: Client,
    times: BTreeMap<u64, u64>,
}

impl Clock {
    async fn at(&mut self, h: u64) -> Result<f64> {
        if let Some(t) = self.times.get(&h) {
            return Ok(*t as f64 / 1000.0);
        }
        let b = self.client.block(h).await?.ok_or_else(|| anyhow!("no block {h}"))?;
        self.times.insert(h, b.time_ms);
        Ok(b.time_ms as f64 / 1000.0)
    }

    /// A verified job's phases (see the module docs).
    async fn phases(&mut self, j: &Job) -> Result<Phases> {
        let w = j
            .winner
            .and_then(|i| j.attempts.get(usize::from(i)))
            .ok_or_else(|| anyhow!("verified job {} has no winner", j.id))?;
        let submitted = self.at(j.submitted_at.0).await?;
        let assigned = self.at(w.assigned_at.0).await?;
        let revealed = self.at(w.reported_at.map_or(w.assigned_at.0, |h| h.0)).await?;
        let done = self.at(j.finished_at.map_or(j.submitted_at.0, |h| h.0)).await?;
        let prove = w.usage.wall_ms as f64 / 1000.0;
        Ok(Phases {
            queue_s: assigned - submitted,
            run_s: (revealed - assigned - prove).max(0.0),
            prove_s: prove,
            verify_s: done - revealed,
        })
    }
}

/// What a job proving `rows` rows of the chain asks for: 4 KiB a row and 512 MiB, at least
/// 1 GiB (winterfell's prover peaks at about 3.4 KiB a row).
fn job_memory(rows: u64) -> Bytes {
    Bytes((rows.saturating_mul(4096) + (512 << 20)).max(1 << 30))
}

/// The size of a verified job's deciding proof.
fn proof_size(j: &Job) -> u64 {
    j.winner
        .and_then(|i| j.attempts.get(usize::from(i)))
        .map_or(0, |a| a.proof.iter().map(|f| f.size.0).sum())
}

fn mean(v: &[Phases]) -> Phases {
    let n = v.len().max(1) as f64;
    let sum = |f: fn(&Phases) -> f64| v.iter().map(f).sum::<f64>() / n;
    Phases {
        queue_s: sum(|p| p.queue_s),
        run_s: sum(|p| p.run_s),
        prove_s: sum(|p| p.prove_s),
        verify_s: sum(|p| p.verify_s),
    }
}

pub fn run(a: WorkflowArgs) -> Result<()> {
    if !a.rows.is_power_of_two() {
        bail!("--rows must be a power of two");
    }
    for &k in &a.k {
        if !k.is_power_of_two() || k < 2 || k > a.provers || a.rows / (k as u64) < 8 {
            bail!("--k {k}: each k must be a power of two from 2 to --provers, with rows / k ≥ 8");
        }
    }
    let programs_dir = crate::devnet::programs_dir(a.programs_dir.as_deref())?;
    let tmp = tempfile::tempdir()?;
    let dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().join("net"));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let spec = LocalSpec {
            dir,
            validators: a.validators,
            provers: a.provers,
            api_port: a.api_port,
            p2p_port: a.p2p_port,
            node_cores: a.node_cores.clone(),
            node_memory: a.node_memory.clone(),
            quiet: a.json,
        };
        let (mut local, status, ids) = start_deployed(&spec, &programs_dir).await?;
        let client = local.client.clone();
        let chain_id = status.chain_id.clone();
        let chain_program = PROGRAMS
            .iter()
            .position(|p| p.name == "winterfell-chain")
            .map(|i| ids[i])
            .ok_or_else(|| anyhow!("no built-in winterfell-chain"))?;
        let resources = Resources { cores: MilliCores(1000), memory: job_memory(a.rows), gpus: GpuCount(0) };
        let mut clock = Clock { client: client.clone(), times: BTreeMap::new() };
        let start_value: u128 = 5;
        let mut runs = Vec::new();

        // The single job.
        say(&a, format!("one job of {} rows on one node", a.rows));
        let statement = format!("{start_value} {}", a.rows).into_bytes();
        let blob = client.upload(&local.faucet, &chain_id, statement).await?;
        let spec = JobSpec {
            program: chain_program,
            inputs: BoundedVec::try_from_vec(vec![NamedBlob {
                name: "statement".parse().map_err(|e| anyhow!("{e}"))?,
                blob,
            }])
            .map_err(|_| anyhow!("one input"))?,
            resources: Some(resources),
            time_limit: a.time,
            redundancy: 1,
            prover_set: ProverSet::Any,
            mechanism: MechanismKind::RandomWithFallback,
            max_fee: provernet_types::MicroCredits(1_000 * provernet_types::MicroCredits::PER_CREDIT),
        };
        let t0 = Instant::now();
        let nonce = crate::requester::transact(&client, &local.faucet, &chain_id, TxBody::SubmitJob(spec)).await?;
        let id = provernet_types::tx::job_id(&local.faucet.account(), provernet_types::Nonce(nonce));
        let single = loop {
            if let Some(j) = client.job(&id).await? {
                if j.is_final {
                    break j;
                }
            }
            local.children.check(&local.logs)?;
            if t0.elapsed() > Duration::from_secs(3600) {
                bail!("the single job was not final after an hour");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let single_s = t0.elapsed().as_secs_f64();
        if single.status != JobStatus::Verified {
            let why: Vec<String> =
                single.attempts.iter().filter_map(|x| x.failure.clone()).collect();
            bail!(
                "the single job ended {} ({}); give the nodes more memory (--node-memory) or fewer rows",
                single.status,
                why.join(", ")
            );
        }
        let p = clock.phases(&single).await?;
        say(&a, format!("  {single_s:.1} s ({:.1} s proving)", p.prove_s));
        runs.push(Run {
            k: 1,
            rows_per_leaf: a.rows,
            jobs: 1,
            total_s: single_s,
            speedup: 1.0,
            efficiency: 1.0,
            leaves_s: single_s,
            joins_s: 0.0,
            join_levels: 0,
            critical_prove_s: p.prove_s,
            overhead_s: single_s - p.prove_s,
            leaves: p,
            joins: Phases::default(),
            provers_used: 1,
            proof_bytes: proof_size(&single),
        });

        for &k in &a.k {
            let rows = a.rows / k as u64;
            say(&a, format!("{k} segments of {rows} rows and a binary tree of joins, as a workflow"));
            let mut flow = segmented_tree(start_value, rows, k, 2, a.time)?;
            // One core each, and memory by the rows a leaf proves (a join only checks).
            for n in &mut flow.nodes {
                let memory = if n.name.starts_with("leaf") { job_memory(rows) } else { Bytes::gib(1) };
                n.resources = Some(crate::workflow_cmd::ResourcesFile {
                    cores: Some(crate::workflow_cmd::Scalar::Int(1)),
                    memory: Some(format!("{}B", memory.0)),
                    gpus: Some(0),
                });
            }
            let resolved = resolve(&client, &flow, std::path::Path::new(".")).await?;
            let names: Vec<FileName> = resolved.spec.nodes.iter().map(|n| n.name.clone()).collect();
            let t0 = Instant::now();
            let wid = submit_resolved(&client, &local.faucet, &chain_id, resolved, true).await?;
            let w = loop {
                if let Some(w) = client.workflow(&wid).await? {
                    if w.is_final {
                        break w;
                    }
                }
                local.children.check(&local.logs)?;
                if t0.elapsed() > Duration::from_secs(3600) {
                    bail!("workflow {wid} was not final after an hour");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let total_s = t0.elapsed().as_secs_f64();
            if w.status != WorkflowStatus::Verified {
                bail!("workflow {wid} ended {}; see {}", w.status.name(), local.logs.display());
            }
            let mut leaves = Vec::new();
            let mut joins: BTreeMap<usize, Vec<(Phases, Job)>> = BTreeMap::new();
            let mut provers = std::collections::BTreeSet::new();
            let mut last_leaf = 0u64;
            let mut root_done = 0u64;
            let mut root_bytes = 0u64;
            for n in &names {
                let job_id: JobId = provernet_types::workflow::node_job_id(&wid, n);
                let j = client.job(&job_id).await?.ok_or_else(|| anyhow!("node {n} has no job"))?;
                let ph = clock.phases(&j).await?;
                if let Some(wn) = j.winner.and_then(|i| j.attempts.get(usize::from(i))) {
                    provers.insert(wn.prover);
                }
                let finished = j.finished_at.map_or(0, |h| h.0);
                if n.as_str().starts_with("leaf") {
                    last_leaf = last_leaf.max(finished);
                    leaves.push(ph);
                } else {
                    // `join-L-NN`: its level.
                    let level = n.as_str().split('-').nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
                    if finished >= root_done {
                        root_done = finished;
                        root_bytes = proof_size(&j);
                    }
                    joins.entry(level).or_default().push((ph, j));
                }
            }
            let first_submit = clock.at(w.submitted_at.0).await?;
            let leaves_s = clock.at(last_leaf).await? - first_submit;
            let joins_s = clock.at(root_done).await? - clock.at(last_leaf).await?;
            let longest = |v: &[Phases]| v.iter().map(|p| p.prove_s).fold(0.0, f64::max);
            let mut critical = longest(&leaves);
            let mut join_phases = Vec::new();
            for level in joins.values() {
                let ph: Vec<Phases> = level.iter().map(|(p, _)| *p).collect();
                critical += longest(&ph);
                join_phases.extend(ph);
            }
            let speedup = single_s / total_s;
            say(
                &a,
                format!(
                    "  {total_s:.1} s: speed-up {speedup:.2} (efficiency {:.2}); leaves {leaves_s:.1} s, joins {joins_s:.1} s over {} levels",
                    speedup / k as f64,
                    joins.len()
                ),
            );
            runs.push(Run {
                k,
                rows_per_leaf: rows,
                jobs: names.len(),
                total_s,
                speedup,
                efficiency: speedup / k as f64,
                leaves_s,
                joins_s,
                join_levels: joins.len(),
                critical_prove_s: critical,
                overhead_s: total_s - critical,
                leaves: mean(&leaves),
                joins: mean(&join_phases),
                provers_used: provers.len(),
                proof_bytes: root_bytes,
            });
        }
        let report = Report {
            machine: crate::bench::machine(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            block_time_ms: status.block_time_ms,
            validators: a.validators,
            provers: a.provers,
            node_cores: a.node_cores.clone(),
            node_memory: a.node_memory.clone(),
            rows: a.rows,
            runs,
        };
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(&report);
        }
        Ok(())
    })
}

fn print_table(r: &Report) {
    println!(
        "{} — {} validator(s), {} nodes of {} core(s), {} rows in all",
        r.machine, r.validators, r.provers, r.node_cores, r.rows
    );
    println!(
        "{:>3} {:>5} {:>8} {:>8} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} | per leaf: {:>6} {:>6} {:>6} {:>6} | per join: {:>6} {:>6} {:>6} {:>6}",
        "k", "jobs", "total s", "speedup", "eff", "leaves", "joins", "crit prv", "overhead", "proof KB",
        "queue", "run", "prove", "verify", "queue", "run", "prove", "verify"
    );
    for x in &r.runs {
        println!(
            "{:>3} {:>5} {:>8.1} {:>8.2} {:>6.2} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9.1} | {:>16.1} {:>6.1} {:>6.1} {:>6.1} | {:>16.1} {:>6.1} {:>6.1} {:>6.1}",
            x.k, x.jobs, x.total_s, x.speedup, x.efficiency, x.leaves_s, x.joins_s,
            x.critical_prove_s, x.overhead_s, x.proof_bytes as f64 / 1000.0,
            x.leaves.queue_s, x.leaves.run_s, x.leaves.prove_s, x.leaves.verify_s,
            x.joins.queue_s, x.joins.run_s, x.joins.prove_s, x.joins.verify_s,
        );
    }
}
