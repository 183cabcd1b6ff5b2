//! The allocation mechanisms a job can ask for, behind one trait that the ledger and the
//! simulator (`provernet-sim`) both call.
//!
//! A mechanism sees one *round*: a job that needs a prover for one attempt, how many blocks it
//! has been open for offers, the price bounds (the chain's quote below, the requester's max fee
//! above), the eligible provers and the offers (bids or locks) provers have sent, in arrival
//! order. It answers with a [`Decision`]: assign a prover at a price (with the collateral it
//! must post), wait for more offers, open the job to a race, or give up for now. The caller
//! owns everything else: escrow, bonds, deadlines, fallback after a failure (it asks again
//! with the failed provers excluded) and redundancy (it asks `k` times, excluding the provers
//! already picked: k-of-n is redundancy over any mechanism).
//!
//! Integer arithmetic only; randomness comes in as a [`Seed`].

use crate::allocation::{Candidate, Request, Seed};
use provernet_types::{MechanismKind, MicroCredits, ProverId};

/// Chain-wide settings of the mechanisms that need them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct MechanismParams {
    /// Blocks over which a reverse Dutch price climbs from the quote to the max fee.
    pub dutch_ramp_blocks: u64,
    /// Blocks a lowest-bid auction collects bids.
    pub bid_window_blocks: u64,
    /// Collateral a locking (reverse Dutch) or winning (lowest-bid) prover posts, as a share of
    /// the price (may exceed 100%).
    pub collateral_bps: u32,
    /// Of forfeited collateral, the share burned; the rest is a bounty for whoever proves the
    /// job instead.
    pub collateral_burn_bps: u32,
    /// The square-root lottery draws only among this many heaviest eligible provers (0: all),
    /// as Taiko's alpha-4 design capped its lottery at the top 32 stakers. Without a cap,
    /// splitting stake into identities raises its square-root weight without bound; the
    /// linear lottery needs no cap (splitting does not change its weight).
    pub sqrt_lottery_top: u32,
}
provernet_types::codec_struct!(MechanismParams {
    dutch_ramp_blocks,
    bid_window_blocks,
    collateral_bps,
    collateral_burn_bps,
    sqrt_lottery_top,
});

impl Default for MechanismParams {
    /// Boundless-like defaults: collateral 10× the price, half of it burned on a miss.
    fn default() -> MechanismParams {
        MechanismParams {
            dutch_ramp_blocks: 10,
            bid_window_blocks: 3,
            collateral_bps: 100_000,
            collateral_burn_bps: 5_000,
            sqrt_lottery_top: 0,
        }
    }
}

impl MechanismParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.dutch_ramp_blocks == 0 || self.dutch_ramp_blocks > 10_000 {
            return Err("dutch_ramp_blocks must be 1..=10000".into());
        }
        if self.bid_window_blocks == 0 || self.bid_window_blocks > 1_000 {
            return Err("bid_window_blocks must be 1..=1000".into());
        }
        if self.collateral_bps > 1_000_000 {
            return Err("collateral_bps must be at most 1000000 (100×)".into());
        }
        if self.collateral_burn_bps > 10_000 {
            return Err("collateral_burn_bps must be at most 10000".into());
        }
        Ok(())
    }

    /// The collateral for a job won at `price`.
    pub fn collateral(&self, price: MicroCredits) -> MicroCredits {
        price.mul_bps(self.collateral_bps)
    }

    /// Splits forfeited collateral into (burned, bounty). Nothing is lost to rounding.
    pub fn forfeit(&self, collateral: MicroCredits) -> (MicroCredits, MicroCredits) {
        let burned = collateral.mul_bps(self.collateral_burn_bps);
        (burned, MicroCredits(collateral.0 - burned.0))
    }
}

/// A prover's offer for a job: a sealed bid (lowest-bid) or a lock (reverse Dutch, where the
/// price is the ramp's, not the offer's). Offers come in arrival order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Offer {
    pub prover: ProverId,
    pub price: MicroCredits,
}

/// One round of allocation for one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Round<'a> {
    pub seed: Seed,
    pub request: &'a Request<'a>,
    /// Blocks since the attempt opened for offers (0 in the block that opened it).
    pub elapsed: u64,
    /// The chain's posted price for the job: what fixed-price mechanisms pay, and where a
    /// reverse Dutch ramp starts.
    pub quote: MicroCredits,
    /// The requester's max fee: the ceiling of every price.
    pub max_fee: MicroCredits,
    pub params: &'a MechanismParams,
}

/// What the caller does with the attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Give the attempt to `prover`, paid `price` on success, posting `collateral`.
    Assign { prover: ProverId, price: MicroCredits, collateral: MicroCredits },
    /// Keep collecting offers; ask again next block.
    Wait,
    /// Nobody is assigned: any eligible prover may prove, the first valid proof earns `price`.
    Open { price: MicroCredits },
    /// No eligible prover now; ask again later (the caller's pending timeout applies).
    Unfilled,
}

/// An allocation mechanism.
pub trait Mechanism {
    fn kind(&self) -> MechanismKind;

    /// Decides one round. `candidates` are in ascending id order (the same on every
    /// validator); `offers` in arrival order, and may name ineligible provers (they are
    /// skipped).
    fn decide(&self, round: &Round<'_>, candidates: &[Candidate<'_>], offers: &[Offer])
        -> Decision;
}

/// The mechanism for `kind`.
pub fn mechanism(kind: MechanismKind) -> &'static dyn Mechanism {
    match kind {
        MechanismKind::RandomWithFallback => &RandomWithFallback,
        MechanismKind::StakeLinear => &StakeLottery { sqrt: false },
        MechanismKind::StakeSqrt => &StakeLottery { sqrt: true },
        MechanismKind::ReverseDutch => &ReverseDutch,
        MechanismKind::LowestBid => &LowestBid,
        MechanismKind::OpenRace => &OpenRace,
    }
}

/// The default: every eligible prover is equally likely, at the posted price.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomWithFallback;

impl RandomWithFallback {
    /// A uniformly random eligible candidate.
    pub fn select(
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

impl Mechanism for RandomWithFallback {
    fn kind(&self) -> MechanismKind {
        MechanismKind::RandomWithFallback
    }

    fn decide(&self, round: &Round<'_>, candidates: &[Candidate<'_>], _: &[Offer]) -> Decision {
        match self.select(round.seed, round.request, candidates) {
            Some(prover) => {
                Decision::Assign { prover, price: round.quote, collateral: MicroCredits(0) }
            }
            None => Decision::Unfilled,
        }
    }
}

/// A lottery weighted by stake (`sqrt: false`) or by its integer square root (`sqrt: true`,
/// among the `sqrt_lottery_top` heaviest eligible provers), at the posted price.
///
/// Linear weights are Sybil-neutral (splitting stake splits weight) but hand a whale its stake
/// share; square-root weights flatten stake concentration but reward splitting, up to the cap.
#[derive(Clone, Copy, Debug)]
pub struct StakeLottery {
    pub sqrt: bool,
}

impl StakeLottery {
    pub fn weight(&self, stake: MicroCredits) -> u128 {
        if self.sqrt {
            u128::from(stake.0.isqrt())
        } else {
            u128::from(stake.0)
        }
    }

    pub fn select(
        &self,
        seed: Seed,
        request: &Request<'_>,
        candidates: &[Candidate<'_>],
        top: u32,
    ) -> Option<ProverId> {
        let mut pool: Vec<(u128, ProverId)> = candidates
            .iter()
            .filter(|c| request.admits(c))
            .map(|c| (self.weight(c.stake), c.id))
            .filter(|(w, _)| *w > 0)
            .collect();
        if top > 0 && pool.len() > top as usize {
            // Heaviest first; equal weights by id, so the cut is the same everywhere.
            pool.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            pool.truncate(top as usize);
            pool.sort_by_key(|p| p.1);
        }
        let total: u128 = pool.iter().map(|(w, _)| w).sum();
        if total == 0 {
            return None;
        }
        let mut r = seed.below(total);
        for (w, id) in &pool {
            if r < *w {
                return Some(*id);
            }
            r -= w;
        }
        None
    }
}

impl Mechanism for StakeLottery {
    fn kind(&self) -> MechanismKind {
        if self.sqrt {
            MechanismKind::StakeSqrt
        } else {
            MechanismKind::StakeLinear
        }
    }

    fn decide(&self, round: &Round<'_>, candidates: &[Candidate<'_>], _: &[Offer]) -> Decision {
        let top = if self.sqrt { round.params.sqrt_lottery_top } else { 0 };
        match self.select(round.seed, round.request, candidates, top) {
            Some(prover) => {
                Decision::Assign { prover, price: round.quote, collateral: MicroCredits(0) }
            }
            None => Decision::Unfilled,
        }
    }
}

/// Boundless-style reverse Dutch auction: the price climbs linearly from the quote to the max
/// fee over `dutch_ramp_blocks`; the first eligible prover to lock gets the attempt at the
/// current price and posts collateral. If nobody locks by the end of the ramp, the job opens
/// to a race at the max fee.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReverseDutch;

impl ReverseDutch {
    /// The price `elapsed` blocks into the ramp.
    pub fn price(
        quote: MicroCredits,
        max_fee: MicroCredits,
        elapsed: u64,
        ramp: u64,
    ) -> MicroCredits {
        let (lo, hi) = (quote.0.min(max_fee.0), max_fee.0);
        let ramp = ramp.max(1);
        let step = elapsed.min(ramp);
        MicroCredits(lo + ((u128::from(hi - lo) * u128::from(step)) / u128::from(ramp)) as u64)
    }
}

impl Mechanism for ReverseDutch {
    fn kind(&self) -> MechanismKind {
        MechanismKind::ReverseDutch
    }

    fn decide(
        &self,
        round: &Round<'_>,
        candidates: &[Candidate<'_>],
        offers: &[Offer],
    ) -> Decision {
        let ramp = round.params.dutch_ramp_blocks;
        let price = ReverseDutch::price(round.quote, round.max_fee, round.elapsed, ramp);
        let first = offers.iter().find(|o| is_eligible(round.request, candidates, &o.prover));
        match first {
            Some(o) => Decision::Assign {
                prover: o.prover,
                price,
                collateral: round.params.collateral(price),
            },
            None if round.elapsed >= ramp => Decision::Open { price: round.max_fee },
            None => Decision::Wait,
        }
    }
}

/// Succinct-style lowest-bid auction: sealed bids for `bid_window_blocks`, then the lowest
/// eligible bid at or under the max fee wins and is paid what it bid (ties broken by the
/// seed). With no valid bid the job opens to a race at the max fee.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowestBid;

impl Mechanism for LowestBid {
    fn kind(&self) -> MechanismKind {
        MechanismKind::LowestBid
    }

    fn decide(
        &self,
        round: &Round<'_>,
        candidates: &[Candidate<'_>],
        offers: &[Offer],
    ) -> Decision {
        if round.elapsed < round.params.bid_window_blocks {
            return Decision::Wait;
        }
        let valid = |o: &&Offer| {
            o.price <= round.max_fee && is_eligible(round.request, candidates, &o.prover)
        };
        let Some(best) = offers.iter().filter(valid).map(|o| o.price).min() else {
            return Decision::Open { price: round.max_fee };
        };
        // One bid per prover counts (its first); ties go to a seeded draw.
        let mut tied: Vec<ProverId> =
            offers.iter().filter(valid).filter(|o| o.price == best).map(|o| o.prover).collect();
        tied.sort();
        tied.dedup();
        let prover = tied[round.seed.index(tied.len())];
        Decision::Assign { prover, price: best, collateral: round.params.collateral(best) }
    }
}

/// Taiko-style open race: nobody is assigned and the first valid proof earns the posted price.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenRace;

impl Mechanism for OpenRace {
    fn kind(&self) -> MechanismKind {
        MechanismKind::OpenRace
    }

    fn decide(&self, round: &Round<'_>, _: &[Candidate<'_>], _: &[Offer]) -> Decision {
        Decision::Open { price: round.quote }
    }
}

fn is_eligible(request: &Request<'_>, candidates: &[Candidate<'_>], id: &ProverId) -> bool {
    candidates
        .binary_search_by(|c| c.id.cmp(id))
        .ok()
        .is_some_and(|i| request.admits(&candidates[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use provernet_types::{Bytes, GpuCount, Label, MilliCores, ProverSet, Resources};

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
                stake: MicroCredits(1_000_000 * (u64::from(i) + 1)),
                labels: if i == 9 { labels } else { &[] },
            })
            .collect()
    }

    fn any_request(exclude: &[ProverId]) -> Request<'_> {
        static ANY: ProverSet = ProverSet::Any;
        Request {
            resources: res(1, 1, 0),
            bond: MicroCredits(0),
            prover_set: &ANY,
            requires: &[],
            exclude,
        }
    }

    fn seed(i: u32) -> Seed {
        Seed::derive(&[1; 32], "test", &[&i.to_le_bytes()])
    }

    fn round<'a>(
        req: &'a Request<'a>,
        params: &'a MechanismParams,
        elapsed: u64,
        i: u32,
    ) -> Round<'a> {
        Round {
            seed: seed(i),
            request: req,
            elapsed,
            quote: MicroCredits(1_000),
            max_fee: MicroCredits(2_000),
            params,
        }
    }

    #[test]
    fn random_respects_fit_exclusion_set_and_stake() {
        let gpu: Vec<Label> = vec!["gpu=h100".parse().unwrap()];
        let c = cands(&gpu);
        let any = ProverSet::Any;
        let exclude = [ProverId([9; 32])];
        for i in 0..200u32 {
            // 8 cores and a GPU: only provers 7 and 9 fit; 9 is excluded.
            let req = Request {
                resources: res(8, 1, 1),
                bond: MicroCredits(1),
                prover_set: &any,
                requires: &[],
                exclude: &exclude,
            };
            assert_eq!(RandomWithFallback.select(seed(i), &req, &c), Some(ProverId([7; 32])));
            // The program requires the GPU label: only prover 9 has it.
            let req = Request { resources: res(1, 1, 0), requires: &gpu, exclude: &[], ..req };
            assert_eq!(RandomWithFallback.select(seed(i), &req, &c), Some(ProverId([9; 32])));
            // Nobody has the stake.
            let req = Request { bond: MicroCredits(2_000_000), requires: &[], ..req };
            assert_eq!(RandomWithFallback.select(seed(i), &req, &c), None);
            let params = MechanismParams::default();
            assert_eq!(
                RandomWithFallback.decide(&round(&req, &params, 0, i), &c, &[]),
                Decision::Unfilled
            );
        }
    }

    /// Draw counts per candidate over `n` seeds.
    fn counts(m: &dyn Mechanism, params: &MechanismParams, n: u32) -> [u32; 10] {
        let c = cands(&[]);
        let req = any_request(&[]);
        let mut counts = [0u32; 10];
        for i in 0..n {
            match m.decide(&round(&req, params, 0, i), &c, &[]) {
                Decision::Assign { prover, price, collateral } => {
                    assert_eq!((price, collateral), (MicroCredits(1_000), MicroCredits(0)));
                    counts[prover.0[0] as usize] += 1;
                }
                d => panic!("{d:?}"),
            }
        }
        counts
    }

    #[test]
    fn random_is_close_to_uniform() {
        // Each expected 2000, sd ≈ 42: 6 sd either way.
        for (i, k) in
            counts(&RandomWithFallback, &MechanismParams::default(), 20_000).iter().enumerate()
        {
            assert!((1750..=2250).contains(k), "prover {i} picked {k} times");
        }
    }

    #[test]
    fn stake_lotteries_follow_their_weights() {
        let n = 55_000;
        let params = MechanismParams::default();
        // Stakes 1..=10 (in credits): linear weights i/55.
        let linear = counts(mechanism(MechanismKind::StakeLinear), &params, n);
        for (i, k) in linear.iter().enumerate() {
            let expect = f64::from(n) * (i as f64 + 1.0) / 55.0;
            assert!(
                (f64::from(*k) - expect).abs() < 6.0 * expect.sqrt(),
                "linear {i}: {k} vs {expect}"
            );
        }
        // Square roots of the stakes in micro-credits.
        let sqrt = counts(mechanism(MechanismKind::StakeSqrt), &params, n);
        let w: Vec<f64> = (1..=10).map(|i| f64::from(i).sqrt()).collect();
        let total: f64 = w.iter().sum();
        for (i, k) in sqrt.iter().enumerate() {
            let expect = f64::from(n) * w[i] / total;
            assert!(
                (f64::from(*k) - expect).abs() < 6.0 * expect.sqrt(),
                "sqrt {i}: {k} vs {expect}"
            );
        }
        // The top-3 cap on the square-root lottery: only the three heaviest (stakes 8, 9, 10)
        // are ever drawn. The linear lottery ignores it.
        let capped = MechanismParams { sqrt_lottery_top: 3, ..params };
        let top = counts(mechanism(MechanismKind::StakeSqrt), &capped, 3_000);
        assert_eq!(top[..7].iter().sum::<u32>(), 0);
        assert!(top[7] > 0 && top[8] > top[7] / 2 && top[9] > 0);
        let linear = counts(mechanism(MechanismKind::StakeLinear), &capped, 3_000);
        assert!(linear[0] > 0, "{linear:?}");
    }

    #[test]
    fn weighted_draws_are_uniform_below_any_bound() {
        for n in [1u128, 2, 3, 7, 1 << 64, u128::MAX] {
            for i in 0..50 {
                assert!(seed(i).below(n) < n);
            }
        }
        // Below 3: each residue about a third of the time.
        let mut k = [0u32; 3];
        for i in 0..30_000 {
            k[seed(i).below(3) as usize] += 1;
        }
        assert!(k.iter().all(|c| (9_500..=10_500).contains(c)), "{k:?}");
    }

    #[test]
    fn reverse_dutch_ramps_locks_first_and_opens_after_the_ramp() {
        let c = cands(&[]);
        let req = any_request(&[]);
        let params = MechanismParams { dutch_ramp_blocks: 10, ..MechanismParams::default() };
        let q = MicroCredits(1_000);
        let m = MicroCredits(2_000);
        assert_eq!(ReverseDutch::price(q, m, 0, 10), q);
        assert_eq!(ReverseDutch::price(q, m, 5, 10), MicroCredits(1_500));
        assert_eq!(ReverseDutch::price(q, m, 10, 10), m);
        assert_eq!(ReverseDutch::price(q, m, 99, 10), m);
        assert_eq!(ReverseDutch.decide(&round(&req, &params, 3, 0), &c, &[]), Decision::Wait);
        assert_eq!(
            ReverseDutch.decide(&round(&req, &params, 10, 0), &c, &[]),
            Decision::Open { price: m }
        );
        // An ineligible (unknown) prover's lock is skipped; the first eligible one wins.
        let locks = [
            Offer { prover: ProverId([77; 32]), price: MicroCredits(0) },
            Offer { prover: ProverId([4; 32]), price: MicroCredits(0) },
            Offer { prover: ProverId([2; 32]), price: MicroCredits(0) },
        ];
        assert_eq!(
            ReverseDutch.decide(&round(&req, &params, 3, 0), &c, &locks),
            Decision::Assign {
                prover: ProverId([4; 32]),
                price: MicroCredits(1_300),
                collateral: MicroCredits(13_000)
            }
        );
    }

    #[test]
    fn lowest_bid_waits_for_the_window_and_pays_the_lowest_eligible_bid() {
        let c = cands(&[]);
        let exclude = [ProverId([1; 32])];
        let req = any_request(&exclude);
        let params = MechanismParams { bid_window_blocks: 3, ..MechanismParams::default() };
        let bid =
            |p: u8, price: u64| Offer { prover: ProverId([p; 32]), price: MicroCredits(price) };
        let bids = [bid(3, 1_500), bid(1, 900), bid(5, 2_500), bid(6, 1_200), bid(8, 1_200)];
        assert_eq!(LowestBid.decide(&round(&req, &params, 2, 0), &c, &bids), Decision::Wait);
        // Prover 1 is excluded and prover 5 bid above the max fee; 6 and 8 tie at 1,200.
        let mut winners = [0u32; 10];
        for i in 0..400 {
            match LowestBid.decide(&round(&req, &params, 3, i), &c, &bids) {
                Decision::Assign { prover, price, collateral } => {
                    assert_eq!(price, MicroCredits(1_200));
                    assert_eq!(collateral, MicroCredits(12_000));
                    winners[prover.0[0] as usize] += 1;
                }
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(winners[6] + winners[8], 400);
        assert!(winners[6] > 150 && winners[8] > 150, "{winners:?}");
        assert_eq!(
            LowestBid.decide(&round(&req, &params, 3, 0), &c, &[bid(1, 10)]),
            Decision::Open { price: MicroCredits(2_000) }
        );
    }

    #[test]
    fn forfeits_split_without_loss_and_params_are_checked() {
        let p = MechanismParams::default();
        assert_eq!(p.forfeit(MicroCredits(10_001)), (MicroCredits(5_000), MicroCredits(5_001)));
        assert!(p.validate().is_ok());
        assert!(MechanismParams { collateral_burn_bps: 10_001, ..p }.validate().is_err());
        assert!(MechanismParams { dutch_ramp_blocks: 0, ..p }.validate().is_err());
        for kind in MechanismKind::ALL {
            assert_eq!(mechanism(kind).kind(), kind);
            assert_eq!(kind.name().parse::<MechanismKind>(), Ok(kind));
        }
        assert!("dutch".parse::<MechanismKind>().unwrap_err().contains("reverse-dutch"));
    }
}
