//! Downloads against servers that lie: whatever a validator (or a proxy) sends, a file is
//! renamed into place only when every byte is the blob's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sdk::{Client, Transfer};
use provernet_types::pieces::{self, PIECE_BYTES};
use provernet_types::BlobHash;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a fake validator answers: the outline request, then the blob request (whose `Range`
/// header it is given).
type Answer = Arc<dyn Fn(&str, Option<u64>) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync>;

/// Serves `answer` on a local port, one request per connection; the base URL.
async fn serve(answer: Answer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let range = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("range: bytes=").map(str::to_owned)
                    })
                    .and_then(|r| r.trim_end_matches('-').parse().ok());
                let (status, headers, body) = answer(&path, range);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = conn.write_all(out.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    base
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect()
}

#[tokio::test]
async fn a_server_claiming_an_empty_blob_gets_nothing_renamed_into_place() {
    let real = data(1000);
    let hash = BlobHash::of(&real);
    let base =
        serve(Arc::new(|_, _| (200, vec![("x-provernet-size".into(), "0".into())], vec![]))).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("blob");
    let got = Client::new(&base).unwrap().download_file(&hash, &out, &Transfer::default()).await;
    assert!(got.is_err(), "an empty file passed for blob {hash}: {got:?}");
    assert!(!out.exists());
}

#[tokio::test]
async fn a_server_that_ignores_the_range_restarts_the_download_and_a_forged_piece_is_caught() {
    let real = Arc::new(data(3 * PIECE_BYTES as usize + 12));
    let hash = BlobHash::of(&real);
    let outline = pieces::outline(&real).concat();
    let size = real.len().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("blob");
    // First a server that corrupts piece 2: the download stops there, keeping pieces 0 and 1.
    let (r, o, sz) = (real.clone(), outline.clone(), size.clone());
    let forging = serve(Arc::new(move |path, _| {
        if path.ends_with("/outline") {
            return (200, vec![("x-provernet-size".into(), sz.clone())], o.clone());
        }
        let mut body = r.to_vec();
        body[2 * PIECE_BYTES as usize + 5] ^= 1;
        (200, vec![], body)
    }))
    .await;
    let e = Client::new(&forging).unwrap().download_file(&hash, &out, &Transfer::default()).await;
    assert!(e.is_err(), "a forged piece passed");
    let part = provernet_sdk::part_path(&out);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 2 * PIECE_BYTES, "the good pieces stay");
    // Then one that ignores `Range` and sends everything: the client starts over, and the
    // result is the blob.
    let (r, o, sz) = (real.clone(), outline.clone(), size.clone());
    let rangeless = serve(Arc::new(move |path, _| {
        if path.ends_with("/outline") {
            return (200, vec![("x-provernet-size".into(), sz.clone())], o.clone());
        }
        (200, vec![], r.to_vec())
    }))
    .await;
    let done = Client::new(&rangeless)
        .unwrap()
        .download_file(&hash, &out, &Transfer::default())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(done.size, real.len() as u64);
    assert!(std::fs::read(&out).unwrap() == *real);
    assert!(!part.exists());
}
