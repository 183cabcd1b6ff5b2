//! `provernet bench scale`: what the chain costs as its history grows.
//!
//! Builds a history through the real ledger: `--provers` registered provers and jobs submitted
//! in full blocks, each job run to the end by the test agent's honest provers (accept, commit,
//! reveal, the validator's vote), until `--settled` jobs are settled and archived. Every block
//! is executed twice: once by the test chain that generates it, and once, independently, by a
//! node that executes it on its own state and commits it to a real redb store; the two roots
//! must agree at every height.
//!
//! At each checkpoint (a tenth, a hundredth… of `--settled`, and the end) it measures
//! `--blocks` blocks of the same load: the node's execution (state root included) and its
//! durable commit per block, and after each block `--pollers` work listings
//! (`/v1/provers/{id}/work`: the ledger's listing and its JSON) for as many prover ids, as
//! prover nodes poll after every block. It reports the live state (records and bytes), the
//! archive, the store on disk and the process's memory. JSON with `--json`, and an SVG plot of
//! cost against history size with `--svg`.

use crate::bench::{machine, percentile};
use anyhow::{bail, ensure, Context, Result};
use provernet_ledger::testkit::{
    builtin_program, test_genesis, Behaviour, TestChain, PROVER_STAKE,
};
use provernet_ledger::{apply_block, State};
use provernet_store::{BlockRecord, Store};
use provernet_types::{
    AccountId, BlockHash, BoundedVec, Keypair, MicroCredits, TxBody, VerifiedTx,
};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Registered, active provers.
    #[arg(long, default_value_t = 10_000)]
    provers: usize,
    /// Settled (archived) jobs to build before the last checkpoint.
    #[arg(long, default_value_t = 1_000_000)]
    settled: u64,
    /// Transactions per block while building and measuring.
    #[arg(long, default_value_t = 10_000)]
    block_txs: usize,
    /// Blocks measured at each checkpoint.
    #[arg(long, default_value_t = 10)]
    blocks: u64,
    /// Work listings read after each measured block (one per prover id, cycling).
    #[arg(long, default_value_t = 1_000)]
    pollers: usize,
    /// Jobs in flight at most (submissions pause above it); default: two per prover.
    #[arg(long)]
    in_flight: Option<usize>,
    /// Write the plot of cost against history size here.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Draw the plot (`--svg`) from an earlier run's JSON instead of measuring.
    #[arg(long, requires = "svg")]
    replot: Option<std::path::PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Checkpoint {
    /// Settled jobs in the archive when measured.
    pub settled: u64,
    pub height: u64,
    pub txs_per_block: f64,
    pub execute_ms_p50: f64,
    pub execute_ms_p99: f64,
    pub commit_ms_p50: f64,
    pub commit_ms_p99: f64,
    pub work_us_p50: f64,
    pub work_us_p99: f64,
    pub work_polls: usize,
    /// Jobs and workflows in the live state, and the bytes of all its records.
    pub live_jobs: usize,
    pub live_records: usize,
    pub live_bytes: u64,
    /// Records in the archive (jobs and workflows).
    pub archived: u64,
    pub store_bytes: u64,
    /// The bench process's resident memory: both executions' states, the agent's books.
    pub rss_bytes: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScaleReport {
    machine: String,
    command: String,
    provers: usize,
    block_txs: usize,
    build_seconds: f64,
    blocks_built: u64,
    checkpoints: Vec<Checkpoint>,
}

/// The history under construction: the generating chain, and the node that re-executes it.
struct Run {
    chain: TestChain,
    node: State,
    store: Store,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    program: provernet_types::ProgramId,
    block_txs: usize,
    in_flight: usize,
    turn: u64,
    settled: u64,
    blocks: u64,
}

impl Run {
    fn new(provers: usize, block_txs: usize, in_flight: usize) -> Result<Run> {
        // A genesis lists at most 10,000 accounts: provers past the first 9,000 are funded by
        // transfers, as provers joining a running network would be.
        let funded = provers.min(9_000);
        let g = test_genesis(funded, |p| {
            p.pending_timeout = provernet_types::Blocks(30);
            p.open_jobs_per_account_max = u32::MAX;
        });
        let mut chain = TestChain::from_state(provernet_ledger::genesis(&g)?, provers);
        chain.keep_archive = false;
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let path = dir.path().join("scale.redb");
        let (store, node) = Store::create(&path, &g).context("creating the store")?;
        let mut run = Run {
            chain,
            node,
            store,
            _dir: dir,
            path,
            program: builtin_program().id(),
            block_txs,
            in_flight,
            turn: 0,
            settled: 0,
            blocks: 0,
        };
        let stake = MicroCredits(2 * PROVER_STAKE.0);
        let transfers: Vec<VerifiedTx> = (funded..provers)
            .map(|i| {
                let to = Keypair::insecure_from_label(&format!("p{i}")).account();
                run.chain.tx("alice", TxBody::Transfer { to, amount: stake })
            })
            .collect();
        for chunk in transfers.chunks(block_txs.max(1)) {
            run.step_with(chunk.to_vec())?;
        }
        // Registrations in blocks of at most `block_txs`.
        let regs = run.chain.registrations(provers);
        for chunk in regs.chunks(block_txs.max(1)) {
            run.step_with(chunk.to_vec())?;
        }
        ensure!(
            run.node.provers().filter(|(_, p)| p.is_active()).count() == provers,
            "not every prover is active after registering"
        );
        Ok(run)
    }

    /// The next block's transactions: the agent's answers, topped up with submissions while
    /// fewer than `in_flight` jobs are live.
    fn next_txs(&mut self) -> Vec<VerifiedTx> {
        let mut txs = self.chain.agent_txs_up_to(Behaviour::HONEST, self.block_txs);
        let live = self.chain.state.jobs().count();
        let room = self.in_flight.saturating_sub(live);
        let mut added = 0;
        while txs.len() < self.block_txs && added < room {
            let who = if self.turn.is_multiple_of(2) { "alice" } else { "bob" };
            self.turn += 1;
            added += 1;
            let spec = self.chain.spec(self.program, 10);
            txs.push(self.chain.submit(who, spec).1);
        }
        txs
    }

    /// Runs one block through both executions; returns the node's execution and commit time.
    fn step_with(&mut self, txs: Vec<VerifiedTx>) -> Result<(Duration, Duration)> {
        let ctx = self.chain.next_context();
        let reference = self.chain.block(txs.clone());
        if let Some((tx, r)) = txs.iter().zip(&reference.receipts).find(|(_, r)| r.result.is_err())
        {
            bail!("a {} was rejected at {}: {:?}", tx.tx().body.kind(), ctx.height, r.result);
        }
        let t0 = Instant::now();
        let out = apply_block(&mut self.node, &ctx, &txs)?;
        let t1 = Instant::now();
        let record = BlockRecord {
            hash: BlockHash([0; 32]),
            height: ctx.height,
            randomness: ctx.randomness,
            time: ctx.time,
            txs: BoundedVec::try_from_vec(txs.iter().map(|t| t.signed().clone()).collect())?,
            root: out.root,
        };
        self.store.commit_block(&record, &out.changes, &out.archived)?;
        let t2 = Instant::now();
        ensure!(
            out.root == reference.root,
            "the node's execution diverged from the generator's at height {}",
            ctx.height
        );
        self.settled +=
            out.archived.iter().filter(|a| a.key.table == provernet_ledger::Table::Job).count()
                as u64;
        self.blocks += 1;
        Ok((t1 - t0, t2 - t1))
    }

    fn step(&mut self) -> Result<(Duration, Duration, usize)> {
        let txs = self.next_txs();
        let n = txs.len();
        let (e, c) = self.step_with(txs)?;
        Ok((e, c, n))
    }

    /// Measures `blocks` blocks, with `pollers` work listings after each.
    fn measure(&mut self, blocks: u64, pollers: usize, ids: &[AccountId]) -> Result<Checkpoint> {
        let (mut exec, mut commit, mut work) = (Vec::new(), Vec::new(), Vec::new());
        let mut txs = 0usize;
        let settled = self.settled;
        for _ in 0..blocks {
            let (e, c, n) = self.step()?;
            exec.push(e);
            commit.push(c);
            txs += n;
            for i in 0..pollers {
                let me = &ids[i % ids.len()];
                let t = Instant::now();
                let listing = provernet_ledger::contract::work(&self.node, me);
                let body = serde_json::to_vec(&listing)?;
                std::hint::black_box(body);
                work.push(t.elapsed());
            }
        }
        let records = provernet_ledger::state::records(&self.node);
        let live_bytes: u64 = records.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        let us = |v: &mut Vec<Duration>, p: f64| percentile(v, p) * 1000.0;
        Ok(Checkpoint {
            settled,
            height: self.node.height().0,
            txs_per_block: txs as f64 / blocks.max(1) as f64,
            execute_ms_p50: percentile(&mut exec, 0.5),
            execute_ms_p99: percentile(&mut exec, 0.99),
            commit_ms_p50: percentile(&mut commit, 0.5),
            commit_ms_p99: percentile(&mut commit, 0.99),
            work_us_p50: us(&mut work, 0.5),
            work_us_p99: us(&mut work, 0.99),
            work_polls: work.len(),
            live_jobs: self.node.jobs().count(),
            live_records: records.len(),
            live_bytes,
            archived: self.node.meta().archive.count,
            store_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
            rss_bytes: rss_bytes(),
        })
    }
}

/// The process's resident memory, from `/proc/self/status` (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Checkpoints: `settled` divided by powers of ten down to 10,000 (or `settled` itself when
/// smaller), smallest first.
fn checkpoints(settled: u64) -> Vec<u64> {
    let mut out = vec![settled];
    let mut x = settled;
    while x >= 100_000 && x.is_multiple_of(10) {
        x /= 10;
        out.push(x);
    }
    out.reverse();
    out
}

pub fn run(args: ScaleArgs) -> Result<()> {
    if let (Some(from), Some(svg)) = (&args.replot, &args.svg) {
        let text =
            std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
        let report: ScaleReport = serde_json::from_str(&text).with_context(|| {
            format!("{} is not the JSON of `bench scale --json`", from.display())
        })?;
        std::fs::write(svg, plot(&report.checkpoints, report.provers))
            .with_context(|| format!("writing {}", svg.display()))?;
        return Ok(());
    }
    ensure!(args.provers > 0, "--provers must be at least 1");
    let max_txs = provernet_types::limits::BLOCK_TXS_MAX;
    ensure!(args.block_txs > 0 && args.block_txs <= max_txs, "--block-txs must be 1..={max_txs}");
    ensure!(args.settled > 0, "--settled must be at least 1");
    ensure!(args.pollers > 0 && args.blocks > 0, "--pollers and --blocks must be at least 1");
    let started = Instant::now();
    let in_flight = args.in_flight.unwrap_or(2 * args.provers);
    let mut run = Run::new(args.provers, args.block_txs, in_flight)?;
    let ids: Vec<AccountId> = (0..args.provers)
        .map(|i| Keypair::insecure_from_label(&format!("p{i}")).account())
        .collect();
    let mut out = Vec::new();
    let mut last_note = Instant::now();
    let mut build = Duration::ZERO;
    for target in checkpoints(args.settled) {
        let t = Instant::now();
        while run.settled < target {
            run.step()?;
            if last_note.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "building: {} of {} jobs settled, height {}, {:.0} s",
                    run.settled,
                    args.settled,
                    run.node.height().0,
                    started.elapsed().as_secs_f64()
                );
                last_note = Instant::now();
            }
        }
        build += t.elapsed();
        let c = run.measure(args.blocks, args.pollers, &ids)?;
        eprintln!(
            "at {} settled: execute p50 {:.1} ms, commit p50 {:.1} ms, /work p50 {:.1} µs p99 {:.1} µs, {} live jobs, rss {} MiB",
            c.settled,
            c.execute_ms_p50,
            c.commit_ms_p50,
            c.work_us_p50,
            c.work_us_p99,
            c.live_jobs,
            c.rss_bytes >> 20
        );
        out.push(c);
    }
    let report = ScaleReport {
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        provers: args.provers,
        block_txs: args.block_txs,
        build_seconds: build.as_secs_f64(),
        blocks_built: run.blocks,
        checkpoints: out,
    };
    if let Some(path) = &args.svg {
        std::fs::write(path, plot(&report.checkpoints, args.provers))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("machine: {}", report.machine);
        println!(
            "{:>10} {:>8} {:>12} {:>12} {:>11} {:>11} {:>10} {:>12} {:>10}",
            "settled",
            "height",
            "exec p50 ms",
            "exec p99 ms",
            "commit p50",
            "work p50µs",
            "work p99µs",
            "live jobs",
            "live MiB"
        );
        for c in &report.checkpoints {
            println!(
                "{:>10} {:>8} {:>12.1} {:>12.1} {:>11.1} {:>11.1} {:>10.1} {:>12} {:>10.1}",
                c.settled,
                c.height,
                c.execute_ms_p50,
                c.execute_ms_p99,
                c.commit_ms_p50,
                c.work_us_p50,
                c.work_us_p99,
                c.live_jobs,
                c.live_bytes as f64 / (1 << 20) as f64
            );
        }
    }
    Ok(())
}

/// An SVG line plot, both axes logarithmic: per-block execution and commit (ms), `/work`
/// p50 and p99 (µs) and the live state (MiB) against settled jobs.
pub fn plot(points: &[Checkpoint], provers: usize) -> String {
    type Series = (&'static str, &'static str, fn(&Checkpoint) -> f64);
    let series: [Series; 5] = [
        ("execution p50 (ms/block)", "#1f77b4", |c| c.execute_ms_p50),
        ("commit p50 (ms/block)", "#ff7f0e", |c| c.commit_ms_p50),
        ("/work p50 (µs)", "#2ca02c", |c| c.work_us_p50),
        ("/work p99 (µs)", "#d62728", |c| c.work_us_p99),
        ("live state (MiB)", "#9467bd", |c| c.live_bytes as f64 / (1 << 20) as f64),
    ];
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 230.0, 40.0, 50.0);
    let lg = |v: f64| v.max(1e-3).log10();
    let xs: Vec<f64> = points.iter().map(|c| lg(c.settled as f64)).collect();
    let ys: Vec<f64> =
        points.iter().flat_map(|c| series.iter().map(move |(_, _, f)| lg(f(c)))).collect();
    let (x0, x1) = bounds(&xs);
    let (y0, y1) = bounds(&ys);
    // Decades around the points (a point just past a power of ten does not open a decade).
    let up = |v: f64| (v - 0.01).ceil();
    let (x0, x1, y0, y1) = (x0.floor(), up(x1).max(x0.floor() + 1.0), y0.floor(), up(y1));
    let y1 = y1.max(y0 + 1.0);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">Cost against history ({provers} provers; log-log)</text>\n"
    );
    for d in (x0 as i32)..=(x1 as i32) {
        let x = px(f64::from(d));
        s += &format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1e{d}</text>\n",
            h - bottom,
            h - bottom + 16.0
        );
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let y = py(f64::from(d));
        s += &format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{d}</text>\n",
            w - right,
            left - 6.0,
            y + 4.0
        );
    }
    s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">settled jobs in the archive</text>\n",
        (left + w - right) / 2.0,
        h - 12.0
    );
    for (i, (name, color, f)) in series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|c| format!("{:.1},{:.1}", px(lg(c.settled as f64)), py(lg(f(c)))))
            .collect();
        s += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            s += &format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>\n");
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        s += &format!(
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
            w - right + 10.0,
            w - right + 30.0,
            w - right + 36.0,
            ly + 4.0
        );
    }
    s += "</svg>\n";
    s
}

fn bounds(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_step_down_by_tens_to_ten_thousand() {
        assert_eq!(checkpoints(1_000_000), vec![10_000, 100_000, 1_000_000]);
        assert_eq!(checkpoints(10_000), vec![10_000]);
        assert_eq!(checkpoints(500), vec![500]);
    }

    #[test]
    fn a_small_history_is_built_checked_and_measured() {
        let mut run = Run::new(8, 200, 100).unwrap();
        let ids: Vec<AccountId> =
            (0..8).map(|i| Keypair::insecure_from_label(&format!("p{i}")).account()).collect();
        while run.settled < 150 {
            run.step().unwrap();
        }
        let c = run.measure(3, 20, &ids).unwrap();
        assert!(c.settled >= 150);
        assert!(c.archived >= c.settled, "archived jobs are counted in the peaks");
        assert_eq!(c.work_polls, 60);
        assert!(c.live_jobs <= 100 + 200, "the live state holds only jobs in flight");
        let svg = plot(&[c.clone(), Checkpoint { settled: c.settled * 10, ..c }], 8);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }
}
