//! The README's main command, end to end: `provernet devnet --exit-when-done --json` starts a
//! validator (or four) and three prover nodes as real processes, deploys the built-in programs
//! and proves a mixed batch of real jobs (Groth16, winterfell and Plonky3 verified natively by
//! the validators, and a segmented winterfell chain run by the chain as a workflow: four leaf
//! proofs and a binary tree of joins, verified by committees of provers). Needs root, like
//! every sandbox test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_provernet");

/// Runs `provernet devnet --exit-when-done --json` with `args` in `dir`; its JSON summary.
fn devnet(dir: &Path, args: &[&str]) -> Value {
    // The built-in programs are workspace binaries in the same target directory.
    let programs = Path::new(BIN).parent().unwrap();
    let out = Command::new(BIN)
        .args(["devnet", "--exit-when-done", "--json"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("devnet"))
        .arg("--programs-dir")
        .arg(programs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "devnet failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON summary")
}

#[test]
fn devnet_proves_a_mixed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let summary = devnet(
        dir.path(),
        &["--jobs-per-program", "3", "--api-port", "18380", "--p2p-port", "18390"],
    );
    assert_eq!(summary["all_verified"], true, "{summary:#}");
    let jobs = summary["jobs"].as_array().unwrap();
    // Three jobs per program, and the workflow: four segments of one chain, 2 + 1 joins.
    assert_eq!(jobs.len(), 3 * 3 + 4 + 3);
    assert_eq!(summary["workflow"]["status"], "verified", "{summary:#}");
    assert_eq!(summary["workflow"]["nodes"], 7);
    let nodes: BTreeSet<&str> = jobs.iter().filter_map(|j| j["node"].as_str()).collect();
    assert_eq!(
        nodes,
        ["join-1-00", "join-1-01", "join-2-00", "leaf-00", "leaf-01", "leaf-02", "leaf-03"]
            .into_iter()
            .collect()
    );
    let mut programs = BTreeSet::new();
    let mut provers = BTreeSet::new();
    for j in jobs {
        assert_eq!(j["state"], "Verified", "{j}");
        assert_eq!(j["verify"], "Verified", "{j}");
        assert!(j["fee_micro_credits"].as_u64().unwrap() > 0, "{j}");
        assert!(j["prove_ms"].as_u64().is_some(), "{j}");
        programs.insert(j["program"].as_str().unwrap().to_owned());
        provers.insert(j["provers"][0].as_str().unwrap().to_owned());
    }
    assert_eq!(programs.len(), 4, "{programs:?}");
    assert!(programs.contains("winterfell-chain-join"), "{programs:?}");
    // Random assignment spreads sixteen jobs over more than one of the three nodes (all on one:
    // probability 3 × 3⁻¹⁶).
    assert!(provers.len() >= 2, "{provers:?}");
    // The programs are images: every node unpacked the four provers and the join's verifier,
    // and the layer of C libraries they all carry once (the same files make the same layer).
    for i in 0..3 {
        let layers = dir.path().join(format!("devnet/prover-{i}/data/images/layers"));
        let n = std::fs::read_dir(&layers)
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
        assert!(
            (5..=10).contains(&n),
            "node {i} holds {n} unpacked layers in {}",
            layers.display()
        );
    }
}

#[test]
fn a_four_validator_devnet_proves_a_batch_through_nodes_on_other_validators() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--validators", "4", "--jobs-per-program", "1"];
    let summary =
        devnet(dir.path(), &[&args[..], &["--api-port", "18400", "--p2p-port", "18410"]].concat());
    assert_eq!(summary["all_verified"], true, "{summary:#}");
    assert_eq!(summary["validators"], 4, "{summary:#}");
    let jobs = summary["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3 + 4 + 3);
    assert_eq!(summary["workflow"]["status"], "verified", "{summary:#}");
    for j in jobs {
        assert_eq!(j["state"], "Verified", "{j}");
    }
    // The four validators' logs show each of them voting on built-in proofs.
    for v in 0..4 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("devnet/logs/validator-{v}.log")))
                .unwrap();
        assert!(log.contains("verified natively; voting"), "validator {v} never voted");
    }
}
