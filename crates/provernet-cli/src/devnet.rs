//! `provernet devnet`: a whole network on this machine, proving real jobs.
//!
//! `--validators` validators (one by default; four tolerate one faulty) and `--provers` prover
//! nodes spread across them, each its own process (this binary, started with `validator` and
//! `node`), on loopback, with state under `--data-dir`. Node `i` talks to validator
//! `i mod validators` first and falls back to the others. The devnet deploys the built-in
//! programs and submits a mixed batch of real jobs (Groth16, winterfell, Plonky3) through
//! validator 0, follows them to a final state and prints a summary. Then it keeps serving the
//! API until Ctrl-C, or exits (`--exit-when-done`; exit status 1 unless every job verified).

use crate::network_cmd::{create_network, AccountKeyFile, GenesisArgs};
use crate::requester::transact;
use crate::Hint;
use anyhow::{anyhow, bail, Context, Result};
use provernet_sdk::types::JobStatus;
use provernet_sdk::Client;
use provernet_sdk::Job;
use provernet_types::{
    BoundedVec, BuiltinVerifier, Bytes, FileName, GpuCount, JobSpec, Keypair, MechanismKind,
    MicroCredits, MilliCores, NamedBlob, ProgramManifest, ProverSet, Resources, Seconds, TxBody,
    VerifierSpec,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DevnetArgs {
    /// Where the devnet keeps its state and logs. Cleared at start.
    #[arg(long, default_value = ".provernet-devnet")]
    data_dir: PathBuf,
    /// Validators to start (1, or 4 and up to tolerate faulty ones).
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Prover nodes to start.
    #[arg(long, default_value_t = 3)]
    provers: usize,
    /// Jobs per built-in program in the batch.
    #[arg(long, default_value_t = 2)]
    jobs_per_program: usize,
    /// Validator 0's HTTP API port; validator N uses this plus N.
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Validator 0's p2p port; validator N uses this plus N.
    #[arg(long, default_value_t = 30300)]
    p2p_port: u16,
    /// Where the built-in programs' executables are (default: next to this binary).
    #[arg(long)]
    programs_dir: Option<PathBuf>,
    /// Exit once the batch is final instead of serving on.
    #[arg(long)]
    exit_when_done: bool,
    /// Print one JSON summary instead of progress and a table.
    #[arg(long)]
    json: bool,
}

/// The devnet's child processes; killed when dropped.
pub struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Children {
    fn spawn(&mut self, name: &str, args: &[&str], log: &Path) -> Result<()> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    /// Fails if a child exited.
    pub fn check(&mut self, logs: &Path) -> Result<()> {
        for (name, c) in &mut self.0 {
            if let Ok(Some(status)) = c.try_wait() {
                bail!("the {name} exited ({status}); see its log in {}", logs.display());
            }
        }
        Ok(())
    }
}

/// How a built-in program's proofs are checked.
pub enum Check {
    /// Natively, by the validators.
    Builtin(BuiltinVerifier),
    /// By a committee of provers running this verifier executable.
    Committee(&'static str),
}

pub struct Program {
    pub name: &'static str,
    prover: &'static str,
    check: Check,
    /// The inputs every job must name.
    inputs: &'static [&'static str],
}

impl Program {
    fn verifier_exe(&self) -> Option<&'static str> {
        match self.check {
            Check::Committee(exe) => Some(exe),
            Check::Builtin(_) => None,
        }
    }
}

/// The devnet's programs: the three proof systems the validators verify natively, and the
/// segmented workflow's join, which a committee of provers verifies.
pub const PROGRAMS: [Program; 4] = [
    Program {
        name: "groth16-sha256",
        prover: "groth16-sha256-prover",
        check: Check::Builtin(BuiltinVerifier::Groth16Bn254),
        inputs: &["digest", "pk", "preimage", "vk"],
    },
    Program {
        name: "winterfell-chain",
        prover: "winterfell-chain-prover",
        check: Check::Builtin(BuiltinVerifier::WinterfellChain),
        inputs: &["statement"],
    },
    Program {
        name: "plonky3-keccak",
        prover: "plonky3-keccak-prover",
        check: Check::Builtin(BuiltinVerifier::Plonky3Keccak),
        inputs: &["statement"],
    },
    Program {
        name: "winterfell-chain-join",
        prover: "winterfell-chain-join",
        check: Check::Committee("winterfell-chain-join-verifier"),
        inputs: &["statement"],
    },
];

/// The segmented workflow: this many leaf proofs of one chain, then a binary tree of joins.
const SEGMENTS: usize = 4;
const SEGMENT_ROWS: u64 = 1 << 10;

fn say(json: bool, line: impl AsRef<str>) {
    if !json {
        eprintln!("{}", line.as_ref());
    }
}

/// The directory holding the built-in programs' executables (`dir`, or this binary's own),
/// checked to hold every one.
pub fn programs_dir(dir: Option<&Path>) -> Result<PathBuf> {
    let programs_dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("cannot locate this executable's directory"))?,
    };
    for p in &PROGRAMS {
        for exe in std::iter::once(p.prover).chain(p.verifier_exe()) {
            if !programs_dir.join(exe).is_file() {
                return Err(anyhow::Error::new(Hint(
                    "build them with `cargo build --release --workspace`, or pass --programs-dir"
                        .into(),
                ))
                .context(format!(
                    "the built-in program {exe} is not in {}",
                    programs_dir.display()
                )));
            }
        }
    }
    Ok(programs_dir)
}

pub fn run(args: DevnetArgs) -> Result<()> {
    let programs_dir = programs_dir(args.programs_dir.as_deref())?;
    if args.provers == 0 || args.provers > 16 {
        bail!("--provers must be 1 to 16");
    }
    if args.validators == 0 || args.validators > 16 {
        bail!("--validators must be 1 to 16 (4 tolerates one faulty validator)");
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let spec = LocalSpec {
            dir: args.data_dir.clone(),
            validators: args.validators,
            provers: args.provers,
            api_port: args.api_port,
            p2p_port: args.p2p_port,
            node_cores: "2".into(),
            node_memory: "4GiB".into(),
            quiet: args.json,
        };
        let Local { mut children, client, faucet, logs, apis, .. } = start_local(&spec).await?;
        let summary = drive(&args, &client, &faucet, &programs_dir, &mut children, &logs).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print_table(&summary);
        }
        let all_verified = summary.all_verified;
        if args.exit_when_done {
            if !all_verified {
                bail!("not every job verified; logs are in {}", logs.display());
            }
            return Ok(());
        }
        say(
            args.json,
            format!(
                "the devnet keeps running: API at {}, logs in {}; Ctrl-C stops it\n\
                 submit your own jobs as its funded account:\n  \
                 export PROVERNET_KEY={}\n  \
                 printf '3 65536' > statement && provernet job submit winterfell-chain --input statement=statement --wait",
                apis.join(", "),
                logs.display(),
                args.data_dir.join("network/faucet.json").display()
            ),
        );
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => children.check(&logs)?,
            }
        }
        Ok(())
    })
}

/// What [`start_local`] starts.
pub struct LocalSpec {
    /// Cleared first.
    pub dir: PathBuf,
    pub validators: usize,
    pub provers: usize,
    pub api_port: u16,
    pub p2p_port: u16,
    /// Each node's offered capacity.
    pub node_cores: String,
    pub node_memory: String,
    /// No progress lines on stderr.
    pub quiet: bool,
}

/// A running local network: its processes (killed on drop), a client of its validators
/// (validator 0 first), and the funded faucet key.
pub struct Local {
    pub children: Children,
    pub client: Client,
    pub faucet: Keypair,
    pub logs: PathBuf,
    /// Every validator's API, in order.
    pub apis: Vec<String>,
}

/// [`start_local`], then the built-in programs deployed (their ids, in [`PROGRAMS`] order) and
/// every prover node registered: what the benchmarks start from.
pub async fn start_deployed(
    spec: &LocalSpec,
    programs_dir: &Path,
) -> Result<(Local, provernet_sdk::Status, Vec<provernet_types::ProgramId>)> {
    let mut local = start_local(spec).await?;
    let status = local.client.status().await?;
    let ids =
        deploy_builtin(&local.client, &local.faucet, &status.chain_id, programs_dir, true).await?;
    wait_registered(&local.client, &mut local.children, &local.logs, spec.provers).await?;
    Ok((local, status, ids))
}

/// Creates a network of `spec.validators` validators in `spec.dir` with `spec.provers` funded
/// prover nodes spread across them, and starts them all as processes of this binary. Returns
/// once every validator's API answers; the nodes register on their own (see
/// [`wait_registered`]).
pub async fn start_local(spec: &LocalSpec) -> Result<Local> {
    let dir = &spec.dir;
    if dir.exists() {
        say(spec.quiet, format!("clearing {}", dir.display()));
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    // Prover keys first, so genesis can fund them.
    let mut prover_keys = Vec::new();
    for i in 0..spec.provers {
        let key = Keypair::generate();
        let pdir = dir.join(format!("prover-{i}"));
        std::fs::create_dir_all(&pdir)?;
        let file = AccountKeyFile { seed: hex::encode(key.seed()) };
        crate::network_cmd::write_secret(
            &pdir.join("key.json"),
            &serde_json::to_string_pretty(&file)?,
        )?;
        prover_keys.push(key);
    }
    let genesis = GenesisArgs {
        out: dir.join("network"),
        validators: spec.validators,
        host: "127.0.0.1".into(),
        base_port: spec.p2p_port,
        api_port: spec.api_port,
        chain_id: "provernet-devnet".into(),
        faucet: MicroCredits(1_000_000 * MicroCredits::PER_CREDIT),
        fund: prover_keys.iter().map(|k| format!("{}=1000", k.account())).collect(),
        json: false,
        tweak: None,
    };
    create_network(&genesis)?;
    let faucet =
        Keypair::from_seed(crate::network_cmd::read_seed(&dir.join("network/faucet.json"))?);
    let mut children = Children(Vec::new());
    let apis: Vec<String> = (0..spec.validators)
        .map(|v| format!("http://127.0.0.1:{}", spec.api_port as usize + v))
        .collect();
    for v in 0..spec.validators {
        let toml = dir.join(format!("network/validator-{v}/validator.toml"));
        let (name, log) = if spec.validators == 1 {
            ("validator".to_owned(), logs.join("validator.log"))
        } else {
            (format!("validator {v}"), logs.join(format!("validator-{v}.log")))
        };
        children.spawn(&name, &["validator", "--config", &toml.to_string_lossy()], &log)?;
    }
    let start = Instant::now();
    for api in &apis {
        let c = Client::new(api)?;
        loop {
            children.check(&logs)?;
            if c.status().await.is_ok() {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the validator API at {api} did not come up in 60 s; see {}", logs.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let client = Client::new(&apis.join(","))?;
    if spec.validators == 1 {
        say(spec.quiet, format!("validator up, API at {}", apis[0]));
    } else {
        say(spec.quiet, format!("{} validators up, APIs at {}", spec.validators, apis.join(", ")));
    }
    for i in 0..spec.provers {
        let pdir = dir.join(format!("prover-{i}"));
        // Each node talks to its own validator first, then the others in turn.
        let own: Vec<String> = (0..spec.validators)
            .map(|k| format!("\"{}\"", apis[(i + k) % spec.validators]))
            .collect();
        let toml = format!(
            "api = [{}]\nkey = \"key.json\"\ndata_dir = \"data\"\nstake = \"100\"\ncores = \"{}\"\nmemory = \"{}\"\ngpus = 0\n",
            own.join(", "),
            spec.node_cores,
            spec.node_memory
        );
        let cfg = pdir.join("node.toml");
        std::fs::write(&cfg, toml)?;
        children.spawn(
            &format!("prover node {i}"),
            &["node", "--config", &cfg.to_string_lossy()],
            &logs.join(format!("prover-{i}.log")),
        )?;
    }
    Ok(Local { children, client, faucet, logs, apis })
}

/// Waits until `n` provers are registered (60 s at most).
pub async fn wait_registered(
    client: &Client,
    children: &mut Children,
    logs: &Path,
    n: usize,
) -> Result<()> {
    let start = Instant::now();
    loop {
        children.check(logs)?;
        let have = client.provers(None).await?.items.len();
        if have >= n {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("only {have} of {n} prover nodes registered in 60 s; see {}", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn name(s: &str) -> Result<FileName> {
    s.parse().map_err(|e| anyhow!("file name {s}: {e}"))
}

/// Deploys the built-in programs (in [`PROGRAMS`] order); their ids.
pub async fn deploy_builtin(
    client: &Client,
    faucet: &Keypair,
    chain_id: &str,
    programs_dir: &Path,
    quiet: bool,
) -> Result<Vec<provernet_types::ProgramId>> {
    let mut program_ids = Vec::new();
    for p in &PROGRAMS {
        let prover = program_code(client, faucet, chain_id, programs_dir, p.prover, p.name).await?;
        let verifier = match p.check {
            Check::Committee(exe) => VerifierSpec::Program {
                blob: program_code(
                    client,
                    faucet,
                    chain_id,
                    programs_dir,
                    exe,
                    &format!("{}'s verifier", p.name),
                )
                .await?,
                limits: provernet_types::VerifierLimits::DEFAULT,
            },
            Check::Builtin(kind) => VerifierSpec::Builtin(kind),
        };
        let manifest = ProgramManifest {
            name: name(p.name)?,
            prover,
            verifier,
            default_resources: Resources {
                cores: MilliCores(1000),
                memory: Bytes(1 << 30),
                gpus: GpuCount(0),
            },
            default_time_limit: Seconds(60),
            requires: BoundedVec::default(),
            inputs: BoundedVec::try_from_vec(
                p.inputs.iter().map(|n| name(n)).collect::<Result<Vec<_>>>()?,
            )
            .map_err(|_| anyhow!("too many inputs"))?,
            outputs: BoundedVec::try_from_vec(vec![name("proof")?])
                .map_err(|_| anyhow!("too many outputs"))?,
        };
        program_ids.push(manifest.id());
        transact(client, faucet, chain_id, TxBody::RegisterProgram { manifest }).await?;
        say(quiet, format!("deployed {}", p.name));
    }
    Ok(program_ids)
}

/// A program's code from the workspace binary `exe`: packaged as an image of it over the
/// libraries it loads (a network program sees only its own files), or as it is when static.
async fn program_code(
    client: &Client,
    faucet: &Keypair,
    chain_id: &str,
    programs_dir: &Path,
    exe: &str,
    what: &str,
) -> Result<provernet_types::Code> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let layout = scratch.path().join(exe);
    let path = programs_dir.join(exe);
    let packaged = provernet_image::build::package(&layout, &path, exe)
        .with_context(|| format!("packaging {exe} as an image"))?;
    if packaged.is_none() {
        return Ok(client.upload(faucet, chain_id, std::fs::read(&path)?).await?.into());
    }
    let image = crate::requester::read_image(&layout, &scratch.path().join("measure"))?;
    crate::requester::upload_image(client, faucet, chain_id, what, &image, true).await
}

async fn drive(
    args: &DevnetArgs,
    client: &Client,
    faucet: &Keypair,
    programs_dir: &Path,
    children: &mut Children,
    logs: &Path,
) -> Result<Summary> {
    let chain_id = client.status().await?.chain_id;
    let program_ids = deploy_builtin(client, faucet, &chain_id, programs_dir, args.json).await?;
    wait_registered(client, children, logs, args.provers).await?;
    say(args.json, format!("{} prover nodes registered", args.provers));
    // Inputs. Groth16's keys come from an INSECURE fixed-seed setup (devnet only).
    let (pk, vk) = groth16_sha256::setup_insecure(64, [7; 32]).map_err(|e| anyhow!("{e}"))?;
    let pk = client.upload(faucet, &chain_id, pk.to_bytes()).await?;
    let vk = client.upload(faucet, &chain_id, vk.to_bytes()).await?;
    let mut jobs: Vec<(String, provernet_types::JobId)> = Vec::new();
    for i in 0..args.jobs_per_program {
        for (p, program) in
            PROGRAMS.iter().zip(&program_ids).filter(|(p, _)| !p.name.ends_with("-join"))
        {
            let inputs: Vec<(&str, Vec<u8>)> = match p.name {
                "groth16-sha256" => {
                    let preimage: Vec<u8> =
                        (0..64u8).map(|b| b.wrapping_mul(31).wrapping_add(i as u8)).collect();
                    let digest = groth16_sha256::sha256(&preimage).to_vec();
                    vec![("preimage", preimage), ("digest", digest)]
                }
                "winterfell-chain" => {
                    vec![("statement", format!("{} {}", 3 + i, 1 << 12).into_bytes())]
                }
                _ => vec![("statement", format!("{} {}", 11 + i, 32).into_bytes())],
            };
            let mut named = Vec::new();
            if p.name == "groth16-sha256" {
                named.push(NamedBlob { name: name("pk")?, blob: pk });
                named.push(NamedBlob { name: name("vk")?, blob: vk });
            }
            for (n, bytes) in inputs {
                named.push(NamedBlob {
                    name: name(n)?,
                    blob: client.upload(faucet, &chain_id, bytes).await?,
                });
            }
            let id = submit_job(client, faucet, &chain_id, *program, named).await?;
            say(args.json, format!("submitted {} job {}", p.name, short(&id.to_string())));
            jobs.push((p.name.to_owned(), id));
        }
    }
    // The segmented proof as a workflow the chain runs: one chain cut into SEGMENTS leaves and
    // a binary tree of joins, submitted in one transaction. Its node jobs' ids are known now.
    let flow = crate::workflow_cmd::segmented_tree(5, SEGMENT_ROWS, SEGMENTS, 2, Seconds(60))?;
    let resolved = crate::workflow_cmd::resolve(client, &flow, Path::new(".")).await?;
    let names: Vec<provernet_types::FileName> =
        resolved.spec.nodes.iter().map(|n| n.name.clone()).collect();
    let workflow =
        crate::workflow_cmd::submit_resolved(client, faucet, &chain_id, resolved, true).await?;
    say(
        args.json,
        format!(
            "submitted workflow {} ({SEGMENTS} segments and {} joins)",
            short(&workflow.to_string()),
            names.len() - SEGMENTS
        ),
    );
    // Each job's workflow node, if it is one; the nodes' programs as the file names them.
    let mut nodes: Vec<Option<String>> = vec![None; jobs.len()];
    for (n, file) in names.iter().zip(&flow.nodes) {
        jobs.push((file.program.clone(), provernet_types::workflow::node_job_id(&workflow, n)));
        nodes.push(Some(n.to_string()));
    }
    let started = Instant::now();
    let views = follow(args, client, children, logs, &jobs, Some(&workflow), started).await?;
    let tree = client.workflow(&workflow).await?.ok_or_else(|| anyhow!("the workflow is gone"))?;
    if !args.json {
        eprint!("{}", crate::workflow_cmd::render(client, &tree).await);
    }
    // A node skipped after a failure never became a job: it has no row.
    let rows: Vec<JobRow> = jobs
        .iter()
        .zip(&views)
        .enumerate()
        .filter_map(|(i, (job, v))| v.as_ref().map(|v| (i, (job, v))))
        .map(|(i, ((program, id), v))| {
            let winner = v.winner.and_then(|w| v.attempts.get(usize::from(w)));
            let fee = v.fee_per_prover_micro_credits.0;
            let paid = match v.status {
                JobStatus::Verified => fee.saturating_sub(v.fallback_refund_micro_credits.0),
                JobStatus::FailedProgram => fee,
                _ => 0,
            };
            JobRow {
                job: *id,
                program: program.clone(),
                node: nodes[i].clone(),
                state: v.status,
                provers: v.attempts.iter().map(|a| short(&a.prover.to_string())).collect(),
                attempts: v.attempts.len(),
                prove_ms: winner.map(|a| a.usage.wall_ms),
                verify: winner.map(|a| a.state),
                fee_micro_credits: paid,
            }
        })
        .collect();
    let all_verified = rows.iter().all(|r| r.state == JobStatus::Verified);
    Ok(Summary {
        chain_id,
        api: client.base().to_owned(),
        validators: args.validators,
        provers: args.provers,
        elapsed_s: started.elapsed().as_secs_f64(),
        all_verified: all_verified && tree.status == provernet_sdk::types::WorkflowStatus::Verified,
        workflow: WorkflowRow { id: workflow, status: tree.status, nodes: tree.nodes.len() },
        jobs: rows,
    })
}

/// What `devnet --json` prints.
#[derive(Debug, serde::Serialize)]
struct Summary {
    chain_id: String,
    api: String,
    validators: usize,
    provers: usize,
    elapsed_s: f64,
    all_verified: bool,
    /// The segmented proof's workflow.
    workflow: WorkflowRow,
    jobs: Vec<JobRow>,
}

#[derive(Debug, serde::Serialize)]
struct WorkflowRow {
    id: provernet_types::WorkflowId,
    status: provernet_sdk::types::WorkflowStatus,
    nodes: usize,
}

/// One job of the batch.
#[derive(Debug, serde::Serialize)]
struct JobRow {
    job: provernet_types::JobId,
    program: String,
    /// The workflow node the job is, if it is one.
    node: Option<String>,
    state: JobStatus,
    provers: Vec<String>,
    attempts: usize,
    prove_ms: Option<u64>,
    verify: Option<provernet_sdk::types::AttemptState>,
    fee_micro_credits: u64,
}

async fn submit_job(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    program: provernet_types::ProgramId,
    inputs: Vec<NamedBlob>,
) -> Result<provernet_types::JobId> {
    let spec = JobSpec {
        program,
        inputs: BoundedVec::try_from_vec(inputs).map_err(|_| anyhow!("too many inputs"))?,
        resources: None,
        time_limit: Seconds(60),
        redundancy: 1,
        prover_set: ProverSet::Any,
        mechanism: MechanismKind::RandomWithFallback,
        max_fee: MicroCredits(100 * MicroCredits::PER_CREDIT),
    };
    let nonce = transact(client, key, chain_id, TxBody::SubmitJob(spec)).await?;
    Ok(provernet_types::tx::job_id(&key.account(), provernet_types::Nonce(nonce)))
}

/// Follows `jobs` until every one is final, printing each change; their final views.
async fn follow(
    args: &DevnetArgs,
    client: &Client,
    children: &mut Children,
    logs: &Path,
    jobs: &[(String, provernet_types::JobId)],
    workflow: Option<&provernet_types::WorkflowId>,
    started: Instant,
) -> Result<Vec<Option<Job>>> {
    let mut last: Vec<String> = vec![String::new(); jobs.len()];
    let mut views: Vec<Option<Job>> = vec![None; jobs.len()];
    loop {
        children.check(logs)?;
        // A workflow's node that is not a job once the workflow is final was skipped.
        let skipped = match workflow {
            Some(w) => client.workflow(w).await?.is_some_and(|w| w.is_final),
            None => false,
        };
        let mut all_final = true;
        for (i, (program, id)) in jobs.iter().enumerate() {
            let Some(v) = client.job(id).await? else {
                all_final &= skipped;
                continue;
            };
            let status = v.status.name().to_owned();
            if status != last[i] {
                say(
                    args.json,
                    format!(
                        "[{:>5.1}s] {} {program}: {status}",
                        started.elapsed().as_secs_f64(),
                        short(&id.to_string())
                    ),
                );
                last[i] = status;
            }
            all_final &= v.is_final;
            views[i] = Some(v);
        }
        if all_final {
            return Ok(views);
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("jobs were not final after 10 minutes; see {}", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn short(s: &str) -> String {
    s.chars().take(8).collect()
}

fn print_table(summary: &Summary) {
    println!(
        "{:<9} {:<34} {:<10} {:<28} {:>8} {:>9} {:<9} {:>12}",
        "job",
        "program (workflow node)",
        "state",
        "prover(s)",
        "attempts",
        "prove",
        "verify",
        "fee (cr)"
    );
    for r in &summary.jobs {
        let program = match &r.node {
            Some(n) => format!("{} ({n})", r.program),
            None => r.program.clone(),
        };
        println!(
            "{:<9} {:<34} {:<10} {:<28} {:>8} {:>9} {:<9} {:>12}",
            short(&r.job.to_string()),
            program,
            r.state.name(),
            r.provers.join(","),
            r.attempts,
            r.prove_ms.map_or("-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0)),
            r.verify.map_or("-".to_owned(), |s| s.name().to_owned()),
            format!("{:.6}", r.fee_micro_credits as f64 / 1e6),
        );
    }
    println!(
        "{} jobs, all verified: {}, in {:.1} s",
        summary.jobs.len(),
        summary.all_verified,
        summary.elapsed_s
    );
}
