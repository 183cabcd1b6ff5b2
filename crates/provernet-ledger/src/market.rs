//! What a job's market offers one prover right now: a race it may join, a Dutch price it may
//! lock, a sealed bid it may place or reveal. Read-only, for the API's work listing and for
//! prover nodes; the transactions themselves are checked by [`crate::apply_block`], so a
//! listing here that turns stale by the time its transaction lands only costs a failed
//! transaction.

use crate::entities::{Job, JobStatus};
use crate::state::State;
use provernet_mechanism::{MechanismParams, ReverseDutch};
use provernet_types::{Height, MechanismKind, MicroCredits, ProverId};

/// A market action open to a prover on one job, for a transaction landing in the next block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opening {
    /// The job is in its open race until `until`; the first accepted proof earns `price`.
    Race { until: Height, price: MicroCredits },
    /// A reverse-Dutch job in the round opened at `round`: a lock in the next block wins it
    /// at `price`.
    Lock { price: MicroCredits, round: Height },
    /// A lowest-bid job takes sealed bids until `until` (bids above its max fee cannot win).
    Bid { until: Height, round: Height },
    /// The prover's sealed bid on a lowest-bid job must be revealed by `until`.
    Reveal { until: Height, round: Height },
}

impl Opening {
    /// The name used in the API's work listing.
    pub fn kind(&self) -> &'static str {
        match self {
            Opening::Race { .. } => "race",
            Opening::Lock { .. } => "lock",
            Opening::Bid { .. } => "bid",
            Opening::Reveal { .. } => "reveal",
        }
    }
}

/// Where a lowest-bid round that opened at `round` stands at height `h`: it takes sealed bids
/// for `window` blocks, then reveals for as many, then the end-of-block rules decide it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SealedPhase {
    Bidding { until: Height },
    Revealing { until: Height },
    Decided,
}

pub fn sealed_phase(round: Height, window: u64, h: Height) -> SealedPhase {
    let since = h.0.saturating_sub(round.0);
    if since < window {
        SealedPhase::Bidding { until: Height(round.0 + window - 1) }
    } else if since < 2 * window {
        SealedPhase::Revealing { until: Height(round.0 + 2 * window - 1) }
    } else {
        SealedPhase::Decided
    }
}

/// The free stake a prover needs to take a new attempt of `job`: the bond, and for an auction
/// also the collateral at the max fee (what a sealed bid's deposit holds and the most a winner
/// posts), so a winner can always post its collateral.
pub fn stake_needed(params: &MechanismParams, job: &Job) -> MicroCredits {
    let collateral =
        if job.mechanism.is_auction() { params.collateral(job.max_fee) } else { MicroCredits(0) };
    MicroCredits(job.fee_per_prover.0.saturating_add(collateral.0))
}

/// What `job` offers `prover` for a transaction in the block after `state`'s.
pub fn opening(state: &State, job: &Job, prover: &ProverId) -> Option<Opening> {
    if job.status.is_final() || job.probe_for.is_some() {
        return None;
    }
    let p = state.prover(prover)?;
    let requires = state.program(&job.program).map(|x| &x.manifest.requires)?;
    if !job.admits(prover, p, requires) || !job.resources.fits_in(&p.capacity) {
        return None;
    }
    let next = Height(state.height().0 + 1);
    if job.status == JobStatus::Race {
        let until = job.race_until?;
        let ok =
            until >= next && !job.barred_from_race(prover) && p.free_stake() >= job.fee_per_prover;
        return ok.then_some(Opening::Race { until, price: job.race_price });
    }
    let round = job.round?;
    if job.live_attempts() >= usize::from(job.redundancy) || job.provers().contains(prover) {
        return None;
    }
    let mp = &state.params().mechanism_params;
    let staked = p.free_stake() >= stake_needed(mp, job);
    match job.mechanism {
        MechanismKind::ReverseDutch if staked => {
            let since = next.0.saturating_sub(round.0);
            let price =
                ReverseDutch::price(job.fee_per_prover, job.max_fee, since, mp.dutch_ramp_blocks);
            Some(Opening::Lock { price, round })
        }
        MechanismKind::LowestBid => {
            let mine = job.bids.iter().find(|b| b.prover == *prover);
            match sealed_phase(round, mp.bid_window_blocks, next) {
                SealedPhase::Bidding { until } if mine.is_none() && staked => {
                    Some(Opening::Bid { until, round })
                }
                SealedPhase::Revealing { until } if mine.is_some_and(|b| b.price.is_none()) => {
                    Some(Opening::Reveal { until, round })
                }
                _ => None,
            }
        }
        _ => None,
    }
}
