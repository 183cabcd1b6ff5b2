//! `provernet program run | verify`: a program author's local test bench, under the same
//! sandbox, limits and contract a prover node applies.

use anyhow::{Context, Result};
use provernet_sandbox::plan::RootFs;
use provernet_sandbox::{proof_files, Helper, Limits, Outcome, Run, Sandbox, Termination};
use provernet_types::{Bytes, FileName, MilliCores, Seconds};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum ProgramCommand {
    /// Run a prover: inputs under /job/in, proof files from /job/out into --out.
    Run(RunArgs),
    /// Run a verifier against a proof directory: exit 0 valid, 1 invalid, 2 verifier error.
    Verify(VerifyArgs),
    /// Upload a prover and its verifier and register them as a program on the chain.
    Deploy(crate::requester::DeployArgs),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// An input as `name=path`; the program reads it at /job/in/<name>. Repeat for more.
    #[arg(long = "input", value_parser = parse_input)]
    inputs: Vec<(FileName, PathBuf)>,
    /// CPU cores: `2`, `1.5`, `500m`.
    #[arg(long, default_value = "1")]
    cores: MilliCores,
    /// Memory limit with a unit: `2GiB`, `512MiB`.
    #[arg(long, default_value = "1GiB")]
    memory: Bytes,
    /// Wall-clock limit: `60s`, `5m`.
    #[arg(long, default_value = "60s")]
    time: Seconds,
    /// Dedicated host CPUs (`0,1`); without it a CPU bandwidth quota of --cores applies.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<u32>,
    /// Host GPU indices to give the program (`0,1`).
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<u32>,
    /// Show the program the host's `/usr` (local experiments only). Without it the program sees
    /// what it would on a prover node: only its own files (a static executable alone; an
    /// executable that needs libraries, or a script, packaged as `program deploy` would, with
    /// what it loads here).
    #[arg(long)]
    host_root: bool,
    /// Where runs keep their scratch directories.
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Run even if this host cannot enforce a limit (no delegated cgroups, no Landlock); the
    /// report says what was enforced. Local runs only: a prover node never does this.
    #[arg(long)]
    degraded: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The prover executable.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    prover: Option<PathBuf>,
    /// The prover as an OCI image (a layout directory or an archive), run as a node runs it:
    /// Entrypoint then Cmd, in the image's own read-only root.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Directory for the proof files (must be empty or absent).
    #[arg(long)]
    out: PathBuf,
    /// Cap on the total size of /job/out.
    #[arg(long, default_value = "1GiB")]
    out_max: Bytes,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The verifier executable.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    verifier: Option<PathBuf>,
    /// The verifier as an OCI image (as `program run --image`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Directory of proof files; the verifier reads them at /job/proof/<name>.
    #[arg(long)]
    proof: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Parses `name=path`, checking the name against the program contract.
pub fn parse_input(s: &str) -> Result<(FileName, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or_else(|| format!("`{s}` is not name=path"))?;
    let name = name.parse::<FileName>().map_err(|e| e.to_string())?;
    Ok((name, PathBuf::from(path)))
}

fn sandbox(common: &Common) -> Result<Sandbox> {
    let exe = std::env::current_exe().context("locating the provernet executable")?;
    let scratch =
        common.scratch.clone().unwrap_or_else(|| std::env::temp_dir().join("provernet-sandbox"));
    let sandbox = Sandbox::new(Helper::SelfExec(exe), scratch)?;
    Ok(if common.degraded { sandbox.degraded() } else { sandbox })
}

/// The program to run: an executable, or an image unpacked into a cache under the scratch
/// directory (kept while the returned guard lives).
fn code(
    common: &Common,
    exe: Option<PathBuf>,
    image: Option<PathBuf>,
) -> Result<(PathBuf, RootFs, Option<provernet_image::Prepared>)> {
    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let image = match (image, exe) {
        (Some(image), _) => image,
        (None, Some(exe)) if common.host_root => return Ok((exe, RootFs::Host, None)),
        (None, Some(exe)) => {
            // As `program deploy` ships it, and as a node runs it.
            let layout = work.path().join("packaged");
            let name =
                exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match provernet_image::build::package(&layout, &exe, &name)
                .with_context(|| format!("{}", exe.display()))?
            {
                None => return Ok((exe, RootFs::Empty, None)),
                Some(_) => layout,
            }
        }
        (None, None) => anyhow::bail!("pass an executable or --image"),
    };
    let scratch =
        common.scratch.clone().unwrap_or_else(|| std::env::temp_dir().join("provernet-sandbox"));
    let cache = provernet_image::Cache::open(&scratch.join("images"), u64::MAX)?;
    let layout = work.path().join("layout");
    std::fs::create_dir_all(&layout).context("creating a scratch directory")?;
    let p = provernet_image::prepare_local(&image, &cache, &layout)
        .with_context(|| format!("the image {}", image.display()))?;
    let rootfs = RootFs::Image(provernet_sandbox::plan::ImageRun {
        root: p.root.path.clone(),
        argv: p.run.argv(),
        env: p.run.env_pairs(),
        workdir: p.run.workdir(),
    });
    Ok((PathBuf::new(), rootfs, Some(p)))
}

fn make_run(
    common: &Common,
    program: PathBuf,
    rootfs: RootFs,
    out: PathBuf,
    proof: Vec<(FileName, PathBuf)>,
) -> Result<Run> {
    let mut inputs = Vec::new();
    for (name, path) in &common.inputs {
        let size = std::fs::metadata(path)
            .with_context(|| format!("input `{name}`: {}", path.display()))?
            .len();
        inputs.push((name.clone(), path.clone(), Bytes(size)));
    }
    let mut limits = Limits::new(common.cores, common.memory, Duration::from_secs(common.time.0));
    limits.cpuset = (!common.cpus.is_empty()).then(|| common.cpus.clone());
    Ok(Run {
        job_id: "local".into(),
        program,
        args: vec![],
        inputs,
        proof,
        out_dir: out,
        limits,
        gpus: common.gpus.clone(),
        rootfs,
    })
}

fn describe(o: &Outcome) -> String {
    let mut s = format!("{:?} after {:.2}s wall", o.termination, o.wall.as_secs_f64());
    if let Some(cpu) = o.cpu {
        s.push_str(&format!(", {:.2}s CPU", cpu.as_secs_f64()));
    }
    if let Some(m) = o.peak_memory {
        s.push_str(&format!(", peak memory {} MiB", m.0 >> 20));
    }
    s
}

pub fn run(cmd: ProgramCommand) -> Result<()> {
    match cmd {
        ProgramCommand::Deploy(a) => crate::requester::deploy(a),
        ProgramCommand::Run(a) => {
            let sb = sandbox(&a.common)?;
            let (exe, rootfs, _image) = code(&a.common, a.prover, a.image)?;
            let mut run = make_run(&a.common, exe, rootfs, a.out.clone(), vec![])?;
            run.limits.out_max = a.out_max;
            let o = sb.run(&run)?;
            if a.common.json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                println!("{}", describe(&o));
                for (name, size) in &o.outputs {
                    println!("  {name} ({size}) → {}", a.out.join(name.as_str()).display());
                }
            }
            if !o.succeeded() {
                let why = match o.termination {
                    Termination::TimedOut => "the prover did not finish within --time".to_owned(),
                    Termination::OutOfMemory => "the prover ran out of --memory".to_owned(),
                    _ if o.output_too_large => "the proof files exceeded --out-max".to_owned(),
                    t => format!("the prover failed ({t:?})"),
                };
                let tail = o.stderr_tail.trim();
                return Err(anyhow::Error::new(crate::Hint(format!(
                    "its stderr ended with:\n{tail}"
                )))
                .context(why));
            }
            Ok(())
        }
        ProgramCommand::Verify(a) => {
            let sb = sandbox(&a.common)?;
            let proof = proof_files(&a.proof, None)?;
            let out =
                std::env::temp_dir().join(format!("provernet-verify-out-{}", std::process::id()));
            let (exe, rootfs, _image) = code(&a.common, a.verifier, a.image)?;
            let run = make_run(&a.common, exe, rootfs, out.clone(), proof)?;
            let o = sb.run(&run);
            let _ = std::fs::remove_dir_all(&out);
            let o = o?;
            let verdict = match o.termination {
                Termination::Exited(0) => "VALID",
                Termination::Exited(1) => "INVALID",
                _ => "ERROR",
            };
            if a.common.json {
                println!("{}", serde_json::json!({ "verdict": verdict, "outcome": o }));
            } else {
                println!("{verdict}: {}", describe(&o));
                if verdict != "VALID" && !o.stderr_tail.trim().is_empty() {
                    println!("{}", o.stderr_tail.trim());
                }
            }
            std::process::exit(match verdict {
                "VALID" => 0,
                "INVALID" => 1,
                _ => 2,
            })
        }
    }
}
