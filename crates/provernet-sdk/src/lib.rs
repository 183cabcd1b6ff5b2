//! A typed client for a provernet node's HTTP API (see the node's `/openapi.json`).
//!
//! A client may know several validators (`http://a:8080,http://b:8080`): it talks to one at a
//! time and moves to the next when that one cannot be reached, and a blob one validator lacks
//! is downloaded from another.
//!
//! ```no_run
//! # async fn demo() -> Result<(), provernet_sdk::SdkError> {
//! let node = provernet_sdk::Client::new("http://127.0.0.1:8080")?;
//! let status = node.status().await?;
//! println!("{} at height {}", status.chain_id, status.height);
//! # Ok(()) }
//! ```

use provernet_types::{AccountId, Encode, Nonce, SignedTx, TxHash};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("invalid node URL `{0}`")]
    Url(String),
    #[error("cannot reach the node: {0}")]
    Http(#[from] reqwest::Error),
    /// The node answered with an error; `code` is stable and machine-readable.
    #[error("node refused ({status}, {code}): {message}")]
    Api { status: u16, code: String, message: String },
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

#[derive(Clone, Debug, Deserialize)]
pub struct Mempool {
    pub txs: u64,
    pub bytes: u64,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    pub chain_id: String,
    pub height: u64,
    pub block_hash: String,
    pub state_root: String,
    pub time_ms: u64,
    /// The chain's target block time.
    #[serde(default)]
    pub block_time_ms: u64,
    pub mempool: Mempool,
}

/// `GET /v1/accounts/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Account {
    pub id: String,
    pub balance_micro_credits: u64,
    pub nonce: u64,
    pub open_jobs: u32,
}

/// `POST /v1/txs`.
#[derive(Clone, Debug, Deserialize)]
pub struct Submitted {
    pub hash: String,
    /// `added`, or `known` when the node already had it.
    pub mempool: String,
}

/// `GET /v1/txs/{hash}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TxStatus {
    pub hash: String,
    /// `pending`, `applied` or `failed`.
    pub status: String,
    pub height: Option<u64>,
    pub error: Option<String>,
}

/// `GET /v1/blocks/{height}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Block {
    pub height: u64,
    pub hash: String,
    #[serde(default)]
    pub time_ms: u64,
    pub state_root: String,
    #[serde(default)]
    pub txs: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// Most validator APIs one client may list.
pub const APIS_MAX: usize = 64;

/// The longest a blob download may take in all: enough for the largest blob (256 MiB) at
/// 1 MiB/s. A download that stalls is given up after 30 s without a byte.
pub const DOWNLOAD_TIME_MAX: Duration = Duration::from_secs(30 + 256);

/// A connection to one node, or to the first reachable of several.
#[derive(Clone, Debug)]
pub struct Client {
    bases: Arc<[String]>,
    /// The base in use: the last one that answered.
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is a node's API root, e.g. `http://127.0.0.1:8080`, or several separated by
    /// commas, tried in turn when one cannot be reached.
    pub fn new(base: &str) -> Result<Client, SdkError> {
        let list: Vec<&str> = base.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
        Client::many(&list)
    }

    /// A client of several validators' APIs, used in order: the first that answers serves
    /// each request.
    pub fn many(bases: &[&str]) -> Result<Client, SdkError> {
        if bases.is_empty() || bases.len() > APIS_MAX {
            return Err(SdkError::Url(format!("give 1 to {APIS_MAX} API URLs")));
        }
        let mut list = Vec::with_capacity(bases.len());
        for b in bases {
            let b = b.trim_end_matches('/').to_owned();
            if !(b.starts_with("http://") || b.starts_with("https://")) {
                return Err(SdkError::Url(b));
            }
            list.push(b);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            // Give up on a response that sends nothing for this long (downloads, which have a
            // longer total time, rely on it).
            .read_timeout(Duration::from_secs(30))
            // Below the API's idle limit, so a kept connection is not reused as it closes.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()?;
        Ok(Client { bases: list.into(), current: Arc::default(), http })
    }

    /// The API in use now.
    pub fn base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Every API this client knows, in order.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// Sends a request built by `make` for a base, to the base in use and then, while one
    /// cannot be reached (a connection refused or timed out), to the next; the base that
    /// answered stays in use.
    async fn send(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SdkError> {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        let mut busy = None;
        for step in 0..n {
            let i = (start + step) % n;
            match make(&self.bases[i]).send().await {
                // An overloaded or failing validator is worth moving on from, like one that
                // cannot be reached; its answer is kept in case every other fails too.
                Ok(resp) if resp.status().is_server_error() && step + 1 < n => {
                    busy = Some(resp);
                }
                Ok(resp) => {
                    if i != start {
                        tracing::info!(api = %self.bases[i], "moved to another validator's API");
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(resp);
                }
                Err(e) if e.is_connect() || e.is_timeout() => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(resp) = busy {
            return Ok(resp);
        }
        Err(last.map_or(SdkError::Url("no API".into()), SdkError::Http))
    }

    async fn read<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, SdkError> {
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| SdkError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => {
                Err(SdkError::Api { status: status.as_u16(), code: e.code, message: e.message })
            }
            Err(_) => Err(SdkError::Api {
                status: status.as_u16(),
                code: "http".into(),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            }),
        }
    }

    /// GET a path and decode its JSON; `None` on 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, SdkError> {
        let resp = self.send(|b| self.http.get(format!("{b}{path}"))).await?;
        match Self::read(resp).await {
            Err(SdkError::Api { status: 404, code, .. }) if code == "not_found" => Ok(None),
            other => other.map(Some),
        }
    }

    pub async fn status(&self) -> Result<Status, SdkError> {
        self.get("/v1/status").await?.ok_or_else(|| SdkError::Decode("no status".into()))
    }

    /// Submits a signed transaction.
    pub async fn submit(&self, tx: &SignedTx) -> Result<Submitted, SdkError> {
        let body = bytes::Bytes::from(tx.encode());
        let resp = self
            .send(|b| {
                self.http
                    .post(format!("{b}/v1/txs"))
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        Self::read(resp).await
    }

    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, SdkError> {
        self.get(&format!("/v1/accounts/{id}")).await
    }

    /// The account's next nonce (0 for an account the chain does not know yet).
    pub async fn next_nonce(&self, id: &AccountId) -> Result<Nonce, SdkError> {
        Ok(Nonce(self.account(id).await?.map_or(0, |a| a.nonce)))
    }

    pub async fn tx(&self, hash: &TxHash) -> Result<Option<TxStatus>, SdkError> {
        self.get(&format!("/v1/txs/{hash}")).await
    }

    pub async fn block(&self, height: u64) -> Result<Option<Block>, SdkError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    pub async fn job(&self, id: &str) -> Result<Option<serde_json::Value>, SdkError> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// Server-sent events of every finalized block from now on (`/v1/events/blocks`), each the
    /// block's JSON (height, hash, txs, events).
    pub async fn finalized_blocks(
        &self,
    ) -> Result<impl futures::Stream<Item = Result<serde_json::Value, SdkError>>, SdkError> {
        use futures::StreamExt;
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let resp = self.send(|b| http.get(format!("{b}/v1/events/blocks"))).await?;
        if !resp.status().is_success() {
            return Err(Self::read::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(SdkError::Decode("bad stream".into())));
        }
        let mut buf: Vec<u8> = Vec::new();
        Ok(resp.bytes_stream().flat_map(move |chunk| {
            let mut out = Vec::new();
            match chunk {
                Err(e) => out.push(Err(SdkError::Http(e))),
                Ok(bytes) => {
                    buf.extend_from_slice(&bytes);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let event: Vec<u8> = buf.drain(..end + 2).collect();
                        let text = String::from_utf8_lossy(&event);
                        for line in text.lines() {
                            if let Some(data) = line.strip_prefix("data: ") {
                                out.push(
                                    serde_json::from_str(data)
                                        .map_err(|e| SdkError::Decode(e.to_string())),
                                );
                            }
                        }
                    }
                }
            }
            futures::stream::iter(out)
        }))
    }

    /// Uploads a blob as `key`'s account (which pays the node's per-account byte quota) and
    /// returns its content address. `chain_id` binds the upload signature to the network.
    pub async fn upload(
        &self,
        key: &provernet_types::Keypair,
        chain_id: &str,
        bytes: Vec<u8>,
    ) -> Result<provernet_types::BlobRef, SdkError> {
        self.upload_with_progress(key, chain_id, bytes, |_| {}).await
    }

    /// [`Client::upload`], calling `progress(bytes_sent)` as the body goes out. The request may
    /// take 30 s plus one second per MiB.
    pub async fn upload_with_progress(
        &self,
        key: &provernet_types::Keypair,
        chain_id: &str,
        bytes: Vec<u8>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<provernet_types::BlobRef, SdkError> {
        const CHUNK: usize = 1 << 20;
        let blob = provernet_types::tx::blob_ref(&bytes);
        let timeout = Duration::from_secs(30 + blob.size.0 / CHUNK as u64);
        let chunks: Arc<[bytes::Bytes]> =
            bytes.chunks(CHUNK).map(bytes::Bytes::copy_from_slice).collect();
        drop(bytes);
        let progress = Arc::new(progress);
        let message = provernet_types::tx::blob_upload_message(&blob);
        let sig = key.sign(provernet_types::crypto::BLOB_UPLOAD_DOMAIN, chain_id, &message);
        let resp = self
            .send(|base| {
                let (chunks, progress) = (chunks.clone(), progress.clone());
                let mut sent = 0u64;
                let body = futures::stream::iter((0..chunks.len()).map(move |i| {
                    let c = chunks[i].clone();
                    sent += c.len() as u64;
                    progress(sent);
                    Ok::<_, std::io::Error>(c)
                }));
                self.http
                    .put(format!("{base}/v1/blobs/{}", blob.hash))
                    .header("content-type", "application/octet-stream")
                    .header("x-provernet-account", key.account().to_string())
                    .header("x-provernet-size", blob.size.0.to_string())
                    .header("x-provernet-signature", hex_encode(&sig.0))
                    .header("content-length", blob.size.0.to_string())
                    .timeout(timeout)
                    .body(reqwest::Body::wrap_stream(body))
            })
            .await?;
        Self::read::<serde_json::Value>(resp).await?;
        Ok(blob)
    }

    /// Downloads a blob and checks its bytes against the hash; `None` if no validator this
    /// client knows has it (the one in use first, then the others). A validator that fails or
    /// serves wrong bytes is passed over for the next.
    pub async fn download(
        &self,
        hash: &provernet_types::BlobHash,
    ) -> Result<Option<Vec<u8>>, SdkError> {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut unreachable = None;
        let mut answered = false;
        // A validator that answered wrongly (an error, or bytes that do not hash right).
        let mut failed = None;
        for step in 0..n {
            let base = &self.bases[(start + step) % n];
            let request =
                self.http.get(format!("{base}/v1/blobs/{hash}")).timeout(DOWNLOAD_TIME_MAX);
            let resp = match request.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() || e.is_timeout() => {
                    unreachable = Some(e);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            answered = true;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            if !resp.status().is_success() {
                let e = Self::read::<serde_json::Value>(resp)
                    .await
                    .err()
                    .unwrap_or(SdkError::Decode("bad blob".into()));
                failed = Some(e);
                continue;
            }
            // A validator that dies mid-transfer is as good as one that cannot be reached.
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    unreachable = Some(e);
                    continue;
                }
            };
            if provernet_types::BlobHash::of(&bytes) != *hash {
                failed = Some(SdkError::Decode(format!(
                    "blob {hash}: {base} served bytes with another hash"
                )));
                continue;
            }
            return Ok(Some(bytes));
        }
        if let Some(e) = failed {
            return Err(e);
        }
        match unreachable {
            // Nobody answered in full: that is not the same as nobody having it.
            Some(e) if !answered || n == 1 => Err(e.into()),
            _ => Ok(None),
        }
    }

    /// Polls until the transaction is in a finalized block (applied or failed).
    pub async fn wait_tx(&self, hash: &TxHash, timeout: Duration) -> Result<TxStatus, SdkError> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.tx(hash).await? {
                if s.status != "pending" {
                    return Ok(s);
                }
            }
            if start.elapsed() > timeout {
                return Err(SdkError::Timeout(timeout, format!("transaction {hash}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
