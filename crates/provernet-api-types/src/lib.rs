//! The wire contract of provernet's HTTP API: every request and response as Rust types.
//!
//! The API builds these, the SDK, the prover node and the CLI read them, and the OpenAPI
//! document is generated from them, so the four cannot drift apart. Conventions:
//! - ids and hashes are lowercase hex strings, typed by what they name ([`JobId`],
//!   [`ProverId`]…);
//! - credits are integer micro-credits in fields ending `_micro_credits`; resources also come
//!   in their human form (`"1.5"` cores, `"4GiB"`);
//! - every enum travels by an explicit name given here, never by its Rust debug text;
//! - heights are block numbers, `*_ms` are milliseconds and `*_s` seconds.
//!
//! Clients should ignore fields they do not know: the API may add fields, never rename them.

use provernet_types::{
    AccountId, BlobHash, BlockHash, Bytes, FileName, GpuCount, Height, JobId, Label, MicroCredits,
    MilliCores, Nonce, ProgramId, ProverId, Seconds, StateRoot, TxHash, WorkflowId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod error;

pub use error::{ApiErrorBody, ErrorCode, TxErrorView};

/// The largest page a list endpoint returns.
pub const PAGE_MAX: usize = 100;

/// Most tasks one `/work` answer lists.
pub const WORK_TASKS_MAX: usize = 256;

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub ok: bool,
    pub height: u64,
}

/// Transactions waiting in a validator's mempool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Mempool {
    pub txs: u64,
    pub bytes: u64,
}

/// The allocation mechanisms and their parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Mechanisms {
    pub enabled: Vec<Mechanism>,
    pub dutch_ramp_blocks: u64,
    pub bid_window_blocks: u64,
    pub collateral_bps: u32,
    pub collateral_burn_bps: u32,
    pub sqrt_lottery_top: u32,
}

/// `GET /v1/status`: where the chain is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub chain_id: String,
    pub height: u64,
    pub block_hash: BlockHash,
    pub state_root: StateRoot,
    pub time_ms: u64,
    /// The chain's target block time.
    pub block_time_ms: u64,
    /// What every fee-paying transaction costs (burned).
    pub tx_fee_micro_credits: MicroCredits,
    pub mempool: Mempool,
    pub mechanisms: Mechanisms,
    /// How this validator takes blobs; absent when it stores none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobLimits>,
}

/// How a validator takes blobs: one request up to `request_bytes_max`, in pieces (of
/// `piece_bytes`, see `POST /v1/blobs/{hash}/uploads`) above it, up to `blob_bytes_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobLimits {
    pub blob_bytes_max: u64,
    pub request_bytes_max: u64,
    pub piece_bytes: u64,
    pub account_quota_bytes: u64,
}

/// `GET /v1/supply`: where every credit is. The parts sum to the genesis supply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Supply {
    pub height: Height,
    pub supply_micro_credits: MicroCredits,
    pub balances_micro_credits: u128,
    pub stakes_micro_credits: u128,
    /// Held by jobs, and by workflows for their nodes not yet jobs.
    pub escrows_micro_credits: u128,
    pub treasury_micro_credits: MicroCredits,
    pub burned_micro_credits: MicroCredits,
    pub accounts: u64,
}

/// `GET /v1/accounts/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: AccountId,
    pub balance_micro_credits: MicroCredits,
    /// The next nonce the account signs with.
    pub nonce: Nonce,
    pub open_jobs: u32,
}

/// Resources in their exact and their human forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResourcesView {
    /// Cores, e.g. `"1.5"`.
    pub cores: String,
    pub millicores: MilliCores,
    /// Memory, e.g. `"4GiB"`.
    pub memory: String,
    pub memory_bytes: Bytes,
    pub gpus: GpuCount,
}

impl ResourcesView {
    pub fn resources(&self) -> provernet_types::Resources {
        provernet_types::Resources {
            cores: self.millicores,
            memory: self.memory_bytes,
            gpus: self.gpus,
        }
    }
}

impl From<provernet_types::Resources> for ResourcesView {
    fn from(r: provernet_types::Resources) -> Self {
        ResourcesView {
            cores: r.cores.to_string(),
            millicores: r.cores,
            memory: r.memory.to_string(),
            memory_bytes: r.memory,
            gpus: r.gpus,
        }
    }
}

/// A blob: its content hash and exact size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Blob {
    pub hash: BlobHash,
    pub size: Bytes,
}

impl Blob {
    pub fn blob_ref(&self) -> provernet_types::BlobRef {
        provernet_types::BlobRef { hash: self.hash, size: self.size }
    }
}

impl From<provernet_types::BlobRef> for Blob {
    fn from(b: provernet_types::BlobRef) -> Self {
        Blob { hash: b.hash, size: b.size }
    }
}

/// A named blob: a job input or a proof file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedBlob {
    pub name: FileName,
    pub hash: BlobHash,
    pub size: Bytes,
}

impl NamedBlob {
    pub fn blob_ref(&self) -> provernet_types::BlobRef {
        provernet_types::BlobRef { hash: self.hash, size: self.size }
    }
}

impl From<&provernet_types::NamedBlob> for NamedBlob {
    fn from(b: &provernet_types::NamedBlob) -> Self {
        NamedBlob { name: b.name.clone(), hash: b.blob.hash, size: b.blob.size }
    }
}

/// What a verifier program may use on each committee member's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifierLimits {
    pub millicores: MilliCores,
    pub memory_bytes: Bytes,
    pub time_limit_s: Seconds,
}

impl From<provernet_types::VerifierLimits> for VerifierLimits {
    fn from(l: provernet_types::VerifierLimits) -> Self {
        VerifierLimits { millicores: l.cores, memory_bytes: l.memory, time_limit_s: l.time_limit }
    }
}

impl From<VerifierLimits> for provernet_types::VerifierLimits {
    fn from(l: VerifierLimits) -> Self {
        provernet_types::VerifierLimits {
            cores: l.millicores,
            memory: l.memory_bytes,
            time_limit: l.time_limit_s,
        }
    }
}

/// A verifier the validators run natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum Builtin {
    #[serde(rename = "groth16-bn254")]
    Groth16Bn254,
    #[serde(rename = "winterfell-chain")]
    WinterfellChain,
    #[serde(rename = "plonky3-keccak")]
    Plonky3Keccak,
}

impl From<provernet_types::BuiltinVerifier> for Builtin {
    fn from(b: provernet_types::BuiltinVerifier) -> Self {
        match b {
            provernet_types::BuiltinVerifier::Groth16Bn254 => Builtin::Groth16Bn254,
            provernet_types::BuiltinVerifier::WinterfellChain => Builtin::WinterfellChain,
            provernet_types::BuiltinVerifier::Plonky3Keccak => Builtin::Plonky3Keccak,
        }
    }
}

impl From<Builtin> for provernet_types::BuiltinVerifier {
    fn from(b: Builtin) -> Self {
        match b {
            Builtin::Groth16Bn254 => provernet_types::BuiltinVerifier::Groth16Bn254,
            Builtin::WinterfellChain => provernet_types::BuiltinVerifier::WinterfellChain,
            Builtin::Plonky3Keccak => provernet_types::BuiltinVerifier::Plonky3Keccak,
        }
    }
}

/// One layer of a program's image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageLayer {
    pub blob: Blob,
    /// Bytes of file data it unpacks to (enforced while unpacking).
    pub unpacked_bytes: Bytes,
    pub entries: u32,
}

/// A program's code: a static executable, or an OCI image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Code {
    Executable {
        blob: Blob,
    },
    Image {
        /// `sha256:…` of the manifest: the digest users know the image by.
        digest: String,
        manifest: Blob,
        config: Blob,
        layers: Vec<ImageLayer>,
    },
}

impl Code {
    /// The chain's form of it; `None` if the digest is not `sha256:` and 64 hex digits.
    pub fn code(&self) -> Option<provernet_types::Code> {
        Some(match self {
            Code::Executable { blob } => provernet_types::Code::Executable(blob.blob_ref()),
            Code::Image { digest, manifest, config, layers } => {
                let hex_part = digest.strip_prefix("sha256:")?;
                if hex_part.len() != 64 {
                    return None;
                }
                let mut d = [0u8; 32];
                for (i, b) in d.iter_mut().enumerate() {
                    *b = u8::from_str_radix(hex_part.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                let layers = layers
                    .iter()
                    .map(|l| provernet_types::LayerRef {
                        blob: l.blob.blob_ref(),
                        unpacked: l.unpacked_bytes,
                        entries: l.entries,
                    })
                    .collect();
                provernet_types::Code::Image(Box::new(provernet_types::ImageRef {
                    digest: d,
                    manifest: manifest.blob_ref(),
                    config: config.blob_ref(),
                    layers: provernet_types::BoundedVec::try_from_vec(layers).ok()?,
                }))
            }
        })
    }
}

impl From<&provernet_types::Code> for Code {
    fn from(c: &provernet_types::Code) -> Self {
        match c {
            provernet_types::Code::Executable(b) => Code::Executable { blob: (*b).into() },
            provernet_types::Code::Image(i) => Code::Image {
                digest: i.digest_text(),
                manifest: i.manifest.into(),
                config: i.config.into(),
                layers: i
                    .layers
                    .iter()
                    .map(|l| ImageLayer {
                        blob: l.blob.into(),
                        unpacked_bytes: l.unpacked,
                        entries: l.entries,
                    })
                    .collect(),
            },
        }
    }
}

/// How a program's proofs are verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verifier {
    /// A verifier program run by a committee of provers.
    Program { code: Code, limits: VerifierLimits },
    /// A verifier the validators run natively.
    Builtin { name: Builtin },
}

/// `GET /v1/programs/{id-or-name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Program {
    pub id: ProgramId,
    pub name: FileName,
    pub owner: AccountId,
    pub registered_at: Height,
    pub prover: Code,
    pub verifier: Verifier,
    pub default_resources: ResourcesView,
    pub default_time_limit_s: Seconds,
    /// Labels a prover must carry to run it.
    pub requires: Vec<Label>,
    /// The input names every job must give.
    pub inputs: Vec<FileName>,
    /// The proof files every proof has (a workflow may wire them into other nodes).
    #[serde(default)]
    pub outputs: Vec<FileName>,
}

/// Where a prover stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ProverStatus {
    /// Registered and running its probe job; takes no other work.
    Probing,
    /// Takes work.
    Active,
    /// Leaving: takes no new work; its stake returns once it holds none.
    Exiting,
    /// Ejected for its faults; its stake returns once it holds no work.
    Ejected,
}

impl ProverStatus {
    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            ProverStatus::Probing => "Probing",
            ProverStatus::Active => "Active",
            ProverStatus::Exiting => "Exiting",
            ProverStatus::Ejected => "Ejected",
        }
    }
}

impl std::fmt::Display for ProverStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `GET /v1/provers/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Prover {
    pub id: ProverId,
    pub status: ProverStatus,
    pub active: bool,
    /// Until when an exiting prover's stake stays bonded.
    pub exiting_until: Option<Height>,
    pub capacity: ResourcesView,
    pub used: ResourcesView,
    pub labels: Vec<Label>,
    pub stake_micro_credits: MicroCredits,
    pub bonded_micro_credits: MicroCredits,
    /// Everything paid to the prover: rewards, verifier rewards, bounties.
    pub earned_micro_credits: MicroCredits,
    /// Everything taken from its stake: slashes and forfeited collateral.
    pub slashed_micro_credits: MicroCredits,
    pub faults: u32,
    pub completed: u64,
    pub registered_at: Height,
}

/// The state of one attempt at a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AttemptState {
    Assigned,
    Running,
    Committed,
    Proven,
    Verified,
    Rejected,
    MissedAccept,
    MissedDeadline,
    Declined,
    ProgramError,
    Cancelled,
    Superseded,
    Unverifiable,
    TimeLimit,
    Refuted,
    CannotVerify,
}

impl AttemptState {
    /// The name the API uses (its serde name).
    pub fn name(self) -> &'static str {
        match self {
            AttemptState::Assigned => "Assigned",
            AttemptState::Running => "Running",
            AttemptState::Committed => "Committed",
            AttemptState::Proven => "Proven",
            AttemptState::Verified => "Verified",
            AttemptState::Rejected => "Rejected",
            AttemptState::MissedAccept => "MissedAccept",
            AttemptState::MissedDeadline => "MissedDeadline",
            AttemptState::Declined => "Declined",
            AttemptState::ProgramError => "ProgramError",
            AttemptState::Cancelled => "Cancelled",
            AttemptState::Superseded => "Superseded",
            AttemptState::Unverifiable => "Unverifiable",
            AttemptState::TimeLimit => "TimeLimit",
            AttemptState::Refuted => "Refuted",
            AttemptState::CannotVerify => "CannotVerify",
        }
    }
}

impl std::fmt::Display for AttemptState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A committee member's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    CannotVerify,
}

/// What a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub peak_memory_bytes: Bytes,
}

/// One attempt at a job: one prover's try.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub prover: ProverId,
    pub state: AttemptState,
    /// Whether it joined the job's open race.
    pub race: bool,
    pub assigned_at: Height,
    pub deadline: Height,
    pub proof: Vec<NamedBlob>,
    pub usage: Usage,
    /// The exit code of a program that exited with one.
    pub exit_code: Option<u32>,
    /// How the program failed, as the prover claimed (`exit 3`, `no output`, `out of memory`…).
    pub failure: Option<String>,
    /// When the prover committed to its proof.
    pub committed_at: Option<Height>,
    /// When it reported its result or claim.
    pub reported_at: Option<Height>,
    /// The members drawn to verify the proof (validators for built-in verifiers).
    pub committee: Vec<AccountId>,
    /// Each member's vote, in committee order; `null` for one not cast.
    pub votes: Vec<Option<Verdict>>,
    pub verify_round: u8,
    pub price_micro_credits: MicroCredits,
    pub collateral_micro_credits: MicroCredits,
}

/// Where a job is. `Failed(…)` names the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum JobStatus {
    Pending,
    Assigned,
    Running,
    Proven,
    Race,
    Verified,
    #[serde(rename = "Failed(program)")]
    FailedProgram,
    #[serde(rename = "Failed(no proof)")]
    FailedNoProof,
    #[serde(rename = "Failed(time limit)")]
    FailedTimeLimit,
    #[serde(rename = "Failed(unverifiable)")]
    FailedUnverifiable,
    Cancelled,
    Expired,
}

impl JobStatus {
    pub const ALL: [JobStatus; 12] = [
        JobStatus::Pending,
        JobStatus::Assigned,
        JobStatus::Running,
        JobStatus::Proven,
        JobStatus::Race,
        JobStatus::Verified,
        JobStatus::FailedProgram,
        JobStatus::FailedNoProof,
        JobStatus::FailedTimeLimit,
        JobStatus::FailedUnverifiable,
        JobStatus::Cancelled,
        JobStatus::Expired,
    ];

    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "Pending",
            JobStatus::Assigned => "Assigned",
            JobStatus::Running => "Running",
            JobStatus::Proven => "Proven",
            JobStatus::Race => "Race",
            JobStatus::Verified => "Verified",
            JobStatus::FailedProgram => "Failed(program)",
            JobStatus::FailedNoProof => "Failed(no proof)",
            JobStatus::FailedTimeLimit => "Failed(time limit)",
            JobStatus::FailedUnverifiable => "Failed(unverifiable)",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Expired => "Expired",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobStatus::Pending
                | JobStatus::Assigned
                | JobStatus::Running
                | JobStatus::Proven
                | JobStatus::Race
        )
    }

    pub fn is_failed(self) -> bool {
        matches!(
            self,
            JobStatus::FailedProgram
                | JobStatus::FailedNoProof
                | JobStatus::FailedTimeLimit
                | JobStatus::FailedUnverifiable
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a job's provers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    Random,
    StakeLinear,
    StakeSqrt,
    ReverseDutch,
    LowestBid,
    OpenRace,
}

impl From<provernet_types::MechanismKind> for Mechanism {
    fn from(m: provernet_types::MechanismKind) -> Self {
        use provernet_types::MechanismKind as K;
        match m {
            K::RandomWithFallback => Mechanism::Random,
            K::StakeLinear => Mechanism::StakeLinear,
            K::StakeSqrt => Mechanism::StakeSqrt,
            K::ReverseDutch => Mechanism::ReverseDutch,
            K::LowestBid => Mechanism::LowestBid,
            K::OpenRace => Mechanism::OpenRace,
        }
    }
}

impl From<Mechanism> for provernet_types::MechanismKind {
    fn from(m: Mechanism) -> Self {
        use provernet_types::MechanismKind as K;
        match m {
            Mechanism::Random => K::RandomWithFallback,
            Mechanism::StakeLinear => K::StakeLinear,
            Mechanism::StakeSqrt => K::StakeSqrt,
            Mechanism::ReverseDutch => K::ReverseDutch,
            Mechanism::LowestBid => K::LowestBid,
            Mechanism::OpenRace => K::OpenRace,
        }
    }
}

/// `GET /v1/jobs/{id}`: a job, its attempts and its money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: JobId,
    pub requester: AccountId,
    pub program: ProgramId,
    pub status: JobStatus,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub inputs: Vec<NamedBlob>,
    pub resources: ResourcesView,
    pub time_limit_s: Seconds,
    pub redundancy: u8,
    pub mechanism: Mechanism,
    /// The chain's quote for one prover.
    pub fee_per_prover_micro_credits: MicroCredits,
    /// The most one attempt may be paid (auctions and races).
    pub max_fee_micro_credits: MicroCredits,
    pub race_price_micro_credits: MicroCredits,
    pub race_until: Option<Height>,
    pub auction_round_opened_at: Option<Height>,
    pub sealed_bids: u32,
    pub revealed_bids: u32,
    /// Forfeited collateral waiting for whoever decides the job.
    pub bounty_micro_credits: MicroCredits,
    pub escrow_micro_credits: MicroCredits,
    pub attempts: Vec<Attempt>,
    /// The attempt whose proof was accepted.
    pub winner: Option<u8>,
    pub submitted_at: Height,
    pub finished_at: Option<Height>,
    /// What the requester got back for attempts that failed.
    pub fallback_refund_micro_credits: MicroCredits,
    /// The workflow this job is a node of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<NodeRef>,
}

/// A workflow's node, by the workflow's id and the node's index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeRef {
    pub workflow: WorkflowId,
    pub node: u8,
}

/// Where a workflow's node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Waiting for the nodes it reads from to be Verified.
    Waiting,
    /// A job, not final yet (`job_status` says where).
    Job,
    /// Its job ended (`job_status` says how).
    Done,
    /// It will never run: a node it reads from failed, or the workflow was cancelled.
    Skipped,
}

/// Where a workflow is: running until every node is final, then verified (every node's job
/// Verified), failed (some node ended otherwise) or cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Running,
    Verified,
    Failed,
    Cancelled,
}

impl WorkflowStatus {
    pub fn name(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Verified => "verified",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }
}

/// One input of a node read from another node's proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowWire {
    pub input: FileName,
    pub node: FileName,
    pub output: FileName,
}

/// One node of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowNode {
    pub name: FileName,
    /// The id of the job the node is or will be.
    pub job: JobId,
    pub program: ProgramId,
    pub status: NodeStatus,
    /// The node's job's status, once it is a job.
    pub job_status: Option<JobStatus>,
    /// For a skipped node: the node whose failure skipped it (none: the workflow was
    /// cancelled).
    pub skipped_because: Option<FileName>,
    /// Its blob inputs.
    pub inputs: Vec<NamedBlob>,
    /// Its inputs read from other nodes' proofs.
    pub wires: Vec<WorkflowWire>,
    /// What the workflow still holds for it (until it becomes a job).
    pub escrow_micro_credits: MicroCredits,
}

/// `GET /v1/workflows/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workflow {
    pub id: WorkflowId,
    pub requester: AccountId,
    pub status: WorkflowStatus,
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The first node that ended other than Verified.
    pub failed_node: Option<FileName>,
    pub cancelled: bool,
    pub max_fee_micro_credits: MicroCredits,
    /// What the workflow still holds for nodes not yet jobs.
    pub escrow_micro_credits: MicroCredits,
    pub submitted_at: Height,
    pub finished_at: Option<Height>,
    /// In the order they were submitted.
    pub nodes: Vec<WorkflowNode>,
}

/// A workflow's events in one block, as `/v1/workflows/{id}/events` streams them (event
/// `workflow_events`, after a first event `workflow` carrying the whole [`Workflow`]): its own
/// and those of its nodes' jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowEvents {
    pub height: Height,
    pub events: Vec<Event>,
}

/// A page of a list, newest or lowest first as the endpoint says; a full page names the
/// cursor of the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs`.
pub type JobPage = Page<Job>;
/// `GET /v1/provers`.
pub type ProverPage = Page<Prover>;
/// `GET /v1/programs`.
pub type ProgramPage = Page<Program>;
/// `GET /v1/blocks`.
pub type BlockPage = Page<Block>;

/// What a prover (or validator) is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// An attempt assigned to it awaits its accept.
    Accept,
    /// An attempt it is running.
    Run,
    /// Its committed proof may now be revealed.
    RevealProof,
    /// A proof whose committee it sits on awaits its vote.
    Vote,
    /// An open race it may join.
    Race,
    /// A reverse-Dutch job it may lock at `price_micro_credits`.
    Lock,
    /// A lowest-bid round taking its sealed bid.
    Bid,
    /// A lowest-bid round awaiting its reveal.
    Reveal,
}

/// One task in `/work`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub kind: TaskKind,
    /// The attempt it concerns; for market tasks, the index a new attempt would get.
    pub attempt: u8,
    /// The height by which it must be done (0 for none).
    pub deadline: Height,
    /// Market tasks: the price a lock gets, or a race pays.
    pub price_micro_credits: Option<MicroCredits>,
    /// Auction tasks: when the auction round opened.
    pub round: Option<Height>,
    pub job: Job,
}

/// `GET /v1/provers/{id}/work`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Work {
    pub height: u64,
    pub prover: Option<Prover>,
    pub tasks: Vec<Task>,
}

/// `GET /v1/quote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub per_prover_micro_credits: MicroCredits,
    pub total_micro_credits: MicroCredits,
    pub redundancy: u8,
    pub time_limit_s: Seconds,
    pub tx_fee_micro_credits: MicroCredits,
}

/// Whether a mempool took a transaction as new.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MempoolAdmission {
    Added,
    /// The mempool already had it.
    Known,
}

/// `POST /v1/txs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    pub hash: TxHash,
    pub mempool: MempoolAdmission,
}

/// `POST /v1/txs/check`: the transaction would be admitted now (the ledger's rules, the fee,
/// the mempool's limits); nothing was admitted or stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxCheck {
    pub hash: TxHash,
    /// What the transaction pays the chain besides what it moves (0 for a prover's duties).
    pub tx_fee_micro_credits: MicroCredits,
    /// Blobs it names that this validator does not hold yet: upload them before submitting.
    pub missing_blobs: Vec<Blob>,
}

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    Pending,
    Applied,
    Failed,
}

/// `GET /v1/txs/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxStatus {
    pub hash: TxHash,
    pub status: TxState,
    pub height: Option<Height>,
    /// Why the ledger refused it (`failed` only).
    pub error: Option<TxErrorView>,
}

/// One transaction of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockTx {
    pub hash: TxHash,
    pub sender: AccountId,
    pub nonce: Nonce,
    /// The transaction's kind in snake case (`submit_job`, `transfer`, `vote`…).
    pub kind: String,
    /// `applied` or `failed` while the validator remembers the receipt, `pending` never.
    pub status: Option<TxState>,
    pub error: Option<TxErrorView>,
}

/// `GET /v1/blocks/{height}` and `GET /v1/blocks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Block {
    pub height: Height,
    pub hash: BlockHash,
    pub time_ms: u64,
    pub state_root: StateRoot,
    /// The block's randomness as hex (absent for the genesis block).
    pub randomness: Option<String>,
    pub genesis: bool,
    pub txs: Vec<TxHash>,
    pub transactions: Vec<BlockTx>,
}

/// `PUT /v1/blobs/{hash}`: whether the validator stored the bytes or already had them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoredAs {
    New,
    Existing,
}

/// `PUT /v1/blobs/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    pub hash: BlobHash,
    pub size: Bytes,
    pub stored: StoredAs,
}

/// `POST|GET /v1/blobs/{hash}/uploads`: where an upload in pieces stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadState {
    pub hash: BlobHash,
    pub size: Bytes,
    /// The size of every piece but the last.
    pub piece_bytes: u64,
    pub pieces: u64,
    /// Bytes of the pieces this validator already holds.
    pub received_bytes: u64,
    /// The pieces still missing, as `[first, end)` ranges of piece indices, in order.
    pub missing: Vec<[u64; 2]>,
    /// The blob is stored whole already: nothing more to send.
    pub stored: bool,
}

/// `PUT /v1/blobs/{hash}/uploads/{piece}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PiecesStored {
    pub hash: BlobHash,
    pub first: u64,
    pub pieces: u64,
}

/// A payment's purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    ProverReward,
    VerifierReward,
    ProgramErrorCharge,
    FallbackRefund,
    EscrowRefund,
    StakeReturned,
    Bounty,
}

/// Why a prover lost stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    MissedAccept,
    MissedDeadline,
    InvalidProof,
    MissedVote,
    FalseClaim,
}

/// Something a block did, as the ledger reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ProgramRegistered {
        program: ProgramId,
    },
    ProverRegistered {
        prover: ProverId,
    },
    ProverActivated {
        prover: ProverId,
    },
    ProverExiting {
        prover: ProverId,
        ejected: bool,
    },
    ProverRemoved {
        prover: ProverId,
    },
    JobSubmitted {
        job: JobId,
        requester: AccountId,
        fee_per_prover_micro_credits: MicroCredits,
    },
    AttemptAssigned {
        job: JobId,
        attempt: u8,
        prover: ProverId,
    },
    AttemptChanged {
        job: JobId,
        attempt: u8,
        state: AttemptState,
    },
    CommitteeDrawn {
        job: JobId,
        attempt: u8,
        members: Vec<AccountId>,
    },
    RaceOpened {
        job: JobId,
    },
    JobStatusChanged {
        job: JobId,
        status: JobStatus,
    },
    Slashed {
        prover: ProverId,
        job: JobId,
        fault: Fault,
        amount_micro_credits: MicroCredits,
    },
    CollateralForfeited {
        prover: ProverId,
        job: JobId,
        burned_micro_credits: MicroCredits,
        bounty_micro_credits: MicroCredits,
    },
    Paid {
        to: AccountId,
        job: Option<JobId>,
        kind: PaymentKind,
        amount_micro_credits: MicroCredits,
    },
    WorkflowSubmitted {
        workflow: WorkflowId,
        requester: AccountId,
    },
    /// A node became a job, its job ended, or it was skipped.
    WorkflowNodeChanged {
        workflow: WorkflowId,
        node: u8,
        status: NodeStatus,
        job_status: Option<JobStatus>,
        /// For a skipped node, the node (by index) whose failure skipped it.
        skipped_because: Option<u8>,
    },
    /// Every node of the workflow is final.
    WorkflowFinished {
        workflow: WorkflowId,
        status: WorkflowStatus,
        failed_node: Option<u8>,
    },
}

impl Event {
    /// The job the event concerns, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Event::JobSubmitted { job, .. }
            | Event::AttemptAssigned { job, .. }
            | Event::AttemptChanged { job, .. }
            | Event::CommitteeDrawn { job, .. }
            | Event::RaceOpened { job }
            | Event::JobStatusChanged { job, .. }
            | Event::Slashed { job, .. }
            | Event::CollateralForfeited { job, .. } => Some(*job),
            Event::Paid { job, .. } => *job,
            Event::ProgramRegistered { .. }
            | Event::ProverRegistered { .. }
            | Event::ProverActivated { .. }
            | Event::ProverExiting { .. }
            | Event::ProverRemoved { .. }
            | Event::WorkflowSubmitted { .. }
            | Event::WorkflowNodeChanged { .. }
            | Event::WorkflowFinished { .. } => None,
        }
    }

    /// The workflow the event concerns, if any (a node job's own events name only the job).
    pub fn workflow(&self) -> Option<WorkflowId> {
        match self {
            Event::WorkflowSubmitted { workflow, .. }
            | Event::WorkflowNodeChanged { workflow, .. }
            | Event::WorkflowFinished { workflow, .. } => Some(*workflow),
            _ => None,
        }
    }
}

/// A finalized block, as `/v1/events/blocks` streams it (event `block`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FinalizedBlock {
    pub height: Height,
    pub hash: BlockHash,
    pub time_ms: u64,
    pub state_root: StateRoot,
    pub txs: Vec<TxHash>,
    pub failed_txs: u32,
    pub events: Vec<Event>,
}

/// A job's events in one block, as `/v1/jobs/{id}/events` streams them (event `job_events`,
/// after a first event `job` carrying the whole [`Job`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobEvents {
    pub height: Height,
    pub events: Vec<Event>,
}

/// Query of the paged lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Continue after this item (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// At most this many items (1 to 100, default 100).
    pub limit: Option<usize>,
}

/// Query of `GET /v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Continue after this job id, or with `archive-<place>`: the previous page's
    /// `next_cursor`.
    pub cursor: Option<String>,
    /// At most this many jobs (1 to 100, default 100).
    pub limit: Option<usize>,
    /// Only this requester's jobs.
    pub requester: Option<String>,
    /// Only jobs with an attempt by this prover.
    pub prover: Option<String>,
    /// Only jobs in this state (a [`JobStatus`] name, or `Failed` for every failure).
    pub state: Option<String>,
    /// `id` (the default: live jobs by job id) or `newest`: the live jobs, latest submitted
    /// first, then settled jobs from the archive, latest archived first. The chain moves a job
    /// to its archive once it is settled, so only `newest` lists finished jobs. Each request
    /// reads at most 1000 archived records: a page may come back short, with a
    /// `next_cursor` to go on.
    pub order: Option<String>,
}

/// Query of `GET /v1/blocks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlockQuery {
    /// Only blocks below this height (the previous page's `next_cursor`); default: from the
    /// latest.
    pub before: Option<u64>,
    /// At most this many blocks (1 to 100, default 20).
    pub limit: Option<usize>,
}

/// Query of `GET /v1/quote`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    /// Cores, e.g. `1` or `1.5`.
    pub cores: String,
    /// Memory, e.g. `4GiB`.
    pub memory: String,
    /// GPUs (default 0).
    pub gpus: Option<String>,
    /// Time limit, e.g. `120s` or `10m`.
    pub time: String,
    /// Provers (1 to 3, default 1).
    pub redundancy: Option<u8>,
}
