//! The archive: settled jobs and finished workflows, out of the live state.
//!
//! A job that is settled leaves the live state at the end of the block that settled it (a
//! workflow's jobs stay until the workflow is finished and every one of them is settled, since
//! activation reads its sources' proofs; then the workflow and its jobs leave together). Its
//! final record is appended to the archive, which the state commits to as a Merkle Mountain
//! Range: [`Peaks`] (the roots of its perfect subtrees, at most 64 hashes, and the count of
//! records) are part of [`crate::Meta`], so the state root covers every record ever archived,
//! and replay from genesis reproduces the same peaks and the same roots. The records
//! themselves are handed to the store ([`Archived`], in [`crate::BlockOutput::archived`]),
//! which keeps them on disk for the API; the ledger never reads them again.
//!
//! A leaf is `H(key || record)` with the record's 33-byte state key, so a record is bound to
//! its id and table. A parent is `H(left || right)`. Peaks are ordered from the oldest (the
//! tallest) to the newest. Both hashes are keyed BLAKE3 with their own domains.

use crate::state::StateKey;
use provernet_types::{codec_struct, AccountId, BoundedVec, Domain, Height};

static LEAF: Domain = Domain::new("provernet archive leaf v1");
static NODE: Domain = Domain::new("provernet archive node v1");

/// The most peaks a range over fewer than 2^64 records has.
pub const PEAKS_MAX: usize = 64;

/// The Merkle Mountain Range's peaks over every archived record.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Peaks {
    /// Records archived so far.
    pub count: u64,
    /// The roots of the perfect subtrees, tallest first: one per set bit of `count`.
    pub peaks: BoundedVec<[u8; 32], PEAKS_MAX>,
}
codec_struct!(Peaks { count, peaks });

impl Peaks {
    /// The leaf hash of a record stored under `key`.
    pub fn leaf(key: &StateKey, record: &[u8]) -> [u8; 32] {
        LEAF.hash(&[&key.to_bytes(), record])
    }

    /// Appends a leaf: merges it with the peaks of equal height, as adding one to `count`
    /// carries through its trailing ones.
    pub fn append(&mut self, leaf: [u8; 32]) {
        let mut peaks = std::mem::take(&mut self.peaks).into_vec();
        let mut node = leaf;
        let mut n = self.count;
        while n & 1 == 1 {
            // One peak per set bit of `count`, so a trailing one always has its peak.
            let left = peaks.pop().expect("a peak for every set bit of the count");
            node = NODE.hash(&[&left, &node]);
            n >>= 1;
        }
        peaks.push(node);
        self.count += 1;
        self.peaks = BoundedVec::try_from_vec(peaks).expect("at most one peak per bit of a u64");
    }
}

/// A record leaving the live state in this block, for the store's archive.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Archived {
    /// The record's key in the live state (a job or a workflow).
    pub key: StateKey,
    /// Who submitted it: the archive is paged by requester.
    pub requester: AccountId,
    /// The block that archived it.
    pub height: Height,
    /// Its place in the archive (0 for the first record ever archived).
    pub index: u64,
    /// The record's canonical encoding, exactly as the live state held it.
    pub record: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Table;

    fn key(i: u8) -> StateKey {
        StateKey { table: Table::Job, id: [i; 32] }
    }

    /// The peaks recomputed from scratch: split the leaves into perfect trees by the bits of
    /// their count, tallest first, and hash each tree level by level.
    fn peaks_of(leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        let mut rest = leaves;
        for bit in (0..64).rev() {
            let size = 1usize << bit;
            if rest.len() >= size {
                let (tree, tail) = rest.split_at(size);
                let mut level = tree.to_vec();
                while level.len() > 1 {
                    level = level.chunks(2).map(|p| NODE.hash(&[&p[0], &p[1]])).collect();
                }
                out.push(level[0]);
                rest = tail;
            }
        }
        out
    }

    #[test]
    fn peaks_match_the_trees_they_summarise() {
        let mut p = Peaks::default();
        let mut leaves = Vec::new();
        for i in 0..=40u8 {
            let leaf = Peaks::leaf(&key(i), &[i; 7]);
            leaves.push(leaf);
            p.append(leaf);
            assert_eq!(p.count, leaves.len() as u64);
            assert_eq!(p.peaks.len(), leaves.len().count_ones() as usize);
            assert_eq!(p.peaks.as_slice(), peaks_of(&leaves).as_slice(), "after {} leaves", i + 1);
        }
    }

    #[test]
    fn a_leaf_is_bound_to_its_key_and_record() {
        let a = Peaks::leaf(&key(1), b"record");
        assert_ne!(a, Peaks::leaf(&key(2), b"record"));
        assert_ne!(a, Peaks::leaf(&StateKey { table: Table::Workflow, id: [1; 32] }, b"record"));
        assert_ne!(a, Peaks::leaf(&key(1), b"recorc"));
    }
}
