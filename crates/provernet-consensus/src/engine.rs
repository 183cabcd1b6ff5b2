//! Wiring of one validator: simplex (votes, certificates, its resolver), marshal (block
//! archives, ordered delivery of finalized blocks, backfill), buffered broadcast of blocks, the
//! executor, transaction gossip, and blob availability (announcements and the blob resolver).
//! Generic over the runtime and the p2p network, so the same code runs on tokio with
//! authenticated TCP and in the deterministic simulator.

use crate::app::{start_executor, App, PublicKey, Scheme, SeedRecorder};
use crate::blobnet::{self, BlobConsumer, BlobNet, BlobProducer, Charge, HaveBatch, Want};
use crate::block::BLOCK_BYTES_MAX;
use crate::chain::Chain;
use crate::mempool::{AdmitError, Admitted, Source};
use commonware_broadcast::buffered;
use commonware_consensus::marshal::standard::Inline;
use commonware_consensus::marshal::Start;
use commonware_consensus::marshal::{
    self, core::Actor as Marshal, resolver::p2p as marshal_resolver,
};
use commonware_consensus::simplex::{self, elector::RoundRobin};
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::sha256::Sha256;
use commonware_cryptography::{Digested, Digestible};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, Supervisor};
use commonware_storage::archive::immutable;
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU64};
use futures::channel::mpsc;
use futures::StreamExt;
use provernet_types::codec::BoundedBytes;
use provernet_types::limits::TX_BYTES_MAX;
use provernet_types::{decode_exact, BoundedVec, Encode, TxHash, VerifiedTx};
use rand_core::CryptoRng;
use std::num::NonZeroUsize;
use std::time::Duration;
use tracing::{debug, warn};

/// p2p channel numbers. Every validator must use the same.
pub mod channel {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const RESOLVER: u64 = 2;
    pub const BACKFILL: u64 = 3;
    pub const BLOCKS: u64 = 4;
    pub const TXS: u64 = 5;
    /// Requests for blob heads and pieces, and their answers.
    pub const BLOBS: u64 = 6;
    /// Announcements of blobs a validator holds.
    pub const HAVES: u64 = 7;
    /// All of them, for registration loops.
    pub const ALL: [u64; 8] = [VOTES, CERTIFICATES, RESOLVER, BACKFILL, BLOCKS, TXS, BLOBS, HAVES];
}

/// The largest p2p message: a full block plus framing.
pub const MAX_MESSAGE_BYTES: u32 = (BLOCK_BYTES_MAX + (1 << 20)) as u32;

const MAILBOX: NonZeroUsize = NZUsize!(1024);
const TX_GOSSIP_QUEUE: usize = 10_000;
const GOSSIP_BATCH_MAX: usize = 512;
const GOSSIP_BATCH_BYTES: usize = 1 << 20;
/// Pending transactions that can apply next are gossiped again after this many blocks.
const REGOSSIP_EVERY_BLOCKS: u64 = 2;
/// Blobs of pending transactions are announced again after this many blocks.
const REANNOUNCE_EVERY_BLOCKS: u64 = 2;
const HAVES_QUEUE: usize = 10_000;
/// Most peer transactions waiting for their blobs at once; more are dropped (the peer gossips
/// them again).
const PARKED_MAX: usize = 1024;
/// How long a peer's transaction may wait for its blobs.
const PARKED_WITHIN: Duration = Duration::from_secs(60);
/// How long a client's transaction may wait for the blobs it names to arrive from other
/// validators (a blob nobody holds is refused after this long).
const CLIENT_BLOBS_WITHIN: Duration = Duration::from_secs(20);

/// A batch of encoded signed transactions as gossiped between validators.
type GossipBatch = BoundedVec<BoundedBytes<TX_BYTES_MAX>, GOSSIP_BATCH_MAX>;

fn encode_batch(txs: Vec<Vec<u8>>) -> Option<Vec<u8>> {
    let items =
        txs.into_iter().map(BoundedBytes::try_from_vec).collect::<Result<Vec<_>, _>>().ok()?;
    Some(GossipBatch::try_from_vec(items).ok()?.encode())
}

/// The p2p channels one validator needs, as (sender, receiver) pairs.
#[derive(Debug)]
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub blocks: (S, R),
    pub txs: (S, R),
    pub blobs: (S, R),
    pub haves: (S, R),
}

/// Everything one validator is started with.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    pub public_key: PublicKey,
    /// The threshold scheme holding this validator's share.
    pub scheme: Scheme,
    pub chain: Chain,
    /// Prefix of this validator's consensus storage partitions.
    pub partition: String,
    /// Where this validator keeps blobs.
    pub blobs: provernet_blobs::BlobStore,
}

/// The handle the API uses to submit transactions: obtains the blobs they name, admits them
/// to the local mempool, then gossips them.
#[derive(Clone, Debug)]
pub struct Submitter {
    chain: Chain,
    gossip: mpsc::Sender<Vec<u8>>,
    blobs: Option<BlobNet>,
}

impl Submitter {
    /// A submitter that admits to `chain`'s mempool and gossips nowhere, and does not check
    /// blobs (for a node's own tools and tests that drive the chain without consensus).
    pub fn detached(chain: Chain) -> Submitter {
        let (gossip, _) = mpsc::channel(1);
        Submitter { chain, gossip, blobs: None }
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Blob availability, for uploads and downloads through the API.
    pub fn blobs(&self) -> Option<&BlobNet> {
        self.blobs.as_ref()
    }

    /// Admits a client's encoded signed transaction and forwards it to the other validators.
    /// Every blob it names must be here, or be fetched from a peer first: a transaction naming
    /// a blob no validator provides in time is refused (`blob_unavailable`, naming the blob).
    pub async fn submit(&self, bytes: &[u8]) -> Result<(TxHash, Admitted), AdmitError> {
        // The signature is checked once, off the chain's lock.
        let tx = self.chain.verify(bytes)?;
        if let Some(net) = &self.blobs {
            // Only a transaction that passes every admission check may make this validator
            // fetch anything.
            if self.chain.check_verified(&tx, bytes.len(), Source::Client)? == Admitted::Added {
                let blobs = tx.tx().body.blobs();
                if !blobs.is_empty() {
                    let charge =
                        Charge { account: tx.tx().signer, quota: provernet_blobs::Quota::Enforce };
                    let wanted: Vec<_> = blobs.into_iter().map(|b| (b, charge)).collect();
                    net.obtain_all(&wanted, CLIENT_BLOBS_WITHIN, Want::Admit)
                        .await
                        .map_err(AdmitError::Blob)?;
                }
            }
        }
        let (hash, admitted) = self.chain.submit_verified(tx, bytes.len(), Source::Client)?;
        if admitted == Admitted::Added {
            // A full gossip queue only delays the transaction until it is gossiped again.
            let _ = self.gossip.clone().try_send(bytes.to_vec());
        }
        Ok((hash, admitted))
    }
}

/// Timeouts scaled to the block time: a leader gets two block times to propose.
fn timeouts(block_time: Duration) -> (Duration, Duration) {
    let leader = (block_time * 2).max(Duration::from_millis(500));
    (leader, leader * 2)
}

fn immutable_config<C>(
    prefix: &str,
    name: &str,
    page_cache: CacheRef,
    codec: C,
) -> immutable::Config<C> {
    let p = format!("{prefix}-{name}");
    immutable::Config {
        metadata_partition: format!("{p}-metadata"),
        freezer_table_partition: format!("{p}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{p}-freezer-key"),
        freezer_key_page_cache: page_cache,
        freezer_value_partition: format!("{p}-freezer-value"),
        freezer_value_target_size: 1 << 20,
        freezer_value_compression: None,
        ordinal_partition: format!("{p}-ordinal"),
        items_per_section: NZU64!(1024),
        codec_config: codec,
        replay_buffer: NZUsize!(1 << 16),
        freezer_key_write_buffer: NZUsize!(1 << 16),
        freezer_value_write_buffer: NZUsize!(1 << 16),
        ordinal_write_buffer: NZUsize!(1 << 16),
    }
}

/// Starts one validator. Returns the transaction submitter and the handles of its tasks (the
/// node is down when any of them ends).
pub async fn start<E, P, B, S, R>(
    context: E,
    cfg: ValidatorConfig,
    peers: P,
    blocker: B,
    channels: Channels<S, R>,
) -> (Submitter, Vec<Handle<()>>)
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics + Supervisor,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let chain = cfg.chain.clone();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let prefix = cfg.partition.clone();
    let mut handles = Vec::new();

    let (resolver_rx, resolver) = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: cfg.public_key.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: MAILBOX,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: cfg.public_key.clone(),
            mailbox_size: MAILBOX,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    handles.push(broadcast.start(channels.blocks));

    let finalizations = immutable::Archive::init(
        context.child("finalizations"),
        immutable_config(&prefix, "finalizations", page_cache.clone(), ()),
    )
    .await
    .expect("cannot open the finalizations archive");
    let blocks = immutable::Archive::init(
        context.child("blocks"),
        immutable_config(&prefix, "blocks", page_cache.clone(), ()),
    )
    .await
    .expect("cannot open the blocks archive");

    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let (marshal_actor, marshal_mailbox, _floor) = Marshal::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: ConstantProvider::new(cfg.scheme.clone()),
            epocher: epocher.clone(),
            start: Start::Genesis(Digested::precomputed(
                chain.genesis_block().clone(),
                chain.genesis_block().digest(),
            )),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size: MAILBOX,
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(64),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 16),
            key_write_buffer: NZUsize!(1 << 16),
            value_write_buffer: NZUsize!(1 << 16),
            block_codec_config: (),
            max_repair: NZUsize!(64),
            max_pending_acks: NZUsize!(1),
            strategy: Sequential,
        },
    )
    .await;

    // Blob availability: tasks it spawns run under one supervised task of this validator.
    let (spawn_tx, mut spawn_rx) = mpsc::unbounded::<futures::future::BoxFuture<'static, ()>>();
    handles.push(context.child("blob_tasks").spawn(move |ctx| async move {
        while let Some(task) = spawn_rx.next().await {
            ctx.child("blob_task").spawn(move |_| task);
        }
        futures::future::pending::<()>().await;
    }));
    let clock = context.child("blob_clock");
    let rt = blobnet::Runtime {
        spawn: std::sync::Arc::new(move |f| {
            let _ = spawn_tx.unbounded_send(f);
        }),
        sleep: std::sync::Arc::new(move |d| Box::pin(clock.sleep(d))),
    };
    let (haves_tx, mut haves_rx) = mpsc::channel::<blobnet::Have>(HAVES_QUEUE);
    let validators = chain.with_state(|s| s.params().validators.len());
    let blobs = BlobNet::new(cfg.blobs.clone(), chain.clone(), validators, rt, haves_tx);
    let (blob_engine, blob_mailbox) = commonware_resolver::p2p::Engine::new(
        context.child("blob_resolver"),
        commonware_resolver::p2p::Config {
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            consumer: BlobConsumer(blobs.clone()),
            producer: BlobProducer(blobs.clone()),
            mailbox_size: MAILBOX,
            me: Some(cfg.public_key.clone()),
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
    );
    blobs.attach(blob_mailbox, cfg.public_key.clone());
    handles.push(blob_engine.start(channels.blobs));
    chain.set_blob_gate(std::sync::Arc::new(blobs.clone()));
    let (mut haves_sender, mut haves_receiver) = channels.haves;
    handles.push(context.child("haves_out").spawn(move |_| async move {
        while let Some(first) = haves_rx.next().await {
            let mut batch = vec![first];
            while batch.len() < blobnet::HAVES_BATCH_MAX {
                match haves_rx.try_recv() {
                    Ok(h) => batch.push(h),
                    _ => break,
                }
            }
            match HaveBatch::try_from_vec(batch) {
                Ok(b) => {
                    haves_sender.send(Recipients::All, b.encode(), false);
                }
                Err(_) => warn!("a batch of blob announcements exceeded its bound"),
            }
        }
        futures::future::pending::<()>().await;
    }));
    let heard = blobs.clone();
    handles.push(context.child("haves_in").spawn(move |_| async move {
        loop {
            match haves_receiver.recv().await {
                Ok((peer, message)) => {
                    match decode_exact::<HaveBatch>(message.as_ref(), "blob announcements") {
                        Ok(batch) => {
                            for have in batch.iter() {
                                heard.heard(peer.clone(), *have);
                            }
                        }
                        Err(_) => debug!(?peer, "undecodable blob announcements"),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "blob announcement channel closed");
                    return;
                }
            }
        }
    }));
    let start_blobs = blobs.clone();
    handles.push(context.child("blob_catch_up").spawn(move |_| async move {
        start_blobs.catch_up().await;
        futures::future::pending::<()>().await;
    }));

    let (finalizer, executor) = start_executor(context.child("executor"), chain.clone());
    handles.push(executor);
    handles.push(marshal_actor.start(finalizer, buffer, (resolver_rx, resolver)));

    let app = App::new(chain.clone(), cfg.scheme.clone()).with_blobs(blobs.clone());
    let inline = Inline::new(context.child("inline"), app, marshal_mailbox, epocher);
    let (leader_timeout, certification_timeout) = timeouts(chain.config().block_time);
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::config::Config {
            scheme: cfg.scheme.clone(),
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: SeedRecorder::new(inline, chain.clone()),
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size: MAILBOX,
            epoch: Epoch::zero(),
            floor: simplex::config::Floor::Genesis(chain.genesis_block().digest()),
            replay_buffer: NZUsize!(1 << 16),
            write_buffer: NZUsize!(1 << 16),
            page_cache,
            leader_timeout,
            certification_timeout,
            timeout_retry: leader_timeout,
            view_retention: ViewDelta::new(10),
            skip: simplex::config::SkipPolicy::Enabled {
                timeout: certification_timeout * 2,
                budget: simplex::config::SkipBudget::Participants,
            },
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: simplex::config::ForwardPolicy::Disabled,
            track_historical_votes: false,
        },
    );
    handles.push(engine.start(channels.votes, channels.certificates, channels.resolver));

    // Transaction gossip: what this validator admits goes to every peer; what peers send is
    // admitted here once its blobs are here (and not forwarded again: every validator hears
    // every other directly). Pending transactions that can apply next are gossiped again every
    // few blocks, and the blobs they name announced again, so a peer that missed them (down,
    // or partitioned) still gets them to its proposals.
    let (gossip_tx, mut gossip_rx) = mpsc::channel::<Vec<u8>>(TX_GOSSIP_QUEUE);
    let mut finalized = chain.subscribe();
    let (again_chain, again_blobs, mut again_gossip) =
        (chain.clone(), blobs.clone(), gossip_tx.clone());
    handles.push(context.child("tx_regossip").spawn(move |_| async move {
        while let Some(block) = finalized.next().await {
            for tx in again_chain.regossip(REGOSSIP_EVERY_BLOCKS, GOSSIP_BATCH_MAX) {
                if again_gossip.try_send(tx).is_err() {
                    break;
                }
            }
            let pending = again_chain.pending_blobs(blobnet::KNOWN_MAX / 16);
            again_blobs.reannounce(pending, block.height.0, REANNOUNCE_EVERY_BLOCKS);
        }
        warn!("finalized block stream ended: transactions are no longer gossiped again");
        futures::future::pending::<()>().await;
    }));
    let (mut tx_sender, mut tx_receiver) = channels.txs;
    handles.push(context.child("tx_gossip_out").spawn(move |_| async move {
        while let Some(first) = gossip_rx.next().await {
            // Send what is queued as one batch, bounded in count and bytes.
            let mut batch = vec![first];
            let mut bytes = batch[0].len();
            while batch.len() < GOSSIP_BATCH_MAX && bytes < GOSSIP_BATCH_BYTES {
                match gossip_rx.try_recv() {
                    Ok(tx) => {
                        bytes += tx.len();
                        batch.push(tx);
                    }
                    _ => break,
                }
            }
            match encode_batch(batch) {
                Some(message) => {
                    tx_sender.send(Recipients::All, message, false);
                }
                None => warn!("a transaction batch exceeded its bounds and was not gossiped"),
            }
        }
        // Every submitter is gone (a validator run without an API): nothing more to send, but
        // that is no reason to stop the node.
        futures::future::pending::<()>().await;
    }));
    let gossip_chain = chain.clone();
    let parked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gossip_blobs = blobs.clone();
    handles.push(context.child("tx_gossip_in").spawn(move |_| async move {
        loop {
            match tx_receiver.recv().await {
                Ok((peer, message)) => {
                    let Ok(batch) =
                        decode_exact::<GossipBatch>(message.as_ref(), "transaction batch")
                    else {
                        debug!(?peer, "undecodable transaction batch");
                        continue;
                    };
                    for tx in batch.iter() {
                        admit_gossiped(&gossip_chain, &gossip_blobs, &parked, tx.as_slice());
                    }
                }
                Err(e) => {
                    warn!(error = %e, "transaction gossip channel closed");
                    return;
                }
            }
        }
    }));

    (Submitter { chain, gossip: gossip_tx, blobs: Some(blobs) }, handles)
}

/// Admits a transaction a peer gossiped: at once if it names no blob this validator lacks,
/// else once they arrive from peers (parked meanwhile, at most [`PARKED_MAX`] at a time).
fn admit_gossiped(
    chain: &Chain,
    blobs: &BlobNet,
    parked: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    bytes: &[u8],
) {
    use std::sync::atomic::Ordering;
    // Only a transaction that passes every admission check may make this validator fetch.
    let signed = match provernet_types::SignedTx::decode(bytes) {
        Ok(s) => s,
        Err(e) => {
            debug!(error = %e, "gossiped transaction not admitted");
            return;
        }
    };
    // A transaction already pending (gossip repeats itself) costs a hash, not a signature.
    if chain.mempool_contains(&signed.hash()) {
        return;
    }
    // The signature is checked once, off the chain's lock.
    let checked = signed.verify(chain.chain_id()).map_err(AdmitError::from).and_then(|tx| {
        let admitted = chain.check_verified(&tx, bytes.len(), Source::Peer)?;
        Ok((tx, admitted))
    });
    let (tx, wanted): (VerifiedTx, Vec<(provernet_types::BlobRef, Charge)>) = match checked {
        Ok((tx, Admitted::Added)) => {
            let charge = Charge { account: tx.tx().signer, quota: provernet_blobs::Quota::Enforce };
            let wanted = tx.tx().body.blobs().into_iter().map(|b| (b, charge)).collect();
            (tx, wanted)
        }
        Ok((_, Admitted::Known)) => return,
        Err(e) => {
            debug!(error = %e, "gossiped transaction not admitted");
            return;
        }
    };
    let len = bytes.len();
    let admit = move |chain: &Chain, tx: VerifiedTx| {
        if let Err(e) = chain.submit_verified(tx, len, Source::Peer) {
            debug!(error = %e, "gossiped transaction not admitted");
        }
    };
    if wanted.iter().all(|(b, _)| blobs.holds(&b.hash)) {
        admit(chain, tx);
        return;
    }
    if parked.fetch_add(1, Ordering::Relaxed) >= PARKED_MAX {
        parked.fetch_sub(1, Ordering::Relaxed);
        debug!(
            "too many gossiped transactions wait for blobs; dropping one (it is gossiped again)"
        );
        return;
    }
    let (chain, net, parked) = (chain.clone(), blobs.clone(), parked.clone());
    blobs.run(async move {
        match net.obtain_all(&wanted, PARKED_WITHIN, Want::Admit).await {
            Ok(()) => admit(&chain, tx),
            Err(e) => debug!("a gossiped transaction's blobs did not arrive: {e}"),
        }
        parked.fetch_sub(1, Ordering::Relaxed);
    });
}
