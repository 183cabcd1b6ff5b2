//! `provernet quote`.

use anyhow::Result;
use provernet_types::{Bytes, GpuCount, MicroCredits, MilliCores, Resources, Seconds};

#[derive(clap::Args, Debug)]
pub struct QuoteArgs {
    /// CPU cores: `32`, `1.5`, or millicores `500m`.
    #[arg(long)]
    cores: MilliCores,
    /// Memory with a unit: `190GB` (10⁹ bytes) or `64GiB` (2³⁰ bytes).
    #[arg(long)]
    memory: Bytes,
    /// Whole GPUs.
    #[arg(long, default_value = "0")]
    gpus: GpuCount,
    /// Time limit: `90s`, `5m`, `1h30m`.
    #[arg(long)]
    time: Seconds,
    /// How many provers run the job at once (1–3); each is paid.
    #[arg(long, default_value_t = 1)]
    redundancy: u8,
    /// The chain whose posted prices to use; without an answer from it, the genesis defaults.
    #[arg(long, env = "PROVERNET_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Use the genesis default prices without asking a chain.
    #[arg(long)]
    offline: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Quote {
    cores: String,
    memory: String,
    gpus: u16,
    time_limit_s: u64,
    redundancy: u8,
    per_prover_micro_credits: u64,
    total_micro_credits: u64,
    total_credits: String,
    /// `chain` (its posted prices) or `default` (the genesis defaults; no chain answered).
    prices: String,
}

pub fn run(args: QuoteArgs) -> Result<()> {
    let resources = Resources { cores: args.cores, memory: args.memory, gpus: args.gpus };
    resources.check_bounds().map_err(|e| anyhow::anyhow!("{e}"))?;
    // The ledger's own rule, at the genesis defaults (the chain's prices replace them below).
    let (per, total) = provernet_ledger::job_quote(
        &provernet_ledger::ChainParams::devnet(Vec::new()),
        &resources,
        args.time,
        args.redundancy,
    )
    .map_err(|e| {
        anyhow::Error::new(crate::Hint("use --redundancy 1, 2 or 3".into())).context(e.to_string())
    })?;
    let from_chain = if args.offline { None } else { chain_quote(&args, &resources) };
    let (per, total, prices) = match from_chain {
        Some((per, total)) => (per, total, "chain"),
        None => (per, total, "default"),
    };
    let prices = prices.to_owned();
    let q = Quote {
        cores: resources.cores.to_string(),
        memory: resources.memory.to_string(),
        gpus: resources.gpus.0,
        time_limit_s: args.time.0,
        redundancy: args.redundancy,
        per_prover_micro_credits: per.0,
        total_micro_credits: total.0,
        total_credits: format!("{}.{:06}", total.0 / 1_000_000, total.0 % 1_000_000),
        prices,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&q)?);
    } else {
        println!(
            "{} cores, {}, {} GPUs for {} × {}: {} ({} prices)",
            q.cores, q.memory, q.gpus, args.time, q.redundancy, total, q.prices
        );
    }
    Ok(())
}

/// The per-prover and total price at the chain's posted prices, or `None` if no chain answers.
fn chain_quote(args: &QuoteArgs, r: &Resources) -> Option<(MicroCredits, MicroCredits)> {
    let client = provernet_sdk::Client::new(&args.api).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let q = rt.block_on(client.quote_for(r, args.time, args.redundancy)).ok()?;
    Some((q.per_prover_micro_credits, q.total_micro_credits))
}
