//! A test chain with named keys and an automated prover agent, for tests and benchmarks.
//!
//! Enabled by the `testkit` feature. Keys come from [`Keypair::insecure_from_label`]: never use
//! them for anything but tests.

use crate::apply::{apply_block, genesis, BlockContext, BlockOutput};
use crate::entities::{AttemptState, Job};
use crate::params::{ChainParams, Genesis};
use crate::state::{State, StateKey, Table};
use provernet_node_core::{Core, Effect, Files, JobWork, Policy, RunEnd, RunKind, Step};
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

/// The contents of every blob the test programs and [`job_spec`] name, for benchmarks on a
/// real network, where validators admit only transactions whose blobs they hold.
pub const TEST_BLOBS: [&[u8]; 4] =
    [b"hash-chain-prover-exe", b"verifier-exe", b"groth16-sha256-prover-exe", b"public statement"];

/// A program whose proofs a committee of provers checks.
pub fn committee_program() -> ProgramManifest {
    let limits = provernet_types::VerifierLimits::DEFAULT;
    manifest("hash-chain", VerifierSpec::Program { blob: blob_ref(b"verifier-exe").into(), limits })
}

/// A program the validators verify natively.
pub fn builtin_program() -> ProgramManifest {
    manifest("groth16-sha256", VerifierSpec::Builtin(BuiltinVerifier::Groth16Bn254))
}

fn manifest(name: &str, verifier: VerifierSpec) -> ProgramManifest {
    ProgramManifest {
        name: name.parse().expect("valid name"),
        prover: blob_ref(format!("{name}-prover-exe").as_bytes()).into(),
        verifier,
        default_resources: small(),
        default_time_limit: Seconds(60),
        requires: BoundedVec::new(),
        inputs: BoundedVec::new(),
        // What [`proof_files`] and the agent's runs write.
        outputs: BoundedVec::try_from_vec(vec!["proof".parse().expect("valid")])
            .expect("one output"),
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

/// Faults the agent injects into what its nodes do, in percent. The decisions themselves (what
/// to accept, decline, lock, bid, race, reveal and vote) are the prover node's own
/// ([`provernet_node_core::Core`]); these only say how often the node's hands fail it.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// Chance an accept (or a lock, or a sealed bid) the core decides on is sent; else the
    /// node stays silent and the attempt is left to its deadline.
    pub accept_pct: u8,
    /// Chance a run ends at all (and a sealed bid is revealed); else the node posts nothing and
    /// misses the deadline.
    pub deliver_pct: u8,
    /// Chance a delivered proof is valid (else its files are forged).
    pub valid_pct: u8,
    /// Chance a run ends in a program error instead of a proof.
    pub program_error_pct: u8,
    /// Chance a vote the core decides on is cast (honestly) in a given block.
    pub vote_pct: u8,
    /// Chance a race the core joins yields a proof.
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
    /// What left the live state, as a store keeps it: records by key.
    pub archive: BTreeMap<StateKey, crate::archive::Archived>,
    /// Whether [`TestChain::block`] keeps archived records in `archive` (benchmarks that
    /// archive millions of jobs turn it off).
    pub keep_archive: bool,
    keys: BTreeMap<String, Keypair>,
    next_nonce: BTreeMap<AccountId, u64>,
    /// Mixed into block randomness so different test cases see different draws.
    pub salt: u64,
    /// The simulated nodes, by key name: every prover and validator the chain holds keys for.
    nodes: BTreeMap<String, AgentNode>,
    /// Transactions the nodes decided on that did not fit the last block.
    outbox: std::collections::VecDeque<(String, TxBody)>,
    agent_rng: u64,
}

/// One simulated node: the node's core and what its shell would keep.
#[derive(Debug)]
struct AgentNode {
    core: Core,
    journal: BTreeMap<(JobId, u8), Step>,
    /// Proof files kept for a later reveal, by attempt; a race's by job.
    proofs: BTreeMap<(JobId, u8), Files>,
    race_proofs: BTreeMap<JobId, Files>,
    /// Runs whose accept or lock was sent: they end at the agent's next turn, once it landed.
    runs: Vec<PendingRun>,
}

#[derive(Debug)]
struct PendingRun {
    job: JobWork,
    attempt: u8,
    /// Whether the attempt must first be seen running for this node (an accept or a lock).
    check: bool,
    /// A lock: reported with [`Core::lock_failed`] if it did not apply.
    lock: bool,
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
            archive: BTreeMap::new(),
            keep_archive: true,
            keys,
            next_nonce: BTreeMap::new(),
            salt: 0,
            nodes: BTreeMap::new(),
            outbox: Default::default(),
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
        for a in out.archived.iter().filter(|_| self.keep_archive) {
            let before = self.archive.insert(a.key, a.clone());
            assert!(before.is_none(), "{:?} archived twice", a.key);
        }
        self.next_nonce.clear();
        out
    }

    /// A job, live or archived.
    pub fn job(&self, id: &JobId) -> Option<Job> {
        if let Some(j) = self.state.job(id) {
            return Some(j.clone());
        }
        let a = self.archive.get(&StateKey { table: Table::Job, id: id.0 })?;
        Some(
            provernet_types::decode_exact(&a.record, "archived job").expect("archived job decodes"),
        )
    }

    /// Every job, live or archived, in id order.
    pub fn all_jobs(&self) -> Vec<(JobId, Job)> {
        let mut out: BTreeMap<JobId, Job> =
            self.state.jobs().map(|(id, j)| (*id, j.clone())).collect();
        for a in self.archive.values().filter(|a| a.key.table == Table::Job) {
            let j = provernet_types::decode_exact(&a.record, "archived job");
            out.insert(JobId(a.key.id), j.expect("archived job decodes"));
        }
        out.into_iter().collect()
    }

    /// A workflow, live or archived.
    pub fn workflow(&self, id: &provernet_types::WorkflowId) -> Option<crate::Workflow> {
        if let Some(w) = self.state.workflow(id) {
            return Some(w.clone());
        }
        let a = self.archive.get(&StateKey { table: Table::Workflow, id: id.0 })?;
        let w = provernet_types::decode_exact(&a.record, "archived workflow");
        Some(w.expect("archived workflow decodes"))
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

    /// Submits a workflow from `who` and returns its id.
    pub fn submit_workflow(
        &mut self,
        who: &str,
        spec: provernet_types::workflow::WorkflowSpec,
    ) -> (provernet_types::WorkflowId, VerifiedTx) {
        let tx = self.tx(who, TxBody::SubmitWorkflow(spec));
        (provernet_types::workflow::workflow_id(&tx.tx().signer, tx.tx().nonce), tx)
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

    pub fn seed_agent(&mut self, seed: u64) {
        self.agent_rng = seed | 1;
    }

    /// What the provers and validators the chain holds keys for would send now, given
    /// `behaviour`: each runs the prover node's core on its work listing, and the agent
    /// executes the effects (runs end at once, with the faults `behaviour` injects).
    pub fn agent_txs(&mut self, behaviour: Behaviour) -> Vec<VerifiedTx> {
        self.agent_txs_up_to(behaviour, usize::MAX)
    }

    /// [`Self::agent_txs`], at most `max` of them; the rest wait for the next call, as in a
    /// node's transaction queue.
    pub fn agent_txs_up_to(&mut self, behaviour: Behaviour, max: usize) -> Vec<VerifiedTx> {
        // What waited since the last block and would no longer apply (a vote on an attempt
        // already decided, say) is dropped, as a mempool would refuse it.
        let waiting = std::mem::take(&mut self.outbox);
        for (who, body) in waiting {
            let key = self.key(&who).clone();
            let nonce = self.state.account(&key.account()).map_or(Nonce(0), |a| a.nonce);
            let probe = self.tx_with_nonce(&key, nonce, body.clone());
            if crate::apply::check_tx(&self.state, &probe).is_ok() {
                self.outbox.push_back((who, body));
            }
        }
        let names: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, k)| {
                let id = k.account();
                self.state.prover(&id.into()).is_some()
                    || self.state.params().validators.contains(&id)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.agent_turn(&name, behaviour);
        }
        let n = self.outbox.len().min(max);
        let plan: Vec<(String, TxBody)> = self.outbox.drain(..n).collect();
        plan.into_iter().map(|(who, body)| self.tx(&who, body)).collect()
    }

    /// The node `name`'s turn: its pending runs end, then its core reads the work listing.
    fn agent_turn(&mut self, name: &str, behaviour: Behaviour) {
        let me = self.account(name);
        if !self.nodes.contains_key(name) {
            let capacity = self.state.prover(&me.into()).map_or(Resources::ZERO, |p| p.capacity);
            let index = self.nodes.len() as u32;
            let policy = Policy {
                me,
                seed: self.key(name).seed(),
                capacity,
                markets: true,
                // Asks differ a little from node to node, so sealed bids differ.
                ask_bps: 10_000 + 10 * (index % 3),
                block_time_ms: self.state.params().block_time_ms,
            };
            let node = AgentNode {
                core: Core::new(policy),
                journal: BTreeMap::new(),
                proofs: BTreeMap::new(),
                race_proofs: BTreeMap::new(),
                runs: Vec::new(),
            };
            self.nodes.insert(name.to_owned(), node);
        }
        let Some(mut node) = self.nodes.remove(name) else { return };
        let mut rng = Rng(self.agent_rng);
        let mut out = Vec::new();
        for run in std::mem::take(&mut node.runs) {
            let key = (run.job.id, run.attempt);
            let mine = !run.check
                || self.state.job(&run.job.id).is_some_and(|j| {
                    j.attempts
                        .get(usize::from(run.attempt))
                        .is_some_and(|a| a.prover == me.into() && a.state == AttemptState::Running)
                });
            if run.lock && !mine {
                node.core.lock_failed(&run.job, run.attempt);
                continue;
            }
            let end = run_end(&mut rng, behaviour);
            let effects = node.core.run_ended(&run.job, key.1, RunKind::Attempt, mine, end);
            out.extend(effects);
        }
        // What the ended runs bring (journal steps included) is done before the listing is read.
        self.execute(name, &mut node, &mut rng, behaviour, out);
        let work = crate::contract::work(&self.state, &me);
        let journal = &node.journal;
        let effects = node.core.on_work(&work, |j, a| journal.get(&(j, a)).copied());
        self.execute(name, &mut node, &mut rng, behaviour, effects);
        // Forget what settled jobs left behind, so the agent's books stay bounded.
        let state = &self.state;
        let live = |j: &JobId| state.job(j).is_some_and(|j| !j.settled);
        node.journal.retain(|(j, _), _| live(j));
        node.proofs.retain(|(j, _), _| live(j));
        node.race_proofs.retain(|j, _| live(j));
        self.agent_rng = rng.0;
        self.nodes.insert(name.to_owned(), node);
    }

    /// Executes a node's effects as its shell would, with `behaviour`'s faults.
    fn execute(
        &mut self,
        name: &str,
        node: &mut AgentNode,
        rng: &mut Rng,
        behaviour: Behaviour,
        effects: Vec<Effect>,
    ) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send(body) => {
                    let sent = match body {
                        TxBody::BidJob { .. } => rng.roll(behaviour.accept_pct),
                        TxBody::RevealBid { .. } => rng.roll(behaviour.deliver_pct),
                        _ => true,
                    };
                    if sent {
                        self.outbox.push_back((name.to_owned(), body));
                    }
                }
                Effect::SendAndLog { body, .. } => self.outbox.push_back((name.to_owned(), body)),
                Effect::AcceptAndRun { job, attempt, .. } => {
                    if rng.roll(behaviour.accept_pct) {
                        let body = TxBody::AcceptJob { job: job.id, attempt };
                        self.outbox.push_back((name.to_owned(), body));
                        node.runs.push(PendingRun { job, attempt, check: true, lock: false });
                    } else {
                        let end = RunEnd::NodeFailed;
                        queue.extend(node.core.run_ended(
                            &job,
                            attempt,
                            RunKind::Attempt,
                            false,
                            end,
                        ));
                    }
                }
                Effect::Run { job, attempt, .. } => {
                    node.runs.push(PendingRun { job, attempt, check: false, lock: false });
                }
                Effect::LockAndRun { job, attempt, round, .. } => {
                    if rng.roll(behaviour.accept_pct) {
                        let body = TxBody::LockJob { job: job.id, round };
                        self.outbox.push_back((name.to_owned(), body));
                        node.runs.push(PendingRun { job, attempt, check: true, lock: true });
                    } else {
                        node.core.lock_failed(&job, attempt);
                    }
                }
                Effect::Race { job, attempt, .. } => {
                    let end = if rng.roll(behaviour.race_pct) {
                        RunEnd::Proof { files: proof_files(true), usage: usage() }
                    } else {
                        RunEnd::NodeFailed
                    };
                    queue.extend(node.core.run_ended(&job, attempt, RunKind::Race, true, end));
                }
                Effect::Reveal { job, attempt } => {
                    let files = node
                        .proofs
                        .get(&(job.id, attempt))
                        .or_else(|| node.race_proofs.get(&job.id))
                        .cloned();
                    match files {
                        Some(files) => {
                            let outcome = AttemptOutcome::Proof(files);
                            let body = TxBody::PostResult {
                                job: job.id,
                                attempt,
                                outcome,
                                usage: usage(),
                            };
                            self.outbox.push_back((name.to_owned(), body));
                        }
                        None => node.core.reveal_failed((job.id, attempt)),
                    }
                }
                Effect::Vote { job, attempt } => {
                    if !rng.roll(behaviour.vote_pct) {
                        node.core.vote_failed((job.id, attempt));
                        continue;
                    }
                    // The agent's verifier: a proof is valid if its files are the valid ones.
                    let valid: Vec<_> =
                        proof_files(true).iter().map(|f| (f.name.clone(), f.blob)).collect();
                    let verdict = if job.proofs.get(usize::from(attempt)) == Some(&valid) {
                        Verdict::Valid
                    } else {
                        Verdict::Invalid
                    };
                    let body = TxBody::Vote { job: job.id, attempt, verdict };
                    self.outbox.push_back((name.to_owned(), body));
                }
                Effect::Journal { job, attempt, step } => {
                    node.journal.insert((job, attempt), step);
                }
                Effect::KeepProof { job, attempt, kind, files, .. } => match kind {
                    RunKind::Attempt => {
                        node.proofs.insert((job, attempt), files);
                    }
                    RunKind::Race => {
                        node.race_proofs.insert(job, files);
                    }
                },
                Effect::DropProof { job, attempt } => {
                    node.proofs.remove(&(job, attempt));
                }
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

/// A workflow node `name` running [`job_spec`] of `program` for `time` seconds, reading the
/// `proof` output of each node in `from` as input `in-<node>`.
pub fn workflow_node(
    name: &str,
    program: ProgramId,
    time: u64,
    from: &[&str],
) -> provernet_types::workflow::WorkflowNode {
    let wires = from
        .iter()
        .map(|n| provernet_types::workflow::Wire {
            input: format!("in-{n}").parse().expect("valid"),
            node: n.parse().expect("valid"),
            output: "proof".parse().expect("valid"),
        })
        .collect();
    provernet_types::workflow::WorkflowNode {
        name: name.parse().expect("valid"),
        job: job_spec(program, time),
        wires: BoundedVec::try_from_vec(wires).expect("few wires"),
    }
}

/// A workflow of `nodes` with a max fee far above their quotes.
pub fn workflow_spec(
    nodes: Vec<provernet_types::workflow::WorkflowNode>,
) -> provernet_types::workflow::WorkflowSpec {
    provernet_types::workflow::WorkflowSpec {
        nodes: BoundedVec::try_from_vec(nodes).expect("few nodes"),
        max_fee: MicroCredits(1_000 * MicroCredits::PER_CREDIT),
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

/// The agent's dice: xorshift64, deterministic, seeded by the test.
struct Rng(u64);

impl Rng {
    fn roll(&mut self, pct: u8) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 100) < u64::from(pct)
    }
}

/// How a run ends under `behaviour`'s faults.
fn run_end(rng: &mut Rng, behaviour: Behaviour) -> RunEnd {
    if !rng.roll(behaviour.deliver_pct) {
        return RunEnd::NodeFailed;
    }
    if rng.roll(behaviour.program_error_pct) {
        let outcome = AttemptOutcome::ProgramError {
            failure: ProgramFailure::Exit(3),
            reason: BoundedString::try_new("panicked").expect("short"),
        };
        return RunEnd::Claim { outcome, usage: usage() };
    }
    RunEnd::Proof { files: proof_files(rng.roll(behaviour.valid_pct)), usage: usage() }
}
