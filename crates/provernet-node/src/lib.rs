//! The prover node: the daemon an operator runs to sell their machine's proving time.
//!
//! It registers the machine (capacity detected, or as configured) with a stake, then follows
//! the chain through a validator's API. Its work is derived from the chain's state alone
//! (`GET /v1/provers/{id}/work`), read again after every finalized block (the block event
//! stream wakes it; a timer covers a lost stream), so a restarted or reconnected node learns
//! its work again rather than replaying events:
//!
//! - **accept**: an attempt assigned to it. If the job fits in the capacity it has free, it
//!   accepts and starts at once (inputs fetched and hash-checked, the prover run in the sandbox
//!   with exactly the job's cores, memory and time limit); otherwise it declines.
//! - **run**: an attempt it accepted but is not running, after a restart. It runs it again if
//!   the deadline leaves the whole time limit, and otherwise abandons it (the chain then falls
//!   back to another node); a result it already posted is never posted twice.
//! - **vote**: a proof whose verification committee it sits on. It runs the program's verifier
//!   in the sandbox and votes.
//! - **race**: a job in its open race (an open-race job, or one whose fallbacks ran out). If it
//!   fits in the free capacity and the race leaves the whole time limit, it proves the job and
//!   posts the proof; the first accepted proof is paid.
//! - **lock** / **bid** / **reveal**: auctioned jobs. The node's ask is the chain's quote times
//!   `ask_bps`: it locks a reverse-Dutch job once the ramp reaches its ask (and the job fits
//!   now), places a sealed bid at its ask on a lowest-bid job, and reveals it in the reveal
//!   window. The bid's salt is derived from the node's key, the job and the round, so a node
//!   restarted between bid and reveal can still reveal. A won auction shows up as **run**.
//!
//! - **reveal_proof**: a proof it committed to whose gate is open (every attempt assigned with
//!   it has committed or ended, on the finalized state). It uploads the proof files and reveals
//!   them.
//!
//! A run ends in one of three ways. A proof: the node commits to its files (their hashes,
//! bound to its account: `result_commitment`) and keeps them until the reveal, so nobody can
//! copy them before committing. A failure of the program (an exit code, a signal, its memory,
//! no output or outputs that break the output rules, an executable that is neither ELF nor a
//! script): the node posts that claim at once, instead of going silent and being slashed for
//! the requester's program. The job's time limit: posted as its own claim. A failure of the
//! node itself (a blob it could not fetch, a sandbox that cannot enforce the limits) posts
//! nothing: the deadline decides, at the node's cost.
//! Several jobs run at once when they fit; the sum never exceeds the capacity.
//!
//! The node may know several validators' APIs (`api = ["…", "…"]` in `node.toml`): it uses one
//! at a time and moves on when that one cannot be reached, and downloads a blob from another
//! validator when the one in use lacks it.

mod builtin;
mod journal;
mod txq;
mod views;

pub use builtin::{run_builtin_verifier, verify_builtin};
pub use txq::{TxOutcome, TxQueue};

use anyhow::{anyhow, bail, Context, Result};
use journal::{Journal, Step};
pub use provernet_node_core::bid_salt;
use provernet_node_core::{Core, Effect, Files, RunEnd, RunKind};
use provernet_sandbox::plan::{ImageRun, RootFs};
use provernet_sandbox::{Helper, Limits, Outcome, Run, Sandbox, SandboxError, Termination};
use provernet_sdk::Client;
use provernet_types::limits::REASON_BYTES_MAX;
use provernet_types::{
    AttemptOutcome, BlobRef, BoundedString, BoundedVec, Bytes, FileName, GpuCount, JobId, Keypair,
    Label, MicroCredits, MilliCores, Millis, NamedBlob, ProgramFailure, Resources, TxBody, Usage,
    Verdict,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use views::{JobWork, ProgramWork, Work};

/// Everything a node needs, resolved (the CLI reads `node.toml` into this).
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Validators' APIs, e.g. `http://127.0.0.1:8080`, in the order they are tried.
    pub apis: Vec<String>,
    pub seed: [u8; 32],
    pub data_dir: PathBuf,
    /// What the node offers; [`detect_capacity`] by default.
    pub capacity: Resources,
    pub labels: Vec<Label>,
    pub stake: MicroCredits,
    pub helper: Helper,
    /// How often the work is read when no block event arrives.
    pub poll: Duration,
    /// Testing only: flip a byte of every proof before uploading it, to exercise the chain's
    /// rejection and slashing of invalid proofs.
    pub corrupt_proofs: bool,
    /// Whether to join races and auctions at all (assigned work is always taken).
    pub markets: bool,
    /// The node's ask in auctions, as basis points of the chain's quote (10,000: the quote).
    pub ask_bps: u32,
    /// Disk for unpacked image layers (`<data_dir>/images`), evicted least recently used.
    pub image_cache: Bytes,
}

/// The machine's capacity: every core, the memory less 1 GiB for the node itself, and the
/// NVIDIA GPUs present.
pub fn detect_capacity() -> Resources {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let memory = (mem_kib * 1024).saturating_sub(1 << 30);
    Resources {
        cores: MilliCores(cores * 1000),
        memory: Bytes(memory),
        gpus: GpuCount(gpu_count()),
    }
}

fn gpu_count() -> u16 {
    std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("nvidia")
                        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u16
        })
        .unwrap_or(0)
}

/// Runs the node until `shutdown` resolves.
pub async fn run(
    settings: NodeSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let apis: Vec<&str> = settings.apis.iter().map(String::as_str).collect();
    let client = Client::many(&apis)?;
    let status = loop {
        match client.status().await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!("waiting for a validator API ({}): {e}", settings.apis.join(", "));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let key = Keypair::from_seed(settings.seed);
    let me = key.account();
    tracing::info!(account = %me, chain = %status.chain_id, "prover node starting");
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    remove_partial_downloads(&settings.data_dir.join("blobs"));
    // Never degraded: a network job whose limits cannot be enforced is not run at all.
    let sandbox = Sandbox::new(settings.helper.clone(), settings.data_dir.join("scratch"))?;
    let journal = Journal::open(&settings.data_dir.join("journal.jsonl"))?;
    // Layers are unpacked by this binary re-executed as a confined helper (an unprivileged uid
    // of its own, fresh namespaces, no network).
    let images =
        provernet_image::Cache::open(&settings.data_dir.join("images"), settings.image_cache.0)?
            .confined(provernet_image::Confinement {
                exe: std::env::current_exe()?,
                uid: UNPACK_UID,
            });
    let txq = TxQueue::spawn(client.clone(), key.clone(), status.chain_id.clone());
    let key_account = key.account();
    let node = Arc::new(Node {
        client: client.clone(),
        key,
        chain_id: status.chain_id.clone(),
        txq,
        sandbox: Arc::new(sandbox),
        images,
        settings: settings.clone(),
        journal: Mutex::new(journal),
        downloads: Mutex::default(),
        preparing: Mutex::default(),
        inner: Mutex::new(Inner::default()),
        core: Mutex::new(Core::new(provernet_node_core::Policy {
            me: key_account,
            seed: settings.seed,
            capacity: settings.capacity,
            markets: settings.markets,
            ask_bps: settings.ask_bps,
            block_time_ms: status.block_time_ms.max(1),
        })),
    });
    node.ensure_registered().await?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let following = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(follow_blocks(client, wake.clone(), following.clone()));
    tokio::spawn(node.clone().prefetch_images());
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = node.clone().reconcile().await {
            tracing::warn!("reading work: {e:#}");
        }
        // Pushed: every finalized block wakes the node. It polls at `poll` only while the
        // block stream is down, and otherwise now and then as a safety net.
        let wait = if following.load(std::sync::atomic::Ordering::Relaxed) {
            settings.poll.max(SAFETY_POLL)
        } else {
            settings.poll
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("prover node stopping");
    Ok(())
}

/// The uid the node's confined unpacker runs as: unprivileged, and not the jobs' own.
const UNPACK_UID: u32 = 65533;

/// How often a node looks for image programs to prepare before their first job.
const PREFETCH_EVERY: Duration = Duration::from_secs(10);
/// Images prepared per look, so a burst of new programs does not crowd out the node's jobs.
const PREFETCH_PER_PASS: usize = 2;

impl Node {
    /// Prepares the images of programs this node could run (its capacity and labels fit their
    /// defaults) before their first job: downloads their blobs, checks and unpacks them, so a
    /// job, or a committee's vote with its deadline, does not wait for a large image. The newest
    /// programs first; an image bigger than a quarter of the cache, or one that would need
    /// others evicted, is left for when a job needs it.
    async fn prefetch_images(self: Arc<Self>) {
        loop {
            if let Err(e) = self.prefetch_pass().await {
                tracing::debug!("prefetching images: {e:#}");
            }
            tokio::time::sleep(PREFETCH_EVERY).await;
        }
    }

    async fn prefetch_pass(&self) -> Result<()> {
        let page: provernet_api_types::Page<provernet_api_types::Program> = self
            .client
            .get("/v1/programs?limit=100")
            .await?
            .unwrap_or(provernet_api_types::Page { items: vec![], next_cursor: None });
        let mut programs = page.items;
        programs.sort_by_key(|p| std::cmp::Reverse(p.registered_at));
        let mut done = 0;
        for p in programs {
            if done == PREFETCH_PER_PASS {
                break;
            }
            if self.lock().prefetched.contains(&p.id) {
                continue;
            }
            let fits = p.default_resources.resources().fits_in(&self.settings.capacity)
                && p.requires.iter().all(|l| self.settings.labels.contains(l));
            let Ok(work) = ProgramWork::try_from(&p) else { continue };
            let codes = std::iter::once(work.prover).chain(work.verifier.map(|(c, _)| c));
            // Done with the program unless a try failed for a reason that may pass (a blob not
            // yet copied here, no room now): it is looked at again on the next pass.
            let mut settled = true;
            for code in codes.filter(|_| fits) {
                let provernet_types::Code::Image(image) = &code else { continue };
                let unpacked: u64 = image.layers.iter().map(|l| l.unpacked.0).sum();
                if unpacked > self.settings.image_cache.0 / 4 {
                    continue;
                }
                if unpacked > self.images.room() {
                    settled = false;
                    continue;
                }
                match self.code(&code).await {
                    Ok(_) => {
                        done += 1;
                        tracing::info!(program = %p.name, image = %image.digest_text(), "image prepared ahead of its jobs");
                    }
                    Err(e) => {
                        settled &= is_image_fault(&e);
                        tracing::warn!(program = %p.name, "could not prepare its image: {e:#}");
                    }
                }
            }
            if settled {
                self.lock().prefetched.insert(p.id);
            }
        }
        Ok(())
    }
}

/// Whether preparing an image failed because of the image itself (its bytes, its layers, its
/// record), which every node would find the same, rather than this node's disk or cache.
fn is_image_fault(e: &anyhow::Error) -> bool {
    use provernet_image::{CacheError, ProgramImageError as P};
    match e.downcast_ref::<P>() {
        Some(P::Image(_) | P::Other(_)) => true,
        Some(P::Cache(CacheError::Unpack { source, .. })) => {
            !matches!(source, provernet_image::UnpackError::Io(_))
        }
        _ => false,
    }
}

/// How often a node whose block stream is up reads its work anyway.
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// A block stream that delivers nothing for this long is taken for dead and reopened.
const STREAM_SILENCE_MAX: Duration = Duration::from_secs(20);

/// Wakes the main loop on every finalized block; reconnects when the stream breaks or goes
/// silent. `following` says whether the stream is up.
pub(crate) async fn follow_blocks(
    client: Client,
    wake: Arc<tokio::sync::Notify>,
    following: Arc<std::sync::atomic::AtomicBool>,
) {
    use futures::StreamExt;
    use std::sync::atomic::Ordering;
    loop {
        match client.finalized_blocks().await {
            Ok(stream) => {
                tokio::pin!(stream);
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout(STREAM_SILENCE_MAX, stream.next()).await
                {
                    following.store(true, Ordering::Relaxed);
                    wake.notify_one();
                }
                tracing::info!("block event stream ended; polling and reconnecting");
            }
            Err(e) => tracing::warn!("block event stream: {e}; polling and reconnecting"),
        }
        following.store(false, Ordering::Relaxed);
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A transaction's job and attempt, for logs.
fn describe(body: &TxBody) -> String {
    match body {
        TxBody::AcceptJob { job, attempt }
        | TxBody::DeclineJob { job, attempt }
        | TxBody::PostResult { job, attempt, .. }
        | TxBody::Vote { job, attempt, .. }
        | TxBody::CommitResult { job, attempt, .. } => {
            format!("job {}, attempt {attempt}", short(*job))
        }
        TxBody::PostRaceProof { job, .. }
        | TxBody::LockJob { job, .. }
        | TxBody::BidJob { job, .. }
        | TxBody::RevealBid { job, .. }
        | TxBody::CancelJob { job } => format!("job {}", short(*job)),
        other => other.kind().to_owned(),
    }
}

/// What the shell keeps besides the core's book.
#[derive(Default, Debug)]
struct Inner {
    programs: BTreeMap<String, ProgramWork>,
    /// Programs whose images this node prepared ahead of any job (or found it could not).
    prefetched: std::collections::BTreeSet<provernet_types::ProgramId>,
    /// Proofs committed to and not yet revealed, by job (a node has at most one live attempt
    /// of a job at a time).
    committed: BTreeMap<JobId, Committed>,
}

/// A proof the node committed to: its files stay on disk until the reveal.
#[derive(Clone, Debug)]
struct Committed {
    dir: PathBuf,
    files: Files,
    usage: Usage,
}

/// What a run of the prover produced.
#[derive(Debug)]
enum RunResult {
    /// Proof files in the run's directory, hashed, not uploaded yet.
    Proof { files: Files, usage: Usage },
    /// A claim that the program failed, or ran out of the job's time limit.
    Claim(AttemptOutcome, Usage),
}

#[derive(Debug)]
struct Node {
    client: Client,
    key: Keypair,
    chain_id: String,
    txq: TxQueue,
    sandbox: Arc<Sandbox>,
    /// Unpacked layers and image roots, shared by every image program the node runs.
    images: provernet_image::Cache,
    settings: NodeSettings,
    journal: Mutex<Journal>,
    /// One download at a time per blob: the others wait for it and use its file.
    downloads: Mutex<BTreeMap<provernet_types::BlobHash, Arc<tokio::sync::Mutex<()>>>>,
    /// One preparation at a time per image (a job and the prefetch may want the same one):
    /// the others wait for it and use its root.
    preparing: Mutex<BTreeMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    inner: Mutex<Inner>,
    /// The node's decisions and its book of capacity and attempts.
    core: Mutex<Core>,
}

/// The attempt number in the directory of a race run (its attempt index is known only once the
/// race entry applies).
const RACE_DIR: u8 = u8::MAX;

/// Pauses between attempts to download a blob (about 15 s in all, well inside any deadline).
const DOWNLOAD_RETRIES_MS: [u64; 4] = [500, 1_500, 4_000, 8_000];

/// Removes `*.part` files a crash left behind in the blob cache.
fn remove_partial_downloads(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".part") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Node {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, job: JobId, attempt: u8, step: Step) {
        let mut j = self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = j.record(job, attempt, step) {
            tracing::error!("writing the journal: {e:#}");
        }
    }

    /// Registers the prover unless the chain knows it already.
    async fn ensure_registered(&self) -> Result<()> {
        let me = self.key.account();
        if self.client.prover(&provernet_types::ProverId::from(me)).await?.is_some() {
            tracing::info!(prover = %me, "already registered");
            return Ok(());
        }
        let balance =
            self.client.account(&me).await?.map_or(MicroCredits(0), |a| a.balance_micro_credits);
        if balance < self.settings.stake {
            bail!(
                "account {me} holds {} but the stake is {}\nhint: fund the account first (e.g. from the devnet faucet) or lower `stake` in node.toml",
                balance,
                self.settings.stake
            );
        }
        let labels = BoundedVec::try_from_vec(self.settings.labels.clone())
            .map_err(|_| anyhow!("too many labels"))?;
        let body = TxBody::RegisterProver {
            capacity: self.settings.capacity,
            labels,
            stake: self.settings.stake,
        };
        match self.txq.send(body).await {
            TxOutcome::Applied { height, .. } => {
                tracing::info!(prover = %me, height, capacity = ?self.settings.capacity, "registered");
                Ok(())
            }
            TxOutcome::Failed { reason } => bail!("registering the prover: {reason}"),
        }
    }

    async fn reconcile(self: Arc<Self>) -> Result<()> {
        let me = self.key.account();
        let work: Work = self.client.work(&me).await?;
        if work.prover.is_none() {
            tracing::warn!(prover = %me, "the chain does not list this prover (removed after an exit or ejection?)");
        }
        let effects = {
            let journal = self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.core().on_work(&work, |job, attempt| journal.last(job, attempt))
        };
        self.apply(effects);
        Ok(())
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Executes the core's effects: journal steps at once, in order; transactions and runs in
    /// tasks of their own, whose ends go back to the core.
    fn apply(self: &Arc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Journal { job, attempt, step } => {
                    if step == Step::Abandoned {
                        tracing::warn!(%job, attempt, "abandoning an attempt found running after a restart: too little time left to run it again");
                    }
                    self.record(job, attempt, step);
                }
                Effect::Send(body) => {
                    tracing::info!("sending {} ({})", body.kind(), describe(&body));
                    self.txq.send_detached(body);
                }
                Effect::AcceptAndRun { job, attempt, gpus } => {
                    tracing::info!(job = %job.id, attempt, "assigned: accepting and starting");
                    let node = self.clone();
                    tokio::spawn(async move {
                        // Accept and start together: the proof is not posted before the accept
                        // applied.
                        let accept = node.txq.send(TxBody::AcceptJob { job: job.id, attempt });
                        let run =
                            node.prove(&job, attempt, node.job_dir(job.id, attempt, "out"), gpus);
                        let (accepted, end) = tokio::join!(accept, run);
                        let accepted = match accepted {
                            TxOutcome::Applied { .. } => true,
                            TxOutcome::Failed { reason } => {
                                tracing::warn!(job = %job.id, attempt, "accept failed, result dropped: {reason}");
                                false
                            }
                        };
                        let effects =
                            node.core().run_ended(&job, attempt, RunKind::Attempt, accepted, end);
                        node.apply(effects);
                    });
                }
                Effect::Run { job, attempt, gpus } => {
                    tracing::info!(job = %job.id, attempt, "resuming an accepted attempt after a restart (or running one won at auction)");
                    let node = self.clone();
                    tokio::spawn(async move {
                        let end = node
                            .prove(&job, attempt, node.job_dir(job.id, attempt, "out"), gpus)
                            .await;
                        // The chain lists the attempt as running: its accept applied.
                        let effects =
                            node.core().run_ended(&job, attempt, RunKind::Attempt, true, end);
                        node.apply(effects);
                    });
                }
                Effect::LockAndRun { job, attempt, round, gpus } => {
                    tracing::info!(job = %job.id, attempt, "locking the job at the Dutch price");
                    let node = self.clone();
                    tokio::spawn(async move {
                        match node.txq.send(TxBody::LockJob { job: job.id, round }).await {
                            TxOutcome::Applied { .. } => {
                                let dir = node.job_dir(job.id, attempt, "out");
                                let end = node.prove(&job, attempt, dir, gpus).await;
                                let effects = node.core().run_ended(
                                    &job,
                                    attempt,
                                    RunKind::Attempt,
                                    true,
                                    end,
                                );
                                node.apply(effects);
                            }
                            TxOutcome::Failed { reason } => {
                                tracing::info!(job = %job.id, "lock not taken: {reason}");
                                node.core().lock_failed(&job, attempt);
                            }
                        }
                    });
                }
                Effect::Race { job, attempt, gpus } => {
                    tracing::info!(job = %job.id, "joining the job's open race");
                    let node = self.clone();
                    tokio::spawn(async move {
                        let dir = node.job_dir(job.id, RACE_DIR, "race");
                        let end = node.prove(&job, attempt, dir, gpus).await;
                        if let RunEnd::Claim { outcome, .. } = &end {
                            tracing::info!(job = %job.id, ?outcome, "the program failed in the race");
                        }
                        let effects =
                            node.core().run_ended(&job, attempt, RunKind::Race, true, end);
                        node.apply(effects);
                    });
                }
                Effect::KeepProof { job, attempt, kind, files, usage } => {
                    let dir = match kind {
                        RunKind::Race => self.job_dir(job, RACE_DIR, "race"),
                        RunKind::Attempt => self.job_dir(job, attempt, "out"),
                    };
                    self.lock().committed.insert(job, Committed { dir, files, usage });
                }
                Effect::DropProof { job, attempt } => {
                    let dir = self.job_dir(job, attempt, "out");
                    tokio::spawn(async move {
                        let _ = tokio::fs::remove_dir_all(&dir).await;
                    });
                }
                Effect::SendAndLog { body, what } => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        let job = describe(&body);
                        match node.txq.send(body).await {
                            TxOutcome::Applied { height, .. } => {
                                tracing::info!(height, "sent the {what} ({job})")
                            }
                            TxOutcome::Failed { reason } => {
                                tracing::warn!("sending the {what} ({job}) failed: {reason}")
                            }
                        }
                    });
                }
                Effect::Reveal { job, attempt } => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        match node.reveal(&job, attempt).await {
                            Ok(height) => {
                                tracing::info!(job = %job.id, attempt, height, "revealed the proof");
                                let done = node.lock().committed.remove(&job.id);
                                if let Some(c) = done {
                                    let _ = tokio::fs::remove_dir_all(&c.dir).await;
                                }
                                node.record(job.id, attempt, Step::Posted);
                            }
                            Err(e) => {
                                // Still listed while the reveal window lasts: the next reading
                                // retries.
                                tracing::warn!(job = %job.id, attempt, "revealing the proof: {e:#}");
                                node.core().reveal_failed((job.id, attempt));
                            }
                        }
                    });
                }
                Effect::Vote { job, attempt } => {
                    let node = self.clone();
                    tokio::spawn(async move { node.vote(job, attempt).await });
                }
            }
        }
    }

    async fn reveal(&self, job: &JobWork, attempt: u8) -> Result<u64> {
        let committed = self.lock().committed.get(&job.id).cloned();
        let committed = match committed {
            Some(c) => c,
            None => {
                // After a restart: the files are still where the run left them.
                let mut found = None;
                for (a, what) in [(attempt, "out"), (RACE_DIR, "race")] {
                    let dir = self.job_dir(job.id, a, what);
                    if let Ok(files) = hash_outputs(&dir).await {
                        found = Some(Committed { dir, files, usage: Usage::default() });
                        break;
                    }
                }
                found.ok_or_else(|| anyhow!("the committed proof files are gone"))?
            }
        };
        for f in committed.files.iter() {
            let bytes = tokio::fs::read(committed.dir.join(f.name.as_str())).await?;
            let blob = self.client.upload(&self.key, &self.chain_id, bytes).await?;
            if blob != f.blob {
                bail!("proof file {} changed since the commitment", f.name);
            }
        }
        let outcome = AttemptOutcome::Proof(committed.files.clone());
        let body = TxBody::PostResult { job: job.id, attempt, outcome, usage: committed.usage };
        match self.txq.send(body).await {
            TxOutcome::Applied { height, .. } => Ok(height),
            TxOutcome::Failed { reason } => bail!("{reason}"),
        }
    }

    /// A blob as a local file, fetched from a validator and checked piece by piece. Concurrent
    /// requests for one blob share one download, which writes `<hash>.part` and renames it
    /// into place once whole, so a file in the cache is always whole.
    async fn blob_file(&self, blob: &BlobRef) -> Result<PathBuf> {
        let dir = self.settings.data_dir.join("blobs");
        let path = dir.join(blob.hash.to_string());
        let whole = |p: &PathBuf| {
            let p = p.clone();
            async move { tokio::fs::metadata(&p).await.is_ok_and(|m| m.len() == blob.size.0) }
        };
        if whole(&path).await {
            return Ok(path);
        }
        let lock = {
            let mut g = self.downloads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            g.entry(blob.hash).or_default().clone()
        };
        let _one = lock.lock().await;
        // A validator that dies mid-download, or one still copying the blob from another,
        // costs a retry (on the next validator), not the attempt.
        let mut result = self.download_to(blob, &dir, &path, whole(&path).await).await;
        for wait_ms in DOWNLOAD_RETRIES_MS {
            if result.is_ok() {
                break;
            }
            if let Err(e) = &result {
                tracing::warn!(blob = %blob.hash, "downloading a blob: {e:#}; retrying in {wait_ms} ms");
            }
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            result = self.download_to(blob, &dir, &path, whole(&path).await).await;
        }
        self.downloads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&blob.hash);
        result
    }

    async fn download_to(
        &self,
        blob: &BlobRef,
        dir: &std::path::Path,
        path: &std::path::Path,
        already: bool,
    ) -> Result<PathBuf> {
        if already {
            return Ok(path.to_owned());
        }
        tokio::fs::create_dir_all(dir).await?;
        // Streamed to `<path>.part` a checked piece at a time, and resumed from there by the
        // next try: a blob of gigabytes is never held in memory, and a download that breaks
        // costs only what was not yet fetched.
        let done = self
            .client
            .download_file(&blob.hash, path, &provernet_sdk::Transfer::default())
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "no validator has blob {} (asked {})",
                    blob.hash,
                    self.settings.apis.join(", ")
                )
            })?;
        if done.size != blob.size.0 {
            let _ = tokio::fs::remove_file(path).await;
            bail!(
                "blob {} is {} bytes, not the {} the job declares",
                blob.hash,
                done.size,
                blob.size
            );
        }
        Ok(path.to_owned())
    }

    async fn program(&self, id: &provernet_types::ProgramId) -> Result<ProgramWork> {
        let key = id.to_string();
        if let Some(p) = self.lock().programs.get(&key) {
            return Ok(p.clone());
        }
        let p = ProgramWork::try_from(
            &self.client.program(&key).await?.ok_or_else(|| anyhow!("unknown program {key}"))?,
        )
        .map_err(|e| anyhow!(e))?;
        self.lock().programs.insert(key, p.clone());
        Ok(p)
    }

    async fn executable(&self, blob: &BlobRef) -> Result<PathBuf> {
        let path = self.blob_file(blob).await?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).await?;
        Ok(path)
    }

    /// A program's code, ready to run: an executable's file (shown the host's `/usr` until the
    /// built-in programs ship as images), or an image checked against the program's record,
    /// unpacked and composed into a root that stays pinned while the returned guard lives.
    async fn code(
        &self,
        code: &provernet_types::Code,
    ) -> Result<(PathBuf, RootFs, Option<provernet_image::Prepared>)> {
        use provernet_types::Code;
        let image = match code {
            // A network program sees only its own files: an executable runs alone (one that
            // needs a loader or libraries fails as its own program's error, on every node).
            Code::Executable(b) => return Ok((self.executable(b).await?, RootFs::Empty, None)),
            Code::Image(i) => (**i).clone(),
        };
        let mut files = BTreeMap::new();
        for b in code.blobs() {
            files.insert(b.hash, self.blob_file(&b).await?);
        }
        let cache = self.images.clone();
        let layout = self
            .settings
            .data_dir
            .join("images/layouts")
            .join(image.digest_text().replace(':', "-"));
        let digest = image.digest;
        let lock = {
            let mut g = self.preparing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            g.entry(digest).or_default().clone()
        };
        let one = lock.lock().await;
        let prepared = tokio::task::spawn_blocking(move || {
            provernet_image::prepare(&cache, &image, |b| files[&b.hash].clone(), &layout)
        })
        .await?;
        drop(one);
        drop(lock);
        // The entry goes once nobody waits on it (as the downloads' do).
        {
            let mut g = self.preparing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if g.get(&digest).is_some_and(|l| Arc::strong_count(l) == 1) {
                g.remove(&digest);
            }
        }
        let prepared = prepared?;
        let run = ImageRun {
            root: prepared.root.path.clone(),
            argv: prepared.run.argv(),
            env: prepared.run.env_pairs(),
            workdir: prepared.run.workdir(),
        };
        Ok((PathBuf::new(), RootFs::Image(run), Some(prepared)))
    }

    /// The job's inputs as local files, with their declared sizes.
    async fn input_files(&self, job: &JobWork) -> Result<Vec<(FileName, PathBuf, Bytes)>> {
        let mut out = Vec::new();
        for (name, blob) in &job.inputs {
            out.push((name.clone(), self.blob_file(blob).await?, blob.size));
        }
        Ok(out)
    }

    async fn run_sandboxed(&self, run: Run) -> Result<Outcome> {
        let sandbox = self.sandbox.clone();
        let out = tokio::task::spawn_blocking(move || sandbox.run(&run)).await??;
        Ok(out)
    }

    fn job_dir(&self, job: JobId, attempt: u8, what: &str) -> PathBuf {
        self.settings.data_dir.join("jobs").join(format!("{job}-{attempt}-{what}"))
    }

    /// Runs the prover, leaving its outputs in `out_dir`: what to commit or claim, or that the
    /// node itself failed.
    async fn prove(&self, job: &JobWork, attempt: u8, out_dir: PathBuf, gpus: Vec<u32>) -> RunEnd {
        self.record(job.id, attempt, Step::Started);
        match self.prove_inner(job, attempt, out_dir, gpus).await {
            Ok(RunResult::Proof { files, usage, .. }) => RunEnd::Proof { files, usage },
            Ok(RunResult::Claim(outcome, usage)) => RunEnd::Claim { outcome, usage },
            Err(e) => {
                tracing::error!(job = %job.id, attempt, "could not run the job: {e:#}");
                RunEnd::NodeFailed
            }
        }
    }

    async fn prove_inner(
        &self,
        job: &JobWork,
        attempt: u8,
        out_dir: PathBuf,
        gpus: Vec<u32>,
    ) -> Result<RunResult> {
        let program = self.program(&job.program).await?;
        let (exe, rootfs, _image) = match self.code(&program.prover).await {
            Ok(c) => c,
            // An image that does not match its program's record, or that a node must refuse
            // to unpack, is the program's failure on every node: claim it.
            Err(e) if is_image_fault(&e) => {
                let reason = reason(&format!("the program's image: {e:#}"))?;
                let failure = ProgramFailure::NotExecutable;
                return Ok(RunResult::Claim(
                    AttemptOutcome::ProgramError { failure, reason },
                    Usage::default(),
                ));
            }
            Err(e) => return Err(e),
        };
        let inputs = self.input_files(job).await?;
        let _ = tokio::fs::remove_dir_all(&out_dir).await;
        let wall = Duration::from_secs(job.time_limit.0);
        let run = Run {
            job_id: format!("{}-{attempt}", short(job.id)),
            program: exe,
            args: vec![],
            inputs,
            proof: vec![],
            out_dir: out_dir.clone(),
            limits: Limits::new(job.resources.cores, job.resources.memory, wall),
            gpus,
            rootfs,
        };
        let o = match self.run_sandboxed(run).await {
            Ok(o) => o,
            Err(e)
                if matches!(
                    e.downcast_ref(),
                    Some(SandboxError::NotElf(_) | SandboxError::NoEntrypoint)
                ) =>
            {
                let reason = reason(&format!("{e}"))?;
                let failure = ProgramFailure::NotExecutable;
                return Ok(RunResult::Claim(
                    AttemptOutcome::ProgramError { failure, reason },
                    Usage::default(),
                ));
            }
            Err(e) => return Err(e),
        };
        let usage = Usage {
            wall: Millis(o.wall.as_millis() as u64),
            cpu: Millis(o.cpu.map_or(0, |c| c.as_millis() as u64)),
            peak_memory: o.peak_memory.unwrap_or(Bytes(0)),
        };
        tracing::info!(
            job = %job.id, attempt, program = %program.name, termination = ?o.termination,
            wall_ms = usage.wall.0, "prover finished"
        );
        let tail: String =
            o.stderr_tail.chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
        // The output rules are the ledger's own (`check_outputs`): a program that breaks them
        // fails, whatever its exit code said.
        let rules = if o.output_too_large {
            Err(format!(
                "its output passed the {} cap",
                Limits::new(job.resources.cores, job.resources.memory, wall).out_max
            ))
        } else if let Some(bad) = o.unexpected_outputs.first() {
            Err(provernet_types::OutputRuleError::NotAFile(bad.clone()).to_string())
        } else {
            provernet_types::check_outputs(o.outputs.iter().map(|(n, b)| (n, *b)))
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    match program.outputs.iter().find(|d| !o.outputs.iter().any(|(n, _)| n == *d)) {
                        // The ledger refuses a proof without them: a claim, not a proof the
                        // node could never reveal.
                        Some(d) => {
                            Err(format!("it did not write `{d}`, an output its program declares"))
                        }
                        None => Ok(()),
                    }
                })
        };
        let failure = match (o.termination, rules) {
            (Termination::TimedOut, _) => {
                let _ = tokio::fs::remove_dir_all(&out_dir).await;
                let reason = reason(&format!(
                    "ran past its {} s time limit: {}",
                    job.time_limit.0,
                    tail.trim()
                ))?;
                return Ok(RunResult::Claim(AttemptOutcome::TimeLimit { reason }, usage));
            }
            (Termination::OutOfMemory, _) => {
                (ProgramFailure::OutOfMemory, "ran out of its memory limit".to_owned())
            }
            (Termination::Exited(0), Ok(())) => {
                if self.settings.corrupt_proofs {
                    corrupt_outputs(&out_dir, job.id).await?;
                }
                let files = hash_outputs(&out_dir).await?;
                return Ok(RunResult::Proof { files, usage });
            }
            (Termination::Exited(0), Err(e))
                if o.outputs.is_empty()
                    && o.unexpected_outputs.is_empty()
                    && !o.output_too_large =>
            {
                let _ = e;
                (ProgramFailure::NoOutput, "exited 0 without writing a proof file".to_owned())
            }
            (Termination::Exited(0), Err(e)) => (ProgramFailure::OutputRules, e),
            (Termination::Exited(c), _) => {
                (ProgramFailure::Exit(c as u32), format!("exited with {c}"))
            }
            (Termination::Signaled(s), _) => {
                (ProgramFailure::Signal(s as u32), format!("killed by signal {s}"))
            }
        };
        let _ = tokio::fs::remove_dir_all(&out_dir).await;
        let (failure, why) = failure;
        let reason = reason(&format!("{why}: {}", tail.trim()))?;
        Ok(RunResult::Claim(AttemptOutcome::ProgramError { failure, reason }, usage))
    }

    /// Verifies attempt `attempt`'s proof with the program's verifier and votes.
    async fn vote(&self, job: JobWork, attempt: u8) {
        let verdict = match self.verify(&job, attempt).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(job = %job.id, attempt, "could not verify: {e:#}");
                self.core().vote_failed((job.id, attempt));
                return;
            }
        };
        tracing::info!(job = %job.id, attempt, verdict = verdict.name(), "voting");
        if let TxOutcome::Failed { reason } =
            self.txq.send(TxBody::Vote { job: job.id, attempt, verdict }).await
        {
            // Still listed as a vote to cast (the round goes on): the next reading retries.
            tracing::warn!(job = %job.id, attempt, "vote failed: {reason}; retrying while the round lasts");
            self.core().vote_failed((job.id, attempt));
        }
    }

    /// The verdict of the program's verifier on the proof. Errors are the node's own (a blob it
    /// could not fetch, a sandbox it could not set up): it does not vote.
    async fn verify(&self, job: &JobWork, attempt: u8) -> Result<Verdict> {
        let program = self.program(&job.program).await?;
        let Some((verifier, limits)) = program.verifier else {
            bail!("program {} has a built-in verifier, which validators run", program.name);
        };
        let (exe, rootfs, _image) = match self.code(&verifier).await {
            Ok(c) => c,
            Err(e) if is_image_fault(&e) => {
                tracing::warn!(job = %job.id, attempt, "the verifier's image is refused: {e:#}");
                return Ok(Verdict::CannotVerify);
            }
            Err(e) => return Err(e),
        };
        let inputs = self.input_files(job).await?;
        let mut proof = Vec::new();
        let files =
            job.proofs.get(usize::from(attempt)).ok_or_else(|| anyhow!("no such attempt"))?;
        for (name, blob) in files {
            proof.push((name.clone(), self.blob_file(blob).await?));
        }
        let out_dir = self.job_dir(job.id, attempt, "verify");
        let _ = tokio::fs::remove_dir_all(&out_dir).await;
        let run = Run {
            job_id: format!("{}-{attempt}-v", short(job.id)),
            program: exe,
            args: vec![],
            inputs,
            proof,
            out_dir: out_dir.clone(),
            // The program's own verifier limits, within the chain's bounds.
            limits: Limits::new(
                limits.cores,
                limits.memory,
                Duration::from_secs(limits.time_limit.0),
            ),
            gpus: vec![],
            rootfs,
        };
        let o = match self.run_sandboxed(run).await {
            Ok(o) => o,
            Err(e)
                if matches!(
                    e.downcast_ref(),
                    Some(SandboxError::NotElf(_) | SandboxError::NoEntrypoint)
                ) =>
            {
                tracing::warn!(job = %job.id, attempt, "the verifier is not executable: {e}");
                return Ok(Verdict::CannotVerify);
            }
            Err(e) => return Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&out_dir).await;
        // The contract: exit 0 valid, 1 invalid. Anything else (another code, a crash, its time
        // or memory limit) is the requester's verifier failing, not the prover's proof.
        Ok(match o.termination {
            Termination::Exited(0) => Verdict::Valid,
            Termination::Exited(1) => Verdict::Invalid,
            other => {
                tracing::warn!(job = %job.id, attempt, ?other, stderr = %o.stderr_tail, "the verifier failed: voting that it cannot verify");
                Verdict::CannotVerify
            }
        })
    }
}

/// A claim's reason: `text`, cut to what a transaction carries.
fn reason(text: &str) -> Result<BoundedString<REASON_BYTES_MAX>> {
    BoundedString::try_new(truncate(text, REASON_BYTES_MAX)).map_err(|_| anyhow!("reason too long"))
}

/// The proof files in `dir`, hashed (not uploaded), in name order.
async fn hash_outputs(dir: &std::path::Path) -> Result<Files> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut files = Vec::new();
    while let Some(e) = entries.next_entry().await? {
        let name: FileName = e
            .file_name()
            .to_string_lossy()
            .parse()
            .map_err(|_| anyhow!("output {:?} has no contract name", e.file_name()))?;
        let bytes = tokio::fs::read(e.path()).await?;
        files.push(NamedBlob { name, blob: provernet_types::tx::blob_ref(&bytes) });
    }
    files.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    BoundedVec::try_from_vec(files).map_err(|_| anyhow!("too many proof files"))
}

/// Testing only: flips a byte of every output file.
async fn corrupt_outputs(dir: &std::path::Path, job: JobId) -> Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(e) = entries.next_entry().await? {
        let mut bytes = tokio::fs::read(e.path()).await?;
        if let Some(b) = bytes.last_mut() {
            *b ^= 0x5a;
        }
        tracing::warn!(%job, "testing: corrupting proof file {:?}", e.file_name());
        tokio::fs::write(e.path(), bytes).await?;
    }
    Ok(())
}

/// The first 16 hex characters of an id, for short names.
fn short(id: JobId) -> String {
    id.to_string().chars().take(16).collect()
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
