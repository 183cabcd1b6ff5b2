//! Workflows across real processes: three validators, four prover nodes attached to different
//! validators, and a segmented proof of eight leaves and a binary tree of joins submitted as
//! one workflow file through the CLI. The requester's client is SIGKILLed right after the
//! submission and a prover node is SIGKILLed while it runs a node's job: the chain still runs
//! the graph to its root, whose proof verifies here. Needs root, like every sandbox test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

async fn workflow(net: &Net, id: &str) -> Value {
    net.client.get(&format!("/v1/workflows/{id}")).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_of_eight_segments_survives_its_client_and_a_killed_prover() {
    let mut net = Net::many(13, 3, 4, &[], |i| i % 3).await;
    for i in 0..4 {
        net.start_node(i).await;
    }
    deploy_native(&net, "winterfell-chain");
    deploy_join(&net);

    // The workflow file, written by the CLI: 8 leaves of 2^14 rows (long enough to be caught
    // running), 4 + 2 + 1 joins.
    let flow = net.path("flow.yaml");
    let (ok, _, err) = net.cli(&[
        "workflow",
        "tree",
        "--leaves",
        "8",
        "--rows",
        "16384",
        "--time",
        "20s",
        "--out",
        &flow.to_string_lossy(),
    ]);
    assert!(ok, "{err}");

    // Submitted through validator 1, by a client that then follows it; the client is killed
    // as soon as it says the workflow is on the chain.
    let mut client = Command::new(BIN)
        .args(["workflow", "submit", &flow.to_string_lossy(), "--wait"])
        .env("PROVERNET_API", &net.apis[1])
        .env("PROVERNET_KEY", &net.faucet_key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = client.stderr.take().unwrap();
    let mut id = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("submitted workflow ") {
            id = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
        assert!(!line.starts_with("error"), "{line}\n{}", net.logs());
    }
    assert_eq!(id.len(), 64, "the client printed the workflow's id");
    client.kill().unwrap();
    client.wait().unwrap();
    let w = workflow(&net, &id).await;
    assert_eq!(w["nodes"].as_array().map(Vec::len), Some(15), "{w:#}");
    assert_eq!(w["status"], "running");

    // A prover is killed while it runs one of the leaves.
    let start = Instant::now();
    let (killed, killed_job) = 'found: loop {
        let w = workflow(&net, &id).await;
        for n in w["nodes"].as_array().unwrap() {
            if n["status"] != "job" {
                continue;
            }
            let job = net.job(n["job"].as_str().unwrap()).await;
            for a in job["attempts"].as_array().unwrap() {
                if a["state"] != "Running" {
                    continue;
                }
                let Some(i) = net.nodes.iter().position(|x| a["prover"] == x.account().as_str())
                else {
                    continue;
                };
                if net.nodes[i].proc.as_ref().is_some_and(|p| p.has_child()) {
                    net.nodes[i].kill();
                    break 'found (i, n["job"].as_str().unwrap().to_owned());
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "never saw a node proving: {w:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The chain runs the graph to its root without the client.
    let start = Instant::now();
    let w = loop {
        let w = workflow(&net, &id).await;
        if w["final"] == true {
            break w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "workflow not final after 10 minutes: {w:#}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(w["status"], "verified", "{w:#}\n{}", net.logs());
    for n in w["nodes"].as_array().unwrap() {
        assert_eq!(
            (n["status"].as_str(), n["job_status"].as_str()),
            (Some("done"), Some("Verified")),
            "{n}"
        );
    }
    // The killed node's job fell back to another prover.
    let job = net.job(&killed_job).await;
    let attempts = job["attempts"].as_array().unwrap();
    let dead = net.nodes[killed].account();
    assert!(
        attempts.iter().any(|a| a["prover"] == dead.as_str() && a["state"] != "Verified"),
        "{job:#}"
    );
    let winner = &attempts[job["winner"].as_u64().unwrap() as usize];
    assert_ne!(winner["prover"], dead.as_str(), "{job:#}");
    // The nodes' jobs ran on several provers; each join read its children's winning proofs.
    let mut provers = std::collections::BTreeSet::new();
    for n in w["nodes"].as_array().unwrap() {
        let j = net.job(n["job"].as_str().unwrap()).await;
        let won = &j["attempts"][j["winner"].as_u64().unwrap() as usize];
        provers.insert(won["prover"].as_str().unwrap().to_owned());
        for wire in n["wires"].as_array().unwrap() {
            let src =
                w["nodes"].as_array().unwrap().iter().find(|m| m["name"] == wire["node"]).unwrap();
            let sj = net.job(src["job"].as_str().unwrap()).await;
            let proof =
                &sj["attempts"][sj["winner"].as_u64().unwrap() as usize]["proof"][0]["hash"];
            let input = j["inputs"].as_array().unwrap().iter().find(|i| i["name"] == wire["input"]);
            assert_eq!(input.map(|i| &i["hash"]), Some(proof), "{}", n["name"]);
        }
    }
    assert!(provers.len() >= 2, "{provers:?}");

    // The root's proof, fetched from validator 2 and verified here by the join's verifier.
    let root = w["nodes"].as_array().unwrap().last().unwrap();
    assert_eq!(root["name"], "join-3-00");
    let out = net.path("root");
    let (ok, stdout, err) = net.cli_through(
        &net.apis[2],
        &net.faucet_key,
        &[
            "proof",
            "fetch",
            root["job"].as_str().unwrap(),
            "--out",
            &out.to_string_lossy(),
            "--json",
        ],
    );
    assert!(ok, "{err}\n{stdout}");
    let f: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(f["verdict"], "valid", "the root verifies here: {f}");
    net.assert_conserved(&net.accounts()).await;
}
