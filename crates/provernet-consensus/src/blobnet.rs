//! Blob availability between validators: every blob a transaction names reaches every honest
//! validator, over the validators' authenticated p2p network.
//!
//! # Protocol
//!
//! - **Announcements** (channel [`crate::engine::channel::HAVES`]). A validator that stores a
//!   blob tells every peer it holds it (a [`Have`]). A blob stored from an upload carries the
//!   upload's signature, so a peer can check who authorised it and copy it at once, charging
//!   that account's quota on its own store: an account's quota holds on every validator, so it
//!   cannot fill every validator's disk by uploading to each. Copies repeat the signature, so a
//!   validator that missed the first announcement still learns of the upload. An announcement
//!   is recorded only once its signature checks, or for a blob this validator already knows of.
//! - **Transfer** (channel [`crate::engine::channel::BLOBS`], commonware's p2p resolver). A
//!   blob is fetched by its address, in verifiable pieces (`provernet_blobs::pieces`): first its
//!   head, then each piece. The head of a blob of one piece is its size and its bytes; that of a
//!   blob of several pieces is its size, its outline and its last piece, whose length binds the
//!   size (the outline alone folds to the same root for every size ending in the same piece).
//!   Every response is checked before it is kept; one that does not match is refused, the
//!   resolver blocks the peer that sent it (it is not asked again) and asks another. A blob is
//!   stored only whole and only if it hashes to its address, so nothing unchecked is stored or
//!   served onward. Requests go first to the validators announced to hold the blob, then, if
//!   they do not answer within [`TARGETED_FOR`], to any validator.
//! - **Admission.** A validator admits a transaction only once it holds every blob the
//!   transaction names ([`BlobNet::obtain_all`], fetching from peers within a deadline), and only
//!   after the transaction passed the mempool's own checks: a client's transaction naming a blob
//!   no validator can provide is refused (`blob_unavailable`, naming the blob), and a peer's
//!   transaction waits until its blobs arrive. One account has at most [`ADMIT_PER_ACCOUNT_MAX`]
//!   such fetches under way, and all admissions and copies at most [`FETCHES_MAX`].
//! - **Proposals and votes.** A proposer includes a transaction only when it holds its blobs and
//!   announcements show that a consensus quorum of the validators hold them too
//!   ([`BlobNet::ready`]); a validator votes for a block only once it holds every blob the block
//!   names, fetching what it lacks within a deadline. A finalized block was therefore voted by
//!   validators that held its blobs, more than a third of them honest, so every honest validator
//!   can fetch them later: one that was down or partitioned catches up ([`BlobNet::sync`]) from
//!   the blocks it finalizes and, at start, from the blobs its state names, a few at a time.
//!
//! Charging: a blob copied from an announcement is charged to its uploader and refused above
//! its quota; one fetched for a transaction (to admit it, or to vote for a block naming it) is
//! charged to the transaction's signer and refused above its quota, so a Byzantine proposer
//! cannot make honest validators store more than the quota by proposing blocks; one a finalized
//! block names is charged whatever the quota (the network decided it must be held).

use crate::chain::{Chain, WeakChain};
use bytes::Bytes;
use commonware_codec::{FixedSize, Read, ReadExt, Write};
use commonware_resolver::{Consumer, Delivery, Outcome, Resolver, TargetedResolver};
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::StreamExt;
use provernet_blobs::pieces::{self, PieceHash, PIECE_BYTES};
use provernet_blobs::{BlobError, BlobStore, Quota};
use provernet_types::{
    codec_struct, AccountId, BlobHash, BlobRef, BoundedVec, Bytes as ByteSize, Signature,
    VerifiedTx,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{debug, info, warn};

/// The index of a blob's head in a [`PieceKey`].
pub const HEAD: u32 = u32::MAX;
/// Most announcements in one p2p message.
pub const HAVES_BATCH_MAX: usize = 256;
/// Most blobs whose holders a validator remembers (the oldest are forgotten first; the blobs
/// it holds itself are remembered apart, without limit).
pub const KNOWN_MAX: usize = 100_000;
/// Most bytes of pieces requested and not yet written, all blobs together; blobs beyond it
/// wait their turn. A blob asks for at most [`WINDOW_PIECES`] pieces at a time, and each
/// piece is written to the store's staging area as it arrives, so a blob of any size is
/// assembled on disk, never in memory.
pub const ASSEMBLY_BYTES_MAX: u64 = 1 << 30;
/// Most pieces of one blob requested and not yet written.
pub const WINDOW_PIECES: u64 = 32;
/// Most fetches for admissions and copies under way at once; more are refused for now
/// (`blob_fetches_busy`) and tried again later. Votes and catch-up are bounded otherwise.
pub const FETCHES_MAX: usize = 4096;
/// Most fetches for one account's transactions under way at once.
pub const ADMIT_PER_ACCOUNT_MAX: usize = 64;
/// Most callers waiting on one fetch.
pub const WAITERS_MAX: usize = 256;
/// How many catch-up fetches run at once.
pub const SYNC_CONCURRENCY: usize = 16;
/// How long a fetch asks only the validators announced to hold the blob before it asks any.
pub const TARGETED_FOR: Duration = Duration::from_secs(5);
/// How many blobs uploaded here are remembered to be announced again.
pub const RECENT_UPLOADS_MAX: usize = 1024;
/// How many times an upload is announced again after its first announcement.
const UPLOAD_REANNOUNCEMENTS: u8 = 3;
/// How long a copy of an announced upload is tried before it is given up.
pub const COPY_WITHIN: Duration = Duration::from_secs(600);

/// What the resolver asks a peer for: the head (`piece == HEAD`) or one piece of a blob.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PieceKey {
    pub blob: BlobHash,
    pub piece: u32,
}

impl std::fmt::Display for PieceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.piece == HEAD {
            write!(f, "{}/head", self.blob)
        } else {
            write!(f, "{}/{}", self.blob, self.piece)
        }
    }
}

impl Write for PieceKey {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.blob.0.write(buf);
        self.piece.write(buf);
    }
}

impl FixedSize for PieceKey {
    const SIZE: usize = 32 + u32::SIZE;
}

impl Read for PieceKey {
    type Cfg = ();

    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        let blob = <[u8; 32]>::read(buf)?;
        let piece = u32::read(buf)?;
        Ok(PieceKey { blob: BlobHash(blob), piece })
    }
}

impl commonware_utils::Span for PieceKey {}

/// An upload's authorisation: the account that signed it, and its signature over
/// [`provernet_types::tx::blob_upload_message`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Upload {
    pub account: AccountId,
    pub signature: Signature,
}
codec_struct!(Upload { account, signature });

/// "I hold this blob", with the upload's authorisation when the blob came from one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Have {
    pub blob: BlobRef,
    pub upload: Option<Upload>,
}
codec_struct!(Have { blob, upload });

/// A batch of announcements as sent between validators.
pub type HaveBatch = BoundedVec<Have, HAVES_BATCH_MAX>;

/// Who pays for a blob stored here, and whether its quota may refuse it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Charge {
    pub account: AccountId,
    pub quota: Quota,
}

/// The runtime services the handle needs, from the task that owns the blob network.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Runtime {
    /// Runs a future as a supervised task of the blob network.
    pub spawn: Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>,
    /// Resolves after a duration on the runtime's clock.
    pub sleep: Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>,
}

/// Why a blob is being fetched, which decides the limits it is held to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Want {
    /// To admit a transaction naming it (a client's or a peer's).
    Admit,
    /// To copy an upload another validator announced.
    Copy,
    /// To vote for a proposed block naming it.
    Vote,
    /// Because a finalized block names it: fetched until it arrives.
    Sync,
}

type Reply = futures::channel::oneshot::Sender<Result<(), BlobError>>;
type Mailbox = commonware_resolver::p2p::Mailbox<PieceKey, crate::PublicKey, ()>;

/// One caller waiting for a blob, with the size it declared.
struct Waiter {
    id: u64,
    size: Option<u64>,
    reply: Reply,
}

/// A blob being fetched.
struct Fetch {
    charge: Charge,
    /// Fetched until it arrives, whoever still waits.
    keep: bool,
    /// Counted against [`FETCHES_MAX`] (admissions and copies).
    limited: bool,
    waiters: Vec<Waiter>,
    head: Option<Head>,
    /// Asked only of validators announced to hold it (else of any validator).
    targeted: bool,
    /// Assembled and being written to the store: it ends when the write does.
    storing: bool,
    /// Which fetch of this blob it is: tasks of an earlier one that ended leave it alone.
    generation: u64,
    /// The charged account's quota, held from when its pieces are first requested until it is
    /// stored (so a blob the account has no room for is not staged at all).
    reservation: Option<provernet_blobs::Reservation>,
}

/// What a checked head said about a blob of several pieces, and where its assembly stands.
/// Its pieces go to the store's staging area (`provernet_blobs::staging`) as they arrive.
struct Head {
    size: u64,
    outline: Arc<Vec<PieceHash>>,
    /// The last piece, which came with the head, until it is staged.
    tail: Option<Bytes>,
    /// Per piece: arrived (checked, being written or written).
    arrived: Vec<bool>,
    /// Pieces not yet written to the staging area.
    missing: u64,
    /// Pieces requested and not yet written.
    in_flight: u64,
    /// The next piece index to consider requesting.
    next: u64,
    /// Its pieces were requested (it took its share of [`ASSEMBLY_BYTES_MAX`]).
    started: bool,
}

/// The share of [`ASSEMBLY_BYTES_MAX`] a blob of `size` bytes takes while it is assembled.
fn window_bytes(size: u64) -> u64 {
    size.min(WINDOW_PIECES * PIECE_BYTES)
}

/// What a validator knows about who holds one blob.
#[derive(Default)]
struct Known {
    holders: BTreeSet<crate::PublicKey>,
    /// The upload's signature, once checked.
    upload: Option<Upload>,
    /// The tick (finalized height) at which this validator last announced it.
    announced: Option<u64>,
}

#[derive(Default)]
struct Shared {
    fetches: BTreeMap<BlobHash, Fetch>,
    /// Fetches counted against [`FETCHES_MAX`].
    limited: usize,
    /// Admission fetches under way per account.
    admissions: BTreeMap<AccountId, usize>,
    /// Blobs this validator holds, with their sizes (from its own store).
    held: BTreeMap<BlobHash, u64>,
    known: BTreeMap<BlobHash, Known>,
    known_order: VecDeque<BlobHash>,
    /// Blobs of several pieces waiting for room to assemble.
    queued: VecDeque<BlobHash>,
    assembling: u64,
    next_waiter: u64,
    next_generation: u64,
    resolver: Option<Mailbox>,
    /// This validator's identity, for logs.
    me: Option<crate::PublicKey>,
    /// Blobs uploaded here lately, announced again a few times in case an announcement was
    /// lost (at most [`RECENT_UPLOADS_MAX`]).
    recent_uploads: VecDeque<(BlobHash, u8)>,
    /// Blobs finalized blocks name that this validator lacks, fetched a few at a time.
    sync_queue: VecDeque<(BlobRef, AccountId)>,
    sync_queued: BTreeSet<BlobHash>,
    sync_running: bool,
}

impl Shared {
    fn known(&mut self, hash: BlobHash) -> &mut Known {
        if !self.known.contains_key(&hash) {
            self.known_order.push_back(hash);
            while self.known_order.len() > KNOWN_MAX {
                if let Some(old) = self.known_order.pop_front() {
                    self.known.remove(&old);
                }
            }
        }
        self.known.entry(hash).or_default()
    }

    fn holders(&self, hash: &BlobHash) -> Vec<crate::PublicKey> {
        self.known.get(hash).map(|k| k.holders.iter().cloned().collect()).unwrap_or_default()
    }

    /// Requests `keys` (all of one blob) from the validators announced to hold the blob, or
    /// from any validator while none is known. Returns whether the request was targeted.
    fn fetch_keys(&mut self, keys: Vec<PieceKey>) -> bool {
        let Some(first) = keys.first() else { return false };
        let hash = first.blob;
        let holders = self.holders(&hash);
        let targeted = !holders.is_empty();
        debug!(me = ?self.me, %hash, keys = keys.len(), ?holders, "requesting blob pieces");
        if let Some(f) = self.fetches.get_mut(&hash) {
            f.targeted = targeted;
        }
        let Some(r) = self.resolver.as_mut() else { return false };
        match commonware_utils::vec::NonEmptyVec::try_from(holders) {
            Ok(targets) => {
                let _ = r.fetch_all_targeted(
                    keys.into_iter().map(|k| (k, targets.clone())).collect::<Vec<_>>(),
                );
            }
            Err(_) => {
                let _ = r.fetch_all(keys);
            }
        }
        targeted
    }

    /// The keys of `hash` still wanted: its head, or the pieces requested that have not
    /// arrived.
    fn wanted_keys(&self, hash: BlobHash) -> Vec<PieceKey> {
        let Some(f) = self.fetches.get(&hash) else { return Vec::new() };
        match f.head.as_ref() {
            None => vec![PieceKey { blob: hash, piece: HEAD }],
            Some(h) if h.started => (0..h.next)
                .filter(|i| h.arrived.get(*i as usize) == Some(&false))
                .map(|piece| PieceKey { blob: hash, piece: piece as u32 })
                .collect(),
            Some(_) => Vec::new(),
        }
    }

    /// Requests more pieces of `hash` while fewer than [`WINDOW_PIECES`] are in flight.
    /// Returns whether a request went out targeted.
    fn request_more(&mut self, hash: BlobHash) -> bool {
        let Some(h) = self.fetches.get_mut(&hash).and_then(|f| f.head.as_mut()) else {
            return false;
        };
        if !h.started {
            return false;
        }
        let mut keys = Vec::new();
        let n = h.arrived.len() as u64;
        while h.in_flight < WINDOW_PIECES && h.next < n {
            let i = h.next;
            h.next += 1;
            if !h.arrived[i as usize] {
                h.in_flight += 1;
                keys.push(PieceKey { blob: hash, piece: i as u32 });
            }
        }
        self.fetch_keys(keys)
    }

    /// Ends the fetch of `hash` (and the resolver's requests for it); its waiters are the
    /// caller's to answer. The only place a fetch leaves the table, so what it held of the
    /// limits is given back exactly once.
    fn remove(&mut self, hash: BlobHash) -> Option<Fetch> {
        let f = self.fetches.remove(&hash)?;
        if f.limited {
            self.limited -= 1;
        }
        if let Some(h) = f.head.as_ref().filter(|h| h.started) {
            self.assembling -= window_bytes(h.size);
        }
        self.queued.retain(|q| *q != hash);
        if let Some(r) = self.resolver.as_mut() {
            let _ = r.retain(move |k, _| k.blob != hash);
        }
        Some(f)
    }
}

/// Answers `waiters` of a blob of `size` bytes: those that declared another size get
/// `SizeMismatch`, the others `result`.
fn answer(waiters: Vec<Waiter>, size: Option<u64>, result: &Result<(), BlobError>) {
    for w in waiters {
        let r = match (w.size, size) {
            (Some(d), Some(s)) if d != s => Err(BlobError::SizeMismatch { declared: d, actual: s }),
            _ => result.as_ref().map(|_| ()).map_err(BlobError::clone),
        };
        let _ = w.reply.send(r);
    }
}

/// Gives back an admission fetch's share of its account's limit when the caller is done (or
/// gives up), however that happens.
struct AdmitSlot {
    net: BlobNet,
    account: AccountId,
}

impl Drop for AdmitSlot {
    fn drop(&mut self) {
        let mut g = self.net.lock();
        if let Some(n) = g.admissions.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                g.admissions.remove(&self.account);
            }
        }
    }
}

struct Inner {
    store: BlobStore,
    /// Weak: the chain holds this blob network (its gate), and no cycle may outlive them.
    chain: WeakChain,
    /// Validators in all, for the quorum of holders.
    validators: usize,
    shared: Mutex<Shared>,
    rt: Runtime,
    haves: mpsc::Sender<Have>,
}

/// A validator's handle to blob availability; cheap to clone.
#[derive(Clone)]
pub struct BlobNet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlobNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobNet").finish_non_exhaustive()
    }
}

/// The consensus quorum of `n` validators (`n - f`, with `f = (n - 1) / 3` faulty tolerated):
/// as many as must hold a block's blobs for the block to gather its votes.
pub fn quorum(n: usize) -> usize {
    n - n.saturating_sub(1) / 3
}

impl BlobNet {
    /// A handle over `store`; announcements to peers go out through `haves`. The resolver is
    /// attached with [`BlobNet::attach`] once its engine exists.
    pub fn new(
        store: BlobStore,
        chain: Chain,
        validators: usize,
        rt: Runtime,
        haves: mpsc::Sender<Have>,
    ) -> BlobNet {
        BlobNet {
            inner: Arc::new(Inner {
                store,
                chain: chain.downgrade(),
                validators: validators.max(1),
                shared: Mutex::default(),
                rt,
                haves,
            }),
        }
    }

    pub(crate) fn attach(&self, resolver: Mailbox, me: crate::PublicKey) {
        let mut g = self.lock();
        g.resolver = Some(resolver);
        g.me = Some(me);
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // No await happens under this lock, and every change under it is whole.
        self.inner.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn store(&self) -> &BlobStore {
        &self.inner.store
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        (self.inner.rt.spawn)(Box::pin(f));
    }

    /// Runs `f` as a task of the blob network (supervised with the validator's tasks).
    pub fn run(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.spawn(f);
    }

    /// Whether this validator holds `hash`.
    pub fn holds(&self, hash: &BlobHash) -> bool {
        self.lock().held.contains_key(hash)
    }

    /// Whether this validator holds every blob `tx` names and announcements show that a
    /// consensus quorum of validators (itself included) hold them: a proposer includes only
    /// such transactions.
    pub fn ready(&self, tx: &VerifiedTx) -> bool {
        let blobs = tx.tx().body.blobs();
        if blobs.is_empty() {
            return true;
        }
        let need = quorum(self.inner.validators);
        let g = self.lock();
        blobs.iter().all(|b| {
            g.held.get(&b.hash) == Some(&b.size.0)
                && g.known.get(&b.hash).map_or(0, |k| k.holders.len()) + 1 >= need
        })
    }

    /// How many validators, this one included, are known to hold `hash`.
    pub fn holders(&self, hash: &BlobHash) -> usize {
        let g = self.lock();
        g.known.get(hash).map_or(0, |k| k.holders.len()) + usize::from(g.held.contains_key(hash))
    }

    /// Records a blob uploaded to this validator and announces it with the upload's signature,
    /// so the other validators copy it.
    pub fn uploaded(&self, blob: BlobRef, upload: Upload) {
        {
            let mut g = self.lock();
            g.known(blob.hash).upload = Some(upload);
            g.recent_uploads.push_back((blob.hash, UPLOAD_REANNOUNCEMENTS));
            while g.recent_uploads.len() > RECENT_UPLOADS_MAX {
                g.recent_uploads.pop_front();
            }
        }
        self.mark_held(blob.hash, blob.size.0);
        self.announce(Have { blob, upload: Some(upload) });
    }

    fn announce(&self, have: Have) {
        // A full queue drops the announcement; the blob is announced again while a pending
        // transaction names it.
        let _ = self.inner.haves.clone().try_send(have);
    }

    /// Announces again, at most once per `every` ticks, the blobs named by pending
    /// transactions that this validator holds, and the few last uploads, so peers that
    /// restarted or missed an announcement learn who holds them.
    pub fn reannounce(&self, blobs: impl IntoIterator<Item = BlobHash>, tick: u64, every: u64) {
        let mut out = Vec::new();
        {
            let mut g = self.lock();
            let mut uploads = Vec::new();
            for (hash, left) in g.recent_uploads.iter_mut() {
                uploads.push(*hash);
                *left = left.saturating_sub(1);
            }
            g.recent_uploads.retain(|(_, left)| *left > 0);
            for hash in uploads.into_iter().chain(blobs) {
                let Some(size) = g.held.get(&hash).copied() else { continue };
                let k = g.known(hash);
                if k.announced.is_some_and(|t| t + every > tick) {
                    continue;
                }
                k.announced = Some(tick);
                out.push(Have { blob: BlobRef { hash, size: ByteSize(size) }, upload: k.upload });
            }
        }
        for h in out {
            self.announce(h);
        }
    }

    /// Handles a peer's announcement: records it as a holder, and copies an announced upload
    /// that this validator lacks (charged to the uploader, within its quota). Nothing is
    /// recorded from an announcement whose upload signature does not check, nor from one
    /// without a signature about a blob this validator does not know of.
    pub fn heard(&self, peer: crate::PublicKey, have: Have) {
        let hash = have.blob.hash;
        let (known, held, fetching, signed) = {
            let g = self.lock();
            let k = g.known.get(&hash);
            let signed = k.and_then(|k| k.upload).is_some_and(|u| Some(u) == have.upload);
            (k.is_some(), g.held.contains_key(&hash), g.fetches.contains_key(&hash), signed)
        };
        debug!(%hash, ?peer, upload = have.upload.is_some(), known, held, fetching, "heard a blob announcement");
        let upload = match have.upload {
            Some(u) if signed => Some(u),
            Some(u) => {
                if !self.upload_checks(&have.blob, &u) {
                    debug!(%hash, ?peer, "an announced upload's signature does not check");
                    return;
                }
                Some(u)
            }
            None if known || held || fetching => None,
            None => return,
        };
        let retarget = {
            let mut g = self.lock();
            let k = g.known(hash);
            let new_holder = k.holders.insert(peer.clone());
            if upload.is_some() {
                k.upload = upload;
            }
            let fetch = g.fetches.get(&hash).filter(|f| !f.storing).map(|f| f.targeted);
            match fetch {
                Some(true) if new_holder => {
                    // Ask the new holder too.
                    let keys = g.wanted_keys(hash);
                    if let Some(r) = g.resolver.as_mut() {
                        let target = commonware_utils::vec::NonEmptyVec::new(peer);
                        let _ = r.fetch_all_targeted(
                            keys.into_iter().map(|k| (k, target.clone())).collect::<Vec<_>>(),
                        );
                    }
                    false
                }
                Some(false) if new_holder => {
                    // A fetch asking any validator asks the holders first from now on (one that
                    // is down costs a timeout each time it is drawn), for a while.
                    let keys = g.wanted_keys(hash);
                    if let Some(r) = g.resolver.as_mut() {
                        let _ = r.retain(move |k, _| k.blob != hash);
                    }
                    g.fetch_keys(keys)
                }
                _ => false,
            }
        };
        if retarget {
            self.untarget_later(hash);
        }
        let Some(upload) = upload.filter(|_| !held && !fetching) else { return };
        let net = self.clone();
        let charge = Charge { account: upload.account, quota: Quota::Enforce };
        self.spawn(async move {
            let size = Some(have.blob.size.0);
            if let Err(e) = net.obtain(hash, size, charge, Some(COPY_WITHIN), Want::Copy).await {
                debug!(%hash, "announced upload not copied: {e}");
            }
        });
    }

    /// Whether `upload` authorises storing `blob`: its signature checks and its account exists.
    fn upload_checks(&self, blob: &BlobRef, upload: &Upload) -> bool {
        let Some(chain) = self.inner.chain.upgrade() else { return false };
        provernet_types::crypto::verify(
            &upload.account,
            provernet_types::crypto::BLOB_UPLOAD_DOMAIN,
            chain.chain_id(),
            &provernet_types::tx::blob_upload_message(blob),
            &upload.signature,
        )
        .is_ok()
            && chain.with_state(|s| s.account(&upload.account).is_some())
    }

    /// Resolves once this validator holds every blob in `blobs`, fetching what it lacks from
    /// peers, each charged as given; fails with the first blob it could not obtain within
    /// `within`.
    pub async fn obtain_all(
        &self,
        blobs: &[(BlobRef, Charge)],
        within: Duration,
        want: Want,
    ) -> Result<(), BlobError> {
        let waits: Vec<_> = blobs
            .iter()
            .map(|(b, c)| self.obtain(b.hash, Some(b.size.0), *c, Some(within), want))
            .collect();
        for r in futures::future::join_all(waits).await {
            r?;
        }
        Ok(())
    }

    /// Resolves once this validator holds `hash` (of `size` bytes, if known), fetching it from
    /// peers if it lacks it: within `within`, or until it arrives (`None`).
    pub async fn obtain(
        &self,
        hash: BlobHash,
        size: Option<u64>,
        charge: Charge,
        within: Option<Duration>,
        want: Want,
    ) -> Result<(), BlobError> {
        let have = self.lock().held.get(&hash).copied();
        let have = match have {
            Some(s) => Some(s),
            None => {
                let stored = self.inner.store.size(&hash).await?;
                if let Some(s) = stored {
                    self.mark_held(hash, s);
                }
                stored
            }
        };
        if let Some(have) = have {
            return match size {
                Some(s) if s != have => Err(BlobError::SizeMismatch { declared: s, actual: have }),
                _ => Ok(()),
            };
        }
        let max = self.inner.store.limits().blob_max;
        if let Some(s) = size.filter(|s| *s > max) {
            return Err(BlobError::TooLarge { size: s, max });
        }
        let _slot = match want {
            Want::Admit => Some(self.take_admit_slot(charge.account)?),
            _ => None,
        };
        let (reply, rx) = futures::channel::oneshot::channel();
        let id = {
            let mut g = self.lock();
            let id = g.next_waiter;
            g.next_waiter += 1;
            let limited = matches!(want, Want::Admit | Want::Copy);
            let fresh = !g.fetches.contains_key(&hash);
            if fresh && limited && g.limited >= FETCHES_MAX {
                return Err(BlobError::Busy);
            }
            if g.fetches.get(&hash).is_some_and(|f| f.waiters.len() >= WAITERS_MAX) {
                return Err(BlobError::Busy);
            }
            if fresh {
                let generation = g.next_generation;
                g.next_generation += 1;
                g.fetches.insert(
                    hash,
                    Fetch {
                        charge,
                        keep: false,
                        limited,
                        waiters: Vec::new(),
                        head: None,
                        targeted: false,
                        storing: false,
                        generation,
                        reservation: None,
                    },
                );
                if limited {
                    g.limited += 1;
                }
                // So announcements from holders are recorded from now on.
                g.known(hash);
            }
            let Some(f) = g.fetches.get_mut(&hash) else { return Err(BlobError::Busy) };
            if charge.quota == Quota::Charge {
                f.charge = charge;
            }
            f.keep |= within.is_none();
            f.waiters.push(Waiter { id, size, reply });
            if fresh {
                let targeted = g.fetch_keys(vec![PieceKey { blob: hash, piece: HEAD }]);
                if targeted {
                    self.untarget_later(hash);
                }
            }
            id
        };
        if let Some(within) = within {
            self.expire_after(hash, id, within);
        }
        rx.await.unwrap_or(Err(BlobError::Unavailable(hash)))
    }

    /// Tells waiter `id` of `hash`, if it still waits after `within`, that the blob is
    /// unavailable.
    fn expire_after(&self, hash: BlobHash, id: u64, within: Duration) {
        let net = self.clone();
        let sleep = (self.inner.rt.sleep)(within);
        self.spawn(async move {
            sleep.await;
            net.expire(hash, id);
        });
    }

    fn take_admit_slot(&self, account: AccountId) -> Result<AdmitSlot, BlobError> {
        let mut g = self.lock();
        let n = g.admissions.entry(account).or_default();
        if *n >= ADMIT_PER_ACCOUNT_MAX {
            return Err(BlobError::Busy);
        }
        *n += 1;
        Ok(AdmitSlot { net: self.clone(), account })
    }

    /// After [`TARGETED_FOR`], a fetch still waiting on the announced holders asks any
    /// validator: an announcement may have come from a validator that does not serve.
    fn untarget_later(&self, hash: BlobHash) {
        let net = self.clone();
        let sleep = (self.inner.rt.sleep)(TARGETED_FOR);
        self.spawn(async move {
            sleep.await;
            let mut g = net.lock();
            if !g.fetches.get(&hash).is_some_and(|f| f.targeted && !f.storing) {
                return;
            }
            let keys = g.wanted_keys(hash);
            if let Some(f) = g.fetches.get_mut(&hash) {
                f.targeted = false;
            }
            if let Some(r) = g.resolver.as_mut() {
                // A plain fetch clears the targets.
                let _ = r.fetch_all(keys);
            }
        });
    }

    /// Records that this validator holds `hash`; a fetch of it under way ends at once.
    fn mark_held(&self, hash: BlobHash, size: u64) {
        let done = {
            let mut g = self.lock();
            g.held.insert(hash, size);
            match g.fetches.get(&hash) {
                Some(f) if !f.storing => g.remove(hash),
                _ => None,
            }
        };
        if let Some(f) = done {
            answer(f.waiters, Some(size), &Ok(()));
        }
        self.start_queued();
    }

    /// A waiter's deadline passed: it is told the blob is unavailable, and a fetch nobody
    /// waits for any more stops (unless it is being written).
    fn expire(&self, hash: BlobHash, id: u64) {
        let removed = {
            let mut g = self.lock();
            let Some(f) = g.fetches.get_mut(&hash) else { return };
            if let Some(pos) = f.waiters.iter().position(|w| w.id == id) {
                let w = f.waiters.swap_remove(pos);
                let _ = w.reply.send(Err(BlobError::Unavailable(hash)));
            }
            if f.waiters.is_empty() && !f.keep && !f.storing {
                g.remove(hash);
                true
            } else {
                false
            }
        };
        if removed {
            self.start_queued();
        }
    }

    /// Waits up to `within` for a fetch of `hash` already under way (started by a transaction
    /// or a copy); fails at once when none is.
    pub async fn wait(&self, hash: BlobHash, within: Duration) -> Result<(), BlobError> {
        let (reply, rx) = futures::channel::oneshot::channel();
        let id = {
            let mut g = self.lock();
            let id = g.next_waiter;
            let Some(f) = g.fetches.get_mut(&hash) else {
                return Err(BlobError::Unavailable(hash));
            };
            if f.waiters.len() >= WAITERS_MAX {
                return Err(BlobError::Busy);
            }
            f.waiters.push(Waiter { id, size: None, reply });
            g.next_waiter += 1;
            id
        };
        self.expire_after(hash, id, within);
        rx.await.unwrap_or(Err(BlobError::Unavailable(hash)))
    }

    /// Fetches in the background, until they arrive, the blobs of finalized transactions that
    /// this validator lacks (charged to their signers whatever their quota), a few at a time.
    pub fn sync(&self, blobs: Vec<(BlobRef, AccountId)>) {
        let start = {
            let mut g = self.lock();
            for (blob, account) in blobs {
                if !g.held.contains_key(&blob.hash) && g.sync_queued.insert(blob.hash) {
                    g.sync_queue.push_back((blob, account));
                }
            }
            let start = !g.sync_running && !g.sync_queue.is_empty();
            g.sync_running |= start;
            start
        };
        if !start {
            return;
        }
        let net = self.clone();
        self.spawn(async move {
            let next = net.clone();
            let items = futures::stream::unfold((), move |()| {
                let next = next.clone();
                async move {
                    let mut g = next.lock();
                    match g.sync_queue.pop_front() {
                        Some(item) => Some((item, ())),
                        None => {
                            // Stop under the same lock that `sync` checks.
                            g.sync_running = false;
                            None
                        }
                    }
                }
            });
            items
                .for_each_concurrent(SYNC_CONCURRENCY, |(blob, account)| {
                    let net = net.clone();
                    async move {
                        let charge = Charge { account, quota: Quota::Charge };
                        let size = Some(blob.size.0);
                        match net.obtain(blob.hash, size, charge, None, Want::Sync).await {
                            Ok(()) => {}
                            Err(e) => warn!(hash = %blob.hash, "a blob a finalized block names cannot be stored: {e}"),
                        }
                        net.lock().sync_queued.remove(&blob.hash);
                    }
                })
                .await;
        });
    }

    /// Checks one response from a peer (the resolver's consumer).
    fn deliver(&self, key: PieceKey, value: Bytes) -> Outcome {
        debug!(%key, bytes = value.len(), "a peer answered");
        let done = Outcome::Resolved(commonware_resolver::Resolution::Complete);
        let g = self.lock();
        match g.fetches.get(&key.blob) {
            None => return Outcome::Ignored,
            Some(f) if f.storing => return Outcome::Ignored,
            Some(f) if key.piece == HEAD && f.head.is_some() => return done,
            Some(_) => {}
        }
        if key.piece == HEAD {
            self.deliver_head(g, key.blob, value)
        } else {
            self.deliver_piece(g, key.blob, u64::from(key.piece), value)
        }
    }

    /// Checks a blob's head: for one piece, its bytes; for several, its outline (which must
    /// fold to the blob's address) and last piece (which binds the size).
    fn deliver_head(&self, mut g: MutexGuard<'_, Shared>, hash: BlobHash, value: Bytes) -> Outcome {
        let done = Outcome::Resolved(commonware_resolver::Resolution::Complete);
        let Some((size, body)) = split_head(&value) else {
            warn!(%hash, "a peer sent a malformed head; blocking it");
            return Outcome::Invalid;
        };
        if !pieces::has_outline(size) {
            if body.len() as u64 != size || BlobHash::of(&body) != hash {
                warn!(%hash, "a peer sent bytes that do not hash to the blob; blocking it");
                return Outcome::Invalid;
            }
            drop(g);
            self.assembled(hash, size, Some(body));
            return done;
        }
        let n = pieces::piece_count(size);
        let Some(last) = pieces::piece_range(size, n - 1) else { return Outcome::Invalid };
        let Some(outline_bytes) = usize::try_from(n).ok().and_then(|n| n.checked_mul(32)) else {
            return Outcome::Invalid;
        };
        if body.len() as u64 != outline_bytes as u64 + (last.end - last.start) {
            warn!(%hash, "a peer sent a head of the wrong length; blocking it");
            return Outcome::Invalid;
        }
        let outline: Vec<PieceHash> =
            body[..outline_bytes].chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
        let tail = body.slice(outline_bytes..);
        if pieces::root_of(&outline, size) != Some(hash)
            || pieces::piece_hash(n - 1, &tail) != outline[(n - 1) as usize]
        {
            warn!(%hash, "a peer sent an outline that does not fold to the blob; blocking it");
            return Outcome::Invalid;
        }
        // The head is the blob's own. Callers that declared another size are told so; a blob
        // above the store's limit is nobody's to fetch. Neither is the peer's fault.
        let max = self.inner.store.limits().blob_max;
        let Some(f) = g.fetches.get_mut(&hash) else { return Outcome::Ignored };
        let (wrong, fine): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut f.waiters)
            .into_iter()
            .partition(|w| size > max || w.size.is_some_and(|d| d != size));
        f.waiters = fine;
        let err = if size > max { Err(BlobError::TooLarge { size, max }) } else { Ok(()) };
        if size > max || (f.waiters.is_empty() && !f.keep) {
            g.remove(hash);
        } else {
            let n = outline.len();
            let mut arrived = vec![false; n];
            arrived[n - 1] = true;
            f.head = Some(Head {
                size,
                outline: Arc::new(outline),
                tail: Some(tail),
                arrived,
                missing: n as u64,
                in_flight: 0,
                next: 0,
                started: false,
            });
            g.queued.push_back(hash);
        }
        drop(g);
        answer(wrong, Some(size), &err);
        self.start_queued();
        done
    }

    /// Checks piece `index` of a blob against its outline and writes it to the staging area;
    /// the last one written completes the blob.
    fn deliver_piece(
        &self,
        mut g: MutexGuard<'_, Shared>,
        hash: BlobHash,
        index: u64,
        value: Bytes,
    ) -> Outcome {
        let done = Outcome::Resolved(commonware_resolver::Resolution::Complete);
        let Some(f) = g.fetches.get_mut(&hash) else { return Outcome::Ignored };
        let Some(head) = f.head.as_mut() else { return Outcome::Ignored };
        let Some(range) = pieces::piece_range(head.size, index) else { return Outcome::Ignored };
        let i = index as usize;
        if head.arrived[i] {
            return done;
        }
        if value.len() as u64 != range.end - range.start
            || pieces::piece_hash(index, &value) != head.outline[i]
        {
            warn!(%hash, piece = index, "a peer sent a piece that does not match the blob's outline; blocking it");
            return Outcome::Invalid;
        }
        head.arrived[i] = true;
        // Counted in flight only if this fetch asked for it (a piece may answer a request
        // made before the fetch started over).
        let requested = index < head.next;
        let (size, expected) = (head.size, head.outline[i]);
        let generation = f.generation;
        drop(g);
        self.write_piece(hash, generation, size, index, expected, value, requested);
        done
    }

    /// Writes a checked piece to the staging area; then asks for the next piece, or stores the
    /// blob when it was the last. A write that fails ends the fetch with the store's error.
    #[allow(clippy::too_many_arguments)]
    fn write_piece(
        &self,
        hash: BlobHash,
        generation: u64,
        size: u64,
        index: u64,
        expected: PieceHash,
        value: Bytes,
        requested: bool,
    ) {
        let net = self.clone();
        self.spawn(async move {
            let written = net.inner.store.stage_piece(&hash, size, index, &expected, value).await;
            let (complete, targeted) = {
                let mut g = net.lock();
                let Some(h) = g
                    .fetches
                    .get_mut(&hash)
                    .filter(|f| f.generation == generation)
                    .and_then(|f| f.head.as_mut())
                else {
                    return;
                };
                if requested {
                    h.in_flight -= 1;
                }
                if let Err(e) = written {
                    warn!(%hash, piece = index, "staging a piece: {e}");
                    net.fail(g, hash, size, e);
                    return;
                }
                h.missing -= 1;
                if h.missing == 0 {
                    if let Some(f) = g.fetches.get_mut(&hash) {
                        f.storing = true;
                    }
                    (true, false)
                } else {
                    (false, g.request_more(hash))
                }
            };
            if targeted {
                net.untarget_later(hash);
            }
            if complete {
                net.assembled(hash, size, None);
            }
        });
    }

    /// Ends the fetch of `hash` (of `size` bytes) with `e`, answering its waiters.
    fn fail(&self, mut g: MutexGuard<'_, Shared>, hash: BlobHash, size: u64, e: BlobError) {
        let f = g.remove(hash);
        drop(g);
        if let Some(f) = f {
            answer(f.waiters, Some(size), &Err(e));
        }
        self.start_queued();
    }

    /// Holds the charged account's quota for the blob (refusing it, before anything is
    /// staged, if there is no room), stages its head and last piece (resuming from the pieces
    /// already staged by an earlier fetch that stopped), and asks for the first window.
    fn begin_assembly(&self, hash: BlobHash) {
        let net = self.clone();
        self.spawn(async move {
            let head = {
                let mut g = net.lock();
                g.fetches.get_mut(&hash).and_then(|f| {
                    let (generation, charge) = (f.generation, f.charge);
                    let h = f.head.as_mut()?;
                    Some((generation, charge, h.size, h.outline.clone(), h.tail.take()))
                })
            };
            let Some((generation, charge, size, outline, Some(tail))) = head else { return };
            let blob = BlobRef { hash, size: ByteSize(size) };
            let store = &net.inner.store;
            let staged = match store.reserve(&charge.account, size, charge.quota).await {
                Ok(r) => store.stage(&blob, &outline, tail).await.map(|s| (s, r)),
                Err(e) => Err(e),
            };
            let targeted = {
                let mut g = net.lock();
                if g.fetches.get(&hash).is_none_or(|f| f.generation != generation) {
                    return;
                }
                let (staged, reservation) = match staged {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(%hash, "a blob cannot be staged: {e}");
                        net.fail(g, hash, size, e);
                        return;
                    }
                };
                let Some(f) = g.fetches.get_mut(&hash) else { return };
                f.reservation = Some(reservation);
                let Some(h) = f.head.as_mut() else { return };
                let n = h.arrived.len();
                let mut resumed = 0;
                for (i, have) in staged.iter().enumerate() {
                    // The last piece was staged with the head; a piece that arrived meanwhile
                    // is counted when its own write ends.
                    if *have && (i == n - 1 || !h.arrived[i]) {
                        h.arrived[i] = true;
                        h.missing -= 1;
                        resumed += usize::from(i != n - 1);
                    }
                }
                if resumed > 0 {
                    info!(%hash, resumed, pieces = n, "resuming a blob's copy from staged pieces");
                }
                if h.missing == 0 {
                    f.storing = true;
                    drop(g);
                    net.assembled(hash, size, None);
                    return;
                }
                g.request_more(hash)
            };
            if targeted {
                net.untarget_later(hash);
            }
        });
    }

    /// Requests the pieces of queued blobs while they fit in [`ASSEMBLY_BYTES_MAX`].
    fn start_queued(&self) {
        let mut later = Vec::new();
        {
            let mut g = self.lock();
            while let Some(hash) = g.queued.front().copied() {
                let size = g.fetches.get(&hash).and_then(|f| f.head.as_ref()).map(|h| h.size);
                let Some(size) = size else {
                    g.queued.pop_front();
                    continue;
                };
                let share = window_bytes(size);
                if g.assembling > 0 && g.assembling + share > ASSEMBLY_BYTES_MAX {
                    break;
                }
                g.queued.pop_front();
                g.assembling += share;
                if let Some(h) = g.fetches.get_mut(&hash).and_then(|f| f.head.as_mut()) {
                    h.started = true;
                }
                later.push(hash);
            }
        }
        for hash in later {
            self.begin_assembly(hash);
        }
    }

    /// A blob arrived whole and checked (`data`, for a blob of one piece) or every piece of it
    /// is staged (`None`): store it, answer its waiters, announce it. Its fetch is marked
    /// `storing`, so nothing else ends it meanwhile.
    fn assembled(&self, hash: BlobHash, size: u64, data: Option<Bytes>) {
        let (charge, reservation) = {
            let mut g = self.lock();
            match g.fetches.get_mut(&hash) {
                Some(f) => {
                    f.storing = true;
                    (f.charge, f.reservation.take())
                }
                None => return,
            }
        };
        let net = self.clone();
        self.spawn(async move {
            let blob = BlobRef { hash, size: ByteSize(size) };
            let store = &net.inner.store;
            let stored = match data {
                Some(data) => store.put_as(&charge.account, &blob, data, charge.quota).await,
                None => {
                    let stored = store
                        .commit_staged(&charge.account, &blob, charge.quota, reservation)
                        .await;
                    // What can never be stored is not kept staged (a corrupt piece was already
                    // dropped, to be fetched again).
                    if let Err(BlobError::QuotaExceeded { .. } | BlobError::HashMismatch { .. }) =
                        &stored
                    {
                        store.drop_staged(&hash).await;
                    }
                    stored
                }
            };
            let (fetch, upload) = {
                let mut g = net.lock();
                if stored.is_ok() {
                    g.held.insert(hash, size);
                }
                (g.remove(hash), g.known.get(&hash).and_then(|k| k.upload))
            };
            net.start_queued();
            match &stored {
                Ok(_) => {
                    info!(%hash, size, "blob copied from a peer");
                    net.announce(Have { blob, upload });
                }
                Err(e) => warn!(%hash, "a fetched blob was not stored: {e}"),
            }
            if let Some(f) = fetch {
                answer(f.waiters, Some(size), &stored.map(|_| ()));
            }
        });
    }

    /// Answers a peer's request for a head or a piece (the resolver's producer); a blob this
    /// validator lacks gets no answer, and the peer asks another.
    async fn produce(&self, key: PieceKey) -> Option<Bytes> {
        let store = &self.inner.store;
        if key.piece == HEAD {
            let size = store.size(&key.blob).await.ok()??;
            let mut out = size.to_le_bytes().to_vec();
            if pieces::has_outline(size) {
                out.extend(store.outline(&key.blob).await.ok()??.concat());
                let last = pieces::piece_count(size) - 1;
                out.extend_from_slice(&store.piece(&key.blob, last).await.ok()??);
            } else {
                out.extend_from_slice(&store.get(&key.blob).await.ok()??);
            }
            return Some(Bytes::from(out));
        }
        store.piece(&key.blob, u64::from(key.piece)).await.ok()?
    }
}

fn split_head(value: &Bytes) -> Option<(u64, Bytes)> {
    if value.len() < 8 {
        return None;
    }
    let size = u64::from_le_bytes(value[..8].try_into().ok()?);
    Some((size, value.slice(8..)))
}

/// The resolver's consumer: checks each response before anything is kept.
#[derive(Clone, Debug)]
pub struct BlobConsumer(pub BlobNet);

impl Consumer for BlobConsumer {
    type Key = PieceKey;
    type Value = Bytes;
    type Subscriber = ();
    type Outcome = Outcome;

    fn deliver(
        &mut self,
        delivery: Delivery<PieceKey, ()>,
        value: Bytes,
    ) -> commonware_utils::channel::oneshot::Receiver<Outcome> {
        let (tx, rx) = commonware_utils::channel::oneshot::channel();
        let _ = tx.send(self.0.deliver(delivery.key, value));
        rx
    }
}

/// The resolver's producer: serves heads and pieces from the store.
#[derive(Clone, Debug)]
pub struct BlobProducer(pub BlobNet);

impl commonware_resolver::p2p::Producer for BlobProducer {
    type Key = PieceKey;

    fn produce(&mut self, key: PieceKey) -> commonware_utils::channel::oneshot::Receiver<Bytes> {
        let (tx, rx) = commonware_utils::channel::oneshot::channel();
        let net = self.0.clone();
        self.0.spawn(async move {
            let served = net.produce(key).await;
            let me = net.lock().me.clone();
            debug!(?me, %key, served = served.is_some(), "a peer asked for a blob piece");
            if let Some(bytes) = served {
                let _ = tx.send(bytes);
            }
        });
        rx
    }
}

/// The largest response the blob protocol sends: a head with the outline of the largest blob
/// the store accepts and its last piece.
pub fn max_response(blob_max: u64) -> usize {
    8 + 32 * pieces::piece_count(blob_max) as usize + PIECE_BYTES as usize
}

/// Blobs a state names and who is charged for each: programs' code (their owners), and
/// jobs' inputs (their requesters) and proof files (their provers).
pub fn state_blobs(state: &provernet_ledger::State) -> Vec<(BlobRef, AccountId)> {
    let mut out = Vec::new();
    for (_, p) in state.programs() {
        out.extend(p.manifest.prover.blobs().into_iter().map(|b| (b, p.owner)));
        if let provernet_types::VerifierSpec::Program { blob, .. } = &p.manifest.verifier {
            out.extend(blob.blobs().into_iter().map(|b| (b, p.owner)));
        }
    }
    for (_, j) in state.jobs() {
        out.extend(j.inputs.iter().map(|i| (i.blob, j.requester)));
        for a in j.attempts.iter() {
            out.extend(a.proof.iter().map(|f| (f.blob, AccountId::from(a.prover))));
        }
    }
    out
}

impl crate::chain::BlobGate for BlobNet {
    fn ready(&self, tx: &VerifiedTx) -> bool {
        BlobNet::ready(self, tx)
    }

    fn finalized(&self, txs: &[VerifiedTx], receipts: &[provernet_ledger::Receipt]) {
        let blobs: Vec<(BlobRef, AccountId)> = txs
            .iter()
            .zip(receipts)
            .filter(|(_, r)| r.result.is_ok())
            .flat_map(|(t, _)| {
                let signer = t.tx().signer;
                t.tx().body.blobs().into_iter().map(move |b| (b, signer))
            })
            .collect();
        if !blobs.is_empty() {
            self.sync(blobs);
        }
    }
}

impl BlobNet {
    /// At start: notes which of the blobs the finalized state names are here, and fetches the
    /// others in the background (a validator that was down while they were uploaded).
    pub async fn catch_up(&self) {
        let Some(chain) = self.inner.chain.upgrade() else { return };
        let mut all: BTreeMap<BlobHash, (BlobRef, AccountId)> = BTreeMap::new();
        for (b, a) in chain.with_state(state_blobs) {
            all.entry(b.hash).or_insert((b, a));
        }
        drop(chain);
        let mut missing = Vec::new();
        for (hash, (blob, account)) in all {
            match self.inner.store.size(&hash).await {
                Ok(Some(size)) => {
                    self.lock().held.insert(hash, size);
                }
                Ok(None) => missing.push((blob, account)),
                Err(e) => warn!(%hash, "checking the blob store: {e}"),
            }
        }
        if !missing.is_empty() {
            info!(missing = missing.len(), "fetching blobs the chain names from peers");
            self.sync(missing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_resolver::Resolution;

    fn net() -> (BlobNet, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = provernet_ledger::testkit::test_genesis(0, |_| {});
        let chain = Chain::open(&dir.path().join("ledger.redb"), &genesis, Default::default())
            .expect("chain");
        let store =
            BlobStore::open(&provernet_blobs::Backend::Memory, provernet_blobs::Limits::default())
                .expect("store");
        // Nothing runs in the background here: each check is synchronous.
        let rt = Runtime {
            spawn: Arc::new(|_| {}),
            sleep: Arc::new(|_| Box::pin(futures::future::pending())),
        };
        let (haves, _) = mpsc::channel(16);
        (BlobNet::new(store, chain, 4, rt, haves), dir)
    }

    fn want(net: &BlobNet, hash: BlobHash) {
        let charge = Charge { account: AccountId([1; 32]), quota: Quota::Enforce };
        net.lock().fetches.insert(
            hash,
            Fetch {
                charge,
                keep: true,
                limited: false,
                waiters: Vec::new(),
                head: None,
                targeted: false,
                storing: false,
                generation: 0,
                reservation: None,
            },
        );
    }

    fn head(size: u64, body: &[u8]) -> Bytes {
        let mut v = size.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    const OK: Outcome = Outcome::Resolved(Resolution::Complete);

    #[test]
    fn every_blob_message_fits_the_p2p_limit() {
        // The largest blob the chain allows (64 GiB) still has a head that fits one message.
        let value = max_response(provernet_types::limits::BLOB_BYTES_MAX.0);
        let message = commonware_resolver::p2p::max_message_size::<PieceKey>(value);
        assert!(message <= crate::engine::MAX_MESSAGE_BYTES as usize, "{message}");
    }

    #[test]
    fn a_peer_serving_bytes_that_do_not_match_is_refused() {
        let (net, _dir) = net();
        // A blob of one piece: its head carries its bytes, which must hash to its address.
        let small = b"a job input".to_vec();
        let hash = BlobHash::of(&small);
        want(&net, hash);
        let key = PieceKey { blob: hash, piece: HEAD };
        assert_eq!(net.deliver(key, head(11, b"another one")), Outcome::Invalid);
        assert_eq!(net.deliver(key, Bytes::from_static(b"short")), Outcome::Invalid);
        assert_eq!(net.deliver(key, head(11, &small)), OK);

        // A blob of several pieces: a forged outline, then forged pieces, are refused; the
        // real ones are kept.
        let big: Vec<u8> = (0..3 * PIECE_BYTES as usize + 5).map(|i| (i % 251) as u8).collect();
        let hash = BlobHash::of(&big);
        let size = big.len() as u64;
        want(&net, hash);
        let outline = pieces::outline(&big);
        let mut forged = outline.clone();
        forged[0][0] ^= 1;
        let key = PieceKey { blob: hash, piece: HEAD };
        let piece = |i: u64| {
            let r = pieces::piece_range(size, i).expect("piece");
            Bytes::copy_from_slice(&big[r.start as usize..r.end as usize])
        };
        let with_tail = |o: &[PieceHash], tail: &[u8]| [o.concat(), tail.to_vec()].concat();
        assert_eq!(net.deliver(key, head(size, &with_tail(&forged, &piece(3)))), Outcome::Invalid);
        // The outline alone would fold to the same root for a size one byte longer; the last
        // piece, whose length the size fixes, gives the lie away.
        let mut longer = piece(3).to_vec();
        longer.push(0);
        assert_eq!(
            net.deliver(key, head(size + 1, &with_tail(&outline, &longer))),
            Outcome::Invalid
        );
        assert_eq!(net.deliver(key, head(size, &with_tail(&outline, &piece(3)))), OK);
        let k1 = PieceKey { blob: hash, piece: 1 };
        let mut bad = piece(1).to_vec();
        bad[7] ^= 0xff;
        assert_eq!(net.deliver(k1, Bytes::from(bad)), Outcome::Invalid);
        assert_eq!(net.deliver(k1, piece(2)), Outcome::Invalid, "a piece at the wrong index");
        assert_eq!(net.deliver(k1, piece(1)), OK);
        assert_eq!(net.deliver(k1, piece(1)), OK, "a duplicate is harmless");
        // Nothing is stored before every piece arrived and checked.
        let missing = net
            .lock()
            .fetches
            .get(&hash)
            .and_then(|f| f.head.as_ref())
            .map(|h| h.arrived.iter().filter(|a| !**a).count());
        assert_eq!(missing, Some(2), "pieces 0 and 2 are still missing");
        // A response for a blob nobody fetches is ignored, not blamed on the peer.
        let stray = PieceKey { blob: BlobHash([9; 32]), piece: HEAD };
        assert_eq!(net.deliver(stray, head(1, b"x")), Outcome::Ignored);
    }
}
