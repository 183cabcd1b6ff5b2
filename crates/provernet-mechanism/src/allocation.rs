//! Allocation: which prover gets an attempt of a job.
//!
//! The ledger gathers the candidate provers (in ascending id order, so the input is the same on
//! every validator), builds a [`Request`] from the job, and asks the job's mechanism to
//! `select` one (see [`crate::market`]). Eligibility is shared by every mechanism: the prover must be in
//! the job's prover set, carry the labels the program requires, not be excluded (the job's
//! earlier provers), have the free capacity for the job's resources, and have the free stake
//! to bond the attempt's fee.

use provernet_types::{domain_hash, Label, MicroCredits, ProverId, ProverSet, Resources};

/// 32 bytes of unbiasable randomness, already bound to its purpose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A seed for one purpose (e.g. `job id || attempt`) from the block's randomness.
    pub fn derive(block_randomness: &[u8; 32], purpose: &'static str, parts: &[&[u8]]) -> Seed {
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
        all.push(block_randomness);
        all.push(purpose.as_bytes());
        all.extend_from_slice(parts);
        Seed(domain_hash("provernet allocation seed v1", &all))
    }

    /// A uniform index below `n` (`n > 0`). The modulo bias is below 2⁻⁶⁴ because 128 bits of
    /// the seed are reduced.
    pub fn index(&self, n: usize) -> usize {
        assert!(n > 0, "index of an empty range");
        let mut wide = [0u8; 16];
        wide.copy_from_slice(&self.0[..16]);
        (u128::from_le_bytes(wide) % n as u128) as usize
    }

    /// A uniform value below `n` (`n > 0`), for weighted draws. Reduces all 256 bits, so the
    /// modulo bias is below 2⁻¹²⁸ for any `n`.
    pub fn below(&self, n: u128) -> u128 {
        assert!(n > 0, "draw below zero");
        let (mut hi, mut lo) = ([0u8; 16], [0u8; 16]);
        hi.copy_from_slice(&self.0[..16]);
        lo.copy_from_slice(&self.0[16..]);
        let (hi, lo) = (u128::from_le_bytes(hi) % n, u128::from_le_bytes(lo));
        // (hi·2¹²⁸ + lo) mod n, one bit at a time (no 256-bit integers needed).
        let mut r = hi;
        for bit in (0..128).rev() {
            r = mulmod2(r, n);
            if (lo >> bit) & 1 == 1 {
                r = if r >= n - 1 { r - (n - 1) } else { r + 1 };
            }
        }
        r
    }

    /// The next seed in a chain of draws.
    pub fn next(&self) -> Seed {
        Seed(domain_hash("provernet allocation seed step v1", &[&self.0]))
    }
}

/// A prover as a mechanism sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub id: ProverId,
    /// Capacity not held by other attempts.
    pub free: Resources,
    /// Stake not bonded to other attempts.
    pub free_stake: MicroCredits,
    /// All the prover's stake, bonded or not: the weight of stake-weighted lotteries.
    pub stake: MicroCredits,
    pub labels: &'a [Label],
}

/// What one attempt of a job needs.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub resources: Resources,
    /// Stake the prover must bond while it holds the attempt.
    pub bond: MicroCredits,
    pub prover_set: &'a ProverSet,
    /// Labels the program requires of every prover.
    pub requires: &'a [Label],
    pub exclude: &'a [ProverId],
}

impl Request<'_> {
    /// Whether `c` may be given this attempt.
    pub fn admits(&self, c: &Candidate<'_>) -> bool {
        self.resources.fits_in(&c.free)
            && c.free_stake >= self.bond
            && !self.exclude.contains(&c.id)
            && self.prover_set.admits(&c.id, c.labels)
            && self.requires.iter().all(|l| c.labels.contains(l))
    }
}

/// `2r mod n` for `r < n`, without overflow.
fn mulmod2(r: u128, n: u128) -> u128 {
    if r >= n - r {
        r - (n - r)
    } else {
        r + r
    }
}

/// `k` distinct members drawn uniformly from `pool` (or all of it when smaller), in draw order.
pub fn pick_committee(seed: Seed, pool: &[ProverId], k: usize) -> Vec<ProverId> {
    let mut rest: Vec<ProverId> = pool.to_vec();
    let mut out = Vec::with_capacity(k.min(rest.len()));
    let mut s = seed;
    while out.len() < k && !rest.is_empty() {
        out.push(rest.swap_remove(s.index(rest.len())));
        s = s.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committees_are_distinct_and_bounded() {
        let pool: Vec<ProverId> = (0..5u8).map(|i| ProverId([i; 32])).collect();
        let seed = Seed::derive(&[2; 32], "committee", &[]);
        let c = pick_committee(seed, &pool, 3);
        assert_eq!(c.len(), 3);
        let mut d = c.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);
        assert_eq!(pick_committee(seed, &pool, 9).len(), 5);
        assert_eq!(pick_committee(seed, &pool, 3), c, "deterministic");
    }
}
