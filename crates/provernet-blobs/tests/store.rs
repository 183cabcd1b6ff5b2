//! The blob store against local disk, and against an S3-compatible server when one is
//! configured (CI starts moto's S3 server and sets `PROVERNET_TEST_S3_ENDPOINT`).

use bytes::Bytes;
use provernet_blobs::{Backend, BlobError, BlobStore, Limits, Stored};
use provernet_types::tx::blob_ref;
use provernet_types::AccountId;

const ALICE: AccountId = AccountId([1; 32]);
const BOB: AccountId = AccountId([2; 32]);

async fn exercise(store: &BlobStore) {
    let data = Bytes::from_static(b"a proof, or an input, or a prover executable");
    let r = blob_ref(&data);
    assert!(!store.has(&r.hash).await.expect("head"));
    assert_eq!(store.get(&r.hash).await.expect("get"), None);
    assert_eq!(store.put(&ALICE, &r, data.clone()).await.expect("put"), Stored::New);
    assert_eq!(store.get(&r.hash).await.expect("get"), Some(data.clone()));
    assert_eq!(store.usage(&ALICE).await.expect("usage"), data.len() as u64);
    // Storing it again charges nobody.
    assert_eq!(store.put(&BOB, &r, data.clone()).await.expect("put"), Stored::Existing);
    assert_eq!(store.usage(&BOB).await.expect("usage"), 0);

    // Bytes that do not match the declaration are refused and nothing is stored.
    let other = Bytes::from_static(b"something else entirely");
    let mut wrong_hash = blob_ref(&other);
    wrong_hash.hash = blob_ref(b"not these bytes").hash;
    assert!(matches!(
        store.put(&ALICE, &wrong_hash, other.clone()).await,
        Err(BlobError::HashMismatch { .. })
    ));
    let mut wrong_size = blob_ref(&other);
    wrong_size.size.0 += 1;
    assert!(matches!(
        store.put(&ALICE, &wrong_size, other.clone()).await,
        Err(BlobError::SizeMismatch { .. })
    ));
    assert!(!store.has(&blob_ref(&other).hash).await.expect("head"));
}

#[tokio::test]
async fn local_disk_checks_hashes_sizes_and_quotas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits { blob_max: 64, account_quota: 100 };
    let store =
        BlobStore::open(&Backend::Local { dir: dir.path().join("blobs") }, limits).expect("open");
    exercise(&store).await;
    // Per-blob limit.
    let big = Bytes::from(vec![7u8; 65]);
    let e = store.put(&BOB, &blob_ref(&big), big).await.expect_err("too large");
    assert_eq!(e.code(), "blob_too_large");
    // Per-account quota: ALICE has 45 bytes stored; 60 more would exceed 100.
    let more = Bytes::from(vec![9u8; 60]);
    let e = store.put(&ALICE, &blob_ref(&more), more.clone()).await.expect_err("over quota");
    assert_eq!(e.code(), "blob_quota_exceeded");
    assert_eq!(store.put(&BOB, &blob_ref(&more), more).await.expect("bob has room"), Stored::New);
    // Usage survives reopening.
    let reopened =
        BlobStore::open(&Backend::Local { dir: dir.path().join("blobs") }, limits).expect("reopen");
    assert_eq!(reopened.usage(&BOB).await.expect("usage"), 60);
}

#[tokio::test]
async fn s3_compatible_store() {
    let Ok(endpoint) = std::env::var("PROVERNET_TEST_S3_ENDPOINT") else {
        // Without a server this test has nothing to talk to; CI always sets it.
        return;
    };
    let bucket =
        std::env::var("PROVERNET_TEST_S3_BUCKET").unwrap_or_else(|_| "provernet-test".into());
    let backend = Backend::S3 {
        bucket,
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        allow_http: true,
    };
    let store = BlobStore::open(&backend, Limits::default()).expect("open");
    exercise(&store).await;
}
