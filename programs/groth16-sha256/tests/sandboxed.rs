//! The prover and verifier executables under the node's sandbox: prove → verify accepts; a
//! tampered proof or a valid proof of another statement → verify rejects (exit 1).
//!
//! Uses the `provernet-sandbox-exec` helper the workspace build puts in the same target
//! directory (the README's test command builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use provernet_sandbox::{Limits, Run, Sandbox, Termination};
use provernet_types::{Bytes, FileName, MilliCores};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sandbox(dir: &Path) -> Sandbox {
    let helper = Sandbox::sibling_helper();
    Sandbox::new(helper, dir.join("scratch")).expect(
        "the sandbox helper is missing: build the workspace first (`cargo build --workspace`, \
         or the README's test command)",
    )
}

fn input(dir: &Path, name: &str, bytes: &[u8]) -> (FileName, PathBuf, Bytes) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    (name.parse().unwrap(), p, Bytes(bytes.len() as u64))
}

fn verify(
    sb: &Sandbox,
    dir: &Path,
    vk: &[u8],
    digest: &[u8],
    proof: &[u8],
    tag: &str,
) -> Termination {
    let pdir = dir.join(format!("proof-{tag}"));
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("proof"), proof).unwrap();
    let run = Run {
        job_id: format!("verify-{tag}"),
        program: PathBuf::from(env!("CARGO_BIN_EXE_groth16-sha256-verifier")),
        args: vec![],
        inputs: vec![
            input(dir, &format!("vk-{tag}"), vk),
            input(dir, &format!("digest-{tag}"), digest),
        ]
        .into_iter()
        .zip(["vk", "digest"])
        .map(|((_, p, b), n)| (n.parse().unwrap(), p, b))
        .collect(),
        proof: provernet_sandbox::proof_files(&pdir, None).unwrap(),
        out_dir: dir.join(format!("vout-{tag}")),
        limits: Limits::new(MilliCores(1000), Bytes(256 << 20), Duration::from_secs(30)),
        gpus: vec![],
        rootfs: provernet_sandbox::plan::RootFs::Host,
    };
    sb.run(&run).unwrap().termination
}

#[test]
fn prove_and_verify_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sb = sandbox(d);
    let preimage = b"thirty-two bytes of secret input";
    let digest = groth16_sha256::sha256(preimage);
    let (pk, vk) = groth16_sha256::setup_insecure(preimage.len(), [9; 32]).unwrap();
    let run = Run {
        job_id: "prove".into(),
        program: PathBuf::from(env!("CARGO_BIN_EXE_groth16-sha256-prover")),
        args: vec![],
        inputs: vec![
            input(d, "pk", &pk.to_bytes()),
            input(d, "preimage", preimage),
            input(d, "digest", &digest),
        ],
        proof: vec![],
        out_dir: d.join("out"),
        limits: Limits::new(MilliCores(2000), Bytes(2 << 30), Duration::from_secs(120)),
        gpus: vec![],
        rootfs: provernet_sandbox::plan::RootFs::Host,
    };
    let o = sb.run(&run).unwrap();
    assert!(o.succeeded(), "{o:#?}");
    let proof = std::fs::read(d.join("out/proof")).unwrap();
    assert_eq!(proof.len(), groth16_sha256::PROOF_BYTES);
    let vk = vk.to_bytes();
    assert_eq!(verify(&sb, d, &vk, &digest, &proof, "ok"), Termination::Exited(0));
    let mut tampered = proof.clone();
    tampered[17] ^= 0x40;
    assert_eq!(verify(&sb, d, &vk, &digest, &tampered, "tampered"), Termination::Exited(1));
    let other = groth16_sha256::sha256(b"someone else's statement");
    assert_eq!(verify(&sb, d, &vk, &other, &proof, "other"), Termination::Exited(1));
    assert_eq!(verify(&sb, d, b"not a key", &digest, &proof, "badkey"), Termination::Exited(2));

    // A wrong preimage is the requester's fault: the prover refuses with a reason.
    let mut wrong = run.clone();
    wrong.inputs[1] = input(d, "preimage2", b"thirty-two bytes of WRONG input!");
    wrong.inputs[1].0 = "preimage".parse().unwrap();
    wrong.out_dir = d.join("out-wrong");
    let o = sb.run(&wrong).unwrap();
    assert_eq!(o.termination, Termination::Exited(2));
    assert!(o.stderr_tail.contains("does not hash to the digest"), "{}", o.stderr_tail);
}
