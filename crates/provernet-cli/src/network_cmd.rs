//! `provernet keys`, `provernet genesis` and `provernet validator`: create a network and run
//! its validators.

use crate::Hint;
use anyhow::{anyhow, Context, Result};
use provernet_consensus::network::{deal_network_random, KeyFile, NetworkFile};
use provernet_consensus::node::{run_validator, NodeSettings};
use provernet_ledger::{ChainParams, Genesis};
use provernet_types::{AccountId, BoundedString, BoundedVec, Keypair, MicroCredits};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a new ed25519 key (account and validator identity) and write its seed to a file.
    Generate {
        /// Where to write the key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the account of a key file.
    Show {
        key: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// A plain account key file (validators' key files also carry a threshold share).
#[derive(Serialize, Deserialize)]
pub struct AccountKeyFile {
    pub seed: String,
}

#[derive(Serialize)]
struct KeyInfo {
    account: String,
    file: String,
}

fn write_new(path: &Path, contents: &str) -> Result<()> {
    write_new_mode(path, contents, 0o644)
}

/// Writes a new file only its owner can read (`0600` from its creation on): key files.
pub fn write_secret(path: &Path, contents: &str) -> Result<()> {
    write_new_mode(path, contents, 0o600)
}

fn write_new_mode(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(
            |e| {
                anyhow::Error::new(Hint("choose another path or remove the existing file".into()))
                    .context(format!("cannot create {}: {e}", path.display()))
            },
        )?;
    f.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Reads the seed of an account or validator key file.
pub fn read_seed(path: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let file: AccountKeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a key file (JSON with a `seed`)", path.display()))?;
    hex::decode(&file.seed)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| anyhow!("{}: `seed` must be 32 bytes of hex", path.display()))
}

fn print_key(info: &KeyInfo, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(info)?)?;
    } else {
        writeln!(out, "account {}\nkey file {}", info.account, info.file)?;
    }
    Ok(())
}

pub fn run_keys(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Generate { out, json } => {
            let key = Keypair::generate();
            let file = AccountKeyFile { seed: hex::encode(key.seed()) };
            write_secret(&out, &serde_json::to_string_pretty(&file)?)?;
            print_key(
                &KeyInfo { account: key.account().to_string(), file: out.display().to_string() },
                json,
            )
        }
        KeysCommand::Show { key, json } => {
            let seed = read_seed(&key)?;
            let account = Keypair::from_seed(seed).account();
            print_key(
                &KeyInfo { account: account.to_string(), file: key.display().to_string() },
                json,
            )
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct GenesisArgs {
    /// Directory to create: `network.json`, `faucet.json` and one `validator-N/` per validator.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of validators (1 for a devnet; 4 tolerates one faulty).
    #[arg(long, default_value_t = 1)]
    pub validators: usize,
    /// Host the validators listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// p2p port of validator 0; validator N uses this plus N.
    #[arg(long, default_value_t = 30300)]
    pub base_port: u16,
    /// HTTP API port of validator 0; validator N uses this plus N.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Chain id (at most 32 bytes).
    #[arg(long, default_value = "provernet-devnet")]
    pub chain_id: String,
    /// Credits for the generated faucet account.
    #[arg(long, default_value = "1000000")]
    pub faucet: MicroCredits,
    /// More funded accounts: `ACCOUNT=CREDITS` (repeatable).
    #[arg(long = "fund")]
    pub fund: Vec<String>,
    #[arg(long)]
    pub json: bool,
    /// Changes to the devnet parameters (for benchmarks).
    #[arg(skip)]
    pub tweak: Option<fn(&mut ChainParams)>,
}

/// A validator's configuration file.
#[derive(Serialize, Deserialize, Debug)]
pub struct ValidatorToml {
    /// Where the ledger database and consensus storage live.
    pub data_dir: PathBuf,
    /// The network's genesis file.
    pub network: PathBuf,
    /// This validator's key file (seed and threshold share).
    pub key: PathBuf,
    /// p2p listen address.
    pub listen: SocketAddr,
    /// HTTP API listen address.
    pub api: SocketAddr,
    /// Where blobs are kept: `{ kind = "local", dir = "..." }` (default: `data_dir/blobs`) or
    /// `{ kind = "s3", bucket = "...", endpoint = "...", access_key_id = "...",
    /// secret_access_key = "..." }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<provernet_blobs::Backend>,
    /// The other validators' APIs: this validator's built-in verifier reads its work through
    /// its own API and falls back to these when that stops answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_apis: Vec<String>,
    /// Limits of the HTTP API (connections, slow clients, streams, uploads); any field left
    /// out keeps its default (see `provernet_api::ServeLimits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_limits: Option<provernet_api::ServeLimits>,
}

#[derive(Serialize)]
pub struct GenesisSummary {
    pub chain_id: String,
    pub network: String,
    pub faucet_account: String,
    pub validators: Vec<String>,
    pub key_origin: &'static str,
}

pub fn run_genesis(args: GenesisArgs) -> Result<()> {
    let summary = create_network(&args)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(out, "created network {} in {}", summary.chain_id, args.out.display())?;
        writeln!(out, "faucet account {} ({})", summary.faucet_account, args.faucet)?;
        for v in &summary.validators {
            writeln!(out, "start with: provernet validator --config {v}")?;
        }
        writeln!(out, "threshold keys: {}", summary.key_origin)?;
    }
    Ok(())
}

/// Writes a new network directory (see `provernet genesis --help`).
pub fn create_network(args: &GenesisArgs) -> Result<GenesisSummary> {
    if args.validators == 0 || args.validators > provernet_types::limits::VALIDATORS_MAX {
        return Err(anyhow::Error::new(Hint("use --validators 1 (devnet) or 4 and up".into()))
            .context(format!("{} validators is not allowed", args.validators)));
    }
    if args.out.exists() {
        return Err(anyhow::Error::new(Hint("remove it or choose another --out".into()))
            .context(format!("{} already exists", args.out.display())));
    }
    let faucet = Keypair::generate();
    let mut accounts: Vec<(AccountId, MicroCredits)> = vec![(faucet.account(), args.faucet)];
    for f in &args.fund {
        let (account, amount) =
            f.split_once('=').ok_or_else(|| anyhow!("--fund {f}: expected ACCOUNT=CREDITS"))?;
        let account: AccountId =
            account.parse().map_err(|e| anyhow!("--fund {f}: bad account: {e}"))?;
        let amount: MicroCredits =
            amount.parse().map_err(|e| anyhow!("--fund {f}: bad amount: {e}"))?;
        accounts.push((account, amount));
    }
    let mut params = ChainParams::devnet(Vec::new());
    params.chain_id =
        BoundedString::try_new(args.chain_id.clone()).map_err(|e| anyhow!("--chain-id: {e}"))?;
    if let Some(tweak) = args.tweak {
        tweak(&mut params);
    }
    let ledger = Genesis {
        params,
        accounts: BoundedVec::try_from_vec(accounts)
            .map_err(|e| anyhow!("too many accounts: {e}"))?,
        programs: BoundedVec::default(),
    };
    let seeds: Vec<([u8; 32], String)> = (0..args.validators)
        .map(|i| {
            (Keypair::generate().seed(), format!("{}:{}", args.host, args.base_port as usize + i))
        })
        .collect();
    let (network, keys) = deal_network_random(ledger, &seeds).map_err(|e| anyhow!("{e}"))?;
    // Check the result the way a validator will read it.
    provernet_consensus::network::Network::from_file(&network).map_err(|e| anyhow!("{e}"))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_new(&args.out.join("network.json"), &serde_json::to_string_pretty(&network)?)?;
    write_secret(
        &args.out.join("faucet.json"),
        &serde_json::to_string_pretty(&AccountKeyFile { seed: hex::encode(faucet.seed()) })?,
    )?;
    let mut validators = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let dir = args.out.join(format!("validator-{i}"));
        write_secret(&dir.join("key.json"), &serde_json::to_string_pretty(key)?)?;
        let listen: SocketAddr =
            format!("{}:{}", args.host, args.base_port as usize + i)
                .parse()
                .with_context(|| format!("--host {} is not an IP address", args.host))?;
        let api: SocketAddr = format!("{}:{}", args.host, args.api_port as usize + i).parse()?;
        let peer_apis = (0..args.validators)
            .filter(|j| *j != i)
            .map(|j| format!("http://{}:{}", args.host, args.api_port as usize + j))
            .collect();
        let toml = ValidatorToml {
            data_dir: PathBuf::from("data"),
            network: PathBuf::from("../network.json"),
            key: PathBuf::from("key.json"),
            listen,
            api,
            blobs: None,
            peer_apis,
            api_limits: None,
        };
        write_new(&dir.join("validator.toml"), &toml::to_string(&toml)?)?;
        validators.push(dir.join("validator.toml").display().to_string());
    }
    Ok(GenesisSummary {
        chain_id: args.chain_id.clone(),
        network: args.out.join("network.json").display().to_string(),
        faucet_account: faucet.account().to_string(),
        validators,
        key_origin: "insecure dealer (devnet/test only; a real network runs a DKG)",
    })
}

#[derive(clap::Args, Debug)]
pub struct ValidatorArgs {
    /// The validator's configuration (as written by `provernet genesis`).
    #[arg(long)]
    config: PathBuf,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// `p`, relative to `base` unless absolute.
pub fn relative_to(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Reads a TOML configuration file; a missing file's error carries `hint`.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path, what: &str, hint: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::Error::new(Hint(hint.to_owned()))
            .context(format!("cannot read {}: {e}", path.display()))
    })?;
    toml::from_str(&text).with_context(|| format!("{} is not a {what}", path.display()))
}

/// Loads a validator configuration, resolving its paths relative to the file, and opens its
/// blob store. Returns the settings, the API's address and the other validators' APIs.
pub fn load_validator(
    config: &Path,
    threads: usize,
) -> Result<(NodeSettings, SocketAddr, Vec<String>, provernet_api::ServeLimits)> {
    let cfg: ValidatorToml = read_toml(
        config,
        "validator configuration",
        "create one with `provernet genesis --out DIR`",
    )?;
    let base = config.parent().unwrap_or(Path::new("."));
    let network_path = relative_to(base, &cfg.network);
    let network: NetworkFile = serde_json::from_str(
        &std::fs::read_to_string(&network_path)
            .with_context(|| format!("reading {}", network_path.display()))?,
    )
    .with_context(|| format!("{} is not a network file", network_path.display()))?;
    let key_path = relative_to(base, &cfg.key);
    let key: KeyFile = serde_json::from_str(
        &std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?,
    )
    .with_context(|| format!("{} is not a validator key file", key_path.display()))?;
    let data_dir = relative_to(base, &cfg.data_dir);
    let blobs = match cfg.blobs {
        Some(provernet_blobs::Backend::Local { dir }) => {
            provernet_blobs::Backend::Local { dir: relative_to(base, &dir) }
        }
        Some(other) => other,
        None => provernet_blobs::Backend::Local { dir: data_dir.join("blobs") },
    };
    let blobs = provernet_blobs::BlobStore::open(&blobs, provernet_blobs::Limits::default())
        .map_err(|e| anyhow!("blob store: {e}"))?;
    Ok((
        NodeSettings { data_dir, network, key, listen: cfg.listen, threads, blobs },
        cfg.api,
        cfg.peer_apis,
        cfg.api_limits.unwrap_or_default(),
    ))
}

pub fn run_validator_cmd(args: ValidatorArgs) -> Result<()> {
    crate::logging::init();
    let (settings, api, peer_apis, limits) = load_validator(&args.config, args.threads)?;
    provernet_api::raise_descriptor_limit();
    let seed: [u8; 32] = hex::decode(&settings.key.seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("the validator key's seed must be 32 bytes of hex"))?;
    let local = if api.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], api.port()))
    } else {
        api
    };
    run_validator(settings, move |submitter| async move {
        // Built-in proof systems are verified here, natively, through our own API.
        let mut apis = vec![format!("http://{local}")];
        apis.extend(peer_apis);
        tokio::spawn(provernet_node::run_builtin_verifier(apis, seed));
        // Uploads in pieces and copies that were abandoned are swept after a day.
        if let Some(net) = submitter.blobs() {
            let store = net.store().clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
                loop {
                    every.tick().await;
                    match store.sweep_staged(provernet_blobs::staging::STAGED_IDLE_MAX).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(blobs = n, "swept abandoned staged blobs"),
                        Err(e) => tracing::warn!("sweeping staged blobs: {e}"),
                    }
                }
            });
        }
        if let Err(e) = provernet_api::serve_with(api, submitter, limits).await {
            tracing::error!("the API cannot listen on {api}: {e}; stopping");
            std::process::exit(1);
        }
    })
    .map_err(|e| anyhow!("{e}"))
}
