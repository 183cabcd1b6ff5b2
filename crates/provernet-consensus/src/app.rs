//! The commonware side of the glue: the application marshal wraps for simplex (propose and
//! verify), the reporter that records each view's threshold seed, and the executor that
//! applies finalized blocks.

use crate::block::{Block, SEED_BYTES};
use crate::chain::{Chain, CheckError};
use commonware_codec::{DecodeExt, Encode as _};
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::marshal::Update;
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::{self, Seedable};
use commonware_consensus::simplex::types::{Activity, Context};
use commonware_consensus::types::{Epoch, Round, View};
use commonware_consensus::{Block as _, Heightable, Reporter};
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{ed25519, Digested, Digestible};
use commonware_runtime::{Clock, Spawner};
use commonware_utils::Acknowledgement;
use futures::channel::mpsc;
use futures::StreamExt;
use std::time::{Duration, UNIX_EPOCH};
use tracing::{debug, error, info, warn};

/// Validator identities (and p2p identities).
pub type PublicKey = ed25519::PublicKey;
/// The consensus signing scheme: threshold BLS12-381 whose certificates carry a per-view seed.
pub type Scheme = vrf::Scheme<PublicKey, MinSig>;
/// The consensus context simplex hands to propose and verify.
pub type Ctx = Context<Digest, PublicKey>;

/// How far a block's time may be ahead of the local clock before a validator waits.
const MAX_CLOCK_SKEW_MS: u64 = 2_000;
/// How long a proposer waits for the seed of its parent's view before skipping its turn.
const SEED_WAIT: Duration = Duration::from_secs(2);
/// How many unexecuted ancestors a validator will execute to catch up inside verify.
const ANCESTRY_MAX: usize = 256;

fn now_ms(clock: &impl Clock) -> u64 {
    clock.current().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Decodes a seed carried in a block and checks it is the threshold signature of `view`.
pub fn seed_is_valid(scheme: &Scheme, view: u64, seed: &[u8; SEED_BYTES]) -> bool {
    let Ok(signature) = <MinSig as Variant>::Signature::decode(bytes::Bytes::copy_from_slice(seed))
    else {
        return false;
    };
    vrf::Seed::<MinSig>::new(Round::new(Epoch::zero(), View::new(view)), signature).verify(scheme)
}

fn seed_bytes(seed: &vrf::Seed<MinSig>) -> Option<[u8; SEED_BYTES]> {
    seed.signature.encode().as_ref().try_into().ok()
}

/// The application simplex runs through marshal's inline wrapper.
#[derive(Clone, Debug)]
pub struct App {
    chain: Chain,
    scheme: Scheme,
    blobs: Option<crate::blobnet::BlobNet>,
}

impl App {
    pub fn new(chain: Chain, scheme: Scheme) -> App {
        App { chain, scheme, blobs: None }
    }

    /// Votes for a block only once this validator holds every blob its transactions name.
    pub fn with_blobs(mut self, blobs: crate::blobnet::BlobNet) -> App {
        self.blobs = Some(blobs);
        self
    }

    /// Fetches what this validator lacks of the blobs `block` names, within `within`; `false`
    /// if some blob could not be had (the block is then not voted for).
    async fn has_blobs(&self, block: &Block, within: Duration) -> bool {
        let Some(net) = &self.blobs else { return true };
        let wanted: Vec<_> = block
            .header()
            .txs
            .iter()
            .flat_map(|t| {
                let charge = crate::blobnet::Charge {
                    account: t.tx.signer,
                    quota: provernet_blobs::Quota::Enforce,
                };
                t.tx.body.blobs().into_iter().map(move |b| (b, charge))
            })
            .collect();
        if wanted.is_empty() {
            return true;
        }
        match net.obtain_all(&wanted, within, crate::blobnet::Want::Vote).await {
            Ok(()) => true,
            Err(e) => {
                warn!(
                    height = block.header().height.0,
                    "not voting for a block whose blobs are not available here: {e}"
                );
                false
            }
        }
    }

    /// Executes, oldest first, the ancestors in `ancestry` whose state this validator lacks
    /// (after a restart, or when it missed a proposal). `false` if the chain cannot be followed.
    async fn catch_up(&self, mut ancestry: impl Ancestry<Block>) -> bool {
        let mut missing: Vec<Digested<Block>> = Vec::new();
        let tip = self.chain.tip();
        while let Some(block) = ancestry.next().await {
            if self.chain.knows(&block.digest()) {
                break;
            }
            if block.height().get() <= tip.height || missing.len() >= ANCESTRY_MAX {
                warn!(height = block.height().get(), "ancestry does not reach the finalized tip");
                return false;
            }
            missing.push(block);
        }
        for block in missing.iter().rev() {
            let view = block.inner().header().parent_view;
            if let Err(e) = self.chain.check(block.inner(), block.digest(), view) {
                warn!(error = %e, "cannot execute a notarized ancestor");
                return false;
            }
        }
        true
    }
}

impl<E> commonware_consensus::Application<E> for App
where
    E: Clock + Send + Sync + 'static,
{
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, context): (E, Ctx),
        ancestry: impl Ancestry<Block>,
        _: (),
    ) -> Option<Digested<Block>> {
        let parent = ancestry.peek()?.clone();
        if !self.chain.knows(&parent.digest()) && !self.catch_up(ancestry).await {
            return None;
        }
        let (parent_height, parent_time) = self.chain.known_block(&parent.digest())?;
        let target = parent_time.saturating_add(self.chain.config().block_time.as_millis() as u64);
        let now = now_ms(&clock);
        if now < target {
            clock.sleep(Duration::from_millis(target - now)).await;
        }
        let time = now_ms(&clock).max(parent_time + 1);
        let parent_view = context.parent.0.get();
        let seed = if parent_height == 0 {
            None
        } else {
            let deadline = now_ms(&clock) + SEED_WAIT.as_millis() as u64;
            loop {
                if let Some(seed) = self.chain.seed(parent_view) {
                    break Some(seed);
                }
                if now_ms(&clock) >= deadline {
                    warn!(parent_view, "no seed for the parent's view; skipping this proposal");
                    return None;
                }
                clock.sleep(Duration::from_millis(10)).await;
            }
        };
        let (block, digest) = self.chain.build(parent.digest(), parent_view, time, seed)?;
        debug!(height = block.header().height.0, txs = block.header().txs.len(), "proposed");
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, context): (E, Ctx),
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let Some(block) = ancestry.next().await else { return false };
        let header = block.inner().header();
        if !self.chain.knows(&block.parent()) && !self.catch_up(ancestry).await {
            return false;
        }
        // A block from the future becomes acceptable once our clock is within the skew.
        let now = now_ms(&clock);
        if header.time.0 > now + MAX_CLOCK_SKEW_MS {
            clock.sleep(Duration::from_millis(header.time.0 - now - MAX_CLOCK_SKEW_MS)).await;
        }
        if let Some(seed) = &header.seed {
            if !seed_is_valid(&self.scheme, header.parent_view, seed) {
                warn!(height = header.height.0, "block carries an invalid seed");
                return false;
            }
        }
        match self.chain.check(block.inner(), block.digest(), context.parent.0.get()) {
            Ok(()) => {}
            Err(CheckError::UnknownParent { .. }) => return false,
            Err(e) => {
                warn!(error = %e, "refusing a proposed block");
                return false;
            }
        }
        // Data availability: a block is voted for only by validators that hold its blobs.
        let within = (self.chain.config().block_time * 2).max(Duration::from_secs(1));
        self.has_blobs(block.inner(), within).await
    }
}

/// Wraps the reporter simplex reports to (marshal's wrapper) and records every recovered seed.
#[derive(Clone)]
pub struct SeedRecorder<R> {
    inner: R,
    chain: Chain,
}

impl<R> std::fmt::Debug for SeedRecorder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedRecorder").finish_non_exhaustive()
    }
}

impl<R> SeedRecorder<R> {
    pub fn new(inner: R, chain: Chain) -> Self {
        SeedRecorder { inner, chain }
    }
}

impl<R> Reporter for SeedRecorder<R>
where
    R: Reporter<Activity = Activity<Scheme, Digest>>,
{
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        let seed = match &activity {
            Activity::Notarization(n) | Activity::Certification(n) => Some(n.seed()),
            Activity::Finalization(f) => Some(f.seed()),
            _ => None,
        };
        if let Some(seed) = seed {
            if let Some(bytes) = seed_bytes(&seed) {
                self.chain.record_seed(seed.round.view().get(), bytes);
            }
        }
        self.inner.report(activity)
    }
}

/// Marshal's reporter: queues finalized blocks for the executor task.
#[derive(Clone)]
pub struct Finalizer {
    queue: mpsc::UnboundedSender<Update<Block>>,
}

impl std::fmt::Debug for Finalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finalizer").finish_non_exhaustive()
    }
}

impl Reporter for Finalizer {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        // The executor only stops when the node is going down; losing the update then is fine,
        // since marshal redelivers unacknowledged blocks after a restart.
        let _ = self.queue.unbounded_send(activity);
        commonware_actor::Feedback::Ok
    }
}

/// Starts the executor: applies finalized blocks in order and acknowledges each once durable.
pub fn start_executor<E: Spawner>(
    context: E,
    chain: Chain,
) -> (Finalizer, commonware_runtime::Handle<()>) {
    let (tx, mut rx) = mpsc::unbounded::<Update<Block>>();
    let handle = context.spawn(move |_| async move {
        while let Some(update) = rx.next().await {
            let Update::Block(block, ack) = update else { continue };
            match chain.finalize(block.inner(), block.digest()) {
                Ok(applied) => {
                    if applied {
                        let h = block.inner().header();
                        info!(height = h.height.0, txs = h.txs.len(), "finalized");
                    }
                    ack.acknowledge();
                }
                Err(e) => {
                    error!(error = %e, "executor stopped: this validator's state cannot follow the chain");
                    return;
                }
            }
        }
    });
    (Finalizer { queue: tx }, handle)
}
