//! A typed client for a provernet node's HTTP API (see the node's `/openapi.json`).
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

/// A connection to one node.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the node's API root, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Result<Client, SdkError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SdkError::Url(base));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
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
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
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
        let resp = self
            .http
            .post(format!("{}/v1/txs", self.base))
            .header("content-type", "application/octet-stream")
            .body(tx.encode())
            .send()
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
        let resp = http.get(format!("{}/v1/events/blocks", self.base)).send().await?;
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
        let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        drop(bytes);
        let mut sent = 0u64;
        let body = futures::stream::iter(chunks.into_iter().map(move |c| {
            sent += c.len() as u64;
            progress(sent);
            Ok::<_, std::io::Error>(c)
        }));
        let mut message = blob.hash.0.to_vec();
        message.extend_from_slice(&blob.size.0.to_le_bytes());
        let sig = key.sign(b"provernet/blob-upload/v1", chain_id, &message);
        let resp = self
            .http
            .put(format!("{}/v1/blobs/{}", self.base, blob.hash))
            .header("content-type", "application/octet-stream")
            .header("x-provernet-account", key.account().to_string())
            .header("x-provernet-size", blob.size.0.to_string())
            .header("x-provernet-signature", hex_encode(&sig.0))
            .header("content-length", blob.size.0.to_string())
            .timeout(timeout)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        Self::read::<serde_json::Value>(resp).await?;
        Ok(blob)
    }

    /// Downloads a blob and checks its bytes against the hash; `None` if the node lacks it.
    pub async fn download(
        &self,
        hash: &provernet_types::BlobHash,
    ) -> Result<Option<Vec<u8>>, SdkError> {
        let resp = self.http.get(format!("{}/v1/blobs/{hash}", self.base)).send().await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::read::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(SdkError::Decode("bad blob".into())));
        }
        let bytes = resp.bytes().await?.to_vec();
        if provernet_types::BlobHash::of(&bytes) != *hash {
            return Err(SdkError::Decode(format!(
                "blob {hash}: the node served bytes with another hash"
            )));
        }
        Ok(Some(bytes))
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
