//! Join prover. Inputs: `statement` ("<start> <rows> <segments>") and, for each part `i` in
//! order, either `seg-NNNN` (a leaf proof) or `part-NNNN` (the receipt of a join below this
//! one, in an aggregation tree). Output: `proof`, the composite receipt of every leaf under
//! this join, in order. Exits 2 when the segments do not join (a gap, a reordering, a wrong
//! count, an invalid leaf, a malformed receipt).

use provernet_program::{fail, input_if_given, input_text, write_output};
use winterfell_chain::segments::{check_segments, decode_receipt, encode_receipt, JoinStatement};

const ME: &str = "winterfell-chain-join";

/// Most parts one join reads.
const PARTS_MAX: usize = 1024;

#[allow(clippy::print_stderr)]
fn main() {
    let s = JoinStatement::parse(&input_text(ME, "statement")).unwrap_or_else(|e| fail(ME, e));
    let mut segs: Vec<Vec<u8>> = Vec::new();
    for i in 0..PARTS_MAX {
        if let Some(leaf) = input_if_given(ME, &format!("seg-{i:04}")) {
            segs.push(leaf);
        } else if let Some(receipt) = input_if_given(ME, &format!("part-{i:04}")) {
            let Some(leaves) = decode_receipt(&receipt) else {
                fail(ME, format!("part-{i:04} is not a composite receipt"))
            };
            segs.extend(leaves);
        } else {
            break;
        }
        if segs.len() > s.segments {
            break;
        }
    }
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
