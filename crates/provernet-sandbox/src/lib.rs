//! Run an untrusted prover or verifier executable under Linux isolation, within its resources
//! and time limit.
//!
//! The program contract (BRIEF §5): the program sees its inputs read-only at `/job/in/<name>`,
//! writes its proof files to `/job/out/` (capped), a verifier also sees `/job/proof/<name>`; it
//! has no network, its own PID, mount, IPC and UTS namespaces, an unprivileged uid with no
//! capabilities in a user namespace of its own that maps only that uid, Landlock and seccomp restrictions, the job's memory, CPU and process limits in
//! a cgroup, and a hard wall-clock limit after which its whole process tree is killed.
//!
//! The namespace work happens in a single-threaded helper executable
//! (`provernet-sandbox-exec`, see [`exec`]); this library validates the job, prepares the
//! cgroup and the filesystem plan ([`plan`]), starts the helper, enforces the wall-clock limit,
//! and reads the accounting back. Requires root (or `CAP_SYS_ADMIN`) on Linux.

pub mod cgroup;
pub mod exec;
pub mod host;
pub mod nvidia;
pub mod plan;

use cgroup::{CgroupLimits, Enforced, Hierarchies, JobCgroup};
use exec::{ExecConfig, ExecReport, ExitKind};
use plan::{cuda_visible_devices, device_nodes, PlanInput, RootFs};
use provernet_types::{Bytes, FileName, MilliCores};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes of the program's stderr kept as the failure reason.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// Largest report the helper may print.
const REPORT_BYTES_MAX: u64 = 1 << 20;
/// The uid and gid a program runs as unless the node assigns one per slot (`Limits::uid`).
pub const SANDBOX_UID: u32 = 65534;
/// Default caps.
pub const OUT_MAX_DEFAULT: Bytes = Bytes(1 << 30);
pub const PIDS_MAX_DEFAULT: u32 = 1024;
pub const NOFILE_MAX_DEFAULT: u64 = 4096;

/// The resources and limits of one run.
#[derive(Clone, Debug)]
pub struct Limits {
    pub cores: MilliCores,
    pub memory: Bytes,
    pub wall: Duration,
    /// Total size of `/job/out`.
    pub out_max: Bytes,
    /// Size of `/tmp` (it counts against `memory` too).
    pub tmp_max: Bytes,
    pub pids: u32,
    pub nofile: u64,
    /// Dedicated host CPUs for the job, if the node assigns them; otherwise a CPU bandwidth
    /// quota of `cores` limits it.
    pub cpuset: Option<Vec<u32>>,
    /// The uid and gid the program runs as. A node gives each concurrent slot its own (e.g.
    /// 100000 + slot) so that jobs cannot signal or ptrace each other and per-uid limits are
    /// per job. Never 0.
    pub uid: u32,
}

impl Limits {
    pub fn new(cores: MilliCores, memory: Bytes, wall: Duration) -> Limits {
        Limits {
            cores,
            memory,
            wall,
            out_max: OUT_MAX_DEFAULT,
            tmp_max: Bytes(memory.0 / 2),
            pids: PIDS_MAX_DEFAULT,
            nofile: NOFILE_MAX_DEFAULT,
            cpuset: None,
            uid: SANDBOX_UID,
        }
    }
}

/// One program to run.
#[derive(Clone, Debug)]
pub struct Run {
    pub job_id: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Inputs: name, host file, and the size the job declared for it.
    pub inputs: Vec<(FileName, PathBuf, Bytes)>,
    /// A verifier's proof files.
    pub proof: Vec<(FileName, PathBuf)>,
    /// Where the program's output files end up. Must not exist yet, or be empty.
    pub out_dir: PathBuf,
    pub limits: Limits,
    /// Host GPU indices assigned to the job.
    pub gpus: Vec<u32>,
    pub rootfs: RootFs,
}

/// How the program ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it (other than the watchdog or the OOM killer).
    Signaled(i32),
    /// The wall-clock limit passed; the whole tree was killed.
    TimedOut,
    /// It ran out of its memory limit and the kernel killed it.
    OutOfMemory,
}

/// What happened in one run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub termination: Termination,
    /// `/job/out` reached its cap.
    pub output_too_large: bool,
    pub wall: Duration,
    /// CPU time of the whole process tree (from the cgroup), if accounted.
    pub cpu: Option<Duration>,
    pub peak_memory: Option<Bytes>,
    pub stderr_tail: String,
    /// Files the program wrote to `/job/out`, now in `out_dir`.
    pub outputs: Vec<(FileName, Bytes)>,
    /// Entries of `/job/out` that are not plain files with valid names; not copied.
    pub unexpected_outputs: Vec<String>,
    pub leftover_processes_killed: u32,
    pub enforced: Enforced,
    /// Time from the call to the helper starting the program's setup.
    pub startup: Duration,
}

impl Outcome {
    /// Exit 0, within every limit.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited(0) && !self.output_too_large
    }
}

/// Why a run could not start. Nothing was run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("program {0} does not exist or is not a file")]
    MissingProgram(PathBuf),
    #[error(
        "program {0} is neither a Linux ELF executable nor a `#!` script; build it for \
         x86_64-unknown-linux, or start a script with `#!/usr/bin/python3` or the like"
    )]
    NotElf(PathBuf),
    #[error(
        "the image names nothing to run: give it an Entrypoint or a Cmd (Dockerfile ENTRYPOINT \
         [\"/usr/local/bin/prover\"])"
    )]
    NoEntrypoint,
    #[error(
        "the job has GPUs but this host runs no NVIDIA driver (no /sys/module/nvidia/version): \
         the driver's libraries cannot be given to the image"
    )]
    NoDriver,
    #[error(
        "the image requires CUDA {}.{} (NVIDIA_REQUIRE_CUDA) but this host's driver {driver} \
         serves CUDA {}.{} at most; run it on a node with a newer driver",
        required.0, required.1, serves.0, serves.1
    )]
    CudaTooOld { required: (u32, u32), serves: (u32, u32), driver: String },
    #[error("input `{name}` ({path}) does not exist or is not a file")]
    MissingInput { name: FileName, path: PathBuf },
    #[error("input `{name}` is {actual} bytes, larger than its declared {declared}")]
    InputTooLarge { name: FileName, declared: Bytes, actual: Bytes },
    #[error("name `{0}` is given twice")]
    DuplicateName(FileName),
    #[error("proof file `{name}` ({path}) does not exist or is not a file")]
    MissingProof { name: FileName, path: PathBuf },
    #[error("output directory {0} exists and is not empty")]
    OutDirNotEmpty(PathBuf),
    #[error("invalid limits: {0}")]
    BadLimits(&'static str),
    #[error("the sandbox helper {0} is missing; it is installed next to the provernet binary")]
    NoHelper(PathBuf),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error(
        "this host cannot enforce the job's {0} limit, so the job was not run; delegate the \
         cgroup controllers to the node (systemd `Delegate=yes`, or run it as root on a host \
         with cgroup v2). A local `provernet program run --degraded` runs without it"
    )]
    NotEnforced(&'static str),
}

/// The driver's directories first on the image's library path, its tools last on `PATH`.
fn add_driver_paths(env: &mut Vec<(String, String)>) {
    let lib = format!("/{}", nvidia::JOB_LIB_DIR);
    let bin = format!("/{}", nvidia::JOB_BIN_DIR);
    let mut set = |key: &str, f: &dyn Fn(Option<&str>) -> String| {
        let old = env.iter().position(|(k, _)| k == key);
        let value = f(old.map(|i| env[i].1.as_str()));
        match old {
            Some(i) => env[i].1 = value,
            None => env.push((key.to_owned(), value)),
        }
    };
    set("LD_LIBRARY_PATH", &|old| match old {
        Some(o) if !o.is_empty() => format!("{lib}:{o}"),
        _ => lib.clone(),
    });
    set("PATH", &|old| match old {
        Some(o) if !o.is_empty() => format!("{o}:{bin}"),
        _ => format!("/usr/local/bin:/usr/bin:/bin:{bin}"),
    });
}

/// An image's `Env` with the job's variables on top; the image's `PATH` wins over the
/// sandbox's default, since only the image knows where its programs are.
pub fn image_env(image: &[(String, String)], job: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let image_path = image.iter().any(|(k, _)| k == "PATH");
    for (k, v) in job {
        if k == "PATH" && image_path {
            continue;
        }
        out.push((k, v));
    }
    for (k, v) in image {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

/// Lists a proof directory, refusing anything that is not a plain file with a contract name,
/// and any file not in `expected` when it is given.
pub fn proof_files(
    dir: &Path,
    expected: Option<&[FileName]>,
) -> Result<Vec<(FileName, PathBuf)>, SandboxError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
        let raw = entry.file_name().to_string_lossy().into_owned();
        let name: FileName = raw.parse().map_err(|_| {
            SandboxError::Setup(format!(
                "proof directory {} has an unexpected entry `{raw}`",
                dir.display()
            ))
        })?;
        let is_file = entry.path().symlink_metadata().is_ok_and(|m| m.is_file());
        let wanted = expected.is_none_or(|e| e.contains(&name));
        if !is_file || !wanted {
            return Err(SandboxError::Setup(format!(
                "proof directory {} has an unexpected entry `{raw}`",
                dir.display()
            )));
        }
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// The environment variable that turns a binary into the sandbox helper (see [`Helper`]).
pub const HELPER_ENV: &str = "PROVERNET_SANDBOX_HELPER";

/// Call first thing in `main` of a binary used as [`Helper::SelfExec`]: when the sandbox
/// started this process as its helper, this runs the helper and never returns.
pub fn run_if_helper() {
    if std::env::var_os(HELPER_ENV).is_some() {
        exec::helper_main();
    }
}

/// How the sandbox starts its (single-threaded) helper process.
#[derive(Clone, Debug)]
pub enum Helper {
    /// The dedicated `provernet-sandbox-exec` binary.
    Binary(PathBuf),
    /// Re-execute this binary with [`HELPER_ENV`] set; its `main` calls [`run_if_helper`].
    SelfExec(PathBuf),
}

impl Helper {
    fn path(&self) -> &Path {
        match self {
            Helper::Binary(p) | Helper::SelfExec(p) => p,
        }
    }
}

/// A configured sandbox on this host.
#[derive(Debug)]
pub struct Sandbox {
    helper: Helper,
    scratch: PathBuf,
    cgroups: Hierarchies,
    /// Run even where a limit or a protection cannot be applied (see [`Sandbox::degraded`]).
    degraded: bool,
    /// Protections a degraded sandbox leaves off, to find which one a program trips over.
    lifted: Lifted,
}

/// Protections left off for a diagnosis (see [`Sandbox::lift`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifted {
    pub seccomp: bool,
    pub landlock: bool,
    pub user_namespace: bool,
}

impl Sandbox {
    /// Runs programs even where this host cannot enforce a limit (a missing cgroup
    /// controller) or Landlock, with whatever isolation is left; [`Outcome::enforced`] says
    /// what was. For a developer's local runs only: a prover node never runs a network job
    /// this way, because a job that escapes its memory or CPU limit takes them from the other
    /// jobs and the node itself. Without it, such a run fails with
    /// [`SandboxError::NotEnforced`] before anything starts.
    pub fn degraded(mut self) -> Sandbox {
        self.degraded = true;
        self
    }

    /// Leaves the given protections off, to find which one a program that fails in the sandbox
    /// trips over (a GPU runtime, say). Only for a [`Sandbox::degraded`] sandbox: ignored
    /// otherwise, so a prover node can never run a job this way.
    pub fn lift(mut self, lifted: Lifted) -> Sandbox {
        self.lifted = lifted;
        self
    }

    /// Uses no cgroups: no memory, CPU or pids limits and no exact accounting, only the
    /// namespaces, rlimits and the watchdog. Every run then fails with
    /// [`SandboxError::NotEnforced`] unless the sandbox is also [`Sandbox::degraded`]: for
    /// measuring what cgroups cost, and local runs on hosts without delegated cgroups.
    pub fn without_cgroups(mut self) -> Sandbox {
        self.cgroups = Hierarchies::default();
        self
    }

    /// Uses only the cgroup v2 hierarchy, ignoring v1 controllers: how a v2-only host runs,
    /// and how the v2 path is tested on a hybrid one.
    pub fn cgroup_v2_only(mut self) -> Sandbox {
        self.cgroups = std::mem::take(&mut self.cgroups).v2_only();
        self
    }
}

impl Sandbox {
    /// A sandbox that starts `helper` and keeps per-run scratch directories under `scratch`.
    pub fn new(helper: Helper, scratch: PathBuf) -> Result<Sandbox, SandboxError> {
        if !helper.path().is_file() {
            return Err(SandboxError::NoHelper(helper.path().to_owned()));
        }
        std::fs::create_dir_all(&scratch).map_err(io(format!("creating {}", scratch.display())))?;
        Ok(Sandbox {
            helper,
            scratch,
            cgroups: Hierarchies::detect(),
            degraded: false,
            lifted: Lifted::default(),
        })
    }

    /// A sandbox using [`Sandbox::sibling_helper`]: how tests of workspace crates get one (the
    /// workspace build puts the helper in the same target directory).
    pub fn with_sibling_helper(scratch: PathBuf) -> Result<Sandbox, SandboxError> {
        Sandbox::new(Sandbox::sibling_helper(), scratch)
    }

    /// The `provernet-sandbox-exec` binary next to the running executable, or one directory up
    /// (where cargo puts binaries relative to test executables).
    pub fn sibling_helper() -> Helper {
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let here = dir.join("provernet-sandbox-exec");
        if here.is_file() {
            return Helper::Binary(here);
        }
        Helper::Binary(dir.parent().map(|p| p.join("provernet-sandbox-exec")).unwrap_or(here))
    }

    fn validate(&self, run: &Run) -> Result<(), SandboxError> {
        if let RootFs::Image(image) = &run.rootfs {
            if !image.root.is_dir() {
                return Err(SandboxError::MissingProgram(image.root.clone()));
            }
            if image.argv.first().is_none_or(|a| a.is_empty()) {
                return Err(SandboxError::NoEntrypoint);
            }
        } else {
            let mut head = [0u8; 4];
            let meta = std::fs::metadata(&run.program).ok().filter(|m| m.is_file());
            if meta.is_none() {
                return Err(SandboxError::MissingProgram(run.program.clone()));
            }
            let mut f = std::fs::File::open(&run.program)
                .map_err(io(format!("opening {}", run.program.display())))?;
            if f.read_exact(&mut head).is_err() || (head != *b"\x7fELF" && !head.starts_with(b"#!"))
            {
                return Err(SandboxError::NotElf(run.program.clone()));
            }
        }
        if let Some(dup) = provernet_types::first_duplicate(run.inputs.iter().map(|(n, _, _)| n)) {
            return Err(SandboxError::DuplicateName(dup.clone()));
        }
        for (name, path, declared) in &run.inputs {
            let m = std::fs::metadata(path).ok().filter(|m| m.is_file()).ok_or_else(|| {
                SandboxError::MissingInput { name: name.clone(), path: path.clone() }
            })?;
            if m.len() > declared.0 {
                return Err(SandboxError::InputTooLarge {
                    name: name.clone(),
                    declared: *declared,
                    actual: Bytes(m.len()),
                });
            }
        }
        for (name, path) in &run.proof {
            if !path.is_file() {
                return Err(SandboxError::MissingProof { name: name.clone(), path: path.clone() });
            }
        }
        if run.out_dir.exists() {
            let mut entries = std::fs::read_dir(&run.out_dir)
                .map_err(io(format!("reading {}", run.out_dir.display())))?;
            if entries.next().is_some() {
                return Err(SandboxError::OutDirNotEmpty(run.out_dir.clone()));
            }
        }
        let l = &run.limits;
        if l.uid == 0 || l.uid == u32::MAX {
            return Err(SandboxError::BadLimits(
                "the program must run as an unprivileged uid (not 0)",
            ));
        }
        if l.cpuset.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(SandboxError::BadLimits("an assigned cpuset must name at least one CPU"));
        }
        if l.cores.0 == 0 || l.memory.0 < (16 << 20) || l.wall.is_zero() || l.pids == 0 {
            return Err(SandboxError::BadLimits(
                "cores, 16 MiB of memory, a time limit and one process are the minimum",
            ));
        }
        Ok(())
    }

    /// Runs one program to completion, or until its time limit. Errors mean nothing was run;
    /// everything the program itself did is in the [`Outcome`].
    pub fn run(&self, run: &Run) -> Result<Outcome, SandboxError> {
        let started = Instant::now();
        self.validate(run)?;
        let dir = tempdir_in(&self.scratch, &run.job_id)?;
        let root = dir.join("root");
        let host_out = dir.join("out");
        for d in [&root, &host_out] {
            std::fs::create_dir(d).map_err(io(format!("creating {}", d.display())))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&host_out, std::fs::Permissions::from_mode(0o700))
            .map_err(io("restricting the output directory"))?;
        let result = self.run_in(run, &root, &host_out, started);
        let moved = result.as_ref().ok().map(|_| move_outputs(&host_out, &run.out_dir));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = result?;
        if let Some(m) = moved {
            m?;
        }
        Ok(outcome)
    }

    fn run_in(
        &self,
        run: &Run,
        root: &Path,
        host_out: &Path,
        started: Instant,
    ) -> Result<Outcome, SandboxError> {
        let l = &run.limits;
        let cg_name = format!(
            "provernet-{}",
            root.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let cg = JobCgroup::create(
            &self.cgroups,
            &cg_name,
            CgroupLimits {
                memory_bytes: l.memory.0,
                millicores: l.cores.0,
                pids: l.pids,
                cpuset: l.cpuset.as_deref(),
            },
        );
        if !self.degraded {
            let e = &cg.enforced;
            let cpu = if l.cpuset.is_some() { e.cpuset } else { e.cpu_quota };
            let missing = [(e.memory, "memory"), (cpu, "CPU"), (e.pids, "process-count")]
                .into_iter()
                .find_map(|(ok, what)| (!ok).then_some(what));
            if let Some(what) = missing {
                return Err(SandboxError::NotEnforced(what));
            }
        }
        let devices = device_nodes(&run.gpus, Path::exists);
        // An image's GPU job gets the host driver's libraries, if they serve what it needs.
        let driver = match &run.rootfs {
            RootFs::Image(img) if !run.gpus.is_empty() => {
                let d = nvidia::host_driver().ok_or(SandboxError::NoDriver)?;
                if let (Some(required), Some(serves)) =
                    (nvidia::required_cuda(&img.env), nvidia::cuda_of_driver(&d.version))
                {
                    if required > serves {
                        return Err(SandboxError::CudaTooOld {
                            required,
                            serves,
                            driver: d.version,
                        });
                    }
                }
                Some(d)
            }
            _ => None,
        };
        let inputs: Vec<(String, PathBuf)> =
            run.inputs.iter().map(|(n, p, _)| (n.to_string(), p.clone())).collect();
        let proof: Vec<(String, PathBuf)> =
            run.proof.iter().map(|(n, p)| (n.to_string(), p.clone())).collect();
        let mounts = plan::plan(&PlanInput {
            rootfs: run.rootfs.clone(),
            program: &run.program,
            inputs: &inputs,
            proof: &proof,
            host_out,
            out_max: l.out_max.0,
            tmp_max: l.tmp_max.0,
            devices: &devices,
            sandbox_uid: l.uid,
            driver: driver.as_ref(),
        });
        let threads = l.cores.0.div_ceil(1000).max(1).to_string();
        let mut env = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("TMPDIR".to_owned(), "/tmp".to_owned()),
            ("PROVERNET_JOB_ID".to_owned(), run.job_id.clone()),
            ("PROVERNET_CORES".to_owned(), l.cores.to_string()),
            ("PROVERNET_MEMORY_BYTES".to_owned(), l.memory.0.to_string()),
            ("PROVERNET_GPUS".to_owned(), run.gpus.len().to_string()),
            // Provers size thread pools from the CPU count, which a CPU quota does not change.
            ("RAYON_NUM_THREADS".to_owned(), threads.clone()),
            ("OMP_NUM_THREADS".to_owned(), threads),
        ];
        if let Some(v) = cuda_visible_devices(&run.gpus) {
            // By UUID where the driver says which GPU each minor is: CUDA's own order need not
            // follow the device minors, and it may see GPUs whose nodes the job lacks.
            let v = nvidia::gpu_uuids(Path::new("/proc/driver/nvidia/gpus"), &run.gpus)
                .map_or(v, |u| u.join(","));
            env.push(("CUDA_VISIBLE_DEVICES".to_owned(), v.clone()));
            env.push(("NVIDIA_VISIBLE_DEVICES".to_owned(), v));
            env.push(("CUDA_DEVICE_ORDER".to_owned(), "PCI_BUS_ID".to_owned()));
            env.push(("CUDA_CACHE_PATH".to_owned(), "/tmp/.cuda-cache".to_owned()));
        }
        let image = match &run.rootfs {
            RootFs::Image(img) => {
                env = image_env(&img.env, env);
                if driver.is_some() {
                    add_driver_paths(&mut env);
                }
                let path = env
                    .iter()
                    .find(|(k, _)| k == "PATH")
                    .map(|(_, v)| {
                        v.split(':').filter(|d| !d.is_empty()).map(str::to_owned).collect()
                    })
                    .unwrap_or_default();
                Some(exec::ImageExec { argv: img.argv.clone(), workdir: img.workdir.clone(), path })
            }
            _ => None,
        };
        let config = ExecConfig {
            cgroup_procs: cg.procs_files(),
            root: root.to_owned(),
            mounts,
            args: run.args.clone(),
            env,
            uid: l.uid,
            gid: l.uid,
            nofile: l.nofile,
            nproc: (!cg.enforced.pids).then_some(u64::from(l.pids)),
            seccomp: !(self.degraded && self.lifted.seccomp),
            landlock: !(self.degraded && self.lifted.landlock),
            user_namespace: !(self.degraded && self.lifted.user_namespace),
            gpu: !run.gpus.is_empty(),
            strict: !self.degraded,
            image,
        };
        let config = serde_json::to_vec(&config).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let mut command = std::process::Command::new(self.helper.path());
        if let Helper::SelfExec(_) = self.helper {
            command.env(HELPER_ENV, "1");
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {}", self.helper.path().display())))?;
        let startup = started.elapsed();
        let run_started = Instant::now();
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&config).map_err(io("sending the configuration to the helper"))?;
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let report_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = stdout {
                let _ = o.take(REPORT_BYTES_MAX).read_to_string(&mut s);
            }
            s
        });
        let stderr_reader = std::thread::spawn(move || tail(stderr, STDERR_TAIL_BYTES));
        // The watchdog: wait for the helper, or kill the whole tree at the deadline.
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        let timed_out = match rx.recv_timeout(l.wall) {
            Ok(()) => false,
            Err(_) => {
                cg.kill();
                // SIGKILL the helper; its death kills the init, whose death kills every
                // process in the job's PID namespace.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = rx.recv();
                true
            }
        };
        let wall = run_started.elapsed();
        let _ = waiter.join();
        let report_text = report_reader.join().unwrap_or_default();
        let stderr_tail = stderr_reader.join().unwrap_or_default();
        // Killed processes linger in the group until torn down; their CPU time counts.
        cg.wait_empty(Duration::from_secs(5));
        let usage = cg.usage();
        let report: ExecReport = if timed_out {
            ExecReport::default()
        } else {
            serde_json::from_str(report_text.trim()).map_err(|_| {
                SandboxError::Setup(format!(
                    "the helper reported nothing usable; its stderr: {stderr_tail}"
                ))
            })?
        };
        if let Some(e) = report.setup_error {
            return Err(SandboxError::Setup(e));
        }
        let termination = match (timed_out, report.exit) {
            (true, _) => Termination::TimedOut,
            (false, Some(ExitKind::Signaled(9))) if usage.oom_killed => Termination::OutOfMemory,
            (false, Some(ExitKind::Exited(c))) => Termination::Exited(c),
            (false, Some(ExitKind::Signaled(s))) => Termination::Signaled(s),
            (false, None) => Termination::Signaled(9),
        };
        let outputs = report
            .outputs
            .iter()
            .filter_map(|(n, size)| n.parse().ok().map(|n| (n, Bytes(*size))))
            .collect();
        Ok(Outcome {
            termination,
            output_too_large: report.output_full,
            wall,
            cpu: usage.cpu_ns.map(Duration::from_nanos),
            peak_memory: usage.peak_memory.map(Bytes),
            stderr_tail,
            outputs,
            unexpected_outputs: report.unexpected_outputs,
            leftover_processes_killed: report.leftovers_killed,
            enforced: Enforced { user_ns: report.user_ns, ..cg.enforced },
            startup,
        })
    }
}

/// Runs `program` with inputs and proof files given as bytes: writes them under `dir` and runs
/// the program as job `tag`, with its outputs in `dir/out-<tag>`. For tests and tools.
pub fn run_with_bytes(
    sandbox: &Sandbox,
    dir: &Path,
    tag: &str,
    program: &Path,
    inputs: &[(&str, &[u8])],
    proof: &[(&str, &[u8])],
    limits: Limits,
) -> Result<Outcome, SandboxError> {
    let files = dir.join(format!("files-{tag}"));
    let proof_dir = files.join("proof");
    std::fs::create_dir_all(&proof_dir).map_err(io(format!("creating {}", proof_dir.display())))?;
    let mut run_inputs = Vec::new();
    for (name, bytes) in inputs {
        let path = files.join(format!("in-{name}"));
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
        let name = name.parse().map_err(|e: provernet_types::resources::NameError| {
            SandboxError::Setup(e.to_string())
        })?;
        run_inputs.push((name, path, Bytes(bytes.len() as u64)));
    }
    for (name, bytes) in proof {
        let path = proof_dir.join(name);
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
    }
    sandbox.run(&Run {
        job_id: tag.to_owned(),
        program: program.to_owned(),
        args: vec![],
        inputs: run_inputs,
        proof: proof_files(&proof_dir, None)?,
        out_dir: dir.join(format!("out-{tag}")),
        limits,
        gpus: vec![],
        rootfs: RootFs::Host,
    })
}

/// Reads a stream to its end, keeping only its last `max` bytes.
fn tail(stream: Option<impl Read>, max: usize) -> String {
    let Some(mut s) = stream else { return String::new() };
    let mut keep: Vec<u8> = Vec::with_capacity(max * 2);
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        keep.extend_from_slice(&buf[..n]);
        if keep.len() > 2 * max {
            keep.drain(..keep.len() - max);
        }
    }
    if keep.len() > max {
        keep.drain(..keep.len() - max);
    }
    String::from_utf8_lossy(&keep).into_owned()
}

fn tempdir_in(scratch: &Path, job: &str) -> Result<PathBuf, SandboxError> {
    let safe: String = job.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
    for n in 0..1000u32 {
        let d = scratch.join(format!("{safe}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(format!("creating {}", d.display()))(e)),
        }
    }
    Err(SandboxError::Setup(format!("no free scratch directory under {}", scratch.display())))
}

fn move_outputs(from: &Path, to: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let entry = entry.map_err(io("reading outputs"))?;
        let target = to.join(entry.file_name());
        if std::fs::rename(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target)
                .map_err(io(format!("copying to {}", target.display())))?;
        }
    }
    Ok(())
}
