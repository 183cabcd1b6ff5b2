//! Files of any size to and from a validator, from and to disk: never held whole in memory,
//! checked piece by piece, and resumable.
//!
//! - **Upload** ([`Client::upload_file`]). The file is hashed once as it is read (its address
//!   and its outline, `provernet_types::pieces`). A file within one request of the validator
//!   (`status.blobs.request_bytes_max`) is sent in one streamed request; a larger one is sent in
//!   pieces: the upload is opened with the outline, the validator answers which pieces it
//!   lacks, and only those are sent, a few MiB per request. A client that was killed runs the
//!   same command again and sends only what is missing.
//! - **Download** ([`Client::download_file`]). The outline comes first and must fold to the
//!   blob's address; every piece is checked against it before it is written to `<file>.part`,
//!   which becomes the file only once whole. A download that stops (a validator gone, the
//!   process killed) resumes from the pieces already in `<file>.part` (checked again), from
//!   another validator if need be.

use crate::{hex_encode, Client, SdkError};
use provernet_api_types::{BlobStored, ErrorCode, UploadState};
use provernet_types::pieces::{self, PieceHash, StreamHasher, PIECE_BYTES};
use provernet_types::{BlobHash, BlobRef, Bytes as ByteSize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes one request of an upload in pieces carries (less if the validator takes less).
pub const CHUNK_BYTES_MAX: u64 = 64 << 20;
/// How long a transfer may go without a byte before it is given up (or moved to another
/// validator).
pub const STALL_MAX: Duration = Duration::from_secs(30);
/// How many times an upload in pieces starts over (a validator that lost or swept its
/// session, or a client moved to another validator).
const REOPENS_MAX: usize = 3;

/// How a transfer reports progress and paces itself.
#[derive(Clone, Default)]
pub struct Transfer {
    /// Called with the bytes done (including those resumed) and the total.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// At most this many bytes per second on the wire (`None`: as fast as it goes).
    pub rate: Option<u64>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer").field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl Transfer {
    fn report(&self, done: u64, total: u64) {
        if let Some(p) = &self.progress {
            p(done, total);
        }
    }
}

/// What an upload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    pub blob: BlobRef,
    /// Sent in pieces over several requests (above one request's limit).
    pub in_pieces: bool,
    /// Bytes the validator already had from an earlier, interrupted upload.
    pub resumed_bytes: u64,
    /// The blob was stored already: nothing was sent.
    pub existing: bool,
}

/// What a download did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub size: u64,
    /// Bytes taken from an earlier, interrupted download (`<file>.part`), checked again.
    pub resumed_bytes: u64,
}

/// Keeps a transfer at or under a rate.
struct Pace {
    rate: Option<u64>,
    start: Instant,
    sent: u64,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace { rate: rate.filter(|r| *r > 0), start: Instant::now(), sent: 0 }
    }

    async fn after(&mut self, bytes: u64) {
        self.sent += bytes;
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> SdkError {
    SdkError::Io(format!("{what} {}: {e}", path.display()))
}

/// The blob the file at `path` holds: its address and size, and its outline, read once a
/// piece at a time.
pub fn file_blob(path: &Path) -> Result<(BlobRef, Vec<PieceHash>), SdkError> {
    let mut f = std::fs::File::open(path).map_err(|e| io("opening", path, e))?;
    let mut hasher = StreamHasher::new();
    let mut buf = vec![0u8; PIECE_BYTES as usize];
    loop {
        let n = f.read(&mut buf).map_err(|e| io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let size = hasher.len();
    let (hash, outline) = hasher.finish();
    Ok((BlobRef { hash, size: ByteSize(size) }, outline))
}

/// `len` bytes of `path` from `offset`.
fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, SdkError> {
    let mut f = std::fs::File::open(path).map_err(|e| io("opening", path, e))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| io("seeking in", path, e))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).map_err(|e| io("reading", path, e))?;
    Ok(buf)
}

/// A body of `len` bytes of `path` from `offset`, read from disk a slice at a time as it is
/// sent (one slice in memory), paced and reported as it goes; `done` bytes were sent before.
fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    pace: Arc<tokio::sync::Mutex<Pace>>,
    t: Transfer,
    done: u64,
    total: u64,
) -> reqwest::Body {
    const SLICE: u64 = 256 << 10;
    let path = path.to_owned();
    let stream = futures::stream::unfold(0u64, move |sent| {
        let (pace, t, path) = (pace.clone(), t.clone(), path.clone());
        async move {
            if sent >= len {
                return None;
            }
            let n = SLICE.min(len - sent);
            let read = tokio::task::spawn_blocking(move || read_at(&path, offset + sent, n))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r.map_err(std::io::Error::other));
            let slice = match read {
                Ok(b) => bytes::Bytes::from(b),
                // The request fails with it; the stream ends after.
                Err(e) => return Some((Err(e), len)),
            };
            pace.lock().await.after(n).await;
            t.report(done + sent + n, total);
            Some((Ok(slice), sent + n))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

impl Client {
    /// Uploads the file at `path` as `key`'s account (see the module's documentation): in
    /// one request within the validator's request limit, else in pieces, resuming an upload
    /// that was interrupted.
    pub async fn upload_file(
        &self,
        key: &provernet_types::Keypair,
        chain_id: &str,
        path: &Path,
        t: &Transfer,
    ) -> Result<Uploaded, SdkError> {
        let owned = path.to_owned();
        let (blob, outline) = tokio::task::spawn_blocking(move || file_blob(&owned))
            .await
            .map_err(|e| SdkError::Io(e.to_string()))??;
        let limits = self.status().await?.blobs.ok_or_else(|| {
            SdkError::Decode(format!("{} stores no blobs; use a validator's API", self.base()))
        })?;
        if blob.size.0 > limits.blob_bytes_max {
            return Err(SdkError::Io(format!(
                "{} is {} bytes, above the validator's blob limit of {} bytes",
                path.display(),
                blob.size.0,
                limits.blob_bytes_max
            )));
        }
        let message = provernet_types::tx::blob_upload_message(&blob);
        let sig = key.sign(provernet_types::crypto::BLOB_UPLOAD_DOMAIN, chain_id, &message);
        let signed = |req: reqwest::RequestBuilder| {
            req.header("x-provernet-account", key.account().to_string())
                .header("x-provernet-size", blob.size.0.to_string())
                .header("x-provernet-signature", hex_encode(&sig.0))
        };
        let total = blob.size.0;
        let pace = Arc::new(tokio::sync::Mutex::new(Pace::new(t.rate)));
        if blob.size.0 <= limits.request_bytes_max || !pieces::has_outline(blob.size.0) {
            let timeout = STALL_MAX + transfer_time(total, t.rate);
            let resp = self
                .send(|base| {
                    signed(self.http.put(format!("{base}/v1/blobs/{}", blob.hash)))
                        .header("content-type", "application/octet-stream")
                        .header("content-length", total.to_string())
                        .timeout(timeout)
                        .body(file_body(path, 0, total, pace.clone(), t.clone(), 0, total))
                })
                .await?;
            let stored = Self::read::<BlobStored>(resp).await?;
            let existing = stored.stored == provernet_api_types::StoredAs::Existing;
            return Ok(Uploaded { blob, in_pieces: false, resumed_bytes: 0, existing });
        }
        let chunk_pieces = (limits.request_bytes_max.min(CHUNK_BYTES_MAX) / PIECE_BYTES).max(1);
        // The outline, then the last piece, which binds the size.
        let last = pieces::piece_range(total, outline.len() as u64 - 1)
            .ok_or_else(|| SdkError::Io("a blob without pieces".into()))?;
        let tail = read_at(path, last.start, last.end - last.start)?;
        let outline_bytes = bytes::Bytes::from([outline.concat(), tail].concat());
        let mut resumed = None;
        for _ in 0..REOPENS_MAX {
            let resp = self
                .send(|base| {
                    signed(self.http.post(format!("{base}/v1/blobs/{}/uploads", blob.hash)))
                        .header("content-type", "application/octet-stream")
                        .body(outline_bytes.clone())
                })
                .await?;
            let state = Self::read::<UploadState>(resp).await?;
            if state.stored {
                t.report(total, total);
                return Ok(Uploaded {
                    blob,
                    in_pieces: true,
                    resumed_bytes: total,
                    existing: true,
                });
            }
            let first_resumed = *resumed.get_or_insert(state.received_bytes);
            let mut done = state.received_bytes;
            t.report(done, total);
            match self.send_missing(&blob, path, &state, chunk_pieces, &pace, t, &mut done).await {
                Ok(()) => {}
                // The validator lost the upload (or the client moved to another): open it
                // again, and send what that one lacks.
                Err(SdkError::Api { code: ErrorCode::BlobUploadNotStarted, .. }) => continue,
                Err(e) => return Err(e),
            }
            let resp = self
                .send(|base| {
                    signed(
                        self.http.post(format!("{base}/v1/blobs/{}/uploads/complete", blob.hash)),
                    )
                    // The validator reads every piece back and writes the blob.
                    .timeout(STALL_MAX + Duration::from_secs(total / (8 << 20)))
                })
                .await?;
            match Self::read::<BlobStored>(resp).await {
                Ok(_) => {
                    return Ok(Uploaded {
                        blob,
                        in_pieces: true,
                        resumed_bytes: first_resumed,
                        existing: false,
                    })
                }
                Err(SdkError::Api { code: ErrorCode::BlobUploadNotStarted, .. })
                | Err(SdkError::Api { code: ErrorCode::BlobUploadIncomplete, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SdkError::Decode(format!(
            "the upload of {} in pieces was lost {REOPENS_MAX} times; try again",
            blob.hash
        )))
    }

    /// Sends the pieces `state` lists as missing, a chunk per request.
    #[allow(clippy::too_many_arguments)]
    async fn send_missing(
        &self,
        blob: &BlobRef,
        path: &Path,
        state: &UploadState,
        chunk_pieces: u64,
        pace: &Arc<tokio::sync::Mutex<Pace>>,
        t: &Transfer,
        done: &mut u64,
    ) -> Result<(), SdkError> {
        let total = blob.size.0;
        for [start, end] in &state.missing {
            let mut first = *start;
            while first < (*end).min(pieces::piece_count(total)) {
                let count = chunk_pieces.min(end - first);
                let offset = first * PIECE_BYTES;
                let len = ((first + count) * PIECE_BYTES).min(total) - offset;
                let timeout = STALL_MAX + transfer_time(len, t.rate);
                let at = *done;
                let resp = self
                    .send(|base| {
                        self.http
                            .put(format!("{base}/v1/blobs/{}/uploads/{first}", blob.hash))
                            .header("content-type", "application/octet-stream")
                            .header("content-length", len.to_string())
                            .timeout(timeout)
                            .body(file_body(path, offset, len, pace.clone(), t.clone(), at, total))
                    })
                    .await?;
                Self::read::<provernet_api_types::PiecesStored>(resp).await?;
                *done += len;
                t.report(*done, total);
                first += count;
            }
        }
        Ok(())
    }

    /// Downloads blob `hash` to `path` (see the module's documentation), resuming from
    /// `<path>.part`; `None` if no validator this client knows has it.
    pub async fn download_file(
        &self,
        hash: &BlobHash,
        path: &Path,
        t: &Transfer,
    ) -> Result<Option<Downloaded>, SdkError> {
        let part = part_path(path);
        let n = self.bases.len();
        let start = self.current.load(std::sync::atomic::Ordering::Relaxed) % n;
        let mut last_err = None;
        let mut found = false;
        let mut resumed = None;
        // Each validator in turn, twice: a transfer that breaks goes on from where it was.
        for step in 0..2 * n {
            let base = &self.bases[(start + step) % n];
            let outline = match self.outline_from(base, hash).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            found = true;
            let (size, outline) = outline;
            let owned = part.clone();
            let o = outline.clone();
            let have = tokio::task::spawn_blocking(move || checked_prefix(&owned, size, &o))
                .await
                .map_err(|e| SdkError::Io(e.to_string()))??;
            resumed.get_or_insert(have);
            match self.fetch_rest(base, hash, size, &outline, &part, have, t).await {
                Ok(()) => {
                    std::fs::rename(&part, path).map_err(|e| io("renaming", &part, e))?;
                    return Ok(Some(Downloaded { size, resumed_bytes: resumed.unwrap_or(0) }));
                }
                Err(e) => {
                    tracing::warn!(api = %base, %hash, "a download stopped: {e}; going on from another validator");
                    last_err = Some(e);
                }
            }
        }
        match last_err {
            Some(e) if found || n == 1 => Err(e),
            _ => Ok(None),
        }
    }

    /// A blob's size and outline from `base` (checked to fold to its address); `None` if it
    /// does not have it.
    async fn outline_from(
        &self,
        base: &str,
        hash: &BlobHash,
    ) -> Result<Option<(u64, Vec<PieceHash>)>, SdkError> {
        let resp = self.http.get(format!("{base}/v1/blobs/{hash}/outline")).send().await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::read::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(SdkError::Decode("bad outline".into())));
        }
        let size = resp
            .headers()
            .get("x-provernet-size")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| SdkError::Decode(format!("{base} sent an outline without a size")))?;
        // At most what an outline of this size takes (a hostile server could send more).
        let cap = 32 * pieces::piece_count(size.min(64 << 30)) as usize;
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk?;
            if bytes.len() + chunk.len() > cap {
                return Err(SdkError::Decode(format!(
                    "{base} sent an outline too long for its size"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let outline: Vec<PieceHash> =
            bytes.chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
        let folds = if pieces::has_outline(size) {
            bytes.len() % 32 == 0 && pieces::root_of(&outline, size) == Some(*hash)
        } else {
            bytes.is_empty()
        };
        if !folds {
            return Err(SdkError::Decode(format!(
                "{base} sent an outline that does not fold to blob {hash}"
            )));
        }
        Ok(Some((size, outline)))
    }

    /// Appends the blob's bytes from `have` on to `part`, checking each piece before it is
    /// written (a blob of one piece is checked whole).
    #[allow(clippy::too_many_arguments)]
    async fn fetch_rest(
        &self,
        base: &str,
        hash: &BlobHash,
        size: u64,
        outline: &[PieceHash],
        part: &Path,
        have: u64,
        t: &Transfer,
    ) -> Result<(), SdkError> {
        use futures::StreamExt;
        t.report(have, size);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| io("opening", part, e))?;
        if have == size && size > 0 {
            file.sync_all().map_err(|e| io("syncing", part, e))?;
            return Ok(());
        }
        let mut req = self
            .http
            .get(format!("{base}/v1/blobs/{hash}"))
            .timeout(Duration::from_secs(7 * 24 * 3600));
        if have > 0 {
            req = req.header("range", format!("bytes={have}-"));
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            return Err(Self::read::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(SdkError::Decode("bad blob".into())));
        }
        // A server (or a proxy) that ignores the range sends the whole blob: start over.
        let have = if have > 0 && resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            file.set_len(0).map_err(|e| io("cutting", part, e))?;
            0
        } else {
            have
        };
        let mut pace = Pace::new(t.rate);
        let mut stream = resp.bytes_stream();
        let mut piece = Vec::with_capacity(PIECE_BYTES as usize);
        let mut at = have;
        let mut index = have / PIECE_BYTES;
        let whole = !pieces::has_outline(size);
        while let Some(chunk) = tokio::time::timeout(STALL_MAX, stream.next())
            .await
            .map_err(|_| SdkError::Timeout(STALL_MAX, format!("blob {hash} from {base}")))?
        {
            let chunk = chunk?;
            pace.after(chunk.len() as u64).await;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let Some(range) = pieces::piece_range(size, index) else {
                    return Err(SdkError::Decode(format!("{base} sent more than blob {hash}")));
                };
                let want = (range.end - range.start) as usize - piece.len();
                let (now, later) = rest.split_at(want.min(rest.len()));
                piece.extend_from_slice(now);
                rest = later;
                if piece.len() as u64 == range.end - range.start {
                    let good = if whole {
                        BlobHash::of(&piece) == *hash
                    } else {
                        pieces::piece_hash(index, &piece) == outline[index as usize]
                    };
                    if !good {
                        return Err(SdkError::Decode(format!(
                            "{base} sent a piece {index} of blob {hash} that does not match its outline"
                        )));
                    }
                    file.write_all(&piece).map_err(|e| io("writing", part, e))?;
                    at += piece.len() as u64;
                    piece.clear();
                    index += 1;
                    t.report(at, size);
                }
            }
        }
        if at != size {
            return Err(SdkError::Decode(format!(
                "{base} stopped after {at} of blob {hash}'s {size} bytes"
            )));
        }
        // A blob of one piece is checked whole, the empty one included (its piece never
        // completes above).
        if whole {
            let bytes = std::fs::read(part).map_err(|e| io("reading", part, e))?;
            if BlobHash::of(&bytes) != *hash {
                let _ = std::fs::remove_file(part);
                return Err(SdkError::Decode(format!(
                    "{base} sent bytes that are not blob {hash}"
                )));
            }
        }
        file.sync_all().map_err(|e| io("syncing", part, e))?;
        Ok(())
    }
}

/// How long `bytes` take at `rate` (at 1 MiB/s when unpaced, a floor for slow links).
fn transfer_time(bytes: u64, rate: Option<u64>) -> Duration {
    Duration::from_secs(bytes / rate.unwrap_or(1 << 20).max(1))
}

/// Where a download of `path` is kept until it is whole.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// The bytes of `part` that are whole pieces matching `outline` (a blob of one piece is
/// fetched again whole), cutting the file there.
fn checked_prefix(part: &Path, size: u64, outline: &[PieceHash]) -> Result<u64, SdkError> {
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(part) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("opening", part, e)),
    };
    let mut good = 0u64;
    if pieces::has_outline(size) {
        let mut buf = vec![0u8; PIECE_BYTES as usize];
        for (index, expected) in outline.iter().enumerate() {
            let Some(range) = pieces::piece_range(size, index as u64) else { break };
            let len = (range.end - range.start) as usize;
            if f.read_exact(&mut buf[..len]).is_err()
                || pieces::piece_hash(index as u64, &buf[..len]) != *expected
            {
                break;
            }
            good = range.end;
        }
    }
    f.set_len(good).map_err(|e| io("cutting", part, e))?;
    Ok(good)
}
