//! A blob larger than one request, over real processes: three validators that take at most
//! 2 MiB per request; `provernet blob upload` sends a 40 MiB file to validator 0 in pieces, is
//! SIGKILLed mid-way and run again, and sends only what is missing; validators 1 and 2 copy it
//! in pieces through their staging areas; `provernet blob download` from validator 2 is
//! SIGKILLed mid-way and run again, and goes on from its `.part` file. Every byte arrives
//! checked and equal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use provernet_sdk::Client;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const MIB: u64 = 1 << 20;
const SIZE: usize = 40 << 20;

fn blob_cli(net: &Net, api: &str, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .env("PROVERNET_API", api)
        .env("PROVERNET_KEY", &net.faucet_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child, what: &str) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

async fn upload_state(api: &str, hash: &str) -> Option<provernet_sdk::types::UploadState> {
    Client::new(api).unwrap().get(&format!("/v1/blobs/{hash}/uploads")).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_above_one_request_survives_a_killed_uploader_and_a_killed_downloader() {
    let net = Net::many_with(
        12,
        3,
        0,
        &[],
        |_| 0,
        &format!("[api_limits]\nupload_request_bytes = {}\n", 2 * MIB),
    )
    .await;
    let data: Vec<u8> =
        (0..SIZE as u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect();
    let hash = provernet_types::BlobHash::of(&data).to_string();
    let file = net.path("params.bin");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_string_lossy().into_owned();
    let status: Value = net.client.get("/v1/status").await.unwrap().unwrap();
    assert_eq!(status["blobs"]["request_bytes_max"], 2 * MIB, "{status}");

    // The upload, paced so that it can be killed mid-way: killed once the validator holds
    // some of its pieces, but not all.
    let v0 = net.apis[0].clone();
    let mut up = blob_cli(&net, &v0, &["blob", "upload", &file, "--limit-rate", "8MiB", "--json"]);
    wait_until("some pieces on validator 0", Duration::from_secs(60), || {
        let (v0, hash) = (v0.clone(), hash.clone());
        async move { upload_state(&v0, &hash).await.is_some_and(|s| s.received_bytes >= 6 * MIB) }
    })
    .await;
    up.kill().unwrap();
    let _ = up.wait();
    let state = upload_state(&v0, &hash).await.expect("an open upload");
    assert!(!state.stored && state.received_bytes < SIZE as u64, "{state:?}");
    assert!(!state.missing.is_empty());
    // Nobody holds the blob yet: a half upload is not a blob.
    let out = Command::new(BIN)
        .args(["blob", "download", &hash, "--out"])
        .arg(net.path("early.bin"))
        .env("PROVERNET_API", &v0)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a half-uploaded blob downloads");

    // The same command again sends only what is missing.
    let again = finish(blob_cli(&net, &v0, &["blob", "upload", &file, "--json"]), "resumed upload");
    assert_eq!(again["hash"], hash.as_str());
    assert_eq!(again["size"], SIZE as u64);
    assert_eq!(again["in_pieces"], true);
    let resumed = again["resumed_bytes"].as_u64().unwrap();
    assert!(resumed >= state.received_bytes && resumed < SIZE as u64, "{again}");

    // The other validators copy it, in pieces.
    for api in &net.apis[1..] {
        wait_until("the blob on every validator", Duration::from_secs(120), || {
            let (api, hash) = (api.clone(), hash.clone());
            async move { upload_state(&api, &hash).await.is_some_and(|s| s.stored) }
        })
        .await;
    }

    // A download from validator 2, killed mid-way, then resumed.
    let v2 = net.apis[2].clone();
    let out = net.path("fetched.bin");
    let part = provernet_sdk::part_path(&out);
    let out_s = out.to_string_lossy().into_owned();
    let mut down = blob_cli(
        &net,
        &v2,
        &["blob", "download", &hash, "--out", &out_s, "--limit-rate", "8MiB", "--json"],
    );
    wait_until("a part of the download", Duration::from_secs(60), || {
        let part = part.clone();
        async move { std::fs::metadata(&part).is_ok_and(|m| m.len() >= 6 * MIB) }
    })
    .await;
    down.kill().unwrap();
    let _ = down.wait();
    let had = std::fs::metadata(&part).unwrap().len();
    assert!(had < SIZE as u64 && !out.exists(), "the download finished before it was killed");
    // A torn write at the end of the part file is cut off and fetched again.
    let mut torn = std::fs::OpenOptions::new().append(true).open(&part).unwrap();
    std::io::Write::write_all(&mut torn, &[0xAA; 1000]).unwrap();
    drop(torn);
    let done = finish(
        blob_cli(&net, &v2, &["blob", "download", &hash, "--out", &out_s, "--json"]),
        "resumed download",
    );
    let resumed = done["resumed_bytes"].as_u64().unwrap();
    assert!(resumed > 0 && resumed <= had && resumed.is_multiple_of(MIB), "{done}");
    assert!(std::fs::read(&out).unwrap() == data, "the downloaded file differs");
    assert!(!part.exists());

    // And whole, through the SDK, from validator 1.
    let got = Client::new(&net.apis[1])
        .unwrap()
        .download(&hash.parse().unwrap())
        .await
        .unwrap()
        .expect("validator 1 has it");
    assert!(got == data, "validator 1 serves other bytes");
}
