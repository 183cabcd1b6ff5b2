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

pub mod pieces;

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
        Limits { blob_max: 256 << 20, account_quota: 16 << 30 }
    }
}

/// Why a blob operation failed. Each maps to a stable API error code.
#[derive(Debug, thiserror::Error)]
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
    #[error("blob store: {0}")]
    Store(String),
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
            BlobError::Store(_) => "blob_store_error",
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

/// A node's blob store.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    limits: Limits,
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
        Ok(BlobStore { store, limits, quota_locks })
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
        let stripe = usize::from(account.0[0]) % QUOTA_LOCK_STRIPES;
        let _guard = self.quota_locks[stripe].lock().await;
        if self.has(&declared.hash).await? {
            return Ok(Stored::Existing);
        }
        let used = self.usage(account).await?;
        let would = used.checked_add(declared.size.0).ok_or(BlobError::QuotaExceeded {
            account: *account,
            would: u64::MAX,
            quota: self.limits.account_quota,
        })?;
        if quota == Quota::Enforce && would > self.limits.account_quota {
            return Err(BlobError::QuotaExceeded {
                account: *account,
                would,
                quota: self.limits.account_quota,
            });
        }
        let outline = pieces::outline(&data);
        if !outline.is_empty() {
            let bytes: Vec<u8> = outline.concat();
            self.store
                .put(&outline_path(&declared.hash), PutPayload::from(bytes))
                .await
                .map_err(store_err)?;
        }
        // The blob last: a blob present means its outline is too.
        self.store
            .put(&blob_path(&declared.hash), PutPayload::from(data))
            .await
            .map_err(store_err)?;
        let record = Bytes::copy_from_slice(&would.to_le_bytes());
        self.store.put(&usage_path(account), PutPayload::from(record)).await.map_err(store_err)?;
        Ok(Stored::New)
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
        let Some(data) = self.get(hash).await? else { return Ok(None) };
        let outline = pieces::outline(&data);
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
        let Some(range) = pieces::piece_range(size, index) else { return Ok(None) };
        let bytes = self.store.get_range(&blob_path(hash), range).await.map_err(store_err)?;
        if pieces::piece_hash(index, &bytes) != outline[index as usize] {
            return Err(BlobError::Store(format!("piece {index} of blob {hash} is corrupt")));
        }
        Ok(Some(bytes))
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
