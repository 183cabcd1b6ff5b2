//! A validator process: the tokio runtime, authenticated encrypted TCP between validators
//! (commonware's `lookup` network with the peer list from the network file), consensus storage
//! under the data directory, and the ledger database beside it.

use crate::engine::{self, channel, Channels, Submitter, ValidatorConfig, MAX_MESSAGE_BYTES};
use crate::network::{KeyFile, Network, NetworkError, NetworkFile};
use crate::ChainConfig;
use commonware_cryptography::{ChaCha20Poly1305, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{tokio as cw_tokio, Quota, Runner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZUsize, NZU32};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{error, info};

/// What a validator process needs to start.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Holds `ledger.redb` and the consensus storage (`consensus/`).
    pub data_dir: PathBuf,
    pub network: NetworkFile,
    pub key: KeyFile,
    /// Where this validator's p2p listener binds.
    pub listen: SocketAddr,
    /// Worker threads for the runtime.
    pub threads: usize,
    /// Where the validator keeps blobs.
    pub blobs: provernet_blobs::BlobStore,
}

/// Why a validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("network file: {0}")]
    Network(#[from] NetworkError),
    #[error("validator address `{address}` does not resolve: {reason}")]
    Address { address: String, reason: String },
    #[error("data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("ledger database: {0}")]
    Store(#[from] provernet_store::StoreError),
}

fn resolve(address: &str) -> Result<SocketAddr, NodeError> {
    address
        .to_socket_addrs()
        .map_err(|e| NodeError::Address { address: address.into(), reason: e.to_string() })?
        .next()
        .ok_or_else(|| NodeError::Address { address: address.into(), reason: "no address".into() })
}

/// Runs a validator until it stops. `serve` is started beside consensus with the transaction
/// submitter (the HTTP API hooks in here) and runs inside the same tokio runtime.
pub fn run_validator<F, Fut>(settings: NodeSettings, serve: F) -> Result<(), NodeError>
where
    F: FnOnce(Submitter) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let network = Network::from_file(&settings.network)?;
    let (private, scheme) = network.signer(&settings.key)?;
    let mut peers = Vec::with_capacity(network.validators.len());
    for (key, address) in &network.validators {
        peers.push((key.clone(), Address::from(resolve(address)?)));
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| NodeError::DataDir {
        path: settings.data_dir.clone(),
        reason: e.to_string(),
    })?;
    let chain_cfg = ChainConfig {
        block_time: Duration::from_millis(network.genesis.params.block_time_ms.max(1)),
        ..ChainConfig::default()
    };
    let chain = crate::Chain::open(&ledger_path(&settings.data_dir), &network.genesis, chain_cfg)?;
    let tip = chain.tip();
    info!(
        chain_id = chain.chain_id(),
        height = tip.height,
        validators = peers.len(),
        "validator starting"
    );

    let runtime = cw_tokio::Config::new()
        .with_worker_threads(settings.threads.max(1))
        .with_storage_directory(settings.data_dir.join("consensus"));
    let runner = cw_tokio::Runner::new(runtime);
    runner.start(|context| async move {
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: private.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let p2p_cfg = lookup::Config::local(
            handshake,
            &network.namespace,
            settings.listen,
            NZUsize!(peers.len().max(1)),
            MAX_MESSAGE_BYTES,
            NZUsize!(1024),
        );
        let (mut p2p, mut oracle) = lookup::Network::new(context.child("p2p"), p2p_cfg);
        match Map::try_from(peers) {
            Ok(map) => {
                let _ = oracle.track(0, map);
            }
            Err(_) => {
                error!("the network file lists a validator twice");
                return;
            }
        }
        // Realistic per-peer quotas: the network preallocates mailboxes from them.
        let quota = |n| Quota::per_second(NZU32!(n));
        let mut register = |ch, n| p2p.register(ch, quota(n));
        let channels = Channels {
            votes: register(channel::VOTES, 1_000),
            certificates: register(channel::CERTIFICATES, 1_000),
            resolver: register(channel::RESOLVER, 1_000),
            backfill: register(channel::BACKFILL, 1_000),
            blocks: register(channel::BLOCKS, 1_000),
            txs: register(channel::TXS, 1_000),
            blobs: register(channel::BLOBS, 1_000),
            haves: register(channel::HAVES, 1_000),
        };
        let p2p_handle = p2p.start();
        let cfg = ValidatorConfig {
            public_key: private.public_key(),
            scheme,
            chain,
            partition: "validator".into(),
            blobs: settings.blobs.clone(),
        };
        let (submitter, mut handles) =
            engine::start(context.child("validator"), cfg, oracle.clone(), oracle, channels).await;
        handles.push(p2p_handle);
        let serve_task = tokio::spawn(serve(submitter));
        let (result, index, _rest) = futures::future::select_all(handles).await;
        error!(task = index, result = ?result, "a validator task ended; stopping");
        serve_task.abort();
    });
    Ok(())
}

/// Where the ledger database of a data directory lives.
pub fn ledger_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ledger.redb")
}
