//! The Plonky3 prover and verifier under the node's sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sandbox::{run_with_bytes, Limits, Sandbox, Termination};
use provernet_types::{Bytes, MilliCores};
use std::path::Path;
use std::time::Duration;

#[test]
fn prove_and_verify_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = Sandbox::with_sibling_helper(d.join("scratch"))
        .expect("the sandbox helper is missing: build the workspace first");
    let limits = Limits::new(MilliCores(2000), Bytes(2 << 30), Duration::from_secs(120));
    let prover = Path::new(env!("CARGO_BIN_EXE_plonky3-keccak-prover"));
    let verifier = Path::new(env!("CARGO_BIN_EXE_plonky3-keccak-verifier"));
    let o = run_with_bytes(&sb, d, "prove", prover, &[("statement", b"5 8")], &[], limits.clone())
        .unwrap();
    assert!(o.succeeded(), "{o:#?}");
    let proof = std::fs::read(d.join("out-prove/proof")).unwrap();
    let verify = |tag: &str, st: &[u8], p: &[u8]| {
        run_with_bytes(&sb, d, tag, verifier, &[("statement", st)], &[("proof", p)], limits.clone())
            .unwrap()
            .termination
    };
    assert_eq!(verify("ok", b"5 8", &proof), Termination::Exited(0));
    assert_eq!(verify("seed", b"6 8", &proof), Termination::Exited(1));
    let mut bad = proof.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert_eq!(verify("tampered", b"5 8", &bad), Termination::Exited(1));
    assert_eq!(verify("malformed", b"5 0", &proof), Termination::Exited(2));
}
