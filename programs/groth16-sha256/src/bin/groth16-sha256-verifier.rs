//! Verifier executable. Inputs: `vk` (verifying key), `digest` (the job's public statement);
//! proof file: `proof`. Exit 0 valid, 1 invalid, 2 verifier error (a malformed key or digest).

use provernet_program::{fail, input, proof_file, verdict};

const ME: &str = "groth16-sha256-verifier";

fn main() {
    let vk = groth16_sha256::VerifyingKeyFile::from_bytes(&input(ME, "vk"))
        .unwrap_or_else(|e| fail(ME, e));
    let digest = input(ME, "digest");
    let hex: String = digest.iter().map(|x| format!("{x:02x}")).collect();
    let Some(proof) = proof_file("proof") else { verdict(false, "no proof file `proof`") };
    match groth16_sha256::verify(&vk, &digest, &proof) {
        Ok(valid) => verdict(valid, format!("knowledge of a SHA-256 preimage of {hex}")),
        Err(e) => fail(ME, e),
    }
}
