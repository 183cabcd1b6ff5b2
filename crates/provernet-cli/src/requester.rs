//! The requester's commands: `program deploy`, `job submit | status | watch | list | cancel`
//! and `proof fetch`, all against a validator's HTTP API.
//!
//! Everything a requester can get wrong is checked before anything is uploaded or paid for:
//! the program exists, the job names every input the program declares, the chain's quote fits
//! the balance and a registered prover has the capacity. What only the chain can decide (a
//! race with another transaction) comes back as the transaction's error, with a hint.

use crate::Hint;
use anyhow::{anyhow, bail, Context, Result};
use provernet_sdk::{types, Client, ErrorCode, Job, SdkError, TxState};
use provernet_types::{
    BoundedVec, BuiltinVerifier, Bytes, Code, FileName, GpuCount, JobId, JobSpec, Keypair, Label,
    MechanismKind, MicroCredits, MilliCores, NamedBlob, ProgramManifest, ProverSet, Resources,
    Seconds, Transaction, TxBody, VerifierSpec,
};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the chain is and who signs.
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// A validator's API root, or several separated by commas: the next is used when one
    /// cannot be reached, and a blob one lacks is downloaded from another.
    #[arg(long, env = "PROVERNET_API", default_value = "http://127.0.0.1:8080")]
    pub(crate) api: String,
    /// Your account's key file (JSON with a hex `seed`). The devnet's funded account is
    /// `.provernet-devnet/network/faucet.json`.
    #[arg(long, env = "PROVERNET_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Conn {
    pub(crate) fn client(&self) -> Result<Client> {
        Client::new(&self.api).map_err(|e| {
            hinted(e.to_string(), "pass --api http://HOST:PORT (or several, comma-separated)")
        })
    }

    pub(crate) fn keypair(&self) -> Result<Keypair> {
        let Some(path) = &self.key else {
            return Err(hinted(
                "this command signs a transaction and needs your key",
                "pass --key FILE or set PROVERNET_KEY (on a devnet: \
                 --key .provernet-devnet/network/faucet.json)",
            ));
        };
        Ok(Keypair::from_seed(crate::network_cmd::read_seed(path)?))
    }

    pub(crate) fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", line.as_ref());
        }
    }
}

pub(crate) fn hinted(msg: impl std::fmt::Display, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hint(hint.into())).context(msg.to_string())
}

/// Turns an API or transaction error into one that says what to do.
pub(crate) fn explain(err: SdkError, api: &str) -> anyhow::Error {
    match &err {
        SdkError::Http(_) => hinted(
            err,
            format!("is a validator running at {api}? `provernet devnet` starts a local network"),
        ),
        SdkError::Api { code, .. } => match hint_for(code) {
            Some(h) => hinted(err, h),
            None => anyhow!(err),
        },
        _ => anyhow!(err),
    }
}

/// What to do about an error, by its code (the ledger's, the mempool's or the API's).
pub fn hint_for(code: &ErrorCode) -> Option<&'static str> {
    use ErrorCode as C;
    Some(match code {
        C::SingleProverMechanism => "use --redundancy 1, or --mechanism random for redundancy",
        C::MechanismNotEnabled => "`provernet status` lists the chain's mechanisms; pick another --mechanism",
        C::UnknownProgram => "deploy it with `provernet program deploy`, or check the name",
        C::InsufficientBalance | C::InsufficientBalanceForFees => {
            "fund the account (`provernet account transfer` from a funded one), or ask for less (--time, --cores, --memory)"
        }
        C::NoProverCanFit => "ask for fewer resources; `provernet prover list` shows what provers have",
        C::FeeBelowQuote => "raise --max-fee to at least the quote (`provernet quote`)",
        C::MissingInput => "pass every declared input with --input NAME=PATH",
        C::NotRequester => "only the account that submitted a job may cancel it",
        C::ProgramNameTaken => "another program has this name; choose another --name",
        C::ProgramExists => "this exact program is already deployed; use it by its name or id",
        C::TooManyOpenJobs => "wait for some of your jobs to finish (`provernet job list --mine`)",
        C::WrongJobState => "`provernet job status ID` shows the job's state",
        C::UnknownAttempt | C::WrongAttemptState => {
            "`provernet job status ID` lists the job's attempts and their states"
        }
        C::NotAssignedProver => {
            "only the prover assigned to an attempt may act on it; `provernet job status ID` shows who"
        }
        C::NotCommitteeMember | C::AlreadyVoted => {
            "only a committee member votes, once; `provernet job status ID` lists the committee"
        }
        C::AuctionClosed | C::WrongMechanism | C::NoBid | C::BidMismatch | C::AlreadyBid => {
            "`provernet job status ID` shows the job's mechanism and auction round"
        }
        C::DeclineQuotaExhausted => "this prover has used its declines for now; accept or let the attempt lapse",
        C::UnknownAccount => "the account does not exist yet: send it credits first (`provernet account transfer`)",
        C::UnknownJob => "`provernet job list --mine` lists your jobs",
        C::StakeTooLow => "stake more: the chain's minimum prover stake is in its parameters",
        C::ProverExists => "this account is already a prover; `provernet prover status` shows it",
        C::UnknownProver => "this account is not a registered prover",
        C::ProverExiting => "the prover is already leaving; `provernet prover status` says until when",
        C::BadResources | C::BadTimeLimit => "ask for resources and a time limit within the chain's bounds",
        C::BadRedundancy => "--redundancy takes 1 to 3",
        C::ZeroAmount => "send an amount above zero",
        C::BlobUnavailable => "upload the blob first; the job names a blob no validator has",
        C::BlobQuotaExceeded => "the account's upload quota on the validators is full",
        C::BlobTooLarge => "a blob is at most 8 GiB (see `provernet status` for this validator's limit)",
        C::BlobUploadsTooMany => "complete or abandon an open upload (`provernet blob upload` the same file again resumes it); open uploads expire after a day",
        C::BlobRequestTooLarge => "`provernet blob upload` sends large files in pieces",
        C::BlobPieceMismatch | C::BlobOutlineMismatch => "the file changed while it was being uploaded; upload it again",
        C::MempoolFull | C::AccountRateLimited => "the validator is busy; retry in a few seconds",
        C::StaleNonce | C::NonceTaken | C::BadNonce => {
            "another transaction of this account was sent at the same time; retry"
        }
        _ => return None,
    })
}

/// A one-line progress meter on stderr, drawn only on a terminal.
#[derive(Clone)]
pub(crate) struct Progress {
    label: String,
    total: Arc<AtomicU64>,
    /// Bytes done when the meter was last drawn.
    drawn: Arc<AtomicU64>,
    draw: bool,
}

impl Progress {
    fn new(label: impl Into<String>, total: u64, quiet: bool) -> Progress {
        let draw = !quiet && std::io::stderr().is_terminal();
        let total = Arc::new(AtomicU64::new(total));
        Progress { label: label.into(), total, drawn: Arc::new(AtomicU64::new(0)), draw }
    }

    /// A transfer's progress, drawn under `label`, paced at `rate` bytes per second.
    pub(crate) fn transfer(
        label: impl Into<String>,
        quiet: bool,
        rate: Option<u64>,
    ) -> provernet_sdk::Transfer {
        let bar = Progress::new(label, 0, quiet);
        provernet_sdk::Transfer {
            progress: Some(Arc::new(move |done, total| {
                bar.total.store(total, Ordering::Relaxed);
                bar.set(done);
            })),
            rate,
        }
    }

    /// Redraws at every 2% step and at the end.
    fn set(&self, done: u64) {
        if !self.draw {
            return;
        }
        let total = self.total.load(Ordering::Relaxed);
        let last = self.drawn.load(Ordering::Relaxed);
        if done < total && done.abs_diff(last) < (total / 50).max(1) {
            return;
        }
        self.drawn.store(done, Ordering::Relaxed);
        let pct = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        let width = 30usize;
        let filled = (pct as usize * width / 100).min(width);
        eprint!(
            "\r{} [{}{}] {:>3}% {}/{}",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled),
            pct,
            Bytes(done),
            Bytes(total)
        );
        if done >= total {
            eprintln!();
        }
    }
}

pub(crate) async fn upload(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    what: &str,
    bytes: Vec<u8>,
    quiet: bool,
) -> Result<provernet_types::BlobRef> {
    let bar = Progress::new(format!("uploading {what}"), bytes.len() as u64, quiet);
    let b = bar.clone();
    client
        .upload_with_progress(key, chain_id, bytes, move |n| b.set(n))
        .await
        .map_err(|e| explain(e, client.base()))
        .with_context(|| format!("uploading {what}"))
}

/// Uploads the file at `path` (in pieces when it is above one request, resuming an upload
/// that was interrupted), drawing its progress.
pub(crate) async fn upload_path(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    what: &str,
    path: &Path,
    quiet: bool,
) -> Result<provernet_types::BlobRef> {
    let t = Progress::transfer(format!("uploading {what}"), quiet, None);
    let done = client
        .upload_file(key, chain_id, path, &t)
        .await
        .map_err(|e| explain(e, client.base()))
        .with_context(|| format!("uploading {what}"))?;
    Ok(done.blob)
}

/// Signs and submits `body`, waits until it is in a finalized block, and fails with the
/// chain's reason if it did not apply; the nonce it used.
pub async fn transact(client: &Client, key: &Keypair, chain_id: &str, body: TxBody) -> Result<u64> {
    let api = client.base().to_owned();
    let nonce = client.next_nonce(&key.account()).await.map_err(|e| explain(e, &api))?;
    let signed = Transaction { signer: key.account(), nonce, body }.sign(key, chain_id);
    submit_signed(client, &signed, &api).await?;
    Ok(nonce.0)
}

/// Submits a signed transaction, waits until it is in a finalized block, and fails with the
/// chain's reason if it did not apply.
pub(crate) async fn submit_signed(
    client: &Client,
    signed: &provernet_types::SignedTx,
    api: &str,
) -> Result<()> {
    let kind = signed.tx.body.kind();
    client.submit(signed).await.map_err(|e| explain(e, api))?;
    let status = client
        .wait_tx(&signed.hash(), Duration::from_secs(120))
        .await
        .map_err(|e| explain(e, api))?;
    if status.status != TxState::Applied {
        let Some(e) = status.error else {
            bail!("the chain refused the {kind}");
        };
        let msg = format!("the chain refused the {kind} ({}): {}", e.code, e.message);
        return Err(match hint_for(&e.code) {
            Some(h) => hinted(msg, h),
            None => anyhow!(msg),
        });
    }
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// program deploy

#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// The program's unique name on the chain.
    #[arg(long)]
    name: FileName,
    /// The prover executable (a static or glibc Linux binary).
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    prover: Option<PathBuf>,
    /// The prover as an OCI image (linux/amd64): a layout directory, or an archive of one as
    /// `docker buildx build --output type=oci,dest=prover.tar`, `podman save --format
    /// oci-archive` or `skopeo copy … oci-archive:prover.tar` write it. It runs as Docker runs
    /// it with no arguments: Entrypoint, then Cmd, with its Env and WorkingDir.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The verifier executable; a committee of provers runs it on every proof.
    #[arg(long, conflicts_with_all = ["builtin", "verifier_image"])]
    verifier: Option<PathBuf>,
    /// The verifier as an OCI image (as `--image`).
    #[arg(long, conflicts_with = "builtin")]
    verifier_image: Option<PathBuf>,
    /// A verifier the validators run natively instead: `groth16-bn254`, `winterfell-chain` or
    /// `plonky3-keccak` (the statements of the built-in programs).
    #[arg(long)]
    builtin: Option<String>,
    /// An input every job must provide (repeat).
    #[arg(long = "input-name")]
    input_names: Vec<FileName>,
    /// A proof file every proof must have (repeat): a workflow may wire it into another
    /// node, and the chain refuses a proof without it.
    #[arg(long = "output-name")]
    output_names: Vec<FileName>,
    /// A label provers must carry to run it, e.g. `cpu=x86-64-v3` (repeat).
    #[arg(long = "requires")]
    requires: Vec<Label>,
    /// Default cores for jobs that do not say.
    #[arg(long, default_value = "1")]
    cores: MilliCores,
    /// Default memory for jobs that do not say.
    #[arg(long, default_value = "1GiB")]
    memory: Bytes,
    /// Default GPUs for jobs that do not say.
    #[arg(long, default_value = "0")]
    gpus: GpuCount,
    /// Default time limit for jobs that do not say.
    #[arg(long, default_value = "60s")]
    time: Seconds,
    /// Cores the verifier gets on each committee member (within the chain's
    /// `verifier_limits_max`; only members whose machine has them are drawn).
    #[arg(long, default_value = "1")]
    verifier_cores: MilliCores,
    /// Memory the verifier gets.
    #[arg(long, default_value = "2GiB")]
    verifier_memory: Bytes,
    /// Time the verifier gets for one proof; past it, the members vote that it cannot verify
    /// (the requester pays).
    #[arg(long, default_value = "120s")]
    verifier_time: Seconds,
    #[command(flatten)]
    conn: Conn,
}

pub fn deploy(a: DeployArgs) -> Result<()> {
    let verifier_kind = match (&a.verifier, &a.verifier_image, a.builtin.as_deref()) {
        (Some(_), _, _) | (_, Some(_), _) => None,
        (None, None, Some(name)) => Some(name.parse::<BuiltinVerifier>().map_err(|e| {
            hinted(e, "other programs pass --verifier EXE, run by a committee of provers")
        })?),
        (None, None, None) => {
            return Err(hinted(
                "a program needs a verifier",
                "pass --verifier EXE or --verifier-image IMAGE, or --builtin \
                 groth16-bn254|winterfell-chain|plonky3-keccak",
            ))
        }
    };
    let read = |p: &Path| -> Result<Vec<u8>> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        if bytes.is_empty() {
            bail!("{} is empty", p.display());
        }
        Ok(bytes)
    };
    // Images are read and every layer unpacked here first: what a node would refuse is refused
    // before anything is uploaded, and what each layer unpacks to is measured for the manifest.
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    // A network program sees only its own files: an executable that needs a loader and
    // libraries, or a script its interpreter, is packaged here as an image of what it loads.
    let packaged = |exe: &Path, role: &str| -> Result<Option<ReadImage>> {
        let layout = scratch.path().join(format!("{role}-packaged"));
        let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let digest = provernet_image::build::package(&layout, exe, &name).map_err(|e| {
            hinted(
                format!("the {role} {}: {e}", exe.display()),
                "pass a static executable, or an image of the program with --image/--verifier-image",
            )
        })?;
        let Some(digest) = digest else { return Ok(None) };
        a.conn.say(format!(
            "the {role} {} is not static: packaged as image {digest} with what it loads here \
             (a network program sees only its own files)",
            exe.display()
        ));
        read_image(&layout, &scratch.path().join(role)).map(Some)
    };
    let mut prover = None;
    let mut prover_image =
        a.image.as_deref().map(|p| read_image(p, &scratch.path().join("prover"))).transpose()?;
    if let Some(p) = a.prover.as_deref() {
        match packaged(p, "prover")? {
            Some(img) => prover_image = Some(img),
            None => prover = Some(read(p)?),
        }
    }
    let mut verifier = None;
    let mut verifier_image = a
        .verifier_image
        .as_deref()
        .map(|p| read_image(p, &scratch.path().join("verifier")))
        .transpose()?;
    if let Some(p) = a.verifier.as_deref() {
        match packaged(p, "verifier")? {
            Some(img) => verifier_image = Some(img),
            None => verifier = Some(read(p)?),
        }
    }
    let mut requires = a.requires.clone();
    requires.sort();
    requires.dedup();
    let mut inputs = a.input_names.clone();
    inputs.sort();
    inputs.dedup();
    let mut outputs = a.output_names.clone();
    outputs.sort();
    outputs.dedup();
    let resources = Resources { cores: a.cores, memory: a.memory, gpus: a.gpus };
    resources.check_bounds().map_err(|e| anyhow!("default resources: {e}"))?;
    let key = a.conn.keypair()?;
    let client = a.conn.client()?;
    runtime()?.block_on(async {
        let chain_id = client.status().await.map_err(|e| explain(e, &a.conn.api))?.chain_id;
        let quiet = a.conn.json;
        let prover: Code = match (prover, &prover_image) {
            (Some(bytes), _) => {
                upload(&client, &key, &chain_id, "the prover", bytes, quiet).await?.into()
            }
            (None, Some(img)) => {
                upload_image(&client, &key, &chain_id, "the prover", img, quiet).await?
            }
            (None, None) => bail!("pass --prover EXE or --image IMAGE"),
        };
        let limits = provernet_types::VerifierLimits {
            cores: a.verifier_cores,
            memory: a.verifier_memory,
            time_limit: a.verifier_time,
        };
        let verifier = match (verifier, &verifier_image, verifier_kind) {
            (Some(bytes), _, _) => VerifierSpec::Program {
                blob: upload(&client, &key, &chain_id, "the verifier", bytes, quiet).await?.into(),
                limits,
            },
            (None, Some(img), _) => VerifierSpec::Program {
                blob: upload_image(&client, &key, &chain_id, "the verifier", img, quiet).await?,
                limits,
            },
            (None, None, Some(kind)) => VerifierSpec::Builtin(kind),
            (None, None, None) => unreachable!("checked above"),
        };
        let image_digest = |c: &Code| match c {
            Code::Image(i) => Some(i.digest_text()),
            Code::Executable(_) => None,
        };
        let prover_digest = image_digest(&prover);
        let manifest = ProgramManifest {
            name: a.name.clone(),
            prover,
            verifier,
            default_resources: resources,
            default_time_limit: a.time,
            requires: BoundedVec::try_from_vec(requires)
                .map_err(|_| anyhow!("too many --requires labels"))?,
            inputs: BoundedVec::try_from_vec(inputs)
                .map_err(|_| anyhow!("too many --input-name names"))?,
            outputs: BoundedVec::try_from_vec(outputs)
                .map_err(|_| anyhow!("too many --output-name names (at most 16)"))?,
        };
        let id = manifest.id();
        transact(&client, &key, &chain_id, TxBody::RegisterProgram { manifest }).await?;
        if a.conn.json {
            print_json(&json!({
                "program": id.to_string(),
                "name": a.name.as_str(),
                "image": prover_digest,
            }))
        } else {
            match prover_digest {
                Some(d) => println!("deployed {} (image {d}) as program {id}", a.name),
                None => println!("deployed {} as program {id}", a.name),
            }
            Ok(())
        }
    })
}

/// An image read from `path` (a layout directory or an archive of one), checked whole, with
/// every layer unpacked under `scratch` to measure it.
pub(crate) struct ReadImage {
    image: provernet_image::Image,
    layers: Vec<provernet_image::LayerReport>,
    /// Keeps an extracted archive until the upload is done.
    _dir: Option<tempfile::TempDir>,
}

pub(crate) fn read_image(path: &Path, scratch: &Path) -> Result<ReadImage> {
    let ctx = || format!("the image {}", path.display());
    let tmp = tempfile::tempdir().context("creating a scratch directory")?;
    let dir = provernet_image::open_layout(path, tmp.path()).with_context(ctx)?;
    let kept = (!path.is_dir()).then_some(tmp);
    let image = provernet_image::Image::from_layout(&dir).with_context(ctx)?;
    let layers = provernet_image::measure(&image, scratch).with_context(ctx)?;
    let _ = std::fs::remove_dir_all(scratch);
    Ok(ReadImage { image, layers, _dir: kept })
}

/// Uploads an image's manifest, config and layers as blobs: the program's code.
pub(crate) async fn upload_image(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    what: &str,
    img: &ReadImage,
    quiet: bool,
) -> Result<Code> {
    let i = &img.image;
    let manifest =
        upload(client, key, chain_id, &format!("{what}'s manifest"), i.manifest.clone(), quiet)
            .await?;
    let config =
        upload(client, key, chain_id, &format!("{what}'s config"), i.config_bytes.clone(), quiet)
            .await?;
    let mut layers = Vec::new();
    for (n, (l, report)) in i.layers.iter().zip(&img.layers).enumerate() {
        let label = format!("{what}'s layer {}/{} ({})", n + 1, i.layers.len(), l.digest);
        let blob = upload_path(client, key, chain_id, &label, &i.blob_path(&l.digest), quiet)
            .await
            .with_context(|| format!("layer {n} ({})", l.digest))?;
        layers.push(provernet_types::LayerRef {
            blob,
            unpacked: Bytes(report.bytes),
            entries: u32::try_from(report.entries).context("a layer with too many entries")?,
        });
    }
    Ok(Code::Image(Box::new(provernet_types::ImageRef {
        digest: i.digest.0,
        manifest,
        config,
        layers: BoundedVec::try_from_vec(layers).map_err(|_| anyhow!("too many layers"))?,
    })))
}

// ---------------------------------------------------------------------------------------------
// job

#[derive(clap::Subcommand, Debug)]
pub enum JobCommand {
    /// Submit a proof job: its inputs are uploaded, its fee escrowed.
    Submit(SubmitArgs),
    /// Show a job.
    Status(JobRef),
    /// Follow a job until it is final; exits 1 unless it verified.
    Watch(JobRef),
    /// List jobs (yours with --mine).
    List(ListArgs),
    /// Cancel a job that no prover has started; the fee comes back.
    Cancel(JobRef),
}

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The program, by name or id.
    program: String,
    /// An input as `name=path`; the prover reads it at /job/in/<name>. Repeat for more.
    #[arg(long = "input", value_parser = crate::program::parse_input)]
    inputs: Vec<(FileName, PathBuf)>,
    /// CPU cores (default: the program's).
    #[arg(long)]
    cores: Option<MilliCores>,
    /// Memory (default: the program's).
    #[arg(long)]
    memory: Option<Bytes>,
    /// GPUs (default: the program's).
    #[arg(long)]
    gpus: Option<GpuCount>,
    /// Time limit (default: the program's).
    #[arg(long)]
    time: Option<Seconds>,
    /// Provers that run the job at once (1–3), each paid.
    #[arg(long, default_value_t = 1)]
    redundancy: u8,
    /// How provers are picked: random (default), stake-linear, stake-sqrt, reverse-dutch,
    /// lowest-bid or open-race (the chain lists what it enables). The auctions escrow
    /// --max-fee and charge the clearing price: give them room above the quote.
    #[arg(long, default_value_t = MechanismKind::RandomWithFallback)]
    mechanism: MechanismKind,
    /// The most to pay, in credits (default: the chain's quote).
    #[arg(long)]
    max_fee: Option<MicroCredits>,
    /// Wait until the job is final, showing its progress; exits 1 unless it verified.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct JobRef {
    /// The job id.
    job: JobId,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only the jobs of the account in --key.
    #[arg(long)]
    mine: bool,
    /// Only jobs in this state (`Verified`, `Failed`, `Running`, ...).
    #[arg(long)]
    state: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    conn: Conn,
}

pub fn job(cmd: JobCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        JobCommand::Submit(a) => rt.block_on(submit(a)),
        JobCommand::Status(a) => rt.block_on(async {
            let client = a.conn.client()?;
            let v = get_job(&client, &a.job).await?;
            if a.conn.json {
                return print_json(&v);
            }
            print_job(&v);
            Ok(())
        }),
        JobCommand::Watch(a) => rt.block_on(async {
            let client = a.conn.client()?;
            let v = watch(&client, &a.job, &a.conn).await?;
            finish_watch(&v, &a.conn)
        }),
        JobCommand::List(a) => rt.block_on(list(a)),
        JobCommand::Cancel(a) => rt.block_on(async {
            let key = a.conn.keypair()?;
            let client = a.conn.client()?;
            let chain_id = client.status().await.map_err(|e| explain(e, &a.conn.api))?.chain_id;
            transact(&client, &key, &chain_id, TxBody::CancelJob { job: a.job }).await?;
            let v = get_job(&client, &a.job).await?;
            if a.conn.json {
                return print_json(&v);
            }
            println!("job {} is {}", a.job, v.status);
            Ok(())
        }),
    }
}

async fn get_job(client: &Client, id: &JobId) -> Result<Job> {
    client.job(id).await.map_err(|e| explain(e, client.base()))?.ok_or_else(|| {
        hinted(format!("there is no job {id}"), "`provernet job list --mine` lists your jobs")
    })
}

/// A program by name or id, or an error saying how to deploy one.
pub(crate) async fn find_program(client: &Client, name_or_id: &str) -> Result<types::Program> {
    client.program(name_or_id).await.map_err(|e| explain(e, client.base()))?.ok_or_else(|| {
        hinted(
            format!("there is no program `{name_or_id}` on this chain"),
            "deploy it with `provernet program deploy`, or check the name",
        )
    })
}

async fn submit(a: SubmitArgs) -> Result<()> {
    let key = a.conn.keypair()?;
    let client = a.conn.client()?;
    let api = a.conn.api.clone();
    let chain_id = client.status().await.map_err(|e| explain(e, &api))?.chain_id;
    let program = find_program(&client, &a.program).await?;
    let program_id = program.id;
    for (name, path) in &a.inputs {
        if !path.is_file() {
            bail!("input `{name}`: {} is not a readable file", path.display());
        }
    }
    let defaults = program.default_resources.resources();
    let cores = a.cores.unwrap_or(defaults.cores);
    let memory = a.memory.unwrap_or(defaults.memory);
    let gpus = a.gpus.unwrap_or(defaults.gpus);
    let time = a.time.unwrap_or(program.default_time_limit_s);
    let custom = a.cores.is_some() || a.memory.is_some() || a.gpus.is_some();
    // The program's default time limit is its author's estimate of a run: a shorter limit is
    // allowed (small jobs) but likely to time out, which the requester pays for.
    let estimate = program.default_time_limit_s.0;
    if time.0 < estimate {
        eprintln!(
            "warning: --time {time} is below program {}'s expected run time ({estimate} s, its \
             default limit); a run that times out is paid for and not proven",
            a.program
        );
    }
    let resources = Resources { cores, memory, gpus };
    // The chain's price sets the default --max-fee; whether the job can be paid for, run and
    // proven is the chain's to say (below), not this tool's.
    let quote =
        client.quote_for(&resources, time, a.redundancy).await.map_err(|e| explain(e, &api))?;
    let total = quote.total_micro_credits;
    let max_fee = a.max_fee.unwrap_or(total);
    // The inputs' addresses, computed here: the transaction names them before they are sent.
    let mut files = Vec::new();
    let mut named = Vec::new();
    for (name, path) in &a.inputs {
        let blob = provernet_sdk::file_blob(path).map_err(|e| anyhow!("input {name}: {e}"))?.0;
        named.push(NamedBlob { name: name.clone(), blob });
        files.push((name.clone(), path.clone(), blob));
    }
    let spec = JobSpec {
        program: program_id,
        inputs: BoundedVec::try_from_vec(named)
            .map_err(|_| anyhow!("at most {} inputs", provernet_types::limits::JOB_INPUTS_MAX))?,
        resources: custom.then_some(resources),
        time_limit: time,
        redundancy: a.redundancy,
        prover_set: ProverSet::Any,
        mechanism: a.mechanism,
        max_fee,
    };
    let nonce = client.next_nonce(&key.account()).await.map_err(|e| explain(e, &api))?;
    let signed = Transaction { signer: key.account(), nonce, body: TxBody::SubmitJob(spec) }
        .sign(&key, &chain_id);
    // The chain's own rules, before a byte is uploaded or a credit paid: the program's inputs,
    // redundancy and mechanism, the quote against --max-fee, the balance for escrow and fee,
    // and a prover with room for the job.
    let check = client.check(&signed).await.map_err(|e| explain(e, &api))?;
    let missing: Vec<_> = check.missing_blobs.iter().map(|b| b.hash).collect();
    for (name, path, blob) in files {
        if missing.contains(&blob.hash) {
            let what = format!("input {name}");
            let sent = upload_path(&client, &key, &chain_id, &what, &path, a.conn.json).await?;
            if sent != blob {
                bail!("{} changed while it was being submitted; submit again", path.display());
            }
        }
    }
    submit_signed(&client, &signed, &api).await?;
    let id = provernet_types::tx::job_id(&key.account(), nonce);
    a.conn.say(format!("submitted job {id} ({} for up to {max_fee})", a.program));
    if a.wait {
        let v = watch(&client, &id, &a.conn).await?;
        return finish_watch(&v, &a.conn);
    }
    if a.conn.json {
        print_json(&json!({"job": id.to_string(), "quote_micro_credits": total.0}))
    } else {
        println!("{id}");
        Ok(())
    }
}

/// Follows a job until it is final, printing each change; returns the final view. It follows
/// the job's event stream (a new view is read only when a block touched the job) and polls
/// while the stream is down, reconnecting to it.
async fn watch(client: &Client, id: &JobId, conn: &Conn) -> Result<Job> {
    use futures::StreamExt;
    use provernet_sdk::JobStreamItem;
    let started = Instant::now();
    let mut last = String::new();
    let show = |v: &Job| {
        let line = describe_progress(v);
        if line != last {
            conn.say(format!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64()));
            last = line;
        }
    };
    let open = async || {
        let stream = client.job_events(id).await?;
        Ok(stream.map(|item| match item {
            Ok(JobStreamItem::Job(v)) => Pushed::View(*v),
            Ok(JobStreamItem::Events(_)) => Pushed::Changed,
            Err(e) => Pushed::Broken(e),
        }))
    };
    let read = async || client.job(id).await;
    follow(open, read, show, |v: &Job| v.is_final, &format!("job {id}"), client.base()).await
}

/// What an event stream of one record says.
pub(crate) enum Pushed<V> {
    /// The record as it is.
    View(V),
    /// A block changed it: read it again.
    Changed,
    /// The stream broke.
    Broken(SdkError),
}

/// Follows a record (a job, a workflow) until `is_final`, calling `show` with each view: from
/// its event stream (`open`), reading it (`read`) when a block changed it, and polling while
/// the stream is down, reconnecting to it. A stream quiet for 30 s is looked at by a poll.
pub(crate) async fn follow<V, S>(
    open: impl AsyncFn() -> Result<S, SdkError>,
    read: impl AsyncFn() -> Result<Option<V>, SdkError>,
    mut show: impl FnMut(&V),
    is_final: impl Fn(&V) -> bool,
    what: &str,
    api: &str,
) -> Result<V>
where
    S: futures::Stream<Item = Pushed<V>>,
{
    use futures::StreamExt;
    let mut failures = 0u32;
    loop {
        if let Ok(stream) = open().await {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(item)) =
                tokio::time::timeout(Duration::from_secs(30), stream.next()).await
            {
                let v = match item {
                    Pushed::View(v) => v,
                    Pushed::Changed => match read().await {
                        Ok(Some(v)) => v,
                        _ => break,
                    },
                    Pushed::Broken(e) => {
                        tracing::debug!("the event stream of {what} broke: {e}");
                        break;
                    }
                };
                failures = 0;
                show(&v);
                if is_final(&v) {
                    return Ok(v);
                }
            }
        }
        // The stream is down (a validator restart, a proxy that cuts streams): poll once, then
        // try the stream again.
        match read().await {
            Ok(Some(v)) => {
                failures = 0;
                show(&v);
                if is_final(&v) {
                    return Ok(v);
                }
            }
            Ok(None) => return Err(hinted(format!("there is no {what}"), "check the id")),
            // Keep following for a while.
            Err(e) if failures < 30 => {
                failures += 1;
                tracing::debug!("reading {what} failed: {e}");
            }
            Err(e) => return Err(explain(e, api)),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn describe_progress(v: &Job) -> String {
    let parts: Vec<String> = v
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("#{i} {} {}", a.prover.short(), a.state))
        .collect();
    if parts.is_empty() {
        v.status.to_string()
    } else {
        format!("{}: {}", v.status, parts.join(", "))
    }
}

fn finish_watch(v: &Job, conn: &Conn) -> Result<()> {
    if conn.json {
        print_json(v)?;
    } else {
        print_job(v);
    }
    if v.status != types::JobStatus::Verified {
        bail!("job {} ended {}", v.id, v.status);
    }
    Ok(())
}

fn print_job(v: &Job) {
    println!("job       {}", v.id);
    println!("status    {}", v.status);
    println!("program   {}", v.program);
    let r = &v.resources;
    println!(
        "resources {} cores, {}, {} GPUs, {} s",
        r.cores, r.memory, r.gpus.0, v.time_limit_s.0
    );
    println!(
        "fee       {} per prover (quote), max {}, escrow {}",
        v.fee_per_prover_micro_credits, v.max_fee_micro_credits, v.escrow_micro_credits
    );
    let mechanism = provernet_types::MechanismKind::from(v.mechanism);
    let auction = match (v.auction_round_opened_at, v.mechanism) {
        (Some(h), types::Mechanism::LowestBid) => format!(
            ", round opened at {}: {} sealed bids, {} revealed",
            h.0, v.sealed_bids, v.revealed_bids
        ),
        (Some(h), _) => format!(", round opened at {}", h.0),
        (None, _) => String::new(),
    };
    println!("mechanism {mechanism}{auction}");
    if v.bounty_micro_credits.0 > 0 {
        println!(
            "bounty    {} (forfeited collateral, for whoever proves the job)",
            v.bounty_micro_credits
        );
    }
    if v.fallback_refund_micro_credits.0 > 0 {
        println!("refund    {} (fallback)", v.fallback_refund_micro_credits);
    }
    for (i, a) in v.attempts.iter().enumerate() {
        let winner = v.winner == u8::try_from(i).ok();
        let collateral = a.collateral_micro_credits;
        println!(
            "attempt {i}{} prover {} {}{} price {}{} wall {} ms{}",
            if winner { "*" } else { " " },
            a.prover,
            a.state,
            if a.race { " (race)" } else { "" },
            a.price_micro_credits,
            if collateral.0 > 0 { format!(", collateral {collateral}") } else { String::new() },
            a.usage.wall_ms,
            a.failure.as_deref().map_or(String::new(), |f| format!(", {f}"))
        );
    }
}

/// Most jobs `job list` shows; it pages through the API for them.
const LIST_MAX: u32 = 10_000;

async fn list(a: ListArgs) -> Result<()> {
    let client = a.conn.client()?;
    if a.limit == 0 || a.limit > LIST_MAX {
        bail!("--limit takes 1 to {LIST_MAX}");
    }
    let mut query = types::JobQuery {
        requester: if a.mine { Some(a.conn.keypair()?.account().to_string()) } else { None },
        state: a.state.clone(),
        // Newest first reaches settled jobs too: the chain archives them.
        order: Some("newest".into()),
        ..types::JobQuery::default()
    };
    let mut items: Vec<Job> = Vec::new();
    while items.len() < a.limit as usize {
        query.limit = Some((a.limit as usize - items.len()).min(types::PAGE_MAX));
        let page = client.jobs(&query).await.map_err(|e| explain(e, &a.conn.api))?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    if a.conn.json {
        return print_json(&json!({ "items": items }));
    }
    println!("{:<66} {:<20} {:>8}", "job", "status", "attempts");
    for j in &items {
        println!("{:<66} {:<20} {:>8}", j.id, j.status.name(), j.attempts.len());
    }
    println!("{} jobs", items.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// proof fetch

#[derive(clap::Subcommand, Debug)]
pub enum ProofCommand {
    /// Download a verified job's proof (and its inputs) and verify it here, independently.
    Fetch(FetchArgs),
}

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The job id.
    job: JobId,
    /// Directory for the proof files (`proof/`) and the job's inputs (`in/`).
    #[arg(long)]
    out: PathBuf,
    /// Only download; do not verify.
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    conn: Conn,
}

pub fn proof(cmd: ProofCommand) -> Result<()> {
    let ProofCommand::Fetch(a) = cmd;
    let client = a.conn.client()?;
    let rt = runtime()?;
    let (v, program) = rt.block_on(async {
        let v = get_job(&client, &a.job).await?;
        let program = client
            .program(&v.program.to_string())
            .await
            .map_err(|e| explain(e, &a.conn.api))?
            .ok_or_else(|| anyhow!("the job's program is not on the chain"))?;
        Ok::<_, anyhow::Error>((v, program))
    })?;
    let status = v.status;
    let Some(attempt) = v.winner.and_then(|w| v.attempts.get(usize::from(w))) else {
        return Err(hinted(
            format!("job {} has no accepted proof (it is {status})", a.job),
            "wait for it with `provernet job watch`",
        ));
    };
    let proof_dir = a.out.join("proof");
    let in_dir = a.out.join("in");
    std::fs::create_dir_all(&proof_dir)
        .with_context(|| format!("creating {}", proof_dir.display()))?;
    std::fs::create_dir_all(&in_dir)?;
    let mut proof = Vec::new();
    let mut inputs = Vec::new();
    rt.block_on(async {
        for (list, dir, acc) in
            [(&attempt.proof, &proof_dir, &mut proof), (&v.inputs, &in_dir, &mut inputs)]
        {
            for f in list {
                let name = f.name.clone();
                let bytes = download(&client, &f.blob_ref()).await?;
                let path = dir.join(name.as_str());
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                acc.push((name, path, bytes));
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let verdict = if a.no_verify {
        "not checked".to_owned()
    } else {
        let valid = match &program.verifier {
            types::Verifier::Builtin { name } => {
                let kind = BuiltinVerifier::from(*name);
                let files = |l: &[(FileName, PathBuf, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
                    l.iter().map(|(n, _, b)| (n.as_str().to_owned(), b.clone())).collect()
                };
                match provernet_node::verify_builtin(kind, &files(&inputs), &files(&proof)) {
                    provernet_types::Verdict::Valid => true,
                    provernet_types::Verdict::Invalid => false,
                    provernet_types::Verdict::CannotVerify => {
                        bail!("the job's statement cannot be read by its verifier, so no proof of it can be checked")
                    }
                }
            }
            types::Verifier::Program { code, limits } => {
                let code = code.code().ok_or_else(|| {
                    anyhow!("the program's verifier has a malformed image digest")
                })?;
                let limits = provernet_sandbox::Limits::new(
                    limits.millicores,
                    limits.memory_bytes,
                    Duration::from_secs(limits.time_limit_s.0),
                );
                match &code {
                    Code::Executable(blob) => {
                        let exe = rt.block_on(download(&client, blob))?;
                        let exe_path = a.out.join("verifier");
                        std::fs::write(&exe_path, exe)?;
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(
                            &exe_path,
                            std::fs::Permissions::from_mode(0o755),
                        )?;
                        run_verifier(
                            &exe_path,
                            provernet_sandbox::plan::RootFs::Empty,
                            &inputs,
                            &proof,
                            limits,
                        )?
                    }
                    Code::Image(image) => {
                        // The verifier's image, checked against the program's record as a node
                        // checks it, unpacked into a cache beside the proof.
                        let blobs = a.out.join(".verifier-blobs");
                        std::fs::create_dir_all(&blobs)?;
                        for b in code.blobs() {
                            let path = blobs.join(b.hash.to_string());
                            if !path.exists() {
                                std::fs::write(&path, rt.block_on(download(&client, &b))?)?;
                            }
                        }
                        let cache = provernet_image::Cache::open(
                            &a.out.join(".verifier-image-cache"),
                            u64::MAX,
                        )?;
                        let prepared = provernet_image::prepare(
                            &cache,
                            image,
                            |b| blobs.join(b.hash.to_string()),
                            &a.out.join(".verifier-layout"),
                        )
                        .context("the verifier's image")?;
                        let rootfs = provernet_sandbox::plan::RootFs::Image(
                            provernet_sandbox::plan::ImageRun {
                                root: prepared.root.path.clone(),
                                argv: prepared.run.argv(),
                                env: prepared.run.env_pairs(),
                                workdir: prepared.run.workdir(),
                            },
                        );
                        run_verifier(Path::new(""), rootfs, &inputs, &proof, limits)?
                    }
                }
            }
        };
        if !valid {
            bail!("the proof of job {} does NOT verify here", a.job);
        }
        "valid".to_owned()
    };
    if a.conn.json {
        print_json(&json!({
            "job": a.job.to_string(),
            "status": status.name(),
            "proof": proof.iter().map(|(n, p, b)| json!({"name": n.as_str(), "path": p, "size": b.len()})).collect::<Vec<_>>(),
            "verified_locally": !a.no_verify,
            "verdict": verdict,
        }))
    } else {
        for (n, p, b) in &proof {
            println!("{n} ({}) → {}", Bytes(b.len() as u64), p.display());
        }
        println!("proof of job {}: {verdict}", a.job);
        Ok(())
    }
}

async fn download(client: &Client, f: &provernet_types::BlobRef) -> Result<Vec<u8>> {
    let hash = f.hash;
    let bytes = client
        .download(&hash)
        .await
        .map_err(|e| explain(e, client.base()))?
        .ok_or_else(|| anyhow!("the validator no longer has blob {hash}"))?;
    if bytes.len() as u64 != f.size.0 {
        bail!("blob {hash} has the wrong size");
    }
    Ok(bytes)
}

/// Runs a verifier program under the sandbox: exit 0 valid, 1 invalid, else an error.
fn run_verifier(
    exe: &Path,
    rootfs: provernet_sandbox::plan::RootFs,
    inputs: &[(FileName, PathBuf, Vec<u8>)],
    proof: &[(FileName, PathBuf, Vec<u8>)],
    limits: provernet_sandbox::Limits,
) -> Result<bool> {
    use provernet_sandbox::{Helper, Run, Sandbox, Termination};
    let scratch = std::env::temp_dir().join("provernet-sandbox");
    let sandbox = Sandbox::new(Helper::SelfExec(std::env::current_exe()?), scratch)?;
    let out = std::env::temp_dir().join(format!("provernet-fetch-verify-{}", std::process::id()));
    let run = Run {
        job_id: "fetch".into(),
        program: exe.to_owned(),
        args: vec![],
        inputs: inputs
            .iter()
            .map(|(n, p, b)| (n.clone(), p.clone(), Bytes(b.len() as u64)))
            .collect(),
        proof: proof.iter().map(|(n, p, _)| (n.clone(), p.clone())).collect(),
        out_dir: out.clone(),
        limits,
        gpus: vec![],
        rootfs,
    };
    let o = sandbox.run(&run);
    let _ = std::fs::remove_dir_all(&out);
    let o = o?;
    match o.termination {
        Termination::Exited(0) => Ok(true),
        Termination::Exited(1) => Ok(false),
        other => bail!(
            "the verifier failed ({other:?}), so the proof cannot be checked (the chain counts this \
             as the requester's statement or verifier failing): {}",
            o.stderr_tail.trim()
        ),
    }
}
