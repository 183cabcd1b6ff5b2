//! Verifier executable. Input: `statement`; proof file: `proof`. Exit 0 valid, 1 invalid,
//! 2 verifier error (a malformed statement).

#[allow(clippy::print_stderr)]
fn main() {
    let root = winterfell_chain::job_root();
    let text = std::fs::read_to_string(root.join("in/statement")).unwrap_or_else(|e| {
        eprintln!("winterfell-chain-verifier: reading input `statement`: {e}");
        std::process::exit(2)
    });
    let s = winterfell_chain::Statement::parse(&text).unwrap_or_else(|e| {
        eprintln!("winterfell-chain-verifier: {e}");
        std::process::exit(2)
    });
    let proof = std::fs::read(root.join("proof/proof")).unwrap_or_default();
    match winterfell_chain::verify(s, &proof) {
        Ok(Some(result)) => eprintln!("VALID: {} steps from {} give {result}", s.steps, s.start),
        Ok(None) => {
            eprintln!("INVALID proof for {} steps from {}", s.steps, s.start);
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("winterfell-chain-verifier: {e}");
            std::process::exit(2)
        }
    }
}
