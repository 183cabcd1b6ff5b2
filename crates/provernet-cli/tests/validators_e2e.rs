//! Many validators, one network, over real processes: four validators, prover nodes attached
//! to three different ones, jobs of the three natively verified programs and of a
//! committee-verified one submitted through validator 0 (so every program, input and proof
//! crosses between validators), and, mid-batch, a validator and a prover killed with SIGKILL
//! and restarted. Every job ends verified by a quorum of votes; credits are conserved on every
//! validator; no honest prover is slashed; every blob a job names downloads from every
//! validator, the restarted one included. Needs root, like every sandbox test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use provernet_sdk::Client;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

const STAKE: u64 = 100_000_000;

/// The node (by index) whose key is `account`.
fn node_of(net: &Net, account: &str) -> Option<usize> {
    net.nodes.iter().position(|n| n.account() == account)
}

/// Every blob `job` names, with the programs' executables: `(hash, size)`.
async fn blobs_of(net: &Net, job: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let named = |list: &Value, out: &mut Vec<(String, u64)>| {
        for f in list.as_array().into_iter().flatten() {
            out.push((f["hash"].as_str().unwrap().to_owned(), f["size"].as_u64().unwrap()));
        }
    };
    named(&job["inputs"], &mut out);
    for a in job["attempts"].as_array().unwrap() {
        named(&a["proof"], &mut out);
    }
    let program: Value = net
        .client
        .get(&format!("/v1/programs/{}", job["program"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    // A program's code: an executable's blob, or an image's manifest, config and layers.
    let code = |c: &Value, out: &mut Vec<(String, u64)>| {
        if c["kind"] == "image" {
            let mut blobs = vec![c["manifest"].clone(), c["config"].clone()];
            blobs.extend(c["layers"].as_array().unwrap().iter().map(|l| l["blob"].clone()));
            named(&Value::Array(blobs), out);
        } else {
            named(&Value::Array(vec![c["blob"].clone()]), out);
        }
    };
    code(&program["prover"], &mut out);
    if program["verifier"]["kind"] == "program" {
        code(&program["verifier"]["code"], &mut out);
    }
    assert!(out.len() >= 2, "a job's blobs: {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_prove_through_one_with_data_everywhere_and_real_quorums() {
    // Nodes 0..3 attached to validators 1, 2, 3, 1: none to validator 0, where jobs go in.
    let mut net = Net::many(4, 4, 4, &[], |i| 1 + i % 3).await;
    for i in 0..4 {
        net.start_node(i).await;
    }
    deploy_groth16(&net);
    deploy_native(&net, "winterfell-chain");
    deploy_native(&net, "plonky3-keccak");
    deploy_committee_program_as(&net, "winterfell-chain", "winterfell-committee");

    let mut jobs: Vec<(String, String)> = Vec::new();
    for t in 0..2u8 {
        let g16 = groth16_inputs(&net, 64, t);
        let wf = vec![format!(
            "statement={}",
            net.write(&format!("wf-{t}"), format!("{} 4096", 3 + t).as_bytes())
        )];
        let p3 = vec![format!(
            "statement={}",
            net.write(&format!("p3-{t}"), format!("{} 32", 11 + t).as_bytes())
        )];
        let wc = vec![format!(
            "statement={}",
            net.write(&format!("wc-{t}"), format!("{} 1024", 5 + t).as_bytes())
        )];
        for (program, inputs) in [
            ("groth16-sha256", &g16),
            ("winterfell-chain", &wf),
            ("plonky3-keccak", &p3),
            ("winterfell-committee", &wc),
        ] {
            jobs.push((program.to_owned(), submit(&net, program, inputs, &["--time", "20s"])));
        }
    }

    // Mid-batch: kill validator 2, and a node while it proves (restarted at once, it resumes
    // its attempt), then bring validator 2 back a few seconds later.
    let start = Instant::now();
    let victim = loop {
        let mut found = None;
        for (_, id) in &jobs {
            let v = net.job(id).await;
            for a in v["attempts"].as_array().into_iter().flatten() {
                if a["state"] == "Running" {
                    if let Some(i) = node_of(&net, a["prover"].as_str().unwrap()) {
                        if net.nodes[i].proc.as_ref().is_some_and(|p| p.has_child()) {
                            found = Some(i);
                        }
                    }
                }
            }
        }
        if let Some(i) = found {
            break i;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no job started running\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    net.kill_validator(2);
    net.nodes[victim].kill();
    net.nodes[victim].start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    net.restart_validator(2);

    let mut finals = Vec::new();
    for (program, id) in &jobs {
        let v = net.wait_final(id, Duration::from_secs(300)).await;
        assert_eq!(v["status"], "Verified", "{program}: {v:#}\n{}", net.logs());
        finals.push((program.clone(), v));
    }

    // Every proof was decided by a quorum: three of the four validators for the natively
    // verified programs, two of the three committee members for the other.
    for (program, v) in &finals {
        let winner = &v["attempts"][v["winner"].as_u64().unwrap() as usize];
        let votes = winner["votes"].as_array().unwrap();
        let valid = votes.iter().filter(|x| **x == "valid").count();
        let seats = winner["committee"].as_array().unwrap().len();
        if program == "winterfell-committee" {
            assert_eq!(seats, 3, "{v:#}");
            assert!(valid >= 2, "{program}: {valid} of {seats}: {v:#}");
        } else {
            assert_eq!(seats, 4, "every validator votes: {v:#}");
            assert!(valid >= 3, "{program}: {valid} of {seats}: {v:#}");
        }
        // Proven by a node attached to another validator than the one the job went in through.
        let prover = winner["prover"].as_str().unwrap();
        assert!(node_of(&net, prover).is_some(), "{v:#}");
    }

    // The CLI fails over too: given a dead API first, it uses the next, and fetches and
    // checks a proof whose blobs it downloads from whichever validator holds them.
    let (_, id) = &jobs[2];
    let list = format!("http://127.0.0.1:1,{}", net.apis[3]);
    let out = net.path("fetched-through-3");
    let args = ["proof", "fetch", id, "--out", &out.to_string_lossy(), "--json"];
    let (ok, stdout, stderr) = net.cli_through(&list, &net.faucet_key, &args);
    assert!(ok, "{stderr}");
    let f: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(f["verdict"], "valid", "{f}");

    // The node attached to validator 2 carried on through another validator's API.
    let log = net.nodes[1].log();
    assert!(log.contains("moved to another validator's API"), "{log}");

    // No honest prover was slashed, the restarted one included.
    let all: Vec<&Value> = finals.iter().map(|(_, v)| v).collect();
    for n in &net.nodes {
        let p = net.prover(&n.account()).await;
        assert_eq!(p["faults"], 0, "{p}\n{all:#?}\n{}", net.logs());
        assert!(p["stake_micro_credits"].as_u64().unwrap() >= STAKE, "{p}");
    }

    // Every validator, validator 2 included, caught up to the same chain: credits are
    // conserved on each, each holds every blob a job names and serves it.
    let height = net.client.status().await.unwrap().height;
    let accounts = net.accounts();
    for api in &net.apis {
        let c = Client::new(api).unwrap();
        wait_until("a validator to catch up", Duration::from_secs(120), || {
            let c = c.clone();
            async move { c.status().await.is_ok_and(|s| s.height >= height) }
        })
        .await;
        net.assert_conserved_on(&c, &accounts).await;
        // Settled, the jobs left every validator's live state for its archive (the live
        // listing no longer has them), and each validator serves them from there.
        let ids: Vec<&str> = finals.iter().map(|(_, v)| v["id"].as_str().unwrap()).collect();
        wait_until("the jobs to be archived", Duration::from_secs(60), || {
            let (c, ids) = (c.clone(), ids.clone());
            async move {
                let live = c.jobs(&provernet_sdk::types::JobQuery::default()).await;
                live.is_ok_and(|p| {
                    p.items.iter().all(|j| !ids.contains(&j.id.to_string().as_str()))
                })
            }
        })
        .await;
        for (_, v) in &finals {
            let id = v["id"].as_str().unwrap();
            let there = c.job(&id.parse().unwrap()).await.unwrap().unwrap();
            assert_eq!(
                there.status,
                provernet_sdk::types::JobStatus::Verified,
                "{api}: {there:#?}"
            );
            for (hash, size) in blobs_of(&net, v).await {
                let h: provernet_types::BlobHash = hash.parse().unwrap();
                let start = Instant::now();
                let bytes = loop {
                    if let Some(b) = c.download(&h).await.unwrap() {
                        break b;
                    }
                    assert!(start.elapsed() < Duration::from_secs(120), "{api} lacks blob {hash}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                };
                assert_eq!(bytes.len() as u64, size, "{api}: blob {hash}");
            }
        }
    }
}
