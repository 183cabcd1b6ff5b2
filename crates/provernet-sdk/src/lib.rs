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

mod transfer;
pub use transfer::{
    file_blob, part_path, Downloaded, Transfer, Uploaded, CHUNK_BYTES_MAX, STALL_MAX,
};

pub use provernet_api_types as types;
pub use provernet_api_types::{
    Account, ApiErrorBody, BlobStored, Block, ErrorCode, FinalizedBlock, Job, JobEvents, Page,
    Program, Prover, Quote, Status, Submitted, Supply, TxErrorView, TxState, TxStatus, Work,
    Workflow, WorkflowEvents,
};

use provernet_types::{AccountId, Encode, JobId, Nonce, ProverId, SignedTx, TxHash, WorkflowId};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
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
    /// The node answered with an error; `code` is stable and machine-readable, and `fields`
    /// carries the values a ledger error names (`need`, `have`, `job`…).
    #[error("node refused ({status}, {code}): {message}")]
    Api { status: u16, code: ErrorCode, message: String, fields: BTreeMap<String, String> },
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl SdkError {
    /// The API's error code, for an error the node answered with.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            SdkError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
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
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(e) => Err(SdkError::Api {
                status: status.as_u16(),
                code: e.code,
                message: e.message,
                fields: e.fields,
            }),
            Err(_) => Err(SdkError::Api {
                status: status.as_u16(),
                code: ErrorCode::Other("http".into()),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                fields: BTreeMap::new(),
            }),
        }
    }

    /// GET a path and decode its JSON; `None` on 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, SdkError> {
        let resp = self.send(|b| self.http.get(format!("{b}{path}"))).await?;
        match Self::read(resp).await {
            Err(SdkError::Api { status: 404, code: ErrorCode::NotFound, .. }) => Ok(None),
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

    /// Asks the chain whether `tx` would be admitted now, without admitting it: the ledger's
    /// error (its code and values) if not, else the fee and the blobs to upload first.
    pub async fn check(&self, tx: &SignedTx) -> Result<types::TxCheck, SdkError> {
        let body = bytes::Bytes::from(tx.encode());
        let resp = self
            .send(|b| {
                self.http
                    .post(format!("{b}/v1/txs/check"))
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
        Ok(self.account(id).await?.map_or(Nonce(0), |a| a.nonce))
    }

    /// Where every credit is.
    pub async fn supply(&self) -> Result<Supply, SdkError> {
        self.get("/v1/supply").await?.ok_or_else(|| SdkError::Decode("no supply".into()))
    }

    pub async fn tx(&self, hash: &TxHash) -> Result<Option<TxStatus>, SdkError> {
        self.get(&format!("/v1/txs/{hash}")).await
    }

    pub async fn block(&self, height: u64) -> Result<Option<Block>, SdkError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    /// Up to `limit` blocks below `before` (from the latest without it), newest first.
    pub async fn blocks(&self, before: Option<u64>, limit: usize) -> Result<Page<Block>, SdkError> {
        let mut path = format!("/v1/blocks?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.get(&path).await?.ok_or_else(|| SdkError::Decode("no blocks".into()))
    }

    pub async fn job(&self, id: &JobId) -> Result<Option<Job>, SdkError> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// A workflow with each node's status and job.
    pub async fn workflow(&self, id: &WorkflowId) -> Result<Option<Workflow>, SdkError> {
        self.get(&format!("/v1/workflows/{id}")).await
    }

    /// A page of jobs; `query` holds the filters and the cursor.
    pub async fn jobs(&self, query: &types::JobQuery) -> Result<Page<Job>, SdkError> {
        let mut params = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                params.push(format!("{k}={}", encode_query(v)));
            }
        };
        add("cursor", &query.cursor);
        add("requester", &query.requester);
        add("prover", &query.prover);
        add("state", &query.state);
        add("order", &query.order);
        add("limit", &query.limit.map(|l| l.to_string()));
        let path = if params.is_empty() {
            "/v1/jobs".to_owned()
        } else {
            format!("/v1/jobs?{}", params.join("&"))
        };
        self.get(&path).await?.ok_or_else(|| SdkError::Decode("no jobs".into()))
    }

    /// A program by id or by name.
    pub async fn program(&self, id_or_name: &str) -> Result<Option<Program>, SdkError> {
        self.get(&format!("/v1/programs/{}", encode_query(id_or_name))).await
    }

    pub async fn prover(&self, id: &ProverId) -> Result<Option<Prover>, SdkError> {
        self.get(&format!("/v1/provers/{id}")).await
    }

    /// A page of provers after `cursor`.
    pub async fn provers(&self, cursor: Option<&ProverId>) -> Result<Page<Prover>, SdkError> {
        let path = match cursor {
            Some(c) => format!("/v1/provers?cursor={c}"),
            None => "/v1/provers".to_owned(),
        };
        self.get(&path).await?.ok_or_else(|| SdkError::Decode("no provers".into()))
    }

    /// What `id` has to do now.
    pub async fn work(&self, id: &AccountId) -> Result<Work, SdkError> {
        self.get(&format!("/v1/provers/{id}/work"))
            .await?
            .ok_or_else(|| SdkError::Decode("no work".into()))
    }

    /// [`Client::quote`] for resources and a time limit as the ledger's types.
    pub async fn quote_for(
        &self,
        r: &provernet_types::Resources,
        time: provernet_types::Seconds,
        redundancy: u8,
    ) -> Result<Quote, SdkError> {
        let (cores, memory) = (format!("{}m", r.cores.0), format!("{}B", r.memory.0));
        self.quote(&cores, &memory, r.gpus.0, &format!("{}s", time.0), redundancy).await
    }

    /// The chain's quote for a job of these resources (`cores` like `1.5`, `memory` like
    /// `4GiB`, `time` like `120s`).
    pub async fn quote(
        &self,
        cores: &str,
        memory: &str,
        gpus: u16,
        time: &str,
        redundancy: u8,
    ) -> Result<Quote, SdkError> {
        let path = format!(
            "/v1/quote?cores={}&memory={}&gpus={gpus}&time={}&redundancy={redundancy}",
            encode_query(cores),
            encode_query(memory),
            encode_query(time)
        );
        self.get(&path).await?.ok_or_else(|| SdkError::Decode("no quote".into()))
    }

    /// Server-sent events of every finalized block from now on (`/v1/events/blocks`).
    pub async fn finalized_blocks(
        &self,
    ) -> Result<impl futures::Stream<Item = Result<FinalizedBlock, SdkError>>, SdkError> {
        self.events("/v1/events/blocks").await
    }

    /// A job's events (`/v1/jobs/{id}/events`): the job as it is now, then what each block did
    /// to it, ending once it is final.
    pub async fn job_events(
        &self,
        id: &JobId,
    ) -> Result<impl futures::Stream<Item = Result<JobStreamItem, SdkError>>, SdkError> {
        self.events(&format!("/v1/jobs/{id}/events")).await
    }

    /// A workflow's events (`/v1/workflows/{id}/events`): the workflow as it is now, then what
    /// each block did to it and to its nodes' jobs, ending once every node is final.
    pub async fn workflow_events(
        &self,
        id: &WorkflowId,
    ) -> Result<impl futures::Stream<Item = Result<WorkflowStreamItem, SdkError>>, SdkError> {
        self.events(&format!("/v1/workflows/{id}/events")).await
    }

    /// A stream of server-sent events at `path`, each event's data decoded as `T` (an enum
    /// tagged by the event's name, or a struct for single-kind streams).
    async fn events<T: EventItem>(
        &self,
        path: &str,
    ) -> Result<impl futures::Stream<Item = Result<T, SdkError>>, SdkError> {
        use futures::StreamExt;
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let resp = self.send(|b| http.get(format!("{b}{path}"))).await?;
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
                    // An event is bounded like any answer: a peer that never ends one is cut.
                    if buf.len() > EVENT_BYTES_MAX {
                        buf.clear();
                        out.push(Err(SdkError::Decode("an event over the size limit".into())));
                    }
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let event: Vec<u8> = buf.drain(..end + 2).collect();
                        if let Some(item) = parse_event::<T>(&String::from_utf8_lossy(&event)) {
                            out.push(item);
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
        Self::read::<BlobStored>(resp).await?;
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
                if s.status != TxState::Pending {
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

/// The most bytes one server-sent event may take.
const EVENT_BYTES_MAX: usize = 16 << 20;

/// What `/v1/jobs/{id}/events` streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStreamItem {
    /// The job as it is (the first event).
    Job(Box<Job>),
    /// What one block did to it.
    Events(JobEvents),
}

/// What `/v1/workflows/{id}/events` streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowStreamItem {
    /// The workflow as it is (the first event).
    Workflow(Box<Workflow>),
    /// What one block did to it and to its nodes' jobs.
    Events(WorkflowEvents),
}

impl EventItem for WorkflowStreamItem {
    fn decode(name: &str, data: &str) -> Option<Result<Self, SdkError>> {
        match name {
            "workflow" => {
                Some(decode_json(data).map(|w| WorkflowStreamItem::Workflow(Box::new(w))))
            }
            "workflow_events" => Some(decode_json(data).map(WorkflowStreamItem::Events)),
            _ => None,
        }
    }
}

/// Decodes one event stream's items from an event's name and data.
pub trait EventItem: Sized {
    fn decode(name: &str, data: &str) -> Option<Result<Self, SdkError>>;
}

fn decode_json<T: DeserializeOwned>(data: &str) -> Result<T, SdkError> {
    serde_json::from_str(data).map_err(|e| SdkError::Decode(e.to_string()))
}

impl EventItem for FinalizedBlock {
    fn decode(name: &str, data: &str) -> Option<Result<Self, SdkError>> {
        (name == "block").then(|| decode_json(data))
    }
}

impl EventItem for JobStreamItem {
    fn decode(name: &str, data: &str) -> Option<Result<Self, SdkError>> {
        match name {
            "job" => Some(decode_json(data).map(|j| JobStreamItem::Job(Box::new(j)))),
            "job_events" => Some(decode_json(data).map(JobStreamItem::Events)),
            _ => None,
        }
    }
}

/// One server-sent event's item; comments and keep-alives give none.
fn parse_event<T: EventItem>(text: &str) -> Option<Result<T, SdkError>> {
    let mut name = "message";
    let mut data = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if data.is_empty() {
        return None;
    }
    T::decode(name, &data)
}

/// Percent-encodes a query or path value.
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
