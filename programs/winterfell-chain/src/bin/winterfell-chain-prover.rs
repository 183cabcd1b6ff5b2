//! Prover executable. Input: `statement` ("<start> <steps>"). Output: `proof`.

#[allow(clippy::print_stderr)]
fn main() {
    let root = winterfell_chain::job_root();
    let fail = |msg: String| -> ! {
        eprintln!("winterfell-chain-prover: {msg}");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(root.join("in/statement"))
        .unwrap_or_else(|e| fail(format!("reading input `statement`: {e}")));
    let s = winterfell_chain::Statement::parse(&text).unwrap_or_else(|e| fail(e.to_string()));
    let file = winterfell_chain::prove(s).unwrap_or_else(|e| fail(e.to_string()));
    std::fs::write(root.join("out/proof"), file)
        .unwrap_or_else(|e| fail(format!("writing the proof: {e}")));
}
