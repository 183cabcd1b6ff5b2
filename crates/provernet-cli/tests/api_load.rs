//! The API under load, over real processes and loopback only: four validators, and validator
//! 0's API attacked at once by thousands of idle connections (from many loopback addresses),
//! parallel junk uploads (forged ones and signed ones whose bytes never match), and a crowd of
//! event-stream subscribers. Validator 0 must stay within a memory bound, keep finalizing, and
//! keep answering an honest client. Bounded: about 20 s of attack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use provernet_sdk::Client;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Opens a connection from `from` (a loopback address) to `to`, and sends nothing.
async fn idle_from(from: Ipv4Addr, to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await.ok()?.ok()
}

/// A signed upload of `size` declared bytes whose body is junk (it can never match the hash
/// it claims), sent as fast as the server takes it. Returns the bytes the server accepted.
async fn junk_upload(
    to: SocketAddr,
    key: &provernet_types::Keypair,
    chain: &str,
    size: u64,
    forged: bool,
) -> u64 {
    let claimed = provernet_types::BlobRef {
        hash: provernet_types::BlobHash([0xAB; 32]),
        size: provernet_types::Bytes(size),
    };
    let mut sig = key
        .sign(
            provernet_types::crypto::BLOB_UPLOAD_DOMAIN,
            chain,
            &provernet_types::tx::blob_upload_message(&claimed),
        )
        .0;
    if forged {
        sig[0] ^= 1;
    }
    let head = format!(
        "PUT /v1/blobs/{} HTTP/1.1\r\nhost: api\r\nx-provernet-account: {}\r\n\
         x-provernet-size: {size}\r\nx-provernet-signature: {}\r\ncontent-length: {size}\r\n\r\n",
        claimed.hash,
        key.account(),
        hex::encode(sig)
    );
    let Ok(mut s) = tokio::net::TcpStream::connect(to).await else { return 0 };
    if s.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let chunk = vec![0x5Au8; 256 << 10];
    let mut sent = 0u64;
    while sent < size {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len() as u64,
            _ => break,
        }
    }
    let mut answer = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer)).await;
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_can_be_exhausted_a_validator_under_load_stays_bounded_and_finalizing() {
    // The attacker needs descriptors for thousands of connections.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let idle_target = 3000usize.min(hard.saturating_sub(512) as usize);

    let net = Net::many(5, 4, 0, &[], |_| 0).await;
    let pid = net.validator.pid().expect("validator 0 runs");
    let target: SocketAddr = net.api.trim_start_matches("http://").parse().unwrap();
    let witness = Client::new(&net.apis[1]).unwrap();
    let status = net.client.status().await.unwrap();
    let chain = status.chain_id.clone();
    let faucet = provernet_types::Keypair::from_seed(provernet_cli_seed(&net.faucet_key));
    wait_until("a few blocks", Duration::from_secs(60), || async {
        net.client.status().await.is_ok_and(|s| s.height >= 3)
    })
    .await;
    let baseline = rss(pid);
    let height_before = net.client.status().await.unwrap().height;

    // Thousands of idle connections, 250 from each of many loopback addresses.
    let mut idle = Vec::new();
    'open: for a in 2..=40u8 {
        for _ in 0..250 {
            if idle.len() >= idle_target {
                break 'open;
            }
            if let Some(s) = idle_from(Ipv4Addr::new(127, 0, 7, a), target).await {
                idle.push(s);
            }
        }
    }
    // Event-stream subscribers from one more address, past its cap.
    let mut subscribers = Vec::new();
    for _ in 0..100 {
        if let Some(mut s) = idle_from(Ipv4Addr::new(127, 0, 8, 1), target).await {
            let _ = s.write_all(b"GET /v1/events/blocks HTTP/1.1\r\nhost: api\r\n\r\n").await;
            subscribers.push(s);
        }
    }
    // Junk uploads in parallel: signed ones (junk bytes, 48 MiB each) and forged ones (200 MiB
    // declared), while memory is sampled.
    let mut uploads = Vec::new();
    for i in 0..16 {
        let key = faucet.clone();
        let chain = chain.clone();
        let forged = i % 2 == 1;
        let size = if forged { 200 << 20 } else { 48 << 20 };
        uploads.push(tokio::spawn(
            async move { junk_upload(target, &key, &chain, size, forged).await },
        ));
    }
    let started = Instant::now();
    let mut peak = baseline;
    let mut honest_answers = 0;
    let witness_before = witness.status().await.unwrap().height;
    while started.elapsed() < Duration::from_secs(20) {
        peak = peak.max(rss(pid));
        // An honest client on another address is still served.
        if net.client.status().await.is_ok() {
            honest_answers += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut accepted = 0;
    for u in uploads {
        accepted += u.await.unwrap();
    }
    peak = peak.max(rss(pid));
    let height_after = net.client.status().await.unwrap().height;
    let witness_after = witness.status().await.unwrap().height;
    let held_idle = {
        let mut open = 0;
        for s in &mut idle {
            let mut b = [0u8; 1];
            // An idle connection the server still holds has nothing to read yet.
            if tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await.is_err() {
                open += 1;
            }
        }
        open
    };
    eprintln!(
        "validator 0: rss {} MiB before, peak {} MiB; {} idle connections opened, {} held; \
         {} MiB of junk upload bodies taken; height {height_before} -> {height_after} \
         (validator 1: {witness_before} -> {witness_after}); {honest_answers} honest answers",
        baseline >> 20,
        peak >> 20,
        idle.len(),
        held_idle,
        accepted >> 20,
    );
    assert!(idle.len() >= 1000, "the attack opened only {} connections", idle.len());
    assert!(
        peak <= baseline + (192 << 20),
        "validator 0 grew from {} MiB to {} MiB under the attack",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        height_after >= height_before + 5,
        "validator 0 stalled: {height_before} -> {height_after}"
    );
    assert!(witness_after >= witness_before + 5, "the network stalled");
    assert!(honest_answers >= 40, "an honest client was served {honest_answers} times in 80 tries");
    drop((idle, subscribers));
}

fn provernet_cli_seed(path: &std::path::Path) -> [u8; 32] {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["seed"].as_str().unwrap()).unwrap().try_into().unwrap()
}
