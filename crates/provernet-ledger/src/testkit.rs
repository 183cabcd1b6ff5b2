//! A test chain with named keys and an automated prover agent, for tests and benchmarks.
//!
//! Enabled by the `testkit` feature. Keys come from [`Keypair::insecure_from_label`]: never use
//! them for anything but tests.

use crate::apply::{apply_block, genesis, BlockContext, BlockOutput};
use crate::entities::{AttemptState, JobStatus};
use crate::params::{ChainParams, Genesis};
use crate::state::State;
use provernet_types::tx::blob_ref;
use provernet_types::tx::result_commitment;
use provernet_types::{
    domain_hash, AccountId, AttemptOutcome, Blocks, BoundedString, BoundedVec, BuiltinVerifier,
    Bytes, GpuCount, Height, JobId, JobSpec, Keypair, MechanismKind, MicroCredits, MilliCores,
    Millis, NamedBlob, Nonce, ProgramFailure, ProgramId, ProgramManifest, ProverId, ProverSet,
    Resources, Seconds, Transaction, TxBody, Usage, Verdict, VerifiedTx, VerifierSpec,
};
use std::collections::BTreeMap;

/// Credits each genesis account starts with.
pub const GENESIS_BALANCE: MicroCredits = MicroCredits(1_000_000 * MicroCredits::PER_CREDIT);
/// What each test prover stakes.
pub const PROVER_STAKE: MicroCredits = MicroCredits(100 * MicroCredits::PER_CREDIT);

/// A program whose proofs a committee of provers checks.
pub fn committee_program() -> ProgramManifest {
    let limits = provernet_types::VerifierLimits::DEFAULT;
    manifest("hash-chain", VerifierSpec::Program { blob: blob_ref(b"verifier-exe"), limits })
}

/// A program the validators verify natively.
pub fn builtin_program() -> ProgramManifest {
    manifest("groth16-sha256", VerifierSpec::Builtin(BuiltinVerifier::Groth16Bn254))
}

fn manifest(name: &str, verifier: VerifierSpec) -> ProgramManifest {
    ProgramManifest {
        name: name.parse().expect("valid name"),
        prover: blob_ref(format!("{name}-prover-exe").as_bytes()),
        verifier,
        default_resources: small(),
        default_time_limit: Seconds(60),
        requires: BoundedVec::new(),
        inputs: BoundedVec::new(),
    }
}

/// A job spec for `program`: one input, [`small`] resources, `time` seconds, redundancy 1, and a
/// max fee of 10 credits (far above the quote).
pub fn job_spec(program: ProgramId, time: u64) -> JobSpec {
    JobSpec {
        program,
        inputs: BoundedVec::try_from_vec(vec![NamedBlob {
            name: "statement".parse().expect("valid"),
            blob: blob_ref(b"public statement"),
        }])
        .expect("one input"),
        resources: Some(small()),
        time_limit: Seconds(time),
        redundancy: 1,
        prover_set: ProverSet::Any,
        mechanism: MechanismKind::RandomWithFallback,
        max_fee: MicroCredits(10 * MicroCredits::PER_CREDIT),
    }
}

/// 2 cores, 2 GiB, no GPU.
pub fn small() -> Resources {
    Resources { cores: MilliCores(2000), memory: Bytes::gib(2), gpus: GpuCount(0) }
}

/// 8 cores, 32 GiB, no GPU: what each test prover declares.
pub fn machine() -> Resources {
    Resources { cores: MilliCores(8000), memory: Bytes::gib(32), gpus: GpuCount(0) }
}

/// The genesis of a test chain: `alice` and `bob` with [`GENESIS_BALANCE`], provers `p0`…
/// with 1,000 credits each, validator `v0` (or `v0`…`v3` with [`four_validators`]), and the
/// two test programs.
pub fn test_genesis(provers: usize, tweak: impl FnOnce(&mut ChainParams)) -> Genesis {
    let id = |name: &str| Keypair::insecure_from_label(name).account();
    let mut accounts = vec![(id("alice"), GENESIS_BALANCE), (id("bob"), GENESIS_BALANCE)];
    for i in 0..provers {
        accounts.push((id(&format!("p{i}")), MicroCredits(1_000 * MicroCredits::PER_CREDIT)));
    }
    let mut params = ChainParams::devnet(vec![id("v0")]);
    params.chain_id = BoundedString::try_new("test").expect("short");
    // Scenario tests step the protocol block by block and expect a reaction in the block of the
    // transaction; the draw delay has its own tests and runs in the property tests.
    params.draw_delay = Blocks(0);
    // Collateral equal to the price, so test provers' stake covers auctions at the test max fee.
    params.mechanism_params.collateral_bps = 10_000;
    // Scenario tests count credits to the micro-credit; the fee has its own tests and runs in
    // the property tests.
    params.tx_fee = MicroCredits(0);
    tweak(&mut params);
    Genesis {
        params,
        accounts: BoundedVec::try_from_vec(accounts).expect("few accounts"),
        programs: BoundedVec::try_from_vec(vec![committee_program(), builtin_program()])
            .expect("two programs"),
    }
}

/// A [`test_genesis`] tweak that makes `v0`…`v3` the validators (the committee of every
/// built-in proof), as on a network that tolerates one faulty validator.
pub fn four_validators(p: &mut ChainParams) {
    let ids: Vec<AccountId> =
        (0..4).map(|i| Keypair::insecure_from_label(&format!("v{i}")).account()).collect();
    p.validators = BoundedVec::try_from_vec(ids).expect("four validators");
}

/// How the agent's provers and verifiers behave, in percent.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// Chance an assigned prover accepts (else it stays silent).
    pub accept_pct: u8,
    /// Chance a running prover posts a result (else it misses the deadline).
    pub deliver_pct: u8,
    /// Chance a delivered result is a valid proof (else a bad one).
    pub valid_pct: u8,
    /// Chance a delivered result is a program error instead of a proof.
    pub program_error_pct: u8,
    /// Chance a committee member votes (honestly).
    pub vote_pct: u8,
    /// Chance a race is joined by a prover each block.
    pub race_pct: u8,
}

impl Behaviour {
    pub const HONEST: Behaviour = Behaviour {
        accept_pct: 100,
        deliver_pct: 100,
        valid_pct: 100,
        program_error_pct: 0,
        vote_pct: 100,
        race_pct: 100,
    };
}

/// A chain in memory with helpers to build signed transactions and run blocks.
#[derive(Debug)]
pub struct TestChain {
    pub state: State,
    keys: BTreeMap<String, Keypair>,
    next_nonce: BTreeMap<AccountId, u64>,
    /// Mixed into block randomness so different test cases see different draws.
    pub salt: u64,
    /// Proof files of attempts posted as invalid by the agent, so it votes them down.
    bad_proofs: std::collections::BTreeSet<(JobId, u8)>,
    agent_rng: u64,
}

impl TestChain {
    /// A chain with requesters `alice` and `bob`, `provers` registered and active provers named
    /// `p0`, `p1`…, validator `v0` (keys for `v1`…`v3` too), and the two test programs.
    pub fn new(provers: usize, tweak: impl FnOnce(&mut ChainParams)) -> TestChain {
        let g = test_genesis(provers, tweak);
        let mut chain = TestChain::from_state(genesis(&g).expect("valid test genesis"), provers);
        let regs = chain.registrations(provers);
        if !regs.is_empty() {
            chain.block(regs);
        }
        chain
    }

    /// A chain over an existing state built from [`test_genesis`] with `provers` provers.
    pub fn from_state(state: State, provers: usize) -> TestChain {
        let mut keys = BTreeMap::new();
        for name in ["v0", "v1", "v2", "v3", "alice", "bob"]
            .into_iter()
            .map(String::from)
            .chain((0..provers).map(|i| format!("p{i}")))
        {
            keys.insert(name.clone(), Keypair::insecure_from_label(&name));
        }
        TestChain {
            state,
            keys,
            next_nonce: BTreeMap::new(),
            salt: 0,
            bad_proofs: Default::default(),
            agent_rng: 1,
        }
    }

    /// The registrations of provers `p0`…: each declares [`machine`] and stakes [`PROVER_STAKE`].
    pub fn registrations(&mut self, provers: usize) -> Vec<VerifiedTx> {
        (0..provers)
            .map(|i| {
                self.tx(
                    &format!("p{i}"),
                    TxBody::RegisterProver {
                        capacity: machine(),
                        labels: BoundedVec::new(),
                        stake: PROVER_STAKE,
                    },
                )
            })
            .collect()
    }

    pub fn key(&self, name: &str) -> &Keypair {
        self.keys.get(name).unwrap_or_else(|| panic!("no test key named {name}"))
    }

    pub fn account(&self, name: &str) -> AccountId {
        self.key(name).account()
    }

    pub fn prover_id(&self, name: &str) -> ProverId {
        self.account(name).into()
    }

    /// Adds a named key (for accounts created during a test).
    pub fn add_key(&mut self, name: &str) -> AccountId {
        let k = Keypair::insecure_from_label(name);
        let id = k.account();
        self.keys.insert(name.to_owned(), k);
        id
    }

    /// The name of the key for `account`, if the chain holds it.
    pub fn name_of(&self, account: &AccountId) -> Option<String> {
        self.keys.iter().find(|(_, k)| k.account() == *account).map(|(n, _)| n.clone())
    }

    /// A signed, verified transaction from `who`, with the next unused nonce.
    pub fn tx(&mut self, who: &str, body: TxBody) -> VerifiedTx {
        let key = self.key(who).clone();
        let account = key.account();
        let nonce = *self
            .next_nonce
            .entry(account)
            .or_insert_with(|| self.state.account(&account).map_or(0, |a| a.nonce.0));
        self.next_nonce.insert(account, nonce + 1);
        self.tx_with_nonce(&key, Nonce(nonce), body)
    }

    /// Forgets nonces handed out for transactions that were never applied.
    pub fn reset_nonces(&mut self) {
        self.next_nonce.clear();
    }

    /// A signed, verified transaction with an explicit nonce.
    pub fn tx_with_nonce(&self, key: &Keypair, nonce: Nonce, body: TxBody) -> VerifiedTx {
        Transaction { signer: key.account(), nonce, body }
            .sign(key, self.state.chain_id())
            .verify(self.state.chain_id())
            .expect("a freshly signed transaction verifies")
    }

    /// The context of the next block.
    pub fn next_context(&self) -> BlockContext {
        let height = Height(self.state.height().0 + 1);
        BlockContext {
            height,
            randomness: domain_hash(
                "provernet test randomness",
                &[&height.0.to_le_bytes(), &self.salt.to_le_bytes()],
            ),
            time: Millis(height.0 * self.state.params().block_time_ms),
        }
    }

    /// Applies a block and resynchronises nonces with what actually applied.
    pub fn block(&mut self, txs: Vec<VerifiedTx>) -> BlockOutput {
        let ctx = self.next_context();
        let out = apply_block(&mut self.state, &ctx, &txs).expect("test blocks are well formed");
        self.next_nonce.clear();
        out
    }

    /// Applies `n` empty blocks.
    pub fn idle(&mut self, n: u64) {
        for _ in 0..n {
            self.block(Vec::new());
        }
    }

    /// A job spec for `program` with small resources, `time` seconds and a generous max fee.
    pub fn spec(&self, program: ProgramId, time: u64) -> JobSpec {
        job_spec(program, time)
    }

    /// Submits a job from `who` and returns its id.
    pub fn submit(&mut self, who: &str, spec: JobSpec) -> (JobId, VerifiedTx) {
        let tx = self.tx(who, TxBody::SubmitJob(spec));
        (provernet_types::tx::job_id(&tx.tx().signer, tx.tx().nonce), tx)
    }

    /// `who`'s commitment to proof `files` for `attempt` of `job`.
    pub fn commit(&mut self, who: &str, job: JobId, attempt: u8, files: &ProofFiles) -> VerifiedTx {
        let commitment = result_commitment(&self.account(who), &job, files);
        self.tx(who, TxBody::CommitResult { job, attempt, commitment })
    }

    /// `who`'s reveal of proof `files` for `attempt` of `job`.
    pub fn reveal(&mut self, who: &str, job: JobId, attempt: u8, files: &ProofFiles) -> VerifiedTx {
        let outcome = AttemptOutcome::Proof(files.clone());
        self.tx(who, TxBody::PostResult { job, attempt, outcome, usage: usage() })
    }

    /// `who` proves `attempt` of `job` with `files`: the commitment in one block, the reveal in
    /// the next (for an attempt whose gate is open).
    pub fn prove(&mut self, who: &str, job: JobId, attempt: u8, files: &ProofFiles) {
        let commit = self.commit(who, job, attempt, files);
        let out = self.block(vec![commit]);
        assert!(out.receipts[0].result.is_ok(), "commit: {:?}", out.receipts[0].result);
        let reveal = self.reveal(who, job, attempt, files);
        let out = self.block(vec![reveal]);
        assert!(out.receipts[0].result.is_ok(), "reveal: {:?}", out.receipts[0].result);
    }

    fn roll(&mut self, pct: u8) -> bool {
        // xorshift64: deterministic, seeded by the test.
        self.agent_rng ^= self.agent_rng << 13;
        self.agent_rng ^= self.agent_rng >> 7;
        self.agent_rng ^= self.agent_rng << 17;
        (self.agent_rng % 100) < u64::from(pct)
    }

    pub fn seed_agent(&mut self, seed: u64) {
        self.agent_rng = seed | 1;
    }

    /// What the provers and verifiers the chain holds keys for would send now, given
    /// `behaviour`: accepts, results, votes and race proofs.
    pub fn agent_txs(&mut self, behaviour: Behaviour) -> Vec<VerifiedTx> {
        let h = self.state.height();
        let mut plan: Vec<(String, TxBody)> = Vec::new();
        let jobs: Vec<(JobId, crate::entities::Job)> =
            self.state.jobs().filter(|(_, j)| !j.settled).map(|(id, j)| (*id, j.clone())).collect();
        for (id, job) in jobs {
            for (i, a) in job.attempts.iter().enumerate() {
                let i = i as u8;
                let Some(name) = self.name_of(&a.prover.into()) else { continue };
                match a.state {
                    AttemptState::Assigned
                        if a.deadline >= h && self.roll(behaviour.accept_pct) =>
                    {
                        plan.push((name, TxBody::AcceptJob { job: id, attempt: i }));
                    }
                    AttemptState::Running => {
                        if !self.roll(behaviour.deliver_pct) {
                            continue;
                        }
                        if self.roll(behaviour.program_error_pct) {
                            let outcome = AttemptOutcome::ProgramError {
                                failure: ProgramFailure::Exit(3),
                                reason: BoundedString::try_new("panicked").expect("short"),
                            };
                            plan.push((
                                name,
                                TxBody::PostResult { job: id, attempt: i, outcome, usage: usage() },
                            ));
                        } else {
                            let valid = self.roll(behaviour.valid_pct);
                            if !valid {
                                self.bad_proofs.insert((id, i));
                            }
                            let commitment =
                                result_commitment(&a.prover.into(), &id, &proof_files(valid));
                            plan.push((
                                name,
                                TxBody::CommitResult { job: id, attempt: i, commitment },
                            ));
                        }
                    }
                    AttemptState::Committed => {
                        // Revealed once the gate is open for the block the transaction lands
                        // in, as a node does (it reads the finalized state).
                        let at = a.commitment.map_or(h, |(c, _)| c);
                        let next = Height(h.0 + 1);
                        if crate::apply::gate_open(&job, at, next) && next > at {
                            let valid = !self.bad_proofs.contains(&(id, i));
                            let outcome = AttemptOutcome::Proof(proof_files(valid));
                            plan.push((
                                name,
                                TxBody::PostResult { job: id, attempt: i, outcome, usage: usage() },
                            ));
                        }
                    }
                    AttemptState::Proven => {
                        let verdict = if self.bad_proofs.contains(&(id, i)) {
                            Verdict::Invalid
                        } else {
                            Verdict::Valid
                        };
                        for (m, v) in a.committee.iter().zip(a.votes.iter()) {
                            if v.is_some() || !self.roll(behaviour.vote_pct) {
                                continue;
                            }
                            if let Some(voter) = self.name_of(m) {
                                plan.push((voter, TxBody::Vote { job: id, attempt: i, verdict }));
                            }
                        }
                    }
                    _ => {}
                }
            }
            self.auction_txs(&mut plan, id, &job, behaviour);
            if job.status == JobStatus::Race && self.roll(behaviour.race_pct) {
                let barred: Vec<ProverId> = job.provers();
                let racer = self
                    .state
                    .provers()
                    .filter(|(p, pr)| pr.is_active() && !barred.contains(p))
                    .find_map(|(p, _)| self.name_of(&(*p).into()));
                if let Some(name) = racer {
                    let prover = self.account(&name);
                    let commitment = result_commitment(&prover, &id, &proof_files(true));
                    plan.push((name, TxBody::PostRaceProof { job: id, commitment }));
                }
            }
        }
        plan.into_iter().map(|(who, body)| self.tx(&who, body)).collect()
    }

    /// The agent's locks, sealed bids and reveals on an auctioned job: provers lock with
    /// `accept_pct`, bid with `accept_pct` (asking the quote plus a per-prover markup) and
    /// reveal with `deliver_pct`.
    fn auction_txs(
        &mut self,
        plan: &mut Vec<(String, TxBody)>,
        id: JobId,
        job: &crate::entities::Job,
        behaviour: Behaviour,
    ) {
        let Some(start) = job.round else { return };
        if job.status.is_final() || job.live_attempts() >= usize::from(job.redundancy) {
            return;
        }
        // The transactions land in the next block.
        let since = self.state.height().0 + 1 - start.0;
        let window = self.state.params().mechanism_params.bid_window_blocks;
        let tried = job.provers();
        let bidders: Vec<(ProverId, String)> = self
            .state
            .provers()
            .filter(|(p, pr)| pr.is_active() && !tried.contains(p))
            .filter_map(|(p, _)| self.name_of(&(*p).into()).map(|n| (*p, n)))
            .collect();
        for (i, (prover, name)) in bidders.into_iter().enumerate() {
            match job.mechanism {
                MechanismKind::ReverseDutch if self.roll(behaviour.accept_pct) => {
                    plan.push((name, TxBody::LockJob { job: id, round: start }));
                    return;
                }
                MechanismKind::LowestBid => {
                    let price = MicroCredits(job.fee_per_prover.0 + 1_000 * (i as u64 % 3));
                    let salt = domain_hash("test bid salt", &[&id.0, name.as_bytes()]);
                    let bid = job.bids.iter().find(|b| b.prover == prover);
                    if since < window && bid.is_none() && self.roll(behaviour.accept_pct) {
                        let commitment =
                            provernet_types::bid_commitment(&id, &prover.into(), price, &salt);
                        plan.push((name, TxBody::BidJob { job: id, commitment }));
                    } else if (window..2 * window).contains(&since)
                        && bid.is_some_and(|b| b.price.is_none())
                        && self.roll(behaviour.deliver_pct)
                    {
                        plan.push((name, TxBody::RevealBid { job: id, price, salt }));
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs blocks with the agent until every job is settled or `max_blocks` pass; returns
    /// the number of blocks run.
    pub fn run_agent(&mut self, behaviour: Behaviour, max_blocks: u64) -> u64 {
        for n in 0..max_blocks {
            if self.state.jobs().all(|(_, j)| j.settled) {
                return n;
            }
            let txs = self.agent_txs(behaviour);
            self.block(txs);
        }
        max_blocks
    }
}

/// The proof files of a result.
pub type ProofFiles = BoundedVec<NamedBlob, { provernet_types::limits::PROOF_FILES_MAX }>;

/// One proof file; invalid proofs differ only in their bytes.
pub fn proof_files(valid: bool) -> ProofFiles {
    let bytes: &[u8] = if valid { b"valid proof" } else { b"forged proof" };
    BoundedVec::try_from_vec(vec![NamedBlob {
        name: "proof".parse().expect("valid"),
        blob: blob_ref(bytes),
    }])
    .expect("one file")
}

pub fn usage() -> Usage {
    Usage { wall: Millis(1500), cpu: Millis(2900), peak_memory: Bytes(300 << 20) }
}
