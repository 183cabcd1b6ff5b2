//! Allocation: which prover gets an attempt of a job.
//!
//! The ledger gathers the candidate provers (in ascending id order, so the input is the same on
//! every validator), builds a [`Request`] from the job, and asks the job's mechanism to
//! [`Allocator::select`] one. Eligibility is shared by every mechanism: the prover must be in
//! the job's prover set, carry the labels the program requires, not be excluded (the job's
//! earlier provers), have the free capacity for the job's resources, and have the free stake
//! to bond the attempt's fee.

use provernet_types::{
    domain_hash, Label, MechanismKind, MicroCredits, ProverId, ProverSet, Resources,
};

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

/// An allocation mechanism.
pub trait Allocator {
    fn kind(&self) -> MechanismKind;

    /// Picks the prover for one attempt from `candidates` (in ascending id order), or `None`
    /// when none is eligible.
    fn select(
        &self,
        seed: Seed,
        request: &Request<'_>,
        candidates: &[Candidate<'_>],
    ) -> Option<ProverId>;
}

/// The default: every eligible prover is equally likely; after a failure the ledger asks again
/// with the failed provers excluded.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomWithFallback;

impl Allocator for RandomWithFallback {
    fn kind(&self) -> MechanismKind {
        MechanismKind::RandomWithFallback
    }

    fn select(
        &self,
        seed: Seed,
        request: &Request<'_>,
        candidates: &[Candidate<'_>],
    ) -> Option<ProverId> {
        let eligible = candidates.iter().filter(|c| request.admits(c)).count();
        if eligible == 0 {
            return None;
        }
        let pick = seed.index(eligible);
        candidates.iter().filter(|c| request.admits(c)).nth(pick).map(|c| c.id)
    }
}

/// The mechanism for `kind`.
pub fn allocator(kind: MechanismKind) -> &'static dyn Allocator {
    match kind {
        MechanismKind::RandomWithFallback => &RandomWithFallback,
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
    use provernet_types::{Bytes, GpuCount, MilliCores};

    fn res(cores: u32, gib: u64, gpus: u16) -> Resources {
        Resources {
            cores: MilliCores::from_cores(cores),
            memory: Bytes::gib(gib),
            gpus: GpuCount(gpus),
        }
    }

    fn cands(labels: &[Label]) -> Vec<Candidate<'_>> {
        (0..10u8)
            .map(|i| Candidate {
                id: ProverId([i; 32]),
                free: res(u32::from(i) + 1, 16, u16::from(i % 2)),
                free_stake: MicroCredits(1_000_000),
                labels: if i == 9 { labels } else { &[] },
            })
            .collect()
    }

    #[test]
    fn respects_fit_exclusion_set_and_stake() {
        let gpu: Vec<Label> = vec!["gpu=h100".parse().unwrap()];
        let c = cands(&gpu);
        let any = ProverSet::Any;
        let exclude = [ProverId([9; 32])];
        for i in 0..200u32 {
            let seed = Seed::derive(&[0; 32], "test", &[&i.to_le_bytes()]);
            // 8 cores and a GPU: only provers 7 and 9 fit; 9 is excluded.
            let req = Request {
                resources: res(8, 1, 1),
                bond: MicroCredits(1),
                prover_set: &any,
                requires: &[],
                exclude: &exclude,
            };
            assert_eq!(RandomWithFallback.select(seed, &req, &c), Some(ProverId([7; 32])));
            // The program requires the GPU label: only prover 9 has it.
            let req = Request {
                resources: res(1, 1, 0),
                bond: MicroCredits(1),
                prover_set: &any,
                requires: &gpu,
                exclude: &[],
            };
            assert_eq!(RandomWithFallback.select(seed, &req, &c), Some(ProverId([9; 32])));
            // Nobody has the stake.
            let req = Request {
                resources: res(1, 1, 0),
                bond: MicroCredits(2_000_000),
                prover_set: &any,
                requires: &[],
                exclude: &[],
            };
            assert_eq!(RandomWithFallback.select(seed, &req, &c), None);
        }
    }

    #[test]
    fn selection_is_close_to_uniform() {
        let c = cands(&[]);
        let any = ProverSet::Any;
        let req = Request {
            resources: res(1, 1, 0),
            bond: MicroCredits(0),
            prover_set: &any,
            requires: &[],
            exclude: &[],
        };
        let mut counts = [0u32; 10];
        let n = 20_000u32;
        for i in 0..n {
            let seed = Seed::derive(&[1; 32], "test", &[&i.to_le_bytes()]);
            let id = RandomWithFallback.select(seed, &req, &c).unwrap();
            counts[id.0[0] as usize] += 1;
        }
        // Each expected 2000, sd ≈ 42: 6 sd either way.
        for (i, k) in counts.iter().enumerate() {
            assert!((1750..=2250).contains(k), "prover {i} picked {k} times");
        }
    }

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
