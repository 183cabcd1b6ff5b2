//! The HTTP API every node serves. Its contract is the [`provernet_api_types`] crate; the
//! OpenAPI document at `/openapi.json` is generated from those types and from the handlers
//! below, which are the only way a route is added.
//!
//! - `POST /v1/txs` — a signed transaction in the canonical binary encoding
//!   (`application/octet-stream`); answers `202` with its hash once the mempool admitted it.
//! - `GET /v1/txs/{hash}` — pending, or the receipt of the block that included it.
//! - `GET /v1/status`, `/v1/supply`, `/v1/accounts/{id}`, `/v1/programs` and
//!   `/v1/programs/{id-or-name}`, `/v1/provers` and `/v1/provers/{id}`, `/v1/jobs` (filters
//!   `requester`, `prover`, `state`; `cursor`/`limit` paging) and `/v1/jobs/{id}`, `/v1/blocks`
//!   (newest first) and `/v1/blocks/{height|latest}`, `/v1/workflows/{id}`, `/v1/quote`.
//! - Server-sent events: `/v1/events/blocks` (every finalized block), `/v1/jobs/{id}/events`
//!   (that job's events, ending when it is final) and `/v1/workflows/{id}/events` (the
//!   workflow's and its nodes' jobs' events, ending when every node is final).
//! - `/openapi.json`, `/metrics` (Prometheus text), `/healthz`; the explorer at `/`.
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with a stable code (see
//! [`ErrorCode`]) and a message that names the field or id at fault. Request bodies and page
//! sizes are bounded.

mod explorer;
mod server;
mod views;

pub use explorer::CSP as EXPLORER_CSP;

pub use provernet_api_types::{ErrorCode, PAGE_MAX, WORK_TASKS_MAX};
pub use server::{raise_descriptor_limit, serve_router, Gate, Peer, ServeLimits};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use provernet_api_types as t;
use provernet_blobs::{BlobError, BlobStore, Quota, Stored};
use provernet_consensus::{AdmitError, Admitted, Finalized, Submitter};
use provernet_ledger::Table;
use provernet_types::limits::TX_BYTES_MAX;
use provernet_types::{
    AccountId, BlobHash, BlobRef, Bytes as ByteSize, GpuCount, Height, JobId, MilliCores,
    ProgramId, ProverId, Resources, Seconds, TxHash, WorkflowId,
};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A JSON error with a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    fields: BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: ErrorCode::parse(code),
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    fn bad(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} {id}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = t::ApiErrorBody { code: self.code, message: self.message, fields: self.fields };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

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

/// The API's routes with their documentation; `quick` ones answer within the request timeout,
/// the others (blob transfers, event streams) may take longer.
fn documented() -> (OpenApiRouter<Api>, OpenApiRouter<Api>) {
    let quick = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(status))
        .routes(routes!(supply))
        .routes(routes!(submit_tx))
        .routes(routes!(check_tx))
        .routes(routes!(tx_status))
        .routes(routes!(account))
        .routes(routes!(programs))
        .routes(routes!(program))
        .routes(routes!(provers))
        .routes(routes!(prover))
        .routes(routes!(prover_work))
        .routes(routes!(jobs))
        .routes(routes!(job))
        .routes(routes!(workflow))
        .routes(routes!(blocks))
        .routes(routes!(block))
        .routes(routes!(quote))
        .routes(routes!(blob_outline));
    let slow = OpenApiRouter::new()
        .routes(routes!(get_blob, put_blob))
        .routes(routes!(begin_upload, upload_state))
        .routes(routes!(put_pieces))
        .routes(routes!(complete_upload))
        .routes(routes!(job_events))
        .routes(routes!(workflow_events))
        .routes(routes!(block_events));
    (quick, slow)
}

/// The OpenAPI document of this API, generated from its types and handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (quick, slow) = documented();
    let mut doc = quick.merge(slow).into_openapi();
    doc.info.title = "provernet API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "The HTTP API every provernet validator serves: transactions, state queries, blobs, \
         event streams. Errors are `{code, message}` with a stable code."
            .into(),
    );
    doc.info.license = None;
    doc.info.contact = None;
    doc
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
        let (quick, slow) = documented();
        // Everything but blob transfers and event streams answers within the request timeout.
        let timeout = axum::middleware::from_fn(
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
        );
        let quick = quick.layer(DefaultBodyLimit::max(TX_BYTES_MAX + 1024)).layer(timeout);
        let (router, _) = slow.merge(quick).split_for_parts();
        router
            .merge(explorer::routes())
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

fn busy(code: &str, what: &str, full: server::Full) -> ApiError {
    let why = match full {
        server::Full::Total(n) => format!("this validator serves at most {n} {what}"),
        server::Full::PerIp(n) => format!("at most {n} {what} per client address"),
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, format!("{why}; retry shortly"))
}

fn blob_status(e: &BlobError) -> StatusCode {
    match e {
        BlobError::TooLarge { .. } | BlobError::RequestTooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        BlobError::QuotaExceeded { .. } | BlobError::TooManyUploads { .. } => StatusCode::FORBIDDEN,
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

/// Downloads a blob, streamed in checked pieces. A copy on its way from another validator is
/// waited for a little.
#[utoipa::path(
    get,
    path = "/v1/blobs/{hash}",
    tag = "blobs",
    params(("hash" = String, Path, description = "The blob's BLAKE3 hash")),
    responses(
        (status = 200, description = "The blob's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The blob's bytes from the range's start (`Range: bytes=N-`)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "A malformed hash", body = t::ApiErrorBody),
        (status = 404, description = "No such blob here", body = t::ApiErrorBody),
        (status = 416, description = "A range other than `bytes=N-`, or past the end", body = t::ApiErrorBody),
    )
)]
async fn get_blob(
    State(api): State<Api>,
    Path(hash): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let from = match headers.get(header::RANGE) {
        None => None,
        Some(r) => Some(range_start(r.to_str().unwrap_or(""))?),
    };
    let mut found = store.read_from(&h, from.unwrap_or(0)).await.map_err(blob_error)?;
    if found.is_none() {
        // A copy from another validator may be on its way (a block named the blob, or its
        // upload was announced): wait a little for it.
        if let Some(net) = api.submitter.blobs() {
            if net.wait(h, DOWNLOAD_WAIT).await.is_ok() {
                found = store.read_from(&h, from.unwrap_or(0)).await.map_err(blob_error)?;
            }
        }
    }
    let Some((size, pieces)) = found else { return Err(ApiError::not_found("blob", &hash)) };
    // Streamed a checked piece at a time; a piece that fails its check ends the response
    // early, which the client sees as a short body.
    let body = axum::body::Body::from_stream(pieces.map(|p| p.map_err(std::io::Error::other)));
    let Some(from) = from else {
        return Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_LENGTH, size.to_string()),
                (header::ACCEPT_RANGES, "bytes".to_owned()),
            ],
            body,
        )
            .into_response());
    };
    if from >= size {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bad_range",
            format!("the range starts at byte {from}, past the blob's {size} bytes"),
        ));
    }
    Ok((
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, (size - from).to_string()),
            (header::CONTENT_RANGE, format!("bytes {from}-{}/{size}", size - 1)),
        ],
        body,
    )
        .into_response())
}

/// The first byte of a `Range: bytes=N-` header (the one form served: from a byte to the end,
/// which is what resuming a download asks for).
fn range_start(range: &str) -> Result<u64, ApiError> {
    range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!(
                    "range `{range}` is not served; ask for `bytes=N-` (from byte N to the end)"
                ),
            )
        })
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &'static str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad("missing_header", format!("header {name} is required")))
}

/// Uploads a blob. Everything is checked from its signed headers before a byte of the body is
/// read (the signature, the account, the declared size against the blob limit, the
/// `content-length`, room in the account's quota and among the uploads in progress); then the
/// body streams to the store, hashed on its way. The other validators copy it.
#[utoipa::path(
    put,
    path = "/v1/blobs/{hash}",
    tag = "blobs",
    params(
        ("hash" = String, Path, description = "The blob's BLAKE3 hash"),
        ("x-provernet-account" = String, Header, description = "The uploading account, which pays the quota"),
        ("x-provernet-size" = u64, Header, description = "The blob's size in bytes (equal to content-length)"),
        ("x-provernet-signature" = String, Header, description = "The account's ed25519 signature of the blob's hash and size, hex"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored, or already here", body = t::BlobStored),
        (status = 400, description = "Bad headers, or bytes that do not match the hash", body = t::ApiErrorBody),
        (status = 401, description = "A bad signature", body = t::ApiErrorBody),
        (status = 403, description = "An unknown account, or its quota is full", body = t::ApiErrorBody),
        (status = 413, description = "Above the blob limit, or above one request's (send it in pieces)", body = t::ApiErrorBody),
        (status = 503, description = "Too many uploads in progress", body = t::ApiErrorBody),
    )
)]
async fn put_blob(
    State(api): State<Api>,
    Path(hash): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let (account, declared, signature) = signed_upload(&api, &headers, h)?;
    let size = declared.size.0;
    let max = store.limits().blob_max;
    if size > max {
        return Err(blob_error(BlobError::TooLarge { size, max }));
    }
    let request_max = api.limits.upload_request_bytes;
    if size > request_max {
        return Err(blob_error(BlobError::RequestTooLarge { size, max: request_max }));
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
    let stored = match stored {
        Stored::New => t::StoredAs::New,
        Stored::Existing => t::StoredAs::Existing,
    };
    Ok((StatusCode::CREATED, Json(t::BlobStored { hash: h, size: ByteSize(size), stored }))
        .into_response())
}

/// A blob's outline: the BLAKE3 chaining value of each of its pieces, 32 bytes each, in order
/// (empty for a blob of one piece), with the blob's size in `x-provernet-size`. A client
/// checks that it folds to the blob's hash, then checks every piece it downloads against it,
/// so a download can stop and resume, and a wrong byte is caught at its piece.
#[utoipa::path(
    get,
    path = "/v1/blobs/{hash}/outline",
    tag = "blobs",
    params(("hash" = String, Path, description = "The blob's BLAKE3 hash")),
    responses(
        (status = 200, description = "The outline", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "A malformed hash", body = t::ApiErrorBody),
        (status = 404, description = "No such blob here", body = t::ApiErrorBody),
    )
)]
async fn blob_outline(
    State(api): State<Api>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let mut size = store.size(&h).await.map_err(blob_error)?;
    if size.is_none() {
        if let Some(net) = api.submitter.blobs() {
            if net.wait(h, DOWNLOAD_WAIT).await.is_ok() {
                size = store.size(&h).await.map_err(blob_error)?;
            }
        }
    }
    let Some(size) = size else { return Err(ApiError::not_found("blob", &hash)) };
    let outline = store.outline(&h).await.map_err(blob_error)?;
    let Some(outline) = outline else { return Err(ApiError::not_found("blob", &hash)) };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::HeaderName::from_static("x-provernet-size"), size.to_string()),
        ],
        outline.concat(),
    )
        .into_response())
}

fn upload_view(s: provernet_blobs::staging::UploadState) -> t::UploadState {
    t::UploadState {
        hash: s.blob.hash,
        size: s.blob.size,
        piece_bytes: provernet_blobs::pieces::PIECE_BYTES,
        pieces: s.pieces,
        received_bytes: s.received,
        missing: s.missing.iter().map(|r| [r.start, r.end]).collect(),
        stored: s.stored,
    }
}

/// Opens (or reopens, to resume) an upload in pieces, for a blob above one request. The
/// headers are signed as for `PUT /v1/blobs/{hash}`; the body is the blob's outline (see
/// `GET /v1/blobs/{hash}/outline`), which must fold to its hash, followed by the blob's last
/// piece, which binds its size. The blob's size counts against the account's quota while the
/// upload is open. The answer lists the pieces still missing.
#[utoipa::path(
    post,
    path = "/v1/blobs/{hash}/uploads",
    tag = "blobs",
    params(
        ("hash" = String, Path, description = "The blob's BLAKE3 hash"),
        ("x-provernet-account" = String, Header, description = "The uploading account, which pays the quota"),
        ("x-provernet-size" = u64, Header, description = "The blob's size in bytes"),
        ("x-provernet-signature" = String, Header, description = "The account's ed25519 signature of the blob's hash and size, hex"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Open: what is missing", body = t::UploadState),
        (status = 400, description = "Bad headers, a blob of one piece, or an outline that does not fold to the hash", body = t::ApiErrorBody),
        (status = 401, description = "A bad signature", body = t::ApiErrorBody),
        (status = 403, description = "An unknown account, its quota is full, or it has too many uploads open", body = t::ApiErrorBody),
        (status = 408, description = "The body came too slowly", body = t::ApiErrorBody),
        (status = 413, description = "Above the blob limit, or a body longer than an outline and a piece", body = t::ApiErrorBody),
        (status = 503, description = "The store failed", body = t::ApiErrorBody),
    )
)]
async fn begin_upload(
    State(api): State<Api>,
    Path(hash): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<t::UploadState> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let (account, declared, _) = signed_upload(&api, &headers, h)?;
    let max = store.limits().blob_max;
    if declared.size.0 > max {
        return Err(blob_error(BlobError::TooLarge { size: declared.size.0, max }));
    }
    // The outline (32 bytes per piece), then the last piece: read within that size and the
    // request timeout (this route has no other bound on its body).
    let pieces = provernet_blobs::pieces::piece_count(declared.size.0);
    let outline_len = usize::try_from(pieces * 32).unwrap_or(usize::MAX);
    let limit = outline_len.saturating_add(provernet_blobs::pieces::PIECE_BYTES as usize);
    let within = std::time::Duration::from_secs(api.limits.request_timeout_s.max(1));
    let body = tokio::time::timeout(within, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the outline came too slowly",
            )
        })?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over the {limit} bytes an outline and a piece take"),
            )
        })?;
    if body.len() < outline_len {
        return Err(ApiError::bad(
            "bad_field",
            format!(
                "the body must be the {pieces} pieces' hashes (32 bytes each), then the last piece"
            ),
        ));
    }
    let outline: Vec<provernet_blobs::pieces::PieceHash> =
        body[..outline_len].chunks_exact(32).filter_map(|c| c.try_into().ok()).collect();
    let tail = body.slice(outline_len..);
    let state =
        store.begin_upload(&account, &declared, &outline, tail).await.map_err(blob_error)?;
    Ok(Json(upload_view(state)))
}

/// Where an upload in pieces stands: the pieces still missing.
#[utoipa::path(
    get,
    path = "/v1/blobs/{hash}/uploads",
    tag = "blobs",
    params(("hash" = String, Path, description = "The blob's BLAKE3 hash")),
    responses(
        (status = 200, description = "What is missing", body = t::UploadState),
        (status = 400, description = "A malformed hash", body = t::ApiErrorBody),
        (status = 404, description = "No upload of it is open, and it is not stored", body = t::ApiErrorBody),
    )
)]
async fn upload_state(
    State(api): State<Api>,
    Path(hash): Path<String>,
) -> ApiResult<t::UploadState> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    match store.upload_state(&h).await.map_err(blob_error)? {
        Some(state) => Ok(Json(upload_view(state))),
        None => Err(ApiError::not_found("upload", &hash)),
    }
}

/// Sends consecutive pieces of an open upload, the first being piece `{piece}`: whole pieces,
/// at most the validator's request limit (`status.blobs.request_bytes_max`). Each piece is
/// checked against the outline as it arrives and kept; a piece that does not match is refused
/// naming its index, and the pieces before it stay. Anyone may send pieces (they can only
/// match); only the account that opened the upload completes it.
#[utoipa::path(
    put,
    path = "/v1/blobs/{hash}/uploads/{piece}",
    tag = "blobs",
    params(
        ("hash" = String, Path, description = "The blob's BLAKE3 hash"),
        ("piece" = u64, Path, description = "The index of the first piece sent"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = t::PiecesStored),
        (status = 400, description = "A piece that does not match, a body that ends inside a piece, or no such upload", body = t::ApiErrorBody),
        (status = 413, description = "Above the request limit", body = t::ApiErrorBody),
        (status = 503, description = "Too many uploads in progress", body = t::ApiErrorBody),
    )
)]
async fn put_pieces(
    State(api): State<Api>,
    Path((hash, piece)): Path<(String, String)>,
    peer: Option<axum::Extension<Peer>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let store = api.blobs.as_ref().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let first: u64 = piece
        .parse()
        .map_err(|_| ApiError::bad("bad_id", format!("piece `{piece}` is not an index")))?;
    let max = api.limits.upload_request_bytes;
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        let length = length.to_str().ok().and_then(|l| l.parse::<u64>().ok()).unwrap_or(u64::MAX);
        if length > max {
            return Err(blob_error(BlobError::RequestTooLarge { size: length, max }));
        }
    }
    let _pass = api
        .uploads
        .enter(client_ip(peer.as_ref()))
        .map_err(|full| busy("uploads_busy", "uploads in progress", full))?;
    let idle = std::time::Duration::from_secs(api.limits.upload_idle_s.max(1));
    let pieces = store
        .put_pieces(&h, first, body.into_data_stream(), max, idle)
        .await
        .map_err(blob_error)?;
    Ok((StatusCode::CREATED, Json(t::PiecesStored { hash: h, first, pieces })).into_response())
}

/// Completes an upload in pieces once every piece is here: the blob is assembled, checked
/// whole, stored and charged to the account, and the other validators copy it. The headers
/// are signed as for opening it.
#[utoipa::path(
    post,
    path = "/v1/blobs/{hash}/uploads/complete",
    tag = "blobs",
    params(
        ("hash" = String, Path, description = "The blob's BLAKE3 hash"),
        ("x-provernet-account" = String, Header, description = "The account that opened the upload"),
        ("x-provernet-size" = u64, Header, description = "The blob's size in bytes"),
        ("x-provernet-signature" = String, Header, description = "The account's ed25519 signature of the blob's hash and size, hex"),
    ),
    responses(
        (status = 201, description = "Stored, or already here", body = t::BlobStored),
        (status = 400, description = "Pieces are missing, or no such upload is open for the account", body = t::ApiErrorBody),
        (status = 401, description = "A bad signature", body = t::ApiErrorBody),
        (status = 403, description = "An unknown account, or its quota is full", body = t::ApiErrorBody),
        (status = 503, description = "The store failed, or too many uploads are in progress", body = t::ApiErrorBody),
    )
)]
async fn complete_upload(
    State(api): State<Api>,
    Path(hash): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let store = api.blobs.clone().ok_or_else(no_blobs)?;
    let h: BlobHash = parse_id("blob hash", &hash)?;
    let (account, _, signature) = signed_upload(&api, &headers, h)?;
    let pass = api
        .uploads
        .enter(client_ip(peer.as_ref()))
        .map_err(|full| busy("uploads_busy", "uploads in progress", full))?;
    // Assembling gigabytes takes a while: it runs as a task of its own, which finishes (and
    // stores the blob) even if the client gives up waiting; asking again answers `existing`.
    let task = tokio::spawn(async move {
        let _pass = pass;
        store.complete_upload(&account, &h).await
    });
    let done = task.await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", format!("assembling: {e}"))
    })?;
    let (declared, stored) = done.map_err(blob_error)?;
    if let Some(net) = api.submitter.blobs() {
        net.uploaded(declared, provernet_consensus::blobnet::Upload { account, signature });
    }
    let stored = match stored {
        Stored::New => t::StoredAs::New,
        Stored::Existing => t::StoredAs::Existing,
    };
    Ok((StatusCode::CREATED, Json(t::BlobStored { hash: h, size: declared.size, stored }))
        .into_response())
}

/// The uploading account, the declared blob and the signature, from an upload's signed
/// headers: checked against the chain (the signature under its chain id, the account on
/// chain) before anything else is read.
fn signed_upload(
    api: &Api,
    headers: &axum::http::HeaderMap,
    h: BlobHash,
) -> Result<(AccountId, BlobRef, provernet_types::Signature), ApiError> {
    let account: AccountId =
        parse_id("x-provernet-account", header(headers, "x-provernet-account")?)?;
    let size: u64 = header(headers, "x-provernet-size")?
        .parse()
        .map_err(|_| ApiError::bad("bad_header", "x-provernet-size must be a number of bytes"))?;
    let sig: [u8; 64] = hex::decode(header(headers, "x-provernet-signature")?)
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
    Ok((account, declared, signature))
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

/// Whether the node is up, and its height.
#[utoipa::path(get, path = "/healthz", tag = "node", responses((status = 200, body = t::Health)))]
async fn healthz(State(api): State<Api>) -> ApiResult<t::Health> {
    Ok(Json(t::Health { ok: true, height: api.submitter.chain().tip().height }))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "node",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC
        .get_or_init(|| openapi().to_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}

/// Prometheus metrics of this validator's API and mempool.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "node",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
async fn metrics(State(api): State<Api>) -> Response {
    use std::fmt::Write;
    let chain = api.submitter.chain();
    let tip = chain.tip();
    let (txs, bytes) = chain.mempool_size();
    let c = &api.counters;
    let mut body = format!(
        "# HELP provernet_height Height of the last finalized block.\n\
         # TYPE provernet_height gauge\nprovernet_height {}\n\
         # HELP provernet_block_time_ms Time of the last finalized block (ms since the epoch).\n\
         # TYPE provernet_block_time_ms gauge\nprovernet_block_time_ms {}\n\
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
        tip.time,
        c.txs_admitted.load(Ordering::Relaxed),
        c.txs_known.load(Ordering::Relaxed),
        c.txs_rejected.load(Ordering::Relaxed),
    );
    // From the state: jobs not yet settled by status, provers by status, where the credits are.
    let (jobs, provers, parts) = chain.with_state(|s| {
        let mut jobs: std::collections::BTreeMap<&'static str, u64> =
            t::JobStatus::ALL.iter().map(|st| (st.name(), 0)).collect();
        for (_, j) in s.jobs().filter(|(_, j)| !j.settled) {
            *jobs.entry(views::job_status(j.status).name()).or_default() += 1;
        }
        let mut provers: std::collections::BTreeMap<&'static str, u64> =
            ["Probing", "Active", "Exiting", "Ejected"].into_iter().map(|n| (n, 0)).collect();
        for (id, p) in s.provers() {
            *provers.entry(views::prover(id, p).status.name()).or_default() += 1;
        }
        let sup = supply_of(s);
        let parts = [
            ("balances", sup.balances_micro_credits),
            ("stakes", sup.stakes_micro_credits),
            ("escrows", sup.escrows_micro_credits),
            ("treasury", u128::from(sup.treasury_micro_credits.0)),
            ("burned", u128::from(sup.burned_micro_credits.0)),
        ];
        (jobs, provers, parts)
    });
    let _ = writeln!(
        body,
        "# HELP provernet_jobs Jobs not yet settled, by status.\n# TYPE provernet_jobs gauge"
    );
    for (status, n) in jobs {
        let _ = writeln!(body, "provernet_jobs{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        body,
        "# HELP provernet_provers Registered provers by status.\n# TYPE provernet_provers gauge"
    );
    for (status, n) in provers {
        let _ = writeln!(body, "provernet_provers{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        body,
        "# HELP provernet_credits_micro Where the credits are, in micro-credits.\n# TYPE provernet_credits_micro gauge"
    );
    for (part, n) in parts {
        let _ = writeln!(body, "provernet_credits_micro{{part=\"{part}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The chain's height, tip, parameters that clients need and the mempool.
#[utoipa::path(get, path = "/v1/status", tag = "chain", responses((status = 200, body = t::Status)))]
async fn status(State(api): State<Api>) -> ApiResult<t::Status> {
    let chain = api.submitter.chain();
    let tip = chain.tip();
    let (txs, bytes) = chain.mempool_size();
    let (block_time_ms, tx_fee, mechanisms) = chain.with_state(|s| {
        let p = s.params();
        let m = &p.mechanism_params;
        let mechanisms = t::Mechanisms {
            enabled: p.mechanisms.iter().map(|k| (*k).into()).collect(),
            dutch_ramp_blocks: m.dutch_ramp_blocks,
            bid_window_blocks: m.bid_window_blocks,
            collateral_bps: m.collateral_bps,
            collateral_burn_bps: m.collateral_burn_bps,
            sqrt_lottery_top: m.sqrt_lottery_top,
        };
        (p.block_time_ms, p.tx_fee, mechanisms)
    });
    Ok(Json(t::Status {
        chain_id: chain.chain_id().to_owned(),
        height: tip.height,
        block_hash: provernet_types::BlockHash(tip.digest.0),
        state_root: tip.root,
        time_ms: tip.time,
        block_time_ms,
        tx_fee_micro_credits: tx_fee,
        mempool: t::Mempool { txs: txs as u64, bytes: bytes as u64 },
        mechanisms,
        blobs: api.blobs.as_ref().map(|b| t::BlobLimits {
            blob_bytes_max: b.limits().blob_max,
            request_bytes_max: api.limits.upload_request_bytes.min(b.limits().blob_max),
            piece_bytes: provernet_blobs::pieces::PIECE_BYTES,
            account_quota_bytes: b.limits().account_quota,
        }),
    }))
}

/// Where every credit is. The parts sum to the genesis supply after every block (the ledger's
/// conservation invariant), which anyone can check from outside with this and the accounts.
#[utoipa::path(get, path = "/v1/supply", tag = "chain", responses((status = 200, body = t::Supply)))]
async fn supply(State(api): State<Api>) -> ApiResult<t::Supply> {
    Ok(Json(api.submitter.chain().with_state(supply_of)))
}

/// Where every credit of `s` is (served at `/v1/supply`, exported by `/metrics`).
fn supply_of(s: &provernet_ledger::State) -> t::Supply {
    let balances: u128 = s.accounts().map(|(_, a)| u128::from(a.balance.0)).sum();
    let stakes: u128 = s.provers().map(|(_, p)| u128::from(p.stake.0)).sum();
    // What jobs hold, and what workflows hold for their nodes not yet jobs.
    let escrows: u128 = s.jobs().map(|(_, j)| u128::from(j.escrow.0)).sum::<u128>()
        + s.workflows().map(|(_, w)| u128::from(w.escrow.0)).sum::<u128>();
    let m = s.meta();
    t::Supply {
        height: m.height,
        supply_micro_credits: m.supply,
        balances_micro_credits: balances,
        stakes_micro_credits: stakes,
        escrows_micro_credits: escrows,
        treasury_micro_credits: m.treasury,
        burned_micro_credits: m.burned,
        accounts: s.accounts().count() as u64,
    }
}

/// A request body that should hold one encoded signed transaction.
fn tx_body(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
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
    Ok(body)
}

/// An admission error as a client should see it. A transaction naming a job or workflow that
/// ended and left the live state meets the ledger's `unknown_job` / `unknown_workflow`; the
/// archive still knows it, so the answer is the one it got while the record was live: the job
/// has ended (`wrong_job_state`, naming its status), the workflow is closed.
fn refusal(api: &Api, e: AdmitError) -> ApiError {
    use provernet_ledger::TxError;
    let store = api.submitter.chain().store();
    let known = match &e {
        AdmitError::Ledger(TxError::UnknownJob(job)) => {
            store.archived_job(job).ok().flatten().map(|(_, j)| TxError::WrongJobState {
                job: *job,
                status: j.status,
                expected: "a job that has not ended",
            })
        }
        AdmitError::Ledger(TxError::UnknownWorkflow(w)) => {
            store.archived_workflow(w).ok().flatten().map(|_| TxError::WorkflowClosed(*w))
        }
        _ => None,
    };
    admit_error(known.map_or(e, AdmitError::Ledger))
}

fn admit_error(e: AdmitError) -> ApiError {
    let status = match &e {
        AdmitError::AccountFull { .. } | AdmitError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
        AdmitError::NonceTaken { .. } => StatusCode::CONFLICT,
        AdmitError::Blob(b) => blob_status(b),
        _ => StatusCode::BAD_REQUEST,
    };
    let mut err = ApiError::new(status, e.code(), e.to_string());
    if let AdmitError::Ledger(l) = &e {
        err.fields = l.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    }
    err
}

/// Submits a signed transaction (its canonical binary encoding). The mempool checks it against
/// the ledger first: a transaction that would fail now is refused with the ledger's own code.
#[utoipa::path(
    post,
    path = "/v1/txs",
    tag = "transactions",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The encoded signed transaction"),
    responses(
        (status = 202, description = "In the mempool", body = t::Submitted),
        (status = 400, description = "Malformed, badly signed, or refused by the ledger (its code)", body = t::ApiErrorBody),
        (status = 409, description = "Another transaction with this nonce is pending", body = t::ApiErrorBody),
        (status = 413, description = "Over the transaction size limit", body = t::ApiErrorBody),
        (status = 429, description = "The mempool or the account's share of it is full", body = t::ApiErrorBody),
    )
)]
async fn submit_tx(
    State(api): State<Api>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = tx_body(body)?;
    match api.submitter.submit(&body).await {
        Ok((hash, admitted)) => {
            let (counter, mempool) = match admitted {
                Admitted::Added => (&api.counters.txs_admitted, t::MempoolAdmission::Added),
                Admitted::Known => (&api.counters.txs_known, t::MempoolAdmission::Known),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Ok((StatusCode::ACCEPTED, Json(t::Submitted { hash, mempool })).into_response())
        }
        Err(e) => {
            api.counters.txs_rejected.fetch_add(1, Ordering::Relaxed);
            Err(refusal(&api, e))
        }
    }
}

/// Checks a signed transaction as `POST /v1/txs` would, without admitting it: the ledger's own
/// rules (balance, escrow, quote, eligibility, inputs, phase…), the fee and the mempool's
/// limits. One home for every rule: a client asks the chain before it uploads or pays, instead
/// of copying the rules. Blobs are not needed yet; those this validator lacks are listed.
#[utoipa::path(
    post,
    path = "/v1/txs/check",
    tag = "transactions",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The encoded signed transaction"),
    responses(
        (status = 200, description = "It would be admitted now", body = t::TxCheck),
        (status = 400, description = "Malformed, badly signed, or refused by the ledger (its code)", body = t::ApiErrorBody),
        (status = 409, description = "Another transaction with this nonce is pending", body = t::ApiErrorBody),
        (status = 413, description = "Over the transaction size limit", body = t::ApiErrorBody),
        (status = 429, description = "The mempool or the account's share of it is full", body = t::ApiErrorBody),
    )
)]
async fn check_tx(
    State(api): State<Api>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<t::TxCheck>, ApiError> {
    let body = tx_body(body)?;
    let chain = api.submitter.chain();
    chain
        .check_admission(&body, provernet_consensus::mempool::Source::Client)
        .map_err(|e| refusal(&api, e))?;
    // It decoded and verified above (a pending one is checked again by its signature only).
    let signed =
        provernet_types::SignedTx::decode(&body).map_err(|e| admit_error(AdmitError::Decode(e)))?;
    let (hash, body_of) = (signed.hash(), signed.tx.body);
    let fee = if body_of.pays_fee() {
        chain.with_state(|s| s.params().tx_fee)
    } else {
        provernet_types::MicroCredits(0)
    };
    let mut missing_blobs = Vec::new();
    if let Some(store) = &api.blobs {
        for b in body_of.blobs() {
            if !store.has(&b.hash).await.map_err(blob_error)? {
                missing_blobs.push(b.into());
            }
        }
    }
    Ok(Json(t::TxCheck { hash, tx_fee_micro_credits: fee, missing_blobs }))
}

/// A transaction: pending in the mempool, or applied or failed in a block (with the ledger's
/// error). Receipts of the most recent transactions are kept.
#[utoipa::path(
    get,
    path = "/v1/txs/{hash}",
    tag = "transactions",
    params(("hash" = String, Path, description = "The transaction's hash")),
    responses(
        (status = 200, body = t::TxStatus),
        (status = 400, body = t::ApiErrorBody),
        (status = 404, description = "Neither pending nor remembered", body = t::ApiErrorBody),
    )
)]
async fn tx_status(State(api): State<Api>, Path(hash): Path<String>) -> ApiResult<t::TxStatus> {
    let h: TxHash = parse_id("transaction hash", &hash)?;
    if let Some((height, result)) = api.submitter.chain().receipt(&h) {
        return Ok(Json(t::TxStatus {
            hash: h,
            status: if result.is_ok() { t::TxState::Applied } else { t::TxState::Failed },
            height: Some(height),
            error: result.err().map(|e| views::tx_error(&e)),
        }));
    }
    if api.submitter.chain().mempool_contains(&h) {
        return Ok(Json(t::TxStatus {
            hash: h,
            status: t::TxState::Pending,
            height: None,
            error: None,
        }));
    }
    Err(ApiError::not_found("transaction", &hash))
}

/// An account's balance, next nonce and open jobs.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    tag = "chain",
    params(("id" = String, Path, description = "The account id (its public key)")),
    responses((status = 200, body = t::Account), (status = 400, body = t::ApiErrorBody), (status = 404, body = t::ApiErrorBody))
)]
async fn account(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Account> {
    let a: AccountId = parse_id("account", &id)?;
    api.submitter
        .chain()
        .with_state(|s| s.account(&a).map(|acc| views::account(&a, acc)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("account", &id))
}

/// A program, by id or by name.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}",
    tag = "chain",
    params(("id" = String, Path, description = "The program's id, or its name")),
    responses((status = 200, body = t::Program), (status = 404, body = t::ApiErrorBody))
)]
async fn program(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Program> {
    let found = api.submitter.chain().with_state(|s| match ProgramId::from_str(&id) {
        Ok(pid) => s.program(&pid).map(|p| views::program(&pid, p)),
        Err(_) => s.program_by_name(&id).map(|(pid, p)| views::program(pid, p)),
    });
    found.map(Json).ok_or_else(|| ApiError::not_found("program (by id or name)", &id))
}

/// Every registered program, by id.
#[utoipa::path(
    get,
    path = "/v1/programs",
    tag = "chain",
    params(t::PageQuery),
    responses((status = 200, body = t::Page<t::Program>), (status = 400, body = t::ApiErrorBody))
)]
async fn programs(
    State(api): State<Api>,
    page: Result<Query<t::PageQuery>, QueryRejection>,
) -> ApiResult<t::Page<t::Program>> {
    let Query(page) = page.map_err(bad_query)?;
    let limit = page_limit(page.limit, PAGE_MAX)?;
    let after: Option<ProgramId> =
        page.cursor.as_deref().map(|c| parse_id("cursor", c)).transpose()?;
    Ok(Json(
        api.submitter.chain().with_state(|s| {
            paged(s.programs(), after, limit, views::program, |p| p.id.to_string())
        }),
    ))
}

/// A prover's standing: status, capacity, stake, earnings, faults.
#[utoipa::path(
    get,
    path = "/v1/provers/{id}",
    tag = "provers",
    params(("id" = String, Path, description = "The prover's account id")),
    responses((status = 200, body = t::Prover), (status = 400, body = t::ApiErrorBody), (status = 404, body = t::ApiErrorBody))
)]
async fn prover(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Prover> {
    let p: ProverId = parse_id("prover", &id)?;
    api.submitter
        .chain()
        .with_state(|s| s.prover(&p).map(|pr| views::prover(&p, pr)))
        .map(Json)
        .ok_or_else(|| ApiError::not_found("prover", &id))
}

/// What the prover (or validator) `id` has to do now, derived from the state alone so that a
/// node which restarts or reconnects learns its work again: attempts assigned to it that await
/// its accept (`accept`), attempts it is running (`run`), committed proofs it may reveal
/// (`reveal_proof`), proofs whose committee it sits on and has not voted for yet (`vote`), and
/// what job markets offer it: races it may join (`race`), reverse-Dutch jobs it may lock at the
/// listed price (`lock`), and lowest-bid jobs taking its sealed bid (`bid`) or awaiting its
/// reveal (`reveal`). At most 256 tasks.
#[utoipa::path(
    get,
    path = "/v1/provers/{id}/work",
    tag = "provers",
    params(("id" = String, Path, description = "The prover's (or validator's) account id")),
    responses((status = 200, body = t::Work), (status = 400, body = t::ApiErrorBody))
)]
async fn prover_work(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Work> {
    let me: AccountId = parse_id("prover", &id)?;
    Ok(Json(api.submitter.chain().with_state(|s| views::work(s, &me))))
}

/// A query string that does not parse, as a JSON error naming what is wrong.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::bad("bad_field", format!("the query string: {}", e.body_text()))
}

fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::bad("bad_limit", "limit must be at least 1")),
        Some(n) if n > PAGE_MAX => {
            Err(ApiError::bad("bad_limit", format!("limit {n} is above the maximum {PAGE_MAX}")))
        }
        Some(n) => Ok(n),
    }
}

/// The page of `limit` records after `after` of `records` (in id order), as views.
fn paged<'a, K: Ord + Copy + 'a, R: 'a, V>(
    records: impl Iterator<Item = (&'a K, &'a R)>,
    after: Option<K>,
    limit: usize,
    view: impl Fn(&K, &R) -> V,
    key: impl Fn(&V) -> String,
) -> t::Page<V> {
    let items = records
        .filter(|(id, _)| after.is_none_or(|a| **id > a))
        .take(limit)
        .map(|(id, r)| view(id, r))
        .collect();
    page_of(items, limit, key)
}

/// A page of items: a full page names its last item's key as the next cursor.
fn page_of<T>(items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> t::Page<T> {
    let next_cursor = (items.len() == limit).then(|| items.last().map(key)).flatten();
    t::Page { items, next_cursor }
}

/// Every registered prover, by id.
#[utoipa::path(
    get,
    path = "/v1/provers",
    tag = "provers",
    params(t::PageQuery),
    responses((status = 200, body = t::Page<t::Prover>), (status = 400, body = t::ApiErrorBody))
)]
async fn provers(
    State(api): State<Api>,
    page: Result<Query<t::PageQuery>, QueryRejection>,
) -> ApiResult<t::Page<t::Prover>> {
    let Query(page) = page.map_err(bad_query)?;
    let limit = page_limit(page.limit, PAGE_MAX)?;
    let after: Option<ProverId> =
        page.cursor.as_deref().map(|c| parse_id("cursor", c)).transpose()?;
    Ok(Json(
        api.submitter
            .chain()
            .with_state(|s| paged(s.provers(), after, limit, views::prover, |p| p.id.to_string())),
    ))
}

/// Jobs by id, filtered by requester, by a prover that made an attempt, or by state.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(t::JobQuery),
    responses((status = 200, body = t::Page<t::Job>), (status = 400, body = t::ApiErrorBody))
)]
async fn jobs(
    State(api): State<Api>,
    page: Result<Query<t::JobQuery>, QueryRejection>,
) -> ApiResult<t::Page<t::Job>> {
    let Query(page) = page.map_err(bad_query)?;
    let limit = page_limit(page.limit, PAGE_MAX)?;
    // A cursor is a live job's id, or `archive-<place>` once a newest-first listing reached
    // the archive.
    let (after, archive_from): (Option<JobId>, Option<u64>) = match page.cursor.as_deref() {
        None => (None, None),
        Some(c) => match c.strip_prefix(ARCHIVE_CURSOR) {
            Some(place) => {
                let place = place.parse().map_err(|_| {
                    ApiError::bad("bad_id", format!("cursor `{c}` is not archive-<number>"))
                })?;
                (None, Some(place))
            }
            None => (Some(parse_id("cursor", c)?), None),
        },
    };
    let requester: Option<AccountId> =
        page.requester.as_deref().map(|r| parse_id("requester", r)).transpose()?;
    let prover: Option<ProverId> =
        page.prover.as_deref().map(|r| parse_id("prover", r)).transpose()?;
    let state = match page.state.as_deref() {
        None => None,
        Some("Failed") => Some(None),
        Some(name) => match t::JobStatus::ALL.iter().find(|s| s.name() == name) {
            Some(s) => Some(Some(*s)),
            None => {
                let names: Vec<&str> = t::JobStatus::ALL.iter().map(|s| s.name()).collect();
                return Err(ApiError::bad(
                    "bad_state",
                    format!("state `{name}` is not Failed or one of {}", names.join(", ")),
                ));
            }
        },
    };
    let newest = match page.order.as_deref() {
        None | Some("id") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(ApiError::bad("bad_field", format!("order `{other}` is not id or newest")))
        }
    };
    let chain = api.submitter.chain();
    let matches = |j: &provernet_ledger::Job| {
        requester.is_none_or(|r| j.requester == r)
            && prover.is_none_or(|p| j.attempts.iter().any(|a| a.prover == p))
            && {
                let status = views::job_status(j.status);
                match state {
                    None => true,
                    Some(None) => status.is_failed(),
                    Some(Some(want)) => status == want,
                }
            }
    };
    if !newest {
        if archive_from.is_some() {
            return Err(ApiError::bad("bad_id", "an archive cursor needs order=newest"));
        }
        return Ok(Json(chain.with_state(|s| {
            let items: Vec<t::Job> = s
                .jobs()
                .filter(|(_, j)| matches(j))
                .filter(|(id, _)| after.is_none_or(|a| **id > a))
                .take(limit)
                .map(|(id, j)| views::job(id, j))
                .collect();
            page_of(items, limit, |j| j.id.to_string())
        })));
    }
    // Newest first: the live jobs (latest submitted first, ties by id; the cursor job's place
    // resumes the order, read from the archive if it settled since), then the archive, latest
    // archived first.
    let key = |id: &JobId, j: &provernet_ledger::Job| {
        (std::cmp::Reverse(j.submitted_at), std::cmp::Reverse(j.seq), *id)
    };
    let archived_cursor = match after {
        Some(a) if chain.with_state(|s| s.job(&a).is_none()) => {
            let archived = chain.store().archived_job(&a).map_err(storage_error)?;
            archived.map(|(place, j)| (key(&a, &j), place))
        }
        _ => None,
    };
    let mut items: Vec<t::Job> = match archive_from {
        Some(_) => Vec::new(),
        None => chain.with_state(|s| {
            let from = after
                .and_then(|a| s.job(&a).map(|j| key(&a, j)))
                .or(archived_cursor.map(|(k, _)| k));
            let mut found: Vec<_> = s
                .jobs()
                .filter(|(_, j)| matches(j))
                .map(|(id, j)| (key(id, j), id, j))
                .filter(|(k, _, _)| from.is_none_or(|f| *k > f))
                .collect();
            // The first `limit` in order, without sorting the rest (linear in the live jobs).
            if found.len() > limit {
                found.select_nth_unstable_by_key(limit, |f| f.0);
                found.truncate(limit);
            }
            found.sort_unstable_by_key(|f| f.0);
            found.into_iter().map(|(_, id, j)| views::job(id, j)).collect()
        }),
    };
    if items.len() == limit {
        return Ok(Json(page_of(items, limit, |j| j.id.to_string())));
    }
    // Archived jobs are final: a filter on a state they cannot be in ends the listing here.
    if let Some(Some(want)) = state {
        if !want.is_final() {
            return Ok(Json(t::Page { items, next_cursor: None }));
        }
    }
    // The archive, a bounded slice per request: a page may come back short with a cursor.
    // Without a filter the store holds (by requester, or not), the page is the next records.
    let scan = if state.is_none() && prover.is_none() { limit - items.len() } else { ARCHIVE_SCAN };
    let store = chain.store();
    // A cursor job archived since its page goes on in the archive from its place.
    let before = archive_from.or(archived_cursor.map(|(_, place)| place));
    let page =
        store.archive_page(Table::Job, requester.as_ref(), before, scan).map_err(storage_error)?;
    let mut next = page.next;
    for a in &page.records {
        let job: provernet_ledger::Job = a.decode().map_err(storage_error)?;
        if !matches(&job) {
            continue;
        }
        items.push(views::job(&JobId(a.key.id), &job));
        if items.len() == limit {
            next = (a.index > 0).then_some(a.index);
            break;
        }
    }
    Ok(Json(t::Page { items, next_cursor: next.map(|i| format!("{ARCHIVE_CURSOR}{i}")) }))
}

/// How many archived records one `/v1/jobs` request looks at, at most.
const ARCHIVE_SCAN: usize = 1000;
/// The prefix of a `/v1/jobs` cursor into the archive: the place to continue before.
const ARCHIVE_CURSOR: &str = "archive-";

fn storage_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
}

/// A job from the live state, else from the archive.
fn find_job(api: &Api, j: &JobId) -> Result<Option<t::Job>, ApiError> {
    let chain = api.submitter.chain();
    if let Some(v) = chain.with_state(|s| s.job(j).map(|job| views::job(j, job))) {
        return Ok(Some(v));
    }
    let archived = chain.store().archived_job(j).map_err(storage_error)?;
    Ok(archived.map(|(_, job)| views::job(j, &job)))
}

/// A workflow from the live state, else from the archive (a finished workflow names its
/// nodes' outcomes itself).
fn find_workflow(api: &Api, w: &WorkflowId) -> Result<Option<t::Workflow>, ApiError> {
    let chain = api.submitter.chain();
    if let Some(v) = chain.with_state(|s| s.workflow(w).map(|wf| views::workflow(s, w, wf))) {
        return Ok(Some(v));
    }
    let Some(wf) = chain.store().archived_workflow(w).map_err(storage_error)? else {
        return Ok(None);
    };
    Ok(Some(chain.with_state(|s| views::workflow(s, w, &wf))))
}

/// A job with its attempts, votes and money.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, body = t::Job), (status = 400, body = t::ApiErrorBody), (status = 404, body = t::ApiErrorBody))
)]
async fn job(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Job> {
    let j: JobId = parse_id("job", &id)?;
    find_job(&api, &j)?.map(Json).ok_or_else(|| ApiError::not_found("job", &id))
}

/// A workflow: its nodes, each with its job's id and status, and its escrow.
#[utoipa::path(
    get,
    path = "/v1/workflows/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The workflow id")),
    responses((status = 200, body = t::Workflow), (status = 400, body = t::ApiErrorBody), (status = 404, body = t::ApiErrorBody))
)]
async fn workflow(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<t::Workflow> {
    let w: WorkflowId = parse_id("workflow", &id)?;
    find_workflow(&api, &w)?.map(Json).ok_or_else(|| ApiError::not_found("workflow", &id))
}

fn block_view(api: &Api, h: u64) -> Result<Option<t::Block>, ApiError> {
    let chain = api.submitter.chain();
    if h == 0 {
        let g = chain.genesis_block();
        return Ok(Some(t::Block {
            height: Height(0),
            hash: provernet_types::BlockHash(commonware_digest(g)),
            time_ms: 0,
            state_root: g.header().root,
            randomness: None,
            genesis: true,
            txs: Vec::new(),
            transactions: Vec::new(),
        }));
    }
    let record = chain.with_store(|s| s.block(Height(h))).map_err(storage_error)?;
    Ok(record.map(|b| views::block(&b, |tx| chain.receipt(tx).map(|(_, r)| r))))
}

/// A block and its transactions (with their outcome while this validator remembers it).
#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    tag = "chain",
    params(("height" = String, Path, description = "A height, or `latest`")),
    responses((status = 200, body = t::Block), (status = 400, body = t::ApiErrorBody), (status = 404, body = t::ApiErrorBody))
)]
async fn block(State(api): State<Api>, Path(height): Path<String>) -> ApiResult<t::Block> {
    let h = if height == "latest" {
        api.submitter.chain().tip().height
    } else {
        height.parse::<u64>().map_err(|_| {
            ApiError::bad("bad_height", format!("height `{height}` is not a number or `latest`"))
        })?
    };
    block_view(&api, h)?.map(Json).ok_or_else(|| ApiError::not_found("block at height", &height))
}

/// Blocks, newest first.
#[utoipa::path(
    get,
    path = "/v1/blocks",
    tag = "chain",
    params(t::BlockQuery),
    responses((status = 200, body = t::Page<t::Block>), (status = 400, body = t::ApiErrorBody))
)]
async fn blocks(
    State(api): State<Api>,
    q: Result<Query<t::BlockQuery>, QueryRejection>,
) -> ApiResult<t::Page<t::Block>> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = page_limit(q.limit, 20)?;
    let tip = api.submitter.chain().tip().height;
    let top = q.before.map_or(tip, |b| b.saturating_sub(1).min(tip));
    let mut items = Vec::new();
    let mut h = top;
    while items.len() < limit {
        if let Some(b) = block_view(&api, h)? {
            items.push(b);
        }
        if h == 0 {
            break;
        }
        h -= 1;
    }
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|b| b.height.0))
        .flatten()
        .filter(|h| *h > 0)
        .map(|h| h.to_string());
    Ok(Json(t::Page { items, next_cursor }))
}

/// What the chain charges for a job of these resources (per prover and in all), and the
/// transaction fee.
#[utoipa::path(
    get,
    path = "/v1/quote",
    tag = "jobs",
    params(t::QuoteQuery),
    responses((status = 200, body = t::Quote), (status = 400, body = t::ApiErrorBody))
)]
async fn quote(
    State(api): State<Api>,
    q: Result<Query<t::QuoteQuery>, QueryRejection>,
) -> ApiResult<t::Quote> {
    let Query(q) = q.map_err(bad_query)?;
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
    let resources = Resources { cores, memory, gpus };
    resources.check_bounds().map_err(|e| field("resources", e.to_string()))?;
    let (quote, tx_fee) = api.submitter.chain().with_state(|s| {
        (provernet_ledger::job_quote(s.params(), &resources, time, redundancy), s.params().tx_fee)
    });
    let (per, total) = quote.map_err(|e| {
        let mut err = ApiError::bad(e.code(), e.to_string());
        err.fields = e.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        err
    })?;
    Ok(Json(t::Quote {
        per_prover_micro_credits: per,
        total_micro_credits: total,
        redundancy,
        time_limit_s: time,
        tx_fee_micro_credits: tx_fee,
    }))
}

fn sse_json(name: &'static str, value: &impl serde::Serialize) -> Result<SseEvent, Infallible> {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Ok(SseEvent::default().event(name).data(data))
}

/// Which events a stream carries.
enum Follow {
    /// Every block, whole.
    Blocks,
    /// One job's events.
    Job(JobId),
    /// A workflow's own events and those of its nodes' jobs.
    Workflow(WorkflowId, Vec<JobId>),
}

fn sse_stream(
    blocks: impl Stream<Item = Arc<Finalized>> + Send + 'static,
    follow: Follow,
    done: impl Fn() -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    blocks.take_while(move |_| std::future::ready(!done())).filter_map(move |b| {
        let mine = |keep: &dyn Fn(&t::Event) -> bool| -> Vec<t::Event> {
            b.events.iter().map(views::event).filter(|e| keep(e)).collect()
        };
        let event = match &follow {
            Follow::Blocks => Some(sse_json("block", &views::finalized(&b))),
            Follow::Job(id) => {
                let events = mine(&|e| e.job() == Some(*id));
                (!events.is_empty())
                    .then(|| sse_json("job_events", &t::JobEvents { height: b.height, events }))
            }
            Follow::Workflow(id, jobs) => {
                let events = mine(&|e| {
                    e.workflow() == Some(*id) || e.job().is_some_and(|j| jobs.contains(&j))
                });
                (!events.is_empty()).then(|| {
                    sse_json("workflow_events", &t::WorkflowEvents { height: b.height, events })
                })
            }
        };
        std::future::ready(event)
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

/// A workflow's events: first an event `workflow` with the whole [`t::Workflow`], then an
/// event `workflow_events` ([`t::WorkflowEvents`]) for each block with events of the workflow
/// or of its nodes' jobs, ending after the block in which every node became final.
#[utoipa::path(
    get,
    path = "/v1/workflows/{id}/events",
    tag = "events",
    params(("id" = String, Path, description = "The workflow id")),
    responses(
        (status = 200, description = "`text/event-stream`: `workflow`, then `workflow_events`", content_type = "text/event-stream", body = t::WorkflowEvents),
        (status = 404, body = t::ApiErrorBody),
        (status = 503, description = "Too many subscribers", body = t::ApiErrorBody),
    )
)]
async fn workflow_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let w: WorkflowId = parse_id("workflow", &id)?;
    let Some(view) = find_workflow(&api, &w)? else {
        return Err(ApiError::not_found("workflow", &id));
    };
    let jobs: Vec<JobId> = view.nodes.iter().map(|n| n.job).collect();
    let first = sse_json("workflow", &view);
    let finished =
        move |s: &provernet_ledger::State| s.workflow(&w).is_none_or(|x| x.is_finished());
    follow_until(&api, peer, first, view.is_final, Follow::Workflow(w, jobs), finished)
}

/// A stream of `first`, then the blocks' events that `follow` picks, ending after the block
/// after which `finished` holds on the state (at once if `already_final`).
fn follow_until(
    api: &Api,
    peer: Option<axum::Extension<Peer>>,
    first: Result<SseEvent, Infallible>,
    already_final: bool,
    follow: Follow,
    finished: impl Fn(&provernet_ledger::State) -> bool + Send + Sync + 'static,
) -> Result<Response, ApiError> {
    let chain = api.submitter.chain().clone();
    let pass = subscriber(api, peer.as_ref())?;
    let rx = chain.subscribe();
    let first = futures::stream::once(std::future::ready(first));
    let rest = if already_final {
        futures::stream::empty().boxed()
    } else {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = done.clone();
        sse_stream(rx, follow, move || seen.load(Ordering::Relaxed))
            .inspect(move |_| done.store(chain.with_state(&finished), Ordering::Relaxed))
            .boxed()
    };
    Ok(Sse::new(holding(first.chain(rest), pass)).keep_alive(KeepAlive::default()).into_response())
}

/// Every finalized block from now on, as server-sent events named `block` whose data is a
/// [`t::FinalizedBlock`].
#[utoipa::path(
    get,
    path = "/v1/events/blocks",
    tag = "events",
    responses(
        (status = 200, description = "`text/event-stream`: events `block`", content_type = "text/event-stream", body = t::FinalizedBlock),
        (status = 503, description = "Too many subscribers", body = t::ApiErrorBody),
    )
)]
async fn block_events(
    State(api): State<Api>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let pass = subscriber(&api, peer.as_ref())?;
    let rx = api.submitter.chain().subscribe();
    Ok(Sse::new(holding(sse_stream(rx, Follow::Blocks, || false), pass))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A job's events: first an event `job` with the whole [`t::Job`], then an event
/// `job_events` ([`t::JobEvents`]) for each block that touched it, ending after the block in
/// which it became final.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "events",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "`text/event-stream`: `job`, then `job_events`", content_type = "text/event-stream", body = t::JobEvents),
        (status = 404, body = t::ApiErrorBody),
        (status = 503, description = "Too many subscribers", body = t::ApiErrorBody),
    )
)]
async fn job_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let j: JobId = parse_id("job", &id)?;
    let Some(view) = find_job(&api, &j)? else {
        return Err(ApiError::not_found("job", &id));
    };
    let first = sse_json("job", &view);
    // Stop after the block in which the job became final has been sent.
    let finished = move |s: &provernet_ledger::State| s.job(&j).is_none_or(|x| x.status.is_final());
    follow_until(&api, peer, first, view.is_final, Follow::Job(j), finished)
}
