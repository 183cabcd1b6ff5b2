//! Blobs in verifiable pieces, for transfer between validators.
//!
//! A blob's address is its BLAKE3 hash, and BLAKE3 is itself a Merkle tree over 1 KiB chunks.
//! Cut at [`PIECE_BYTES`] (a power of two of chunks), every piece of a blob is a complete
//! subtree of that tree, so its *chaining value* (the subtree's non-root hash) can be checked on
//! its own. A blob larger than one piece travels as its *outline*, the chaining values of its
//! pieces, which [`root_of`] folds up the tree's shape into the root: an outline that folds to
//! the blob's address is the real one, and each piece is then checked against its entry before
//! it is kept. (The outline fixes the number of pieces, not the exact size: the last piece's
//! length is bound by that piece's own hash, so whoever checks a size checks the last piece.) A peer that serves a wrong piece is caught at that piece, not after the whole
//! blob was downloaded. A blob of one piece is checked by hashing it whole.
//!
//! The tree functions are BLAKE3's own (`blake3::hazmat`); the tests check every outline against
//! `blake3::hash` of the whole input.

use crate::BlobHash;
use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};

/// The size of one piece: 1 MiB (1,024 BLAKE3 chunks).
pub const PIECE_BYTES: u64 = 1 << 20;
const _: () = assert!(PIECE_BYTES.is_power_of_two() && PIECE_BYTES >= blake3::CHUNK_LEN as u64);

/// A piece's chaining value.
pub type PieceHash = [u8; 32];

/// How many pieces a blob of `size` bytes has (an empty blob is one empty piece).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_BYTES).max(1)
}

/// The byte range of piece `index` of a blob of `size` bytes, if it has such a piece.
pub fn piece_range(size: u64, index: u64) -> Option<std::ops::Range<u64>> {
    if index >= piece_count(size) {
        return None;
    }
    let start = index * PIECE_BYTES;
    Some(start..size.min(start + PIECE_BYTES))
}

/// Whether a blob of `size` bytes travels in pieces with an outline (more than one piece).
pub fn has_outline(size: u64) -> bool {
    size > PIECE_BYTES
}

/// The chaining value of piece `index`, whose bytes are `data`.
pub fn piece_hash(index: u64, data: &[u8]) -> PieceHash {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * PIECE_BYTES);
    h.update(data);
    h.finalize_non_root()
}

/// The outline of a blob: the chaining value of each of its pieces (empty for a blob of one
/// piece, which is checked whole).
pub fn outline(data: &[u8]) -> Vec<PieceHash> {
    if !has_outline(data.len() as u64) {
        return Vec::new();
    }
    data.chunks(PIECE_BYTES as usize).enumerate().map(|(i, p)| piece_hash(i as u64, p)).collect()
}

/// Hashes a blob as its bytes arrive, in any split: its address and its outline, without
/// holding more than the bytes of one call.
#[derive(Debug, Default)]
pub struct StreamHasher {
    whole: blake3::Hasher,
    piece: blake3::Hasher,
    in_piece: u64,
    index: u64,
    outline: Vec<PieceHash>,
    total: u64,
}

impl StreamHasher {
    pub fn new() -> StreamHasher {
        StreamHasher::default()
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = (PIECE_BYTES - self.in_piece) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.piece.update(now);
            self.in_piece += now.len() as u64;
            data = rest;
            if self.in_piece == PIECE_BYTES {
                self.close_piece();
            }
        }
    }

    fn close_piece(&mut self) {
        self.outline.push(self.piece.finalize_non_root());
        self.index += 1;
        self.in_piece = 0;
        self.piece = blake3::Hasher::new();
        self.piece.set_input_offset(self.index * PIECE_BYTES);
    }

    /// The blob's address and its outline (empty for a blob of one piece).
    pub fn finish(mut self) -> (BlobHash, Vec<PieceHash>) {
        let hash = BlobHash(*self.whole.finalize().as_bytes());
        if !has_outline(self.total) {
            return (hash, Vec::new());
        }
        if self.in_piece > 0 {
            self.close_piece();
        }
        (hash, self.outline)
    }
}

/// The address of a blob of `size` bytes with this outline, or `None` when the outline has the
/// wrong number of pieces for the size (or the blob is a single piece).
pub fn root_of(outline: &[PieceHash], size: u64) -> Option<BlobHash> {
    if !has_outline(size) || outline.len() as u64 != piece_count(size) {
        return None;
    }
    let (left, right) = split(outline, 0, size);
    Some(BlobHash(*merge_subtrees_root(&left, &right, Mode::Hash).as_bytes()))
}

/// The chaining values of the two halves of the subtree over bytes `start..start + len` (more
/// than one piece). BLAKE3 puts the largest power of two of chunks below `len` on the left,
/// which for more than one piece is a whole number of pieces.
fn split(outline: &[PieceHash], start: u64, len: u64) -> (PieceHash, PieceHash) {
    let left_len = blake3::hazmat::left_subtree_len(len);
    (subtree(outline, start, left_len), subtree(outline, start + left_len, len - left_len))
}

fn subtree(outline: &[PieceHash], start: u64, len: u64) -> PieceHash {
    if len <= PIECE_BYTES {
        return outline[(start / PIECE_BYTES) as usize];
    }
    let (left, right) = split(outline, start, len);
    merge_subtrees_non_root(&left, &right, Mode::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1]).collect()
    }

    #[test]
    fn outlines_fold_to_the_blake3_hash_for_every_shape() {
        let p = PIECE_BYTES as usize;
        for len in [p + 1, 2 * p, 2 * p + 1023, 3 * p, 3 * p + 1, 4 * p, 5 * p + 7, 8 * p + 1] {
            let d = data(len);
            let o = outline(&d);
            assert_eq!(o.len() as u64, piece_count(len as u64));
            assert_eq!(root_of(&o, len as u64), Some(BlobHash::of(&d)), "length {len}");
        }
    }

    #[test]
    fn streamed_hashing_matches_the_whole_in_any_split() {
        let p = PIECE_BYTES as usize;
        for len in [0, 1, p - 1, p, p + 1, 2 * p, 3 * p + 5] {
            let d = data(len);
            for step in [1000, 4096, p - 3, p, p + 7, 3 * p] {
                let mut h = StreamHasher::new();
                for c in d.chunks(step.max(1)) {
                    h.update(c);
                }
                assert_eq!(h.len(), len as u64);
                let (hash, o) = h.finish();
                assert_eq!(hash, BlobHash::of(&d), "length {len}, step {step}");
                assert_eq!(o, outline(&d), "length {len}, step {step}");
            }
        }
    }

    #[test]
    fn a_wrong_piece_or_size_does_not_fold_to_the_address() {
        let len = 3 * PIECE_BYTES as usize + 100;
        let d = data(len);
        let good = outline(&d);
        let mut bad = good.clone();
        bad[1][0] ^= 1;
        assert_ne!(root_of(&bad, len as u64), Some(BlobHash::of(&d)));
        // The tree's shape comes from the number of pieces, so the outline alone folds to the
        // same root for any size ending in the same last piece: the size is bound only by the
        // last piece's own hash, which is why a blob's head carries that piece too.
        assert_eq!(root_of(&good, len as u64 + 1), Some(BlobHash::of(&d)));
        let last = piece_range(len as u64, 3).unwrap();
        let mut longer = d[last.start as usize..].to_vec();
        assert_eq!(piece_hash(3, &longer), good[3]);
        longer.push(0);
        assert_ne!(piece_hash(3, &longer), good[3]);
        assert_eq!(root_of(&good, PIECE_BYTES), None, "one piece has no outline");
        assert_eq!(root_of(&good[..2], len as u64), None, "too few pieces");
        // Each piece checks against its entry, and only at its own index.
        let r = piece_range(len as u64, 2).unwrap();
        let piece = &d[r.start as usize..r.end as usize];
        assert_eq!(piece_hash(2, piece), good[2]);
        assert_ne!(piece_hash(1, piece), good[2]);
    }

    #[test]
    fn piece_ranges_cover_the_blob() {
        assert_eq!(piece_count(0), 1);
        assert_eq!(piece_range(0, 0), Some(0..0));
        assert_eq!(piece_range(PIECE_BYTES, 0), Some(0..PIECE_BYTES));
        assert_eq!(piece_range(PIECE_BYTES, 1), None);
        assert_eq!(piece_range(PIECE_BYTES + 1, 1), Some(PIECE_BYTES..PIECE_BYTES + 1));
    }
}
