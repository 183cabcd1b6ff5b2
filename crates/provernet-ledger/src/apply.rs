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
//!    becomes `MissedDeadline`. Both slash the prover and free its capacity and bond.
//! 2. **Verification.** A newly `Proven` attempt gets a committee: the validators for built-in
//!    verifiers, else `committee_size` random active provers other than the attempt's prover
//!    (the validators when there are none). It is accepted once ≥ 2/3 of the committee vote
//!    valid and rejected once that can no longer happen. At the vote deadline without a quorum a
//!    new committee is drawn; in the last round the votes cast decide, and with none cast the
//!    attempt is `Unverifiable` (nobody paid, nobody punished).
//! 3. **Settlement of an attempt.** Accepted: the prover is paid the attempt's price less the
//!    verifier share, which goes to the members who voted valid; the first accepted attempt
//!    makes the job `Verified`, and if any earlier attempt failed through a prover's fault the
//!    requester gets `fallback_refund_bps` of the fee back from the treasury (which holds the
//!    slashes); the deciding attempt also collects the job's bounty (forfeited collateral).
//!    Rejected: the prover is slashed and forfeits its collateral; members who voted invalid
//!    share the verifier reward, paid from the treasury.
//! 4. **Fallback.** While a job is not final and fewer than `redundancy` attempts are live, new
//!    attempts go to fresh provers picked by the job's mechanism, excluding every prover that
//!    already held one, until `redundancy + fallback_attempts_max` attempts were made. Then, or
//!    when no eligible prover remains, the job opens a race: any eligible prover may post a proof
//!    for one time limit; the first proof accepted wins. A race with no accepted proof ends
//!    `Failed(no proof)` with a full refund. Program errors from `program_error_quorum` distinct
//!    provers end the job `Failed(program)`: the requester is charged one attempt's fee, shared
//!    by those provers, and nobody is punished. A job never assigned within `pending_timeout`
//!    `Expired`. Auctioned jobs (reverse Dutch, lowest bid) are assigned by auction *rounds*
//!    instead: a round opens at submission and after each failed attempt; a Dutch round ends at
//!    the first eligible `LockJob` (the attempt runs at once at the ramp's price), a lowest-bid
//!    round at the end of its reveal window (the lowest revealed sealed bid wins; unrevealed
//!    bids forfeit their deposits); a round nobody takes opens the race at the max fee. A
//!    failed auction winner forfeits its collateral: part burned, the rest a bounty.
//! 5. **Settlement of a job.** Once a job is final and no attempt of it is live, the rest of its
//!    escrow returns to the requester. Every path conserves credits: balances + stakes +
//!    escrows + treasury + burned always equals the genesis supply.
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
use crate::overlay::Overlay;
use crate::params::Genesis;
use crate::state::{ChangeSet, Meta, State};
use provernet_mechanism::{
    mechanism, pick_committee, Candidate, Decision, Offer, Request, Round, Seed,
};
use provernet_types::limits::*;
use provernet_types::tx::job_id;
use provernet_types::MechanismKind;
use provernet_types::{
    first_duplicate, AccountId, AttemptOutcome, BoundedVec, Height, JobId, JobSpec, MicroCredits,
    Millis, Nonce, ProgramManifest, ProverId, ProverSet, Resources, StateRoot, TxBody, Usage,
    VerifiedTx, VerifierSpec,
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
        params: g.params.clone(),
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
    let mut ov = Overlay::new(state, ctx.height);
    end_of_block(&mut ov, ctx);
    let (writes, evs) = ov.finish();
    writes.apply(state);
    events.extend(evs);
    let (root, changes) = state.commit();
    Ok(BlockOutput { receipts, events, root, changes })
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
        TxBody::PostRaceProof { job, files, usage } => {
            post_race_proof(ov, signer.into(), *job, files, *usage)?
        }
        TxBody::Vote { job, attempt, valid } => vote(ov, signer, *job, *attempt, *valid)?,
        TxBody::LockJob { job } => lock_job(ov, signer.into(), *job)?,
        TxBody::BidJob { job, commitment } => bid_job(ov, signer.into(), *job, *commitment)?,
        TxBody::RevealBid { job, price, salt } => {
            reveal_bid(ov, signer.into(), *job, *price, salt)?
        }
    }
    let a = ov.account_mut(signer);
    a.nonce = Nonce(a.nonce.0 + 1);
    Ok(())
}

fn debit(ov: &mut Overlay<'_>, who: AccountId, amount: MicroCredits) -> Result<(), TxError> {
    let have = ov.account(&who).map(|a| a.balance).unwrap_or_default();
    let left =
        have.checked_sub(amount).ok_or(TxError::InsufficientBalance { need: amount, have })?;
    ov.account_mut(who).balance = left;
    Ok(())
}

/// Credits `amount` to `to`. Balances cannot overflow: every credit comes from the fixed
/// supply, which fits in a `u64`.
fn credit(ov: &mut Overlay<'_>, to: AccountId, amount: MicroCredits) {
    let a = ov.account_mut(to);
    a.balance = MicroCredits(a.balance.0 + amount.0);
}

fn pay(
    ov: &mut Overlay<'_>,
    to: AccountId,
    job: Option<JobId>,
    kind: PaymentKind,
    amount: MicroCredits,
) {
    if amount.0 == 0 {
        return;
    }
    credit(ov, to, amount);
    ov.events.push(Event::Paid { to, job, kind, amount });
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
    debit(ov, from, amount)?;
    credit(ov, to, amount);
    Ok(())
}

fn check_manifest(ov: &Overlay<'_>, m: &ProgramManifest) -> Result<(), TxError> {
    m.default_resources.check_bounds().map_err(TxError::BadResources)?;
    check_time_limit(m.default_time_limit)?;
    if m.prover.size.0 == 0 || m.prover.size > BLOB_BYTES_MAX {
        return Err(TxError::BadManifest("prover executable size must be 1 byte to 64 GiB"));
    }
    if let VerifierSpec::Program(v) = &m.verifier {
        if v.size.0 == 0 || v.size > BLOB_BYTES_MAX {
            return Err(TxError::BadManifest("verifier executable size must be 1 byte to 64 GiB"));
        }
    }
    if !m.requires.windows(2).all(|w| w[0] < w[1]) {
        return Err(TxError::BadManifest("required labels must be sorted and unique"));
    }
    if first_duplicate(m.inputs.iter()).is_some() {
        return Err(TxError::BadManifest("declared input names must be unique"));
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

fn check_time_limit(t: provernet_types::Seconds) -> Result<(), TxError> {
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
    debit(ov, signer, stake)?;
    let mut sorted = labels.clone().into_vec();
    sorted.sort();
    sorted.dedup();
    let labels = BoundedVec::try_from_vec(sorted).map_err(|_| TxError::Overflow)?;
    let h = ov.height;
    let mut prover = Prover {
        capacity: *capacity,
        labels,
        stake,
        bonded: MicroCredits(0),
        used: Resources::ZERO,
        status: ProverStatus::Active,
        faults: 0,
        completed: 0,
        decline_window: 0,
        declines_in_window: 0,
        registered_at: h,
    };
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
            };
            prover.used = *capacity;
            prover.status = ProverStatus::Probing { probe: job_id };
            ov.events.push(Event::JobSubmitted {
                job: job_id,
                requester: signer,
                fee_per_prover: MicroCredits(0),
            });
            ov.events.push(Event::AttemptAssigned { job: job_id, attempt: 0, prover: id });
            ov.put_job(job_id, job);
        }
    }
    ov.put_prover(id, Some(prover));
    Ok(())
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
        state: if race { AttemptState::Proven } else { AttemptState::Assigned },
        race,
        assigned_at: h,
        deadline,
        proof: BoundedVec::new(),
        usage: Usage::default(),
        exit_code: None,
        committee: BoundedVec::new(),
        votes: BoundedVec::new(),
        verify_round: 0,
        price,
        collateral: MicroCredits(0),
    }
}

fn submit_job(
    ov: &mut Overlay<'_>,
    requester: AccountId,
    nonce: Nonce,
    spec: &JobSpec,
) -> Result<(), TxError> {
    let program = ov.program(&spec.program).ok_or(TxError::UnknownProgram(spec.program))?;
    let resources = spec.resources.unwrap_or(program.manifest.default_resources);
    resources.check_bounds().map_err(TxError::BadResources)?;
    check_time_limit(spec.time_limit)?;
    if spec.redundancy == 0 || spec.redundancy > REDUNDANCY_MAX {
        return Err(TxError::BadRedundancy(spec.redundancy));
    }
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
    if let Some(dup) = first_duplicate(spec.inputs.iter().map(|i| &i.name)) {
        return Err(TxError::DuplicateName(dup.clone()));
    }
    if let Some(missing) =
        program.manifest.inputs.iter().find(|n| !spec.inputs.iter().any(|i| &i.name == *n))
    {
        return Err(TxError::MissingInput(missing.clone()));
    }
    if spec.inputs.iter().any(|i| i.blob.size > BLOB_BYTES_MAX) {
        return Err(TxError::BadResources("an input is larger than the 64 GiB blob limit"));
    }
    let fee = ov.params().prices.quote(&resources, spec.time_limit);
    let quote =
        MicroCredits(fee.0.checked_mul(u64::from(spec.redundancy)).ok_or(TxError::Overflow)?);
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
    let open = ov.account(&requester).map_or(0, |a| a.open_jobs);
    if open >= ov.params().open_jobs_per_account_max {
        return Err(TxError::TooManyOpenJobs { open });
    }
    // An auction may clear anywhere up to the max fee, so it escrows the max fee; the rest
    // returns at settlement. Fixed-price mechanisms escrow (and charge at most) the quote.
    let escrow = if auction { spec.max_fee } else { quote };
    debit(ov, requester, escrow)?;
    ov.account_mut(requester).open_jobs = open + 1;
    let id = job_id(&requester, nonce);
    let h = ov.height;
    let job = Job {
        requester,
        program: spec.program,
        inputs: spec.inputs.clone(),
        resources,
        time_limit: spec.time_limit,
        redundancy: spec.redundancy,
        prover_set: spec.prover_set.clone(),
        mechanism: spec.mechanism,
        fee_per_prover: fee,
        max_fee: if auction { spec.max_fee } else { fee },
        escrow,
        status: JobStatus::Pending,
        attempts: BoundedVec::new(),
        submitted_at: h,
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
        wake: Some(h.plus(ov.params().draw_delay)),
    };
    ov.events.push(Event::JobSubmitted { job: id, requester, fee_per_prover: fee });
    ov.put_job(id, job);
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
    ov.put_job(id, job);
}

/// [`save`] for a change whose reaction draws nothing random, so the end-of-block rules may act
/// on it in this very block: a proof of a built-in program (its committee is every validator)
/// and a vote that completes a quorum for the proof (acceptance pays; it draws no one).
fn save_now(ov: &mut Overlay<'_>, id: JobId, mut job: Job) {
    job.wake = Some(ov.height);
    ov.put_job(id, job);
}

fn set_attempt(ov: &mut Overlay<'_>, job_id: JobId, job: &mut Job, i: usize, state: AttemptState) {
    job.attempts.as_mut_slice()[i].state = state;
    ov.events.push(Event::AttemptChanged { job: job_id, attempt: i as u8, state });
}

/// Frees what an attempt held on its prover: capacity while assigned or running, the bond while
/// live. Call before changing the attempt's state.
fn release(ov: &mut Overlay<'_>, job: &Job, a: &Attempt) {
    let (resources, bond) = (job.resources, job.fee_per_prover);
    if let Some(p) = ov.prover_mut(&a.prover) {
        if a.state.holds_capacity() {
            p.used = p.used.saturating_sub(&resources);
        }
        if a.state.is_live() {
            p.bonded = p.bonded.saturating_sub(bond).saturating_sub(a.collateral);
        }
    }
}

fn cancel_job(ov: &mut Overlay<'_>, signer: AccountId, id: JobId) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    if job.requester != signer || job.probe_for.is_some() {
        return Err(TxError::NotRequester(id));
    }
    if !matches!(job.status, JobStatus::Pending | JobStatus::Assigned) {
        return Err(TxError::WrongJobState {
            job: id,
            status: job.status,
            expected: "Pending or Assigned",
        });
    }
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
    Ok(())
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

fn check_proof_files(files: &[provernet_types::NamedBlob]) -> Result<(), TxError> {
    if files.is_empty() {
        return Err(TxError::EmptyProof);
    }
    if let Some(dup) = first_duplicate(files.iter().map(|f| &f.name)) {
        return Err(TxError::DuplicateName(dup.clone()));
    }
    if files.iter().any(|f| f.blob.size > BLOB_BYTES_MAX) {
        return Err(TxError::BadResources("a proof file is larger than the 64 GiB blob limit"));
    }
    Ok(())
}

fn post_result(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    attempt: u8,
    outcome: &AttemptOutcome,
    usage: Usage,
) -> Result<(), TxError> {
    let (mut job, i) = own_attempt(ov, id, attempt, prover, AttemptState::Running, "Running")?;
    let a = job.attempts[i].clone();
    let builtin = matches!(outcome, AttemptOutcome::Proof(_))
        && ov
            .program(&job.program)
            .is_some_and(|p| matches!(p.manifest.verifier, VerifierSpec::Builtin(_)));
    match outcome {
        AttemptOutcome::Proof(files) => {
            check_proof_files(files)?;
            // The work is done: free the capacity, keep the bond until the verdict.
            if let Some(p) = ov.prover_mut(&prover) {
                p.used = p.used.saturating_sub(&job.resources);
            }
            let slot = &mut job.attempts.as_mut_slice()[i];
            slot.proof = files.clone();
            slot.usage = usage;
            slot.deadline = ov.height;
            set_attempt(ov, id, &mut job, i, AttemptState::Proven);
        }
        AttemptOutcome::ProgramError { exit_code, .. } => {
            release(ov, &job, &a);
            let slot = &mut job.attempts.as_mut_slice()[i];
            slot.usage = usage;
            slot.exit_code = Some(*exit_code);
            set_attempt(ov, id, &mut job, i, AttemptState::ProgramError);
        }
    }
    refresh_status(ov, id, &mut job);
    if builtin {
        save_now(ov, id, job);
    } else {
        save(ov, id, job);
    }
    Ok(())
}

fn post_race_proof(
    ov: &mut Overlay<'_>,
    prover: ProverId,
    id: JobId,
    files: &BoundedVec<provernet_types::NamedBlob, PROOF_FILES_MAX>,
    usage: Usage,
) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    if job.status != JobStatus::Race {
        return Err(TxError::WrongJobState { job: id, status: job.status, expected: "Race" });
    }
    if job.race_until.is_some_and(|until| ov.height > until) {
        return Err(TxError::DeadlinePassed { deadline: job.race_until.unwrap_or_default() });
    }
    check_proof_files(files)?;
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
    let fee = job.fee_per_prover;
    if let Some(p) = ov.prover_mut(&prover) {
        p.bonded = MicroCredits(p.bonded.0 + fee.0);
    }
    let mut a = new_attempt(prover, ov.height, ov.height, true, job.race_price);
    a.proof = files.clone();
    a.usage = usage;
    let index = job.attempts.len() as u8;
    job.attempts.try_push(a).map_err(|_| TxError::RaceFull(id))?;
    ov.events.push(Event::AttemptChanged { job: id, attempt: index, state: AttemptState::Proven });
    save(ov, id, job);
    Ok(())
}

fn vote(
    ov: &mut Overlay<'_>,
    voter: AccountId,
    id: JobId,
    attempt: u8,
    valid: bool,
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
    slot.votes.as_mut_slice()[seat] = Some(valid);
    let yes = slot.votes.iter().filter(|v| **v == Some(true)).count();
    if 3 * yes >= 2 * slot.votes.len() {
        save_now(ov, id, job);
    } else {
        save(ov, id, job);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// End of block
// ---------------------------------------------------------------------------------------------

fn end_of_block(ov: &mut Overlay<'_>, ctx: &BlockContext) {
    let h = ctx.height;
    let provers: Vec<ProverId> =
        ov.base().prover_wake.range(..=(h, ProverId([0xff; 32]))).map(|(_, id)| *id).collect();
    for id in provers {
        finish_exit(ov, id, h);
    }
    let jobs: Vec<JobId> =
        ov.base().job_wake.range(..=(h, JobId([0xff; 32]))).map(|(_, id)| *id).collect();
    for id in jobs {
        tick_job(ov, ctx, id);
    }
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
    pay(ov, id.into(), None, PaymentKind::StakeReturned, p.stake);
    ov.put_prover(id, None);
    ov.events.push(Event::ProverRemoved { prover: id });
}

fn tick_job(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId) {
    let Some(mut job) = ov.job(&id) else { return };
    let h = ctx.height;
    for i in 0..job.attempts.len() {
        tick_attempt(ov, ctx, id, &mut job, i);
    }
    if !job.status.is_final() {
        advance_job(ov, ctx, id, &mut job);
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
            let rest = job.escrow;
            job.escrow = MicroCredits(0);
            job.settled = true;
            pay(ov, job.requester, Some(id), PaymentKind::EscrowRefund, rest);
            if job.probe_for.is_none() {
                let a = ov.account_mut(job.requester);
                a.open_jobs = a.open_jobs.saturating_sub(1);
            }
        }
    }
    job.wake = next_wake(&job, h);
    ov.put_job(id, job);
}

/// When the job next needs the end-of-block rules: its earliest live deadline, the end of its
/// race, or the next block while it waits for a prover or a committee.
fn next_wake(job: &Job, h: Height) -> Option<Height> {
    if job.settled {
        return None;
    }
    let next = Height(h.0 + 1);
    let mut wake: Option<Height> = None;
    let mut at = |w: Height| wake = Some(wake.map_or(w, |x| x.min(w)).max(next));
    for a in job.attempts.iter().filter(|a| a.state.is_live()) {
        if a.state == AttemptState::Proven && a.committee.is_empty() {
            at(next);
        } else {
            at(a.deadline);
        }
    }
    if !job.status.is_final() {
        if let Some(until) = job.race_until {
            at(until);
        }
        if job.live_attempts() < usize::from(job.redundancy) && job.status != JobStatus::Race {
            at(next);
        }
    }
    Some(wake.unwrap_or(next))
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
        AttemptState::Proven if a.committee.is_empty() => draw_committee(ov, ctx, id, job, i),
        AttemptState::Proven => {
            let n = a.votes.len();
            let valid = a.votes.iter().filter(|v| **v == Some(true)).count();
            let invalid = a.votes.iter().filter(|v| **v == Some(false)).count();
            let cast = valid + invalid;
            let verdict = if 3 * valid >= 2 * n {
                Some(true)
            } else if 3 * invalid > n {
                Some(false)
            } else if h < a.deadline {
                None
            } else if a.verify_round + 1 < ov.params().verify_rounds_max {
                // No quorum in time: ask a fresh committee.
                job.attempts.as_mut_slice()[i].verify_round += 1;
                job.attempts.as_mut_slice()[i].committee = BoundedVec::new();
                job.attempts.as_mut_slice()[i].votes = BoundedVec::new();
                draw_committee(ov, ctx, id, job, i);
                None
            } else if cast > 0 {
                Some(3 * valid >= 2 * cast)
            } else {
                release(ov, job, &a);
                set_attempt(ov, id, job, i, AttemptState::Unverifiable);
                None
            };
            match verdict {
                Some(true) => accept_attempt(ov, id, job, i),
                Some(false) => reject_attempt(ov, id, job, i),
                None => {}
            }
        }
        _ => {}
    }
}

fn draw_committee(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job, i: usize) {
    let a = &job.attempts[i];
    let seed = Seed::derive(&ctx.randomness, "committee", &[&id.0, &[i as u8, a.verify_round]]);
    let builtin = ov
        .program(&job.program)
        .is_some_and(|p| matches!(p.manifest.verifier, VerifierSpec::Builtin(_)));
    let validators: Vec<ProverId> =
        ov.params().validators.iter().map(|v| ProverId::from(*v)).collect();
    let k = usize::from(ov.params().committee_size);
    let members = if builtin {
        pick_committee(seed, &validators, validators.len().min(COMMITTEE_MAX))
    } else {
        let pool: Vec<ProverId> = ov
            .active_provers()
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|pid| *pid != a.prover)
            .collect();
        if pool.is_empty() {
            pick_committee(seed, &validators, k.min(validators.len()))
        } else {
            pick_committee(seed, &pool, k)
        }
    };
    let members: Vec<AccountId> = members.into_iter().map(AccountId::from).collect();
    let slot = &mut job.attempts.as_mut_slice()[i];
    slot.votes = BoundedVec::try_from_vec(vec![None; members.len()]).unwrap_or_default();
    slot.committee = BoundedVec::try_from_vec(members.clone()).unwrap_or_default();
    slot.deadline = ctx.height.plus(ov.params().vote_timeout);
    ov.events.push(Event::CommitteeDrawn { job: id, attempt: i as u8, members });
}

/// Splits `pool` equally between `members`; the indivisible rest is burned.
fn pay_members(ov: &mut Overlay<'_>, id: JobId, members: &[AccountId], pool: MicroCredits) {
    if members.is_empty() {
        ov.meta().burned.0 += pool.0;
        return;
    }
    let each = pool.0 / members.len() as u64;
    for m in members {
        pay(ov, *m, Some(id), PaymentKind::VerifierReward, MicroCredits(each));
    }
    ov.meta().burned.0 += pool.0 - each * members.len() as u64;
}

fn voters(a: &Attempt, verdict: bool) -> Vec<AccountId> {
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
    let paid = a.price.min(job.escrow);
    job.escrow = MicroCredits(job.escrow.0 - paid.0);
    let verifier_pool = paid.mul_bps(ov.params().verifier_reward_bps);
    pay(
        ov,
        a.prover.into(),
        Some(id),
        PaymentKind::ProverReward,
        MicroCredits(paid.0 - verifier_pool.0),
    );
    pay_members(ov, id, &voters(&a, true), verifier_pool);
    if let Some(p) = ov.prover_mut(&a.prover) {
        p.completed += 1;
    }
    if job.status.is_final() {
        return;
    }
    job.winner = Some(i as u8);
    let bounty = job.bounty.min(job.escrow);
    job.escrow = MicroCredits(job.escrow.0 - bounty.0);
    job.bounty = MicroCredits(0);
    pay(ov, a.prover.into(), Some(id), PaymentKind::Bounty, bounty);
    if job.had_fault() {
        let want = job.fee_per_prover.mul_bps(ov.params().fallback_refund_bps);
        let refund = want.min(ov.meta().treasury);
        ov.meta().treasury.0 -= refund.0;
        job.fallback_refund = refund;
        pay(ov, job.requester, Some(id), PaymentKind::FallbackRefund, refund);
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

fn reject_attempt(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, i: usize) {
    let a = job.attempts[i].clone();
    release(ov, job, &a);
    set_attempt(ov, id, job, i, AttemptState::Rejected);
    forfeit(ov, id, job, a.prover, a.collateral);
    slash(ov, a.prover, id, job.fee_per_prover, Fault::InvalidProof);
    let want = job.fee_per_prover.mul_bps(ov.params().verifier_reward_bps);
    let reward = want.min(ov.meta().treasury);
    ov.meta().treasury.0 -= reward.0;
    pay_members(ov, id, &voters(&a, false), reward);
}

/// Takes `fee × rate`, doubled per earlier fault (at most 16×), from the prover's stake into
/// the treasury; ejects the prover after too many faults or when its stake runs low.
fn slash(ov: &mut Overlay<'_>, prover: ProverId, job: JobId, fee: MicroCredits, fault: Fault) {
    let params = ov.params();
    let rate = match fault {
        Fault::MissedAccept => params.slash_missed_accept_bps,
        Fault::MissedDeadline => params.slash_missed_deadline_bps,
        Fault::InvalidProof => params.slash_invalid_proof_bps,
    };
    let (to_eject, min_stake, until) =
        (params.faults_to_eject, params.min_prover_stake, ov.height.plus(params.exit_delay));
    let Some(p) = ov.prover_mut(&prover) else { return };
    let factor = 1u64 << p.faults.min(4);
    let amount = MicroCredits(fee.mul_bps(rate).0.saturating_mul(factor)).min(p.stake);
    p.stake = MicroCredits(p.stake.0 - amount.0);
    p.faults += 1;
    let eject = (p.faults >= to_eject || p.stake < min_stake)
        && !matches!(p.status, ProverStatus::Exiting { .. });
    if eject {
        p.status = ProverStatus::Exiting { until, ejected: true };
    }
    ov.meta().treasury.0 += amount.0;
    ov.events.push(Event::Slashed { prover, job, fault, amount });
    if eject {
        ov.events.push(Event::ProverExiting { prover, ejected: true });
    }
}

fn finish_job(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, status: JobStatus) {
    job.status = status;
    job.finished_at = Some(ov.height);
    ov.events.push(Event::JobStatusChanged { job: id, status });
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
    } else if has(AttemptState::Running) {
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

fn advance_job(ov: &mut Overlay<'_>, ctx: &BlockContext, id: JobId, job: &mut Job) {
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
    let errors: Vec<ProverId> = job
        .attempts
        .iter()
        .filter(|a| a.state == AttemptState::ProgramError)
        .map(|a| a.prover)
        .collect();
    if errors.len() >= usize::from(params.program_error_quorum) {
        // The program fails wherever it runs: the requester's fault. One attempt's fee is
        // shared by the provers that ran it; nobody is punished.
        let charge = job.fee_per_prover.min(job.escrow);
        job.escrow = MicroCredits(job.escrow.0 - charge.0);
        let each = charge.0 / errors.len() as u64;
        for p in &errors {
            pay(ov, (*p).into(), Some(id), PaymentKind::ProgramErrorCharge, MicroCredits(each));
        }
        ov.meta().burned.0 += charge.0 - each * errors.len() as u64;
        finish_job(ov, id, job, JobStatus::Failed(FailReason::Program));
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
    let mut open = None;
    while job.live_attempts() < usize::from(job.redundancy)
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
        // Attempts exhausted, or no fresh prover left: open the race.
        job.race_until = Some(params.result_deadline(h, job.time_limit));
        job.race_price = open.unwrap_or(job.max_fee);
        job.round = None;
        close_bids(ov, id, job, false);
        ov.events.push(Event::RaceOpened { job: id });
    }
    refresh_status(ov, id, job);
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
    let (resources, held) = (job.resources, job.fee_per_prover.0.saturating_add(collateral.0));
    if let Some(p) = ov.prover_mut(&prover) {
        p.used = p.used.checked_add(&resources).unwrap_or(p.capacity);
        p.bonded = MicroCredits(p.bonded.0.saturating_add(held));
    }
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
/// released): part burned, the rest held in the job's escrow as a bounty for whoever proves it.
fn forfeit(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, prover: ProverId, amount: MicroCredits) {
    if amount.0 == 0 {
        return;
    }
    let params = ov.params().mechanism_params;
    let Some(p) = ov.prover_mut(&prover) else { return };
    let taken = amount.min(p.stake);
    p.stake = MicroCredits(p.stake.0 - taken.0);
    let (burned, bounty) = params.forfeit(taken);
    ov.meta().burned.0 += burned.0;
    job.escrow = MicroCredits(job.escrow.0 + bounty.0);
    job.bounty = MicroCredits(job.bounty.0 + bounty.0);
    ov.events.push(Event::CollateralForfeited { prover, job: id, burned, bounty });
}

/// Ends the current round's sealed bids: every deposit is released, and with `decided` a bid
/// never revealed forfeits its deposit (it might otherwise have been withheld on purpose, to
/// pick the best of several Sybil bids after seeing the others).
fn close_bids(ov: &mut Overlay<'_>, id: JobId, job: &mut Job, decided: bool) {
    let bids = std::mem::take(&mut job.bids);
    for b in bids.iter() {
        if let Some(p) = ov.prover_mut(&b.prover) {
            p.bonded = p.bonded.saturating_sub(b.deposit);
        }
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

fn lock_job(ov: &mut Overlay<'_>, prover: ProverId, id: JobId) -> Result<(), TxError> {
    let mut job = load_job(ov, id)?;
    check_auction(&job, id, MechanismKind::ReverseDutch, "locks")?;
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
    if let Some(p) = ov.prover_mut(&prover) {
        p.bonded = MicroCredits(p.bonded.0 + deposit.0);
    }
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
