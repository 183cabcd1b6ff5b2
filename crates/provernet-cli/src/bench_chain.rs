//! `provernet bench chain`: sustained signed job submissions per second through the HTTP API
//! into finalized blocks, on a fresh local network of validator processes, with the latency
//! from each submission to the finalized block that holds it.

use crate::network_cmd::{create_network, GenesisArgs};
use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use provernet_ledger::testkit;
use provernet_sdk::Client;
use provernet_types::{
    BoundedVec, Bytes, GpuCount, Keypair, MicroCredits, MilliCores, Nonce, Resources, SignedTx,
    Transaction, TxBody, TxHash,
};
use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ChainArgs {
    /// Validator processes (1, or 4 and up to tolerate a fault).
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Offered load, job submissions per second.
    #[arg(long, default_value_t = 2500)]
    rate: u64,
    /// Measured seconds of load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Submitting accounts (each has at most 1,000 open jobs, so rate × seconds / senders must
    /// stay below that).
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// First p2p port (the API ports follow the p2p ones).
    #[arg(long, default_value_t = 33100)]
    base_port: u16,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    validators: usize,
    offered_per_s: u64,
    seconds: u64,
    submitted: usize,
    rejected: usize,
    finalized: usize,
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    blocks: u64,
    block_time_ms: u64,
    first_error: Option<String>,
    first_failure: Option<String>,
    machine: String,
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(args: ChainArgs) -> Result<()> {
    if args.validators == 0 || args.validators > 16 {
        bail!("--validators must be between 1 and 16 on one machine");
    }
    if args.senders == 0 || args.rate == 0 || args.seconds == 0 {
        bail!("--senders, --rate and --seconds must be positive");
    }
    let per_sender = args.rate * args.seconds / args.senders as u64;
    if per_sender > 900 {
        return Err(anyhow::Error::new(crate::Hint(format!(
            "raise --senders to at least {}",
            args.rate * args.seconds / 900 + 1
        )))
        .context(format!("each sender would open {per_sender} jobs; an account may hold 1,000")));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(bench(args))
}

async fn wait_height(c: &Client, at_least: u64, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if c.status().await.map(|s| s.height >= at_least).unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("the network did not reach height {at_least} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_nonce(c: &Client, key: &Keypair, at_least: u64) -> Result<()> {
    let start = Instant::now();
    while c.next_nonce(&key.account()).await?.0 < at_least {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("setup transactions did not finalize within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn bench(args: ChainArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let net = dir.path().join("net");
    let api_port = args.base_port + args.validators as u16;
    let summary = create_network(&GenesisArgs {
        out: net.clone(),
        validators: args.validators,
        host: "127.0.0.1".into(),
        base_port: args.base_port,
        api_port,
        chain_id: "provernet-bench".into(),
        faucet: MicroCredits(100_000_000 * MicroCredits::PER_CREDIT),
        fund: Vec::new(),
        json: true,
        // One idle prover keeps every job admissible. It never accepts, so its missed accepts
        // run the ledger's timeout and fallback paths every block; they must not eject it, or
        // later submissions would be refused for want of a prover.
        tweak: Some(|p| {
            p.faults_to_eject = u32::MAX;
            p.slash_missed_accept_bps = 0;
            p.fallback_refund_bps = 0;
        }),
    })?;
    let exe = std::env::current_exe().context("locating the provernet binary")?;
    let mut procs = Processes(Vec::new());
    for v in &summary.validators {
        procs.0.push(
            Command::new(&exe)
                .args(["validator", "--config", v])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting a validator")?,
        );
    }
    let clients: Vec<Client> = (0..args.validators)
        .map(|i| Client::new(&format!("http://127.0.0.1:{}", api_port as usize + i)))
        .collect::<Result<_, _>>()?;
    wait_height(&clients[0], 2, Duration::from_secs(60)).await?;

    // Setup: register a program and fund the senders, then wait for it to finalize.
    let faucet = Keypair::from_seed(crate::network_cmd::read_seed(&net.join("faucet.json"))?);
    let chain_id = summary.chain_id.clone();
    let manifest = testkit::committee_program();
    let program = manifest.id();
    let sign = |key: &Keypair, nonce: u64, body: TxBody| {
        Transaction { signer: key.account(), nonce: Nonce(nonce), body }.sign(key, &chain_id)
    };
    // Validators admit only transactions whose blobs they hold: the program's code and the
    // jobs' input go to every validator first.
    for bytes in testkit::TEST_BLOBS {
        for c in &clients {
            c.upload(&faucet, &chain_id, bytes.to_vec()).await.context("uploading a test blob")?;
        }
    }
    let mut nonce = 0;
    clients[0].submit(&sign(&faucet, nonce, TxBody::RegisterProgram { manifest })).await?;
    let prover = Keypair::generate();
    nonce += 1;
    let body = TxBody::Transfer {
        to: prover.account(),
        amount: MicroCredits(1_000_000 * MicroCredits::PER_CREDIT),
    };
    clients[0].submit(&sign(&faucet, nonce, body)).await?;
    let senders: Vec<Keypair> = (0..args.senders).map(|_| Keypair::generate()).collect();
    for s in &senders {
        nonce += 1;
        let body = TxBody::Transfer {
            to: s.account(),
            amount: MicroCredits(20_000 * MicroCredits::PER_CREDIT),
        };
        clients[0].submit(&sign(&faucet, nonce, body)).await?;
    }
    wait_nonce(&clients[0], &faucet, nonce + 1).await?;
    let capacity =
        Resources { cores: MilliCores(4_096_000), memory: Bytes::gib(65_536), gpus: GpuCount(0) };
    let body = TxBody::RegisterProver {
        capacity,
        labels: BoundedVec::default(),
        stake: MicroCredits(500_000 * MicroCredits::PER_CREDIT),
    };
    clients[0].submit(&sign(&prover, 0, body)).await?;
    wait_nonce(&clients[0], &prover, 1).await?;

    // Pre-sign every job so signing does not limit the offered rate.
    let total = (args.rate * args.seconds) as usize;
    let spec = testkit::job_spec(program, 60);
    let mut txs: Vec<SignedTx> = Vec::with_capacity(total);
    for i in 0..total {
        let s = &senders[i % senders.len()];
        txs.push(sign(s, (i / senders.len()) as u64, TxBody::SubmitJob(spec.clone())));
    }

    // Watch finalized blocks on validator 0.
    let finalized: Arc<Mutex<HashMap<TxHash, Instant>>> = Arc::default();
    let blocks = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut stream = Box::pin(clients[0].finalized_blocks().await?);
    let (fin, blk) = (finalized.clone(), blocks.clone());
    let watcher = tokio::spawn(async move {
        while let Some(Ok(block)) = stream.next().await {
            let now = Instant::now();
            if let Ok(mut f) = fin.lock() {
                for hash in &block.txs {
                    f.insert(*hash, now);
                }
            }
            if let Ok(mut b) = blk.lock() {
                b.push(block.height.0);
            }
        }
    });

    // Offer the load: each tick sends its share of transactions, spread over the validators.
    let submitted: Arc<Mutex<HashMap<TxHash, Instant>>> = Arc::default();
    let rejected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let start = Instant::now();
    let tick = Duration::from_millis(20);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut sent = 0usize;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut next_tick = start;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() / tick.as_secs_f64() + 1.0) * per_tick) as usize;
        while sent < due.min(total) {
            let tx = txs[sent].clone();
            let client = clients[sent % clients.len()].clone();
            let (sub, rej, err) = (submitted.clone(), rejected.clone(), first_error.clone());
            in_flight.push(async move {
                let at = Instant::now();
                match client.submit(&tx).await {
                    Ok(_) => {
                        if let Ok(mut s) = sub.lock() {
                            s.insert(tx.hash(), at);
                        }
                    }
                    Err(e) => {
                        rej.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Ok(mut first) = err.lock() {
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
            });
            sent += 1;
        }
        next_tick += tick;
        let sleep = tokio::time::sleep_until(next_tick.into());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                Some(()) = in_flight.next() => {}
            }
        }
    }
    while in_flight.next().await.is_some() {}
    let load_end = start.elapsed();
    // Let the last blocks finalize.
    let drain = Instant::now();
    loop {
        let done = {
            let s = submitted.lock().map_err(|_| anyhow!("poisoned"))?;
            let f = finalized.lock().map_err(|_| anyhow!("poisoned"))?;
            s.keys().all(|h| f.contains_key(h))
        };
        if done || drain.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    // Name the first ledger failure, if any (a failed transaction is final but did nothing).
    let mut first_failure = None;
    let mut sample: Vec<(Instant, TxHash)> =
        submitted.lock().map_err(|_| anyhow!("poisoned"))?.iter().map(|(h, t)| (*t, *h)).collect();
    sample.sort();
    for (_, h) in sample.into_iter().take(5000) {
        if let Ok(Some(st)) = clients[0].tx(&h).await {
            let nonce =
                |e: &provernet_sdk::TxErrorView| e.code == provernet_sdk::ErrorCode::BadNonce;
            if st.status == provernet_sdk::TxState::Failed && !st.error.as_ref().is_some_and(nonce)
            {
                first_failure = st.error.map(|e| e.to_string());
                break;
            }
        }
    }

    let s = submitted.lock().map_err(|_| anyhow!("poisoned"))?;
    let f = finalized.lock().map_err(|_| anyhow!("poisoned"))?;
    let mut lat: Vec<f64> = s
        .iter()
        .filter_map(|(h, at)| f.get(h).map(|t| t.duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let last_final = s.keys().filter_map(|h| f.get(h)).max().copied();
    let window = last_final.map_or(load_end, |t| t.duration_since(start)).max(load_end);
    let block_heights = blocks.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let report = Report {
        validators: args.validators,
        offered_per_s: args.rate,
        seconds: args.seconds,
        submitted: s.len(),
        rejected: rejected.load(std::sync::atomic::Ordering::Relaxed),
        finalized: lat.len(),
        tx_per_s: lat.len() as f64 / window.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        blocks: block_heights.len() as u64,
        block_time_ms: 1000,
        first_error: first_error.lock().ok().and_then(|e| e.clone()),
        first_failure,
        machine: format!(
            "{} cores",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        ),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(
            out,
            "{} validator(s), offered {}/s for {} s: {} submitted, {} rejected, {} finalized\n\
             throughput {:.0} tx/s; submit→finalized p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} blocks",
            report.validators,
            report.offered_per_s,
            report.seconds,
            report.submitted,
            report.rejected,
            report.finalized,
            report.tx_per_s,
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.blocks
        )?;
        if let Some(e) = &report.first_error {
            writeln!(out, "first rejection: {e}")?;
        }
        if let Some(e) = &report.first_failure {
            writeln!(out, "first failed transaction: {e}")?;
        }
    }
    Ok(())
}
