//! The attacks of issue 14 through real processes (validators, prover nodes, the CLI), each
//! named after the attack it reproduces: the attacker gains nothing, no honest party pays, and
//! credits are conserved, checked from outside. Needs root, like every sandbox test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use provernet_types::{
    BoundedVec, Bytes, JobSpec, Keypair, MechanismKind, MicroCredits, NamedBlob, ProverSet,
    Resources, Seconds, Transaction, TxBody,
};
use serde_json::Value;
use std::time::Duration;
use support::*;

const STAKE: u64 = 100_000_000;

/// Signs `body` as `key` with its next nonce, submits it through validator 0 and waits for its
/// block; the transaction's status.
async fn send(net: &Net, key: &Keypair, body: TxBody) -> provernet_sdk::TxStatus {
    let chain = net.client.status().await.unwrap().chain_id;
    let nonce = net.client.next_nonce(&key.account()).await.unwrap();
    let tx = Transaction { signer: key.account(), nonce, body }.sign(key, &chain);
    let hash = tx.hash();
    net.client.submit(&tx).await.unwrap();
    net.client.wait_tx(&hash, Duration::from_secs(30)).await.unwrap()
}

/// Deploys a program through the CLI from executables at `prover` and `verifier` (paths).
fn deploy_paths(net: &Net, name: &str, prover: &str, verifier: &str) {
    let args = [
        "program",
        "deploy",
        "--name",
        name,
        "--prover",
        prover,
        "--verifier",
        verifier,
        "--input-name",
        "statement",
        // Every proof must have `proof` (a workflow may wire it).
        "--output-name",
        "proof",
        "--time",
        "20s",
    ];
    let v = net.cli_json(&args);
    assert!(v["program"].as_str().is_some(), "{v}");
}

fn script(net: &Net, name: &str, body: &str) -> String {
    let p = net.write(name, format!("#!/bin/sh\n{body}\n").as_bytes());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn micro(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v:#}"))
}

/// Every node still holds its whole stake and has no fault.
async fn nobody_slashed(net: &Net) {
    for n in &net.nodes {
        let p = net.prover(&n.account()).await;
        assert_eq!((micro(&p, "stake_micro_credits"), micro(&p, "faults")), (STAKE, 0), "{p:#}");
    }
}

/// Attacks 1, 2 and 3 on one network of four validators and three nodes on different ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_cannot_steal_collateral_slash_for_free_or_get_free_proofs() {
    let mut net = Net::many(6, 4, 3, &[], |i| i % 4).await;
    for i in 0..3 {
        net.start_node(i).await;
    }
    let faucet = account_of(&net.faucet_key);
    let verifier = bin_dir().join("winterfell-chain-verifier");
    let verifier = verifier.to_string_lossy();
    let statement = format!("statement={}", net.write("statement", b"3 1024"));

    // 1. A requester steals auction collateral: a program that exits 0 and writes nothing,
    // and one that writes 17 files, as reverse-Dutch jobs. Every node that locks reports the
    // failure; claims from nodes drawn one after the other fail the job as the program's.
    let nothing = script(&net, "nothing.sh", "exit 0");
    deploy_paths(&net, "writes-nothing", &nothing, &verifier);
    // Packaged with its interpreter alone (a network program sees only its own files): shell
    // built-ins only.
    let many = script(
        &net,
        "many.sh",
        "i=1; while [ $i -le 17 ]; do echo $i > /job/out/p$i; i=$((i+1)); done",
    );
    deploy_paths(&net, "writes-seventeen", &many, &verifier);
    // And one that leaves out the output its program declares: a proof the chain would refuse
    // to reveal. The node claims instead of committing to it.
    let other = script(&net, "other.sh", "echo x > /job/out/other");
    deploy_paths(&net, "leaves-out-its-output", &other, &verifier);
    let mut jobs = Vec::new();
    for program in ["writes-nothing", "writes-seventeen", "leaves-out-its-output"] {
        let before = net.balance(&faucet).await;
        let extra = ["--mechanism", "reverse-dutch", "--max-fee", "0.004", "--time", "10s"];
        let id = submit(&net, program, std::slice::from_ref(&statement), &extra);
        let v = net.wait_final(&id, Duration::from_secs(240)).await;
        assert_eq!(v["status"], "Failed(program)", "{program}: {v:#}\n{}", net.logs());
        let claims: Vec<&Value> = v["attempts"].as_array().unwrap().iter().collect();
        assert!(claims.len() >= 2 && claims.iter().all(|a| a["state"] == "ProgramError"), "{v:#}");
        let want =
            if program == "writes-nothing" { "no output" } else { "outputs break the rules" };
        assert!(claims.iter().all(|a| a["failure"] == want), "{v:#}");
        let paid = before - net.balance(&faucet).await;
        let fee = micro(&v, "fee_per_prover_micro_credits");
        assert_eq!(paid, fee + net.tx_fee().await, "{program}: one fee and the submission's");
        assert_eq!(micro(&v, "bounty_micro_credits"), 0, "nothing forfeited: {v:#}");
        jobs.push(id);
    }
    nobody_slashed(&net).await;

    // 2. Honest provers slashed for free: a job naming an input that was never uploaded does
    // not reach the chain at all.
    let faucet_key = Keypair::from_seed(read_seed(&net.faucet_key));
    let program: Value =
        net.client.get("/v1/programs/writes-nothing").await.unwrap().expect("deployed");
    let ghost =
        provernet_types::BlobRef { hash: provernet_types::BlobHash([0x6b; 32]), size: Bytes(4096) };
    let spec = JobSpec {
        program: program["id"].as_str().unwrap().parse().unwrap(),
        inputs: BoundedVec::try_from_vec(vec![NamedBlob {
            name: "statement".parse().unwrap(),
            blob: ghost,
        }])
        .unwrap(),
        resources: None,
        time_limit: Seconds(10),
        redundancy: 1,
        prover_set: ProverSet::Any,
        mechanism: MechanismKind::RandomWithFallback,
        max_fee: MicroCredits(1_000_000),
    };
    let chain = net.client.status().await.unwrap().chain_id;
    let nonce = net.client.next_nonce(&faucet_key.account()).await.unwrap();
    let tx = Transaction { signer: faucet_key.account(), nonce, body: TxBody::SubmitJob(spec) }
        .sign(&faucet_key, &chain);
    let refused = net.client.submit(&tx).await.expect_err("a job naming a missing blob");
    assert!(refused.to_string().contains("blob"), "{refused}");
    let status = net.client.tx(&tx.hash()).await.unwrap();
    assert!(status.as_ref().is_none_or(|s| s.height.is_none()), "{status:?}");
    nobody_slashed(&net).await;

    // 3. Free proofs: a Groth16 job whose verifying key is 332 random bytes. The validators say
    // they cannot verify; the prover is paid and the requester charged for the proof.
    deploy_groth16(&net);
    let mut inputs = groth16_inputs(&net, 64, 9);
    let junk: Vec<u8> = (0..332u32).map(|i| (i * 7919 % 251) as u8).collect();
    inputs[1] = format!("vk={}", net.write("junk-vk", &junk));
    let before = net.balance(&faucet).await;
    let id = submit(&net, "groth16-sha256", &inputs, &["--time", "20s"]);
    let v = net.wait_final(&id, Duration::from_secs(180)).await;
    assert_eq!(v["status"], "Failed(unverifiable)", "{v:#}\n{}", net.logs());
    let a = &v["attempts"][0];
    assert_eq!(a["state"], "CannotVerify", "{v:#}");
    let cannot = a["votes"].as_array().unwrap().iter().filter(|x| **x == "cannot_verify").count();
    assert!(cannot >= 3, "a quorum of the four validators: {v:#}");
    let fee = micro(&v, "fee_per_prover_micro_credits");
    net.wait_final(&id, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(before - net.balance(&faucet).await, fee + net.tx_fee().await, "no refund");

    // 3. A committee-verified program whose verifier fails (exit 2): the members say they
    // cannot verify, and the honest prover is paid instead of slashed.
    let failing = script(&net, "failing-verifier.sh", "exit 2");
    let prover = bin_dir().join("winterfell-chain-prover");
    deploy_paths(&net, "failing-verifier", &prover.to_string_lossy(), &failing);
    let id = submit(&net, "failing-verifier", std::slice::from_ref(&statement), &["--time", "20s"]);
    let v = net.wait_final(&id, Duration::from_secs(180)).await;
    assert_eq!(v["status"], "Failed(unverifiable)", "{v:#}\n{}", net.logs());
    assert_eq!(v["attempts"][0]["state"], "CannotVerify", "{v:#}");
    nobody_slashed(&net).await;
    net.assert_conserved(&net.accounts()).await;
}

fn read_seed(path: &std::path::Path) -> [u8; 32] {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["seed"].as_str().unwrap()).unwrap().try_into().unwrap()
}

/// 5. Paid without work: with redundancy 2, a second identity (played by this test) takes the
/// other attempt and waits for the honest node's proof to copy it. The honest node cannot
/// reveal until the copier commits or its deadline passes, so the copier has nothing to copy:
/// it is slashed for the missed deadline, and only the honest node is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_without_work_a_second_identity_cannot_copy_the_honest_proof() {
    let mut net = Net::many(7, 4, 1, &[], |_| 1).await;
    net.start_node(0).await;
    deploy_native(&net, "winterfell-chain");
    // The copier: funded by the faucet, registered as a prover with room for the job.
    let copier = Keypair::generate();
    let faucet_key = Keypair::from_seed(read_seed(&net.faucet_key));
    let to = copier.account();
    let st =
        send(&net, &faucet_key, TxBody::Transfer { to, amount: MicroCredits(200_000_000) }).await;
    assert_eq!(st.status, provernet_sdk::TxState::Applied, "{st:?}");
    let capacity = Resources {
        cores: provernet_types::MilliCores(4000),
        memory: Bytes::gib(8),
        gpus: provernet_types::GpuCount(0),
    };
    let body =
        TxBody::RegisterProver { capacity, labels: BoundedVec::new(), stake: MicroCredits(STAKE) };
    assert_eq!(send(&net, &copier, body).await.status, provernet_sdk::TxState::Applied);

    let statement = format!("statement={}", net.write("statement", b"3 2048"));
    let id =
        submit(&net, "winterfell-chain", &[statement], &["--redundancy", "2", "--time", "10s"]);
    // The copier accepts its attempt and then only watches.
    let mine = loop {
        let v = net.job(&id).await;
        let at = v["attempts"].as_array().unwrap().iter().position(|a| {
            a["prover"] == copier.account().to_string().as_str() && a["state"] == "Assigned"
        });
        if let Some(i) = at {
            break i as u8;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let st =
        send(&net, &copier, TxBody::AcceptJob { job: id.parse().unwrap(), attempt: mine }).await;
    assert_eq!(st.status, provernet_sdk::TxState::Applied, "{st:?}");
    let mut revealed_before_copier_ended = false;
    let v = loop {
        let v = net.job(&id).await;
        let attempts = v["attempts"].as_array().unwrap();
        let copier_running = attempts[usize::from(mine)]["state"] == "Running";
        if copier_running && attempts.iter().any(|a| !a["proof"].as_array().unwrap().is_empty()) {
            revealed_before_copier_ended = true;
        }
        if v["final"] == true {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!revealed_before_copier_ended, "the proof was public while the copier could commit");
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts[usize::from(mine)]["state"], "MissedDeadline", "{v:#}");
    let winner = &attempts[v["winner"].as_u64().unwrap() as usize];
    assert_eq!(winner["prover"], net.nodes[0].account().as_str());
    let cp = net.prover(&copier.account().to_string()).await;
    assert_eq!(micro(&cp, "faults"), 1, "{cp:#}");
    assert!(micro(&cp, "stake_micro_credits") < STAKE, "slashed: {cp:#}");
    let honest = net.prover(&net.nodes[0].account()).await;
    assert_eq!((micro(&honest, "faults"), micro(&honest, "completed")), (0, 1), "{honest:#}");
    let mut known = net.accounts();
    known.push(copier.account().to_string());
    net.assert_conserved(&known).await;
}
