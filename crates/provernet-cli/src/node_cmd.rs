//! `provernet node --config node.toml`: run a prover node.

use crate::network_cmd::{read_seed, read_toml, relative_to};
use anyhow::{anyhow, Result};
use provernet_sandbox::Helper;
use provernet_types::{Bytes, GpuCount, Label, MicroCredits, MilliCores};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node's configuration file.
    #[arg(long)]
    config: PathBuf,
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
    })
}

pub fn run(args: NodeArgs) -> Result<()> {
    crate::logging::init();
    let settings = load(&args.config)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(provernet_node::run(settings, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}
