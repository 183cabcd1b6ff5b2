//! The validator's view of the chain: the finalized state in redb, speculative states of
//! notarized-but-not-finalized blocks, the mempool, the recovered seeds, and the subscribers
//! to finalized blocks.
//!
//! Consensus calls in from three places:
//! - the proposer ([`Chain::build`]) takes transactions from the mempool, executes them on the
//!   parent's state and puts the resulting root in the block;
//! - the verifier ([`Chain::check`]) re-executes a proposed block on its parent's state and
//!   accepts it only if the signatures, the seed, the time and the root are right;
//! - the executor ([`Chain::finalize`]) applies each finalized block, in height order, in one
//!   redb transaction, and only then lets marshal forget it. A block delivered twice (after a
//!   restart) is recognised by its height and skipped.
//!
//! Only finalized blocks ever change the stored state; speculative states live in memory,
//! keyed by block digest, and are dropped once their height is finalized.

use crate::block::{randomness, Block, Header};
use crate::mempool::{AdmitError, Admitted, Mempool, MempoolConfig, Source};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::Digestible;
use futures::channel::mpsc;
use provernet_ledger::{
    apply_block, BlockContext, BlockOutput, Event, Genesis, Receipt, State, TxError,
};
use provernet_store::{BlockRecord, Store, StoreError};
use provernet_types::{
    BlockHash, BoundedVec, Height, Millis, Nonce, SignedTx, StateRoot, TxHash, VerifiedTx,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many times a proposer rebuilds a block without the transactions queued behind one
/// that failed in it.
const REBUILDS_MAX: usize = 3;

/// The indices of transactions that follow a failed transaction of the same account.
fn behind_failures(txs: &[VerifiedTx], receipts: &[Receipt]) -> std::collections::BTreeSet<usize> {
    let mut failed = std::collections::BTreeSet::new();
    let mut behind = std::collections::BTreeSet::new();
    for (i, (tx, r)) in txs.iter().zip(receipts).enumerate() {
        let signer = tx.tx().signer;
        if failed.contains(&signer) {
            behind.insert(i);
        } else if r.result.is_err() {
            failed.insert(signer);
        }
    }
    behind
}

/// How many speculative states a validator keeps at most.
const PENDING_MAX: usize = 256;
/// How many recovered view seeds a validator keeps at most.
const SEEDS_MAX: usize = 1024;
/// How many receipts of finalized transactions a validator remembers (for status queries).
pub const RECEIPTS_KEPT: usize = 100_000;
/// Queue length of one subscriber to finalized blocks; a subscriber that falls this far behind
/// is dropped (it can resume from the store).
const SUBSCRIBER_QUEUE: usize = 1024;

/// What the chain asks of blob availability (see [`crate::blobnet`]): whether a pending
/// transaction's blobs are held widely enough to propose it, and to fetch the blobs of
/// finalized transactions that this validator lacks.
pub trait BlobGate: Send + Sync {
    fn ready(&self, tx: &VerifiedTx) -> bool;
    fn finalized(&self, txs: &[VerifiedTx], receipts: &[Receipt]);
}

/// Block production limits of one validator.
#[derive(Clone, Copy, Debug)]
pub struct ChainConfig {
    /// The pause between a parent's timestamp and its child's.
    pub block_time: std::time::Duration,
    pub max_block_txs: usize,
    pub max_block_bytes: usize,
    pub mempool: MempoolConfig,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            block_time: std::time::Duration::from_secs(1),
            max_block_txs: 10_000,
            max_block_bytes: 3 << 20,
            mempool: MempoolConfig::default(),
        }
    }
}

/// Why a proposed block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("block {height} is not the child of a block this validator can execute")]
    UnknownParent { height: u64 },
    #[error("block height {got} does not follow its parent's height {parent}")]
    Height { parent: u64, got: u64 },
    #[error("block time {got} is not after its parent's time {parent}")]
    Time { parent: u64, got: u64 },
    #[error("block names parent view {got} but consensus certified its parent in view {want}")]
    ParentView { want: u64, got: u64 },
    #[error("block carries no seed, or a seed where none may be")]
    Seed,
    #[error("transaction {index} of block {height} does not verify: {reason}")]
    Tx { height: u64, index: usize, reason: String },
    #[error("block {height} cannot be applied: {reason}")]
    Apply { height: u64, reason: String },
    #[error("block {height} claims state root {claimed} but executes to {actual}")]
    Root { height: u64, claimed: StateRoot, actual: StateRoot },
}

/// Why the executor stopped: the node must not go on with a state it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("finalized block {height} does not execute here: {source}")]
    Diverged { height: u64, source: CheckError },
    #[error("finalized block {got} arrived while the tip is {tip}")]
    OutOfOrder { tip: u64, got: u64 },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// What subscribers hear about each finalized block.
#[derive(Clone, Debug)]
pub struct Finalized {
    pub height: Height,
    pub hash: BlockHash,
    pub time: Millis,
    pub root: StateRoot,
    pub txs: Vec<TxHash>,
    pub receipts: Vec<Receipt>,
    pub events: Vec<Event>,
}

/// The finalized tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub digest: Digest,
    pub time: u64,
    pub root: StateRoot,
}

struct Speculative {
    height: u64,
    time: u64,
    state: State,
    output: BlockOutput,
    txs: Vec<VerifiedTx>,
}

struct Inner {
    store: Arc<Store>,
    state: State,
    tip: Tip,
    pending: BTreeMap<Digest, Arc<Speculative>>,
    seeds: BTreeMap<u64, [u8; crate::block::SEED_BYTES]>,
    mempool: Mempool,
    subscribers: Vec<mpsc::Sender<Arc<Finalized>>>,
    receipts: BTreeMap<TxHash, (Height, Result<(), TxError>)>,
    receipt_order: std::collections::VecDeque<TxHash>,
    blobs: Option<Arc<dyn BlobGate>>,
}

/// Shared handle to a validator's chain; cheap to clone.
#[derive(Clone)]
pub struct Chain {
    inner: Arc<Mutex<Inner>>,
    chain_id: Arc<str>,
    genesis: Block,
    cfg: ChainConfig,
}

/// A handle to a chain that does not keep it alive (for parts the chain itself holds, so no
/// cycle of handles outlives the validator).
#[derive(Clone)]
pub struct WeakChain {
    inner: std::sync::Weak<Mutex<Inner>>,
    chain_id: Arc<str>,
    genesis: Block,
    cfg: ChainConfig,
}

impl WeakChain {
    pub fn upgrade(&self) -> Option<Chain> {
        Some(Chain {
            inner: self.inner.upgrade()?,
            chain_id: self.chain_id.clone(),
            genesis: self.genesis.clone(),
            cfg: self.cfg,
        })
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

impl std::fmt::Debug for WeakChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakChain").field("chain_id", &self.chain_id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("chain_id", &self.chain_id).finish_non_exhaustive()
    }
}

impl Chain {
    /// Opens the validator's database at `path`, creating it from `genesis` if it does not
    /// exist. An existing database must hold the same genesis.
    pub fn open(path: &Path, genesis: &Genesis, cfg: ChainConfig) -> Result<Chain, StoreError> {
        let (store, state) = if path.exists() {
            let (store, state) = Store::open(path)?;
            if store.genesis()? != *genesis {
                return Err(StoreError::OtherGenesis(path.to_owned()));
            }
            (store, state)
        } else {
            Store::create(path, genesis)?
        };
        let genesis_state = provernet_ledger::genesis(genesis)?;
        let chain_id: Arc<str> = Arc::from(genesis_state.chain_id());
        let genesis_block = Block::genesis(&chain_id, genesis_state.root());
        let tip = match store.tip()? {
            Some(rec) => Tip {
                height: rec.height.0,
                digest: Digest::from(rec.hash.0),
                time: rec.time.0,
                root: rec.root,
            },
            None => Tip {
                height: 0,
                digest: genesis_block.digest(),
                time: 0,
                root: genesis_state.root(),
            },
        };
        let inner = Inner {
            store: Arc::new(store),
            state,
            tip,
            pending: BTreeMap::new(),
            seeds: BTreeMap::new(),
            mempool: Mempool::new(cfg.mempool),
            subscribers: Vec::new(),
            receipts: BTreeMap::new(),
            receipt_order: std::collections::VecDeque::new(),
            blobs: None,
        };
        Ok(Chain { inner: Arc::new(Mutex::new(inner)), chain_id, genesis: genesis_block, cfg })
    }

    /// A handle that does not keep the chain alive.
    pub fn downgrade(&self) -> WeakChain {
        WeakChain {
            inner: Arc::downgrade(&self.inner),
            chain_id: self.chain_id.clone(),
            genesis: self.genesis.clone(),
            cfg: self.cfg,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves nothing half-applied (state changes are
        // swapped in whole), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    pub fn config(&self) -> &ChainConfig {
        &self.cfg
    }

    /// The height-0 block consensus starts from.
    pub fn genesis_block(&self) -> &Block {
        &self.genesis
    }

    pub fn tip(&self) -> Tip {
        self.lock().tip
    }

    /// The last finalized state. The ledger's maps are persistent, so this copy shares their
    /// nodes with the chain's and costs the same whatever the state holds: the lock is held only
    /// to take it.
    pub fn snapshot(&self) -> State {
        self.lock().state.clone()
    }

    /// Runs `f` on the last finalized state, without holding the chain's lock while it runs
    /// (see [`Chain::snapshot`]): API readers never hold up consensus.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.snapshot())
    }

    /// Runs `f` on the store (blocks by height).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.lock().store)
    }

    /// The store, to read without holding the chain's lock (redb reads see the last committed
    /// block; the archive and blocks only grow).
    pub fn store(&self) -> Arc<Store> {
        self.lock().store.clone()
    }

    /// Admits an encoded signed transaction to the mempool. The caller holds the blobs it
    /// names (see [`crate::blobnet`]). The signature is checked without the lock.
    pub fn submit(&self, bytes: &[u8], source: Source) -> Result<(TxHash, Admitted), AdmitError> {
        let tx = self.verify(bytes)?;
        self.submit_verified(tx, bytes.len(), source)
    }

    /// Decodes an encoded transaction against its bounds and checks its signature for this
    /// chain, without taking the chain's lock: the stateless half of admission.
    pub fn verify(&self, bytes: &[u8]) -> Result<VerifiedTx, AdmitError> {
        Mempool::verify(&self.chain_id, bytes)
    }

    /// Admits a transaction [`Chain::verify`] checked (`len`: its encoded size): the stateful
    /// checks and the insertion, under the lock.
    pub fn submit_verified(
        &self,
        tx: VerifiedTx,
        len: usize,
        source: Source,
    ) -> Result<(TxHash, Admitted), AdmitError> {
        let mut g = self.lock();
        let Inner { mempool, state, .. } = &mut *g;
        mempool.admit_verified(state, tx, len, source)
    }

    /// Runs every stateful admission check on a transaction [`Chain::verify`] checked,
    /// without admitting it: `Known` when it is already pending.
    pub fn check_verified(
        &self,
        tx: &VerifiedTx,
        len: usize,
        source: Source,
    ) -> Result<Admitted, AdmitError> {
        let g = self.lock();
        g.mempool.check_verified(&g.state, tx, len, source)
    }

    /// Runs every admission check on an encoded transaction without admitting it: the verified
    /// transaction, or `None` when it is already pending. The signature is checked without the
    /// lock.
    pub fn check_admission(
        &self,
        bytes: &[u8],
        source: Source,
    ) -> Result<Option<VerifiedTx>, AdmitError> {
        let tx = self.verify(bytes)?;
        match self.check_verified(&tx, bytes.len(), source)? {
            Admitted::Known => Ok(None),
            Admitted::Added => Ok(Some(tx)),
        }
    }

    /// Lets blob availability decide which transactions are proposed, and hear of finalized
    /// ones.
    pub fn set_blob_gate(&self, gate: Arc<dyn BlobGate>) {
        self.lock().blobs = Some(gate);
    }

    /// Pending transactions due to be gossiped again (see [`Mempool::regossip`]).
    pub fn regossip(&self, every: u64, max: usize) -> Vec<Vec<u8>> {
        let mut g = self.lock();
        let Inner { mempool, state, tip, .. } = &mut *g;
        mempool.regossip(state, tip.height, every, max)
    }

    /// Blobs that pending transactions name (at most `max`).
    pub fn pending_blobs(&self, max: usize) -> Vec<provernet_types::BlobHash> {
        self.lock().mempool.pending_blobs(max)
    }

    /// Pending transactions and their bytes.
    pub fn mempool_size(&self) -> (usize, usize) {
        let g = self.lock();
        (g.mempool.len(), g.mempool.bytes())
    }

    /// Whether a transaction is waiting in the mempool.
    pub fn mempool_contains(&self, hash: &TxHash) -> bool {
        self.lock().mempool.contains(hash)
    }

    /// The outcome of a recently finalized transaction: its height and whether it applied.
    pub fn receipt(&self, hash: &TxHash) -> Option<(Height, Result<(), TxError>)> {
        self.lock().receipts.get(hash).cloned()
    }

    /// A stream of finalized blocks from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<Finalized>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        self.lock().subscribers.push(tx);
        rx
    }

    /// Remembers the recovered seed of `view` (from a verified certificate).
    pub fn record_seed(&self, view: u64, seed: [u8; crate::block::SEED_BYTES]) {
        let mut g = self.lock();
        g.seeds.insert(view, seed);
        while g.seeds.len() > SEEDS_MAX {
            g.seeds.pop_first();
        }
    }

    pub fn seed(&self, view: u64) -> Option<[u8; crate::block::SEED_BYTES]> {
        self.lock().seeds.get(&view).copied()
    }

    /// Whether the state after block `digest` is known (finalized tip or speculative).
    pub fn knows(&self, digest: &Digest) -> bool {
        let g = self.lock();
        g.tip.digest == *digest || g.pending.contains_key(digest)
    }

    /// Height and time of a block whose state is known.
    pub fn known_block(&self, digest: &Digest) -> Option<(u64, u64)> {
        let g = self.lock();
        if g.tip.digest == *digest {
            return Some((g.tip.height, g.tip.time));
        }
        g.pending.get(digest).map(|s| (s.height, s.time))
    }

    /// Executes a proposed block on its parent's state, checks everything a validator votes on
    /// except the seed signature (checked by the caller, who holds the consensus scheme), and
    /// keeps the resulting state for its children and for finalization.
    pub fn check(&self, block: &Block, digest: Digest, parent_view: u64) -> Result<(), CheckError> {
        let h = block.header();
        if h.parent_view != parent_view {
            return Err(CheckError::ParentView { want: parent_view, got: h.parent_view });
        }
        if self.knows(&digest) {
            return Ok(());
        }
        let spec = self.execute(block)?;
        self.keep(digest, spec);
        Ok(())
    }

    /// Builds the child of `parent` with the given view, time and seed.
    pub fn build(
        &self,
        parent: Digest,
        parent_view: u64,
        time: u64,
        seed: Option<[u8; crate::block::SEED_BYTES]>,
    ) -> Option<(Block, Digest)> {
        let parent_state = || -> Option<(State, u64)> {
            let g = self.lock();
            if g.tip.digest == parent {
                Some((g.state.clone(), g.tip.height))
            } else {
                g.pending.get(&parent).map(|s| (s.state.clone(), s.height))
            }
        };
        let (mut state, height) = parent_state()?;
        let mut txs = {
            let g = self.lock();
            let gate = g.blobs.clone();
            let ready = |tx: &VerifiedTx| gate.as_ref().is_none_or(|b| b.ready(tx));
            g.mempool.select(&state, self.cfg.max_block_txs, self.cfg.max_block_bytes, &ready)
        };
        let mut header = Header {
            parent: parent.0,
            height: Height(height + 1),
            parent_view,
            time: Millis(time),
            seed,
            root: StateRoot([0; 32]),
            txs: BoundedVec::default(),
        };
        let ctx = BlockContext {
            height: header.height,
            randomness: randomness(&header),
            time: header.time,
        };
        let mut output = apply_block(&mut state, &ctx, &txs).ok()?;
        // A transaction that fails leaves its account's next nonce unused, so the account's
        // later transactions in the block would fail too: leave them in the pool (they are
        // dropped there once the failure is final, and their sender signs them again) and
        // build the block without them.
        for _ in 0..REBUILDS_MAX {
            let behind = behind_failures(&txs, &output.receipts);
            if behind.is_empty() {
                break;
            }
            txs = txs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !behind.contains(i))
                .map(|(_, t)| t)
                .collect();
            state = parent_state()?.0;
            output = apply_block(&mut state, &ctx, &txs).ok()?;
        }
        header.root = output.root;
        header.txs =
            BoundedVec::try_from_vec(txs.iter().map(|t| t.signed().clone()).collect()).ok()?;
        let block = Block::new(header).ok()?;
        let digest = block.digest();
        self.keep(digest, Speculative { height: height + 1, time, state, output, txs });
        Some((block, digest))
    }

    fn keep(&self, digest: Digest, spec: Speculative) {
        let mut g = self.lock();
        g.pending.insert(digest, Arc::new(spec));
        while g.pending.len() > PENDING_MAX {
            let lowest = g.pending.iter().min_by_key(|(_, s)| s.height).map(|(d, _)| *d);
            match lowest {
                Some(d) => g.pending.remove(&d),
                None => break,
            };
        }
    }

    /// Executes `block` on its parent's known state.
    fn execute(&self, block: &Block) -> Result<Speculative, CheckError> {
        let h = block.header();
        let parent = Digest::from(h.parent);
        let (mut state, parent_height, parent_time, known) = {
            let g = self.lock();
            // Transactions this validator admitted were verified then; reuse that work.
            let known: Vec<Option<VerifiedTx>> =
                h.txs.iter().map(|t| g.mempool.verified(&t.hash())).collect();
            if g.tip.digest == parent {
                (g.state.clone(), g.tip.height, g.tip.time, known)
            } else if let Some(s) = g.pending.get(&parent) {
                (s.state.clone(), s.height, s.time, known)
            } else {
                return Err(CheckError::UnknownParent { height: h.height.0 });
            }
        };
        if h.height.0 != parent_height + 1 {
            return Err(CheckError::Height { parent: parent_height, got: h.height.0 });
        }
        if h.time.0 <= parent_time {
            return Err(CheckError::Time { parent: parent_time, got: h.time.0 });
        }
        if (h.seed.is_none()) != (parent_height == 0) {
            return Err(CheckError::Seed);
        }
        // The others are verified here, without the lock, in one batch (on several cores when
        // there are many) in block order, so a failure names the first bad transaction.
        let known: Vec<Option<VerifiedTx>> = known
            .into_iter()
            .zip(h.txs.iter())
            .map(|(k, t)| k.filter(|v| v.signed() == t))
            .collect();
        let (fresh_at, fresh): (Vec<usize>, Vec<SignedTx>) = known
            .iter()
            .zip(h.txs.iter())
            .enumerate()
            .filter(|(_, (k, _))| k.is_none())
            .map(|(index, (_, t))| (index, t.clone()))
            .unzip();
        let mut fresh = SignedTx::verify_batch(fresh, &self.chain_id)
            .map_err(|(i, e)| CheckError::Tx {
                height: h.height.0,
                index: fresh_at.get(i).copied().unwrap_or(i),
                reason: e.to_string(),
            })?
            .into_iter();
        // `verify_batch` returns one transaction per one it was given, in order.
        let txs: Vec<VerifiedTx> =
            known.into_iter().filter_map(|k| k.or_else(|| fresh.next())).collect();
        let ctx = BlockContext { height: h.height, randomness: randomness(h), time: h.time };
        let output = apply_block(&mut state, &ctx, &txs)
            .map_err(|e| CheckError::Apply { height: h.height.0, reason: e.to_string() })?;
        if output.root != h.root {
            return Err(CheckError::Root {
                height: h.height.0,
                claimed: h.root,
                actual: output.root,
            });
        }
        Ok(Speculative { height: h.height.0, time: h.time.0, state, output, txs })
    }

    /// Applies a finalized block: stores it with its state changes in one durable
    /// transaction, then makes it the tip. Returns `false` for a block already applied. Called
    /// by one executor, one block at a time.
    pub fn finalize(&self, block: &Block, digest: Digest) -> Result<bool, ExecError> {
        let height = block.header().height.0;
        let tip = self.tip();
        if height <= tip.height {
            return Ok(false);
        }
        if height != tip.height + 1 {
            return Err(ExecError::OutOfOrder { tip: tip.height, got: height });
        }
        if Digest::from(block.header().parent) != tip.digest {
            return Err(ExecError::Diverged {
                height,
                source: CheckError::UnknownParent { height },
            });
        }
        // The block stays among the pending ones until it becomes the tip below, so its
        // children can be built and checked on it while it is written.
        let cached = self.lock().pending.get(&digest).cloned();
        let spec = match cached {
            Some(s) => Arc::try_unwrap(s).unwrap_or_else(|s| Speculative {
                height: s.height,
                time: s.time,
                state: s.state.clone(),
                output: s.output.clone(),
                txs: s.txs.clone(),
            }),
            None => self.execute(block).map_err(|source| ExecError::Diverged { height, source })?,
        };
        let h = block.header();
        let record = BlockRecord {
            hash: BlockHash(digest.0),
            height: h.height,
            randomness: randomness(h),
            time: h.time,
            txs: h.txs.clone(),
            root: spec.output.root,
        };
        // The durable write (fsync included) runs without the lock: only the executor
        // finalizes, one block at a time, and readers keep the old state until the swap below.
        self.store().commit_block(&record, &spec.output.changes, &spec.output.archived)?;
        let mut g = self.lock();
        let Speculative { state, output, txs, .. } = spec;
        g.state = state;
        g.tip = Tip { height, digest, time: h.time.0, root: output.root };
        g.pending.retain(|_, s| s.height > height);
        let included: Vec<TxHash> = txs.iter().map(|t| t.hash()).collect();
        let Inner { mempool, state, subscribers, receipts, receipt_order, blobs, .. } = &mut *g;
        mempool.remove(included.iter().copied());
        mempool.prune(state);
        // Receipts are in transaction order.
        for (tx, _) in txs.iter().zip(&output.receipts).filter(|(_, r)| r.result.is_err()) {
            let account = tx.tx().signer;
            let next = state.account(&account).map_or(Nonce(0), |a| a.nonce);
            let dropped = mempool.evict_gapped(account, next);
            if dropped > 0 {
                tracing::debug!(%account, dropped, "dropped transactions queued behind a failed one");
            }
        }
        for r in &output.receipts {
            if receipts.insert(r.tx, (h.height, r.result.clone())).is_none() {
                receipt_order.push_back(r.tx);
            }
        }
        while receipt_order.len() > RECEIPTS_KEPT {
            if let Some(old) = receipt_order.pop_front() {
                receipts.remove(&old);
            }
        }
        if let Some(gate) = blobs.clone() {
            gate.finalized(&txs, &output.receipts);
        }
        let note = Arc::new(Finalized {
            height: h.height,
            hash: BlockHash(digest.0),
            time: h.time,
            root: output.root,
            txs: included,
            receipts: output.receipts,
            events: output.events,
        });
        subscribers.retain_mut(|s| s.try_send(note.clone()).is_ok());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provernet_ledger::testkit::test_genesis;
    use provernet_types::{Encode, Keypair, MicroCredits, Transaction, TxBody};

    fn open(dir: &tempfile::TempDir, name: &str) -> Chain {
        let genesis = test_genesis(0, |_| {});
        Chain::open(&dir.path().join(name), &genesis, ChainConfig::default()).expect("open")
    }

    /// `n` transfers from alice, nonces from 0.
    fn transfers(chain: &Chain, n: u64) -> Vec<SignedTx> {
        let alice = Keypair::insecure_from_label("alice");
        let bob = Keypair::insecure_from_label("bob").account();
        (0..n)
            .map(|nonce| {
                let body = TxBody::Transfer { to: bob, amount: MicroCredits(1) };
                Transaction { signer: alice.account(), nonce: Nonce(nonce), body }
                    .sign(&alice, chain.chain_id())
            })
            .collect()
    }

    /// The child of genesis carrying `txs` (its root is not checked before the signatures).
    fn child_of_genesis(chain: &Chain, txs: Vec<SignedTx>) -> Block {
        Block::new(Header {
            parent: chain.genesis_block().digest().0,
            height: Height(1),
            parent_view: 0,
            time: Millis(1),
            seed: None,
            root: StateRoot([0; 32]),
            txs: BoundedVec::try_from_vec(txs).expect("few"),
        })
        .expect("small")
    }

    #[test]
    fn a_block_with_a_forged_signature_is_refused_naming_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = open(&dir, "v");
        // The first 10 are pending here (verified on admission), the others are not; with 100,
        // the others are verified on several threads.
        let txs = transfers(&chain, 100);
        for tx in &txs[..10] {
            chain.submit(&tx.encode(), Source::Client).expect("admitted");
        }
        for (n, k) in [(5, 0), (5, 4), (100, 10), (100, 57), (100, 99)] {
            let mut txs = txs[..n].to_vec();
            txs[k].signature.0[9] ^= 1;
            let block = child_of_genesis(&chain, txs);
            let e = chain.check(&block, block.digest(), 0).expect_err("forged");
            assert!(
                matches!(&e, CheckError::Tx { height: 1, index, reason }
                    if *index == k && reason.contains("does not verify")),
                "{n} transactions, forged at {k}: {e}"
            );
        }
    }

    #[test]
    fn a_block_of_pending_and_unseen_transactions_verifies_in_block_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (proposer, verifier) = (open(&dir, "p"), open(&dir, "v"));
        let txs = transfers(&proposer, 100);
        for (i, tx) in txs.iter().enumerate() {
            proposer.submit(&tx.encode(), Source::Client).expect("admitted");
            // The verifier has seen the first 20 and every third of the next 40 (within its
            // cap on gapped nonces).
            if i < 20 || (i < 60 && i % 3 == 0) {
                verifier.submit(&tx.encode(), Source::Peer).expect("admitted");
            }
        }
        let genesis = proposer.genesis_block().digest();
        let (block, digest) = proposer.build(genesis, 0, 1, None).expect("built");
        assert_eq!(block.header().txs.len(), 100);
        verifier.check(&block, digest, 0).expect("the block verifies");
    }
}
