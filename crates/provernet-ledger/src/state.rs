//! The ledger state, its change tracking and its commitment (the state root).
//!
//! # The state root
//!
//! Every record is a key-value entry: the key is `(table, 32-byte id)`, the value the record's
//! canonical encoding. The root is a two-level Merkle commitment over all entries:
//! - each entry's *leaf* is `H(key_hash || value)`, where `key_hash = H(table || id)`;
//! - entries fall into 2¹⁶ buckets by the first two bytes of their key hash; a bucket's hash is
//!   `H` over its `(key_hash, leaf)` pairs in key-hash order (all zeros when empty);
//! - the bucket hashes are the leaves of a complete binary Merkle tree of depth 16, where a
//!   node over two all-zero children is all zeros (a standard sparse-tree shortcut; finding a
//!   preimage of zero is infeasible).
//!
//! `H` is BLAKE3 keyed with a distinct key per level ([`provernet_types::Domain`]), so no
//! leaf, bucket or node can be confused for another. Binding follows from BLAKE3's collision resistance. Why
//! this shape: a block rewrites only the buckets it touched and their 16 ancestors, so the cost
//! per block is proportional to what the block changed, not to the size of the state (a flat
//! hash of everything would grow with every job ever submitted); and membership of any record
//! can be proven with its bucket and 16 sibling hashes, which light clients will need.

//!
//! # Persistent maps
//!
//! The maps and indexes are persistent (`imbl`'s B-trees, records behind `Arc`): cloning a
//! state shares every node, and a write copies only the path to the record it changes. A
//! validator keeps a state per notarized block and executes each block on a clone of its
//! parent's, so that costs what the block touches, not what the state holds.

use crate::archive::{Archived, Peaks};
use crate::entities::{Account, AttemptState, Job, JobStatus, Program, Prover, Workflow};
use crate::params::ChainParams;
use imbl::{OrdMap, OrdSet, Vector};
use provernet_types::workflow::node_job_id;
use provernet_types::Domain;
use provernet_types::{
    codec_struct, AccountId, CodecError, Decode, Encode, Height, JobId, MicroCredits, ProgramId,
    ProverId, StateRoot, WorkflowId,
};
use std::collections::BTreeSet;
use std::sync::Arc;

static KEY: Domain = Domain::new("provernet state key v1");
static LEAF: Domain = Domain::new("provernet state leaf v1");
static BUCKET: Domain = Domain::new("provernet state bucket v1");
static NODE: Domain = Domain::new("provernet state node v1");
static ROOT: Domain = Domain::new("provernet state root v1");

/// Chain-wide counters and parameters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Meta {
    /// Height of the last applied block (0 at genesis).
    pub height: Height,
    /// Credits created at genesis. Constant: every path conserves credits.
    pub supply: MicroCredits,
    /// Slashed stake not yet paid out; funds fallback refunds and verifier rewards on rejection.
    pub treasury: MicroCredits,
    /// Credits destroyed (rounding dust, the burned part of forfeited collateral).
    pub burned: MicroCredits,
    /// Jobs submitted so far: the next job's place in the first-come, first-served order.
    pub jobs_submitted: u64,
    pub params: ChainParams,
    /// The commitment to every record archived so far (see [`crate::archive`]).
    pub archive: Peaks,
}
codec_struct!(Meta { height, supply, treasury, burned, jobs_submitted, params, archive });

/// The tables of the state, as they appear in keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Table {
    Meta = 0,
    Account = 1,
    Program = 2,
    Prover = 3,
    Job = 4,
    Workflow = 5,
}

impl Table {
    pub fn from_tag(tag: u8) -> Option<Table> {
        Some(match tag {
            0 => Table::Meta,
            1 => Table::Account,
            2 => Table::Program,
            3 => Table::Prover,
            4 => Table::Job,
            5 => Table::Workflow,
            _ => return None,
        })
    }
}

/// The key of one record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct StateKey {
    pub table: Table,
    pub id: [u8; 32],
}

impl StateKey {
    pub const META: StateKey = StateKey { table: Table::Meta, id: [0; 32] };

    /// The key as stored: one tag byte then the id.
    pub fn to_bytes(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = self.table as u8;
        out[1..].copy_from_slice(&self.id);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<StateKey> {
        if bytes.len() != 33 {
            return None;
        }
        let table = Table::from_tag(bytes[0])?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[1..]);
        Some(StateKey { table, id })
    }

    fn hash(&self) -> [u8; 32] {
        KEY.hash(&[&self.to_bytes()])
    }
}

/// What a block changed: every record written (`Some`) or deleted (`None`), in key order.
pub type ChangeSet = Vec<(StateKey, Option<Vec<u8>>)>;

const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// The incremental two-level Merkle commitment described in the module docs.
#[derive(Clone)]
struct Commitment {
    leaves: OrdMap<[u8; 32], [u8; 32]>,
    /// Heap-ordered tree: node 1 is the top, bucket `b` is node `BUCKETS + b`.
    nodes: Vector<[u8; 32]>,
    dirty_buckets: BTreeSet<usize>,
}

impl std::fmt::Debug for Commitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Commitment({} leaves)", self.leaves.len())
    }
}

impl Commitment {
    fn new() -> Commitment {
        Commitment {
            leaves: OrdMap::new(),
            nodes: Commitment::empty_tree(),
            dirty_buckets: BTreeSet::new(),
        }
    }

    /// The all-zero tree, built once and shared: a persistent vector's clone is constant.
    fn empty_tree() -> Vector<[u8; 32]> {
        static EMPTY: std::sync::OnceLock<Vector<[u8; 32]>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(|| std::iter::repeat_n([0; 32], 2 * BUCKETS).collect()).clone()
    }

    fn bucket(key_hash: &[u8; 32]) -> usize {
        usize::from(u16::from_be_bytes([key_hash[0], key_hash[1]]))
    }

    fn set(&mut self, key: &StateKey, value: Option<&[u8]>) {
        let key_hash = key.hash();
        match value {
            Some(v) => {
                let leaf = LEAF.hash(&[&key_hash, v]);
                self.leaves.insert(key_hash, leaf);
            }
            None => {
                self.leaves.remove(&key_hash);
            }
        }
        self.dirty_buckets.insert(Self::bucket(&key_hash));
    }

    fn root(&mut self) -> StateRoot {
        let mut level: Vec<usize> = Vec::with_capacity(self.dirty_buckets.len());
        for &b in &self.dirty_buckets {
            let mut lo = [0u8; 32];
            let mut hi = [0xffu8; 32];
            lo[..2].copy_from_slice(&(b as u16).to_be_bytes());
            hi[..2].copy_from_slice(&(b as u16).to_be_bytes());
            let mut h = BUCKET.hasher();
            let mut any = false;
            for (k, leaf) in self.leaves.range(lo..=hi) {
                h.update(k);
                h.update(leaf);
                any = true;
            }
            self.nodes.set(BUCKETS + b, if any { *h.finalize().as_bytes() } else { [0; 32] });
            level.push((BUCKETS + b) / 2);
        }
        self.dirty_buckets.clear();
        // `dirty_buckets` is sorted, so each level's parents come out sorted; dedup is enough.
        level.dedup();
        while !level.is_empty() {
            for &n in &level {
                let (l, r) = (self.nodes[2 * n], self.nodes[2 * n + 1]);
                let node =
                    if l == [0; 32] && r == [0; 32] { [0; 32] } else { NODE.hash(&[&l, &r]) };
                self.nodes.set(n, node);
            }
            level.retain(|&n| n > 1);
            for n in level.iter_mut() {
                *n /= 2;
            }
            level.dedup();
        }
        StateRoot(ROOT.hash(&[&self.nodes[1]]))
    }
}

/// Why stored records could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("state record with key {key} is corrupt: {source}")]
    Corrupt { key: String, source: CodecError },
    #[error("state record key {0} is not a valid key")]
    BadKey(String),
    #[error("the state has no metadata record")]
    NoMeta,
}

/// The whole ledger state: the live records (everything not yet archived) and the indexes
/// derived from them.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) meta: Meta,
    pub(crate) accounts: OrdMap<AccountId, Account>,
    pub(crate) programs: OrdMap<ProgramId, Arc<Program>>,
    pub(crate) provers: OrdMap<ProverId, Arc<Prover>>,
    pub(crate) jobs: OrdMap<JobId, Arc<Job>>,
    pub(crate) workflows: OrdMap<WorkflowId, Arc<Workflow>>,
    // Indexes derived from the records; rebuilt on load, not committed.
    program_names: OrdMap<String, ProgramId>,
    pub(crate) job_wake: OrdSet<(Height, JobId)>,
    /// Jobs waiting for the chain to assign a prover, first come first served.
    pub(crate) queue: OrdSet<(u64, JobId)>,
    pub(crate) prover_wake: OrdSet<(Height, ProverId)>,
    /// Per account, the jobs where it has something to do: an attempt it holds that is
    /// assigned, running or committed, or a committee seat whose vote is due.
    tasks: OrdSet<(AccountId, JobId)>,
    /// Jobs whose market is open: an open race or an auction round.
    markets: OrdSet<JobId>,
    commitment: Commitment,
    dirty: BTreeSet<StateKey>,
    root: StateRoot,
}

/// The accounts with something to do on `job` (see [`State::tasks_of`]).
fn task_holders(job: &Job) -> BTreeSet<AccountId> {
    let mut out = BTreeSet::new();
    if job.settled {
        return out;
    }
    for a in job.attempts.iter() {
        match a.state {
            AttemptState::Assigned | AttemptState::Running | AttemptState::Committed => {
                out.insert(AccountId::from(a.prover));
            }
            AttemptState::Proven => {
                for (m, v) in a.committee.iter().zip(a.votes.iter()) {
                    if v.is_none() {
                        out.insert(*m);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `job` has an open market (what [`crate::market::opening`] may offer on).
fn in_market(job: &Job) -> bool {
    !job.status.is_final()
        && job.probe_for.is_none()
        && (job.status == JobStatus::Race || job.round.is_some())
}

impl State {
    pub(crate) fn empty(meta: Meta) -> State {
        let mut s = State {
            meta,
            accounts: OrdMap::new(),
            programs: OrdMap::new(),
            provers: OrdMap::new(),
            jobs: OrdMap::new(),
            workflows: OrdMap::new(),
            program_names: OrdMap::new(),
            job_wake: OrdSet::new(),
            queue: OrdSet::new(),
            prover_wake: OrdSet::new(),
            tasks: OrdSet::new(),
            markets: OrdSet::new(),
            commitment: Commitment::new(),
            dirty: BTreeSet::new(),
            root: StateRoot::default(),
        };
        s.dirty.insert(StateKey::META);
        s
    }

    pub fn height(&self) -> Height {
        self.meta.height
    }
    pub fn params(&self) -> &ChainParams {
        &self.meta.params
    }
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// The root as of the last committed block.
    pub fn root(&self) -> StateRoot {
        self.root
    }
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }
    pub fn program(&self, id: &ProgramId) -> Option<&Program> {
        self.programs.get(id).map(|p| &**p)
    }
    pub fn program_by_name(&self, name: &str) -> Option<(&ProgramId, &Program)> {
        let id = self.program_names.get(name)?;
        self.programs.get_key_value(id).map(|(id, p)| (id, &**p))
    }
    pub fn programs(&self) -> impl Iterator<Item = (&ProgramId, &Program)> {
        self.programs.iter().map(|(id, p)| (id, &**p))
    }
    pub fn prover(&self, id: &ProverId) -> Option<&Prover> {
        self.provers.get(id).map(|p| &**p)
    }
    pub fn provers(&self) -> impl Iterator<Item = (&ProverId, &Prover)> {
        self.provers.iter().map(|(id, p)| (id, &**p))
    }
    /// A live job: one not yet archived (see [`crate::archive`]).
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id).map(|j| &**j)
    }
    /// The live jobs, in id order.
    pub fn jobs(&self) -> impl Iterator<Item = (&JobId, &Job)> {
        self.jobs.iter().map(|(id, j)| (id, &**j))
    }
    /// A live workflow: one not yet archived.
    pub fn workflow(&self, id: &WorkflowId) -> Option<&Workflow> {
        self.workflows.get(id).map(|w| &**w)
    }
    pub fn workflows(&self) -> impl Iterator<Item = (&WorkflowId, &Workflow)> {
        self.workflows.iter().map(|(id, w)| (id, &**w))
    }
    /// Jobs waiting for the chain to assign them a prover, first come first served.
    pub fn queued_jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        self.queue.iter().map(|(_, id)| *id)
    }
    /// The jobs where `account` has something to do: an attempt it holds that is assigned,
    /// running or committed, or a committee seat whose vote is due. An index: its cost is the
    /// account's own tasks, whatever the size of the state.
    pub fn tasks_of(&self, account: &AccountId) -> impl Iterator<Item = JobId> + '_ {
        self.tasks
            .range((*account, JobId([0; 32]))..=(*account, JobId([0xff; 32])))
            .map(|(_, j)| *j)
    }
    /// Jobs with an open race or auction round, in id order.
    pub fn markets(&self) -> impl Iterator<Item = JobId> + '_ {
        self.markets.iter().copied()
    }

    /// All credits held anywhere: balances, stakes, escrows (jobs' and workflows'), the
    /// treasury and burned credits.
    /// Equal to `meta().supply` after every block.
    pub fn total_credits(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| u128::from(a.balance.0)).sum();
        let stakes: u128 = self.provers.values().map(|p| u128::from(p.stake.0)).sum();
        let escrows: u128 = self.jobs.values().map(|j| u128::from(j.escrow.0)).sum();
        let workflows: u128 = self.workflows.values().map(|w| u128::from(w.escrow.0)).sum();
        balances
            + stakes
            + escrows
            + workflows
            + u128::from(self.meta.treasury.0)
            + u128::from(self.meta.burned.0)
    }

    pub(crate) fn put_meta(&mut self) {
        self.dirty.insert(StateKey::META);
    }

    pub(crate) fn put_account(&mut self, id: AccountId, account: Account) {
        self.accounts.insert(id, account);
        self.dirty.insert(StateKey { table: Table::Account, id: id.0 });
    }

    pub(crate) fn put_program(&mut self, id: ProgramId, program: Program) {
        self.program_names.insert(program.manifest.name.as_str().to_owned(), id);
        self.programs.insert(id, Arc::new(program));
        self.dirty.insert(StateKey { table: Table::Program, id: id.0 });
    }

    pub(crate) fn put_prover(&mut self, id: ProverId, prover: Prover) {
        if let Some(old) = self.provers.get(&id) {
            if let crate::entities::ProverStatus::Exiting { until, .. } = old.status {
                self.prover_wake.remove(&(until, id));
            }
        }
        if let crate::entities::ProverStatus::Exiting { until, .. } = prover.status {
            self.prover_wake.insert((until, id));
        }
        self.provers.insert(id, Arc::new(prover));
        self.dirty.insert(StateKey { table: Table::Prover, id: id.0 });
    }

    pub(crate) fn remove_prover(&mut self, id: &ProverId) {
        if let Some(old) = self.provers.remove(id) {
            if let crate::entities::ProverStatus::Exiting { until, .. } = old.status {
                self.prover_wake.remove(&(until, *id));
            }
        }
        self.dirty.insert(StateKey { table: Table::Prover, id: id.0 });
    }

    /// Takes `job` out of every job index.
    fn unindex_job(&mut self, id: JobId, job: &Job) {
        if let Some(w) = job.wake {
            self.job_wake.remove(&(w, id));
        }
        self.queue.remove(&(job.seq, id));
        for a in task_holders(job) {
            self.tasks.remove(&(a, id));
        }
        self.markets.remove(&id);
    }

    pub(crate) fn put_job(&mut self, id: JobId, job: Job) {
        let fallbacks = self.meta.params.fallback_attempts_max;
        if let Some(old) = self.jobs.get(&id).cloned() {
            self.unindex_job(id, &old);
        }
        if let Some(w) = job.wake {
            self.job_wake.insert((w, id));
        }
        if job.waits_for_prover(fallbacks) {
            self.queue.insert((job.seq, id));
        }
        for a in task_holders(&job) {
            self.tasks.insert((a, id));
        }
        if in_market(&job) {
            self.markets.insert(id);
        }
        self.jobs.insert(id, Arc::new(job));
        self.dirty.insert(StateKey { table: Table::Job, id: id.0 });
    }

    pub(crate) fn put_workflow(&mut self, id: WorkflowId, workflow: Workflow) {
        self.workflows.insert(id, Arc::new(workflow));
        self.dirty.insert(StateKey { table: Table::Workflow, id: id.0 });
    }

    /// Moves what this block finished out of the live state into the archive: every job
    /// written in this block that is settled, unless it belongs to a workflow; and every
    /// workflow that is finished with each of its jobs settled, with those jobs. Records leave
    /// in key order (jobs, then workflows, each by id), so every replica appends the same
    /// leaves. Returns them for the store.
    pub(crate) fn archive_finished(&mut self) -> Vec<Archived> {
        let mut jobs: BTreeSet<JobId> = BTreeSet::new();
        let mut candidates: BTreeSet<WorkflowId> = BTreeSet::new();
        for key in &self.dirty {
            match key.table {
                Table::Job => {
                    let id = JobId(key.id);
                    let Some(job) = self.jobs.get(&id).filter(|j| j.settled) else { continue };
                    match job.workflow {
                        None => {
                            jobs.insert(id);
                        }
                        Some(node) => {
                            candidates.insert(node.workflow);
                        }
                    }
                }
                Table::Workflow => {
                    candidates.insert(WorkflowId(key.id));
                }
                _ => {}
            }
        }
        let mut workflows = BTreeSet::new();
        for wid in candidates {
            let Some(w) = self.workflows.get(&wid).filter(|w| w.is_finished()) else { continue };
            let started: Vec<JobId> = w
                .spec
                .nodes
                .iter()
                .map(|n| node_job_id(&wid, &n.name))
                .filter(|j| self.jobs.contains_key(j))
                .collect();
            if started.iter().all(|j| self.jobs.get(j).is_some_and(|j| j.settled)) {
                jobs.extend(started);
                workflows.insert(wid);
            }
        }
        let height = self.meta.height;
        let mut out = Vec::with_capacity(jobs.len() + workflows.len());
        for id in jobs {
            let Some(job) = self.jobs.remove(&id) else { continue };
            self.unindex_job(id, &job);
            // Settling moved every credit out: nothing leaves the supply with the record.
            assert!(
                job.escrow.0 == 0 && job.bounty.0 == 0,
                "job {id} is archived holding escrow {} and bounty {}",
                job.escrow,
                job.bounty
            );
            let key = StateKey { table: Table::Job, id: id.0 };
            out.push(self.archive_record(key, job.requester, height, job.encode()));
        }
        for id in workflows {
            let Some(w) = self.workflows.remove(&id) else { continue };
            assert!(w.escrow.0 == 0, "workflow {id} is archived holding escrow {}", w.escrow);
            let key = StateKey { table: Table::Workflow, id: id.0 };
            out.push(self.archive_record(key, w.requester, height, w.encode()));
        }
        if !out.is_empty() {
            self.put_meta();
        }
        out
    }

    fn archive_record(
        &mut self,
        key: StateKey,
        requester: AccountId,
        height: Height,
        record: Vec<u8>,
    ) -> Archived {
        let index = self.meta.archive.count;
        self.meta.archive.append(Peaks::leaf(&key, &record));
        self.dirty.insert(key);
        Archived { key, requester, height, index, record }
    }

    /// Folds the records changed since the last commit into the commitment and returns the new
    /// root with the changes, for the store to write in the same transaction as the block.
    pub fn commit(&mut self) -> (StateRoot, ChangeSet) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes = Vec::with_capacity(dirty.len());
        for key in dirty {
            let value = self.encode_record(&key);
            self.commitment.set(&key, value.as_deref());
            changes.push((key, value));
        }
        self.root = self.commitment.root();
        (self.root, changes)
    }

    fn encode_record(&self, key: &StateKey) -> Option<Vec<u8>> {
        match key.table {
            Table::Meta => Some(self.meta.encode()),
            Table::Account => self.accounts.get(&AccountId(key.id)).map(Encode::encode),
            Table::Program => self.programs.get(&ProgramId(key.id)).map(|p| p.encode()),
            Table::Prover => self.provers.get(&ProverId(key.id)).map(|p| p.encode()),
            Table::Job => self.jobs.get(&JobId(key.id)).map(|j| j.encode()),
            Table::Workflow => self.workflows.get(&WorkflowId(key.id)).map(|w| w.encode()),
        }
    }

    /// Rebuilds a state from stored records (as written from [`State::commit`]'s change sets),
    /// recomputing every index and the root.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<State, LoadError> {
        fn dec<T: Decode>(key: &StateKey, v: &[u8]) -> Result<T, LoadError> {
            provernet_types::decode_exact(v, "state record").map_err(|source| LoadError::Corrupt {
                key: provernet_types::ids::to_hex(&key.to_bytes()),
                source,
            })
        }
        let mut meta = None;
        let mut rest = Vec::new();
        for (k, v) in records {
            let key = StateKey::from_bytes(k)
                .ok_or_else(|| LoadError::BadKey(provernet_types::ids::to_hex(k)))?;
            if key.table == Table::Meta {
                meta = Some(dec::<Meta>(&key, v)?);
            } else {
                rest.push((key, v));
            }
        }
        let mut state = State::empty(meta.ok_or(LoadError::NoMeta)?);
        for (key, v) in rest {
            match key.table {
                Table::Meta => unreachable!("handled above"),
                Table::Account => state.put_account(AccountId(key.id), dec(&key, v)?),
                Table::Program => state.put_program(ProgramId(key.id), dec(&key, v)?),
                Table::Prover => state.put_prover(ProverId(key.id), dec(&key, v)?),
                Table::Job => state.put_job(JobId(key.id), dec(&key, v)?),
                Table::Workflow => state.put_workflow(WorkflowId(key.id), dec(&key, v)?),
            }
        }
        state.commit();
        Ok(state)
    }

    /// Checks every derived index and the root against a state rebuilt from the records
    /// alone: what a node that restarts would hold. For tests; the error names what differs.
    #[cfg(any(test, feature = "testkit"))]
    pub fn check_indexes(&self) -> Result<(), String> {
        let records = records(self);
        let fresh = State::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            .map_err(|e| e.to_string())?;
        let differs = |what: &str| Err(format!("the {what} index differs from a full scan"));
        if fresh.job_wake != self.job_wake {
            return differs("job wake-up");
        }
        if fresh.queue != self.queue {
            return differs("queue");
        }
        if fresh.prover_wake != self.prover_wake {
            return differs("prover wake-up");
        }
        if fresh.tasks != self.tasks {
            return differs("tasks");
        }
        if fresh.markets != self.markets {
            return differs("markets");
        }
        if fresh.program_names != self.program_names {
            return differs("program name");
        }
        if self.dirty.is_empty() && fresh.root != self.root {
            return Err(format!("root {} rebuilt as {}", self.root, fresh.root));
        }
        Ok(())
    }

    /// A chain id that fits its bound, for signing.
    pub fn chain_id(&self) -> &str {
        self.meta.params.chain_id.as_str()
    }
}

/// Every record of `state` as `(key bytes, value bytes)`, in key order: what a store holds.
pub fn records(state: &State) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut keys = vec![StateKey::META];
    keys.extend(state.accounts.keys().map(|id| StateKey { table: Table::Account, id: id.0 }));
    keys.extend(state.programs.keys().map(|id| StateKey { table: Table::Program, id: id.0 }));
    keys.extend(state.provers.keys().map(|id| StateKey { table: Table::Prover, id: id.0 }));
    keys.extend(state.jobs.keys().map(|id| StateKey { table: Table::Job, id: id.0 }));
    keys.extend(state.workflows.keys().map(|id| StateKey { table: Table::Workflow, id: id.0 }));
    keys.into_iter()
        .filter_map(|k| state.encode_record(&k).map(|v| (k.to_bytes().to_vec(), v)))
        .collect()
}
