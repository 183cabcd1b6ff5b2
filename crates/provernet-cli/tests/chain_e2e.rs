//! Four validator processes on loopback, created with `provernet genesis` and run with
//! `provernet validator`: job submissions and transfers go in through the HTTP API, one validator is killed with
//! SIGKILL mid-run and restarted, and the chain never stops; the restarted validator catches up,
//! and no accepted transaction is lost or applied twice.

use provernet_sdk::Client;
use provernet_types::{AccountId, Keypair, MicroCredits, Nonce, Transaction, TxBody, TxHash};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use support::{wait_until as wait_for, BIN};

struct Validator {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Validator {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(BIN)
            .args(["validator", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start validator");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn seed_of(path: &Path) -> [u8; 32] {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    hex::decode(v["seed"].as_str().expect("seed")).expect("hex").try_into().expect("32 bytes")
}

async fn height(c: &Client) -> u64 {
    c.status().await.map(|s| s.height).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validator_processes_survive_a_sigkill_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = dir.path().join("net");
    // Ports from the process id so parallel runs do not collide.
    let base = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    let out = Command::new(BIN)
        .args(["genesis", "--validators", "4", "--json", "--out"])
        .arg(&net)
        .args(["--base-port", &base.to_string(), "--api-port", &(base + 5).to_string()])
        .output()
        .expect("run genesis");
    assert!(out.status.success(), "genesis failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut validators: Vec<Validator> = (0..4)
        .map(|i| Validator {
            config: net.join(format!("validator-{i}/validator.toml")),
            log: dir.path().join(format!("validator-{i}.log")),
            child: None,
        })
        .collect();
    for v in &mut validators {
        v.start();
    }
    let clients: Vec<Client> = (0..4)
        .map(|i| Client::new(&format!("http://127.0.0.1:{}", base + 5 + i)).expect("client"))
        .collect();
    wait_for("all validators to finalize block 2", Duration::from_secs(90), || async {
        let mut ok = true;
        for c in &clients {
            ok &= height(c).await >= 2;
        }
        ok
    })
    .await;

    let faucet = Keypair::from_seed(seed_of(&net.join("faucet.json")));
    let chain_id = clients[0].status().await.expect("status").chain_id;
    // The faucet's transactions: a program, funds for four provers, then a mix of job
    // submissions and transfers.
    let manifest = provernet_ledger::testkit::committee_program();
    let program = manifest.id();
    // Every blob the transactions name is uploaded first, to validator 0 only: validators
    // admit nothing that names a blob they cannot obtain, and the others copy them.
    for bytes in [&b"hash-chain-prover-exe"[..], b"verifier-exe", b"public statement"] {
        clients[0].upload(&faucet, &chain_id, bytes.to_vec()).await.expect("upload");
    }
    let provers: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed([0x40 + i; 32])).collect();
    let body_for = |nonce: u64| match nonce {
        0 => TxBody::RegisterProgram { manifest: manifest.clone() },
        1..=4 => TxBody::Transfer {
            to: provers[nonce as usize - 1].account(),
            amount: MicroCredits(1_000 * MicroCredits::PER_CREDIT),
        },
        n if n % 3 == 0 => TxBody::SubmitJob(provernet_ledger::testkit::job_spec(program, 60)),
        _ => TxBody::Transfer { to: AccountId([7; 32]), amount: MicroCredits(1_000) },
    };
    let transfer = |nonce: u64| {
        Transaction { signer: faucet.account(), nonce: Nonce(nonce), body: body_for(nonce) }
            .sign(&faucet, &chain_id)
    };
    let mut hashes: Vec<TxHash> = Vec::new();
    let mut jobs = Vec::new();
    // Submissions go to validators 0, 1 and 3; validator 2 is the one that crashes.
    let targets = [0usize, 1, 3];
    let submit_range = |range: std::ops::Range<u64>,
                        hashes: &mut Vec<TxHash>,
                        jobs: &mut Vec<String>| {
        let txs: Vec<_> = range.map(|n| (n, transfer(n))).collect();
        for (n, tx) in &txs {
            hashes.push(tx.hash());
            if matches!(tx.tx.body, TxBody::SubmitJob(_)) {
                jobs.push(provernet_types::tx::job_id(&faucet.account(), Nonce(*n)).to_string());
            }
        }
        txs
    };
    for (n, tx) in submit_range(0..5, &mut hashes, &mut jobs) {
        clients[targets[n as usize % 3]].submit(&tx).await.expect("accepted");
    }
    wait_for("the setup to finalize", Duration::from_secs(60), || async {
        clients[0].next_nonce(&faucet.account()).await.map(|n| n.0 >= 5).unwrap_or(false)
    })
    .await;
    let capacity = provernet_ledger::testkit::machine();
    for p in &provers {
        let body = TxBody::RegisterProver {
            capacity,
            labels: Default::default(),
            stake: MicroCredits(500 * MicroCredits::PER_CREDIT),
        };
        let tx = Transaction { signer: p.account(), nonce: Nonce(0), body }.sign(p, &chain_id);
        hashes.push(tx.hash());
        clients[0].submit(&tx).await.expect("prover registration accepted");
    }
    wait_for("the provers to register", Duration::from_secs(60), || async {
        let mut ok = true;
        for p in &provers {
            ok &= clients[0].next_nonce(&p.account()).await.map(|n| n.0 == 1).unwrap_or(false);
        }
        ok
    })
    .await;
    for (n, tx) in submit_range(5..15, &mut hashes, &mut jobs) {
        clients[targets[n as usize % 3]].submit(&tx).await.expect("accepted");
    }
    wait_for("the first jobs and transfers to finalize", Duration::from_secs(60), || async {
        clients[0].next_nonce(&faucet.account()).await.map(|n| n.0 >= 15).unwrap_or(false)
    })
    .await;

    validators[2].kill();
    let at_kill = height(&clients[0]).await;
    for (n, tx) in submit_range(15..25, &mut hashes, &mut jobs) {
        clients[targets[n as usize % 3]]
            .submit(&tx)
            .await
            .expect("accepted while one validator is down");
    }
    wait_for("the chain to go on with three validators", Duration::from_secs(60), || async {
        height(&clients[0]).await >= at_kill + 5
            && clients[1].next_nonce(&faucet.account()).await.map(|n| n.0 >= 25).unwrap_or(false)
    })
    .await;

    validators[2].start();
    for (n, tx) in submit_range(25..35, &mut hashes, &mut jobs) {
        clients[targets[n as usize % 3]].submit(&tx).await.expect("accepted");
    }
    let tip = height(&clients[0]).await;
    wait_for("the restarted validator to catch up", Duration::from_secs(90), || async {
        height(&clients[2]).await >= tip + 3
            && clients[2].next_nonce(&faucet.account()).await.map(|n| n.0 == 35).unwrap_or(false)
    })
    .await;

    // Every accepted transaction applied, exactly once (nonces are consecutive and all used).
    for h in &hashes {
        let s = clients[0].wait_tx(h, Duration::from_secs(30)).await.expect("finalized");
        assert_eq!(s.status, provernet_sdk::TxState::Applied, "{h}: {s:?}");
    }
    let mut heights = Vec::new();
    for c in &clients {
        let acc = c.account(&faucet.account()).await.expect("query").expect("faucet exists");
        assert_eq!(acc.nonce.0, 35);
        heights.push(height(c).await);
    }
    // Every submitted job is on every validator's chain, the restarted one included.
    assert_eq!(jobs.len(), 10);
    for id in &jobs {
        for c in &clients {
            let id: provernet_types::JobId = id.parse().expect("job id");
            let job =
                c.job(&id).await.expect("query").unwrap_or_else(|| panic!("job {id} missing"));
            assert_eq!(job.requester, faucet.account());
        }
    }
    // All four hold the same block at a common height.
    let common = heights.iter().copied().min().unwrap_or(0);
    let mut hashes_at = Vec::new();
    for c in &clients {
        hashes_at.push(c.block(common).await.expect("query").expect("block").hash);
    }
    assert!(
        hashes_at.windows(2).all(|w| w[0] == w[1]),
        "validators disagree at {common}: {hashes_at:?}"
    );

    // Blobs: uploaded to one validator, copied by every other over their p2p network (a blob
    // of several pieces, checked piece by piece), and downloadable from each.
    let data: Vec<u8> = (0..(2 << 20) + 4321).map(|i| (i % 253) as u8).collect();
    let blob = clients[0].upload(&faucet, &chain_id, data.clone()).await.expect("upload");
    for c in &clients {
        let start = std::time::Instant::now();
        loop {
            let single = provernet_sdk::Client::new(c.base()).expect("client");
            if let Some(got) = single.download(&blob.hash).await.expect("query") {
                assert_eq!(got, data, "{} serves the uploaded bytes", c.base());
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{} never got the blob", c.base());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[test]
fn genesis_and_validator_refuse_bad_input_with_hints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run =
        |args: &[&str]| Command::new(BIN).args(args).current_dir(dir.path()).output().expect("run");
    let out = run(&["genesis", "--out", "net", "--validators", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 validators is not allowed") && err.contains("hint:"), "{err}");
    assert!(run(&["genesis", "--out", "net", "--json"]).status.success());
    // Secrets are readable by their owner alone, from the moment they exist.
    use std::os::unix::fs::PermissionsExt;
    for secret in ["net/faucet.json", "net/validator-0/key.json"] {
        let mode = std::fs::metadata(dir.path().join(secret)).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret} is {mode:o}");
    }
    assert!(run(&["keys", "generate", "--out", "mine.json"]).status.success());
    let mode = std::fs::metadata(dir.path().join("mine.json")).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "keys generate wrote {mode:o}");
    let out = run(&["genesis", "--out", "net"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("already exists") && err.contains("hint:"),
        "{err}"
    );
    let out = run(&["validator", "--config", "missing.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing.toml") && err.contains("hint:"),
        "{err}"
    );
    // A key file that belongs to no validator of the network is named as the problem.
    std::fs::copy(dir.path().join("net/faucet.json"), dir.path().join("net/validator-0/key.json"))
        .expect("overwrite key");
    let out = run(&["validator", "--config", "net/validator-0/validator.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("key.json"), "{err}");
}
