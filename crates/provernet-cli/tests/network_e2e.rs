//! The job lifecycle across real processes on loopback (a validator and prover nodes started
//! as `provernet validator` and `provernet node`), driven through the requester CLI: proofs
//! fetched and verified independently, bad input refused with hints, a program that fails
//! everywhere, a prover killed with SIGKILL after accepting (restarted, and not), and a node
//! that corrupts its proofs. Credits are checked for conservation from outside after each.
//! Needs root, like every sandbox test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

const STAKE: u64 = 100_000_000;

/// Waits until attempt 0 of `job` is running on node `i` and its prover is inside the
/// sandbox, then kills the node with SIGKILL.
async fn kill_while_proving(net: &mut Net, job: &str, i: usize) {
    let start = Instant::now();
    loop {
        let v = net.job(job).await;
        let a = &v["attempts"][0];
        if a["state"] == "Running"
            && a["prover"] == net.nodes[i].account().as_str()
            && net.nodes[i].proc.as_ref().is_some_and(|p| p.has_child())
        {
            net.nodes[i].kill();
            return;
        }
        assert!(
            a["state"] == "Assigned" || a["state"] == "Running" || a.is_null(),
            "the attempt moved on before the node could be killed: {v:#}"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "never saw the job running: {v:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requester_cli_proves_fetches_and_refuses_bad_input() {
    let mut net = Net::new(0, 3, &[]).await;
    for i in 0..3 {
        net.start_node(i).await;
    }
    deploy_groth16(&net);
    deploy_committee_program(&net, "winterfell-chain");
    deploy_committee_program(&net, "plonky3-keccak");

    // The quote comes from the chain.
    let q = net.cli_json(&["quote", "--cores", "1", "--memory", "1GiB", "--time", "30s"]);
    assert_eq!(q["prices"], "chain", "{q}");

    // Groth16 (verified natively by the validator), winterfell and Plonky3 (by committees of
    // provers): each waits to Verified, and each proof fetched verifies here.
    let g16 = groth16_inputs(&net, 64, 1);
    let statement = net.write("statement", b"3 4096");
    let wf = vec![format!("statement={statement}")];
    let p3 = vec![format!("statement={}", net.write("p3-statement", b"11 32"))];
    for (program, inputs) in
        [("groth16-sha256", &g16), ("winterfell-chain", &wf), ("plonky3-keccak", &p3)]
    {
        let mut args = vec!["job", "submit", program, "--wait"];
        for i in inputs.iter() {
            args.extend(["--input", i.as_str()]);
        }
        let v = net.cli_json(&args);
        assert_eq!(v["status"], "Verified", "{v:#}");
        let id = v["id"].as_str().unwrap();
        let out = net.path(&format!("fetched-{program}"));
        let f = net.cli_json(&["proof", "fetch", id, "--out", &out.to_string_lossy()]);
        assert_eq!(f["verdict"], "valid", "{f}");
        assert!(out.join("proof/proof").is_file());
        let s = net.cli_json(&["job", "status", id]);
        assert_eq!(s["status"], "Verified");
    }
    let listed = net.cli_json(&["job", "list", "--mine"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");

    // A program that fails on every node: Failed(program), the requester pays, nobody is
    // punished.
    let faucet = account_of(&net.faucet_key);
    let before = net.balance(&faucet).await;
    let bad = net.write("bad-statement", b"this is not a statement");
    let id = submit(&net, "winterfell-chain", &[format!("statement={bad}")], &[]);
    let v = net.wait_final(&id, Duration::from_secs(120)).await;
    assert_eq!(v["status"], "Failed(program)", "{v:#}");
    let fee = v["fee_per_prover_micro_credits"].as_u64().unwrap();
    assert!(fee > 0);
    let charged = before - net.balance(&faucet).await;
    assert_eq!(
        charged,
        fee + net.tx_fee().await,
        "the requester pays the fee once (and the submission's transaction fee)"
    );
    let errors: Vec<&Value> =
        v["attempts"].as_array().unwrap().iter().filter(|a| a["state"] == "ProgramError").collect();
    assert!(errors.len() >= 2, "{v:#}");
    for n in &net.nodes {
        let p = net.prover(&n.account()).await;
        assert_eq!(p["faults"], 0, "{p}");
        assert_eq!(p["stake_micro_credits"], STAKE, "{p}");
    }

    // Bad input: each refused by the chain's own rules (asked before anything is uploaded or
    // paid), with its code and a hint.
    let refused = |args: &[&str], want: &str| {
        let (ok, _, err) = net.cli(args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: want `{want}` in:\n{err}");
        assert!(err.contains("hint:"), "{args:?}: no hint in:\n{err}");
    };
    let stmt = format!("statement={statement}");
    refused(
        &["job", "submit", "no-such-program", "--input", &stmt],
        "no program `no-such-program`",
    );
    refused(&["job", "submit", "winterfell-chain"], "missing_input)");
    refused(
        &["job", "submit", "winterfell-chain", "--input", &stmt, "--cores", "64"],
        "no_prover_can_fit)",
    );
    refused(
        &["job", "submit", "winterfell-chain", "--input", &stmt, "--max-fee", "0.000001"],
        "fee_below_quote)",
    );
    // A job that has finished cannot be cancelled.
    let (ok, _, err) = net.cli(&["job", "cancel", &id]);
    assert!(!ok && err.contains("Failed") && err.contains("hint:"), "{err}");
    // A time limit below the program's expected run time is allowed, with a warning.
    let (ok, out, err) =
        net.cli(&["job", "submit", "winterfell-chain", "--input", &stmt, "--time", "5s", "--json"]);
    assert!(ok && err.contains("warning: --time 5s is below"), "{err}");
    let short: Value = serde_json::from_str(&out).unwrap();
    let v = net.wait_final(short["job"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(v["status"], "Verified", "{v:#}");
    let poor = net.path("poor.json");
    std::fs::write(
        &poor,
        serde_json::json!({"seed": hex::encode(provernet_types::Keypair::generate().seed())})
            .to_string(),
    )
    .unwrap();
    let (ok, _, err) = net.cli_as(&poor, &["job", "submit", "winterfell-chain", "--input", &stmt]);
    assert!(!ok && err.contains("unknown_account)") && err.contains("hint:"), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["job", "status", &id])
        .env("PROVERNET_API", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is a validator running"), "{err}");
    net.assert_conserved(&net.accounts()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_prover_resumes_after_restart_or_falls_back() {
    let mut net = Net::new(1, 3, &[]).await;
    // One node first, so the jobs below are assigned to it.
    net.start_node(0).await;
    deploy_groth16(&net);
    let inputs = groth16_inputs(&net, 256, 1);
    let node0 = net.nodes[0].account();

    // Killed while proving and restarted at once: it finds the attempt still running on the
    // chain, with time to run it again, and does. One attempt, no fault, no refund.
    let id = submit(&net, "groth16-sha256", &inputs, &["--time", "20s"]);
    kill_while_proving(&mut net, &id, 0).await;
    net.nodes[0].start();
    let v = net.wait_final(&id, Duration::from_secs(120)).await;
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["fallback_refund_micro_credits"], 0);
    assert!(net.nodes[0].log().contains("resuming an accepted attempt"), "{}", net.logs());
    assert_eq!(net.prover(&node0).await["faults"], 0);

    // Killed while proving and not restarted: the deadline passes, the job falls back to
    // another node and verifies; the requester gets half the fee back, the dead node pays.
    let inputs = groth16_inputs(&net, 256, 2);
    let id = submit(&net, "groth16-sha256", &inputs, &["--time", "10s"]);
    kill_while_proving(&mut net, &id, 0).await;
    net.start_node(1).await;
    net.start_node(2).await;
    let v = net.wait_final(&id, Duration::from_secs(180)).await;
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["prover"], node0.as_str());
    assert_eq!(attempts[0]["state"], "MissedDeadline", "{v:#}");
    let winner = &attempts[v["winner"].as_u64().unwrap() as usize];
    assert_ne!(winner["prover"], node0.as_str());
    let fee = v["fee_per_prover_micro_credits"].as_u64().unwrap();
    assert_eq!(v["fallback_refund_micro_credits"].as_u64().unwrap(), fee / 2, "{v:#}");
    let dead = net.prover(&node0).await;
    assert_eq!(dead["faults"], 1, "{dead}");
    assert!(dead["stake_micro_credits"].as_u64().unwrap() < STAKE, "{dead}");
    net.assert_conserved(&net.accounts()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_proof_is_rejected_slashed_and_reassigned() {
    let mut net = Net::new(2, 3, &[0]).await;
    // Only the corrupting node at first, so the job is assigned to it.
    net.start_node(0).await;
    deploy_groth16(&net);
    let inputs = groth16_inputs(&net, 64, 3);
    let id = submit(&net, "groth16-sha256", &inputs, &["--time", "20s"]);
    let bad = net.nodes[0].account();
    support::wait_until("the job to be accepted", Duration::from_secs(60), || {
        let (client, id, bad) = (net.client.clone(), id.clone(), bad.clone());
        async move {
            let v = client.job(&id.parse().unwrap()).await.unwrap().unwrap();
            v.attempts.first().is_some_and(|a| {
                a.prover.to_string() == bad
                    && a.state != provernet_sdk::types::AttemptState::Assigned
            })
        }
    })
    .await;
    net.start_node(1).await;
    net.start_node(2).await;
    let v = net.wait_final(&id, Duration::from_secs(120)).await;
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["prover"], bad.as_str());
    assert_eq!(attempts[0]["state"], "Rejected", "{v:#}");
    let winner = &attempts[v["winner"].as_u64().unwrap() as usize];
    assert_ne!(winner["prover"], bad.as_str());
    let p = net.prover(&bad).await;
    assert_eq!(p["faults"], 1, "{p}");
    assert!(p["stake_micro_credits"].as_u64().unwrap() < STAKE, "slashed: {p}");
    // The proof the requester fetches is the honest one, and it verifies here.
    let out = net.path("fetched");
    let f = net.cli_json(&["proof", "fetch", &id, "--out", &out.to_string_lossy()]);
    assert_eq!(f["verdict"], "valid", "{f}");
    net.assert_conserved(&net.accounts()).await;
}

/// Jobs allocated by market rather than by draw, proven by real nodes: an open race (nodes
/// join it), a reverse Dutch auction (a node locks once the ramp reaches its ask) and a sealed
/// lowest-bid auction (nodes bid, reveal, and the winner runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_races_and_win_auctions() {
    let mut net = Net::new(3, 3, &[]).await;
    for i in 0..3 {
        net.start_node(i).await;
    }
    deploy_committee_program(&net, "winterfell-chain");
    let statement = net.write("statement", b"3 1024");
    let inputs = vec![format!("statement={statement}")];
    let max_fee = 1_000_000; // 1 credit, far above the quote
    let faucet = account_of(&net.faucet_key);
    for mechanism in ["open-race", "reverse-dutch", "lowest-bid"] {
        let before = net.balance(&faucet).await;
        let id = submit(
            &net,
            "winterfell-chain",
            &inputs,
            &["--mechanism", mechanism, "--max-fee", "1", "--time", "30s"],
        );
        let v = net.wait_final(&id, Duration::from_secs(120)).await;
        let quote = v["fee_per_prover_micro_credits"].as_u64().unwrap();
        assert_eq!(v["status"], "Verified", "{mechanism}: {v:#}\n{}", net.logs());
        assert_eq!(v["mechanism"], mechanism);
        let winner = &v["attempts"][v["winner"].as_u64().unwrap() as usize];
        let price = winner["price_micro_credits"].as_u64().unwrap();
        let charged = before - net.balance(&faucet).await - net.tx_fee().await;
        assert_eq!(charged, price, "{mechanism}: the requester pays the winning price: {v:#}");
        match mechanism {
            "open-race" => {
                assert_eq!(winner["race"], true, "{v:#}");
                assert_eq!(price, quote);
            }
            // The nodes ask the quote: the Dutch lock lands near the start of the ramp, and
            // the lowest sealed bid is the quote itself.
            "reverse-dutch" => {
                assert_eq!(winner["race"], false, "locked, not raced: {v:#}");
                assert!((quote..max_fee).contains(&price), "{v:#}");
                assert_eq!(winner["collateral_micro_credits"].as_u64().unwrap(), 10 * price);
            }
            _ => {
                assert_eq!(winner["race"], false, "won by bid, not raced: {v:#}");
                assert_eq!(price, quote, "{v:#}");
            }
        }
    }
    for n in &net.nodes {
        let p = net.prover(&n.account()).await;
        assert_eq!(
            (p["faults"].as_u64(), p["stake_micro_credits"].as_u64()),
            (Some(0), Some(STAKE)),
            "{p}"
        );
    }
    net.assert_conserved(&net.accounts()).await;
}
