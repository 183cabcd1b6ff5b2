//! The blob store against local disk, and against an S3-compatible server when one is
//! configured (CI starts moto's S3 server and sets `PROVERNET_TEST_S3_ENDPOINT`).

use bytes::Bytes;
use provernet_blobs::{Backend, BlobError, BlobStore, Limits, Quota, Stored};
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

/// A blob bigger than one part, streamed in small chunks: written in parts, readable back in
/// checked pieces; a stream with the wrong bytes leaves nothing behind.
async fn streamed(store: &BlobStore) {
    use futures::StreamExt;
    let big: Vec<u8> =
        (0..(11u32 << 20) + 3).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let r = blob_ref(&big);
    let chunks = |data: Vec<u8>| {
        futures::stream::iter(
            data.chunks(64 << 10)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        )
    };
    let idle = std::time::Duration::from_secs(30);
    let before = store.usage(&BOB).await.expect("usage");
    // Wrong bytes of the right size: refused at the end, nothing visible, nothing charged.
    let mut wrong = big.clone();
    wrong[5 << 20] ^= 1;
    let e =
        store.put_stream(&BOB, &r, Quota::Enforce, chunks(wrong), idle).await.expect_err("hash");
    assert_eq!(e.code(), "blob_hash_mismatch");
    assert!(!store.has(&r.hash).await.expect("head"));
    assert_eq!(store.usage(&BOB).await.expect("usage"), before);
    // More bytes than declared: refused as soon as they pass the declaration.
    let mut longer = big.clone();
    longer.extend_from_slice(&[0; 1000]);
    let e =
        store.put_stream(&BOB, &r, Quota::Enforce, chunks(longer), idle).await.expect_err("long");
    assert_eq!(e.code(), "blob_size_mismatch");
    // A body that breaks off.
    let broken = chunks(big[..3 << 20].to_vec())
        .chain(futures::stream::iter([Err(std::io::Error::other("connection reset"))]));
    let e = store.put_stream(&BOB, &r, Quota::Enforce, broken, idle).await.expect_err("broken");
    assert_eq!(e.code(), "blob_upload_incomplete");
    assert!(!store.has(&r.hash).await.expect("head"));
    // The real bytes.
    let stored = store.put_stream(&BOB, &r, Quota::Charge, chunks(big.clone()), idle).await;
    assert_eq!(stored.expect("streamed put"), Stored::New);
    assert_eq!(store.usage(&BOB).await.expect("usage"), before + big.len() as u64);
    let (size, pieces) = store.read(&r.hash).await.expect("read").expect("present");
    assert_eq!(size, big.len() as u64);
    let back: Vec<Bytes> = pieces.map(|p| p.expect("piece")).collect().await;
    assert!(back.iter().all(|p| p.len() <= 1 << 20), "one piece at a time");
    assert_eq!(back.concat(), big);
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
    let big = BlobStore::open(&Backend::Local { dir: dir.path().join("big") }, Limits::default())
        .expect("open");
    streamed(&big).await;
}

#[tokio::test]
async fn parallel_uploads_cannot_together_pass_the_quota() {
    let limits = Limits { blob_max: 1000, account_quota: 1000 };
    let store = BlobStore::open(&Backend::Memory, limits).expect("open");
    let first = Bytes::from(vec![1u8; 600]);
    let second = Bytes::from(vec![2u8; 600]);
    // The first upload sends half its bytes and stalls; its 600 bytes are held meanwhile.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    tx.unbounded_send(Ok(first.slice(..300))).expect("send");
    let idle = std::time::Duration::from_secs(30);
    let r1 = blob_ref(&first);
    let s1 = store.clone();
    let pending =
        tokio::spawn(async move { s1.put_stream(&ALICE, &r1, Quota::Enforce, rx, idle).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let e = store.put(&ALICE, &blob_ref(&second), second.clone()).await.expect_err("no room");
    assert_eq!(e.code(), "blob_quota_exceeded");
    tx.unbounded_send(Ok(first.slice(300..))).expect("send");
    drop(tx);
    assert_eq!(pending.await.expect("join").expect("first"), Stored::New);
    assert_eq!(store.usage(&ALICE).await.expect("usage"), 600);
    // A stalled upload is given up after its idle time, and its reservation released.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    tx.unbounded_send(Ok(Bytes::from_static(b"ab"))).expect("send");
    let r = blob_ref(b"abcd");
    let e = store
        .put_stream(&BOB, &r, Quota::Enforce, rx, std::time::Duration::from_millis(200))
        .await
        .expect_err("stalled");
    assert_eq!(e.code(), "blob_upload_incomplete");
    drop(tx);
    let full = Bytes::from(vec![3u8; 1000]);
    assert_eq!(store.put(&BOB, &blob_ref(&full), full).await.expect("room again"), Stored::New);
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
    streamed(&store).await;
}
