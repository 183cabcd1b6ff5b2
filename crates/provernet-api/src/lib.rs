//! The HTTP API every node serves.
//!
//! - `POST /v1/txs` — a signed transaction in the canonical binary encoding
//!   (`application/octet-stream`); answers `202` with its hash once the mempool admitted it.
//! - `GET /v1/txs/{hash}` — pending, or the receipt of the block that included it.
//! - `GET /v1/status`, `/v1/accounts/{id}`, `/v1/programs/{id-or-name}`, `/v1/provers`,
//!   `/v1/provers/{id}`, `/v1/jobs` (filters `requester`, `state`; `cursor`/`limit` paging),
//!   `/v1/jobs/{id}`, `/v1/blocks/{height|latest}`, `/v1/quote`.
//! - Server-sent events: `/v1/events/blocks` (every finalized block) and `/v1/jobs/{id}/events`
//!   (that job's events, ending when it is final).
//! - `/openapi.json`, `/metrics` (Prometheus text), `/healthz`.
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with a stable code and a message that
//! names the field or id at fault. Request bodies and page sizes are bounded.

mod server;
mod views;

pub use server::{raise_descriptor_limit, serve_router, Gate, Peer, ServeLimits};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use provernet_blobs::{BlobError, BlobStore, Quota, Stored};
use provernet_consensus::{AdmitError, Admitted, Finalized, Submitter};
use provernet_ledger::AttemptState;
use provernet_types::limits::TX_BYTES_MAX;
use provernet_types::{
    AccountId, BlobHash, BlobRef, Bytes as ByteSize, GpuCount, Height, JobId, MilliCores,
    ProgramId, ProverId, Resources, Seconds, TxHash,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The largest page a list endpoint returns.
pub const PAGE_MAX: usize = 100;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A JSON error with a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} {id}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"code": self.code, "message": self.message}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

#[derive(Default, Debug)]
struct Counters {
    txs_admitted: AtomicU64,
    txs_known: AtomicU64,
    txs_rejected: AtomicU64,
}

/// How long a download waits for a copy of the blob from another validator that is already
/// under way.
const DOWNLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Shared state of the API handlers.
#[derive(Clone, Debug)]
pub struct Api {
    submitter: Submitter,
    counters: Arc<Counters>,
    blobs: Option<BlobStore>,
    limits: ServeLimits,
    subscribers: Arc<Gate>,
    uploads: Arc<Gate>,
}

impl Api {
    /// The API of a validator: blobs come from its blob network when it has one.
    pub fn new(submitter: Submitter) -> Api {
        let blobs = submitter.blobs().map(|b| b.store().clone());
        Api::limited(submitter, blobs, ServeLimits::default())
    }

    fn limited(submitter: Submitter, blobs: Option<BlobStore>, limits: ServeLimits) -> Api {
        Api {
            submitter,
            counters: Arc::default(),
            blobs,
            limits,
            subscribers: Gate::new(limits.subscribers, limits.subscribers_per_ip),
            uploads: Gate::new(limits.uploads, limits.uploads_per_ip),
        }
    }

    /// The same API within other limits.
    pub fn with_limits(self, limits: ServeLimits) -> Api {
        Api::limited(self.submitter, self.blobs, limits)
    }

    /// Serves blobs from (and accepts uploads into) `store` (for a detached submitter).
    pub fn with_blobs(mut self, store: BlobStore) -> Api {
        self.blobs = Some(store);
        self
    }

    /// The router, for serving or for in-process tests.
    pub fn router(self) -> Router {
        let request_timeout = std::time::Duration::from_secs(self.limits.request_timeout_s.max(1));
        // Everything but blob transfers and event streams answers within the request timeout.
        let quick = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi))
            .route("/v1/status", get(status))
            .route("/v1/supply", get(supply))
            .route("/v1/txs", post(submit_tx).layer(DefaultBodyLimit::max(TX_BYTES_MAX + 1024)))
            .route("/v1/txs/{hash}", get(tx_status))
            .route("/v1/accounts/{id}", get(account))
            .route("/v1/programs/{id}", get(program))
            .route("/v1/provers", get(provers))
            .route("/v1/provers/{id}", get(prover))
            .route("/v1/provers/{id}/work", get(prover_work))
            .route("/v1/jobs", get(jobs))
            .route("/v1/jobs/{id}", get(job))
            .route("/v1/blocks/{height}", get(block))
            .route("/v1/quote", get(quote))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                    match tokio::time::timeout(request_timeout, next.run(req)).await {
                        Ok(r) => r,
                        Err(_) => ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            format!("the request took longer than {} s", request_timeout.as_secs()),
                        )
                        .into_response(),
                    }
                },
            ));
        Router::new()
            .route("/v1/blobs/{hash}", get(get_blob).put(put_blob))
            .route("/v1/jobs/{id}/events", get(job_events))
            .route("/v1/events/blocks", get(block_events))
            .merge(quick)
            .fallback(|| async {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_route",
                    "no such endpoint; see /openapi.json",
                )
            })
            .with_state(self)
    }
}

/// Serves the API on `addr` within the default [`ServeLimits`] until the task is dropped.
pub async fn serve(addr: SocketAddr, submitter: Submitter) -> std::io::Result<()> {
    serve_with(addr, submitter, ServeLimits::default()).await
}

/// Serves the API on `addr` within `limits` until the task is dropped.
pub async fn serve_with(
    addr: SocketAddr,
    submitter: Submitter,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "API listening");
    serve_router(listener, Api::new(submitter).with_limits(limits).router(), limits).await
}

/// The client's IP, when the request came through [`serve_router`].
fn client_ip(peer: Option<&axum::Extension<Peer>>) -> Option<std::net::IpAddr> {
    peer.map(|p| p.0 .0.ip())
}

fn busy(code: &'static str, what: &str, full: server::Full) -> ApiError {
    let why = match full {
        server::Full::Total(n) => format!("this validator serves at most {n} {what}"),
        server::Full::PerIp(n) => format!("at most {n} {what} per client address"),
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, format!("{why}; retry shortly"))
}

fn blob_status(e: &BlobError) -> StatusCode {
    match e {
        BlobError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BlobError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
        BlobError::Store(_) | BlobError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn blob_error(e: BlobError) -> ApiError {
    ApiError::new(blob_status(&e), e.code(), e.to_string())
}

fn no_blobs() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "blobs_disabled", "this node does not store blobs")
}

async fn get_blob(State(api): State<Api>, Path(hash): Path<String>) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let mut found = store.read(&h).await.map_err(blob_error)?;
    if found.is_none() {
        // A copy from another validator may be on its way (a block named the blob, or its
        // upload was announced): wait a little for it.
        if let Some(net) = api.submitter.blobs() {
            if net.wait(h, DOWNLOAD_WAIT).await.is_ok() {
                found = store.read(&h).await.map_err(blob_error)?;
            }
        }
    }
    let Some((size, pieces)) = found else { return Err(ApiError::not_found("blob", &hash)) };
    // Streamed a checked piece at a time; a piece that fails its check ends the response
    // early, which the client sees as a short body.
    let body = axum::body::Body::from_stream(pieces.map(|p| p.map_err(std::io::Error::other)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &'static str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad("missing_header", format!("header {name} is required")))
}

/// An upload: everything is checked from its signed headers before a byte of the body is read
/// (the signature, the account, the declared size against the blob limit, the
/// `content-length`, room in the account's quota and among the uploads in progress); then the
/// body streams to the store, hashed on its way.
async fn put_blob(
    State(api): State<Api>,
    Path(hash): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let account: AccountId =
        parse_id("x-provernet-account", header(&headers, "x-provernet-account")?)?;
    let size: u64 = header(&headers, "x-provernet-size")?
        .parse()
        .map_err(|_| ApiError::bad("bad_header", "x-provernet-size must be a number of bytes"))?;
    let sig: [u8; 64] = hex::decode(header(&headers, "x-provernet-signature")?)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad("bad_header", "x-provernet-signature must be 64 bytes of hex")
        })?;
    let declared = BlobRef { hash: h, size: ByteSize(size) };
    let chain = api.submitter.chain();
    let signature = provernet_types::Signature(sig);
    provernet_types::crypto::verify(
        &account,
        provernet_types::crypto::BLOB_UPLOAD_DOMAIN,
        chain.chain_id(),
        &provernet_types::tx::blob_upload_message(&declared),
        &signature,
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()))?;
    if chain.with_state(|s| s.account(&account).is_none()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_account",
            format!("account {account} does not exist on chain; fund it before uploading"),
        ));
    }
    let max = store.limits().blob_max;
    if size > max {
        return Err(blob_error(BlobError::TooLarge { size, max }));
    }
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        if length.to_str().ok().and_then(|l| l.parse::<u64>().ok()) != Some(size) {
            return Err(ApiError::bad(
                "bad_header",
                format!("content-length must equal x-provernet-size ({size})"),
            ));
        }
    }
    let _pass = api
        .uploads
        .enter(client_ip(peer.as_ref()))
        .map_err(|full| busy("uploads_busy", "uploads in progress", full))?;
    let idle = std::time::Duration::from_secs(api.limits.upload_idle_s.max(1));
    let stored = if store.has(&h).await.map_err(blob_error)? {
        // Already here: nothing to store or charge, but the client is sending the bytes, and
        // an answer before its body is read would break its request. Take them and drop them.
        drain(body, size, idle).await;
        Stored::Existing
    } else {
        store
            .put_stream(&account, &declared, Quota::Enforce, body.into_data_stream(), idle)
            .await
            .map_err(blob_error)?
    };
    // The other validators copy it, charging the same account on their own stores.
    if let Some(net) = api.submitter.blobs() {
        net.uploaded(declared, provernet_consensus::blobnet::Upload { account, signature });
    }
    let state = match stored {
        Stored::New => "new",
        Stored::Existing => "existing",
    };
    Ok((StatusCode::CREATED, Json(json!({"hash": hash, "size": size, "stored": state})))
        .into_response())
}

/// Reads and drops a request body of at most `size` bytes (and a little more, to see it end),
/// giving up after `idle` without a byte.
async fn drain(body: axum::body::Body, size: u64, idle: std::time::Duration) {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while read <= size {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            _ => break,
        }
    }
}

fn commonware_digest(b: &provernet_consensus::Block) -> [u8; 32] {
    use commonware_cryptography::Digestible;
    b.digest().0
}

fn parse_id<T: FromStr>(what: &'static str, s: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::bad("bad_id", format!("{what} `{s}` is not 64 hex characters")))
}

async fn healthz(State(api): State<Api>) -> ApiResult {
    Ok(Json(json!({"ok": true, "height": api.submitter.chain().tip().height})))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(api): State<Api>) -> Response {
    let chain = api.submitter.chain();
    let tip = chain.tip();
    let (txs, bytes) = chain.mempool_size();
    let c = &api.counters;
    let body = format!(
        "# HELP provernet_height Height of the last finalized block.\n\
         # TYPE provernet_height gauge\nprovernet_height {}\n\
         # HELP provernet_mempool_txs Transactions waiting in the mempool.\n\
         # TYPE provernet_mempool_txs gauge\nprovernet_mempool_txs {txs}\n\
         # HELP provernet_mempool_bytes Bytes of transactions waiting in the mempool.\n\
         # TYPE provernet_mempool_bytes gauge\nprovernet_mempool_bytes {bytes}\n\
         # HELP provernet_api_txs_total Transactions submitted through this API by outcome.\n\
         # TYPE provernet_api_txs_total counter\n\
         provernet_api_txs_total{{outcome=\"admitted\"}} {}\n\
         provernet_api_txs_total{{outcome=\"known\"}} {}\n\
         provernet_api_txs_total{{outcome=\"rejected\"}} {}\n",
        tip.height,
        c.txs_admitted.load(Ordering::Relaxed),
        c.txs_known.load(Ordering::Relaxed),
        c.txs_rejected.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn status(State(api): State<Api>) -> ApiResult {
    let chain = api.submitter.chain();
    let tip = chain.tip();
    let (txs, bytes) = chain.mempool_size();
    Ok(Json(json!({
        "chain_id": chain.chain_id(),
        "height": tip.height,
        "block_hash": hex::encode(tip.digest.0),
        "state_root": tip.root.to_string(),
        "time_ms": tip.time,
        "block_time_ms": chain.with_state(|s| s.params().block_time_ms),
        "tx_fee_micro_credits": chain.with_state(|s| s.params().tx_fee.0),
        "mempool": {"txs": txs, "bytes": bytes},
        "mechanisms": chain.with_state(|s| {
            let p = s.params();
            let m = &p.mechanism_params;
            json!({
                "enabled": p.mechanisms.iter().map(|k| k.name()).collect::<Vec<_>>(),
                "dutch_ramp_blocks": m.dutch_ramp_blocks,
                "bid_window_blocks": m.bid_window_blocks,
                "collateral_bps": m.collateral_bps,
                "collateral_burn_bps": m.collateral_burn_bps,
                "sqrt_lottery_top": m.sqrt_lottery_top,
            })
        }),
    })))
}

/// Where every credit is. The parts sum to the genesis supply after every block (the ledger's
/// conservation invariant), which anyone can check from outside with this and the accounts.
async fn supply(State(api): State<Api>) -> ApiResult {
    Ok(Json(api.submitter.chain().with_state(|s| {
        let balances: u128 = s.accounts().map(|(_, a)| u128::from(a.balance.0)).sum();
        let stakes: u128 = s.provers().map(|(_, p)| u128::from(p.stake.0)).sum();
        let escrows: u128 = s.jobs().map(|(_, j)| u128::from(j.escrow.0)).sum();
        let m = s.meta();
        json!({
            "height": m.height.0,
            "supply_micro_credits": m.supply.0,
            "balances_micro_credits": balances,
            "stakes_micro_credits": stakes,
            "escrows_micro_credits": escrows,
            "treasury_micro_credits": m.treasury.0,
            "burned_micro_credits": m.burned.0,
            "accounts": s.accounts().count(),
        })
    })))
}

fn admit_error(e: AdmitError) -> ApiError {
    let status = match &e {
        AdmitError::AccountFull { .. } | AdmitError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
        AdmitError::NonceTaken { .. } => StatusCode::CONFLICT,
        AdmitError::Blob(b) => blob_status(b),
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

async fn submit_tx(
    State(api): State<Api>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a transaction is at most {TX_BYTES_MAX} bytes: {e}"),
        )
    })?;
    if body.is_empty() {
        return Err(ApiError::bad("empty_body", "send the encoded signed transaction as the body"));
    }
    match api.submitter.submit(&body).await {
        Ok((hash, admitted)) => {
            let (counter, state) = match admitted {
                Admitted::Added => (&api.counters.txs_admitted, "added"),
                Admitted::Known => (&api.counters.txs_known, "known"),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Ok((StatusCode::ACCEPTED, Json(json!({"hash": hash.to_string(), "mempool": state})))
                .into_response())
        }
        Err(e) => {
            api.counters.txs_rejected.fetch_add(1, Ordering::Relaxed);
            Err(admit_error(e))
        }
    }
}

async fn tx_status(State(api): State<Api>, Path(hash): Path<String>) -> ApiResult {
    let h: TxHash = parse_id("transaction hash", &hash)?;
    if let Some((height, result)) = api.submitter.chain().receipt(&h) {
        return Ok(Json(match result {
            Ok(()) => json!({"hash": hash, "status": "applied", "height": height.0}),
            Err(e) => json!({"hash": hash, "status": "failed", "height": height.0, "error": e}),
        }));
    }
    if api.submitter.chain().mempool_contains(&h) {
        return Ok(Json(json!({"hash": hash, "status": "pending"})));
    }
    Err(ApiError::not_found("transaction", &hash))
}

async fn account(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let a: AccountId = parse_id("account", &id)?;
    api.submitter
        .chain()
        .with_state(|s| s.account(&a).map(|acc| views::account(&a, acc)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("account", &id))
}

async fn program(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let found = api.submitter.chain().with_state(|s| match ProgramId::from_str(&id) {
        Ok(pid) => s.program(&pid).map(|p| views::program(&pid, p)),
        Err(_) => s.program_by_name(&id).map(|(pid, p)| views::program(pid, p)),
    });
    found.map(Json).ok_or_else(|| ApiError::not_found("program (by id or name)", &id))
}

async fn prover(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let p: ProverId = parse_id("prover", &id)?;
    api.submitter
        .chain()
        .with_state(|s| s.prover(&p).map(|pr| views::prover(&p, pr)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("prover", &id))
}

/// Most tasks one `/work` answer lists.
pub const WORK_TASKS_MAX: usize = 256;

/// What the prover (or validator) `id` has to do now, derived from the state alone so that a
/// node which restarts or reconnects learns its work again: attempts assigned to it that await
/// its accept (`accept`), attempts it is running (`run`), proofs whose committee it sits on and
/// has not voted for yet (`vote`), and what job markets offer it (see
/// [`provernet_ledger::Opening`]): races it may join (`race`), reverse-Dutch jobs it may lock
/// at the listed price (`lock`), and lowest-bid jobs taking its sealed bid (`bid`) or awaiting
/// its reveal (`reveal`). Each task carries its job; `attempt` is the index a new attempt would
/// get for market tasks.
async fn prover_work(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let me: AccountId = parse_id("prover", &id)?;
    let pid = ProverId::from(me);
    Ok(Json(api.submitter.chain().with_state(|s| {
        let mut tasks = Vec::new();
        'jobs: for (jid, j) in s.jobs().filter(|(_, j)| !j.settled) {
            for (i, a) in j.attempts.iter().enumerate() {
                let kind = match a.state {
                    AttemptState::Assigned if a.prover == pid => "accept",
                    AttemptState::Running if a.prover == pid => "run",
                    // Revealed in a later block, once no co-prover can still commit.
                    AttemptState::Committed if a.prover == pid => {
                        let at = a.commitment.map_or(a.assigned_at, |(h, _)| h);
                        let next = provernet_types::Height(s.height().0 + 1);
                        if next > at && provernet_ledger::apply::gate_open(j, at, next) {
                            "reveal_proof"
                        } else {
                            continue;
                        }
                    }
                    AttemptState::Proven => {
                        let pos = a.committee.iter().position(|m| *m == me);
                        match pos.and_then(|p| a.votes.get(p)) {
                            Some(None) => "vote",
                            _ => continue,
                        }
                    }
                    _ => continue,
                };
                if tasks.len() == WORK_TASKS_MAX {
                    break 'jobs;
                }
                tasks.push(json!({
                    "kind": kind,
                    "attempt": i,
                    "deadline": a.deadline.0,
                    "job": views::job(jid, j),
                }));
            }
            if let Some(o) = provernet_ledger::opening(s, j, &pid) {
                if tasks.len() == WORK_TASKS_MAX {
                    break 'jobs;
                }
                tasks.push(views::opening(jid, j, &o));
            }
        }
        json!({
            "height": s.height().0,
            "prover": s.prover(&pid).map(|p| views::prover(&pid, p)),
            "tasks": tasks,
        })
    })))
}

#[derive(Deserialize, Debug)]
struct Page {
    cursor: Option<String>,
    limit: Option<usize>,
    requester: Option<String>,
    state: Option<String>,
}

impl Page {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(PAGE_MAX),
            Some(0) => Err(ApiError::bad("bad_limit", "limit must be at least 1")),
            Some(n) if n > PAGE_MAX => Err(ApiError::bad(
                "bad_limit",
                format!("limit {n} is above the maximum {PAGE_MAX}"),
            )),
            Some(n) => Ok(n),
        }
    }
}

/// A page of items keyed by `id`: a full page names its last id as the next cursor.
fn page_of(items: Vec<Value>, limit: usize) -> Value {
    let next = (items.len() == limit)
        .then(|| items.last().and_then(|v| v["id"].as_str().map(String::from)))
        .flatten();
    json!({"items": items, "next_cursor": next})
}

async fn provers(State(api): State<Api>, Query(page): Query<Page>) -> ApiResult {
    let limit = page.limit()?;
    let after: Option<ProverId> =
        page.cursor.as_deref().map(|c| parse_id("cursor", c)).transpose()?;
    Ok(Json(api.submitter.chain().with_state(|s| {
        let items: Vec<Value> = s
            .provers()
            .filter(|(id, _)| after.is_none_or(|a| **id > a))
            .take(limit)
            .map(|(id, p)| views::prover(id, p))
            .collect();
        page_of(items, limit)
    })))
}

async fn jobs(State(api): State<Api>, Query(page): Query<Page>) -> ApiResult {
    let limit = page.limit()?;
    let after: Option<JobId> = page.cursor.as_deref().map(|c| parse_id("cursor", c)).transpose()?;
    let requester: Option<AccountId> =
        page.requester.as_deref().map(|r| parse_id("requester", r)).transpose()?;
    const STATES: [&str; 10] = [
        "Pending",
        "Assigned",
        "Running",
        "Proven",
        "Race",
        "Verified",
        "Failed(program)",
        "Failed(no proof)",
        "Cancelled",
        "Expired",
    ];
    if let Some(state) = &page.state {
        if !STATES.contains(&state.as_str()) && state != "Failed" {
            return Err(ApiError::bad(
                "bad_state",
                format!("state `{state}` is not one of {}", STATES.join(", ")),
            ));
        }
    }
    Ok(Json(api.submitter.chain().with_state(|s| {
        let items: Vec<Value> = s
            .jobs()
            .filter(|(id, _)| after.is_none_or(|a| **id > a))
            .filter(|(_, j)| requester.is_none_or(|r| j.requester == r))
            .filter(|(_, j)| match page.state.as_deref() {
                None => true,
                Some("Failed") => j.status.name().starts_with("Failed"),
                Some(st) => j.status.name() == st,
            })
            .take(limit)
            .map(|(id, j)| views::job(id, j))
            .collect();
        page_of(items, limit)
    })))
}

async fn job(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let j: JobId = parse_id("job", &id)?;
    api.submitter
        .chain()
        .with_state(|s| s.job(&j).map(|job| views::job(&j, job)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job", &id))
}

async fn block(State(api): State<Api>, Path(height): Path<String>) -> ApiResult {
    let chain = api.submitter.chain();
    let h = if height == "latest" {
        chain.tip().height
    } else {
        height.parse::<u64>().map_err(|_| {
            ApiError::bad("bad_height", format!("height `{height}` is not a number or `latest`"))
        })?
    };
    if h == 0 {
        let g = chain.genesis_block();
        return Ok(Json(json!({
            "height": 0,
            "genesis": true,
            "hash": hex::encode(commonware_digest(g)),
            "state_root": g.header().root.to_string(),
        })));
    }
    let record = chain
        .with_store(|s| s.block(Height(h)))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))?;
    record
        .map(|b| Json(views::block(&b)))
        .ok_or_else(|| ApiError::not_found("block at height", &height))
}

#[derive(Deserialize, Debug)]
struct QuoteQuery {
    cores: String,
    memory: String,
    gpus: Option<String>,
    time: String,
    redundancy: Option<u8>,
}

async fn quote(State(api): State<Api>, Query(q): Query<QuoteQuery>) -> ApiResult {
    let field = |name: &'static str, e: String| ApiError::bad("bad_field", format!("{name}: {e}"));
    let cores: MilliCores = q
        .cores
        .parse()
        .map_err(|e: provernet_types::ParseUnitError| field("cores", e.to_string()))?;
    let memory: ByteSize = q
        .memory
        .parse()
        .map_err(|e: provernet_types::ParseUnitError| field("memory", e.to_string()))?;
    let gpus: GpuCount = q
        .gpus
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(|e: provernet_types::ParseUnitError| field("gpus", e.to_string()))?;
    let time: Seconds = q
        .time
        .parse()
        .map_err(|e: provernet_types::ParseUnitError| field("time", e.to_string()))?;
    let redundancy = q.redundancy.unwrap_or(1);
    if redundancy == 0 || redundancy > provernet_types::limits::REDUNDANCY_MAX {
        return Err(field("redundancy", format!("{redundancy} is outside 1..=3")));
    }
    let resources = Resources { cores, memory, gpus };
    resources.check_bounds().map_err(|e| field("resources", e.to_string()))?;
    let (per, tx_fee) = api
        .submitter
        .chain()
        .with_state(|s| (s.params().prices.quote(&resources, time), s.params().tx_fee));
    let total = per.0.saturating_mul(u64::from(redundancy));
    Ok(Json(json!({
        "per_prover_micro_credits": per.0,
        "total_micro_credits": total,
        "redundancy": redundancy,
        "time_limit_s": time.0,
        "tx_fee_micro_credits": tx_fee.0,
    })))
}

fn sse_stream(
    blocks: impl Stream<Item = Arc<Finalized>> + Send + 'static,
    job: Option<JobId>,
    done: impl Fn() -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    blocks.take_while(move |_| std::future::ready(!done())).filter_map(move |b| {
        let data = match job {
            None => Some(views::finalized(&b)),
            Some(id) => {
                let events: Vec<Value> = b
                    .events
                    .iter()
                    .filter(|e| views::event_job(e) == Some(id))
                    .map(views::event)
                    .collect();
                (!events.is_empty()).then(|| json!({"height": b.height.0, "events": events}))
            }
        };
        std::future::ready(data.map(|d| {
            Ok(SseEvent::default()
                .event(if job.is_some() { "job" } else { "block" })
                .data(d.to_string()))
        }))
    })
}

/// A place among the event-stream subscribers, or `503 too_many_subscribers`.
fn subscriber(api: &Api, peer: Option<&axum::Extension<Peer>>) -> Result<server::Pass, ApiError> {
    api.subscribers
        .enter(client_ip(peer))
        .map_err(|full| busy("too_many_subscribers", "event-stream subscribers", full))
}

/// `stream`, holding `pass` until the client goes away or the stream ends.
fn holding<S: Stream + Send + 'static>(
    stream: S,
    pass: server::Pass,
) -> impl Stream<Item = S::Item> + Send + 'static {
    stream.map(move |item| {
        let _held = &pass;
        item
    })
}

async fn block_events(
    State(api): State<Api>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let pass = subscriber(&api, peer.as_ref())?;
    let rx = api.submitter.chain().subscribe();
    Ok(Sse::new(holding(sse_stream(rx, None, || false), pass))
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn job_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let j: JobId = parse_id("job", &id)?;
    let chain = api.submitter.chain().clone();
    let exists = chain.with_state(|s| s.job(&j).map(|job| job.status.is_final()));
    let Some(already_final) = exists else {
        return Err(ApiError::not_found("job", &id));
    };
    let pass = subscriber(&api, peer.as_ref())?;
    let rx = chain.subscribe();
    let first = futures::stream::once(std::future::ready(Ok::<_, Infallible>(
        SseEvent::default().event("job").data(
            chain
                .with_state(|s| s.job(&j).map(|job| views::job(&j, job)))
                .unwrap_or(Value::Null)
                .to_string(),
        ),
    )));
    let rest = if already_final {
        futures::stream::empty().boxed()
    } else {
        let watch = chain.clone();
        // Stop after the block in which the job became final has been sent.
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = finished.clone();
        sse_stream(rx, Some(j), move || seen.load(Ordering::Relaxed))
            .inspect(move |_| {
                let fin = watch.with_state(|s| s.job(&j).is_none_or(|job| job.status.is_final()));
                finished.store(fin, Ordering::Relaxed);
            })
            .boxed()
    };
    Ok(Sse::new(holding(first.chain(rest), pass)).keep_alive(KeepAlive::default()).into_response())
}
