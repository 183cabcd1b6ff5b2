//! Verifier executable. Input: `statement`; proof file: `proof`. Exit 0 valid, 1 invalid,
//! 2 verifier error (a malformed statement).

use provernet_program::{fail, input_text, proof_file, verdict};

const ME: &str = "winterfell-chain-verifier";

fn main() {
    let s = winterfell_chain::Statement::parse(&input_text(ME, "statement"))
        .unwrap_or_else(|e| fail(ME, e));
    let proof = proof_file("proof").unwrap_or_default();
    match winterfell_chain::verify(s, &proof) {
        Ok(Some(result)) => {
            verdict(true, format!("{} steps from {} give {result}", s.steps, s.start))
        }
        Ok(None) => verdict(false, format!("proof for {} steps from {}", s.steps, s.start)),
        Err(e) => fail(ME, e),
    }
}
