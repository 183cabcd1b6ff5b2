//! Verifier executable. Input: `statement`; proof file: `proof`. Exit 0 valid, 1 invalid,
//! 2 verifier error (a malformed statement).

use provernet_program::{fail, input_text, proof_file, verdict};

const ME: &str = "plonky3-keccak-verifier";

fn main() {
    let s = plonky3_keccak::Statement::parse(&input_text(ME, "statement"))
        .unwrap_or_else(|e| fail(ME, e));
    let proof = proof_file("proof").unwrap_or_default();
    verdict(
        plonky3_keccak::verify(s, &proof),
        format!("{} Keccak-f[1600] permutations for seed {}", s.permutations, s.seed),
    )
}
