//! Prover executable. Input: `statement` ("<seed> <permutations>"). Output: `proof`.

use provernet_program::{fail, input_text, write_output};

const ME: &str = "plonky3-keccak-prover";

fn main() {
    let s = plonky3_keccak::Statement::parse(&input_text(ME, "statement"))
        .unwrap_or_else(|e| fail(ME, e));
    let file = plonky3_keccak::prove(s).unwrap_or_else(|e| fail(ME, e));
    write_output(ME, "proof", &file);
}
