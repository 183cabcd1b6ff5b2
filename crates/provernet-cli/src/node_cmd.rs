//! `provernet node --config node.toml`: run a prover node.

use crate::network_cmd::{read_seed, read_toml, relative_to};
use anyhow::{anyhow, Result};
use provernet_sandbox::Helper;
use provernet_types::{Bytes, GpuCount, Label, MicroCredits, MilliCores};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// The node's configuration file.
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<NodeCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum NodeCommand {
    /// Write a node.toml with this machine's detected capacity and a new key, and say what
    /// to do next.
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Where to write `node.toml` and `key.json` (the node keeps its data under it too).
    #[arg(long, default_value = "provernet-node")]
    dir: PathBuf,
    /// Validators' APIs, comma-separated.
    #[arg(long, env = "PROVERNET_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The stake to register with, in credits.
    #[arg(long, default_value = "100")]
    stake: MicroCredits,
    /// Replace an existing node.toml (an existing key is always kept).
    #[arg(long)]
    force: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `provernet node init`: a configuration for this machine, a key, and the next two commands.
fn init(a: InitArgs) -> Result<()> {
    let toml_path = a.dir.join("node.toml");
    if toml_path.exists() && !a.force {
        return Err(anyhow::Error::new(crate::Hint(
            "pass --force to replace it, or --dir for another node".into(),
        ))
        .context(format!("{} exists", toml_path.display())));
    }
    let apis: Vec<String> =
        a.api.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if apis.is_empty() || apis.len() > provernet_sdk::APIS_MAX {
        return Err(anyhow!(
            "--api lists {} validators; give 1 to {}",
            apis.len(),
            provernet_sdk::APIS_MAX
        ));
    }
    if let Some(bad) =
        apis.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        return Err(anyhow!("--api `{bad}` is not an http:// or https:// URL"));
    }
    if a.stake.0 == 0 {
        return Err(anyhow!("--stake must be above zero"));
    }
    std::fs::create_dir_all(&a.dir).map_err(|e| anyhow!("creating {}: {e}", a.dir.display()))?;
    let key_path = a.dir.join("key.json");
    let key = if key_path.exists() {
        provernet_types::Keypair::from_seed(read_seed(&key_path)?)
    } else {
        let key = provernet_types::Keypair::generate();
        let json = serde_json::json!({ "seed": hex::encode(key.seed()) }).to_string();
        crate::network_cmd::write_secret(&key_path, &json)?;
        key
    };
    let mut capacity = provernet_node::detect_capacity();
    // Whole GiB read better and leave the rest of the last one to the system.
    capacity.memory = Bytes(capacity.memory.0 / Bytes::gib(1).0 * Bytes::gib(1).0);
    let labels = provernet_sandbox::host::cpu_labels();
    let list: Vec<String> = apis.iter().map(|u| format!("\"{u}\"")).collect();
    let credits =
        |m: u64| format!("{}.{:06}", m / MicroCredits::PER_CREDIT, m % MicroCredits::PER_CREDIT);
    let stake_credits = credits(a.stake.0);
    // The stake and one credit for the registration's and the node's transaction fees.
    let fund_credits = credits(a.stake.0.saturating_add(MicroCredits::PER_CREDIT));
    let text = format!(
        "# A provernet prover node (`provernet node --config {toml}`).\n\
         # Validators' APIs: the node uses the first that answers.\n\
         api = [{apis}]\n\
         key = \"key.json\"\n\
         data_dir = \"data\"\n\
         # Registered with this stake on the first start (the account must hold it).\n\
         stake = \"{stake_credits}\"\n\
         # Detected on this machine; lower them to keep some for yourself.\n\
         cores = \"{cores}\"\n\
         memory = \"{memory}\"\n\
         gpus = {gpus}\n\
         # Detected CPU labels ({detected}) are added at start; add your own, e.g. region=eu.\n\
         labels = []\n\
         # Join open races and auctions; bid at this percent of the chain's quote.\n\
         markets = true\n\
         ask_percent = 100\n\
         # Disk for unpacked program images, evicted least recently used.\n\
         image_cache = \"50GiB\"\n",
        toml = toml_path.display(),
        apis = list.join(", "),
        cores = capacity.cores,
        memory = capacity.memory,
        gpus = capacity.gpus.0,
        detected = if labels.is_empty() { "none".to_owned() } else { labels.join(", ") },
    );
    let tmp = a.dir.join("node.toml.tmp");
    std::fs::write(&tmp, &text).map_err(|e| anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &toml_path)
        .map_err(|e| anyhow!("writing {}: {e}", toml_path.display()))?;
    let account = key.account();
    let fund = format!(
        "provernet account transfer --to {account} --amount {fund_credits} --key FUNDED_KEY --api {}",
        apis[0]
    );
    let start = format!("provernet node --config {}", toml_path.display());
    if a.json {
        let v = serde_json::json!({
            "config": toml_path,
            "key": key_path,
            "account": account,
            "capacity": {
                "cores": capacity.cores.to_string(),
                "memory": capacity.memory.to_string(),
                "gpus": capacity.gpus.0,
            },
            "stake_micro_credits": a.stake.0,
            "next": [fund, start],
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("wrote {} and {}", toml_path.display(), key_path.display());
        println!(
            "this machine offers {} cores, {}, {} GPUs; the prover's account is {account}",
            capacity.cores, capacity.memory, capacity.gpus.0
        );
        println!("next:");
        println!("  1. fund the account with the stake and a little for fees:\n     {fund}");
        println!("  2. start the node (it registers itself):\n     {start}");
    }
    Ok(())
}

/// One validator API or several.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Apis {
    One(String),
    Many(Vec<String>),
}

impl Apis {
    pub fn list(&self) -> Vec<String> {
        match self {
            Apis::One(a) => vec![a.clone()],
            Apis::Many(v) => v.clone(),
        }
    }
}

/// `node.toml`. Paths are relative to the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeToml {
    /// Validators' APIs, e.g. `["http://127.0.0.1:8080", "http://127.0.0.1:8081"]` (or one as a
    /// string): the node uses the first that answers and moves on when it stops answering.
    pub api: Apis,
    /// The prover's account key (`provernet keys generate`).
    pub key: PathBuf,
    pub data_dir: PathBuf,
    /// Stake to register with, in credits.
    pub stake: String,
    /// Capacity offered; detected when left out.
    pub cores: Option<String>,
    pub memory: Option<String>,
    pub gpus: Option<u16>,
    /// Extra labels (`region=eu`); CPU levels are detected and added.
    #[serde(default)]
    pub labels: Vec<String>,
    /// No longer accepted: a node runs network jobs only with every limit enforced.
    #[serde(default)]
    pub no_cgroups: bool,
    /// Testing only: corrupt every proof before uploading it.
    #[serde(default)]
    pub testing_corrupt_proofs: bool,
    /// Join open races and auctions (default true); assigned work is always taken.
    #[serde(default = "yes")]
    pub markets: bool,
    /// The ask in auctions, in percent of the chain's quote (default 100).
    #[serde(default = "hundred")]
    pub ask_percent: u32,
    /// Disk for unpacked program images (default 50GiB), evicted least recently used.
    #[serde(default = "image_cache")]
    pub image_cache: String,
}

fn image_cache() -> String {
    "50GiB".into()
}

fn yes() -> bool {
    true
}

fn hundred() -> u32 {
    100
}

pub fn load(config: &Path) -> Result<provernet_node::NodeSettings> {
    let cfg: NodeToml = read_toml(
        config,
        "node configuration",
        "`provernet devnet` writes one per prover node; see the README",
    )?;
    if cfg.no_cgroups {
        return Err(anyhow!(
            "{}: `no_cgroups` is not allowed on a prover node: a network job runs only with its \
             memory, CPU and process limits enforced, or not at all. Remove the line and give \
             the node delegated cgroups (run it as root, or under systemd with `Delegate=yes`); \
             `provernet program run --degraded` is the way to try a program on this host",
            config.display()
        ));
    }
    let base = config.parent().unwrap_or(Path::new("."));
    let seed = read_seed(&relative_to(base, &cfg.key))?;
    let mut capacity = provernet_node::detect_capacity();
    if let Some(c) = &cfg.cores {
        capacity.cores = c.parse::<MilliCores>().map_err(|e| anyhow!("cores: {e}"))?;
    }
    if let Some(m) = &cfg.memory {
        capacity.memory = m.parse::<Bytes>().map_err(|e| anyhow!("memory: {e}"))?;
    }
    if let Some(g) = cfg.gpus {
        capacity.gpus = GpuCount(g);
    }
    let mut labels: Vec<Label> =
        provernet_sandbox::host::cpu_labels().iter().filter_map(|l| l.parse().ok()).collect();
    for l in &cfg.labels {
        labels.push(l.parse().map_err(|e| anyhow!("label `{l}`: {e}"))?);
    }
    let stake: MicroCredits = cfg.stake.parse().map_err(|e| anyhow!("stake: {e}"))?;
    let image_cache: Bytes =
        cfg.image_cache.parse().map_err(|e| anyhow!("image_cache `{}`: {e}", cfg.image_cache))?;
    if !(1..=10_000).contains(&cfg.ask_percent) {
        return Err(anyhow!(
            "ask_percent is {}; it must be 1 to 10000 (percent of the chain's quote)",
            cfg.ask_percent
        ));
    }
    let apis = cfg.api.list();
    if apis.is_empty() || apis.len() > provernet_sdk::APIS_MAX {
        return Err(anyhow!(
            "api lists {} validators; give 1 to {}",
            apis.len(),
            provernet_sdk::APIS_MAX
        ));
    }
    for a in &apis {
        if !(a.starts_with("http://") || a.starts_with("https://")) {
            return Err(anyhow!("api `{a}` is not an http:// or https:// URL"));
        }
    }
    Ok(provernet_node::NodeSettings {
        apis,
        seed,
        data_dir: relative_to(base, &cfg.data_dir),
        capacity,
        labels,
        stake,
        helper: Helper::SelfExec(std::env::current_exe()?),
        poll: Duration::from_secs(2),
        corrupt_proofs: cfg.testing_corrupt_proofs,
        markets: cfg.markets,
        ask_bps: cfg.ask_percent * 100,
        image_cache,
    })
}

pub fn run(args: NodeArgs) -> Result<()> {
    if let Some(NodeCommand::Init(a)) = args.command {
        return init(a);
    }
    let Some(config) = args.config else {
        return Err(anyhow!("give --config node.toml, or `provernet node init` to write one"));
    };
    crate::logging::init();
    let settings = load(&config)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(provernet_node::run(settings, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}
