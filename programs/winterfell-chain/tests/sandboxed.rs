//! The winterfell prover and verifier under the node's sandbox: prove → verify accepts; a
//! tampered proof, or the proof checked against another start or length → verify rejects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sandbox::{run_with_bytes, Limits, Sandbox, Termination};
use provernet_types::{Bytes, MilliCores};
use std::path::Path;
use std::time::Duration;

const PROVER: &str = env!("CARGO_BIN_EXE_winterfell-chain-prover");
const VERIFIER: &str = env!("CARGO_BIN_EXE_winterfell-chain-verifier");

#[test]
fn prove_and_verify_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = Sandbox::with_sibling_helper(d.join("scratch"))
        .expect("the sandbox helper is missing: build the workspace first");
    let limits = Limits::new(MilliCores(2000), Bytes(1 << 30), Duration::from_secs(60));
    let statement = b"3 4096";
    let o = run_with_bytes(
        &sb,
        d,
        "prove",
        Path::new(PROVER),
        &[("statement", statement)],
        &[],
        limits.clone(),
    )
    .unwrap();
    assert!(o.succeeded(), "{o:#?}");
    let proof = std::fs::read(d.join("out-prove/proof")).unwrap();
    let verify = |tag: &str, st: &[u8], p: &[u8]| {
        run_with_bytes(
            &sb,
            d,
            tag,
            Path::new(VERIFIER),
            &[("statement", st)],
            &[("proof", p)],
            limits.clone(),
        )
        .unwrap()
        .termination
    };
    assert_eq!(verify("ok", statement, &proof), Termination::Exited(0));
    assert_eq!(verify("start", b"4 4096", &proof), Termination::Exited(1));
    assert_eq!(verify("length", b"3 8192", &proof), Termination::Exited(1));
    let mut bad = proof.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert_eq!(verify("tampered", statement, &bad), Termination::Exited(1));
    assert_eq!(verify("malformed", b"3 1000", &proof), Termination::Exited(2));
}

#[test]
fn segments_prove_separately_and_join_in_the_sandbox() {
    const JOIN: &str = env!("CARGO_BIN_EXE_winterfell-chain-join");
    const JOIN_VERIFIER: &str = env!("CARGO_BIN_EXE_winterfell-chain-join-verifier");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = Sandbox::with_sibling_helper(d.join("scratch"))
        .expect("the sandbox helper is missing: build the workspace first");
    let limits = Limits::new(MilliCores(1000), Bytes(512 << 20), Duration::from_secs(60));
    // Four leaf jobs, each started from the previous one's proven end.
    let mut at: u128 = 11;
    let mut leaves = Vec::new();
    let mut starts = Vec::new();
    for i in 0..4 {
        starts.push(at);
        let st = format!("{at} 512");
        let tag = format!("leaf{i}");
        let o = run_with_bytes(
            &sb,
            d,
            &tag,
            Path::new(PROVER),
            &[("statement", st.as_bytes())],
            &[],
            limits.clone(),
        )
        .unwrap();
        assert!(o.succeeded(), "{o:#?}");
        let file = std::fs::read(d.join(format!("out-{tag}/proof"))).unwrap();
        at = winterfell_chain::verify(winterfell_chain::Statement { start: at, steps: 512 }, &file)
            .unwrap()
            .unwrap();
        leaves.push(file);
    }
    let statement = b"11 512 4";
    let join = |tag: &str, segs: &[Vec<u8>]| {
        let names: Vec<String> = (0..segs.len()).map(|i| format!("seg-{i:04}")).collect();
        let mut inputs: Vec<(&str, &[u8])> = vec![("statement", statement)];
        inputs.extend(names.iter().map(String::as_str).zip(segs.iter().map(Vec::as_slice)));
        run_with_bytes(&sb, d, tag, Path::new(JOIN), &inputs, &[], limits.clone()).unwrap()
    };
    let o = join("join", &leaves);
    assert!(o.succeeded(), "{}", o.stderr_tail);
    let receipt = std::fs::read(d.join("out-join/proof")).unwrap();
    let verify = |tag: &str, r: &[u8]| {
        run_with_bytes(
            &sb,
            d,
            tag,
            Path::new(JOIN_VERIFIER),
            &[("statement", statement)],
            &[("proof", r)],
            limits.clone(),
        )
        .unwrap()
        .termination
    };
    assert_eq!(verify("jv-ok", &receipt), Termination::Exited(0));
    // A reordered join and a join with a gap are refused by the join prover…
    let mut reordered = leaves.clone();
    reordered.swap(2, 3);
    let o = join("join-reordered", &reordered);
    assert_eq!(o.termination, Termination::Exited(2));
    assert!(o.stderr_tail.contains("segment 2"), "{}", o.stderr_tail);
    let mut gap = leaves.clone();
    gap[1] =
        winterfell_chain::prove(winterfell_chain::Statement { start: 999, steps: 512 }).unwrap();
    assert_eq!(join("join-gap", &gap).termination, Termination::Exited(2));
    // …and a forged receipt with them by the join verifier.
    let forged = winterfell_chain::segments::encode_receipt(&reordered);
    assert_eq!(verify("jv-reordered", &forged), Termination::Exited(1));
    assert_eq!(verify("jv-garbage", b"junk"), Termination::Exited(1));

    // An aggregation tree: two joins of two leaves, then a join of their receipts, which is
    // the same receipt as the flat join's and verifies the same way.
    let tree_join = |tag: &str, st: &str, parts: &[(&str, &[u8])]| {
        let mut inputs: Vec<(&str, &[u8])> = vec![("statement", st.as_bytes())];
        inputs.extend_from_slice(parts);
        let o = run_with_bytes(&sb, d, tag, Path::new(JOIN), &inputs, &[], limits.clone()).unwrap();
        (o.termination, std::fs::read(d.join(format!("out-{tag}/proof"))).unwrap_or_default())
    };
    let left_st = format!("{} 512 2", starts[0]);
    let (t, left) =
        tree_join("tj-left", &left_st, &[("seg-0000", &leaves[0]), ("seg-0001", &leaves[1])]);
    assert_eq!(t, Termination::Exited(0));
    let right_st = format!("{} 512 2", starts[2]);
    let (t, right) =
        tree_join("tj-right", &right_st, &[("seg-0000", &leaves[2]), ("seg-0001", &leaves[3])]);
    assert_eq!(t, Termination::Exited(0));
    let (t, root) =
        tree_join("tj-root", "11 512 4", &[("part-0000", &left), ("part-0001", &right)]);
    assert_eq!(t, Termination::Exited(0));
    assert_eq!(root, receipt, "a tree of joins gives the flat join's receipt");
    // Children swapped are a reordering, refused by the root join.
    let (t, _) =
        tree_join("tj-swapped", "11 512 4", &[("part-0000", &right), ("part-0001", &left)]);
    assert_eq!(t, Termination::Exited(2));
}
