//! Join verifier. Input: `statement` ("<start> <rows> <segments>"); proof file: `proof` (the
//! composite receipt). Exit 0 valid, 1 invalid, 2 verifier error.

#[allow(clippy::print_stderr)]
fn main() {
    use winterfell_chain::segments::{check_segments, decode_receipt, JoinStatement};
    let root = winterfell_chain::job_root();
    let error = |msg: String| -> ! {
        eprintln!("winterfell-chain-join-verifier: {msg}");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(root.join("in/statement"))
        .unwrap_or_else(|e| error(format!("reading input `statement`: {e}")));
    let s = JoinStatement::parse(&text).unwrap_or_else(|e| error(e.to_string()));
    let invalid = |why: String| -> ! {
        eprintln!("INVALID: {why}");
        std::process::exit(1)
    };
    let bytes =
        std::fs::read(root.join("proof/proof")).unwrap_or_else(|_| invalid("no receipt".into()));
    let segs = decode_receipt(&bytes).unwrap_or_else(|| invalid("malformed receipt".into()));
    match check_segments(&s, &segs) {
        Ok(Ok(end)) => eprintln!("VALID: {} steps from {} end at {end}", s.total_steps(), s.start),
        Ok(Err(e)) => invalid(e.to_string()),
        Err(e) => error(e.to_string()),
    }
}
