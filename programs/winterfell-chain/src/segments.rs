//! Segmented proving: a long chain proven as independent segments, then joined.
//!
//! A *leaf* job proves one segment with the ordinary prover: `"<start> <rows>"`, where `rows`
//! is the segment's trace length, so it covers `rows - 1` steps and its proven result is its
//! end. Segments of one computation share their boundary values: segment `i + 1` starts where
//! segment `i` ends. The *join* takes the leaf proofs in order and checks each against the
//! start it must have (the job's start for the first, the previous segment's proven end for the
//! others) and the common length, so a gap, a reordering or a segment of another computation
//! is rejected. Its output, a *composite receipt* (the leaf proofs in order, as RISC Zero
//! composes receipts), is checked the same way by the join verifier.
//!
//! The join is not succinct: its receipt grows with the number of segments, and verifying it
//! verifies every segment (each in milliseconds). A succinct join needs recursion.
//!
//! Join statement (the job input `statement`): `"<start> <rows> <segments>"`.

use crate::{verify, Error, Statement, PROOF_BYTES_MAX};

/// Most segments in one join.
pub const SEGMENTS_MAX: usize = 1024;
/// Smallest join.
pub const SEGMENTS_MIN: usize = 2;

/// What a join job asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JoinStatement {
    pub start: u128,
    /// Trace rows per segment (each segment covers `rows - 1` steps).
    pub rows: u64,
    pub segments: usize,
}

impl JoinStatement {
    pub fn parse(text: &str) -> Result<JoinStatement, Error> {
        let mut it = text.split_whitespace();
        let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(Error::Statement("a join takes \"<start> <rows> <segments>\"".into()));
        };
        let leaf = Statement::parse(&format!("{a} {b}"))?;
        let segments: usize =
            c.parse().map_err(|_| Error::Statement(format!("segments `{c}` is not a number")))?;
        if !(SEGMENTS_MIN..=SEGMENTS_MAX).contains(&segments) {
            return Err(Error::Statement(format!("{segments} segments; a join takes 2..=1024")));
        }
        Ok(JoinStatement { start: leaf.start, rows: leaf.steps, segments })
    }

    /// The total number of chain steps the joined segments prove.
    pub fn total_steps(&self) -> u64 {
        (self.rows - 1) * self.segments as u64
    }
}

/// Why a join was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the join statement asks for {want} segments but {got} were given")]
    WrongCount { want: usize, got: usize },
    #[error("segment {index} does not prove the chain from the previous segment's end (a gap, a reordering, or an invalid proof)")]
    Broken { index: usize },
}

/// Checks `segments` (leaf proof files, in order) against `s`. Returns the chain's end.
pub fn check_segments(
    s: &JoinStatement,
    segments: &[Vec<u8>],
) -> Result<Result<u128, JoinError>, Error> {
    if segments.len() != s.segments {
        return Ok(Err(JoinError::WrongCount { want: s.segments, got: segments.len() }));
    }
    let mut at = s.start;
    for (index, file) in segments.iter().enumerate() {
        match verify(Statement { start: at, steps: s.rows }, file)? {
            Some(end) => at = end,
            None => return Ok(Err(JoinError::Broken { index })),
        }
    }
    Ok(Ok(at))
}

/// The composite receipt: `u32` count, then each leaf proof file with a `u32` length.
pub fn encode_receipt(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = (segments.len() as u32).to_le_bytes().to_vec();
    for s in segments {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// Splits a composite receipt; `None` if it is malformed or over its bounds.
pub fn decode_receipt(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let read_u32 = |b: &[u8], at: usize| -> Option<usize> {
        let s = b.get(at..at + 4)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let count = read_u32(bytes, 0)?;
    if count > SEGMENTS_MAX {
        return None;
    }
    let mut at = 4;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = read_u32(bytes, at)?;
        if len > PROOF_BYTES_MAX {
            return None;
        }
        at += 4;
        out.push(bytes.get(at..at + len)?.to_vec());
        at += len;
    }
    (at == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{prove, run_chain};

    fn leaves(start: u128, rows: u64, n: usize) -> Vec<Vec<u8>> {
        let mut at = start;
        let mut out = Vec::new();
        for _ in 0..n {
            let file = prove(Statement { start: at, steps: rows }).unwrap();
            at = verify(Statement { start: at, steps: rows }, &file).unwrap().unwrap();
            out.push(file);
        }
        out
    }

    #[test]
    fn four_segments_join_and_equal_the_whole_chain() {
        let s = JoinStatement::parse("5 256 4").unwrap();
        let segs = leaves(5, 256, 4);
        let end = check_segments(&s, &segs).unwrap().unwrap();
        // Each segment covers rows - 1 steps; the whole chain runs total_steps + 1 rows.
        assert_eq!(end, run_chain(5, s.total_steps() + 1));
        let receipt = encode_receipt(&segs);
        assert_eq!(decode_receipt(&receipt).unwrap(), segs);
    }

    #[test]
    fn gaps_reorderings_and_wrong_counts_are_rejected() {
        let s = JoinStatement::parse("5 256 4").unwrap();
        let segs = leaves(5, 256, 4);
        let mut reordered = segs.clone();
        reordered.swap(1, 2);
        assert_eq!(check_segments(&s, &reordered).unwrap(), Err(JoinError::Broken { index: 1 }));
        // A gap: segment 2 proven from another start.
        let mut gap = segs.clone();
        gap[2] = prove(Statement { start: 77, steps: 256 }).unwrap();
        assert_eq!(check_segments(&s, &gap).unwrap(), Err(JoinError::Broken { index: 2 }));
        assert_eq!(
            check_segments(&s, &segs[..3]).unwrap(),
            Err(JoinError::WrongCount { want: 4, got: 3 })
        );
        // Another computation's segments (another start).
        let other = JoinStatement { start: 6, ..s };
        assert_eq!(check_segments(&other, &segs).unwrap(), Err(JoinError::Broken { index: 0 }));
        // Malformed receipts.
        let receipt = encode_receipt(&segs);
        assert!(decode_receipt(&receipt[..receipt.len() - 1]).is_none());
        let mut long = receipt.clone();
        long.push(0);
        assert!(decode_receipt(&long).is_none());
        assert!(JoinStatement::parse("5 256 1").is_err());
    }
}
