//! The prover and verifier executables under the node's sandbox: prove → verify accepts; a
//! tampered proof or a valid proof of another statement → verify rejects (exit 1).
//!
//! Uses the `provernet-sandbox-exec` helper the workspace build puts in the same target
//! directory (the README's test command builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sandbox::{run_with_bytes, Limits, Sandbox, Termination};
use provernet_types::{Bytes, MilliCores};
use std::path::Path;
use std::time::Duration;

const PROVER: &str = env!("CARGO_BIN_EXE_groth16-sha256-prover");
const VERIFIER: &str = env!("CARGO_BIN_EXE_groth16-sha256-verifier");

fn sandbox(dir: &Path) -> Sandbox {
    Sandbox::with_sibling_helper(dir.join("scratch")).expect(
        "the sandbox helper is missing: build the workspace first (`cargo build --workspace`, \
         or the README's test command)",
    )
}

fn verify(
    sb: &Sandbox,
    dir: &Path,
    tag: &str,
    vk: &[u8],
    digest: &[u8],
    proof: &[u8],
) -> Termination {
    let limits = Limits::new(MilliCores(1000), Bytes(256 << 20), Duration::from_secs(30));
    let inputs: &[(&str, &[u8])] = &[("vk", vk), ("digest", digest)];
    run_with_bytes(sb, dir, tag, Path::new(VERIFIER), inputs, &[("proof", proof)], limits)
        .unwrap()
        .termination
}

#[test]
fn prove_and_verify_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = sandbox(d);
    let preimage = b"thirty-two bytes of secret input";
    let digest = groth16_sha256::sha256(preimage);
    let (pk, vk) = groth16_sha256::setup_insecure(preimage.len(), [9; 32]).unwrap();
    let pk = pk.to_bytes();
    let limits = Limits::new(MilliCores(2000), Bytes(2 << 30), Duration::from_secs(120));
    let inputs: &[(&str, &[u8])] = &[("pk", &pk), ("preimage", preimage), ("digest", &digest)];
    let o =
        run_with_bytes(&sb, d, "prove", Path::new(PROVER), inputs, &[], limits.clone()).unwrap();
    assert!(o.succeeded(), "{o:#?}");
    let proof = std::fs::read(d.join("out-prove/proof")).unwrap();
    assert_eq!(proof.len(), groth16_sha256::PROOF_BYTES);
    let vk = vk.to_bytes();
    assert_eq!(verify(&sb, d, "ok", &vk, &digest, &proof), Termination::Exited(0));
    let mut tampered = proof.clone();
    tampered[17] ^= 0x40;
    assert_eq!(verify(&sb, d, "tampered", &vk, &digest, &tampered), Termination::Exited(1));
    let other = groth16_sha256::sha256(b"someone else's statement");
    assert_eq!(verify(&sb, d, "other", &vk, &other, &proof), Termination::Exited(1));
    assert_eq!(verify(&sb, d, "badkey", b"not a key", &digest, &proof), Termination::Exited(2));

    // A wrong preimage is the requester's fault: the prover refuses with a reason.
    let wrong: &[(&str, &[u8])] =
        &[("pk", &pk), ("preimage", b"thirty-two bytes of WRONG input!"), ("digest", &digest)];
    let o = run_with_bytes(&sb, d, "wrong", Path::new(PROVER), wrong, &[], limits).unwrap();
    assert_eq!(o.termination, Termination::Exited(2));
    assert!(o.stderr_tail.contains("does not hash to the digest"), "{}", o.stderr_tail);
}
