//! The state machine: `apply_block(state, context, txs)`.
//!
//! # Protocol
//!
//! Transactions apply in block order; each either applies whole or is rejected with a
//! [`TxError`] and changes nothing. Then the *end-of-block rules* run over every job and prover
//! whose wake-up height has come (a job wakes `draw_delay` blocks after a transaction touched it,
//! or at its next deadline if that comes first):
//!
//! 1. **Timeouts.** An attempt still `Assigned` at its accept deadline becomes `MissedAccept`;
//!    one still `Running` at its result deadline (accept height + time limit in blocks + grace)
//!    becomes `MissedDeadline`, and so does one `Committed` that has not revealed
//!    `reveal_window` blocks after its gate opened ([`gate_open`]). They slash the prover and
//!    free its capacity and bond.
//! 2. **Results.** A running attempt either commits to its proof (`CommitResult`: the files'
//!    commitment, bound to its prover) and reveals it in a later block, once every attempt
//!    assigned no later than the commitment has committed in an earlier block or ended; or it
//!    claims the program failed (`ProgramError`) or ran out of its time limit (`TimeLimit`). A
//!    reveal of the same bytes as a proof revealed before its commitment, and still under
//!    verification or paid, is `Superseded`: a copy is never paid.
//! 3. **Verification.** A newly `Proven` attempt gets its voters: every validator for a
//!    built-in verifier, else `committee_size` random active provers other than the attempt's
//!    prover (the validators when there are none). A verdict needs a quorum ([`Tally`]): at
//!    least two thirds of the seats voting the same way accept the proof, or reject it; one vote
//!    never decides for two seats or more. A round ends at its vote deadline, or earlier once no
//!    quorum can form; without a verdict, members of a committee of provers who did not vote are
//!    slashed (`Fault::MissedVote`) and a fresh committee is drawn, up to `verify_rounds_max`
//!    rounds. After the last one the attempt is `Unverifiable`: its prover is neither paid nor
//!    punished, and the job falls back to another prover.
//!    A quorum may also say the verification cannot run on the requester's side
//!    (`Verdict::CannotVerify`): the prover is paid as for an accepted proof and the job ends
//!    `Failed(unverifiable)`.
//! 4. **Settlement of an attempt.** Accepted: the prover is paid the attempt's price less the
//!    verifier share, which goes to the members who voted valid; the first accepted attempt
//!    makes the job `Verified`, and if any earlier attempt failed through a prover's fault the
//!    requester gets `fallback_refund_bps` of the fee back from the treasury (which holds the
//!    slashes); the deciding attempt also collects the job's bounty (forfeited collateral).
//!    Rejected: the prover is slashed and forfeits its collateral; members who voted invalid
//!    share the verifier reward, paid from the treasury.
//! 5. **Assignment and fallback.** Jobs of the chain-assigned mechanisms (random, the stake
//!    lotteries) wait in a first-come, first-served queue (`Job::seq`): after the wake-ups, the
//!    end-of-block rules look at the first [`QUEUE_SCAN_MAX`] queued jobs in submission order and
//!    assign each a prover its mechanism draws, if one is eligible; a job that fits no free
//!    prover stays in place without holding up the ones behind it, and the work per block does
//!    not grow with the queue. While a job is not final and fewer than `redundancy` attempts are
//!    live, new attempts go to fresh provers, excluding every prover that already held one,
//!    until `redundancy + fallback_attempts_max` attempts were made; a fallback after a failed
//!    attempt is drawn as soon as the failure is seen. Then, or when no eligible prover remains,
//!    the job opens a race: any eligible prover may post a proof for one time limit; the first
//!    proof accepted wins. A race with no accepted proof ends
//!    `Failed(no proof)` with a full refund. Claims of one kind from `program_error_quorum`
//!    distinct provers, one of them assigned after the first claim was posted, end the job
//!    `Failed(program)` or `Failed(time limit)`: the requester is charged one attempt's fee,
//!    shared by the claimers, and nobody is punished. A verified proof refutes standing claims:
//!    their provers are slashed (`Fault::FalseClaim`). A job never assigned within `pending_timeout`
//!    `Expired`. Auctioned jobs (reverse Dutch, lowest bid) are assigned by auction *rounds*
//!    instead: a round opens at submission and after each failed attempt; a Dutch round ends at
//!    the first eligible `LockJob` (the attempt runs at once at the ramp's price), a lowest-bid
//!    round at the end of its reveal window (the lowest revealed sealed bid wins; unrevealed
//!    bids forfeit their deposits); a round nobody takes opens the race at the max fee. A
//!    failed auction winner forfeits its collateral: part burned, the rest a bounty.
//! 6. **Settlement of a job.** Once a job is final and no attempt of it is live, the rest of its
//!    escrow returns to the requester; an unclaimed bounty goes to the treasury. Every path conserves credits: balances + stakes +
//!    escrows + treasury + burned always equals the genesis supply, move by move, since credits
//!    only ever move through one primitive with checked arithmetic (`money.rs`).
//!
//! Randomness for assignment and committees comes from the block context (the consensus
//! engine's threshold beacon), bound to the job, the attempt and the purpose, so the order in
//! which a proposer puts transactions cannot steer who is picked. A block's randomness is the
//! seed of its parent's view, which its proposer knows; `draw_delay` (2 on a live chain) makes
//! the draws a transaction causes happen in a later block, whose seed did not exist when the
//! transaction's block was proposed (commit, then reveal).

use crate::entities::*;
use crate::error::TxError;
use crate::events::{Event, Fault, PaymentKind, Receipt};
use crate::market::{sealed_phase, stake_needed, SealedPhase};
use crate::money::{
    bond, free_capacity, hold_capacity, move_credits, must_move, pay, tally, unbond, Purse,
};
use crate::overlay::Overlay;
use crate::params::{ChainParams, Genesis};
use crate::state::{ChangeSet, Meta, State};
use provernet_mechanism::{
    mechanism, pick_committee, Candidate, Decision, Offer, Request, Round, Seed,
};
use provernet_types::limits::*;
use provernet_types::tx::job_id;
use provernet_types::MechanismKind;
use provernet_types::{
    first_duplicate, AccountId, AttemptOutcome, BoundedVec, Code, FileName, Height, JobId, JobSpec,
    MicroCredits, Millis, NamedBlob, Nonce, ProgramFailure, ProgramManifest, ProverId, ProverSet,
    Resources, StateRoot, TxBody, Usage, Verdict, VerifiedTx, VerifierSpec,
};

/// What the consensus layer tells the ledger about the block being applied.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockContext {
    pub height: Height,
    /// Unbiasable randomness for this block (the threshold-signature beacon).
    pub randomness: [u8; 32],
    /// The block's timestamp, for display only: every timeout is counted in blocks.
    pub time: Millis,
}

/// What applying a block produced.
#[derive(Clone, Debug)]
pub struct BlockOutput {
    pub receipts: Vec<Receipt>,
    pub events: Vec<Event>,
    pub root: StateRoot,
    pub changes: ChangeSet,
    /// Records that left the live state in this block, for the store's archive (see
    /// [`crate::archive`]); their deletions are in `changes`.
    pub archived: Vec<crate::archive::Archived>,
}

/// Why a block could not be applied at all (a bug in the caller, not a bad transaction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block height {got} does not follow the state's height {state}")]
    WrongHeight { state: Height, got: Height },
    #[error("block has {got} transactions, above the limit of {max}")]
    TooManyTxs { got: usize, max: usize },
}

/// Why a genesis description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("invalid chain parameters: {0}")]
    Params(String),
    #[error("account {0} appears twice")]
    DuplicateAccount(AccountId),
    #[error("genesis program `{name}` is invalid: {reason}")]
    Program { name: String, reason: String },
    #[error("the probe program {0} is not among the genesis programs")]
    MissingProbeProgram(provernet_types::ProgramId),
    #[error("the genesis supply overflows")]
    Overflow,
}

/// The state at height 0.
pub fn genesis(g: &Genesis) -> Result<State, GenesisError> {
    g.params.validate().map_err(GenesisError::Params)?;
    let mut supply: u64 = 0;
    let mut state = State::empty(Meta {
        height: Height(0),
        supply: MicroCredits(0),
        treasury: MicroCredits(0),
        burned: MicroCredits(0),
        jobs_submitted: 0,
        params: g.params.clone(),
        archive: crate::archive::Peaks::default(),
    });
    for (id, amount) in g.accounts.iter() {
        if state.account(id).is_some() {
            return Err(GenesisError::DuplicateAccount(*id));
        }
        supply = supply.checked_add(amount.0).ok_or(GenesisError::Overflow)?;
        state.put_account(*id, Account { balance: *amount, nonce: Nonce(0), open_jobs: 0 });
    }
    for v in g.params.validators.iter() {
        if state.account(v).is_none() {
            state.put_account(*v, Account::default());
        }
    }
    for m in g.programs.iter() {
        let ov = Overlay::new(&state, Height(0));
        check_manifest(&ov, m).map_err(|e| GenesisError::Program {
            name: m.name.to_string(),
            reason: e.to_string(),
        })?;
        state.put_program(
            m.id(),
            Program { manifest: m.clone(), owner: AccountId::default(), registered_at: Height(0) },
        );
    }
    if let Some(probe) = &g.params.probe {
        if state.program(&probe.program).is_none() {
            return Err(GenesisError::MissingProbeProgram(probe.program));
        }
    }
    state.meta.supply = MicroCredits(supply);
    state.put_meta();
    state.commit();
    Ok(state)
}

/// Applies a block: its transactions in order, then the end-of-block rules, then commits.
pub fn apply_block(
    state: &mut State,
    ctx: &BlockContext,
    txs: &[VerifiedTx],
) -> Result<BlockOutput, BlockError> {
    let expected = Height(state.height().0 + 1);
    if ctx.height != expected {
        return Err(BlockError::WrongHeight { state: state.height(), got: ctx.height });
    }
    if txs.len() > BLOCK_TXS_MAX {
        return Err(BlockError::TooManyTxs { got: txs.len(), max: BLOCK_TXS_MAX });
    }
    state.meta.height = ctx.height;
    state.put_meta();
    let mut receipts = Vec::with_capacity(txs.len());
    let mut events = Vec::new();
    for tx in txs {
        let mut ov = Overlay::new(state, ctx.height);
        let result = apply_tx(&mut ov, tx);
        if result.is_ok() {
            let (writes, evs) = ov.finish();
            writes.apply(state);
            events.extend(evs);
        }
        receipts.push(Receipt { tx: tx.hash(), result });
    }
    end_of_block(state, ctx, &mut events);
    let archived = state.archive_finished();
    let (root, changes) = state.commit();
    Ok(BlockOutput { receipts, events, root, changes, archived })
}

/// The chain's price of a job: per prover, and in all for `redundancy` provers. The one place
/// the quote is computed (the ledger's admission of a job, the API's `/v1/quote` and the CLI's
/// offline quote call it); refuses a redundancy outside 1 to [`REDUNDANCY_MAX`] and a total
/// that overflows.
pub fn job_quote(
    params: &ChainParams,
    resources: &Resources,
    time_limit: provernet_types::Seconds,
    redundancy: u8,
) -> Result<(MicroCredits, MicroCredits), TxError> {
    if redundancy == 0 || redundancy > REDUNDANCY_MAX {
        return Err(TxError::BadRedundancy(redundancy));
    }
    let per = params.prices.quote(resources, time_limit);
    let total = per.0.checked_mul(u64::from(redundancy)).ok_or(TxError::Overflow)?;
    Ok((per, MicroCredits(total)))
}

/// What a job escrows at submission: an auction may clear anywhere up to the max fee, so it
/// escrows the max fee (the rest returns at settlement); fixed-price mechanisms escrow, and
/// charge at most, the quote.
pub fn job_escrow(
    mechanism: MechanismKind,
    max_fee: MicroCredits,
    quote: MicroCredits,
) -> MicroCredits {
    if mechanism.is_auction() {
        max_fee
    } else {
        quote
    }
}

/// Whether `tx` would apply if it were the first transaction of the next block on `state`.
///
/// For admission to a mempool: it runs the same rules as [`apply_block`] on a throw-away
/// overlay, so balances, fees, escrows, stakes and references are all checked; the end-of-block
/// rules do not run and nothing is changed.
pub fn check_tx(state: &State, tx: &VerifiedTx) -> Result<(), TxError> {
    let mut ov = Overlay::new(state, Height(state.height().0 + 1));
    apply_tx(&mut ov, tx)
}

fn apply_tx(ov: &mut Overlay<'_>, vtx: &VerifiedTx) -> Result<(), TxError> {
    let tx = vtx.tx();
    let signer = tx.signer;
    let account = ov.account(&signer).ok_or(TxError::UnknownAccount(signer))?;
    if account.nonce != tx.nonce {
        return Err(TxError::BadNonce { expected: account.nonce, got: tx.nonce });
    }
    if tx.body.pays_fee() {
        spend(ov, signer, Purse::Burned, ov.params().tx_fee)?;
    }
    match &tx.body {
        TxBody::Transfer { to, amount } => transfer(ov, signer, *to, *amount)?,
        TxBody::RegisterProgram { manifest } => register_program(ov, signer, manifest)?,
        TxBody::RegisterProver { capacity, labels, stake } => {
            register_prover(ov, signer, tx.nonce, capacity, labels, *stake)?
        }
        TxBody::DeregisterProver => deregister_prover(ov, signer.into())?,
        TxBody::SubmitJob(spec) => submit_job(ov, signer, tx.nonce, spec)?,
        TxBody::CancelJob { job } => cancel_job(ov, signer, *job)?,
        TxBody::AcceptJob { job, attempt } => accept_job(ov, signer.into(), *job, *attempt)?,
        TxBody::DeclineJob { job, attempt } => decline_job(ov, signer.into(), *job, *attempt)?,
        TxBody::PostResult { job, attempt, outcome, usage } => {
            post_result(ov, signer.into(), *job, *attempt, outcome, *usage)?
        }
        TxBody::CommitResult { job, attempt, commitment } => {
            commit_result(ov, signer.into(), *job, *attempt, *commitment)?
        }
        TxBody::PostRaceProof { job, commitment } => {
            post_race_proof(ov, signer.into(), *job, *commitment)?
        }
        TxBody::Vote { job, attempt, verdict } => vote(ov, signer, *job, *attempt, *verdict)?,
        TxBody::LockJob { job, round } => lock_job(ov, signer.into(), *job, *round)?,
        TxBody::BidJob { job, commitment } => bid_job(ov, signer.into(), *job, *commitment)?,
        TxBody::RevealBid { job, price, salt } => {
            reveal_bid(ov, signer.into(), *job, *price, salt)?
        }
        TxBody::SubmitWorkflow(spec) => {
            crate::workflow::submit_workflow(ov, signer, tx.nonce, spec)?
        }
        TxBody::CancelWorkflow { workflow } => {
            crate::workflow::cancel_workflow(ov, signer, *workflow)?
        }
    }
    let a = ov.account_mut(signer);
    a.nonce = Nonce(a.nonce.0 + 1);
    Ok(())
}

/// Moves `amount` that `from`'s transaction pays out of its balance into `to`.
pub(crate) fn spend(
    ov: &mut Overlay<'_>,
    from: AccountId,
    to: Purse<'_>,
    amount: MicroCredits,
) -> Result<(), TxError> {
    move_credits(ov, Purse::Balance(from), to, amount)
        .map_err(|s| TxError::InsufficientBalance { need: s.need, have: s.have })
}

fn transfer(
    ov: &mut Overlay<'_>,
    from: AccountId,
    to: AccountId,
    amount: MicroCredits,
) -> Result<(), TxError> {
    if amount.0 == 0 {
        return Err(TxError::ZeroAmount);
    }
    spend(ov, from, Purse::Balance(to), amount)
}

/// The bounds on a program's code: an executable of 1 byte to 8 GiB; an image of 1 to 128
/// layers, each a blob of 1 byte to 8 GiB declaring at most a million entries, within 64 GiB
/// unpacked in all, with a manifest and a config of 1 byte to 4 MiB.
fn check_code(code: &Code) -> Result<(), &'static str> {
    let blob_ok = |b: &provernet_types::BlobRef| b.size.0 > 0 && b.size <= BLOB_BYTES_MAX;
    match code {
        Code::Executable(b) if blob_ok(b) => Ok(()),
        Code::Executable(_) => Err("an executable's size must be 1 byte to 8 GiB"),
        Code::Image(i) => {
            let json_ok = |b: &provernet_types::BlobRef| {
                b.size.0 > 0 && b.size <= provernet_types::limits::IMAGE_JSON_BYTES_MAX
            };
            if !json_ok(&i.manifest) || !json_ok(&i.config) {
                return Err("an image's manifest and config must be 1 byte to 4 MiB");
            }
            if i.layers.is_empty() {
                return Err("an image needs at least one layer");
            }
            let mut unpacked = 0u64;
            for l in i.layers.iter() {
                if !blob_ok(&l.blob) {
                    return Err("an image layer's blob must be 1 byte to 8 GiB");
                }
                if l.entries > provernet_types::limits::LAYER_ENTRIES_MAX {
                    return Err("an image layer may declare at most 1,000,000 entries");
                }
                unpacked = unpacked.checked_add(l.unpacked.0).ok_or("image too large")?;
            }
            if unpacked > provernet_types::limits::IMAGE_UNPACKED_MAX.0 {
                return Err("an image may unpack to at most 64 GiB");
            }
            Ok(())
        }
    }
}

fn check_manifest(ov: &Overlay<'_>, m: &ProgramManifest) -> Result<(), TxError> {
    m.default_resources.check_bounds().map_err(TxError::BadResources)?;
    check_time_limit(m.default_time_limit)?;
    check_code(&m.prover).map_err(TxError::BadManifest)?;
    if let VerifierSpec::Program { blob, limits } = &m.verifier {
        check_code(blob).map_err(TxError::BadManifest)?;
        if let Code::Image(i) = blob {
            let packed: u64 = i.layers.iter().map(|l| l.blob.size.0).sum();
            let unpacked: u64 = i.layers.iter().map(|l| l.unpacked.0).sum();
            if packed > VERIFIER_IMAGE_BYTES_MAX.0 || unpacked > VERIFIER_IMAGE_UNPACKED_MAX.0 {
                return Err(TxError::BadManifest(
                    "a verifier's image may be at most 1 GiB packed and 4 GiB unpacked: a committee fetches it when drawn and must vote before its deadline",
                ));
            }
        }
        if !limits.within(&ov.params().verifier_limits_max) {
            return Err(TxError::BadManifest(
                "verifier limits must be at least 1 millicore, 16 MiB and 1 s, and within the chain's verifier_limits_max",
            ));
        }
    }
    if !m.requires.windows(2).all(|w| w[0] < w[1]) {
        return Err(TxError::BadManifest("required labels must be sorted and unique"));
    }
    if first_duplicate(m.inputs.iter()).is_some() {
        return Err(TxError::BadManifest("declared input names must be unique"));
    }
    if first_duplicate(m.outputs.iter()).is_some() {
        return Err(TxError::BadManifest("declared output names must be unique"));
    }
    let id = m.id();
    if ov.program(&id).is_some() {
        return Err(TxError::ProgramExists(id));
    }
    if ov.base().program_by_name(m.name.as_str()).is_some() {
        return Err(TxError::ProgramNameTaken(m.name.clone()));
    }
    Ok(())
}

pub(crate) fn check_time_limit(t: provernet_types::Seconds) -> Result<(), TxError> {
    if t < TIME_LIMIT_MIN || t > TIME_LIMIT_MAX {
        return Err(TxError::BadTimeLimit { got: t, min: TIME_LIMIT_MIN, max: TIME_LIMIT_MAX });
    }
    Ok(())
}

fn register_program(
    ov: &mut Overlay<'_>,
    owner: AccountId,
    m: &ProgramManifest,
) -> Result<(), TxError> {
    check_manifest(ov, m)?;
    let id = m.id();
    ov.put_program(id, Program { manifest: m.clone(), owner, registered_at: ov.height });
    ov.events.push(Event::ProgramRegistered { program: id });
    Ok(())
}

fn register_prover(
    ov: &mut Overlay<'_>,
    signer: AccountId,
    nonce: Nonce,
    capacity: &Resources,
    labels: &BoundedVec<provernet_types::Label, PROVER_LABELS_MAX>,
    stake: MicroCredits,
) -> Result<(), TxError> {
    let id = ProverId::from(signer);
    if ov.prover(&id).is_some() {
        return Err(TxError::ProverExists(id));
    }
    capacity.check_bounds().map_err(TxError::BadResources)?;
    let min = ov.params().min_prover_stake;
    if stake < min {
        return Err(TxError::StakeTooLow { need: min, have: stake });
    }
    let mut sorted = labels.clone().into_vec();
    sorted.sort();
    sorted.dedup();
    let labels = BoundedVec::try_from_vec(sorted).map_err(|_| TxError::Overflow)?;
    let h = ov.height;
    let prover = Prover {
        capacity: *capacity,
        labels,
        stake: MicroCredits(0),
        bonded: MicroCredits(0),
        used: Resources::ZERO,
        status: ProverStatus::Active,
        faults: 0,
        completed: 0,
        decline_window: 0,
        declines_in_window: 0,
        registered_at: h,
        earned: MicroCredits(0),
        slashed: MicroCredits(0),
    };
    ov.put_prover(id, Some(prover));
    spend(ov, signer, Purse::Stake(id), stake)?;
    ov.events.push(Event::ProverRegistered { prover: id });
    match ov.params().probe.clone() {
        None => ov.events.push(Event::ProverActivated { prover: id }),
        Some(probe) => {
            // The probe runs with the prover's full declared capacity: passing it shows the
            // machine delivers what it claims. It is free and goes to this prover only.
            let job_id = job_id(&signer, nonce);
            let attempt =
                new_attempt(id, h, h.plus(ov.params().accept_timeout), false, MicroCredits(0));
            let job = Job {
                requester: signer,
                program: probe.program,
                inputs: probe.inputs,
                resources: *capacity,
                time_limit: probe.time_limit,
                redundancy: 1,
                prover_set: ProverSet::Allow(
                    BoundedVec::try_from_vec(vec![id]).map_err(|_| TxError::Overflow)?,
                ),
                mechanism: Default::default(),
                fee_per_prover: MicroCredits(0),
                max_fee: MicroCredits(0),
                escrow: MicroCredits(0),
                status: JobStatus::Assigned,
                attempts: BoundedVec::try_from_vec(vec![attempt]).map_err(|_| TxError::Overflow)?,
                submitted_at: h,
                seq: next_seq(ov),
                draw_at: h,
                finished_at: None,
                winner: None,
                probe_for: Some(id),
                race_until: None,
                race_price: MicroCredits(0),
                round: None,
                bids: BoundedVec::new(),
                bounty: MicroCredits(0),
                fallback_refund: MicroCredits(0),
                settled: false,
                wake: Some(h.plus(ov.params().accept_timeout)),
                workflow: None,
            };
            hold_capacity(ov, id, capacity);
            if let Some(p) = ov.prover_mut(&id) {
                p.status = ProverStatus::Probing { probe: job_id };
            }
            ov.events.push(Event::JobSubmitted {
                job: job_id,
                requester: signer,
                fee_per_prover: MicroCredits(0),
            });
            ov.events.push(Event::AttemptAssigned { job: job_id, attempt: 0, prover: id });
            ov.put_job(job_id, job);
        }
    }
    Ok(())
}

/// The next job's place in the first-come, first-served order.
fn next_seq(ov: &mut Overlay<'_>) -> u64 {
    let meta = ov.meta();
    let seq = meta.jobs_submitted;
    meta.jobs_submitted = seq + 1;
    seq
}

fn deregister_prover(ov: &mut Overlay<'_>, id: ProverId) -> Result<(), TxError> {
    let until = ov.height.plus(ov.params().exit_delay);
    let p = ov.prover_mut(&id).ok_or(TxError::UnknownProver(id))?;
    if matches!(p.status, ProverStatus::Exiting { .. }) {
        return Err(TxError::ProverExiting(id));
    }
    p.status = ProverStatus::Exiting { until, ejected: false };
    ov.events.push(Event::ProverExiting { prover: id, ejected: false });
    Ok(())
}

fn new_attempt(
    prover: ProverId,
    h: Height,
    deadline: Height,
    race: bool,
    price: MicroCredits,
) -> Attempt {
    Attempt {
        prover,
        state: if race { AttemptState::Committed } else { AttemptState::Assigned },
        race,
        assigned_at: h,
        deadline,
        proof: BoundedVec::new(),
        usage: Usage::default(),
        failure: None,
        commitment: None,
        reported_at: None,
        committee: BoundedVec::new(),
        votes: BoundedVec::new(),
        verify_round: 0,
        price,
        collateral: MicroCredits(0),
    }
}

/// What admitting a job spec decided: its resources, its price per prover and in all, and
/// what it escrows.
pub(crate) struct Admitted {
    pub(crate) resources: Resources,
    pub(crate) fee: MicroCredits,
    pub(crate) quote: MicroCredits,
    pub(crate) escrow: MicroCredits,
}

/// Every rule a job spec must meet, for a lone job and for a workflow's node alike; `wired`
/// names the inputs other nodes' proofs will provide (none for a lone job).
pub(crate) fn admit_job(
    ov: &Overlay<'_>,
    spec: &JobSpec,
    wired: &[&FileName],
) -> Result<Admitted, TxError> {
    let admitted = price_job(ov, spec)?;
    let program = ov.program(&spec.program).ok_or(TxError::UnknownProgram(spec.program))?;
    let (resources, quote) = (admitted.resources, admitted.quote);
    if !ov.params().mechanisms.contains(&spec.mechanism) {
        return Err(TxError::MechanismNotEnabled(spec.mechanism));
    }
    let auction = spec.mechanism.is_auction();
    if (auction || spec.mechanism == MechanismKind::OpenRace) && spec.redundancy != 1 {
        return Err(TxError::SingleProver {
            mechanism: spec.mechanism,
            redundancy: spec.redundancy,
        });
    }
    let names = || spec.inputs.iter().map(|i| &i.name).chain(wired.iter().copied());
    if let Some(dup) = first_duplicate(names()) {
        return Err(TxError::DuplicateName(dup.clone()));
    }
    if let Some(missing) = program.manifest.inputs.iter().find(|n| !names().any(|i| i == *n)) {
        return Err(TxError::MissingInput(missing.clone()));
    }
    if spec.inputs.iter().any(|i| i.blob.size > BLOB_BYTES_MAX) {
        return Err(TxError::BadResources("an input is larger than the 64 GiB blob limit"));
    }
    if spec.max_fee < quote {
        return Err(TxError::FeeBelowQuote { quote, max_fee: spec.max_fee });
    }
    // Refuse work no registered prover could ever run, rather than let it expire.
    let requires = &program.manifest.requires;
    let fits = ov.base().provers().any(|(id, p)| {
        !matches!(p.status, ProverStatus::Exiting { .. })
            && resources.fits_in(&p.capacity)
            && spec.prover_set.admits(id, &p.labels)
            && requires.iter().all(|l| p.labels.contains(l))
    });
    if !fits {
        return Err(TxError::NoProverCanFit(resources));
    }
    Ok(admitted)
}

/// A spec's resources, price and escrow (the part of [`admit_job`] that a workflow's node
/// repeats when it becomes a job, its spec admitted at submission).
pub(crate) fn price_job(ov: &Overlay<'_>, spec: &JobSpec) -> Result<Admitted, TxError> {
    let program = ov.program(&spec.program).ok_or(TxError::UnknownProgram(spec.program))?;
    let resources = spec.resources.unwrap_or(program.manifest.default_resources);
    resources.check_bounds().map_err(TxError::BadResources)?;
    check_time_limit(spec.time_limit)?;
    let (fee, quote) = job_quote(ov.params(), &resources, spec.time_limit, spec.redundancy)?;
    let escrow = job_escrow(spec.mechanism, spec.max_fee, quote);
    Ok(Admitted { resources, fee, quote, escrow })
}

/// A new job from an admitted spec, with `inputs` (the spec's, and a workflow node's wired
/// ones) and an empty escrow, which the caller fills before [`put_new_job`].
pub(crate) fn new_job(
    ov: &mut Overlay<'_>,
    requester: AccountId,
    spec: &JobSpec,
    inputs: BoundedVec<NamedBlob, JOB_INPUTS_MAX>,
    admitted: &Admitted,
    workflow: Option<NodeRef>,
) -> Job {
    let h = ov.height;
    let seq = next_seq(ov);
    let auction = spec.mechanism.is_auction();
    let fee = admitted.fee;
    Job {
        requester,
        program: spec.program,
        inputs,
        resources: admitted.resources,
        time_limit: spec.time_limit,
        redundancy: spec.redundancy,
        prover_set: spec.prover_set.clone(),
        mechanism: spec.mechanism,
        fee_per_prover: fee,
        max_fee: if auction { spec.max_fee } else { fee },
        escrow: MicroCredits(0),
        status: JobStatus::Pending,
        attempts: BoundedVec::new(),
        submitted_at: h,
        seq,
        draw_at: h.plus(ov.params().draw_delay),
        finished_at: None,
        winner: None,
        probe_for: None,
        race_until: None,
        race_price: fee,
        round: auction.then_some(h),
        bids: BoundedVec::new(),
        bounty: MicroCredits(0),
        fallback_refund: MicroCredits(0),
        settled: false,
        wake: None,
        workflow,
    }
}

/// Records a new, funded job: it waits in the queue (the chain-assigned mechanisms) or
/// decides at its first wake (the others).
pub(crate) fn put_new_job(ov: &mut Overlay<'_>, id: JobId, mut job: Job) {
    let h = ov.height;
    ov.events.push(Event::JobSubmitted {
        job: id,
        requester: job.requester,
        fee_per_prover: job.fee_per_prover,
    });
    job.wake = if job.mechanism.is_assigned() {
        Some(h.plus(ov.params().pending_timeout))
    } else {
        Some(job.draw_at)
    };
    ov.put_job(id, job);
}

/// Counts `n` new open jobs (a lone job, or a workflow's nodes) against the requester's
/// limit.
pub(crate) fn open_jobs(ov: &mut Overlay<'_>, requester: AccountId, n: u32) -> Result<(), TxError> {
    let open = ov.account(&requester).map_or(0, |a| a.open_jobs);
    let max = ov.params().open_jobs_per_account_max;
    match open.checked_add(n) {
        Some(after) if after <= max => {
            ov.account_mut(requester).open_jobs = after;
            Ok(())
        }
        _ => Err(TxError::TooManyOpenJobs { open }),
    }
}

/// Closes one of the requester's open jobs: a job settled, or a workflow's node skipped.
pub(crate) fn close_one(ov: &mut Overlay<'_>, requester: AccountId) {
    let a = ov.account_mut(requester);
    a.open_jobs = match a.open_jobs.checked_sub(1) {
        Some(n) => n,
        None => panic!("ledger invariant broken: a requester closed more jobs than it opened"),
    };
}

fn submit_job(
    ov: &mut Overlay<'_>,
    requester: AccountId,
    nonce: Nonce,
    spec: &JobSpec,
) -> Result<(), TxError> {
    let admitted = admit_job(ov, spec, &[])?;
    open_jobs(ov, requester, 1)?;
    let id = job_id(&requester, nonce);
    let mut job = new_job(ov, requester, spec, spec.inputs.clone(), &admitted, None);
    spend(ov, requester, Purse::Escrow(&mut job), admitted.escrow)?;
    put_new_job(ov, id, job);
    Ok(())
}

fn load_job(ov: &Overlay<'_>, id: JobId) -> Result<Job, TxError> {
    ov.job(&id).ok_or(TxError::UnknownJob(id))
}

fn load_attempt(job: &Job, id: JobId, attempt: u8) -> Result<&Attempt, TxError> {
    job.attempts.get(usize::from(attempt)).ok_or(TxError::UnknownAttempt { job: id, attempt })
}

/// Loads `job` for a transaction by `prover` about its attempt `attempt`, which must be in
/// `want` and not past its deadline. Returns the job and the attempt's index.
fn own_attempt(
    ov: &Overlay<'_>,
    id: JobId,
    attempt: u8,
    prover: ProverId,
    want: AttemptState,
    expected: &'static str,
) -> Result<(Job, usize), TxError> {
    let job = load_job(ov, id)?;
    let a = load_attempt(&job, id, attempt)?;
    if a.prover != prover {
        return Err(TxError::NotAssignedProver { job: id, attempt });
    }
    if a.state != want {
        return Err(TxError::WrongAttemptState { job: id, attempt, state: a.state, expected });
    }
    if ov.height > a.deadline {
        return Err(TxError::DeadlinePassed { deadline: a.deadline });
    }
    Ok((job, usize::from(attempt)))
}

/// Writes a job changed by a transaction back, to be looked at by the end-of-block rules
/// `draw_delay` blocks later, so any draw it causes uses randomness its block's proposer could
/// not know. A wake-up already due sooner (a deadline) is kept: timers are never postponed.
fn save(ov: &mut Overlay<'_>, id: JobId, mut job: Job) {
    let h = ov.height;
    let later = h.plus(ov.params().draw_delay);
    job.wake = Some(match job.wake {
        Some(w) if w >= h && w < later => w,
        _ => later,
    });
    job.draw_at = later;
    ov.put_job(id, job);
}

/// [`save`] for a change whose reaction draws nothing random, so the end-of-block rules may act
/// on it in this very block: a proof of a built-in program (its committee is every validator)
/// and a vote that completes a quorum for the proof (acceptance pays; it draws no one).
fn save_now(ov: &mut Overlay<'_>, id: JobId, mut job: Job) {
    job.wake = Some(ov.height);
    job.draw_at = ov.height.plus(ov.params().draw_delay);
    ov.put_job(id, job);
}

fn set_attempt(ov: &mut Overlay<'_>, job_id: JobId, job: &mut Job, i: usize, state: AttemptState) {
    job.attempts.as_mut_slice()[i].state = state;
    ov.events.push(Event::AttemptChanged { job: job_id, attempt: i as u8, state });
}

/// Frees what an attempt held on its prover: capacity while assigned or running, the bond while
/// live. Call before changing the attempt's state.
fn release(ov: &mut Overlay<'_>, job: &Job, a: &Attempt) {
    if a.state.holds_capacity() {
        free_capacity(ov, a.prover, &job.resources);
    }
    if a.state.is_live() {
        unbond(ov, a.prover, attempt_bond(job, a));
    }
}

/// What a live attempt holds of its prover's stake: the bond (the posted price of one attempt)
/// and its collateral.
fn attempt_bond(job: &Job, a: &Attempt) -> MicroCredits {
    match job.fee_per_prover.checked_add(a.collateral) {
        Some(b) => b,
        None => panic!("ledger invariant broken: an attempt's bond overflows"),
    }
}

fn cancel_job(ov: &mut Overlay<'_>, signer: AccountId, id: JobId) -> Result<(), TxError> {
    let job = load_job(ov, id)?;
    if job.requester != signer || job.probe_for.is_some() {
        return Err(TxError::NotRequester(id));
    }
    if !job.cancellable() {
        return Err(TxError::WrongJobState {
            job: id,
            status: job.status,
            expected: "Pending or Assigned",
        });
    }
    cancel_now(ov, id, job);
    Ok(())
}

/// Cancels a job no prover runs yet ([`Job::cancellable`]): its live attempts free their
/// provers, its auction round closes, and it ends Cancelled.
pub(crate) fn cancel_now(ov: &mut Overlay<'_>, id: JobId, mut job: Job) {
    for i in 0..job.attempts.len() {
        let a = job.attempts[i].clone();
        if a.state.is_live() {
            release(ov, &job, &a);
            set_attempt(ov, id, &mut job, i, AttemptState::Cancelled);
        }
    }
    close_bids(ov, id, &mut job, false);
    finish_job(ov, id, &mut job, JobStatus::Cancelled);
    save(ov, id, job);
}

fn accept_job(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Assigned, "Assigned")?;
    job.attempts.as_mut_slice()[i].deadline =
        ov.params().result_deadline(ov.height, job.time_limit);
    set_attempt(ov, id, &mut job, i, AttemptState::Running);
    refresh_status(ov, id, &mut job);
    save(ov, id, job);
    Ok(())
}

fn decline_job(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Assigned, "Assigned")?;
    let window = ov.height.0 / ov.params().decline_window.0;
    let quota = ov.params().decline_quota;
    let p = ov.prover_mut(&prover).ok_or(TxError::UnknownProver(prover))?;
    if p.decline_window != window {
        p.decline_window = window;
        p.declines_in_window = 0;
    }
    if p.declines_in_window >= quota {
        return Err(TxError::DeclineQuotaExhausted(prover));
    }
    p.declines_in_window += 1;
    let a = job.attempts[i].clone();
    release(ov, &job, &a);
    set_attempt(ov, id, &mut job, i, AttemptState::Declined);
    save(ov, id, job);
    Ok(())
}

/// The output rules, as the node applies them to what a program wrote
/// (`provernet_types::check_outputs`).
fn check_proof_files(files: &[NamedBlob]) -> Result<(), TxError> {
    provernet_types::check_outputs(files.iter().map(|f| (&f.name, f.blob.size)))
        .map_err(TxError::OutputRules)
}

fn post_result(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
    outcome: &AttemptOutcome,
    usage: Usage,
) -> Result<(), TxError> {
    match outcome {
        AttemptOutcome::Proof(files) => reveal(ov, prover, id, attempt, files, usage),
        AttemptOutcome::ProgramError { failure, .. } => {
            claim(ov, prover, id, attempt, usage, AttemptState::ProgramError, Some(*failure))
        }
        AttemptOutcome::TimeLimit { .. } => {
            claim(ov, prover, id, attempt, usage, AttemptState::TimeLimit, None)
        }
    }
}

/// A running attempt's claim that the program failed (or ran out of time) on its own. Claims
/// are not paid unless confirmed by provers drawn after the first of them (see
/// [`confirmed_claims`]), and a verified proof of the job refutes them, at a slash.
fn claim(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
    usage: Usage,
    state: AttemptState,
    failure: Option<ProgramFailure>,
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Running, "Running")?;
    let a = job.attempts[i].clone();
    release(ov, &job, &a);
    let slot = &mut job.attempts.as_mut_slice()[i];
    slot.usage = usage;
    slot.failure = failure;
    slot.reported_at = Some(ov.height);
    if job.winner.is_some() {
        // A verified proof of this job already shows the program runs within its limits.
        set_attempt(ov, id, &mut job, i, AttemptState::Refuted);
        slash(ov, prover, id, job.fee_per_prover, Fault::FalseClaim);
    } else {
        set_attempt(ov, id, &mut job, i, state);
    }
    refresh_status(ov, id, &mut job);
    save(ov, id, job);
    Ok(())
}

/// A running attempt commits to its proof: the work is done, its capacity is free, its bond
/// stays until the verdict. The reveal comes once its gate opens ([`gate_open`]).
fn commit_result(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
    commitment: [u8; 32],
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Running, "Running")?;
    free_capacity(ov, prover, &job.resources);
    let h = ov.height;
    let slot = &mut job.attempts.as_mut_slice()[i];
    slot.commitment = Some((h, commitment));
    slot.deadline = h.plus(ov.params().reveal_window);
    set_attempt(ov, id, &mut job, i, AttemptState::Committed);
    refresh_status(ov, id, &mut job);
    save(ov, id, job);
    Ok(())
}

/// Whether an attempt that committed at `committed_at` may reveal in a block at `now`: every
/// other attempt of the job assigned no later than the commitment has ended or committed in an
/// earlier block. So nobody who could still commit has seen the proof: a reveal is sent only
/// once this holds on the finalized state, and a commitment in the reveal's own block keeps it
/// closed.
pub fn gate_open(job: &Job, committed_at: Height, now: Height) -> bool {
    job.attempts.iter().all(|b| {
        b.assigned_at > committed_at
            || (!b.state.holds_capacity() && b.commitment.is_none_or(|(at, _)| at < now))
    })
}

/// The proof files' blobs, as a set: two proofs with the same bytes are the same proof,
/// whatever their names.
fn proof_blobs(files: &[NamedBlob]) -> Vec<provernet_types::BlobHash> {
    let mut v: Vec<_> = files.iter().map(|f| f.blob.hash).collect();
    v.sort();
    v
}

/// Whether attempt `i`'s proof `files` is a copy of a proof that is paid or may be: another
/// attempt of the job revealed the same bytes no later than `i` committed (so `i` could have
/// taken them from the chain), and that attempt is under verification or was paid for them.
/// The same bytes as a proof nobody was paid for (rejected, or unverifiable for want of votes)
/// take nothing from anyone and go to their voters like any proof.
fn is_copy(job: &Job, i: usize, files: &[NamedBlob], committed_at: Height) -> bool {
    let mine = proof_blobs(files);
    job.attempts.iter().enumerate().any(|(j, b)| {
        j != i
            && matches!(
                b.state,
                AttemptState::Proven | AttemptState::Verified | AttemptState::CannotVerify
            )
            && b.reported_at.is_some_and(|r| r <= committed_at)
            && proof_blobs(&b.proof) == mine
    })
}

/// A committed attempt reveals its proof: the files must match its commitment, follow the
/// output rules, and come after its gate opened. A proof that copies one revealed before this
/// attempt committed is not paid (the attempt is superseded); otherwise it goes to its voters.
fn reveal(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
    files: &BoundedVec<NamedBlob, PROOF_FILES_MAX>,
    usage: Usage,
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Committed, "Committed")?;
    let Some((committed_at, commitment)) = job.attempts[i].commitment else {
        panic!("ledger invariant broken: a committed attempt has no commitment");
    };
    let h = ov.height;
    if h <= committed_at {
        return Err(TxError::RevealTooEarly { job: id, attempt });
    }
    if !gate_open(&job, committed_at, h) {
        return Err(TxError::RevealNotOpen { job: id, attempt });
    }
    check_proof_files(files)?;
    if let Some(program) = ov.program(&job.program) {
        let declared = &program.manifest.outputs;
        if let Some(missing) = declared.iter().find(|o| !files.iter().any(|f| &f.name == *o)) {
            return Err(TxError::MissingOutput(missing.clone()));
        }
    }
    if provernet_types::result_commitment(&prover.into(), &id, files) != commitment {
        return Err(TxError::CommitmentMismatch { job: id, attempt });
    }
    let copy = is_copy(&job, i, files, committed_at);
    let a = job.attempts[i].clone();
    let slot = &mut job.attempts.as_mut_slice()[i];
    slot.proof = files.clone();
    slot.usage = usage;
    slot.reported_at = Some(h);
    slot.deadline = h;
    if copy {
        release(ov, &job, &a);
        set_attempt(ov, id, &mut job, i, AttemptState::Superseded);
    } else {
        set_attempt(ov, id, &mut job, i, AttemptState::Proven);
    }
    refresh_status(ov, id, &mut job);
    let builtin = ov
        .program(&job.program)
        .is_some_and(|p| matches!(p.manifest.verifier, VerifierSpec::Builtin(_)));
    if builtin && !copy {
        save_now(ov, id, job);
    } else {
        save(ov, id, job);
    }
    Ok(())
}

/// An eligible prover enters a job's open race with the commitment to its proof; it reveals
/// the proof like an assigned attempt does.
fn post_race_proof(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    commitment: [u8; 32],
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    if job.status != JobStatus::Race {
        return Err(TxError::WrongJobState { job: id, status: job.status, expected: "Race" });
    }
    if job.race_until.is_some_and(|until| ov.height > until) {
        return Err(TxError::DeadlinePassed { deadline: job.race_until.unwrap_or_default() });
    }
    let racing = job.attempts.iter().filter(|a| a.race && a.state.is_live()).count();
    if racing >= RACE_PROOFS_MAX || job.attempts.len() >= ATTEMPTS_MAX {
        return Err(TxError::RaceFull(id));
    }
    let p = ov.prover(&prover).ok_or(TxError::UnknownProver(prover))?;
    if !job.admits(&prover, p, &required_labels(ov, &job))
        || job.barred_from_race(&prover)
        || p.free_stake() < job.fee_per_prover
    {
        return Err(TxError::NotEligible { job: id, prover });
    }
    bond(ov, prover, job.fee_per_prover);
    let h = ov.height;
    let mut a = new_attempt(prover, h, h.plus(ov.params().reveal_window), true, job.race_price);
    a.commitment = Some((h, commitment));
    let index = job.attempts.len() as u8;
    job.attempts.try_push(a).map_err(|_| TxError::RaceFull(id))?;
    ov.events.push(Event::AttemptChanged {
        job: id,
        attempt: index,
        state: AttemptState::Committed,
    });
    save(ov, id, job);
    Ok(())
}

fn vote(
    ov: &mut Overlay<'_>,
    voter: AccountId,
    id: JobId,
    attempt: u8,
    verdict: Verdict,
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    let a = load_attempt(&job, id, attempt)?;
    if a.state != AttemptState::Proven || a.committee.is_empty() {
        return Err(TxError::WrongAttemptState {
            job: id,
            attempt,
            state: a.state,
            expected: "Proven with a committee",
        });
    }
    let seat = a.committee.iter().position(|m| *m == voter).ok_or(TxError::NotCommitteeMember {
        job: id,
        attempt,
        voter,
    })?;
    if a.votes[seat].is_some() {
        return Err(TxError::AlreadyVoted { job: id, attempt, voter });
    }
    let slot = &mut job.attempts.as_mut_slice()[usize::from(attempt)];
    slot.votes.as_mut_slice()[seat] = Some(verdict);
    // A verdict that pays (valid, or cannot verify) draws nothing: act on it in this block.
    if matches!(Tally::of(&slot.votes).verdict(), Some(Verdict::Valid | Verdict::CannotVerify)) {
        save_now(ov, id, job);
    } else {
        save(ov, id, job);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// End of block
// ---------------------------------------------------------------------------------------------

/// Most jobs the queue pass looks at in one block, so its work does not grow with the length
/// of the queue.
pub const QUEUE_SCAN_MAX: usize = 128;

/// Which pass of the end-of-block rules is looking at a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// Its wake-up height came: deadlines, verdicts, races, auction rounds, expiry, and new
    /// attempts for a job that already had some (fallback).
    Timers,
    /// Its turn in the queue of jobs waiting for their first prover (or a redundant one).
    Queue,
}

/// The end-of-block rules: exits, then every job whose wake-up height has come, then the
/// queue of jobs waiting for a prover in submission order. Each pass sees what the one before
/// it wrote; the queue pass looks at most at [`QUEUE_SCAN_MAX`] jobs.
fn end_of_block(state: &mut State, ctx: &BlockContext, events: &mut Vec<Event>) {
    let h = ctx.height;
    let mut ov = Overlay::new(state, h);
    let provers: Vec<ProverId> =
        ov.base().prover_wake.range(..=(h, ProverId([0xff; 32]))).map(|(_, id)| *id).collect();
    for id in provers {
        finish_exit(&mut ov, id, h);
    }
    let jobs: Vec<JobId> =
        ov.base().job_wake.range(..=(h, JobId([0xff; 32]))).map(|(_, id)| *id).collect();
    for id in jobs {
        tick_job(&mut ov, ctx, id, Pass::Timers);
    }
    let (writes, evs) = ov.finish();
    writes.apply(state);
    events.extend(evs);

    let mut ov = Overlay::new(state, h);
    let queued: Vec<(JobId, Height)> = ov
        .base()
        .queue
        .iter()
        .take(QUEUE_SCAN_MAX)
        .filter_map(|(_, id)| ov.base().job(id).map(|j| (*id, j.draw_at)))
        .collect();
    for (id, draw_at) in queued {
        // Commit, then reveal: a job touched in this block waits for a later seed.
        if draw_at <= h {
            tick_job(&mut ov, ctx, id, Pass::Queue);
        }
    }
    let (writes, evs) = ov.finish();
    writes.apply(state);
    events.extend(evs);
}

fn finish_exit(ov: &mut Overlay<'_>, id: ProverId, h: Height) {
    let Some(p) = ov.prover(&id).cloned() else { return };
    if p.bonded.0 > 0 || p.used != Resources::ZERO {
        // Still holds work: look again next block.
        if let Some(p) = ov.prover_mut(&id) {
            if let ProverStatus::Exiting { ejected, .. } = p.status {
                p.status = ProverStatus::Exiting { until: Height(h.0 + 1), ejected };
            }
        }
        return;
    }
    pay(ov, Purse::Stake(id), id.into(), None, PaymentKind::StakeReturned, p.stake);
    ov.put_prover(id, None);
    ov.events.push(Event::ProverRemoved { prover: id });
}

fn tick_job(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, pass: Pass) {
    let Some(mut job) = ov.job(&id) else { return };
    let h = ctx.height;
    if pass == Pass::Timers {
        for i in 0..job.attempts.len() {
            tick_attempt(ov, ctx, id, &mut job, i);
        }
    }
    if !job.status.is_final() {
        advance_job(ov, ctx, id, &mut job, pass);
    }
    if job.status.is_final() {
        // An auction round still open has nothing left to decide: its deposits return.
        job.round = None;
        close_bids(ov, id, &mut job, false);
        // Attempts not yet running are no longer needed.
        for i in 0..job.attempts.len() {
            let a = job.attempts[i].clone();
            let stale_race = a.race && a.state == AttemptState::Proven && job.winner.is_some();
            if a.state == AttemptState::Assigned || stale_race {
                release(ov, &job, &a);
                set_attempt(ov, id, &mut job, i, AttemptState::Superseded);
            }
        }
        if job.live_attempts() == 0 && !job.settled {
            settle(ov, id, &mut job);
        }
    }
    job.wake = next_wake(ov.params(), &job, h);
    ov.put_job(id, job);
}

/// Returns what is left of a final job's escrow to its requester (an unclaimed bounty goes to
/// the treasury), and closes its account's count of open jobs.
fn settle(ov: &mut Overlay<'_>, id: JobId, job: &mut Job) {
    let bounty = job.bounty;
    // Forfeited collateral nobody earned goes to the treasury, never to the requester: a
    // requester who could collect it would profit from making provers fail.
    must_move(ov, Purse::Bounty(job), Purse::Treasury, bounty, "unclaimed bounty");
    let (requester, total) = (job.requester, job.escrow);
    let rest = job.escrow;
    must_move(ov, Purse::Escrow(job), Purse::Balance(requester), rest, "escrow refund");
    if total.0 > 0 {
        let kind = PaymentKind::EscrowRefund;
        ov.events.push(Event::Paid { to: requester, job: Some(id), kind, amount: total });
    }
    job.settled = true;
    if job.probe_for.is_none() {
        close_one(ov, job.requester);
    }
}

/// When the job next needs the end-of-block rules: its earliest live deadline, the end of its
/// race or auction round, the next block while a proof waits for its committee, and the end of
/// its wait for a first prover. A job waiting in the queue needs no wake-up for that: the queue
/// pass looks at it.
fn next_wake(params: &crate::ChainParams, job: &Job, h: Height) -> Option<Height> {
    if job.settled {
        return None;
    }
    let next = Height(h.0 + 1);
    let mut wake: Option<Height> = None;
    let mut at = |w: Height| wake = Some(wake.map_or(w, |x| x.min(w)).max(next));
    for a in job.attempts.iter().filter(|a| a.state.is_live()) {
        let gated = a.state == AttemptState::Committed
            && !gate_open(job, a.commitment.map_or(a.assigned_at, |(c, _)| c), next);
        if (a.state == AttemptState::Proven && a.committee.is_empty()) || gated {
            at(next);
        } else {
            at(a.deadline);
        }
    }
    if !job.status.is_final() {
        if job.draw_at > h {
            at(job.draw_at);
        }
        if let Some(until) = job.race_until {
            at(until);
        }
        if let Some(round) = job.round {
            at(round_decision(params, job.mechanism, round));
        }
        if job.assigned_attempts() == 0 && job.race_until.is_none() {
            at(job.submitted_at.plus(params.pending_timeout));
        }
        if !job.mechanism.is_assigned() && job.round.is_none() && job.race_until.is_none() {
            // An auction between rounds or an open race not opened yet: decide next block.
            at(job.draw_at.max(next));
        }
    }
    // A job with nothing left to wait for is looked at again next block rather than lost.
    Some(wake.unwrap_or(next))
}

/// The height at which an auction round that opened at `round` is decided if no lock decides
/// it first: the end of the Dutch ramp, or the end of the sealed bids' reveal window.
fn round_decision(params: &crate::ChainParams, kind: MechanismKind, round: Height) -> Height {
    let mp = &params.mechanism_params;
    match kind {
        MechanismKind::LowestBid => Height(round.0 + 2 * mp.bid_window_blocks),
        _ => Height(round.0 + mp.dutch_ramp_blocks),
    }
}

/// How a committee's votes on one proof stand. A verdict needs `quorum` votes for it, which is
/// at least two thirds of the seats: one vote never decides for a committee of two or more,
/// and neither do the votes cast when too few members vote.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tally {
    pub seats: usize,
    pub valid: usize,
    pub invalid: usize,
    /// Votes that the verification could not run on the requester's side.
    pub cannot: usize,
}

impl Tally {
    pub fn of(votes: &[Option<Verdict>]) -> Tally {
        let count = |want: Verdict| votes.iter().filter(|v| **v == Some(want)).count();
        Tally {
            seats: votes.len(),
            valid: count(Verdict::Valid),
            invalid: count(Verdict::Invalid),
            cannot: count(Verdict::CannotVerify),
        }
    }

    /// The smallest number of votes that is at least two thirds of the seats.
    pub fn quorum(&self) -> usize {
        (2 * self.seats).div_ceil(3)
    }

    /// The verdict a quorum agrees on, if one does.
    pub fn verdict(&self) -> Option<Verdict> {
        let q = self.quorum();
        if self.seats == 0 {
            None
        } else if self.valid >= q {
            Some(Verdict::Valid)
        } else if self.invalid >= q {
            Some(Verdict::Invalid)
        } else if self.cannot >= q {
            Some(Verdict::CannotVerify)
        } else {
            None
        }
    }

    /// Whether no quorum can form any more in this round, whatever the missing votes say.
    pub fn deadlocked(&self) -> bool {
        let missing = self.seats - self.valid - self.invalid - self.cannot;
        let q = self.quorum();
        [self.valid, self.invalid, self.cannot].iter().all(|n| n + missing < q)
    }
}

fn tick_attempt(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job, i: usize) {
    let h = ctx.height;
    let a = job.attempts[i].clone();
    match a.state {
        AttemptState::Assigned if h >= a.deadline => {
            release(ov, job, &a);
            set_attempt(ov, id, job, i, AttemptState::MissedAccept);
            forfeit(ov, id, job, a.prover, a.collateral);
            slash(ov, a.prover, id, job.fee_per_prover, Fault::MissedAccept);
        }
        AttemptState::Running if h >= a.deadline => {
            release(ov, job, &a);
            set_attempt(ov, id, job, i, AttemptState::MissedDeadline);
            forfeit(ov, id, job, a.prover, a.collateral);
            slash(ov, a.prover, id, job.fee_per_prover, Fault::MissedDeadline);
        }
        AttemptState::Committed => {
            let committed_at = a.commitment.map_or(a.assigned_at, |(at, _)| at);
            if !gate_open(job, committed_at, h.plus(provernet_types::Blocks(1))) {
                // The reveal window starts when the gate opens.
                let slot = &mut job.attempts.as_mut_slice()[i];
                slot.deadline = slot.deadline.max(h.plus(ov.params().reveal_window));
            } else if h >= a.deadline {
                release(ov, job, &a);
                set_attempt(ov, id, job, i, AttemptState::MissedDeadline);
                forfeit(ov, id, job, a.prover, a.collateral);
                slash(ov, a.prover, id, job.fee_per_prover, Fault::MissedDeadline);
            }
        }
        AttemptState::Proven if a.committee.is_empty() => draw_committee(ov, ctx, id, job, i),
        AttemptState::Proven => {
            let tally = Tally::of(&a.votes);
            match tally.verdict() {
                Some(Verdict::Valid) => accept_attempt(ov, id, job, i),
                Some(Verdict::Invalid) => reject_attempt(ov, id, job, i),
                Some(Verdict::CannotVerify) => cannot_verify_attempt(ov, id, job, i),
                None if h < a.deadline && !tally.deadlocked() => {}
                None => {
                    // The round ended without a quorum. Members who never voted are
                    // penalised (a committee of provers; validators hold no stake), then a
                    // fresh committee votes, and after the last round the proof is
                    // unverifiable: nobody is paid for it and its prover is not punished.
                    if h >= a.deadline {
                        for (m, v) in a.committee.iter().zip(a.votes.iter()) {
                            if v.is_none() && ov.prover(&ProverId::from(*m)).is_some() {
                                slash(ov, (*m).into(), id, job.fee_per_prover, Fault::MissedVote);
                            }
                        }
                    }
                    if a.verify_round + 1 < ov.params().verify_rounds_max {
                        let slot = &mut job.attempts.as_mut_slice()[i];
                        slot.verify_round += 1;
                        slot.committee = BoundedVec::new();
                        slot.votes = BoundedVec::new();
                        draw_committee(ov, ctx, id, job, i);
                    } else {
                        release(ov, job, &a);
                        set_attempt(ov, id, job, i, AttemptState::Unverifiable);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Seats the voters of a proof: every validator for a built-in verifier (whatever the seed),
/// else `committee_size` random active provers other than the attempt's own (the validators
/// when there are none).
fn draw_committee(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job, i: usize) {
    let a = &job.attempts[i];
    let seed = Seed::derive(&ctx.randomness, "committee", &[&id.0, &[i as u8, a.verify_round]]);
    let builtin = ov
        .program(&job.program)
        .is_some_and(|p| matches!(p.manifest.verifier, VerifierSpec::Builtin(_)));
    let validators: Vec<ProverId> =
        ov.params().validators.iter().map(|v| ProverId::from(*v)).collect();
    let k = usize::from(ov.params().committee_size);
    let needs = ov.program(&job.program).and_then(|p| match p.manifest.verifier {
        VerifierSpec::Program { limits, .. } => Some(limits.resources()),
        VerifierSpec::Builtin(_) => None,
    });
    let members = if builtin {
        validators
    } else {
        // Only provers whose machine can run the verifier within its limits.
        let pool: Vec<ProverId> = ov
            .active_provers()
            .into_iter()
            .filter(|(pid, p)| *pid != a.prover && needs.is_none_or(|n| n.fits_in(&p.capacity)))
            .map(|(pid, _)| pid)
            .collect();
        if pool.is_empty() {
            pick_committee(seed, &validators, k.min(validators.len()))
        } else {
            pick_committee(seed, &pool, k)
        }
    };
    let members: Vec<AccountId> = members.into_iter().map(AccountId::from).collect();
    let seats = members.len();
    let slot = &mut job.attempts.as_mut_slice()[i];
    match (BoundedVec::try_from_vec(vec![None; seats]), BoundedVec::try_from_vec(members.clone())) {
        (Ok(votes), Ok(committee)) => {
            slot.votes = votes;
            slot.committee = committee;
        }
        _ => panic!("ledger invariant broken: {seats} voters exceed VOTERS_MAX"),
    }
    slot.deadline = ctx.height.plus(ov.params().vote_timeout);
    ov.events.push(Event::CommitteeDrawn { job: id, attempt: i as u8, members });
}

/// Pays `pool` from `from` to `members` in equal shares; the indivisible rest (or all of it,
/// with no members) is burned.
fn pay_members(
    ov: &mut Overlay<'_>,
    job: &mut Job,
    from_treasury: bool,
    id: JobId,
    members: &[AccountId],
    pool: MicroCredits,
) {
    fn purse(job: &mut Job, from_treasury: bool) -> Purse<'_> {
        if from_treasury {
            Purse::Treasury
        } else {
            Purse::Escrow(job)
        }
    }
    let each = match u64::try_from(members.len()) {
        Ok(n) if n > 0 => pool.0 / n,
        _ => 0,
    };
    for m in members {
        let kind = PaymentKind::VerifierReward;
        pay(ov, purse(job, from_treasury), *m, Some(id), kind, MicroCredits(each));
    }
    let rest = MicroCredits(pool.0 - each * members.len() as u64);
    must_move(ov, purse(job, from_treasury), Purse::Burned, rest, "verifier reward dust");
}

fn voters(a: &Attempt, verdict: Verdict) -> Vec<AccountId> {
    a.committee
        .iter()
        .zip(a.votes.iter())
        .filter(|(_, v)| **v == Some(verdict))
        .map(|(m, _)| *m)
        .collect()
}

fn accept_attempt(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, i: usize) {
    let a = job.attempts[i].clone();
    release(ov, job, &a);
    if a.race && job.winner.is_some() {
        // A race has one winner: a proof accepted after it (in the same block) came second.
        set_attempt(ov, id, job, i, AttemptState::Superseded);
        return;
    }
    set_attempt(ov, id, job, i, AttemptState::Verified);
    let verifier_pool = a.price.mul_bps(ov.params().verifier_reward_bps);
    let reward = MicroCredits(a.price.0 - verifier_pool.0);
    pay(ov, Purse::Escrow(job), a.prover.into(), Some(id), PaymentKind::ProverReward, reward);
    pay_members(ov, job, false, id, &voters(&a, Verdict::Valid), verifier_pool);
    if let Some(p) = ov.prover_mut(&a.prover) {
        p.completed += 1;
    }
    if job.status.is_final() {
        return;
    }
    job.winner = Some(i as u8);
    refute_claims(ov, id, job);
    let bounty = job.bounty;
    pay(ov, Purse::Bounty(job), a.prover.into(), Some(id), PaymentKind::Bounty, bounty);
    if job.had_fault() {
        // The treasury holds the slashes that pay this; it pays what it holds, at most.
        let want = job.fee_per_prover.mul_bps(ov.params().fallback_refund_bps);
        let refund = want.min(ov.meta().treasury);
        job.fallback_refund = refund;
        pay(ov, Purse::Treasury, job.requester, Some(id), PaymentKind::FallbackRefund, refund);
    }
    if let Some(prover) = job.probe_for {
        if let Some(p) = ov.prover_mut(&prover) {
            if matches!(p.status, ProverStatus::Probing { .. }) {
                p.status = ProverStatus::Active;
                ov.events.push(Event::ProverActivated { prover });
            }
        }
    }
    finish_job(ov, id, job, JobStatus::Verified);
}

/// A verified proof shows the program runs within the job's limits: every standing claim
/// that it does not is refuted, and its prover slashed.
fn refute_claims(ov: &mut Overlay<'_>, id: JobId, job: &mut Job) {
    for k in 0..job.attempts.len() {
        let a = &job.attempts[k];
        if a.state.is_claim() {
            let prover = a.prover;
            set_attempt(ov, id, job, k, AttemptState::Refuted);
            slash(ov, prover, id, job.fee_per_prover, Fault::FalseClaim);
        }
    }
}

/// Two thirds of the voters could not run the verification, for a reason on the requester's
/// side (its statement, its verifier): the prover did its work and is paid as for a verified
/// proof, the voters who said so share the verifier reward, and the job fails as unverifiable
/// (nothing is refunded for the proof; the requester's proof was made).
fn cannot_verify_attempt(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, i: usize) {
    let a = job.attempts[i].clone();
    release(ov, job, &a);
    set_attempt(ov, id, job, i, AttemptState::CannotVerify);
    let verifier_pool = a.price.mul_bps(ov.params().verifier_reward_bps);
    let reward = MicroCredits(a.price.0 - verifier_pool.0);
    pay(ov, Purse::Escrow(job), a.prover.into(), Some(id), PaymentKind::ProverReward, reward);
    pay_members(ov, job, false, id, &voters(&a, Verdict::CannotVerify), verifier_pool);
    if let Some(p) = ov.prover_mut(&a.prover) {
        p.completed += 1;
    }
    if !job.status.is_final() {
        finish_job(ov, id, job, JobStatus::Failed(FailReason::Unverifiable));
    }
}

fn reject_attempt(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, i: usize) {
    let a = job.attempts[i].clone();
    release(ov, job, &a);
    set_attempt(ov, id, job, i, AttemptState::Rejected);
    forfeit(ov, id, job, a.prover, a.collateral);
    slash(ov, a.prover, id, job.fee_per_prover, Fault::InvalidProof);
    // Paid from the treasury, which the slash just funded; it pays what it holds, at most.
    let want = job.fee_per_prover.mul_bps(ov.params().verifier_reward_bps);
    let reward = want.min(ov.meta().treasury);
    pay_members(ov, job, true, id, &voters(&a, Verdict::Invalid), reward);
}

/// Takes `fee × rate`, doubled per earlier fault (at most 16×), from the prover's stake into
/// the treasury (all of its stake when that is less); ejects the prover after too many faults
/// or when its stake runs low.
fn slash(ov: &mut Overlay<'_>, prover: ProverId, job: JobId, fee: MicroCredits, fault: Fault) {
    let params = ov.params();
    let rate = match fault {
        Fault::MissedAccept => params.slash_missed_accept_bps,
        Fault::MissedDeadline => params.slash_missed_deadline_bps,
        Fault::InvalidProof => params.slash_invalid_proof_bps,
        Fault::MissedVote => params.slash_missed_vote_bps,
        Fault::FalseClaim => params.slash_false_claim_bps,
    };
    let (to_eject, min_stake, until) =
        (params.faults_to_eject, params.min_prover_stake, ov.height.plus(params.exit_delay));
    let Some(p) = ov.prover(&prover) else { return };
    let factor = 1u64 << p.faults.min(4);
    // A slash is at most the stake: what a prover can lose is what it staked.
    let want = fee.mul_bps(rate).0.checked_mul(factor).map_or(p.stake, MicroCredits);
    let amount = want.min(p.stake);
    must_move(ov, Purse::Stake(prover), Purse::Treasury, amount, "slash");
    let Some(p) = ov.prover_mut(&prover) else { return };
    p.slashed = tally(p.slashed, amount, "slashed");
    p.faults += 1;
    let eject = (p.faults >= to_eject || p.stake < min_stake)
        && !matches!(p.status, ProverStatus::Exiting { .. });
    if eject {
        p.status = ProverStatus::Exiting { until, ejected: true };
    }
    ov.events.push(Event::Slashed { prover, job, fault, amount });
    if eject {
        ov.events.push(Event::ProverExiting { prover, ejected: true });
    }
}

fn finish_job(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, status: JobStatus) {
    job.status = status;
    job.finished_at = Some(ov.height);
    ov.events.push(Event::JobStatusChanged { job: id, status });
    if job.workflow.is_some() {
        crate::workflow::node_finished(ov, id, job);
    }
}

/// Sets a non-final job's status from its attempts.
fn refresh_status(ov: &mut Overlay<'_>, id: JobId, job: &mut Job) {
    if job.status.is_final() {
        return;
    }
    let has = |s: AttemptState| job.attempts.iter().any(|a| a.state == s);
    let status = if job.race_until.is_some() {
        JobStatus::Race
    } else if has(AttemptState::Proven) {
        JobStatus::Proven
    } else if has(AttemptState::Running) || has(AttemptState::Committed) {
        // A committed proof waits for its reveal: the job is still being proven.
        JobStatus::Running
    } else if has(AttemptState::Assigned) {
        JobStatus::Assigned
    } else {
        JobStatus::Pending
    };
    if status != job.status {
        job.status = status;
        ov.events.push(Event::JobStatusChanged { job: id, status });
    }
}

/// Moves a non-final job on: probes, the program-error quorum, the end of its race, and new
/// attempts. A chain-assigned job (random, stake lotteries) gets its first prover, and any
/// redundant one, only from the queue pass, in submission order; after a failed attempt its
/// fallback is drawn as soon as the failure is seen.
fn advance_job(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job, pass: Pass) {
    let h = ctx.height;
    let params = ov.params();
    // A probe is all or nothing: any failed attempt fails the probe and ejects the prover.
    if let Some(prover) = job.probe_for {
        if job.live_attempts() == 0 {
            finish_job(ov, id, job, JobStatus::Failed(FailReason::NoProof));
            let until = h.plus(params.exit_delay);
            if let Some(p) = ov.prover_mut(&prover) {
                if !matches!(p.status, ProverStatus::Exiting { .. }) {
                    p.status = ProverStatus::Exiting { until, ejected: true };
                    ov.events.push(Event::ProverExiting { prover, ejected: true });
                }
            }
        }
        return;
    }
    for (kind, reason) in [
        (AttemptState::ProgramError, FailReason::Program),
        (AttemptState::TimeLimit, FailReason::TimeLimit),
    ] {
        let claimers = confirmed_claims(job, kind, params.program_error_quorum);
        if claimers.is_empty() {
            continue;
        }
        // The program fails wherever it runs, or its time limit is too short: the requester's
        // fault. One attempt's fee is shared by the provers that ran it; nobody is punished.
        let charge = job.fee_per_prover;
        let each = MicroCredits(charge.0 / claimers.len() as u64);
        for p in &claimers {
            let kind = PaymentKind::ProgramErrorCharge;
            pay(ov, Purse::Escrow(job), (*p).into(), Some(id), kind, each);
        }
        let dust = MicroCredits(charge.0 - each.0 * claimers.len() as u64);
        must_move(ov, Purse::Escrow(job), Purse::Burned, dust, "program error charge dust");
        finish_job(ov, id, job, JobStatus::Failed(reason));
        return;
    }
    if job.status == JobStatus::Race {
        let racing = job.attempts.iter().any(|a| a.race && a.state.is_live());
        if job.race_until.is_some_and(|until| h >= until) && !racing {
            finish_job(ov, id, job, JobStatus::Failed(FailReason::NoProof));
        }
        return;
    }
    let max_attempts = usize::from(job.redundancy) + usize::from(params.fallback_attempts_max);
    // The queue draws first attempts and redundant ones in submission order; a fallback (the
    // job had attempts and none is live) is drawn at once. Auctions and races draw at their
    // own wake-ups.
    let assigns = job.draw_at <= h
        && (!job.mechanism.is_assigned()
            || pass == Pass::Queue
            || (job.live_attempts() == 0 && job.assigned_attempts() > 0));
    let mut open = None;
    while assigns
        && job.live_attempts() < usize::from(job.redundancy)
        && job.assigned_attempts() < max_attempts
    {
        match assign(ov, ctx, id, job) {
            Assigned::Yes => {}
            Assigned::No => break,
            Assigned::Wait => {
                // An auction round is still collecting locks, bids or reveals.
                refresh_status(ov, id, job);
                return;
            }
            Assigned::Open(price) => {
                open = Some(price);
                break;
            }
        }
    }
    if job.live_attempts() == 0 {
        if job.assigned_attempts() == 0 && open.is_none() {
            if h >= job.submitted_at.plus(params.pending_timeout) {
                finish_job(ov, id, job, JobStatus::Expired);
            }
            return;
        }
        if !assigns && job.assigned_attempts() < max_attempts {
            // The next draw waits for its seed (or the queue's turn): nothing failed yet.
            refresh_status(ov, id, job);
            return;
        }
        // Attempts exhausted, or no fresh prover left: open the race.
        job.race_until = Some(params.result_deadline(h, job.time_limit));
        job.race_price = open.unwrap_or(job.max_fee);
        job.round = None;
        close_bids(ov, id, job, false);
        ov.events.push(Event::RaceOpened { job: id });
    }
    refresh_status(ov, id, job);
}

/// The provers whose claims of `kind` (program error, time limit) confirm each other: at
/// least `quorum` claims from distinct provers (every attempt has its own), one of them from an
/// attempt assigned after the first claim was posted, so it was drawn independently of whoever
/// made that claim. Empty while unconfirmed. A quorum of one trusts a single claim.
fn confirmed_claims(job: &Job, kind: AttemptState, quorum: u8) -> Vec<ProverId> {
    let claims: Vec<&Attempt> = job.attempts.iter().filter(|a| a.state == kind).collect();
    let Some(first) = claims.iter().filter_map(|a| a.reported_at).min() else {
        return Vec::new();
    };
    let independent = quorum <= 1 || claims.iter().any(|a| a.assigned_at > first);
    if claims.len() >= usize::from(quorum.max(1)) && independent {
        claims.iter().map(|a| a.prover).collect()
    } else {
        Vec::new()
    }
}

/// What [`assign`] did.
enum Assigned {
    Yes,
    /// No eligible prover.
    No,
    /// An auction round is still open: ask again next block.
    Wait,
    /// The mechanism opens the job to a race at this price instead of assigning it.
    Open(MicroCredits),
}

/// The request a job's next attempt makes of a prover (the stake it asks for is
/// [`stake_needed`]).
fn request_for<'a>(
    ov: &Overlay<'_>,
    job: &'a Job,
    requires: &'a [provernet_types::Label],
    exclude: &'a [ProverId],
) -> Request<'a> {
    Request {
        resources: job.resources,
        bond: stake_needed(&ov.params().mechanism_params, job),
        prover_set: &job.prover_set,
        requires,
        exclude,
    }
}

fn required_labels(ov: &Overlay<'_>, job: &Job) -> Vec<provernet_types::Label> {
    ov.program(&job.program).map(|p| p.manifest.requires.clone().into_vec()).unwrap_or_default()
}

/// A prover as a mechanism sees it; `deposit` is stake it has bonded to its own sealed bid on
/// this job, which the auction's decision releases first.
fn candidate(id: ProverId, p: &Prover, deposit: MicroCredits) -> Candidate<'_> {
    Candidate {
        id,
        free: p.free(),
        free_stake: MicroCredits(p.free_stake().0.saturating_add(deposit.0)),
        stake: p.stake,
        labels: &p.labels,
    }
}

/// The mechanism's clock: blocks since the auction round opened. A lowest-bid round on chain
/// has a reveal phase as long as its bidding window after it, which the mechanism (sealed bids
/// arriving at once, as in the simulator) does not see, so its clock starts after the reveals.
fn elapsed(ov: &Overlay<'_>, job: &Job, h: Height) -> u64 {
    let since = h.0.saturating_sub(job.round.unwrap_or(h).0);
    match job.mechanism {
        MechanismKind::LowestBid => {
            since.saturating_sub(ov.params().mechanism_params.bid_window_blocks)
        }
        _ => since,
    }
}

/// Assigns one new attempt through the job's mechanism.
fn assign(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job) -> Assigned {
    let index = job.attempts.len();
    if index >= ATTEMPTS_MAX {
        return Assigned::No;
    }
    if job.mechanism.is_auction() && job.round.is_none() {
        // A fallback after a failed auction attempt: a fresh round opens now.
        job.round = Some(ctx.height);
    }
    let exclude = job.provers();
    let requires = required_labels(ov, job);
    let seed = Seed::derive(&ctx.randomness, "assign", &[&id.0, &[index as u8]]);
    // Locks apply as transactions; only revealed sealed bids reach the end of the block.
    let offers: Vec<Offer> = job
        .bids
        .iter()
        .filter_map(|b| b.price.map(|price| Offer { prover: b.prover, price }))
        .collect();
    let decision = {
        let active = ov.active_provers();
        let deposit = |pid: &ProverId| {
            job.bids.iter().find(|b| b.prover == *pid).map_or(MicroCredits(0), |b| b.deposit)
        };
        let candidates: Vec<Candidate<'_>> =
            active.iter().map(|(pid, p)| candidate(*pid, p, deposit(pid))).collect();
        let request = request_for(ov, job, &requires, &exclude);
        let round = Round {
            seed,
            request: &request,
            elapsed: elapsed(ov, job, ctx.height),
            quote: job.fee_per_prover,
            max_fee: job.max_fee,
            params: &ov.params().mechanism_params,
        };
        mechanism(job.mechanism).decide(&round, &candidates, &offers)
    };
    match decision {
        Decision::Wait => Assigned::Wait,
        Decision::Unfilled => Assigned::No,
        Decision::Open { price } => {
            job.round = None;
            close_bids(ov, id, job, true);
            Assigned::Open(price)
        }
        Decision::Assign { prover, price, collateral } => {
            job.round = None;
            close_bids(ov, id, job, true);
            // Auction winners committed when they locked or bid: their attempt runs at once.
            let running = job.mechanism.is_auction();
            if start_attempt(ov, id, job, prover, price, collateral, running) {
                Assigned::Yes
            } else {
                Assigned::No
            }
        }
    }
}

/// Gives a new attempt to `prover`: holds its capacity, bond and collateral. A `running`
/// attempt (an auction's) skips the accept step and is due by its result deadline.
fn start_attempt(
    ov: &mut Overlay<'_>,
    id: JobId,
    job: &mut Job,
    prover: ProverId,
    price: MicroCredits,
    collateral: MicroCredits,
    running: bool,
) -> bool {
    let index = job.attempts.len() as u8;
    let (h, p) = (ov.height, ov.params());
    let deadline =
        if running { p.result_deadline(h, job.time_limit) } else { h.plus(p.accept_timeout) };
    let mut a = new_attempt(prover, h, deadline, false, price);
    a.collateral = collateral;
    if running {
        a.state = AttemptState::Running;
    }
    if job.attempts.try_push(a).is_err() {
        return false;
    }
    let held = attempt_bond(job, &job.attempts[usize::from(index)]);
    hold_capacity(ov, prover, &job.resources);
    bond(ov, prover, held);
    ov.events.push(Event::AttemptAssigned { job: id, attempt: index, prover });
    if running {
        ov.events.push(Event::AttemptChanged {
            job: id,
            attempt: index,
            state: AttemptState::Running,
        });
    }
    true
}

/// Takes forfeited collateral from `prover`'s stake (its bond on it must already be
/// released; all of its stake when that is less): part burned, the rest held in the job's
/// escrow as a bounty for whoever proves it.
fn forfeit(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, prover: ProverId, amount: MicroCredits) {
    if amount.0 == 0 {
        return;
    }
    let params = ov.params().mechanism_params;
    let Some(p) = ov.prover(&prover) else { return };
    let taken = amount.min(p.stake);
    let (burned, bounty) = params.forfeit(taken);
    must_move(ov, Purse::Stake(prover), Purse::Burned, burned, "forfeit");
    must_move(ov, Purse::Stake(prover), Purse::Bounty(job), bounty, "forfeit");
    if let Some(p) = ov.prover_mut(&prover) {
        p.slashed = tally(p.slashed, taken, "slashed");
    }
    ov.events.push(Event::CollateralForfeited { prover, job: id, burned, bounty });
}

/// Ends the current round's sealed bids: every deposit is released, and with `decided` a bid
/// never revealed forfeits its deposit (it might otherwise have been withheld on purpose, to
/// pick the best of several Sybil bids after seeing the others).
fn close_bids(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, decided: bool) {
    let bids = std::mem::take(&mut job.bids);
    for b in bids.iter() {
        unbond(ov, b.prover, b.deposit);
        if decided && b.price.is_none() {
            forfeit(ov, id, job, b.prover, b.deposit);
        }
    }
}

/// Checks that `job` (of mechanism `want`) is taking offers for a new attempt.
fn check_auction(
    job: &Job,
    id: JobId,
    want: MechanismKind,
    what: &'static str,
) -> Result<(), TxError> {
    if job.mechanism != want {
        return Err(TxError::WrongMechanism { job: id, mechanism: job.mechanism, expected: want });
    }
    if job.status.is_final() || job.status == JobStatus::Race {
        return Err(TxError::WrongJobState {
            job: id,
            status: job.status,
            expected: "waiting for a prover",
        });
    }
    if job.live_attempts() >= usize::from(job.redundancy) {
        return Err(TxError::AuctionClosed { job: id, what, why: "a prover already holds it" });
    }
    Ok(())
}

/// Whether `prover` may take a new attempt of `job` apart from its free resources and stake:
/// active, admitted by the job's prover set and the program's labels, and new to the job.
fn check_bidder(ov: &Overlay<'_>, job: &Job, id: JobId, prover: ProverId) -> Result<(), TxError> {
    let p = ov.prover(&prover).ok_or(TxError::UnknownProver(prover))?;
    if !job.admits(&prover, p, &required_labels(ov, job))
        || job.provers().contains(&prover)
        || !job.resources.fits_in(&p.capacity)
    {
        return Err(TxError::NotEligible { job: id, prover });
    }
    Ok(())
}

fn lock_job(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    round: Height,
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    check_auction(&job, id, MechanismKind::ReverseDutch, "locks")?;
    if job.round != Some(round) {
        return Err(TxError::AuctionClosed {
            job: id,
            what: "locks",
            why: "the auction round the lock names is not the open one",
        });
    }
    check_bidder(ov, &job, id, prover)?;
    let exclude = job.provers();
    let requires = required_labels(ov, &job);
    let request = request_for(ov, &job, &requires, &exclude);
    let p = ov.prover(&prover).ok_or(TxError::UnknownProver(prover))?;
    if p.free_stake() < request.bond {
        return Err(TxError::CollateralTooLow { need: request.bond, have: p.free_stake() });
    }
    if !request.resources.fits_in(&p.free()) {
        return Err(TxError::NotEligible { job: id, prover });
    }
    let round = Round {
        seed: Seed::derive(&[0; 32], "lock", &[&id.0]),
        request: &request,
        elapsed: elapsed(ov, &job, ov.height),
        quote: job.fee_per_prover,
        max_fee: job.max_fee,
        params: &ov.params().mechanism_params,
    };
    let offer = Offer { prover, price: MicroCredits(0) };
    let decision =
        mechanism(job.mechanism).decide(&round, &[candidate(prover, p, MicroCredits(0))], &[offer]);
    let Decision::Assign { prover, price, collateral } = decision else {
        return Err(TxError::NotEligible { job: id, prover });
    };
    job.round = None;
    if !start_attempt(ov, id, &mut job, prover, price, collateral, true) {
        return Err(TxError::AuctionClosed {
            job: id,
            what: "locks",
            why: "its attempts are used up",
        });
    }
    refresh_status(ov, id, &mut job);
    save(ov, id, job);
    Ok(())
}

fn bid_job(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    commitment: [u8; 32],
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    check_auction(&job, id, MechanismKind::LowestBid, "bids")?;
    let mp = &ov.params().mechanism_params;
    let start = job.round.unwrap_or(ov.height);
    if !matches!(sealed_phase(start, mp.bid_window_blocks, ov.height), SealedPhase::Bidding { .. })
    {
        return Err(TxError::AuctionClosed {
            job: id,
            what: "bids",
            why: "this round's bidding window has closed (bids are being revealed)",
        });
    }
    check_bidder(ov, &job, id, prover)?;
    if job.bids.iter().any(|b| b.prover == prover) {
        return Err(TxError::AlreadyBid { job: id, prover });
    }
    let deposit = mp.collateral(job.max_fee);
    let need = stake_needed(mp, &job);
    let p = ov.prover(&prover).ok_or(TxError::UnknownProver(prover))?;
    if p.free_stake() < need {
        return Err(TxError::CollateralTooLow { need, have: p.free_stake() });
    }
    job.bids
        .try_push(crate::entities::Bid { prover, commitment, price: None, deposit })
        .map_err(|_| TxError::BidsFull(id))?;
    bond(ov, prover, deposit);
    job.round = Some(start);
    save(ov, id, job);
    Ok(())
}

fn reveal_bid(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    price: MicroCredits,
    salt: &[u8; 32],
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    check_auction(&job, id, MechanismKind::LowestBid, "reveals")?;
    let window = ov.params().mechanism_params.bid_window_blocks;
    let closed = |why| TxError::AuctionClosed { job: id, what: "reveals", why };
    let start = job.round.ok_or(closed("no auction round is open"))?;
    match sealed_phase(start, window, ov.height) {
        SealedPhase::Revealing { .. } => {}
        SealedPhase::Bidding { .. } => {
            return Err(closed("the bidding window is still open; reveal after it"))
        }
        SealedPhase::Decided => return Err(closed("this round's reveal window has closed")),
    }
    let bid = job
        .bids
        .as_mut_slice()
        .iter_mut()
        .find(|b| b.prover == prover && b.price.is_none())
        .ok_or(TxError::NoBid { job: id, prover })?;
    if provernet_types::bid_commitment(&id, &prover.into(), price, salt) != bid.commitment {
        return Err(TxError::BidMismatch(id));
    }
    bid.price = Some(price);
    save(ov, id, job);
    Ok(())
}
