//! `provernet bench ...`: throughput measurements that print what they measured.

use anyhow::{Context, Result};
use provernet_ledger::testkit::{committee_program, test_genesis, Behaviour, TestChain};
use provernet_store::Store;
use provernet_types::VerifiedTx;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Ledger throughput: job-lifecycle transactions (submit, accept, result, votes) applied
    /// per second on one core, with one durable redb commit per block.
    Ledger(LedgerArgs),
    /// Sandbox overhead: fixed start-up cost, and a prover run directly vs in the sandbox.
    Sandbox(crate::bench_sandbox::SandboxArgs),
    /// Chain throughput: signed job submissions per second through the API into finalized
    /// blocks, on a local network of validator processes, with submit-to-finalized latency.
    Chain(crate::bench_chain::ChainArgs),
    /// End to end on a local network: submit-to-Verified overhead around a proof, and the
    /// share of node capacity used under a saturating mixed load.
    Network(crate::bench_network::NetworkArgs),
    /// Workflows: one long computation as one job on one node, against k segments and a tree
    /// of joins over k nodes, run by the chain.
    Workflow(crate::bench_workflow::WorkflowArgs),
    /// Scale: a history of settled jobs built through the ledger (10,000 provers, 1,000,000
    /// jobs by default) and what a block and a `/work` listing cost as it grows.
    Scale(crate::bench_scale::ScaleArgs),
}

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    /// Measured blocks (after warm-up).
    #[arg(long, default_value_t = 60)]
    blocks: u64,
    /// Warm-up blocks, until the job pipeline is full.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 1000)]
    block_txs: usize,
    /// Registered provers.
    #[arg(long, default_value_t = 256)]
    provers: usize,
    /// Database file (default: a temporary directory, removed afterwards).
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// Commit block N on a writer thread while block N+1 executes, as a node does (each block
    /// is still one durable transaction). Without it everything runs on one thread.
    #[arg(long)]
    pipeline: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct LedgerReport {
    pipelined: bool,
    machine: String,
    blocks: u64,
    txs: u64,
    tx_kinds: BTreeMap<&'static str, u64>,
    /// Execution + state root + durable commit, the number the target refers to.
    tx_per_s: f64,
    apply_tx_per_s: f64,
    commit_ms_per_block_p50: f64,
    apply_ms_per_block_p50: f64,
    block_ms_p99: f64,
    /// Signature checks (one core, one at a time), reported separately: nodes check them at
    /// mempool admission, in parallel, before execution.
    sig_verify_per_s: f64,
    jobs_verified: u64,
    /// Jobs still in the live state at the end (the rest were settled and archived).
    state_jobs: usize,
    archived_jobs: u64,
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

pub fn percentile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ledger(args) => ledger(args),
        BenchCommand::Sandbox(args) => crate::bench_sandbox::run(args),
        BenchCommand::Chain(args) => crate::bench_chain::run(args),
        BenchCommand::Network(args) => crate::bench_network::run(args),
        BenchCommand::Workflow(args) => crate::bench_workflow::run(args),
        BenchCommand::Scale(args) => crate::bench_scale::run(args),
    }
}

fn ledger(args: LedgerArgs) -> Result<()> {
    let max_txs = provernet_types::limits::BLOCK_TXS_MAX;
    anyhow::ensure!(
        args.block_txs > 0 && args.block_txs <= max_txs,
        "--block-txs must be 1..={max_txs}"
    );
    let g = test_genesis(args.provers, |p| {
        p.pending_timeout = provernet_types::Blocks(30);
        // Two requesters keep the pipeline full: the per-account cap on open jobs (a guard
        // against one account filling the queue) would stop them at block 4.
        p.open_jobs_per_account_max = u32::MAX;
    });

    // Phase 1 (not timed): build and sign the blocks against an in-memory chain, so phase 2
    // measures execution alone. Each block holds the honest agent's answers (accepts, results,
    // votes) to earlier blocks, topped up with new job submissions.
    let mut chain = TestChain::from_state(provernet_ledger::genesis(&g)?, args.provers);
    let mut blocks = Vec::new();
    let regs = chain.registrations(args.provers);
    blocks.push((chain.next_context(), regs.clone(), chain.block(regs).root));
    let program = committee_program().id();
    let mut submit_turn = 0u64;
    for _ in 0..args.warmup + args.blocks {
        // The agent's answers that do not fit wait for the next block, as in a node's queue.
        let mut txs: Vec<VerifiedTx> = chain.agent_txs_up_to(Behaviour::HONEST, args.block_txs);
        while txs.len() < args.block_txs {
            let who = if submit_turn.is_multiple_of(2) { "alice" } else { "bob" };
            submit_turn += 1;
            let spec = chain.spec(program, 10);
            txs.push(chain.submit(who, spec).1);
        }
        let ctx = chain.next_context();
        let out = chain.block(txs.clone());
        let failed = out.receipts.iter().filter(|r| r.result.is_err()).count();
        if let Some((tx, r)) = txs.iter().zip(&out.receipts).find(|(_, r)| r.result.is_err()) {
            anyhow::bail!(
                "{failed} benchmark transactions were rejected at {}; the first, a {}: {:?}",
                ctx.height,
                tx.tx().body.kind(),
                r.result
            );
        }
        blocks.push((ctx, txs, out.root));
    }

    // Phase 2 (timed): a fresh node verifies, executes and durably commits the same blocks.
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let path = args.db.clone().unwrap_or_else(|| tmp.path().join("bench.redb"));
    let (store, mut state) =
        Store::create(&path, &g).with_context(|| format!("creating {}", path.display()))?;
    let store = std::sync::Arc::new(store);
    // The writer thread: at most one block waits for it, so execution is never more than one
    // block ahead of what is durable.
    let (to_writer, writer_rx) = std::sync::mpsc::sync_channel::<(
        provernet_store::BlockRecord,
        provernet_ledger::ChangeSet,
        Vec<provernet_ledger::Archived>,
    )>(1);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || -> Result<()> {
            for (record, changes, archived) in writer_rx {
                store.commit_block(&record, &changes, &archived)?;
            }
            Ok(())
        })
    };
    let phase2_start = Instant::now();
    let mut measured_start = None;
    let chain_id = state.chain_id().to_owned();
    let (mut apply_t, mut commit_t, mut verify_t) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut apply_each, mut commit_each, mut block_each) = (Vec::new(), Vec::new(), Vec::new());
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut txs_total = 0u64;
    let (mut archived_jobs, mut archived_verified) = (0u64, 0u64);
    for (i, (ctx, txs, root)) in blocks.into_iter().enumerate() {
        let signed: Vec<_> = txs.iter().map(|t| t.signed().clone()).collect();
        let t0 = Instant::now();
        for s in &signed {
            s.clone().verify(&chain_id).context("a benchmark transaction failed to verify")?;
        }
        let t1 = Instant::now();
        let out = provernet_ledger::apply_block(&mut state, &ctx, &txs)?;
        let t2 = Instant::now();
        for a in out.archived.iter().filter(|a| a.key.table == provernet_ledger::Table::Job) {
            let j: provernet_ledger::Job = provernet_types::decode_exact(&a.record, "job")?;
            archived_jobs += 1;
            archived_verified += u64::from(j.status == provernet_ledger::JobStatus::Verified);
        }
        let record = provernet_store::BlockRecord {
            hash: provernet_types::BlockHash([0; 32]),
            height: ctx.height,
            randomness: ctx.randomness,
            time: ctx.time,
            txs: provernet_types::BoundedVec::try_from_vec(signed)?,
            root: out.root,
        };
        if args.pipeline {
            let sent = (record, out.changes, out.archived);
            to_writer.send(sent).context("the writer thread stopped")?;
        } else {
            store.commit_block(&record, &out.changes, &out.archived)?;
        }
        let t3 = Instant::now();
        anyhow::ensure!(out.root == root, "execution diverged at height {}", ctx.height);
        if i as u64 == args.warmup {
            measured_start = Some(t3);
        }
        if i as u64 > args.warmup {
            verify_t += t1 - t0;
            apply_t += t2 - t1;
            commit_t += t3 - t2;
            apply_each.push(t2 - t1);
            commit_each.push(t3 - t2);
            block_each.push(t3 - t1);
            txs_total += txs.len() as u64;
            for t in &txs {
                *kinds.entry(t.tx().body.kind()).or_default() += 1;
            }
        }
    }
    drop(to_writer);
    writer.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    let measured_wall = measured_start.map_or(phase2_start.elapsed(), |t| t.elapsed());
    let jobs_verified = archived_verified
        + state.jobs().filter(|(_, j)| j.status == provernet_ledger::JobStatus::Verified).count()
            as u64;
    let report = LedgerReport {
        pipelined: args.pipeline,
        machine: machine(),
        blocks: args.blocks,
        txs: txs_total,
        tx_kinds: kinds,
        // Serial: the sum of execution and commit. Pipelined: wall time until the last block
        // is durable, minus the untimed signature checks.
        tx_per_s: if args.pipeline {
            txs_total as f64 / (measured_wall - verify_t).as_secs_f64()
        } else {
            txs_total as f64 / (apply_t + commit_t).as_secs_f64()
        },
        apply_tx_per_s: txs_total as f64 / apply_t.as_secs_f64(),
        commit_ms_per_block_p50: percentile(&mut commit_each, 0.5),
        apply_ms_per_block_p50: percentile(&mut apply_each, 0.5),
        block_ms_p99: percentile(&mut block_each, 0.99),
        sig_verify_per_s: txs_total as f64 / verify_t.as_secs_f64(),
        jobs_verified,
        state_jobs: state.jobs().count(),
        archived_jobs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("machine: {}", report.machine);
        println!(
            "{} blocks × {} txs: {:.0} tx/s applied and durably committed{} ({:.0} tx/s execution alone)",
            report.blocks,
            args.block_txs,
            report.tx_per_s,
            if args.pipeline { ", commits pipelined" } else { "" },
            report.apply_tx_per_s
        );
        println!(
            "per block p50: apply {:.2} ms, commit {:.2} ms; p99 total {:.2} ms",
            report.apply_ms_per_block_p50, report.commit_ms_per_block_p50, report.block_ms_p99
        );
        println!(
            "signature checks: {:.0}/s on one core (done at admission, not in this number)",
            report.sig_verify_per_s
        );
        println!("mix: {:?}; jobs verified: {}", report.tx_kinds, report.jobs_verified);
    }
    Ok(())
}
