//! Blobs that arrive in pieces: uploads larger than one request, and copies between
//! validators.
//!
//! A blob being assembled is *staged* in the store itself, under `staging/<hash>/`: its head
//! (the size and the outline, which must fold to the blob's address) and each piece that has
//! arrived, checked against its outline entry before it is written. Nothing is held in memory
//! but the piece at hand, and since the staging area is in the store, an assembly survives a
//! restart of either end: a client that was killed asks which pieces are missing and sends
//! only those. A staged blob becomes a blob only when every piece is there: the pieces are
//! read back in order, checked again, and streamed into the store through
//! [`BlobStore::put_stream`], which hashes the whole and charges the account like any upload.
//!
//! An upload is opened by an account ([`BlobStore::begin_upload`]), which records a *session*
//! (`sessions/<account>/<hash>`, holding the size) that counts against the account's quota
//! until it completes or expires, so open sessions cannot together pass the quota. Pieces may
//! be sent by anyone (they are checked against the outline, so a stranger can only help); only
//! the account that opened a session completes it. Staged blobs untouched for a day are swept
//! ([`BlobStore::sweep_staged`]).

use crate::pieces::{self, PieceHash, PIECE_BYTES};
use crate::{store_err, BlobError, BlobStore, Quota, Stored, QUOTA_LOCK_STRIPES};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provernet_types::{AccountId, BlobHash, BlobRef, Bytes as ByteSize};
use std::ops::Range;
use std::time::Duration;

/// Most uploads in pieces one account may have open on a validator at once.
pub const SESSIONS_PER_ACCOUNT_MAX: usize = 4;
/// How long a staged blob that receives nothing is kept before it is swept.
pub const STAGED_IDLE_MAX: Duration = Duration::from_secs(24 * 3600);

/// Where an upload in pieces stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub blob: BlobRef,
    /// Pieces in all.
    pub pieces: u64,
    /// Bytes of the pieces already staged.
    pub received: u64,
    /// The pieces still missing, as ranges of piece indices in order.
    pub missing: Vec<Range<u64>>,
    /// The blob is already stored whole: nothing more to send.
    pub stored: bool,
}

fn head_path(hash: &BlobHash) -> StorePath {
    StorePath::from(format!("staging/{hash}/head"))
}

fn piece_path(hash: &BlobHash, index: u64) -> StorePath {
    StorePath::from(format!("staging/{hash}/p{index:08}"))
}

fn staging_dir(hash: &BlobHash) -> StorePath {
    StorePath::from(format!("staging/{hash}"))
}

fn session_path(account: &AccountId, hash: &BlobHash) -> StorePath {
    StorePath::from(format!("sessions/{account}/{hash}"))
}

fn sessions_dir(account: &AccountId) -> StorePath {
    StorePath::from(format!("sessions/{account}"))
}

/// The ranges of `false` in `have`.
fn gaps(have: &[bool]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for (i, h) in have.iter().enumerate() {
        let i = i as u64;
        if *h {
            continue;
        }
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

impl BlobStore {
    /// Stages the head of a blob of several pieces, unless it is staged already: its size, its
    /// outline (which must fold to its address) and its last piece `tail`, whose length binds
    /// the size (an outline alone folds to the same address for other sizes: without the
    /// tail, anyone could stage a head of the wrong size first and block the blob). Says which
    /// of its pieces are here. Refused for a blob of one piece (it is sent whole).
    pub async fn stage(
        &self,
        declared: &BlobRef,
        outline: &[PieceHash],
        tail: Bytes,
    ) -> Result<Vec<bool>, BlobError> {
        let (hash, size) = (declared.hash, declared.size.0);
        if size > self.limits.blob_max {
            return Err(BlobError::TooLarge { size, max: self.limits.blob_max });
        }
        if !pieces::has_outline(size) {
            return Err(BlobError::NotInPieces { size, piece: PIECE_BYTES });
        }
        if pieces::root_of(outline, size) != Some(hash) {
            return Err(BlobError::OutlineMismatch(hash));
        }
        let last = outline.len() as u64 - 1;
        let want = pieces::piece_range(size, last).map(|r| r.end - r.start);
        if want != Some(tail.len() as u64)
            || pieces::piece_hash(last, &tail) != outline[last as usize]
        {
            return Err(BlobError::PieceMismatch { blob: hash, index: last });
        }
        match self.staged_head(&hash).await? {
            // Every staged head was checked with its tail: it is the blob's own.
            Some((staged, _)) if staged != size => {
                return Err(BlobError::SizeMismatch { declared: size, actual: staged })
            }
            Some(_) => {}
            None => {
                let mut head = size.to_le_bytes().to_vec();
                head.extend(outline.concat());
                self.store
                    .put(&head_path(&hash), PutPayload::from(head))
                    .await
                    .map_err(store_err)?;
            }
        }
        self.stage_piece(&hash, size, last, &outline[last as usize], tail).await?;
        self.staged_pieces(&hash, size).await
    }

    /// The staged head of `hash`: its size and outline, if it is staged (and not corrupt).
    pub async fn staged_head(
        &self,
        hash: &BlobHash,
    ) -> Result<Option<(u64, Vec<PieceHash>)>, BlobError> {
        let bytes = match self.store.get(&head_path(hash)).await {
            Ok(r) => r.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        if bytes.len() < 8 || (bytes.len() - 8) % 32 != 0 {
            return Ok(None);
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[..8]);
        let size = u64::from_le_bytes(size);
        let outline: Vec<PieceHash> =
            bytes[8..].chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
        if pieces::root_of(&outline, size) != Some(*hash) {
            return Ok(None);
        }
        Ok(Some((size, outline)))
    }

    /// Which pieces of the staged blob `hash` (of `size` bytes) are here.
    async fn staged_pieces(&self, hash: &BlobHash, size: u64) -> Result<Vec<bool>, BlobError> {
        let n = pieces::piece_count(size);
        let mut have = vec![false; n as usize];
        let mut list = self.store.list(Some(&staging_dir(hash)));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err)?;
            let Some(index) = meta
                .location
                .filename()
                .and_then(|f| f.strip_prefix('p'))
                .and_then(|i| i.parse::<u64>().ok())
            else {
                continue;
            };
            let expected = pieces::piece_range(size, index).map(|r| r.end - r.start);
            if expected == Some(meta.size) {
                have[index as usize] = true;
            }
        }
        Ok(have)
    }

    /// Writes piece `index` of the staged blob `hash`, checked against `expected` (its outline
    /// entry) and the length its place in a blob of `size` bytes gives it.
    pub async fn stage_piece(
        &self,
        hash: &BlobHash,
        size: u64,
        index: u64,
        expected: &PieceHash,
        bytes: Bytes,
    ) -> Result<(), BlobError> {
        let range = pieces::piece_range(size, index)
            .ok_or(BlobError::PieceMismatch { blob: *hash, index })?;
        if bytes.len() as u64 != range.end - range.start
            || pieces::piece_hash(index, &bytes) != *expected
        {
            return Err(BlobError::PieceMismatch { blob: *hash, index });
        }
        self.store
            .put(&piece_path(hash, index), PutPayload::from(bytes))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Stores the staged blob `declared` for `account` once every piece is here: the pieces are
    /// read back in order, checked against the outline again, and streamed through
    /// [`BlobStore::put_stream`]. The staging area is removed afterwards.
    pub async fn commit_staged(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        quota: Quota,
        held: Option<crate::Reservation>,
    ) -> Result<Stored, BlobError> {
        let hash = declared.hash;
        if self.has(&hash).await? {
            self.drop_staged(&hash).await;
            return Ok(Stored::Existing);
        }
        let Some((size, outline)) = self.staged_head(&hash).await? else {
            return Err(BlobError::UploadNotStarted(hash));
        };
        if size != declared.size.0 {
            return Err(BlobError::SizeMismatch { declared: declared.size.0, actual: size });
        }
        let missing = gaps(&self.staged_pieces(&hash, size).await?);
        if let Some(first) = missing.first() {
            let count: u64 = missing.iter().map(|r| r.end - r.start).sum();
            return Err(BlobError::Incomplete(format!(
                "{count} of {} pieces are missing, the first at index {}",
                outline.len(),
                first.start
            )));
        }
        let store = self.store.clone();
        let body = futures::stream::iter(0..outline.len() as u64).then(move |index| {
            let (store, expected) = (store.clone(), outline[index as usize]);
            async move {
                let bytes = store
                    .get(&piece_path(&hash, index))
                    .await
                    .map_err(store_err)?
                    .bytes()
                    .await
                    .map_err(store_err)?;
                if pieces::piece_hash(index, &bytes) != expected {
                    return Err(BlobError::PieceMismatch { blob: hash, index });
                }
                Ok::<_, BlobError>(bytes)
            }
        });
        let stored =
            self.put_stream_held(account, declared, quota, body, Duration::MAX, held).await;
        match &stored {
            Ok(_) => self.drop_staged(&hash).await,
            // A staged piece that no longer checks (a disk's corruption) is dropped, to be
            // sent or fetched again.
            Err(BlobError::PieceMismatch { index, .. }) => {
                if let Err(e) = self.store.delete(&piece_path(&hash, *index)).await {
                    tracing::warn!(%hash, piece = index, "removing a corrupt staged piece: {e}");
                }
            }
            Err(_) => {}
        }
        stored
    }

    /// Removes whatever is staged of `hash`.
    pub async fn drop_staged(&self, hash: &BlobHash) {
        let mut list = self.store.list(Some(&staging_dir(hash)));
        while let Some(meta) = list.next().await {
            let Ok(meta) = meta else { continue };
            if let Err(e) = self.store.delete(&meta.location).await {
                tracing::warn!(%hash, "removing a staged piece: {e}");
            }
        }
    }

    /// Opens (or reopens) `account`'s upload in pieces of `declared`, whose outline is
    /// `outline`, and says what is missing. Opening counts the blob's size against the
    /// account's quota, with its other open uploads, until it completes or is swept; an account
    /// has at most [`SESSIONS_PER_ACCOUNT_MAX`] open at once.
    pub async fn begin_upload(
        &self,
        account: &AccountId,
        declared: &BlobRef,
        outline: &[PieceHash],
        tail: Bytes,
    ) -> Result<UploadState, BlobError> {
        let size = declared.size.0;
        if self.has(&declared.hash).await? {
            // Stored meanwhile (by another upload): nothing to send, and nothing held open.
            let _ = self.store.delete(&session_path(account, &declared.hash)).await;
            return Ok(self.state_of(declared, None, true));
        }
        if size > self.limits.blob_max {
            return Err(BlobError::TooLarge { size, max: self.limits.blob_max });
        }
        if !pieces::has_outline(size) {
            return Err(BlobError::NotInPieces { size, piece: PIECE_BYTES });
        }
        if pieces::root_of(outline, size) != Some(declared.hash) {
            return Err(BlobError::OutlineMismatch(declared.hash));
        }
        {
            let stripe = usize::from(account.0[0]) % QUOTA_LOCK_STRIPES;
            let _guard = self.quota_locks[stripe].lock().await;
            let open = self.sessions(account).await?;
            let reopened = open.iter().any(|(h, _)| *h == declared.hash);
            if reopened {
                // Reopening keeps the upload alive for another day (the sweep goes by it).
                self.store
                    .put(
                        &session_path(account, &declared.hash),
                        PutPayload::from(size.to_le_bytes().to_vec()),
                    )
                    .await
                    .map_err(store_err)?;
            } else {
                if open.len() >= SESSIONS_PER_ACCOUNT_MAX {
                    return Err(BlobError::TooManyUploads { max: SESSIONS_PER_ACCOUNT_MAX });
                }
                let pending = self
                    .reserved
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(account)
                    .copied()
                    .unwrap_or(0);
                let would = open
                    .iter()
                    .try_fold(self.usage(account).await?, |a, (_, s)| a.checked_add(*s))
                    .and_then(|u| u.checked_add(pending))
                    .and_then(|u| u.checked_add(size))
                    .unwrap_or(u64::MAX);
                if would > self.limits.account_quota {
                    return Err(BlobError::QuotaExceeded {
                        account: *account,
                        would,
                        quota: self.limits.account_quota,
                    });
                }
                self.store
                    .put(
                        &session_path(account, &declared.hash),
                        PutPayload::from(size.to_le_bytes().to_vec()),
                    )
                    .await
                    .map_err(store_err)?;
            }
        }
        let have = self.stage(declared, outline, tail).await?;
        Ok(self.state_of(declared, Some(&have), false))
    }

    fn state_of(&self, blob: &BlobRef, have: Option<&[bool]>, stored: bool) -> UploadState {
        let size = blob.size.0;
        let missing = have.map(gaps).unwrap_or_default();
        let received = match have {
            None => size,
            Some(have) => have
                .iter()
                .enumerate()
                .filter(|(_, h)| **h)
                .filter_map(|(i, _)| pieces::piece_range(size, i as u64))
                .map(|r| r.end - r.start)
                .sum(),
        };
        UploadState { blob: *blob, pieces: pieces::piece_count(size), received, missing, stored }
    }

    /// Where the upload in pieces of `hash` stands; `None` when it is neither staged nor
    /// stored.
    pub async fn upload_state(&self, hash: &BlobHash) -> Result<Option<UploadState>, BlobError> {
        if let Some(size) = self.size(hash).await? {
            return Ok(Some(self.state_of(
                &BlobRef { hash: *hash, size: ByteSize(size) },
                None,
                true,
            )));
        }
        let Some((size, _)) = self.staged_head(hash).await? else { return Ok(None) };
        let have = self.staged_pieces(hash, size).await?;
        Ok(Some(self.state_of(&BlobRef { hash: *hash, size: ByteSize(size) }, Some(&have), false)))
    }

    /// Stages consecutive pieces of the staged blob `hash` from `body`, the first being piece
    /// `first`: each is checked against the outline as it completes and written before the
    /// next is read, so one piece is held at a time. The body must end on a piece's end; more
    /// than `max` bytes, or nothing for `idle`, stop it. Pieces that checked before a failure
    /// stay staged. Returns the number of pieces written.
    pub async fn put_pieces<S, E>(
        &self,
        hash: &BlobHash,
        first: u64,
        body: S,
        max: u64,
        idle: Duration,
    ) -> Result<u64, BlobError>
    where
        S: futures::Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let Some((size, outline)) = self.staged_head(hash).await? else {
            return Err(BlobError::UploadNotStarted(*hash));
        };
        let n = outline.len() as u64;
        if first >= n {
            return Err(BlobError::BadChunk(format!(
                "piece {first} is past the blob's last piece ({})",
                n - 1
            )));
        }
        let mut body = std::pin::pin!(body);
        let mut index = first;
        let mut piece = BytesMut::new();
        let mut read = 0u64;
        let mut written = 0u64;
        loop {
            let next = tokio::time::timeout(idle, body.next()).await.map_err(|_| {
                BlobError::Incomplete(format!("no bytes for {} s at piece {index}", idle.as_secs()))
            })?;
            let Some(chunk) = next else { break };
            let mut chunk =
                chunk.map_err(|e| BlobError::Incomplete(format!("at piece {index}: {e}")))?;
            read += chunk.len() as u64;
            if read > max {
                return Err(BlobError::RequestTooLarge { size: read, max });
            }
            while !chunk.is_empty() {
                let Some(range) = pieces::piece_range(size, index) else {
                    return Err(BlobError::BadChunk(format!(
                        "the body runs past the blob's end ({size} bytes)"
                    )));
                };
                let want = (range.end - range.start) as usize - piece.len();
                let take = want.min(chunk.len());
                piece.extend_from_slice(&chunk.split_to(take));
                if piece.len() as u64 == range.end - range.start {
                    let bytes = std::mem::take(&mut piece).freeze();
                    self.stage_piece(hash, size, index, &outline[index as usize], bytes).await?;
                    written += 1;
                    index += 1;
                }
            }
        }
        if !piece.is_empty() {
            return Err(BlobError::BadChunk(format!(
                "the body ends inside piece {index}: a chunk must be whole pieces of {PIECE_BYTES} bytes"
            )));
        }
        Ok(written)
    }

    /// Completes `account`'s upload in pieces of `hash`: stores the blob once every piece is
    /// staged, charging the account's quota, and closes the session.
    pub async fn complete_upload(
        &self,
        account: &AccountId,
        hash: &BlobHash,
    ) -> Result<(BlobRef, Stored), BlobError> {
        let session = session_path(account, hash);
        if let Some(size) = self.size(hash).await? {
            if let Err(e) = self.store.delete(&session).await {
                tracing::warn!(%hash, "closing an upload session: {e}");
            }
            self.drop_staged(hash).await;
            return Ok((BlobRef { hash: *hash, size: ByteSize(size) }, Stored::Existing));
        }
        let size = match self.store.get(&session).await {
            Ok(r) => {
                let b = r.bytes().await.map_err(store_err)?;
                let arr: [u8; 8] = b
                    .as_ref()
                    .try_into()
                    .map_err(|_| BlobError::Store("corrupt upload session".into()))?;
                u64::from_le_bytes(arr)
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::UploadNotStarted(*hash))
            }
            Err(e) => return Err(store_err(e)),
        };
        let declared = BlobRef { hash: *hash, size: ByteSize(size) };
        // The session's share of the quota becomes the blob's.
        let held = self.reserve_except(account, size, Quota::Enforce, Some(hash)).await?;
        let stored = self.commit_staged(account, &declared, Quota::Enforce, Some(held)).await?;
        if let Err(e) = self.store.delete(&session).await {
            tracing::warn!(%hash, "closing an upload session: {e}");
        }
        Ok((declared, stored))
    }

    /// `account`'s open uploads in pieces: each blob's hash and size.
    pub(crate) async fn sessions(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(BlobHash, u64)>, BlobError> {
        let mut out = Vec::new();
        let mut list = self.store.list(Some(&sessions_dir(account)));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err)?;
            let Some(hash) = meta.location.filename().and_then(|f| f.parse::<BlobHash>().ok())
            else {
                continue;
            };
            let size = match self.store.get(&meta.location).await {
                Ok(r) => r.bytes().await.map_err(store_err)?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(store_err(e)),
            };
            let size = <[u8; 8]>::try_from(size.as_ref()).map(u64::from_le_bytes).unwrap_or(0);
            out.push((hash, size));
        }
        Ok(out)
    }

    /// Removes staged blobs and upload sessions left for `idle`; returns how many staged blobs
    /// were removed. A staged blob's age is that of its head (written when it was first
    /// staged) or of the newest session that (re)opened it, whichever is younger: writing
    /// pieces, which anyone may, does not keep it alive.
    pub async fn sweep_staged(&self, idle: Duration) -> Result<usize, BlobError> {
        let now = std::time::SystemTime::now();
        let fresh =
            |t: std::time::SystemTime| now.duration_since(t).map(|age| age < idle).unwrap_or(true);
        let mut alive: std::collections::BTreeMap<BlobHash, std::time::SystemTime> =
            std::collections::BTreeMap::new();
        let mut staged = std::collections::BTreeSet::new();
        let mut list = self.store.list(Some(&StorePath::from("staging")));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err)?;
            let Some(hash) = meta.location.parts().nth(1).and_then(|p| p.as_ref().parse().ok())
            else {
                continue;
            };
            staged.insert(hash);
            if meta.location.filename() == Some("head") {
                let t: std::time::SystemTime = meta.last_modified.into();
                let e = alive.entry(hash).or_insert(t);
                *e = (*e).max(t);
            }
        }
        let mut sessions = Vec::new();
        let mut list = self.store.list(Some(&StorePath::from("sessions")));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err)?;
            let Some(hash) = meta.location.filename().and_then(|f| f.parse::<BlobHash>().ok())
            else {
                continue;
            };
            let t: std::time::SystemTime = meta.last_modified.into();
            let e = alive.entry(hash).or_insert(t);
            *e = (*e).max(t);
            sessions.push((hash, t, meta.location));
        }
        for (hash, t, location) in sessions {
            if !fresh(t) {
                if let Err(e) = self.store.delete(&location).await {
                    tracing::warn!(%hash, "sweeping an upload session: {e}");
                }
            }
        }
        let mut swept = 0;
        for hash in staged {
            if !alive.get(&hash).is_some_and(|t| fresh(*t)) {
                self.drop_staged(&hash).await;
                swept += 1;
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Limits};

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2]).collect()
    }

    /// The last piece of `d`, which an upload in pieces opens with.
    fn tail(d: &[u8]) -> Bytes {
        let last = pieces::piece_count(d.len() as u64) - 1;
        let r = pieces::piece_range(d.len() as u64, last).unwrap();
        Bytes::copy_from_slice(&d[r.start as usize..r.end as usize])
    }

    fn store(quota: u64) -> BlobStore {
        BlobStore::open(&Backend::Memory, Limits { blob_max: 64 << 20, account_quota: quota })
            .unwrap()
    }

    fn piece_stream(
        d: &[u8],
        pieces: Range<u64>,
        step: usize,
    ) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
        let start = (pieces.start * PIECE_BYTES) as usize;
        let end = ((pieces.end * PIECE_BYTES) as usize).min(d.len());
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> =
            d[start..end].chunks(step).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(chunks)
    }

    #[tokio::test]
    async fn an_upload_in_pieces_resumes_where_it_stopped_and_stores_the_blob() {
        let s = store(1 << 30);
        let a = AccountId([1; 32]);
        let d = data(5 * PIECE_BYTES as usize + 333);
        let blob = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        let outline = pieces::outline(&d);
        let st = s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
        // The last piece came with the outline.
        assert_eq!((st.pieces, st.received), (6, 333));
        assert_eq!(st.missing, std::iter::once(0..5).collect::<Vec<_>>());
        // Two pieces, in odd-sized chunks; then the upload "dies".
        let n = s
            .put_pieces(
                &blob.hash,
                1,
                piece_stream(&d, 1..3, 70_001),
                u64::MAX,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        // Reopening says what is missing.
        let st = s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
        assert_eq!(st.missing, vec![0..1, 3..5]);
        assert_eq!(st.received, 2 * PIECE_BYTES + 333);
        let early = s.complete_upload(&a, &blob.hash).await.unwrap_err();
        assert!(matches!(early, BlobError::Incomplete(_)), "{early}");
        s.put_pieces(
            &blob.hash,
            0,
            piece_stream(&d, 0..1, 1 << 20),
            u64::MAX,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        s.put_pieces(&blob.hash, 3, piece_stream(&d, 3..6, 4096), u64::MAX, Duration::from_secs(5))
            .await
            .unwrap();
        let (got, stored) = s.complete_upload(&a, &blob.hash).await.unwrap();
        assert_eq!((got, stored), (blob, Stored::New));
        assert_eq!(s.get(&blob.hash).await.unwrap().unwrap().as_ref(), &d[..]);
        assert_eq!(s.usage(&a).await.unwrap(), d.len() as u64);
        assert!(s.staged_head(&blob.hash).await.unwrap().is_none(), "staging removed");
        assert!(s.sessions(&a).await.unwrap().is_empty(), "session closed");
        let st = s.upload_state(&blob.hash).await.unwrap().unwrap();
        assert!(st.stored && st.missing.is_empty());
    }

    #[tokio::test]
    async fn a_wrong_piece_a_wrong_outline_and_a_partial_piece_are_refused() {
        let s = store(1 << 30);
        let a = AccountId([2; 32]);
        let d = data(3 * PIECE_BYTES as usize);
        let blob = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        let mut outline = pieces::outline(&d);
        outline[1][3] ^= 1;
        assert!(matches!(
            s.begin_upload(&a, &blob, &outline, tail(&d)).await,
            Err(BlobError::OutlineMismatch(_))
        ));
        let outline = pieces::outline(&d);
        s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
        let mut bad = d.clone();
        bad[PIECE_BYTES as usize + 7] ^= 1;
        let e = s
            .put_pieces(
                &blob.hash,
                0,
                piece_stream(&bad, 0..3, 1 << 20),
                u64::MAX,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::PieceMismatch { index: 1, .. }), "{e}");
        // The good piece before it stays (and the last came with the outline).
        let missing = s.upload_state(&blob.hash).await.unwrap().unwrap().missing;
        assert_eq!(missing, std::iter::once(1..2).collect::<Vec<_>>());
        let e = s
            .put_pieces(
                &blob.hash,
                1,
                piece_stream(&d[..PIECE_BYTES as usize * 2 - 5], 1..2, 4096),
                u64::MAX,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::BadChunk(_)), "{e}");
        let e = s
            .put_pieces(
                &blob.hash,
                1,
                piece_stream(&d, 1..3, 4096),
                PIECE_BYTES,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::RequestTooLarge { .. }), "{e}");
        let small = BlobRef { hash: BlobHash::of(b"x"), size: ByteSize(1) };
        assert!(matches!(
            s.begin_upload(&a, &small, &[], Bytes::from_static(b"x")).await,
            Err(BlobError::NotInPieces { .. })
        ));
        let other = BlobHash::of(b"never staged");
        assert!(matches!(
            s.put_pieces(&other, 0, piece_stream(&d, 0..1, 4096), u64::MAX, Duration::from_secs(5))
                .await,
            Err(BlobError::UploadNotStarted(_))
        ));
        assert!(matches!(s.complete_upload(&a, &other).await, Err(BlobError::UploadNotStarted(_))));
    }

    #[tokio::test]
    async fn open_uploads_count_against_the_quota_and_their_number_is_bounded() {
        let d = data(3 * PIECE_BYTES as usize);
        let blob = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        let outline = pieces::outline(&d);
        let a = AccountId([3; 32]);
        let s = store(5 * PIECE_BYTES);
        s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
        // Reopening the same upload is not a second one.
        s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
        let d2 = data(3 * PIECE_BYTES as usize + 1);
        let blob2 = BlobRef { hash: BlobHash::of(&d2), size: ByteSize(d2.len() as u64) };
        let e = s.begin_upload(&a, &blob2, &pieces::outline(&d2), tail(&d2)).await.unwrap_err();
        assert!(matches!(e, BlobError::QuotaExceeded { .. }), "{e}");
        let s = store(1 << 30);
        for k in 0..SESSIONS_PER_ACCOUNT_MAX {
            let d = data(2 * PIECE_BYTES as usize + k + 1);
            let b = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
            s.begin_upload(&a, &b, &pieces::outline(&d), tail(&d)).await.unwrap();
        }
        let e = s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap_err();
        assert!(matches!(e, BlobError::TooManyUploads { .. }), "{e}");
        // Another account is not held back by them.
        s.begin_upload(&AccountId([4; 32]), &blob, &outline, tail(&d)).await.unwrap();
        // Nothing was touched for longer than zero seconds: all swept.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(s.sweep_staged(Duration::from_millis(1)).await.unwrap() >= 5);
        assert!(s.sessions(&a).await.unwrap().is_empty());
        s.begin_upload(&a, &blob, &outline, tail(&d)).await.unwrap();
    }

    #[tokio::test]
    async fn a_stranger_can_neither_complete_nor_corrupt_another_accounts_upload() {
        let s = store(1 << 30);
        let (owner, stranger) = (AccountId([5; 32]), AccountId([6; 32]));
        let d = data(3 * PIECE_BYTES as usize + 9);
        let blob = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        s.begin_upload(&owner, &blob, &pieces::outline(&d), tail(&d)).await.unwrap();
        // Pieces are unauthenticated, but only the real ones are kept.
        let forged = vec![0u8; d.len()];
        let e = s
            .put_pieces(
                &blob.hash,
                0,
                piece_stream(&forged, 0..4, 1 << 20),
                u64::MAX,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::PieceMismatch { index: 0, .. }), "{e}");
        s.put_pieces(
            &blob.hash,
            0,
            piece_stream(&d, 0..4, 1 << 20),
            u64::MAX,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        // Only the account that opened the upload completes it, and is charged.
        let e = s.complete_upload(&stranger, &blob.hash).await.unwrap_err();
        assert!(matches!(e, BlobError::UploadNotStarted(_)), "{e}");
        assert_eq!(s.usage(&stranger).await.unwrap(), 0);
        s.complete_upload(&owner, &blob.hash).await.unwrap();
        assert_eq!(s.usage(&owner).await.unwrap(), d.len() as u64);
        assert_eq!(s.get(&blob.hash).await.unwrap().unwrap().as_ref(), &d[..]);
    }

    /// An outline alone folds to the same address for other sizes with as many pieces: a
    /// stranger who opened an upload of the blob at a wrong size first would block it on this
    /// validator for everyone. The last piece binds the size, and is required.
    #[tokio::test]
    async fn a_head_of_the_wrong_size_cannot_block_a_blob() {
        let s = store(1 << 30);
        let (stranger, owner) = (AccountId([7; 32]), AccountId([8; 32]));
        let d = data(3 * PIECE_BYTES as usize + 100);
        let real = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        let outline = pieces::outline(&d);
        let wrong = BlobRef { hash: real.hash, size: ByteSize(real.size.0 + 1) };
        // The outline folds for the wrong size too; the tail gives it away.
        assert_eq!(pieces::root_of(&outline, wrong.size.0), Some(real.hash));
        let mut longer = tail(&d).to_vec();
        longer.push(0);
        for t in [tail(&d), Bytes::from(longer)] {
            let e = s.begin_upload(&stranger, &wrong, &outline, t).await.unwrap_err();
            assert!(matches!(e, BlobError::PieceMismatch { index: 3, .. }), "{e}");
        }
        assert!(s.staged_head(&real.hash).await.unwrap().is_none(), "nothing staged");
        s.begin_upload(&owner, &real, &outline, tail(&d)).await.unwrap();
        s.put_pieces(
            &real.hash,
            0,
            piece_stream(&d, 0..3, 1 << 20),
            u64::MAX,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        s.complete_upload(&owner, &real.hash).await.unwrap();
        assert_eq!(s.get(&real.hash).await.unwrap().unwrap().as_ref(), &d[..]);
        // The open upload counted against the quota, and now the blob does, once.
        assert_eq!(s.usage(&owner).await.unwrap(), d.len() as u64);
    }

    /// An account's open uploads in pieces count against its quota for whole uploads too, so
    /// opening uploads cannot double what it may store.
    #[tokio::test]
    async fn open_uploads_in_pieces_count_against_whole_uploads() {
        let s = store(4 * PIECE_BYTES);
        let a = AccountId([9; 32]);
        let d = data(3 * PIECE_BYTES as usize);
        let blob = BlobRef { hash: BlobHash::of(&d), size: ByteSize(d.len() as u64) };
        s.begin_upload(&a, &blob, &pieces::outline(&d), tail(&d)).await.unwrap();
        let other = data(2 * PIECE_BYTES as usize - 5);
        let whole = BlobRef { hash: BlobHash::of(&other), size: ByteSize(other.len() as u64) };
        let e = s.put(&a, &whole, Bytes::from(other)).await.unwrap_err();
        assert!(matches!(e, BlobError::QuotaExceeded { .. }), "{e}");
    }
}
