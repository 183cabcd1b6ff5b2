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
    let sb = Sandbox::new(Sandbox::sibling_helper(), d.join("scratch"))
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
