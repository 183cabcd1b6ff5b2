//! `provernet bench network`: the end-to-end cost of the protocol around a proof.
//!
//! On a local network of real processes (`--validators` validators, `--provers` prover nodes
//! spread across them; jobs submitted through validator 0), two phases:
//!
//! 1. **Overhead.** Groth16 jobs (`--preimage-bytes` sets the proving time; 512 bytes is about
//!    10 s on one core here), one at a time on an idle network. For each: the wall time from
//!    submitting the job to seeing it Verified, minus the prover's own run time as the node
//!    measured it in the sandbox. What is left is everything the network adds: inclusion,
//!    assignment, accept, fetching inputs, sandbox start, uploading the proof, the result's
//!    inclusion, verification and the verdict's inclusion, plus this client's 50 ms polling.
//! 2. **Utilization.** A saturating mixed load (Groth16, winterfell, Plonky3), all submitted at
//!    once. Each attempt's run is observed (first seen running to first seen otherwise, polled
//!    every 100 ms); utilization is the core-seconds of running attempts over the core-seconds
//!    the nodes offered, over the window from the first run's start until the queue empties
//!    (no job left waiting for a prover), when the load stops being saturating.

use crate::devnet::{start_deployed, LocalSpec, PROGRAMS};
use anyhow::{anyhow, bail, Context, Result};
use provernet_sdk::types::{AttemptState, JobStatus};
use provernet_sdk::Client;
use provernet_sdk::Job;
use provernet_types::{
    BoundedVec, FileName, JobId, JobSpec, Keypair, MechanismKind, MicroCredits, NamedBlob,
    ProgramId, ProverSet, Seconds, Transaction, TxBody,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct NetworkArgs {
    /// Validators (1, or 4 to measure a network that tolerates a faulty one).
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Prover nodes.
    #[arg(long, default_value_t = 3)]
    provers: usize,
    /// Cores each node offers (each job asks for one).
    #[arg(long, default_value = "1")]
    node_cores: String,
    /// Memory each node offers.
    #[arg(long, default_value = "4GiB")]
    node_memory: String,
    /// Memory each job asks for (a 512-byte Groth16 circuit needs more than 1 GiB).
    #[arg(long, default_value = "3GiB")]
    job_memory: provernet_types::Bytes,
    /// Groth16 preimage size: sets the proving time of the overhead jobs.
    #[arg(long, default_value_t = 512)]
    preimage_bytes: usize,
    /// Jobs in the overhead phase, one at a time.
    #[arg(long, default_value_t = 10)]
    overhead_jobs: usize,
    /// Jobs per prover node in the saturating phase.
    #[arg(long, default_value_t = 6)]
    load_jobs_per_prover: usize,
    /// Where the network keeps its state (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 18480)]
    api_port: u16,
    #[arg(long, default_value_t = 18490)]
    p2p_port: u16,
    /// Where the built-in programs' executables are (default: next to this binary).
    #[arg(long)]
    programs_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct OverheadJob {
    job: String,
    submit_to_verified_ms: u64,
    prove_ms: u64,
    overhead_ms: u64,
    blocks: u64,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    command: String,
    block_time_ms: u64,
    validators: usize,
    provers: usize,
    node_cores: String,
    preimage_bytes: usize,
    overhead_jobs: Vec<OverheadJob>,
    prove_ms_p50: u64,
    overhead_ms_p50: u64,
    overhead_ms_p99: u64,
    overhead_block_times_p99: f64,
    load_jobs: usize,
    load_verified: usize,
    load_by_program: BTreeMap<String, usize>,
    saturated_window_ms: u64,
    utilization_saturated: f64,
    makespan_ms: u64,
    utilization_makespan: f64,
}

pub fn run(a: NetworkArgs) -> Result<()> {
    let programs_dir = crate::devnet::programs_dir(a.programs_dir.as_deref())?;
    let tmp = tempfile::tempdir()?;
    let dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().join("net"));
    let cores: provernet_types::MilliCores =
        a.node_cores.parse().map_err(|e| anyhow!("--node-cores: {e}"))?;
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
        let program = |name: &str| -> Result<ProgramId> {
            PROGRAMS
                .iter()
                .position(|p| p.name == name)
                .map(|i| ids[i])
                .ok_or_else(|| anyhow!("no built-in program {name}"))
        };
        say(&a, "making Groth16 keys (INSECURE fixed-seed setup, benchmark only)");
        let (pk, vk) = groth16_sha256::setup_insecure(a.preimage_bytes, [7; 32])
            .map_err(|e| anyhow!("{e}"))?;
        let pk = client.upload(&local.faucet, &chain_id, pk.to_bytes()).await?;
        let vk = client.upload(&local.faucet, &chain_id, vk.to_bytes()).await?;
        let g16 = program("groth16-sha256")?;
        let job_res = provernet_types::Resources {
            cores: provernet_types::MilliCores(1000),
            memory: a.job_memory,
            gpus: provernet_types::GpuCount(0),
        };
        let mut tag = 0u8;
        let mut groth16_job = |client: Client, key: Keypair, chain: String| {
            tag = tag.wrapping_add(1);
            let t = tag;
            let len = a.preimage_bytes;
            async move {
                let preimage: Vec<u8> = (0..len).map(|i| (i as u8) ^ t).collect();
                let digest = groth16_sha256::sha256(&preimage).to_vec();
                let mut inputs = vec![named("pk", pk)?, named("vk", vk)?];
                inputs.push(named("preimage", client.upload(&key, &chain, preimage).await?)?);
                inputs.push(named("digest", client.upload(&key, &chain, digest).await?)?);
                Ok::<_, anyhow::Error>(inputs)
            }
        };

        // Phase 1: overhead, one job at a time.
        let mut overhead = Vec::new();
        for i in 0..a.overhead_jobs {
            let inputs = groth16_job(client.clone(), local.faucet.clone(), chain_id.clone()).await?;
            let t0 = Instant::now();
            let id =
                submit_many(&client, &local.faucet, &chain_id, job_res, vec![(g16, inputs)])
                    .await?[0];
            let v = loop {
                if let Some(v) = client.job(&id).await? {
                    if v.is_final {
                        break v;
                    }
                }
                if t0.elapsed() > Duration::from_secs(600) {
                    bail!("job {id} not final after 10 minutes");
                }
                local.children.check(&local.logs)?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let total = t0.elapsed().as_millis() as u64;
            if v.status != JobStatus::Verified {
                bail!("overhead job {id} ended {}; see {}", v.status, local.logs.display());
            }
            let winner = v
                .winner
                .and_then(|w| v.attempts.get(usize::from(w)))
                .ok_or_else(|| anyhow!("verified job {id} has no winner"))?;
            let prove = winner.usage.wall_ms;
            let blocks = v.finished_at.map_or(0, |f| f.0.saturating_sub(v.submitted_at.0));
            say(
                &a,
                format!(
                    "overhead job {}/{}: {total} ms submit→Verified, {prove} ms proving, {} blocks",
                    i + 1,
                    a.overhead_jobs,
                    blocks
                ),
            );
            overhead.push(OverheadJob {
                job: id.to_string(),
                submit_to_verified_ms: total,
                prove_ms: prove,
                overhead_ms: total.saturating_sub(prove),
                blocks,
            });
        }

        // Phase 2: a saturating mixed load.
        let n = a.load_jobs_per_prover * a.provers;
        let mut batch = Vec::new();
        let mut by_program: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..n {
            let (name, inputs) = match i % 3 {
                0 => (
                    "groth16-sha256",
                    groth16_job(client.clone(), local.faucet.clone(), chain_id.clone()).await?,
                ),
                1 => (
                    "winterfell-chain",
                    statement(&client, &local.faucet, &chain_id, format!("{} {}", i, 1 << 18))
                        .await?,
                ),
                _ => (
                    "plonky3-keccak",
                    statement(&client, &local.faucet, &chain_id, format!("{i} 512")).await?,
                ),
            };
            *by_program.entry(name.to_owned()).or_default() += 1;
            batch.push((program(name)?, inputs));
        }
        say(&a, format!("submitting {n} jobs at once"));
        let t0 = Instant::now();
        let ids = submit_many(&client, &local.faucet, &chain_id, job_res, batch).await?;
        let mut runs: BTreeMap<(usize, usize), (Duration, Option<Duration>)> = BTreeMap::new();
        let mut queue_empty: Option<Duration> = None;
        let mut finals: Vec<Option<Job>> = vec![None; ids.len()];
        loop {
            local.children.check(&local.logs)?;
            let now = t0.elapsed();
            let mut waiting = false;
            let mut all_final = true;
            for (j, id) in ids.iter().enumerate() {
                if finals[j].is_some() {
                    continue;
                }
                let Some(v) = client.job(id).await? else {
                    all_final = false;
                    continue;
                };
                for (k, at) in v.attempts.iter().enumerate() {
                    let running = at.state == AttemptState::Running;
                    match runs.get_mut(&(j, k)) {
                        None if running => {
                            runs.insert((j, k), (now, None));
                        }
                        Some((_, end @ None)) if !running => *end = Some(now),
                        _ => {}
                    }
                    waiting |= at.state == AttemptState::Assigned;
                }
                waiting |= v.status == JobStatus::Pending;
                if v.is_final {
                    finals[j] = Some(v);
                } else {
                    all_final = false;
                }
            }
            if !waiting && queue_empty.is_none() && !runs.is_empty() {
                queue_empty = Some(now);
            }
            if all_final {
                break;
            }
            if t0.elapsed() > Duration::from_secs(1800) {
                bail!("the load was not final after 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let end_all = t0.elapsed();
        let first = runs.values().map(|(s, _)| *s).min().unwrap_or_default();
        let last = runs.values().map(|(s, e)| e.unwrap_or(end_all).max(*s)).max().unwrap_or(end_all);
        let qe = queue_empty.unwrap_or(last).max(first);
        let capacity = a.provers as f64 * f64::from(cores.0) / 1000.0;
        let busy_within = |from: Duration, to: Duration| -> f64 {
            runs.values()
                .map(|(s, e)| {
                    let (s, e) = ((*s).max(from), e.unwrap_or(end_all).min(to));
                    e.saturating_sub(s).as_secs_f64()
                })
                .sum::<f64>()
        };
        let window = qe - first;
        let makespan = last - first;
        let ms = |f: fn(&OverheadJob) -> u64| -> Vec<Duration> {
            overhead.iter().map(|o| Duration::from_millis(f(o))).collect()
        };
        let (mut prove, mut over) = (ms(|o| o.prove_ms), ms(|o| o.overhead_ms));
        let pct = |v: &mut [Duration], p: f64| crate::bench::percentile(v, p).round() as u64;
        let report = Report {
            machine: crate::bench::machine(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            block_time_ms: status.block_time_ms,
            validators: a.validators,
            provers: a.provers,
            node_cores: a.node_cores.clone(),
            preimage_bytes: a.preimage_bytes,
            prove_ms_p50: pct(&mut prove, 0.5),
            overhead_ms_p50: pct(&mut over, 0.5),
            overhead_ms_p99: pct(&mut over, 0.99),
            overhead_block_times_p99: pct(&mut over, 0.99) as f64 / status.block_time_ms.max(1) as f64,
            overhead_jobs: overhead,
            load_jobs: n,
            load_verified: finals
                .iter()
                .flatten()
                .filter(|v| v.status == JobStatus::Verified)
                .count(),
            load_by_program: by_program,
            saturated_window_ms: window.as_millis() as u64,
            utilization_saturated: busy_within(first, qe) / (capacity * window.as_secs_f64().max(1e-9)),
            makespan_ms: makespan.as_millis() as u64,
            utilization_makespan: busy_within(first, last)
                / (capacity * makespan.as_secs_f64().max(1e-9)),
        };
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("machine: {}", report.machine);
            println!(
                "overhead (submit→Verified minus proving, {} Groth16 jobs of ~{} ms): p50 {} ms, p99 {} ms = {:.2} block times ({} ms blocks)",
                report.overhead_jobs.len(),
                report.prove_ms_p50,
                report.overhead_ms_p50,
                report.overhead_ms_p99,
                report.overhead_block_times_p99,
                report.block_time_ms
            );
            println!(
                "utilization under a saturating mixed load of {} jobs ({} verified) on {} nodes × {} cores: {:.1}% while saturated ({} ms), {:.1}% over the makespan ({} ms)",
                report.load_jobs,
                report.load_verified,
                report.provers,
                report.node_cores,
                report.utilization_saturated * 100.0,
                report.saturated_window_ms,
                report.utilization_makespan * 100.0,
                report.makespan_ms
            );
        }
        drop(local);
        Ok(())
    })
}

fn say(a: &NetworkArgs, line: impl AsRef<str>) {
    if !a.json {
        eprintln!("{}", line.as_ref());
    }
}

fn named(name: &str, blob: provernet_types::BlobRef) -> Result<NamedBlob> {
    let name: FileName = name.parse().map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(NamedBlob { name, blob })
}

async fn statement(
    client: &Client,
    key: &Keypair,
    chain: &str,
    s: String,
) -> Result<Vec<NamedBlob>> {
    Ok(vec![named("statement", client.upload(key, chain, s.into_bytes()).await?)?])
}

/// Submits every job with consecutive nonces without waiting in between, then waits until
/// all are applied; their ids in order.
async fn submit_many(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    resources: provernet_types::Resources,
    jobs: Vec<(ProgramId, Vec<NamedBlob>)>,
) -> Result<Vec<JobId>> {
    let first = client.next_nonce(&key.account()).await?;
    let mut pending = Vec::new();
    for (i, (program, inputs)) in jobs.into_iter().enumerate() {
        let nonce = provernet_types::Nonce(first.0 + i as u64);
        let spec = JobSpec {
            program,
            inputs: BoundedVec::try_from_vec(inputs).map_err(|_| anyhow!("too many inputs"))?,
            resources: Some(resources),
            time_limit: Seconds(120),
            redundancy: 1,
            prover_set: ProverSet::Any,
            mechanism: MechanismKind::RandomWithFallback,
            max_fee: MicroCredits(100 * MicroCredits::PER_CREDIT),
        };
        let signed = Transaction { signer: key.account(), nonce, body: TxBody::SubmitJob(spec) }
            .sign(key, chain_id);
        client.submit(&signed).await.context("submitting a job")?;
        pending.push((signed.hash(), provernet_types::tx::job_id(&key.account(), nonce)));
    }
    let mut ids = Vec::new();
    for (hash, id) in pending {
        let st = client.wait_tx(&hash, Duration::from_secs(120)).await?;
        if st.status != provernet_sdk::TxState::Applied {
            bail!(
                "a job submission failed: {}",
                st.error.map_or_else(|| "no receipt".to_owned(), |e| e.to_string())
            );
        }
        ids.push(id);
    }
    Ok(ids)
}
