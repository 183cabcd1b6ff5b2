//! The node's decisions, as a pure core: what to accept, decline, resume, abandon, race, lock,
//! bid, reveal and vote, and what to post when a run ends. It takes inputs (the typed work
//! listing, a finished run, a transaction that failed) and returns effects (send a
//! transaction, start a run, journal a step), and keeps the node's book of capacity and of the
//! attempts it has taken or passed on. No I/O, no clock, no async: the shell in `lib.rs`
//! executes the effects, and the policy is unit-tested here without root, processes or a chain.
//! The ledger's test agent (`provernet_ledger::testkit`) drives the same core, so the rules a
//! node follows and the ones the ledger's tests exercise are one copy.

mod gpus;

use gpus::GpuPool;
use provernet_api_types as t;
use provernet_types::{
    AccountId, AttemptOutcome, BlobRef, BoundedVec, FileName, Height, JobId, MicroCredits,
    NamedBlob, ProgramId, Resources, Seconds, TxBody, Usage,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use t::{TaskKind, Work};

/// What the node did with an attempt, as its journal keeps it across restarts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Step {
    Started,
    /// A commitment to the attempt's proof was sent; the reveal follows.
    Committed,
    Posted,
    Abandoned,
}

/// The salt of a sealed bid on `job` in the round opened at `round`, derived from the bidder's
/// key seed so that the bidder (the node, or `provernet prover reveal-bid`) can open its bid
/// again after a restart without storing it, and nobody else can.
pub fn bid_salt(seed: &[u8; 32], job: JobId, round: u64) -> [u8; 32] {
    provernet_types::domain_hash(
        "provernet node bid salt v1",
        &[seed, &job.0, &round.to_le_bytes()],
    )
}

/// The attempts `work` lists, as (job, attempt).
pub fn keys(work: &Work) -> std::collections::BTreeSet<(JobId, u8)> {
    work.tasks.iter().map(|t| (t.job.id, t.attempt)).collect()
}

/// A job as the node works with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobWork {
    pub id: JobId,
    pub program: ProgramId,
    pub inputs: Vec<(FileName, BlobRef)>,
    pub resources: Resources,
    pub time_limit: Seconds,
    /// The proof files of each attempt.
    pub proofs: Vec<Vec<(FileName, BlobRef)>>,
    /// The chain's posted price for one attempt.
    pub quote: MicroCredits,
    /// The most one attempt may be paid (auctions).
    pub max_fee: MicroCredits,
}

fn named(list: &[t::NamedBlob]) -> Vec<(FileName, BlobRef)> {
    list.iter().map(|n| (n.name.clone(), n.blob_ref())).collect()
}

impl From<&t::Job> for JobWork {
    fn from(j: &t::Job) -> Self {
        JobWork {
            id: j.id,
            program: j.program,
            inputs: named(&j.inputs),
            resources: j.resources.resources(),
            time_limit: j.time_limit_s,
            proofs: j.attempts.iter().map(|a| named(&a.proof)).collect(),
            quote: j.fee_per_prover_micro_credits,
            max_fee: j.max_fee_micro_credits,
        }
    }
}

/// An attempt: its job and index.
pub type Key = (JobId, u8);

/// Proof files, named and hashed.
pub type Files = BoundedVec<NamedBlob, { provernet_types::limits::PROOF_FILES_MAX }>;

/// What the operator decided in `node.toml`, and who the node is.
#[derive(Clone, Debug)]
pub struct Policy {
    pub me: AccountId,
    /// The key's seed: bid salts derive from it (see [`bid_salt`]).
    pub seed: [u8; 32],
    pub capacity: Resources,
    /// Join races and auctions (assigned work is always taken).
    pub markets: bool,
    /// The ask in auctions, in basis points of the chain's quote.
    pub ask_bps: u32,
    /// The chain's block time, to turn a deadline in blocks into time.
    pub block_time_ms: u64,
}

/// Which run a finished run was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// An assigned attempt, accepted (or resumed, or won at auction).
    Attempt,
    /// A race entry: its attempt index is known only once the entry applies.
    Race,
}

/// What a run of the prover produced, as the core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Proof files, hashed.
    Proof { files: Files, usage: Usage },
    /// A claim that the program failed, or ran out of the job's time limit.
    Claim { outcome: AttemptOutcome, usage: Usage },
    /// The node could not run it (a blob it could not fetch, a sandbox that cannot enforce the
    /// limits): its own fault, so it posts nothing and the deadline decides.
    NodeFailed,
}

/// Something for the shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a transaction and forget it.
    Send(TxBody),
    /// Accept the attempt and run it at once (its capacity and `gpus` are reserved); report
    /// with [`Core::run_ended`] once both are done.
    AcceptAndRun { job: JobWork, attempt: u8, gpus: Vec<u32> },
    /// Run an attempt the chain lists as running (after a restart, or won at auction).
    Run { job: JobWork, attempt: u8, gpus: Vec<u32> },
    /// Send the lock, then run the attempt if it applied ([`Core::lock_failed`] if not).
    LockAndRun { job: JobWork, attempt: u8, round: Height, gpus: Vec<u32> },
    /// Prove the job for its open race; report with [`Core::run_ended`] ([`RunKind::Race`]).
    Race { job: JobWork, attempt: u8, gpus: Vec<u32> },
    /// Upload and reveal the committed proof of the attempt ([`Core::reveal_failed`] if it
    /// could not).
    Reveal { job: JobWork, attempt: u8 },
    /// Verify the attempt's proof and vote ([`Core::vote_failed`] if it could not).
    Vote { job: JobWork, attempt: u8 },
    /// Record a step in the journal before what follows.
    Journal { job: JobId, attempt: u8, step: Step },
    /// Keep the proof files where the run left them (the race's directory for a race run,
    /// else the attempt's), for a later reveal.
    KeepProof { job: JobId, attempt: u8, kind: RunKind, files: Files, usage: Usage },
    /// Delete a finished run's proof files: nothing will be revealed from them.
    DropProof { job: JobId, attempt: u8 },
    /// Send a transaction and wait for it: its outcome is only logged.
    SendAndLog { body: TxBody, what: &'static str },
}

/// The node's book: capacity in use and what it has taken, passed on or sent.
#[derive(Debug)]
pub struct Core {
    policy: Policy,
    used: Resources,
    gpus: GpuPool,
    /// Runs holding capacity now.
    reserved: BTreeSet<Key>,
    /// Attempts taken and not over (a run, or its lock, under way).
    running: BTreeSet<Key>,
    /// Attempts the node decided not to take (declined, abandoned, lost): not looked at again.
    skipped: BTreeSet<Key>,
    voting: BTreeSet<Key>,
    revealing: BTreeSet<Key>,
    /// Jobs whose race it is proving.
    racing: BTreeSet<JobId>,
    /// Sealed-bid transactions sent, so each is sent once.
    offered: BTreeSet<(JobId, u8, Offer)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Offer {
    Bid,
    Reveal,
}

impl Core {
    pub fn new(policy: Policy) -> Core {
        Core {
            gpus: GpuPool::new(policy.capacity.gpus.0),
            policy,
            used: Resources::ZERO,
            reserved: BTreeSet::new(),
            running: BTreeSet::new(),
            skipped: BTreeSet::new(),
            voting: BTreeSet::new(),
            revealing: BTreeSet::new(),
            racing: BTreeSet::new(),
            offered: BTreeSet::new(),
        }
    }

    /// Capacity in use by runs now.
    pub fn used(&self) -> Resources {
        self.used
    }

    /// The ask for `job`: the quote times `ask_bps`.
    fn ask(&self, job: &JobWork) -> MicroCredits {
        job.quote.mul_bps(self.policy.ask_bps)
    }

    fn free(&self) -> Resources {
        sub(self.policy.capacity, self.used)
    }

    /// Whether the node already took (or decided against) this attempt.
    fn known(&self, key: Key) -> bool {
        self.running.contains(&key) || self.skipped.contains(&key)
    }

    /// Reserves the job's resources and GPUs if they fit in what is free.
    fn reserve(&mut self, key: Key, need: Resources) -> Option<Vec<u32>> {
        if !need.fits_in(&self.free()) {
            return None;
        }
        let gpus = self.gpus.take(key, need.gpus.0)?;
        self.used = add(self.used, need);
        self.reserved.insert(key);
        self.running.insert(key);
        Some(gpus)
    }

    /// Frees a run's capacity, once.
    fn release(&mut self, key: Key, need: Resources) {
        if self.reserved.remove(&key) {
            self.gpus.release(&key);
            self.used = sub(self.used, need);
        }
    }

    /// Whether the whole time limit fits before `deadline`, seen at `height`.
    fn time_left(&self, job: &JobWork, deadline: u64, height: u64) -> bool {
        let left_ms = deadline.saturating_sub(height).saturating_mul(self.policy.block_time_ms);
        left_ms >= job.time_limit.0.saturating_mul(1000)
    }

    /// The work listing read after a block: what to do about each task. `last_step` is what
    /// the journal holds for an attempt.
    pub fn on_work(
        &mut self,
        work: &Work,
        last_step: impl Fn(JobId, u8) -> Option<Step>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        for task in &work.tasks {
            let job = JobWork::from(&task.job);
            let attempt = task.attempt;
            let key = (job.id, attempt);
            let market = matches!(
                task.kind,
                TaskKind::Race | TaskKind::Lock | TaskKind::Bid | TaskKind::Reveal
            );
            if market && !self.policy.markets {
                continue;
            }
            match task.kind {
                TaskKind::Accept => {
                    if self.known(key) {
                        continue;
                    }
                    match self.reserve(key, job.resources) {
                        Some(gpus) => out.push(Effect::AcceptAndRun { job, attempt, gpus }),
                        None => {
                            self.skipped.insert(key);
                            out.push(Effect::Send(TxBody::DeclineJob { job: job.id, attempt }));
                        }
                    }
                }
                TaskKind::Run => {
                    if self.known(key) {
                        continue;
                    }
                    // Posted (or committed to) before a restart: the chain has not caught up.
                    if matches!(last_step(job.id, attempt), Some(Step::Posted | Step::Committed)) {
                        continue;
                    }
                    if !self.time_left(&job, task.deadline.0, work.height) {
                        self.skipped.insert(key);
                        out.push(Effect::Journal { job: job.id, attempt, step: Step::Abandoned });
                        continue;
                    }
                    if let Some(gpus) = self.reserve(key, job.resources) {
                        out.push(Effect::Run { job, attempt, gpus });
                    }
                }
                TaskKind::Race => {
                    if self.racing.contains(&job.id)
                        || self.known(key)
                        || !self.time_left(&job, task.deadline.0, work.height)
                    {
                        continue;
                    }
                    if let Some(gpus) = self.reserve(key, job.resources) {
                        self.racing.insert(job.id);
                        out.push(Effect::Race { job, attempt, gpus });
                    }
                }
                TaskKind::Lock => {
                    let price = task.price_micro_credits.unwrap_or(MicroCredits(0));
                    let Some(round) = task.round else { continue };
                    if self.known(key) || price < self.ask(&job) {
                        continue;
                    }
                    if let Some(gpus) = self.reserve(key, job.resources) {
                        out.push(Effect::LockAndRun { job, attempt, round, gpus });
                    }
                }
                TaskKind::Bid | TaskKind::Reveal => {
                    let offer = if task.kind == TaskKind::Bid { Offer::Bid } else { Offer::Reveal };
                    let Some(round) = task.round else { continue };
                    if self.offered.contains(&(job.id, attempt, offer)) {
                        continue;
                    }
                    let price = self.ask(&job);
                    if price > job.max_fee {
                        continue;
                    }
                    let salt = bid_salt(&self.policy.seed, job.id, round.0);
                    let body = match offer {
                        // A bid commits the node to run the job if it wins: only with room now.
                        Offer::Bid if !job.resources.fits_in(&self.free()) => continue,
                        Offer::Bid => {
                            let me = self.policy.me;
                            let commitment =
                                provernet_types::bid_commitment(&job.id, &me, price, &salt);
                            TxBody::BidJob { job: job.id, commitment }
                        }
                        Offer::Reveal => TxBody::RevealBid { job: job.id, price, salt },
                    };
                    self.offered.insert((job.id, attempt, offer));
                    out.push(Effect::Send(body));
                }
                TaskKind::RevealProof => {
                    if self.revealing.insert(key) {
                        out.push(Effect::Reveal { job, attempt });
                    }
                }
                TaskKind::Vote => {
                    if self.voting.insert(key) {
                        out.push(Effect::Vote { job, attempt });
                    }
                }
            }
        }
        // Forget attempts the chain no longer lists for us, so these sets stay bounded.
        let listed = keys(work);
        self.skipped.retain(|k| listed.contains(k));
        self.voting.retain(|k| listed.contains(k));
        self.revealing.retain(|k| listed.contains(k));
        self.offered.retain(|(j, a, _)| listed.contains(&(*j, *a)));
        out
    }

    /// A run is over: its capacity is free (the chain frees it in the block that includes the
    /// commitment or claim, and may assign new work in that same block). What to post:
    /// `accepted` says whether the attempt's accept (or lock) applied; races have no accept.
    pub fn run_ended(
        &mut self,
        job: &JobWork,
        attempt: u8,
        kind: RunKind,
        accepted: bool,
        end: RunEnd,
    ) -> Vec<Effect> {
        let key = (job.id, attempt);
        self.release(key, job.resources);
        let mut out = Vec::new();
        match kind {
            RunKind::Race => {
                self.racing.remove(&job.id);
                self.running.remove(&key);
                // Not raced again at this attempt index.
                self.skipped.insert(key);
                // A failed run in a race is nobody's business but ours: post nothing.
                if let RunEnd::Proof { files, usage } = end {
                    let commitment =
                        provernet_types::result_commitment(&self.policy.me, &job.id, &files);
                    // The files stay until the job is settled: should the entry land after a
                    // failure it seemed to have, its reveal is due.
                    out.push(Effect::KeepProof { job: job.id, attempt, kind, files, usage });
                    out.push(Effect::SendAndLog {
                        body: TxBody::PostRaceProof { job: job.id, commitment },
                        what: "race entry",
                    });
                }
            }
            RunKind::Attempt => {
                match (accepted, end) {
                    (false, end) => {
                        if matches!(end, RunEnd::Proof { .. }) {
                            out.push(Effect::DropProof { job: job.id, attempt });
                        }
                        self.skipped.insert(key);
                    }
                    (true, RunEnd::NodeFailed) => {
                        self.skipped.insert(key);
                    }
                    (true, RunEnd::Proof { files, usage }) => {
                        let commitment =
                            provernet_types::result_commitment(&self.policy.me, &job.id, &files);
                        out.push(Effect::KeepProof { job: job.id, attempt, kind, files, usage });
                        out.push(Effect::Journal { job: job.id, attempt, step: Step::Committed });
                        out.push(Effect::SendAndLog {
                            body: TxBody::CommitResult { job: job.id, attempt, commitment },
                            what: "commitment to the proof",
                        });
                    }
                    (true, RunEnd::Claim { outcome, usage }) => {
                        let what = match &outcome {
                            AttemptOutcome::TimeLimit { .. } => "time-limit claim",
                            AttemptOutcome::ProgramError { .. } => "program-error claim",
                            AttemptOutcome::Proof(_) => "proof",
                        };
                        out.push(Effect::Journal { job: job.id, attempt, step: Step::Posted });
                        out.push(Effect::SendAndLog {
                            body: TxBody::PostResult { job: job.id, attempt, outcome, usage },
                            what,
                        });
                    }
                }
                self.running.remove(&key);
            }
        }
        out
    }

    /// A lock that did not apply: the run never started.
    pub fn lock_failed(&mut self, job: &JobWork, attempt: u8) {
        let key = (job.id, attempt);
        self.release(key, job.resources);
        self.running.remove(&key);
        self.skipped.insert(key);
    }

    /// A reveal that could not be made: still listed while the window lasts, so the next
    /// listing retries it.
    pub fn reveal_failed(&mut self, key: Key) {
        self.revealing.remove(&key);
    }

    /// A vote that could not be cast: retried while the round lasts.
    pub fn vote_failed(&mut self, key: Key) {
        self.voting.remove(&key);
    }
}

fn add(a: Resources, b: Resources) -> Resources {
    Resources {
        cores: provernet_types::MilliCores(a.cores.0.saturating_add(b.cores.0)),
        memory: provernet_types::Bytes(a.memory.0.saturating_add(b.memory.0)),
        gpus: provernet_types::GpuCount(a.gpus.0.saturating_add(b.gpus.0)),
    }
}

fn sub(a: Resources, b: Resources) -> Resources {
    Resources {
        cores: provernet_types::MilliCores(a.cores.0.saturating_sub(b.cores.0)),
        memory: provernet_types::Bytes(a.memory.0.saturating_sub(b.memory.0)),
        gpus: provernet_types::GpuCount(a.gpus.0.saturating_sub(b.gpus.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provernet_api_types as t;
    use provernet_types::{Bytes, GpuCount, MilliCores, Millis, ProgramId, Seconds};

    const ME: AccountId = AccountId([7; 32]);

    fn policy(cores: u32, gpus: u16) -> Policy {
        Policy {
            me: ME,
            seed: [1; 32],
            capacity: Resources {
                cores: MilliCores(cores * 1000),
                memory: Bytes::gib(8),
                gpus: GpuCount(gpus),
            },
            markets: true,
            ask_bps: 10_000,
            block_time_ms: 1000,
        }
    }

    fn job(id: u8, cores: u32, gpus: u16, time_s: u64) -> t::Job {
        let r = Resources {
            cores: MilliCores(cores * 1000),
            memory: Bytes::gib(1),
            gpus: GpuCount(gpus),
        };
        t::Job {
            id: JobId([id; 32]),
            requester: AccountId([2; 32]),
            program: ProgramId([3; 32]),
            status: t::JobStatus::Assigned,
            is_final: false,
            inputs: vec![],
            resources: r.into(),
            time_limit_s: Seconds(time_s),
            redundancy: 1,
            mechanism: t::Mechanism::Random,
            fee_per_prover_micro_credits: MicroCredits(1_000),
            max_fee_micro_credits: MicroCredits(2_000),
            race_price_micro_credits: MicroCredits(1_000),
            race_until: None,
            auction_round_opened_at: None,
            sealed_bids: 0,
            revealed_bids: 0,
            bounty_micro_credits: MicroCredits(0),
            escrow_micro_credits: MicroCredits(1_000),
            attempts: vec![],
            winner: None,
            submitted_at: Height(1),
            finished_at: None,
            fallback_refund_micro_credits: MicroCredits(0),
            workflow: None,
        }
    }

    fn task(kind: t::TaskKind, job: t::Job, deadline: u64) -> t::Task {
        t::Task {
            kind,
            attempt: 0,
            deadline: Height(deadline),
            price_micro_credits: None,
            round: None,
            job,
        }
    }

    fn work(height: u64, tasks: Vec<t::Task>) -> Work {
        Work { height, prover: None, tasks }
    }

    fn nothing(_: JobId, _: u8) -> Option<Step> {
        None
    }

    fn files() -> Files {
        let blob = provernet_types::tx::blob_ref(b"proof");
        let name = "proof".parse().expect("a name");
        BoundedVec::try_from_vec(vec![NamedBlob { name, blob }]).expect("one file")
    }

    fn usage() -> Usage {
        Usage { wall: Millis(5), cpu: Millis(5), peak_memory: Bytes(1) }
    }

    #[test]
    fn an_assigned_job_that_fits_is_accepted_once_and_one_that_does_not_is_declined_once() {
        let mut core = Core::new(policy(2, 0));
        let w = work(10, vec![task(t::TaskKind::Accept, job(1, 2, 0, 60), 100)]);
        let out = core.on_work(&w, nothing);
        assert!(matches!(&out[..], [Effect::AcceptAndRun { attempt: 0, .. }]), "{out:?}");
        assert_eq!(core.used().cores, MilliCores(2000));
        assert!(core.on_work(&w, nothing).is_empty(), "not taken twice");
        // The node is full: the next one is declined, once.
        let w2 = work(11, vec![task(t::TaskKind::Accept, job(2, 1, 0, 60), 100)]);
        let out = core.on_work(&w2, nothing);
        assert_eq!(out, vec![Effect::Send(TxBody::DeclineJob { job: JobId([2; 32]), attempt: 0 })]);
        assert!(core.on_work(&w2, nothing).is_empty(), "declined once");
    }

    #[test]
    fn the_sum_of_running_jobs_never_exceeds_the_capacity_and_gpus_are_not_shared() {
        let mut core = Core::new(policy(4, 2));
        let tasks =
            (1..=4).map(|i| task(t::TaskKind::Accept, job(i, 1, 1, 60), 100)).collect::<Vec<_>>();
        let out = core.on_work(&work(10, tasks), nothing);
        let gpus: Vec<Vec<u32>> = out
            .iter()
            .filter_map(|e| match e {
                Effect::AcceptAndRun { gpus, .. } => Some(gpus.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(gpus, vec![vec![0], vec![1]], "two GPUs, two jobs");
        let declined = out.iter().filter(|e| matches!(e, Effect::Send(TxBody::DeclineJob { .. })));
        assert_eq!(declined.count(), 2);
        assert!(core.used().fits_in(&policy(4, 2).capacity));
    }

    #[test]
    fn a_finished_proof_is_committed_bound_to_the_prover_and_its_capacity_freed() {
        let mut core = Core::new(policy(2, 0));
        let j = job(1, 2, 0, 60);
        core.on_work(&work(10, vec![task(t::TaskKind::Accept, j.clone(), 100)]), nothing);
        let jw = JobWork::from(&j);
        let end = RunEnd::Proof { files: files(), usage: usage() };
        let out = core.run_ended(&jw, 0, RunKind::Attempt, true, end);
        let commitment = provernet_types::result_commitment(&ME, &jw.id, &files());
        assert_eq!(
            out.last(),
            Some(&Effect::SendAndLog {
                body: TxBody::CommitResult { job: jw.id, attempt: 0, commitment },
                what: "commitment to the proof",
            })
        );
        assert!(out.contains(&Effect::Journal { job: jw.id, attempt: 0, step: Step::Committed }));
        assert_eq!(core.used(), Resources::ZERO);
        // Listed as running until the commitment lands: the journal keeps it from a rerun.
        let listed = work(11, vec![task(t::TaskKind::Run, j, 100)]);
        assert!(core.on_work(&listed, |_, _| Some(Step::Committed)).is_empty());
    }

    #[test]
    fn a_program_failure_is_claimed_and_a_node_failure_or_a_lost_accept_posts_nothing() {
        let mut core = Core::new(policy(4, 0));
        let jobs: Vec<t::Job> = (1..=3).map(|i| job(i, 1, 0, 60)).collect();
        let tasks = jobs.iter().map(|j| task(t::TaskKind::Accept, j.clone(), 100)).collect();
        core.on_work(&work(10, tasks), nothing);
        let reason = provernet_types::BoundedString::try_new("exit 3").expect("short");
        let failure = provernet_types::ProgramFailure::Exit(3);
        let outcome = AttemptOutcome::ProgramError { failure, reason };
        let claim = RunEnd::Claim { outcome: outcome.clone(), usage: usage() };
        let out = core.run_ended(&JobWork::from(&jobs[0]), 0, RunKind::Attempt, true, claim);
        assert!(matches!(
            out.last(),
            Some(Effect::SendAndLog {
                body: TxBody::PostResult { .. },
                what: "program-error claim"
            })
        ));
        let out =
            core.run_ended(&JobWork::from(&jobs[1]), 0, RunKind::Attempt, true, RunEnd::NodeFailed);
        assert!(out.is_empty(), "the node's own failure: the deadline decides");
        let proof = RunEnd::Proof { files: files(), usage: usage() };
        let out = core.run_ended(&JobWork::from(&jobs[2]), 0, RunKind::Attempt, false, proof);
        assert_eq!(out, vec![Effect::DropProof { job: jobs[2].id, attempt: 0 }]);
        assert_eq!(core.used(), Resources::ZERO);
    }

    #[test]
    fn after_a_restart_a_posted_attempt_is_left_alone_and_one_without_time_is_abandoned() {
        let mut core = Core::new(policy(4, 0));
        let posted = task(t::TaskKind::Run, job(1, 1, 0, 60), 1_000);
        assert!(core.on_work(&work(10, vec![posted]), |_, _| Some(Step::Posted)).is_empty());
        // 30 blocks of 1 s left for a 60 s limit.
        let late = task(t::TaskKind::Run, job(2, 1, 0, 60), 40);
        let out = core.on_work(&work(10, vec![late.clone()]), nothing);
        assert_eq!(
            out,
            vec![Effect::Journal { job: JobId([2; 32]), attempt: 0, step: Step::Abandoned }]
        );
        assert!(core.on_work(&work(10, vec![late]), nothing).is_empty(), "abandoned once");
        let fine = task(t::TaskKind::Run, job(3, 1, 0, 60), 100);
        assert!(matches!(&core.on_work(&work(10, vec![fine]), nothing)[..], [Effect::Run { .. }]));
    }

    #[test]
    fn markets_locks_at_the_ask_bids_with_room_and_races_with_time() {
        let mut core = Core::new(Policy { ask_bps: 15_000, ..policy(2, 0) });
        let mut lock = task(t::TaskKind::Lock, job(1, 1, 0, 60), 0);
        lock.round = Some(Height(5));
        lock.price_micro_credits = Some(MicroCredits(1_400));
        assert!(core.on_work(&work(10, vec![lock.clone()]), nothing).is_empty(), "below the ask");
        lock.price_micro_credits = Some(MicroCredits(1_500));
        let out = core.on_work(&work(11, vec![lock]), nothing);
        assert!(matches!(&out[..], [Effect::LockAndRun { round: Height(5), .. }]), "{out:?}");
        // A sealed bid at the ask (1,500, within the max fee), sent once; its reveal once.
        let mut bid = task(t::TaskKind::Bid, job(2, 1, 0, 60), 20);
        bid.round = Some(Height(8));
        let out = core.on_work(&work(12, vec![bid.clone()]), nothing);
        let salt = bid_salt(&[1; 32], JobId([2; 32]), 8);
        let commitment =
            provernet_types::bid_commitment(&JobId([2; 32]), &ME, MicroCredits(1_500), &salt);
        assert_eq!(out, vec![Effect::Send(TxBody::BidJob { job: JobId([2; 32]), commitment })]);
        assert!(core.on_work(&work(13, vec![bid.clone()]), nothing).is_empty());
        let mut reveal = bid.clone();
        reveal.kind = t::TaskKind::Reveal;
        let out = core.on_work(&work(14, vec![reveal]), nothing);
        let price = MicroCredits(1_500);
        assert_eq!(out, vec![Effect::Send(TxBody::RevealBid { job: JobId([2; 32]), price, salt })]);
        // A race that leaves less than the time limit is not joined; one that leaves it is.
        let short = task(t::TaskKind::Race, job(3, 1, 0, 60), 30);
        assert!(core.on_work(&work(10, vec![short]), nothing).is_empty());
        let race = task(t::TaskKind::Race, job(4, 1, 0, 60), 100);
        let out = core.on_work(&work(10, vec![race.clone()]), nothing);
        assert!(matches!(&out[..], [Effect::Race { .. }]), "{out:?}");
        assert!(core.on_work(&work(11, vec![race]), nothing).is_empty(), "raced once");
        // Without markets, none of it.
        let mut off = Core::new(Policy { markets: false, ..policy(2, 0) });
        let race = task(t::TaskKind::Race, job(5, 1, 0, 60), 100);
        assert!(off.on_work(&work(10, vec![race]), nothing).is_empty());
    }

    #[test]
    fn a_race_proof_is_entered_with_its_commitment_and_a_failed_lock_frees_its_room() {
        let mut core = Core::new(policy(1, 0));
        let j = job(1, 1, 0, 60);
        core.on_work(&work(10, vec![task(t::TaskKind::Race, j.clone(), 100)]), nothing);
        assert_eq!(core.used().cores, MilliCores(1000));
        let jw = JobWork::from(&j);
        let end = RunEnd::Proof { files: files(), usage: usage() };
        let out = core.run_ended(&jw, 0, RunKind::Race, true, end);
        let commitment = provernet_types::result_commitment(&ME, &jw.id, &files());
        assert!(out.contains(&Effect::SendAndLog {
            body: TxBody::PostRaceProof { job: jw.id, commitment },
            what: "race entry",
        }));
        assert_eq!(core.used(), Resources::ZERO);
        let mut lock = task(t::TaskKind::Lock, job(2, 1, 0, 60), 0);
        lock.round = Some(Height(3));
        lock.price_micro_credits = Some(MicroCredits(1_000));
        assert_eq!(core.on_work(&work(11, vec![lock.clone()]), nothing).len(), 1);
        core.lock_failed(&JobWork::from(&lock.job), 0);
        assert_eq!(core.used(), Resources::ZERO);
        assert!(core.on_work(&work(12, vec![lock]), nothing).is_empty(), "not locked again");
    }

    #[test]
    fn votes_and_reveals_are_sent_once_and_retried_after_a_failure() {
        let mut core = Core::new(policy(1, 0));
        let vote = task(t::TaskKind::Vote, job(1, 1, 0, 60), 100);
        let reveal = task(t::TaskKind::RevealProof, job(2, 1, 0, 60), 100);
        let w = work(10, vec![vote, reveal]);
        assert_eq!(core.on_work(&w, nothing).len(), 2);
        assert!(core.on_work(&w, nothing).is_empty());
        core.vote_failed((JobId([1; 32]), 0));
        core.reveal_failed((JobId([2; 32]), 0));
        assert_eq!(core.on_work(&w, nothing).len(), 2, "retried while listed");
        // No longer listed: forgotten, so the book stays bounded.
        core.on_work(&work(11, vec![]), nothing);
        assert_eq!(core.on_work(&w, nothing).len(), 2);
    }
}
