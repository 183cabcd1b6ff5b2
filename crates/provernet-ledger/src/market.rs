//! What a job's market offers one prover right now: a race it may join, a Dutch price it may
//! lock, a sealed bid it may place or reveal. Read-only, for the API's work listing and for
//! prover nodes; the transactions themselves are checked by [`crate::apply_block`], so a
//! listing here that turns stale by the time its transaction lands only costs a failed
//! transaction.

use crate::entities::{Job, JobStatus};
use crate::state::State;
use provernet_mechanism::ReverseDutch;
use provernet_types::{Height, MechanismKind, MicroCredits, ProverId};

/// A market action open to a prover on one job, for a transaction landing in the next block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opening {
    /// The job is in its open race until `until`; the first accepted proof earns `price`.
    Race { until: Height, price: MicroCredits },
    /// A reverse-Dutch job: a lock in the next block wins it at `price`.
    Lock { price: MicroCredits, max_fee: MicroCredits },
    /// A lowest-bid job takes sealed bids until `until`; bids above `max_fee` cannot win.
    Bid { until: Height, round: Height, max_fee: MicroCredits },
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
    let since = next.0.saturating_sub(round.0);
    let need = job.fee_per_prover.0.saturating_add(mp.collateral(job.max_fee).0);
    match job.mechanism {
        MechanismKind::ReverseDutch if p.free_stake().0 >= need => {
            let price =
                ReverseDutch::price(job.fee_per_prover, job.max_fee, since, mp.dutch_ramp_blocks);
            Some(Opening::Lock { price, max_fee: job.max_fee })
        }
        MechanismKind::LowestBid => {
            let w = mp.bid_window_blocks;
            let mine = job.bids.iter().find(|b| b.prover == *prover);
            if since < w && mine.is_none() && p.free_stake().0 >= need {
                Some(Opening::Bid { until: Height(round.0 + w - 1), round, max_fee: job.max_fee })
            } else if (w..2 * w).contains(&since) && mine.is_some_and(|b| b.price.is_none()) {
                Some(Opening::Reveal { until: Height(round.0 + 2 * w - 1), round })
            } else {
                None
            }
        }
        _ => None,
    }
}
