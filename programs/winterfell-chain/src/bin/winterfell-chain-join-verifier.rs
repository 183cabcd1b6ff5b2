//! Join verifier. Input: `statement` ("<start> <rows> <segments>"); proof file: `proof` (the
//! composite receipt). Exit 0 valid, 1 invalid, 2 verifier error.

use provernet_program::{fail, input_text, proof_file, verdict};
use winterfell_chain::segments::{check_segments, decode_receipt, JoinStatement};

const ME: &str = "winterfell-chain-join-verifier";

fn main() {
    let s = JoinStatement::parse(&input_text(ME, "statement")).unwrap_or_else(|e| fail(ME, e));
    let Some(bytes) = proof_file("proof") else { verdict(false, "no receipt") };
    let Some(segs) = decode_receipt(&bytes) else { verdict(false, "malformed receipt") };
    match check_segments(&s, &segs) {
        Ok(Ok(end)) => {
            verdict(true, format!("{} steps from {} end at {end}", s.total_steps(), s.start))
        }
        Ok(Err(e)) => verdict(false, e),
        Err(e) => fail(ME, e),
    }
}
