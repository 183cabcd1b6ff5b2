//! Every endpoint through the in-process router, success and error paths, against a real chain
//! (ledger, mempool, redb store) whose blocks the test finalizes itself.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use provernet_api::{openapi, serve_router, Api, ServeLimits, PAGE_MAX};
use provernet_api_types as t;
use provernet_blobs::{Backend, BlobStore, Limits};
use provernet_consensus::{Chain, ChainConfig, MempoolConfig, Submitter};
use provernet_ledger::{ChainParams, Genesis};
use provernet_types::crypto::BLOB_UPLOAD_DOMAIN;
use provernet_types::tx::blob_upload_message;
use provernet_types::{
    AccountId, BoundedVec, Encode, Keypair, MicroCredits, Nonce, Transaction, TxBody,
};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    chain: Chain,
    router: Router,
}

fn user() -> Keypair {
    Keypair::from_seed([0x11; 32])
}

fn fixture(per_account: usize) -> Fixture {
    fixture_limited(per_account, ServeLimits::default())
}

fn fixture_limited(per_account: usize, limits: ServeLimits) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = Genesis {
        params: ChainParams::devnet(vec![AccountId([0x77; 32])]),
        accounts: BoundedVec::try_from_vec(vec![(user().account(), MicroCredits(5_000_000))])
            .expect("one account"),
        programs: BoundedVec::default(),
    };
    let cfg = ChainConfig {
        mempool: MempoolConfig { per_account, ..MempoolConfig::default() },
        ..ChainConfig::default()
    };
    let chain = Chain::open(&dir.path().join("ledger.redb"), &genesis, cfg).expect("chain");
    let blobs = BlobStore::open(
        &Backend::Local { dir: dir.path().join("blobs") },
        Limits { blob_max: 1024, account_quota: 1500 },
    )
    .expect("blob store");
    let router =
        Api::new(Submitter::detached(chain.clone())).with_blobs(blobs).with_limits(limits).router();
    Fixture { _dir: dir, chain, router }
}

/// Builds and finalizes the next block from the mempool, as consensus would.
fn finalize_next(chain: &Chain) {
    let tip = chain.tip();
    let seed = (tip.height > 0).then_some([1u8; 48]);
    let (block, digest) =
        chain.build(tip.digest, tip.height, tip.time + 1000, seed).expect("build");
    assert!(chain.finalize(&block, digest).expect("finalize"));
}

/// An account the chain has never funded, and its transfer (the ledger refuses it).
fn from_stranger() -> (Keypair, Vec<u8>) {
    let stranger = Keypair::from_seed([0x22; 32]);
    let tx = Transaction {
        signer: stranger.account(),
        nonce: Nonce(0),
        body: TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(1) },
    }
    .sign(&stranger, "provernet-devnet")
    .encode();
    (stranger, tx)
}

fn transfer(nonce: u64) -> Vec<u8> {
    Transaction {
        signer: user().account(),
        nonce: Nonce(nonce),
        body: TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(10) },
    }
    .sign(&user(), "provernet-devnet")
    .encode()
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    call(router, Request::get(path).body(Body::empty()).expect("request")).await
}

async fn post(router: &Router, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .expect("request");
    call(router, req).await
}

fn assert_error(got: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["code"], code, "{:?}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{:?}", got.1);
}

#[tokio::test]
async fn health_status_metrics_and_unknown_routes() {
    let f = fixture(64);
    let (s, v) = get(&f.router, "/healthz").await;
    assert_eq!(
        (s, v["ok"].clone(), v["height"].clone()),
        (StatusCode::OK, Value::Bool(true), 0.into())
    );
    let (s, v) = get(&f.router, "/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["chain_id"], "provernet-devnet");
    let enabled = v["mechanisms"]["enabled"].as_array().map(Vec::len);
    assert_eq!(enabled, Some(6), "the devnet enables every mechanism: {v}");
    assert!(v["mechanisms"]["collateral_bps"].as_u64().is_some(), "{v}");
    let (s, v) = get(&f.router, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().expect("metrics are text").to_owned();
    assert!(text.contains("provernet_height 0"), "{text}");
    for line in [
        "provernet_jobs{status=\"Pending\"} 0",
        "provernet_provers{status=\"Active\"} 0",
        "provernet_credits_micro{part=\"burned\"} 0",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    // The operators' dashboard graphs only metrics this API exports.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/grafana/provernet-dashboard.json"),
        )
        .expect("the dashboard is in the repository"),
    )
    .expect("the dashboard is JSON");
    let mut used = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for (i, _) in expr.match_indices("provernet_") {
                let name: String =
                    expr[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "{name} in {expr} is not exported"
                );
                used += 1;
            }
        }
    }
    assert!(used >= 10, "{used}");
    assert_error(get(&f.router, "/v2/nothing").await, StatusCode::NOT_FOUND, "no_route");
}

#[tokio::test]
async fn a_transaction_is_checked_by_the_ledgers_rules_without_being_admitted() {
    let f = fixture(64);
    let (s, v) = post(&f.router, "/v1/txs/check", transfer(0)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let check: t::TxCheck = serde_json::from_value(v.clone()).expect("a TxCheck");
    assert!(check.tx_fee_micro_credits.0 > 0, "a transfer pays the fee: {v}");
    assert!(check.missing_blobs.is_empty());
    // Nothing was admitted: the hash is unknown, and the same nonce can be submitted.
    assert_error(
        get(&f.router, &format!("/v1/txs/{}", check.hash)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(post(&f.router, "/v1/txs", transfer(0)).await.0, StatusCode::ACCEPTED);
    // The ledger's own code, with its values.
    let (_, tx) = from_stranger();
    assert_error(
        post(&f.router, "/v1/txs/check", tx).await,
        StatusCode::BAD_REQUEST,
        "unknown_account",
    );
    assert_error(
        post(&f.router, "/v1/txs/check", vec![1, 2, 3]).await,
        StatusCode::BAD_REQUEST,
        "malformed_transaction",
    );
    assert_error(
        post(&f.router, "/v1/txs/check", vec![]).await,
        StatusCode::BAD_REQUEST,
        "empty_body",
    );
}

#[tokio::test]
async fn transactions_are_admitted_deduplicated_and_applied() {
    let f = fixture(64);
    let (s, v) = post(&f.router, "/v1/txs", transfer(0)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["mempool"], "added");
    let hash = v["hash"].as_str().expect("hash").to_owned();
    let (s, v) = post(&f.router, "/v1/txs", transfer(0)).await;
    assert_eq!((s, v["mempool"].as_str()), (StatusCode::ACCEPTED, Some("known")));
    let (_, v) = get(&f.router, &format!("/v1/txs/{hash}")).await;
    assert_eq!(v["status"], "pending");

    finalize_next(&f.chain);
    let (s, v) = get(&f.router, &format!("/v1/txs/{hash}")).await;
    assert_eq!(
        (s, v["status"].as_str(), v["height"].as_u64()),
        (StatusCode::OK, Some("applied"), Some(1))
    );
    let (_, acc) = get(&f.router, &format!("/v1/accounts/{}", user().account())).await;
    assert_eq!(acc["nonce"], 1);
    // The transfer's 10 µc and the chain's transaction fee.
    let fee = ChainParams::devnet(Vec::new()).tx_fee.0;
    assert_eq!(acc["balance_micro_credits"], 5_000_000 - 10 - fee);
}

#[tokio::test]
async fn bad_transactions_get_clear_errors_and_change_nothing() {
    let f = fixture(3);
    assert_error(post(&f.router, "/v1/txs", vec![]).await, StatusCode::BAD_REQUEST, "empty_body");
    assert_error(
        post(&f.router, "/v1/txs", vec![1, 2, 3]).await,
        StatusCode::BAD_REQUEST,
        "malformed_transaction",
    );
    let mut forged = transfer(0);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_error(
        post(&f.router, "/v1/txs", forged).await,
        StatusCode::BAD_REQUEST,
        "bad_signature",
    );
    assert_error(
        post(&f.router, "/v1/txs", vec![0u8; 200 * 1024]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    // An unfunded signer is refused by the ledger's own rules.
    let (stranger, tx) = from_stranger();
    // Refused with the ledger's own code and the values it names.
    let refused = post(&f.router, "/v1/txs", tx).await;
    assert_eq!(refused.1["fields"]["account"], stranger.account().to_string(), "{:?}", refused.1);
    assert_error(refused, StatusCode::BAD_REQUEST, "unknown_account");
    // A flood from one account stops at its pending limit.
    for n in 0..3 {
        assert_eq!(post(&f.router, "/v1/txs", transfer(n)).await.0, StatusCode::ACCEPTED);
    }
    assert_error(
        post(&f.router, "/v1/txs", transfer(3)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "account_rate_limited",
    );
    assert_error(
        post(&f.router, "/v1/txs", transfer(5000)).await,
        StatusCode::BAD_REQUEST,
        "nonce_too_far",
    );
    finalize_next(&f.chain);
    assert_error(
        post(&f.router, "/v1/txs", transfer(1)).await,
        StatusCode::BAD_REQUEST,
        "stale_nonce",
    );
    // The node is still up and its state intact.
    let (_, acc) = get(&f.router, &format!("/v1/accounts/{}", user().account())).await;
    assert_eq!(acc["nonce"], 3);
}

#[tokio::test]
async fn state_queries_and_their_errors() {
    let f = fixture(64);
    let (s, v) = get(&f.router, &format!("/v1/accounts/{}", user().account())).await;
    assert_eq!((s, v["balance_micro_credits"].as_u64()), (StatusCode::OK, Some(5_000_000)));
    assert_error(get(&f.router, "/v1/accounts/xyz").await, StatusCode::BAD_REQUEST, "bad_id");
    assert_error(
        get(&f.router, &format!("/v1/accounts/{}", "ab".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&f.router, "/v1/programs/no-such-program").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&f.router, &format!("/v1/provers/{}", "cd".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&f.router, &format!("/v1/jobs/{}", "ef".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (s, v) = get(&f.router, "/v1/provers").await;
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (s, v) =
        get(&f.router, &format!("/v1/jobs?requester={}&state=Verified&limit=10", user().account()))
            .await;
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    assert_error(get(&f.router, "/v1/jobs?limit=0").await, StatusCode::BAD_REQUEST, "bad_limit");
    assert_error(
        get(&f.router, &format!("/v1/jobs?limit={}", PAGE_MAX + 1)).await,
        StatusCode::BAD_REQUEST,
        "bad_limit",
    );
    assert_error(get(&f.router, "/v1/jobs?state=Done").await, StatusCode::BAD_REQUEST, "bad_state");
    assert_error(get(&f.router, "/v1/jobs?cursor=zz").await, StatusCode::BAD_REQUEST, "bad_id");
}

#[tokio::test]
async fn blocks_and_quotes() {
    let f = fixture(64);
    finalize_next(&f.chain);
    let (s, v) = get(&f.router, "/v1/blocks/latest").await;
    assert_eq!((s, v["height"].as_u64()), (StatusCode::OK, Some(1)));
    let (s, v) = get(&f.router, "/v1/blocks/0").await;
    assert_eq!((s, v["genesis"].as_bool()), (StatusCode::OK, Some(true)));
    assert_error(get(&f.router, "/v1/blocks/first").await, StatusCode::BAD_REQUEST, "bad_height");
    assert_error(get(&f.router, "/v1/blocks/99").await, StatusCode::NOT_FOUND, "not_found");
    // Seed 001's example: 32 cores, 190 GB, 1 GPU for 5 minutes costs 0.035 credits.
    let (s, v) = get(&f.router, "/v1/quote?cores=32&memory=190GB&gpus=1&time=5m").await;
    assert_eq!((s, v["total_micro_credits"].as_u64()), (StatusCode::OK, Some(35_000)));
    assert_error(
        get(&f.router, "/v1/quote?cores=32&memory=64&time=5m").await,
        StatusCode::BAD_REQUEST,
        "bad_field",
    );
    assert_error(
        get(&f.router, "/v1/quote?cores=1&memory=1GiB&time=5m&redundancy=9").await,
        StatusCode::BAD_REQUEST,
        // The ledger's own rule and code, as a job with this redundancy would get.
        "bad_redundancy",
    );
}

#[tokio::test]
async fn block_events_stream_finalized_blocks() {
    let f = fixture(64);
    let resp = f
        .router
        .clone()
        .oneshot(Request::get("/v1/events/blocks").body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    finalize_next(&f.chain);
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("no error");
    let text = String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf-8");
    assert!(text.starts_with("event: block\ndata: {"), "{text}");
    assert!(text.contains("\"height\":1"), "{text}");
}

/// Fills a documented path's parameters with values the router will route.
fn probe_path(p: &str) -> String {
    p.replace("{id}", &"00".repeat(32))
        .replace("{hash}", &"00".repeat(32))
        .replace("{height}", "latest")
        .replace("{piece}", "0")
}

async fn request(router: &Router, method: &str, path: &str) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
    call(router, req).await
}

#[tokio::test]
async fn the_openapi_document_is_generated_and_matches_the_routes_in_both_directions() {
    let f = fixture(64);
    let (s, doc) = get(&f.router, "/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc, serde_json::to_value(openapi()).expect("serializes"), "served as generated");
    let paths = doc["paths"].as_object().expect("paths");
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    // The documented surface: a route is added only through a documented handler, so a change
    // here is a change of the API, and shows in review.
    assert_eq!(
        names,
        [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/v1/accounts/{id}",
            "/v1/blobs/{hash}",
            "/v1/blobs/{hash}/outline",
            "/v1/blobs/{hash}/uploads",
            "/v1/blobs/{hash}/uploads/complete",
            "/v1/blobs/{hash}/uploads/{piece}",
            "/v1/blocks",
            "/v1/blocks/{height}",
            "/v1/events/blocks",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/events",
            "/v1/programs",
            "/v1/programs/{id}",
            "/v1/provers",
            "/v1/provers/{id}",
            "/v1/provers/{id}/work",
            "/v1/quote",
            "/v1/status",
            "/v1/supply",
            "/v1/txs",
            "/v1/txs/check",
            "/v1/txs/{hash}",
            "/v1/workflows/{id}",
            "/v1/workflows/{id}/events",
        ]
    );
    const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
    for (path, item) in paths {
        let probe = probe_path(path);
        for method in METHODS {
            let documented = item.get(method).is_some();
            if documented && (probe.contains("events") || method != "get") {
                // Streams and bodies are exercised by their own tests; they are routed.
                continue;
            }
            let (status, v) = request(&f.router, &method.to_uppercase(), &probe).await;
            if documented {
                // Documented → served.
                assert_ne!(v["code"], "no_route", "{method} {path} is routed");
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                // Every documented answer is described, with its schema.
                let answers = item[method]["responses"].as_object().expect("responses");
                assert!(
                    answers.contains_key(status.as_str()),
                    "{method} {path} answered {status}, which the document does not list"
                );
                if !status.is_success() {
                    let body = serde_json::from_value::<t::ApiErrorBody>(v.clone());
                    assert!(body.is_ok(), "{method} {path}: an error is {{code, message}}: {v}");
                }
            } else {
                // Served → documented: no method the document leaves out is served.
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served");
            }
        }
    }
    for stray in ["/v1", "/v1/jobs/x/y", "/v1/nothing", "/v1/provers/00/work/x", "/api/v1/status"] {
        assert_error(get(&f.router, stray).await, StatusCode::NOT_FOUND, "no_route");
    }
    // Every error code the API uses is one the contract knows.
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for code in ["unknown_account", "no_route", "bad_id", "blob_unavailable", "mempool_full"] {
        assert!(codes.as_array().expect("codes").iter().any(|c| c == code), "{code}");
    }
}

/// What a GET answered, read as the contract's type and written back: equal to the original,
/// so the type carries every field the API sends, with the same names and values.
async fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    router: &Router,
    path: &str,
) {
    let (status, v) = get(router, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{path}: {e}: {v}"));
    assert_eq!(serde_json::to_value(&typed).expect("serializes"), v, "{path}");
}

#[tokio::test]
async fn every_answer_round_trips_through_the_typed_contract() {
    let (_dir, chain, router, job) = fixture_with_job().await;
    finalize_next(&chain);
    finalize_next(&chain);
    let (_, v) = get(&router, &format!("/v1/jobs/{job}")).await;
    let prover = v["attempts"][0]["prover"].as_str().expect("assigned").to_owned();
    let requester = v["requester"].as_str().expect("requester").to_owned();
    round_trip::<t::Health>(&router, "/healthz").await;
    round_trip::<t::Status>(&router, "/v1/status").await;
    round_trip::<t::Supply>(&router, "/v1/supply").await;
    round_trip::<t::Account>(&router, &format!("/v1/accounts/{requester}")).await;
    round_trip::<t::Job>(&router, &format!("/v1/jobs/{job}")).await;
    round_trip::<t::Page<t::Job>>(&router, &format!("/v1/jobs?prover={prover}")).await;
    round_trip::<t::Page<t::Job>>(&router, "/v1/jobs?state=Failed").await;
    round_trip::<t::Prover>(&router, &format!("/v1/provers/{prover}")).await;
    round_trip::<t::Page<t::Prover>>(&router, "/v1/provers").await;
    round_trip::<t::Work>(&router, &format!("/v1/provers/{prover}/work")).await;
    round_trip::<t::Program>(&router, "/v1/programs/hash-chain").await;
    round_trip::<t::Page<t::Program>>(&router, "/v1/programs").await;
    round_trip::<t::Block>(&router, "/v1/blocks/latest").await;
    round_trip::<t::Block>(&router, "/v1/blocks/0").await;
    round_trip::<t::Page<t::Block>>(&router, "/v1/blocks?limit=3").await;
    round_trip::<t::Quote>(&router, "/v1/quote?cores=1&memory=1GiB&time=60s&redundancy=2").await;
    // A job's prover filter finds it, and only it; the latest blocks come newest first.
    let (_, page) = get(&router, &format!("/v1/jobs?prover={prover}")).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let (_, page) = get(&router, "/v1/blocks?limit=2").await;
    let heights: Vec<u64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|b| b["height"].as_u64())
        .collect();
    assert_eq!(heights.len(), 2);
    assert!(heights[0] > heights[1], "{heights:?}");
    let next = page["next_cursor"].as_str().expect("more blocks");
    let (_, older) = get(&router, &format!("/v1/blocks?before={next}&limit=100")).await;
    assert_eq!(older["items"][0]["height"].as_u64(), Some(heights[1] - 1));
    assert_eq!(older["next_cursor"], Value::Null, "down to genesis in one page");
    // A block's transactions say what they were and how they ended.
    let (_, b) = get(&router, "/v1/blocks/2").await;
    let tx = &b["transactions"][0];
    assert_eq!((tx["kind"].as_str(), tx["status"].as_str()), (Some("submit_job"), Some("applied")));
    assert_error(get(&router, "/v1/blocks?limit=0").await, StatusCode::BAD_REQUEST, "bad_limit");
    round_trip::<t::Page<t::Job>>(&router, "/v1/jobs?order=newest").await;
    assert_error(get(&router, "/v1/jobs?order=oldest").await, StatusCode::BAD_REQUEST, "bad_field");
    assert_error(get(&router, "/v1/jobs?prover=xyz").await, StatusCode::BAD_REQUEST, "bad_id");
}

fn upload(key: &Keypair, data: &[u8], declared_size: u64) -> Request<Body> {
    let blob = provernet_types::tx::blob_ref(data);
    let declared =
        provernet_types::BlobRef { hash: blob.hash, size: provernet_types::Bytes(declared_size) };
    let sig = key.sign(BLOB_UPLOAD_DOMAIN, "provernet-devnet", &blob_upload_message(&declared));
    Request::put(format!("/v1/blobs/{}", blob.hash))
        .header("x-provernet-account", key.account().to_string())
        .header("x-provernet-size", declared_size.to_string())
        .header("x-provernet-signature", hex::encode(sig.0))
        .body(Body::from(data.to_vec()))
        .expect("request")
}

#[tokio::test]
async fn blobs_upload_download_and_refuse_bad_uploads() {
    let f = fixture(64);
    let data = b"the public statement of a job".to_vec();
    let hash = provernet_types::tx::blob_ref(&data).hash;
    let (s, v) = call(&f.router, upload(&user(), &data, data.len() as u64)).await;
    assert_eq!((s, v["stored"].as_str()), (StatusCode::CREATED, Some("new")), "{v}");
    let (s, v) = call(&f.router, upload(&user(), &data, data.len() as u64)).await;
    assert_eq!((s, v["stored"].as_str()), (StatusCode::CREATED, Some("existing")));
    let resp = f
        .router
        .clone()
        .oneshot(Request::get(format!("/v1/blobs/{hash}")).body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().collect().await.expect("body").to_bytes().to_vec(), data);
    assert_error(
        get(&f.router, &format!("/v1/blobs/{}", "ab".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Declared size that does not match the bytes.
    let other = b"other bytes".to_vec();
    assert_error(
        call(&f.router, upload(&user(), &other, 99)).await,
        StatusCode::BAD_REQUEST,
        "blob_size_mismatch",
    );
    // Bytes that do not hash to the path's hash.
    let mut req = upload(&user(), &other, other.len() as u64);
    *req.body_mut() = Body::from(b"tampered!!!".to_vec());
    assert_error(call(&f.router, req).await, StatusCode::BAD_REQUEST, "blob_hash_mismatch");
    // Missing or forged authorisation.
    let mut req = upload(&user(), &other, other.len() as u64);
    req.headers_mut().remove("x-provernet-signature");
    assert_error(call(&f.router, req).await, StatusCode::BAD_REQUEST, "missing_header");
    let mut req = upload(&user(), &other, other.len() as u64);
    req.headers_mut().insert("x-provernet-size", "12".parse().expect("header"));
    assert_error(call(&f.router, req).await, StatusCode::UNAUTHORIZED, "bad_signature");
    // An account the chain does not know cannot spend a quota.
    let stranger = Keypair::from_seed([0x33; 32]);
    assert_error(
        call(&f.router, upload(&stranger, &other, other.len() as u64)).await,
        StatusCode::FORBIDDEN,
        "unknown_account",
    );
    // Per-blob limit (1 KiB here) and per-account quota (1,500 bytes here).
    let big = vec![1u8; 1025];
    assert_error(
        call(&f.router, upload(&user(), &big, 1025)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "blob_too_large",
    );
    let a = vec![2u8; 1000];
    assert_eq!(call(&f.router, upload(&user(), &a, 1000)).await.0, StatusCode::CREATED);
    let b = vec![3u8; 1000];
    assert_error(
        call(&f.router, upload(&user(), &b, 1000)).await,
        StatusCode::FORBIDDEN,
        "blob_quota_exceeded",
    );
}

/// The signed headers of an upload (in one request or in pieces) of `blob` by `key`.
fn signed(
    req: axum::http::request::Builder,
    key: &Keypair,
    blob: &provernet_types::BlobRef,
) -> axum::http::request::Builder {
    let sig = key.sign(BLOB_UPLOAD_DOMAIN, "provernet-devnet", &blob_upload_message(blob));
    req.header("x-provernet-account", key.account().to_string())
        .header("x-provernet-size", blob.size.0.to_string())
        .header("x-provernet-signature", hex::encode(sig.0))
}

#[tokio::test]
async fn a_blob_above_one_request_is_uploaded_in_pieces_resumed_and_downloaded_from_any_byte() {
    use provernet_blobs::pieces::{self, PIECE_BYTES};
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = Genesis {
        params: ChainParams::devnet(vec![AccountId([0x77; 32])]),
        accounts: BoundedVec::try_from_vec(vec![(user().account(), MicroCredits(5_000_000))])
            .expect("one account"),
        programs: BoundedVec::default(),
    };
    let chain = Chain::open(&dir.path().join("ledger.redb"), &genesis, ChainConfig::default())
        .expect("chain");
    let blobs = BlobStore::open(
        &Backend::Local { dir: dir.path().join("blobs") },
        Limits { blob_max: 64 << 20, account_quota: 64 << 20 },
    )
    .expect("blob store");
    // One request carries at most two pieces here.
    let limits = ServeLimits { upload_request_bytes: 2 * PIECE_BYTES, ..ServeLimits::default() };
    let router =
        Api::new(Submitter::detached(chain)).with_blobs(blobs).with_limits(limits).router();
    let data: Vec<u8> = (0..5 * PIECE_BYTES as usize + 77).map(|i| (i * 7 % 253) as u8).collect();
    let blob = provernet_types::tx::blob_ref(&data);
    let base = format!("/v1/blobs/{}", blob.hash);

    // The status says how this validator takes blobs.
    let (_, st) = get(&router, "/v1/status").await;
    assert_eq!(st["blobs"]["request_bytes_max"], 2 * PIECE_BYTES, "{st}");
    // Whole, it is above one request.
    let (s, v) = call(&router, upload(&user(), &data, data.len() as u64)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("blob_request_too_large")),
        "{v}"
    );
    // An outline that does not fold to the hash is refused.
    let last = pieces::piece_range(data.len() as u64, 5).expect("piece 5");
    let tail = data[last.start as usize..].to_vec();
    let mut outline = [pieces::outline(&data).concat(), tail.clone()].concat();
    outline[40] ^= 1;
    let req = signed(Request::post(format!("{base}/uploads")), &user(), &blob)
        .body(Body::from(outline))
        .expect("request");
    assert_error(call(&router, req).await, StatusCode::BAD_REQUEST, "blob_outline_mismatch");
    let begin = || {
        signed(Request::post(format!("{base}/uploads")), &user(), &blob)
            .body(Body::from([pieces::outline(&data).concat(), tail.clone()].concat()))
            .expect("request")
    };
    let (s, v) = call(&router, begin()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let state: t::UploadState = serde_json::from_value(v).expect("an upload state");
    // The last piece came with the outline.
    assert_eq!((state.pieces, state.missing.clone(), state.stored), (6, vec![[0, 5]], false));
    let pieces_of = |first: u64, count: u64| {
        let start = (first * PIECE_BYTES) as usize;
        let end = (((first + count) * PIECE_BYTES) as usize).min(data.len());
        Request::put(format!("{base}/uploads/{first}"))
            .body(Body::from(data[start..end].to_vec()))
            .expect("request")
    };
    // Two pieces, then the client "dies".
    let (s, v) = call(&router, pieces_of(2, 2)).await;
    assert_eq!((s, v["pieces"].as_u64()), (StatusCode::CREATED, Some(2)), "{v}");
    // A forged piece is refused, naming it.
    let mut bad = pieces_of(0, 1);
    *bad.body_mut() = Body::from(vec![0u8; PIECE_BYTES as usize]);
    let (s, v) = call(&router, bad).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("blob_piece_mismatch")));
    assert!(v["message"].as_str().is_some_and(|m| m.contains("piece 0")), "{v}");
    // More than one request's worth is refused.
    let (s, v) = call(&router, pieces_of(0, 3)).await;
    assert_eq!(v["code"].as_str(), Some("blob_request_too_large"), "{s} {v}");
    // Completing early names what is missing.
    let complete = || {
        signed(Request::post(format!("{base}/uploads/complete")), &user(), &blob)
            .body(Body::empty())
            .expect("request")
    };
    assert_error(
        call(&router, complete()).await,
        StatusCode::BAD_REQUEST,
        "blob_upload_incomplete",
    );
    // Resuming: reopening says what is missing, and only that is sent.
    let (_, v) = call(&router, begin()).await;
    let state: t::UploadState = serde_json::from_value(v).expect("an upload state");
    assert_eq!(state.missing, vec![[0, 2], [4, 5]]);
    assert_eq!(state.received_bytes, 2 * PIECE_BYTES + 77);
    assert_eq!(call(&router, pieces_of(0, 2)).await.0, StatusCode::CREATED);
    assert_eq!(call(&router, pieces_of(4, 1)).await.0, StatusCode::CREATED);
    let (s, v) = call(&router, complete()).await;
    assert_eq!((s, v["stored"].as_str()), (StatusCode::CREATED, Some("new")), "{v}");
    let (_, v) = get(&router, &format!("{base}/uploads")).await;
    assert_eq!(v["stored"], true, "{v}");

    // Downloaded whole, or from any byte on, with the outline to check each piece.
    let resp = router
        .clone()
        .oneshot(Request::get(&base).body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    assert_eq!(resp.into_body().collect().await.expect("body").to_bytes().to_vec(), data);
    let from = 3 * PIECE_BYTES + 5;
    let resp = router
        .clone()
        .oneshot(
            Request::get(&base)
                .header("range", format!("bytes={from}-"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let range = resp.headers()["content-range"].to_str().expect("ascii").to_owned();
    assert_eq!(range, format!("bytes {from}-{}/{}", data.len() - 1, data.len()));
    let tail = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    assert_eq!(tail, &data[from as usize..]);
    let (s, _) = {
        let req =
            Request::get(&base).header("range", "bytes=0-10").body(Body::empty()).expect("request");
        call(&router, req).await
    };
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = router
        .clone()
        .oneshot(Request::get(format!("{base}/outline")).body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    assert_eq!(resp.headers()["x-provernet-size"].to_str().expect("ascii"), data.len().to_string());
    let outline = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    assert_eq!(outline, pieces::outline(&data).concat());
}

/// A chain with the test programs and two registered provers (`tweak` sets its parameters),
/// its router and the keys of its accounts.
async fn chain_with_provers(
    tweak: impl FnOnce(&mut ChainParams),
) -> (tempfile::TempDir, Chain, Router, provernet_ledger::testkit::TestChain) {
    use provernet_ledger::testkit::{test_genesis, TestChain};
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = test_genesis(2, tweak);
    let chain = Chain::open(&dir.path().join("ledger.redb"), &genesis, ChainConfig::default())
        .expect("chain");
    let router = Api::new(Submitter::detached(chain.clone())).router();
    let mut keys = TestChain::from_state(chain.with_state(|s| s.clone()), 2);
    for tx in keys.registrations(2) {
        assert_eq!(post(&router, "/v1/txs", tx.signed().encode()).await.0, StatusCode::ACCEPTED);
    }
    finalize_next(&chain);
    (dir, chain, router, keys)
}

/// A chain with the test programs and two registered provers, and a job from `alice`.
async fn fixture_with_job() -> (tempfile::TempDir, Chain, Router, String) {
    let (dir, chain, router, mut keys) =
        chain_with_provers(|p| p.draw_delay = provernet_types::Blocks(2)).await;
    let program = provernet_ledger::testkit::committee_program().id();
    let (id, tx) = keys.submit("alice", keys.spec(program, 60));
    let (s, v) = post(&router, "/v1/txs", tx.signed().encode()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    finalize_next(&chain);
    (dir, chain, router, id.to_string())
}

#[tokio::test]
async fn the_newest_jobs_come_first_and_page_on_from_the_cursor() {
    let (_dir, chain, router, mut keys) = chain_with_provers(|_| {}).await;
    let program = provernet_ledger::testkit::committee_program().id();
    // Three jobs in three blocks: submitted oldest to newest.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, tx) = keys.submit("alice", keys.spec(program, 60));
        assert_eq!(post(&router, "/v1/txs", tx.signed().encode()).await.0, StatusCode::ACCEPTED);
        finalize_next(&chain);
        ids.push(id.to_string());
    }
    let (_, page) = get(&router, "/v1/jobs?order=newest&limit=2").await;
    let got: Vec<&str> =
        page["items"].as_array().expect("items").iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()], "{page}");
    let cursor = page["next_cursor"].as_str().expect("a full page has a cursor");
    let (_, rest) = get(&router, &format!("/v1/jobs?order=newest&cursor={cursor}")).await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str(), "{rest}");
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
}

/// Settled jobs leave the live state for the archive; the API serves them by id and pages them
/// newest first (by requester too), and they read back byte for byte after the validator
/// restarts.
#[tokio::test]
async fn an_archived_job_reads_back_identically_after_a_restart() {
    let (dir, chain, router, mut keys) =
        chain_with_provers(|p| p.draw_delay = provernet_types::Blocks(2)).await;
    let program = provernet_ledger::testkit::committee_program().id();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, tx) = keys.submit("alice", keys.spec(program, 60));
        assert_eq!(post(&router, "/v1/txs", tx.signed().encode()).await.0, StatusCode::ACCEPTED);
        ids.push(id);
    }
    finalize_next(&chain);
    // A page taken while the jobs are live: its cursor is the newest job.
    let (_, first) = get(&router, "/v1/jobs?order=newest&limit=1").await;
    let live_cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    assert_eq!(live_cursor, ids[2].to_string(), "{first}");
    for id in &ids {
        let tx = keys.tx("alice", TxBody::CancelJob { job: *id });
        assert_eq!(post(&router, "/v1/txs", tx.signed().encode()).await.0, StatusCode::ACCEPTED);
    }
    // Cancelled in this block, settled by the end-of-block rules when the jobs wake, the
    // draw delay later.
    for _ in 0..3 {
        finalize_next(&chain);
    }
    let mut views = Vec::new();
    for id in &ids {
        let live = chain.with_state(|s| s.job(id).map(|j| (j.status, j.settled)));
        assert!(live.is_none(), "a settled job leaves the live state: {live:?}");
        let (s, v) = get(&router, &format!("/v1/jobs/{id}")).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("Cancelled")), "{v}");
        assert_eq!(v["escrow_micro_credits"], 0, "{v}");
        views.push(v);
    }
    // Newest first reaches the archive, page by page, by requester too.
    let alice = keys.account("alice");
    let (_, page) = get(&router, &format!("/v1/jobs?order=newest&limit=2&requester={alice}")).await;
    let got: Vec<&str> =
        page["items"].as_array().expect("items").iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(got.len(), 2, "{page}");
    let cursor = page["next_cursor"].as_str().expect("a cursor into the archive").to_owned();
    assert!(cursor.starts_with("archive-"), "{cursor}");
    let (_, rest) =
        get(&router, &format!("/v1/jobs?order=newest&requester={alice}&cursor={cursor}")).await;
    let mut all: Vec<String> = got.iter().map(|s| s.to_string()).collect();
    all.extend(
        rest["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|j| j["id"].as_str().map(String::from)),
    );
    let mut want: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    all.sort();
    want.sort();
    assert_eq!(all, want, "every archived job listed once: {rest}");
    let (_, none) =
        get(&router, &format!("/v1/jobs?order=newest&requester={}", "cd".repeat(32))).await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    assert_error(
        get(&router, "/v1/jobs?order=newest&cursor=archive-x").await,
        StatusCode::BAD_REQUEST,
        "bad_id",
    );
    assert_error(
        get(&router, "/v1/jobs?cursor=archive-3").await,
        StatusCode::BAD_REQUEST,
        "bad_id",
    );
    // The cursor job settled and was archived since: the listing goes on after it, in the
    // archive, and neither restarts nor lists the cursor job again.
    let (_, next) = get(&router, &format!("/v1/jobs?order=newest&cursor={live_cursor}")).await;
    let after: Vec<&str> =
        next["items"].as_array().expect("items").iter().filter_map(|j| j["id"].as_str()).collect();
    assert!(!after.contains(&live_cursor.as_str()), "{next}");
    assert!(after.len() <= 2, "{next}");
    // Cancelling a job that ended says so, as while it was live, not that it never existed.
    let again = keys.tx("alice", TxBody::CancelJob { job: ids[0] });
    let (s, v) = post(&router, "/v1/txs", again.signed().encode()).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("wrong_job_state")), "{v}");
    assert_eq!(v["fields"]["status"], "Cancelled", "{v}");
    // The live listing by id has only live work.
    let (_, live) = get(&router, "/v1/jobs").await;
    assert_eq!(live["items"].as_array().map(Vec::len), Some(0), "{live}");

    // A restart: the validator reopens its database and serves the same records.
    let path = dir.path().join("ledger.redb");
    let genesis =
        provernet_ledger::testkit::test_genesis(2, |p| p.draw_delay = provernet_types::Blocks(2));
    let root = chain.tip().root;
    drop(router);
    drop(chain);
    let chain = Chain::open(&path, &genesis, ChainConfig::default()).expect("reopens");
    assert_eq!(chain.tip().root, root);
    let router = Api::new(Submitter::detached(chain.clone())).router();
    for (id, before) in ids.iter().zip(&views) {
        let (s, after) = get(&router, &format!("/v1/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&after, before, "job {id} reads back identically");
    }
}

/// `/work` for a prover with no tasks, an id nobody holds and a malformed id: the first two
/// answer alike (no tasks), read from the indexes; the last is refused before any lookup.
#[tokio::test]
async fn work_for_an_unknown_or_idle_prover_is_an_empty_listing() {
    let (_dir, _chain, router, keys) = chain_with_provers(|_| {}).await;
    let idle = keys.account("p0");
    let (s, w) = get(&router, &format!("/v1/provers/{idle}/work")).await;
    assert_eq!((s, w["tasks"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{w}");
    let (s, w) = get(&router, &format!("/v1/provers/{}/work", "ef".repeat(32))).await;
    assert_eq!((s, w["tasks"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{w}");
    assert!(w["prover"].is_null(), "{w}");
    assert_error(
        get(&router, "/v1/provers/not-an-id/work").await,
        StatusCode::BAD_REQUEST,
        "bad_id",
    );
}

#[tokio::test]
async fn jobs_provers_and_programs_with_data() {
    let (_dir, chain, router, job) = fixture_with_job().await;
    let (s, v) = get(&router, &format!("/v1/jobs/{job}")).await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(job.as_str())), "{v}");
    let requester = v["requester"].as_str().expect("requester").to_owned();
    let (_, v) = get(&router, &format!("/v1/jobs?requester={requester}&limit=1")).await;
    assert_eq!(v["items"][0]["id"], job.as_str());
    assert_eq!(v["next_cursor"], job.as_str(), "a full page names its cursor");
    let (_, v) = get(&router, &format!("/v1/jobs?cursor={job}")).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "nothing after the last job");
    let (_, v) = get(&router, "/v1/jobs?state=Pending").await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let (_, v) = get(&router, "/v1/provers?limit=1").await;
    let first = v["items"][0]["id"].as_str().expect("a prover").to_owned();
    let (_, v2) = get(&router, &format!("/v1/provers?cursor={first}")).await;
    assert_eq!(v2["items"].as_array().map(Vec::len), Some(1), "two provers, one per page");
    assert_eq!(get(&router, &format!("/v1/provers/{first}")).await.0, StatusCode::OK);
    let (s, v) = get(&router, "/v1/programs/hash-chain").await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("hash-chain")));
    let id = v["id"].as_str().expect("id").to_owned();
    assert_eq!(get(&router, &format!("/v1/programs/{id}")).await.0, StatusCode::OK);

    // The job's event stream starts with its current view, then follows its events.
    assert_error(
        get(&router, &format!("/v1/jobs/{}/events", "ab".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let resp = router
        .clone()
        .oneshot(
            Request::get(format!("/v1/jobs/{job}/events")).body(Body::empty()).expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = next_event(&mut body).await;
    assert!(first.starts_with("event: job\ndata: {") && first.contains(&job), "{first}");
    // With the draw delay the job is assigned two blocks after its submission.
    finalize_next(&chain);
    finalize_next(&chain);
    let event = next_event(&mut body).await;
    assert!(event.starts_with("event: job_events\n"), "{event}");
    assert!(event.contains("\"type\":\"attempt_assigned\""), "{event}");

    // The assigned prover's work lists the accept; nobody else has work.
    let (_, v) = get(&router, &format!("/v1/jobs/{job}")).await;
    let assigned = v["attempts"][0]["prover"].as_str().expect("assigned").to_owned();
    let (s, w) = get(&router, &format!("/v1/provers/{assigned}/work")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(w["tasks"].as_array().map(Vec::len), Some(1), "{w}");
    assert_eq!(
        (w["tasks"][0]["kind"].as_str(), w["tasks"][0]["attempt"].as_u64()),
        (Some("accept"), Some(0))
    );
    assert_eq!(w["tasks"][0]["job"]["id"], job.as_str());
    let (_, all) = get(&router, "/v1/provers").await;
    for p in all["items"].as_array().expect("provers") {
        let id = p["id"].as_str().expect("id");
        if id != assigned {
            let (_, w) = get(&router, &format!("/v1/provers/{id}/work")).await;
            assert_eq!(w["tasks"].as_array().map(Vec::len), Some(0), "{w}");
        }
    }
    assert_error(get(&router, "/v1/provers/xyz/work").await, StatusCode::BAD_REQUEST, "bad_id");
}

#[tokio::test]
async fn a_workflow_is_served_with_its_nodes_and_streams_its_and_its_jobs_events() {
    use provernet_ledger::testkit::{committee_program, workflow_node, workflow_spec};
    let (_dir, chain, router, mut keys) =
        chain_with_provers(|p| p.draw_delay = provernet_types::Blocks(2)).await;
    let program = committee_program().id();
    let spec = workflow_spec(vec![
        workflow_node("leaf", program, 60, &[]),
        workflow_node("join", program, 60, &["leaf"]),
    ]);
    let (id, tx) = keys.submit_workflow("alice", spec);
    let (s, v) = post(&router, "/v1/txs", tx.signed().encode()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    finalize_next(&chain);
    round_trip::<t::Workflow>(&router, &format!("/v1/workflows/{id}")).await;
    let (_, w) = get(&router, &format!("/v1/workflows/{id}")).await;
    assert_eq!(w["status"], "running", "{w}");
    assert_eq!(w["final"], false);
    assert_eq!(w["nodes"][0]["name"], "leaf");
    assert_eq!(w["nodes"][0]["status"], "job");
    assert_eq!(w["nodes"][0]["job_status"], "Pending");
    assert_eq!(w["nodes"][1]["status"], "waiting");
    assert_eq!(w["nodes"][1]["wires"][0]["node"], "leaf");
    let leaf = w["nodes"][0]["job"].as_str().expect("a job id").to_owned();
    let (_, j) = get(&router, &format!("/v1/jobs/{leaf}")).await;
    assert_eq!(j["workflow"]["workflow"], id.to_string().as_str(), "{j}");
    assert_eq!(j["workflow"]["node"], 0);
    // The job's program declares its output, for workflows to wire.
    let (_, p) = get(&router, "/v1/programs/hash-chain").await;
    assert_eq!(p["outputs"][0], "proof", "{p}");
    // Unknown, malformed: the same answers as for a job.
    assert_error(
        get(&router, &format!("/v1/workflows/{}", "ab".repeat(32))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(get(&router, "/v1/workflows/xyz").await, StatusCode::BAD_REQUEST, "bad_id");
    // The stream: the workflow, then its node job's assignment two blocks on.
    let resp = router
        .clone()
        .oneshot(
            Request::get(format!("/v1/workflows/{id}/events"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = next_event(&mut body).await;
    assert!(first.starts_with("event: workflow\ndata: {"), "{first}");
    finalize_next(&chain);
    finalize_next(&chain);
    let event = next_event(&mut body).await;
    assert!(event.starts_with("event: workflow_events\n"), "{event}");
    assert!(event.contains("\"type\":\"attempt_assigned\"") && event.contains(&leaf), "{event}");
    // The requester cancels: the stream says so and ends.
    let cancel = keys.tx("alice", provernet_types::TxBody::CancelWorkflow { workflow: id });
    assert_eq!(post(&router, "/v1/txs", cancel.signed().encode()).await.0, StatusCode::ACCEPTED);
    finalize_next(&chain);
    let event = next_event(&mut body).await;
    assert!(event.contains("\"type\":\"workflow_node_changed\""), "{event}");
    assert!(event.contains("\"type\":\"workflow_finished\""), "{event}");
    assert!(event.contains("\"status\":\"cancelled\""), "{event}");
    let (_, w) = get(&router, &format!("/v1/workflows/{id}")).await;
    assert_eq!((w["status"].as_str(), w["final"].as_bool()), (Some("cancelled"), Some(true)));
}

async fn next_event(body: &mut Body) -> String {
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("no error");
    String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf-8")
}

// Through real TCP connections: the limits of `serve_router`.

/// Serves the fixture's router on a loopback port.
async fn listen(f: &Fixture, limits: ServeLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_router(listener, f.router.clone(), limits));
    addr
}

/// Sends `head` (and `body`) on a new connection and returns the stream.
async fn send_raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    s
}

/// Reads a response's status and its JSON body (`Value::Null` when it has none), or `None`
/// when the server closed the connection without answering.
async fn read_response(s: &mut tokio::net::TcpStream) -> Option<(u16, Value)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(20);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned)
                })
                .and_then(|l| l.trim().parse::<usize>().ok());
            let Some(length) = length else { return Some((status, Value::Null)) };
            while buf.len() < end + 4 + length {
                let n = tokio::time::timeout(deadline, s.read(&mut chunk)).await.ok()?.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = &buf[end + 4..end + 4 + length];
            return Some((status, serde_json::from_slice(body).unwrap_or(Value::Null)));
        }
        let n = tokio::time::timeout(deadline, s.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes `s` (reads end) within 20 s, having sent nothing.
async fn closed_by_server(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 512];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn upload_head(key: &Keypair, data: &[u8], declared_size: u64, signed_size: u64) -> String {
    let blob = provernet_types::tx::blob_ref(data);
    let signed =
        provernet_types::BlobRef { hash: blob.hash, size: provernet_types::Bytes(signed_size) };
    let sig = key.sign(BLOB_UPLOAD_DOMAIN, "provernet-devnet", &blob_upload_message(&signed));
    format!(
        "PUT /v1/blobs/{} HTTP/1.1\r\nhost: api\r\nx-provernet-account: {}\r\n\
         x-provernet-size: {declared_size}\r\nx-provernet-signature: {}\r\n\
         content-length: {declared_size}\r\n\r\n",
        blob.hash,
        key.account(),
        hex::encode(sig.0)
    )
}

#[tokio::test]
async fn the_api_can_be_exhausted_uploads_are_judged_before_their_body_is_read() {
    let limits = ServeLimits { upload_idle_s: 1, ..ServeLimits::default() };
    let f = fixture_limited(64, limits);
    let addr = listen(&f, limits).await;
    let data = vec![5u8; 1000];
    // A forged signature, a stranger's account, a size over the limit: each is answered
    // while the client has sent headers only (it announced 1,000 body bytes and sent none).
    let forged = upload_head(&user(), &data, 1000, 999);
    let mut s = send_raw(addr, &forged, &[]).await;
    let (status, v) = read_response(&mut s).await.expect("answered without the body");
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")), "{v}");
    let stranger = Keypair::from_seed([0x33; 32]);
    let mut s = send_raw(addr, &upload_head(&stranger, &data, 1000, 1000), &[]).await;
    let (status, v) = read_response(&mut s).await.expect("answered without the body");
    assert_eq!((status, v["code"].as_str()), (403, Some("unknown_account")), "{v}");
    let big = vec![6u8; 4096];
    let mut s = send_raw(addr, &upload_head(&user(), &big, 4096, 4096), &[]).await;
    let (status, v) = read_response(&mut s).await.expect("answered without the body");
    assert_eq!((status, v["code"].as_str()), (413, Some("blob_too_large")), "{v}");
    // A signed upload that stalls half-way is given up, and its quota is not kept.
    let mut s = send_raw(addr, &upload_head(&user(), &data, 1000, 1000), &data[..500]).await;
    let (status, v) = read_response(&mut s).await.expect("answered");
    assert_eq!((status, v["code"].as_str()), (400, Some("blob_upload_incomplete")), "{v}");
    // The same upload, whole, in pieces: stored.
    let mut s = send_raw(addr, &upload_head(&user(), &data, 1000, 1000), &data[..300]).await;
    {
        use tokio::io::AsyncWriteExt;
        s.write_all(&data[300..]).await.expect("rest of the body");
    }
    let (status, v) = read_response(&mut s).await.expect("answered");
    assert_eq!((status, v["stored"].as_str()), (201, Some("new")), "{v}");
}

#[tokio::test]
async fn the_api_can_be_exhausted_idle_and_half_open_connections_are_dropped() {
    let limits = ServeLimits { header_timeout_s: 1, ..ServeLimits::default() };
    let f = fixture_limited(64, limits);
    let addr = listen(&f, limits).await;
    // Nothing sent at all.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // Half a request head, never finished.
    let mut half = send_raw(addr, "GET /v1/status HTTP/1.1\r\nhost: a", &[]).await;
    assert!(closed_by_server(&mut idle).await, "an idle connection stays open");
    assert!(closed_by_server(&mut half).await, "a half-sent request head stays open");
    // A kept-alive connection is closed once idle too, after answering.
    let mut kept = send_raw(addr, "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", &[]).await;
    assert_eq!(read_response(&mut kept).await.map(|r| r.0), Some(200));
    assert!(closed_by_server(&mut kept).await, "an idle kept-alive connection stays open");
}

#[tokio::test]
async fn the_api_can_be_exhausted_connections_over_the_limit_are_closed_at_once() {
    let limits = ServeLimits { connections_per_ip: 3, ..ServeLimits::default() };
    let f = fixture_limited(64, limits);
    let addr = listen(&f, limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = send_raw(addr, "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", &[]).await;
        assert_eq!(read_response(&mut s).await.map(|r| r.0), Some(200));
        held.push(s);
    }
    let mut over = send_raw(addr, "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", &[]).await;
    assert_eq!(read_response(&mut over).await, None, "a fourth connection from one address");
    // A place comes back when a connection closes.
    drop(held.pop());
    let mut answered = None;
    for _ in 0..50 {
        let mut s = send_raw(addr, "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", &[]).await;
        answered = read_response(&mut s).await.map(|r| r.0);
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(200));
}

#[tokio::test]
async fn the_api_can_be_exhausted_event_subscribers_are_capped() {
    let limits = ServeLimits { subscribers_per_ip: 2, ..ServeLimits::default() };
    let f = fixture_limited(64, limits);
    let addr = listen(&f, limits).await;
    let sse = "GET /v1/events/blocks HTTP/1.1\r\nhost: a\r\naccept: text/event-stream\r\n\r\n";
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = send_raw(addr, sse, &[]).await;
        assert_eq!(read_response(&mut s).await.map(|r| r.0), Some(200));
        streams.push(s);
    }
    let mut third = send_raw(addr, sse, &[]).await;
    let (status, v) = read_response(&mut third).await.expect("answered");
    assert_eq!((status, v["code"].as_str()), (503, Some("too_many_subscribers")), "{v}");
    // Other requests from the same address are still served.
    let mut s = send_raw(addr, "GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", &[]).await;
    assert_eq!(read_response(&mut s).await.map(|r| r.0), Some(200));
    // A subscriber that leaves frees its place.
    drop(streams.pop());
    let mut answered = None;
    for _ in 0..50 {
        let mut s = send_raw(addr, sse, &[]).await;
        answered = read_response(&mut s).await.map(|r| r.0);
        if answered == Some(200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(200));
}
