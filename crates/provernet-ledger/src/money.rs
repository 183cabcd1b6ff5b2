//! Where credits are, and the one way they move.
//!
//! Every credit sits in exactly one purse: an account's balance, a prover's stake, a job's
//! escrow (part of which may be held as the job's bounty), a workflow's escrow for one of its
//! nodes not yet a job, the treasury, or the burned pile.
//! [`move_credits`] is the only function that changes a purse: it takes from one and puts the
//! same amount into another, with checked arithmetic, so conservation holds move by move and
//! not only when the supply is summed after a block.
//!
//! Two things are not purses but liens on them, and have their own checked helpers:
//! a prover's *bonded* stake (what its live attempts and open bids hold, [`bond`] and
//! [`unbond`]) and its *used* capacity ([`hold_capacity`] and [`free_capacity`]). A lien may
//! exceed the stake after a slash, which only means the prover has no free stake.
//!
//! Moves the protocol makes on its own (payments, slashes, refunds) cannot fall short: the
//! escrow always holds what the job may still pay. Such moves go through [`must_move`], which
//! panics if that ever fails, since a ledger that silently clamped an amount would hide the
//! bug and let the supply drift. Moves a transaction asks for (a transfer, a stake, an escrow)
//! can fall short and become a [`crate::TxError`].

use crate::entities::{Job, Workflow};
use crate::events::{Event, PaymentKind};
use crate::overlay::Overlay;
use provernet_types::{AccountId, JobId, MicroCredits, ProverId, Resources};

/// A holder of credits.
#[derive(Debug)]
pub(crate) enum Purse<'j> {
    Balance(AccountId),
    Stake(ProverId),
    /// A job's escrow, less its bounty.
    Escrow(&'j mut Job),
    /// The part of a job's escrow held as a bounty for whoever proves the job.
    Bounty(&'j mut Job),
    /// What a workflow holds for its node (by index) until the node becomes a job: the
    /// node's share and the workflow's total move together.
    Workflow(&'j mut Workflow, usize),
    Treasury,
    Burned,
}

/// A purse held less than a move needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shortfall {
    pub have: MicroCredits,
    pub need: MicroCredits,
}

fn short(have: u64, need: MicroCredits) -> Shortfall {
    Shortfall { have: MicroCredits(have), need }
}

/// Takes `amount` from `from` and puts it into `to`, or changes nothing and reports the
/// shortfall.
pub(crate) fn move_credits(
    ov: &mut Overlay<'_>,
    from: Purse<'_>,
    to: Purse<'_>,
    amount: MicroCredits,
) -> Result<(), Shortfall> {
    take(ov, from, amount)?;
    put(ov, to, amount);
    Ok(())
}

/// [`move_credits`] for a move the protocol guarantees can be made; a shortfall is a bug in the
/// ledger and stops it rather than letting the supply drift.
pub(crate) fn must_move(
    ov: &mut Overlay<'_>,
    from: Purse<'_>,
    to: Purse<'_>,
    amount: MicroCredits,
    what: &str,
) {
    if let Err(s) = move_credits(ov, from, to, amount) {
        panic!("ledger invariant broken: {what} needs {} but its purse holds {}", s.need, s.have);
    }
}

/// Pays `amount` from `from` to the account `to` and records why.
pub(crate) fn pay(
    ov: &mut Overlay<'_>,
    from: Purse<'_>,
    to: AccountId,
    job: Option<JobId>,
    kind: PaymentKind,
    amount: MicroCredits,
) {
    if amount.0 == 0 {
        return;
    }
    must_move(ov, from, Purse::Balance(to), amount, kind.name());
    let for_work = matches!(
        kind,
        PaymentKind::ProverReward
            | PaymentKind::VerifierReward
            | PaymentKind::ProgramErrorCharge
            | PaymentKind::Bounty
    );
    if for_work {
        if let Some(p) = ov.prover_mut(&ProverId::from(to)) {
            p.earned = tally(p.earned, amount, "earned");
        }
    }
    ov.events.push(Event::Paid { to, job, kind, amount });
}

/// `total + amount` for a running total the supply bounds; an overflow is a ledger bug.
pub(crate) fn tally(total: MicroCredits, amount: MicroCredits, what: &str) -> MicroCredits {
    match total.checked_add(amount) {
        Some(t) => t,
        None => panic!("ledger invariant broken: the {what} total overflows"),
    }
}

fn take(ov: &mut Overlay<'_>, from: Purse<'_>, amount: MicroCredits) -> Result<(), Shortfall> {
    let n = amount.0;
    match from {
        Purse::Balance(id) => {
            let have = ov.account(&id).map_or(0, |a| a.balance.0);
            let left = have.checked_sub(n).ok_or(short(have, amount))?;
            ov.account_mut(id).balance = MicroCredits(left);
        }
        Purse::Stake(id) => {
            let have = ov.prover(&id).map_or(0, |p| p.stake.0);
            let left = have.checked_sub(n).ok_or(short(have, amount))?;
            if let Some(p) = ov.prover_mut(&id) {
                p.stake = MicroCredits(left);
            }
        }
        Purse::Escrow(job) => {
            let have = escrow_less_bounty(job);
            have.checked_sub(n).ok_or(short(have, amount))?;
            job.escrow.0 -= n;
        }
        Purse::Bounty(job) => {
            let have = job.bounty.0;
            have.checked_sub(n).ok_or(short(have, amount))?;
            job.bounty.0 -= n;
            job.escrow.0 -= n;
        }
        Purse::Workflow(w, node) => {
            let have = w.nodes[node].escrow.0;
            let left = have.checked_sub(n).ok_or(short(have, amount))?;
            let total = match w.escrow.0.checked_sub(n) {
                Some(t) => t,
                None => panic!("ledger invariant broken: a workflow's escrow is below a node's"),
            };
            w.nodes.as_mut_slice()[node].escrow = MicroCredits(left);
            w.escrow = MicroCredits(total);
        }
        Purse::Treasury => {
            let have = ov.meta().treasury.0;
            ov.meta().treasury.0 = have.checked_sub(n).ok_or(short(have, amount))?;
        }
        Purse::Burned => {
            let have = ov.meta().burned.0;
            ov.meta().burned.0 = have.checked_sub(n).ok_or(short(have, amount))?;
        }
    }
    Ok(())
}

fn escrow_less_bounty(job: &Job) -> u64 {
    match job.escrow.0.checked_sub(job.bounty.0) {
        Some(v) => v,
        None => panic!("ledger invariant broken: a job's bounty exceeds its escrow"),
    }
}

/// Credits cannot overflow: every credit comes from the genesis supply, which fits in a `u64`.
fn add(have: u64, n: u64) -> u64 {
    match have.checked_add(n) {
        Some(v) => v,
        None => panic!("ledger invariant broken: a purse would hold more than the supply"),
    }
}

fn put(ov: &mut Overlay<'_>, to: Purse<'_>, amount: MicroCredits) {
    let n = amount.0;
    match to {
        Purse::Balance(id) => {
            let a = ov.account_mut(id);
            a.balance = MicroCredits(add(a.balance.0, n));
        }
        Purse::Stake(id) => match ov.prover_mut(&id) {
            Some(p) => p.stake = MicroCredits(add(p.stake.0, n)),
            None => panic!("ledger invariant broken: stake paid to unregistered prover {id}"),
        },
        Purse::Escrow(job) => job.escrow = MicroCredits(add(job.escrow.0, n)),
        Purse::Bounty(job) => {
            job.escrow = MicroCredits(add(job.escrow.0, n));
            job.bounty = MicroCredits(add(job.bounty.0, n));
        }
        Purse::Workflow(w, node) => {
            let e = &mut w.nodes.as_mut_slice()[node].escrow;
            *e = MicroCredits(add(e.0, n));
            w.escrow = MicroCredits(add(w.escrow.0, n));
        }
        Purse::Treasury => ov.meta().treasury.0 = add(ov.meta().treasury.0, n),
        Purse::Burned => ov.meta().burned.0 = add(ov.meta().burned.0, n),
    }
}

/// Bonds `amount` of `prover`'s stake to work it takes on. Callers check free stake first.
pub(crate) fn bond(ov: &mut Overlay<'_>, prover: ProverId, amount: MicroCredits) {
    if let Some(p) = ov.prover_mut(&prover) {
        p.bonded = MicroCredits(add(p.bonded.0, amount.0));
    }
}

/// Releases `amount` of `prover`'s bond. Releasing more than is bonded is a bug.
pub(crate) fn unbond(ov: &mut Overlay<'_>, prover: ProverId, amount: MicroCredits) {
    if let Some(p) = ov.prover_mut(&prover) {
        p.bonded = match p.bonded.0.checked_sub(amount.0) {
            Some(v) => MicroCredits(v),
            None => panic!(
                "ledger invariant broken: prover {prover} releases a bond of {amount} but holds {}",
                p.bonded
            ),
        };
    }
}

/// Marks `resources` of `prover`'s capacity as used by an attempt.
pub(crate) fn hold_capacity(ov: &mut Overlay<'_>, prover: ProverId, resources: &Resources) {
    if let Some(p) = ov.prover_mut(&prover) {
        p.used = match p.used.checked_add(resources) {
            Some(u) => u,
            None => panic!("ledger invariant broken: prover {prover}'s used capacity overflows"),
        };
    }
}

/// Frees `resources` of `prover`'s used capacity. Freeing more than is used is a bug.
pub(crate) fn free_capacity(ov: &mut Overlay<'_>, prover: ProverId, resources: &Resources) {
    if let Some(p) = ov.prover_mut(&prover) {
        p.used = match p.used.checked_sub(resources) {
            Some(u) => u,
            None => panic!(
                "ledger invariant broken: prover {prover} frees {resources} but uses {}",
                p.used
            ),
        };
    }
}
