//! Join prover. Inputs: `statement` ("<start> <rows> <segments>") and the leaf proofs
//! `seg-0000`, `seg-0001`, … in order. Output: `proof`, the composite receipt. Exits 2 when
//! the segments do not join (a gap, a reordering, a wrong count, an invalid leaf).

use provernet_program::{fail, input, input_text, write_output};
use winterfell_chain::segments::{check_segments, encode_receipt, JoinStatement};

const ME: &str = "winterfell-chain-join";

#[allow(clippy::print_stderr)]
fn main() {
    let s = JoinStatement::parse(&input_text(ME, "statement")).unwrap_or_else(|e| fail(ME, e));
    let segs: Vec<Vec<u8>> = (0..s.segments).map(|i| input(ME, &format!("seg-{i:04}"))).collect();
    match check_segments(&s, &segs) {
        Ok(Ok(end)) => eprintln!(
            "joined {} segments: {} steps from {} end at {end}",
            s.segments,
            s.total_steps(),
            s.start
        ),
        Ok(Err(e)) => fail(ME, e),
        Err(e) => fail(ME, e),
    }
    write_output(ME, "proof", &encode_receipt(&segs));
}
