//! Prover executable. Input: `statement` ("<start> <steps>"). Output: `proof`.

use provernet_program::{fail, input_text, write_output};

const ME: &str = "winterfell-chain-prover";

fn main() {
    let s = winterfell_chain::Statement::parse(&input_text(ME, "statement"))
        .unwrap_or_else(|e| fail(ME, e));
    let file = winterfell_chain::prove(s).unwrap_or_else(|e| fail(ME, e));
    write_output(ME, "proof", &file);
}
