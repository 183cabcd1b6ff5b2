//! Content-addressed blobs: prover and verifier executables, job inputs, proofs.
//!
//! A blob is named by the BLAKE3 hash of its bytes ([`provernet_types::BlobHash`]) and stored
//! through the `object_store` crate under `blobs/<hash>`: on local disk by default, or in any
//! S3-compatible store (AWS, MinIO, Ceph, R2) by configuration. Only the hash and size go on
//! chain; whoever reads a blob checks its bytes against the hash before use.
//!
//! Uploads declare their size and hash and are refused unless the bytes match both, the size is
//! within the per-blob limit, and the uploading account stays within its byte quota (usage is
//! kept in the store itself, under `usage/<account>`, so it survives restarts). Storing a blob
//! that is already there charges nothing. Blobs copied from other validators are charged to an
//! account too ([`Quota`]), so an account's quota holds on every validator, not per upload.
//!
//! Validators copy blobs between them in verifiable pieces ([`pieces`]): a blob larger than one
//! piece keeps its *outline* beside it (`outlines/<hash>`), from which every piece served is
//! checked before it leaves the store.

pub use provernet_types::pieces;
pub mod staging;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use pieces::PieceHash;
use provernet_types::{AccountId, BlobHash, BlobRef};
use std::path::PathBuf;
use std::sync::Arc;

/// Where blobs live.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Backend {
    /// A directory on local disk (created if missing).
    Local { dir: PathBuf },
    /// An S3-compatible bucket. `endpoint` is for non-AWS stores; `allow_http` only for local
    /// test servers.
    S3 {
        bucket: String,
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        access_key_id: String,
        secret_access_key: String,
        #[serde(default)]
        allow_http: bool,
    },
    /// In memory, lost when the process ends (for simulations and tests).
    Memory,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Byte limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest single blob accepted.
    pub blob_max: u64,
    /// The most bytes one account may have uploaded to this node.
    pub account_quota: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { blob_max: provernet_types::limits::BLOB_BYTES_MAX.0, account_quota: 16 << 30 }
    }
}

/// Why a blob operation failed. Each maps to a stable API error code.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob of {size} bytes is above the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("declared size {declared} but {actual} bytes were sent")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("declared hash {declared} but the bytes hash to {actual}")]
    HashMismatch { declared: BlobHash, actual: BlobHash },
    #[error("account {account} would use {would} bytes, above its quota of {quota} bytes")]
    QuotaExceeded { account: AccountId, would: u64, quota: u64 },
    #[error("no validator could provide blob {0} in time; upload it first")]
    Unavailable(BlobHash),
    #[error("too many blob fetches are in progress on this validator; retry shortly")]
    Busy,
    #[error("the upload ended early: {0}")]
    Incomplete(String),
    #[error("blob store: {0}")]
    Store(String),
    #[error("a blob of {size} bytes is sent whole, not in pieces (it is not above one piece of {piece} bytes)")]
    NotInPieces { size: u64, piece: u64 },
    #[error("the outline sent for blob {0} does not fold to its hash")]
    OutlineMismatch(BlobHash),
    #[error("piece {index} of blob {blob} does not match the blob's outline")]
    PieceMismatch { blob: BlobHash, index: u64 },
    #[error(
        "no upload in pieces of blob {0} is open here; open one first (POST /v1/blobs/{0}/uploads)"
    )]
    UploadNotStarted(BlobHash),
    #[error("at most {max} uploads in pieces may be open per account; complete one or wait a day for it to expire")]
    TooManyUploads { max: usize },
    #[error("a request of {size} bytes is above this validator's limit of {max} bytes per request; send the blob in pieces")]
    RequestTooLarge { size: u64, max: u64 },
    #[error("bad chunk: {0}")]
    BadChunk(String),
}

impl BlobError {
    pub fn code(&self) -> &'static str {
        match self {
            BlobError::TooLarge { .. } => "blob_too_large",
            BlobError::SizeMismatch { .. } => "blob_size_mismatch",
            BlobError::HashMismatch { .. } => "blob_hash_mismatch",
            BlobError::QuotaExceeded { .. } => "blob_quota_exceeded",
            BlobError::Unavailable(_) => "blob_unavailable",
            BlobError::Busy => "blob_fetches_busy",
            BlobError::Incomplete(_) => "blob_upload_incomplete",
            BlobError::Store(_) => "blob_store_error",
            BlobError::NotInPieces { .. } => "blob_not_in_pieces",
            BlobError::OutlineMismatch(_) => "blob_outline_mismatch",
            BlobError::PieceMismatch { .. } => "blob_piece_mismatch",
            BlobError::UploadNotStarted(_) => "blob_upload_not_started",
            BlobError::TooManyUploads { .. } => "blob_uploads_too_many",
            BlobError::RequestTooLarge { .. } => "blob_request_too_large",
            BlobError::BadChunk(_) => "blob_chunk_invalid",
        }
    }
}

fn store_err(e: object_store::Error) -> BlobError {
    BlobError::Store(e.to_string())
}

/// How a stored blob is charged to the account it is stored for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// Refused if it would take the account over its quota: uploads, and copies of uploads
    /// made to other validators.
    Enforce,
    /// Charged even above the quota: blobs a finalized block names, which every validator must
    /// hold whatever its own count says.
    Charge,
}

/// Whether a put stored new bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    Existing,
}

/// Stripes of the per-account quota lock.
const QUOTA_LOCK_STRIPES: usize = 64;

/// Piece `index` of a stored blob of `size` bytes, checked against its outline.
async fn checked_piece(
    store: &Arc<dyn ObjectStore>,
    hash: &BlobHash,
    size: u64,
    outline: &[PieceHash],
    index: u64,
) -> Result<Bytes, BlobError> {
    let corrupt = || BlobError::Store(format!("piece {index} of blob {hash} is corrupt"));
    let range = pieces::piece_range(size, index).ok_or_else(corrupt)?;
    let bytes = store.get_range(&blob_path(hash), range).await.map_err(store_err)?;
    if outline.get(index as usize) != Some(&pieces::piece_hash(index, &bytes)) {
        return Err(corrupt());
    }
    Ok(bytes)
}

/// Quota held for a write under way; released when the write ends, however it ends.
#[derive(Debug)]
pub struct Reservation {
    reserved: Arc<std::sync::Mutex<std::collections::BTreeMap<AccountId, u64>>>,
    account: AccountId,
    size: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = reserved.get_mut(&self.account) {
            *r -= self.size;
            if *r == 0 {
                reserved.remove(&self.account);
            }
        }
    }
}

/// Writes one object in parts as its bytes arrive: a single `put` when it fits in one part,
/// a multipart upload (invisible until completed) when it does not. One part in memory.
struct PartWriter {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    part_bytes: usize,
    buffer: Vec<Bytes>,
    buffered: usize,
    upload: Option<Box<dyn object_store::MultipartUpload>>,
}

impl PartWriter {
    fn new(store: Arc<dyn ObjectStore>, path: StorePath, part_bytes: usize) -> PartWriter {
        PartWriter { store, path, part_bytes, buffer: Vec::new(), buffered: 0, upload: None }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        if self.buffered >= self.part_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlobError> {
        if self.upload.is_none() {
            self.upload = Some(self.store.put_multipart(&self.path).await.map_err(store_err)?);
        }
        let payload: PutPayload = std::mem::take(&mut self.buffer).into_iter().collect();
        self.buffered = 0;
        if let Some(u) = self.upload.as_mut() {
            u.put_part(payload).await.map_err(store_err)?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(), BlobError> {
        if self.upload.is_none() {
            let payload: PutPayload = std::mem::take(&mut self.buffer).into_iter().collect();
            self.store.put(&self.path, payload).await.map_err(store_err)?;
            return Ok(());
        }
        if self.buffered > 0 {
            self.flush().await?;
        }
        if let Some(u) = self.upload.as_mut() {
            u.complete().await.map_err(store_err)?;
        }
        Ok(())
    }

    async fn abort(mut self) {
        if let Some(u) = self.upload.as_mut() {
            if let Err(e) = u.abort().await {
                tracing::warn!(path = %self.path, "aborting an upload: {e}");
            }
        }
    }
}

/// A node's blob store.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    limits: Limits,
    /// Bytes a streamed write sends per part (S3 wants at least 5 MiB but for the last).
    part_bytes: usize,
    /// Bytes of writes under way, per account: held against its quota from before the first
    /// byte is read, so that parallel uploads cannot together pass it.
    reserved: Arc<std::sync::Mutex<std::collections::BTreeMap<AccountId, u64>>>,
    // Serialises quota updates (read-modify-write of `usage/<account>`) per account, in
    // stripes: writes for different accounts proceed in parallel.
    quota_locks: Arc<[tokio::sync::Mutex<()>]>,
}

fn blob_path(hash: &BlobHash) -> StorePath {
    StorePath::from(format!("blobs/{hash}"))
}

fn usage_path(account: &AccountId) -> StorePath {
    StorePath::from(format!("usage/{account}"))
}

fn outline_path(hash: &BlobHash) -> StorePath {
    StorePath::from(format!("outlines/{hash}"))
}

impl BlobStore {
    pub fn open(backend: &Backend, limits: Limits) -> Result<BlobStore, BlobError> {
        let part_bytes = match backend {
            Backend::S3 { .. } => 5 << 20,
            Backend::Local { .. } | Backend::Memory => 1 << 20,
        };
        let store: Arc<dyn ObjectStore> = match backend {
            Backend::Local { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| BlobError::Store(format!("creating {}: {e}", dir.display())))?;
                Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(store_err)?)
            }
            Backend::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_allow_http(*allow_http);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                Arc::new(b.build().map_err(store_err)?)
            }
            Backend::Memory => Arc::new(InMemory::new()),
        };
        let quota_locks = (0..QUOTA_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        Ok(BlobStore { store, limits, part_bytes, reserved: Arc::default(), quota_locks })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Checks `data` against `declared` (size limit, size, hash).
    pub fn check(&self, declared: &BlobRef, data: &[u8]) -> Result<(), BlobError> {
        if declared.size.0 > self.limits.blob_max {
            return Err(BlobError::TooLarge { size: declared.size.0, max: self.limits.blob_max });
        }
        if data.len() as u64 != declared.size.0 {
            return Err(BlobError::SizeMismatch {
                declared: declared.size.0,
                actual: data.len() as u64,
            });
        }
        let actual = BlobHash::of(data);
        if actual != declared.hash {
            return Err(BlobError::HashMismatch { declared: declared.hash, actual });
        }
        Ok(())
    }

    pub async fn has(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        match self.store.head(&blob_path(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Bytes `account` has uploaded here.
    pub async fn usage(&self, account: &AccountId) -> Result<u64, BlobError> {
        match self.store.get(&usage_path(account)).await {
            Ok(r) => {
                let b = r.bytes().await.map_err(store_err)?;
                let arr: [u8; 8] = b
                    .as_ref()
                    .try_into()
                    .map_err(|_| BlobError::Store("corrupt usage record".into()))?;
                Ok(u64::from_le_bytes(arr))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(0),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Stores an upload by `account`: checks it, charges its quota, writes it.
    pub async fn put(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        data: Bytes,
    ) -> Result<Stored, BlobError> {
        self.put_as(account, declared, data, Quota::Enforce).await
    }

    /// Stores `data` for `account` (its uploader, or the account whose transaction named it):
    /// checks it against `declared`, charges the account's usage as `quota` says, and writes
    /// the blob and, for a blob of several pieces, its outline.
    pub async fn put_as(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        data: Bytes,
        quota: Quota,
    ) -> Result<Stored, BlobError> {
        self.check(declared, &data)?;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(data)]);
        self.put_stream(account, declared, quota, body, std::time::Duration::MAX).await
    }

    /// Stores a blob whose bytes arrive as `body`, for `account`, without holding it in memory:
    /// everything that can be checked before the first byte is (the size limit, whether the
    /// blob is already here, the account's quota, which stays reserved while the bytes
    /// arrive); the bytes are hashed on their way to the store, which is written in parts, and
    /// the blob becomes visible only once its size and hash matched `declared`. More bytes
    /// than declared stop the reading at once; a body that sends nothing for `idle` is given
    /// up (`Duration::MAX`: never). Nothing is charged or kept for a refused upload.
    pub async fn put_stream<S, E>(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        quota: Quota,
        body: S,
        idle: std::time::Duration,
    ) -> Result<Stored, BlobError>
    where
        S: futures::Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        self.put_stream_held(account, declared, quota, body, idle, None).await
    }

    /// [`BlobStore::put_stream`] within a reservation of the account's quota already held
    /// for it (by whoever staged its pieces), or one taken here.
    pub(crate) async fn put_stream_held<S, E>(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        quota: Quota,
        body: S,
        idle: std::time::Duration,
        held: Option<Reservation>,
    ) -> Result<Stored, BlobError>
    where
        S: futures::Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        use futures::StreamExt;
        let size = declared.size.0;
        if size > self.limits.blob_max {
            return Err(BlobError::TooLarge { size, max: self.limits.blob_max });
        }
        if self.has(&declared.hash).await? {
            return Ok(Stored::Existing);
        }
        let _reservation = match held {
            Some(r) if r.account == *account && r.size == size => r,
            _ => self.reserve(account, size, quota).await?,
        };
        let mut body = std::pin::pin!(body);
        let mut hasher = pieces::StreamHasher::new();
        let mut writer =
            PartWriter::new(self.store.clone(), blob_path(&declared.hash), self.part_bytes);
        let read = async {
            loop {
                // `Duration::MAX`: no timer at all (copies between validators run on runtimes
                // without tokio's timer, and their bytes are already in memory).
                let next = if idle == std::time::Duration::MAX {
                    body.next().await
                } else {
                    tokio::time::timeout(idle, body.next()).await.map_err(|_| {
                        BlobError::Incomplete(format!(
                            "no bytes for {} s after {} of {size}",
                            idle.as_secs(),
                            hasher.len()
                        ))
                    })?
                };
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|e| {
                    BlobError::Incomplete(format!("after {} of {size} bytes: {e}", hasher.len()))
                })?;
                let actual = hasher.len() + chunk.len() as u64;
                if actual > size {
                    return Err(BlobError::SizeMismatch { declared: size, actual });
                }
                hasher.update(&chunk);
                writer.write(chunk).await?;
            }
            if hasher.len() != size {
                return Err(BlobError::SizeMismatch { declared: size, actual: hasher.len() });
            }
            let (actual, outline) = std::mem::take(&mut hasher).finish();
            if actual != declared.hash {
                return Err(BlobError::HashMismatch { declared: declared.hash, actual });
            }
            Ok(outline)
        };
        let outline = match read.await {
            Ok(o) => o,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        let stripe = usize::from(account.0[0]) % QUOTA_LOCK_STRIPES;
        let _guard = self.quota_locks[stripe].lock().await;
        if self.has(&declared.hash).await? {
            // Stored by another upload meanwhile: nothing more to keep or charge.
            writer.abort().await;
            return Ok(Stored::Existing);
        }
        if !outline.is_empty() {
            let bytes: Vec<u8> = outline.concat();
            self.store
                .put(&outline_path(&declared.hash), PutPayload::from(bytes))
                .await
                .map_err(store_err)?;
        }
        // The blob last: a blob present means its outline is too.
        writer.finish().await?;
        let used = self.usage(account).await?;
        let would = used.checked_add(size).ok_or_else(|| {
            BlobError::Store(format!("usage of {account} overflows: {used} + {size}"))
        })?;
        let record = Bytes::copy_from_slice(&would.to_le_bytes());
        self.store.put(&usage_path(account), PutPayload::from(record)).await.map_err(store_err)?;
        Ok(Stored::New)
    }

    /// Holds `size` bytes of `account`'s quota for a write under way (refused, with
    /// [`Quota::Enforce`], when its usage and its other writes under way leave no room).
    pub async fn reserve(
        &self,
        account: &AccountId,
        size: u64,
        quota: Quota,
    ) -> Result<Reservation, BlobError> {
        self.reserve_except(account, size, quota, None).await
    }

    /// [`BlobStore::reserve`], not counting the account's open upload in pieces of `except`
    /// (the one being completed, which this reservation replaces).
    pub(crate) async fn reserve_except(
        &self,
        account: &AccountId,
        size: u64,
        quota: Quota,
        except: Option<&BlobHash>,
    ) -> Result<Reservation, BlobError> {
        let stripe = usize::from(account.0[0]) % QUOTA_LOCK_STRIPES;
        let _guard = self.quota_locks[stripe].lock().await;
        // Uploads in pieces the account has open count too (see `staging`).
        let mut open = 0u64;
        if quota == Quota::Enforce {
            for (h, s) in self.sessions(account).await? {
                if Some(&h) != except {
                    open = open.checked_add(s).ok_or_else(|| {
                        BlobError::Store(format!("open uploads of {account} overflow"))
                    })?;
                }
            }
        }
        let used = self.usage(account).await?.checked_add(open).ok_or_else(|| {
            BlobError::Store(format!("usage of {account} overflows with its open uploads"))
        })?;
        let mut reserved = self.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = reserved.get(account).copied().unwrap_or(0);
        let would = used.checked_add(pending).and_then(|u| u.checked_add(size));
        let over = |would| BlobError::QuotaExceeded {
            account: *account,
            would,
            quota: self.limits.account_quota,
        };
        let would = would.ok_or_else(|| over(u64::MAX))?;
        if quota == Quota::Enforce && would > self.limits.account_quota {
            return Err(over(would));
        }
        reserved.insert(*account, pending + size);
        Ok(Reservation { reserved: self.reserved.clone(), account: *account, size })
    }

    /// The size of a stored blob.
    pub async fn size(&self, hash: &BlobHash) -> Result<Option<u64>, BlobError> {
        match self.store.head(&blob_path(hash)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    /// The outline of a stored blob of several pieces (see [`pieces`]), rebuilt from the blob
    /// if it was lost; `None` if the blob is not here, an empty outline for a single piece.
    pub async fn outline(&self, hash: &BlobHash) -> Result<Option<Vec<PieceHash>>, BlobError> {
        let Some(size) = self.size(hash).await? else { return Ok(None) };
        if !pieces::has_outline(size) {
            return Ok(Some(Vec::new()));
        }
        if let Ok(r) = self.store.get(&outline_path(hash)).await {
            let b = r.bytes().await.map_err(store_err)?;
            let hashes: Vec<PieceHash> =
                b.chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
            if b.len() % 32 == 0 && pieces::root_of(&hashes, size) == Some(*hash) {
                return Ok(Some(hashes));
            }
        }
        // Rebuilt a piece at a time: a blob may be far larger than memory should hold.
        let mut hasher = pieces::StreamHasher::new();
        for index in 0..pieces::piece_count(size) {
            let Some(range) = pieces::piece_range(size, index) else { break };
            let bytes = self.store.get_range(&blob_path(hash), range).await.map_err(store_err)?;
            hasher.update(&bytes);
        }
        let (actual, outline) = hasher.finish();
        if actual != *hash {
            return Err(BlobError::HashMismatch { declared: *hash, actual });
        }
        self.store
            .put(&outline_path(hash), PutPayload::from(outline.concat()))
            .await
            .map_err(store_err)?;
        Ok(Some(outline))
    }

    /// Piece `index` of a stored blob, checked against its outline (or, for a blob of one
    /// piece, its hash) before it is returned.
    pub async fn piece(&self, hash: &BlobHash, index: u64) -> Result<Option<Bytes>, BlobError> {
        let Some(outline) = self.outline(hash).await? else { return Ok(None) };
        if outline.is_empty() {
            return if index == 0 { self.get(hash).await } else { Ok(None) };
        }
        let Some(size) = self.size(hash).await? else { return Ok(None) };
        if pieces::piece_range(size, index).is_none() {
            return Ok(None);
        }
        checked_piece(&self.store, hash, size, &outline, index).await.map(Some)
    }

    /// The blob's size and its bytes as a stream of pieces, each checked (against the
    /// outline, or the whole hash for a blob of one piece) before it is yielded: a download
    /// holds one piece in memory, and a corrupted store ends the stream with an error instead
    /// of serving wrong bytes.
    pub async fn read(
        &self,
        hash: &BlobHash,
    ) -> Result<
        Option<(u64, futures::stream::BoxStream<'static, Result<Bytes, BlobError>>)>,
        BlobError,
    > {
        self.read_from(hash, 0).await
    }

    /// [`BlobStore::read`] from byte `offset` on (the pieces it falls in are still checked
    /// whole); an offset at or past the end yields nothing.
    pub async fn read_from(
        &self,
        hash: &BlobHash,
        offset: u64,
    ) -> Result<
        Option<(u64, futures::stream::BoxStream<'static, Result<Bytes, BlobError>>)>,
        BlobError,
    > {
        use futures::StreamExt;
        let Some(size) = self.size(hash).await? else { return Ok(None) };
        let offset = offset.min(size);
        if !pieces::has_outline(size) {
            let Some(bytes) = self.get(hash).await? else { return Ok(None) };
            let rest = bytes.slice(offset as usize..);
            return Ok(Some((size, futures::stream::once(async { Ok(rest) }).boxed())));
        }
        let Some(outline) = self.outline(hash).await? else { return Ok(None) };
        let (store, hash, outline) = (self.store.clone(), *hash, Arc::new(outline));
        let first = offset / pieces::PIECE_BYTES;
        let skip = (offset % pieces::PIECE_BYTES) as usize;
        let stream = futures::stream::iter(first..pieces::piece_count(size)).then(move |index| {
            let (store, outline) = (store.clone(), outline.clone());
            async move {
                let piece = checked_piece(&store, &hash, size, &outline, index).await?;
                Ok(if index == first { piece.slice(skip.min(piece.len())..) } else { piece })
            }
        });
        Ok(Some((size, stream.boxed())))
    }

    /// The blob's bytes, re-checked against its hash (a corrupted store is an error, not data).
    pub async fn get(&self, hash: &BlobHash) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&blob_path(hash)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(store_err)?;
                let actual = BlobHash::of(&bytes);
                if actual != *hash {
                    return Err(BlobError::HashMismatch { declared: *hash, actual });
                }
                Ok(Some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }
}
