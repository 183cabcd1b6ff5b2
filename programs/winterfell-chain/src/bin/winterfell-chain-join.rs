//! Join prover. Inputs: `statement` ("<start> <rows> <segments>") and the leaf proofs
//! `seg-0000`, `seg-0001`, … in order. Output: `proof`, the composite receipt. Exits 2 when
//! the segments do not join (a gap, a reordering, a wrong count, an invalid leaf).

#[allow(clippy::print_stderr)]
fn main() {
    use winterfell_chain::segments::{check_segments, encode_receipt, JoinStatement};
    let root = winterfell_chain::job_root();
    let fail = |msg: String| -> ! {
        eprintln!("winterfell-chain-join: {msg}");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(root.join("in/statement"))
        .unwrap_or_else(|e| fail(format!("reading input `statement`: {e}")));
    let s = JoinStatement::parse(&text).unwrap_or_else(|e| fail(e.to_string()));
    let mut segs = Vec::with_capacity(s.segments);
    for i in 0..s.segments {
        let name = format!("seg-{i:04}");
        segs.push(
            std::fs::read(root.join("in").join(&name))
                .unwrap_or_else(|e| fail(format!("reading input `{name}`: {e}"))),
        );
    }
    match check_segments(&s, &segs) {
        Ok(Ok(end)) => eprintln!(
            "joined {} segments: {} steps from {} end at {end}",
            s.segments,
            s.total_steps(),
            s.start
        ),
        Ok(Err(e)) => fail(e.to_string()),
        Err(e) => fail(e.to_string()),
    }
    std::fs::write(root.join("out/proof"), encode_receipt(&segs))
        .unwrap_or_else(|e| fail(format!("writing the receipt: {e}")));
}
