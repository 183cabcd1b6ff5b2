//! Verifier executable. Input: `statement`; proof file: `proof`. Exit 0 valid, 1 invalid,
//! 2 verifier error (a malformed statement).

#[allow(clippy::print_stderr)]
fn main() {
    let root = plonky3_keccak::job_root();
    let text = std::fs::read_to_string(root.join("in/statement")).unwrap_or_else(|e| {
        eprintln!("plonky3-keccak-verifier: reading input `statement`: {e}");
        std::process::exit(2)
    });
    let s = plonky3_keccak::Statement::parse(&text).unwrap_or_else(|e| {
        eprintln!("plonky3-keccak-verifier: {e}");
        std::process::exit(2)
    });
    let proof = std::fs::read(root.join("proof/proof")).unwrap_or_default();
    if plonky3_keccak::verify(s, &proof) {
        eprintln!("VALID: {} Keccak-f[1600] permutations for seed {}", s.permutations, s.seed);
    } else {
        eprintln!("INVALID proof for seed {}, {} permutations", s.seed, s.permutations);
        std::process::exit(1)
    }
}
