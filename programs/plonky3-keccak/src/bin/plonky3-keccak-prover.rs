//! Prover executable. Input: `statement` ("<seed> <permutations>"). Output: `proof`.

#[allow(clippy::print_stderr)]
fn main() {
    let root = plonky3_keccak::job_root();
    let fail = |msg: String| -> ! {
        eprintln!("plonky3-keccak-prover: {msg}");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(root.join("in/statement"))
        .unwrap_or_else(|e| fail(format!("reading input `statement`: {e}")));
    let s = plonky3_keccak::Statement::parse(&text).unwrap_or_else(|e| fail(e.to_string()));
    let file = plonky3_keccak::prove(s).unwrap_or_else(|e| fail(e.to_string()));
    std::fs::write(root.join("out/proof"), file)
        .unwrap_or_else(|e| fail(format!("writing the proof: {e}")));
}
