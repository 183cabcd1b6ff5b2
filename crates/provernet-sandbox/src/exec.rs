//! The helper that runs inside the namespaces (`provernet-sandbox-exec`).
//!
//! The library spawns the helper with a [`ExecConfig`] on stdin. The helper is single-threaded,
//! which makes `fork` safe, and the node, which is not, never forks itself. The helper:
//! 1. joins the job's cgroups, so everything it starts is limited and accounted;
//! 2. dies with its parent (`PR_SET_PDEATHSIG`), and `unshare`s mount, PID, network, IPC, UTS
//!    and cgroup namespaces; the network namespace has no interfaces at all;
//! 3. forks the namespace's PID 1, the *init*, which builds the root filesystem from the plan,
//!    `pivot_root`s into it, remounts it read-only, then forks the program;
//! 4. the program's process drops to an unprivileged uid with no capabilities, enters a user
//!    namespace of its own that maps only that uid, sets `no_new_privs`, applies Landlock
//!    (read-only filesystem except `/job/out`, `/tmp` and `/dev`; no TCP) and a seccomp
//!    allow-list ([`ALLOWED_SYSCALLS`]: no new namespaces, no sockets but `AF_UNIX`, no x32),
//!    and `exec`s `/job/prover`; a step that fails is a setup error, never the program's exit;
//! 5. the init reaps every process until the program exits, kills whatever it left behind
//!    (daemons included), copies the regular files of `/job/out` to the host, and prints the
//!    result as one JSON line.
//!
//! When the init dies (the watchdog kills the helper; the death signal kills the init), the
//! kernel kills every process in the PID namespace: nothing outlives a job.

// This module is the helper process: its stdout is the report channel to the library and
// its stderr the program's failure reason, so it prints on purpose.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::plan::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest configuration the helper accepts on stdin.
pub const CONFIG_BYTES_MAX: u64 = 4 << 20;

/// What the library tells the helper.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    pub cgroup_procs: Vec<PathBuf>,
    /// An empty host directory: the mount point of the new root.
    pub root: PathBuf,
    pub mounts: Vec<Mount>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
    pub nofile: u64,
    /// Set `RLIMIT_NPROC` (per uid) when no pids cgroup limits the job.
    pub nproc: Option<u64>,
    pub seccomp: bool,
    pub landlock: bool,
    /// Refuse to run the program when Landlock cannot restrict it (the kernel has no
    /// Landlock): the setup fails instead of the program running with less isolation.
    pub strict: bool,
    /// An image's command, instead of `/job/prover` and `args`.
    #[serde(default)]
    pub image: Option<ImageExec>,
    /// Move the program into a user namespace of its own (see [`enter_user_namespace`]).
    #[serde(default = "yes")]
    pub user_namespace: bool,
    /// The job has GPUs: CUDA's driver library names its threads through
    /// `/proc/self/task/<tid>/comm` and gives up (`CUDA_ERROR_OPERATING_SYSTEM`) if it cannot,
    /// so Landlock lets the program write beneath `/proc` (found on an H200 with driver 580).
    /// A rule on `/proc/<pid>` would not hold (procfs makes new inodes for pid directories);
    /// what a write may do there stays with the usual permissions: the job's uid owns only its
    /// own processes' files, the others are hidden (`hidepid=2`) or root's.
    #[serde(default)]
    pub gpu: bool,
}

fn yes() -> bool {
    true
}

/// What to execute in an image's root.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageExec {
    /// Entrypoint and Cmd; never empty.
    pub argv: Vec<String>,
    /// Where it starts; `/` if the image lacks it.
    pub workdir: String,
    /// The directories a first word without `/` is looked up in (the image's `PATH`).
    pub path: Vec<String>,
}

/// How the program ended, as the init saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
}

/// What the init reports.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct ExecReport {
    pub exit: Option<ExitKind>,
    /// The output directory's cap was reached.
    pub output_full: bool,
    /// Regular files copied out of `/job/out`: name and size.
    pub outputs: Vec<(String, u64)>,
    /// Entries of `/job/out` that were not copied (directories, links, bad names).
    pub unexpected_outputs: Vec<String>,
    /// Processes still alive when the program exited, killed by the init.
    pub leftovers_killed: u32,
    /// The Landlock ABI the kernel offers (0: none).
    pub landlock_abi: i32,
    /// Why setup failed, if it did (nothing was run).
    pub setup_error: Option<String>,
    /// The program ran in its own user namespace (see [`enter_user_namespace`]).
    pub user_ns: bool,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    let report = ExecReport { setup_error: Some(msg.to_string()), ..Default::default() };
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    std::process::exit(125)
}

/// The helper's `main`.
pub fn helper_main() -> ! {
    let mut raw = String::new();
    if let Err(e) = std::io::stdin().take(CONFIG_BYTES_MAX).read_to_string(&mut raw) {
        fail(format!("reading the configuration: {e}"));
    }
    let cfg: ExecConfig = match serde_json::from_str(&raw) {
        Ok(c) => c,
        Err(e) => fail(format!("invalid configuration: {e}")),
    };
    let me = std::process::id().to_string();
    for procs in &cfg.cgroup_procs {
        if let Err(e) = std::fs::write(procs, &me) {
            fail(format!("joining cgroup {}: {e}", procs.display()));
        }
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail(format!("PR_SET_PDEATHSIG: {e}"));
    }
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    if let Err(e) = unshare(flags) {
        fail(format!("unshare: {e} (the node must run as root or with CAP_SYS_ADMIN)"));
    }
    // SAFETY: the helper is single-threaded, so the child may run arbitrary code after fork.
    #[allow(unsafe_code)]
    let fork = unsafe { nix::unistd::fork() };
    match fork {
        Err(e) => fail(format!("fork: {e}")),
        Ok(ForkResult::Child) => init(&cfg),
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
            _ => std::process::exit(125),
        },
    }
}

fn init(cfg: &ExecConfig) -> ! {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail(format!("PR_SET_PDEATHSIG in init: {e}"));
    }
    // The OOM killer should pick the program, never the init that reports on it.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    if let Err(e) = build_root(cfg) {
        fail(e);
    }
    // The program's process says on this pipe whether it entered its user namespace; the
    // write end closes on its `exec` (or its death), so the read below never outlives setup.
    let (status_rx, status_tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail(format!("pipe: {e}")),
    };
    // SAFETY: the init is single-threaded (it is a fork of the single-threaded helper).
    #[allow(unsafe_code)]
    let fork = unsafe { nix::unistd::fork() };
    let program = match fork {
        Err(e) => fail(format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(status_rx);
            run_program(cfg, std::fs::File::from(status_tx))
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(status_tx);
    let mut status = Vec::new();
    let _ = std::fs::File::from(status_rx).take(STATUS_BYTES_MAX).read_to_end(&mut status);
    let (user_ns, setup_error) = parse_status(&status);
    let mut report =
        ExecReport { landlock_abi: landlock_abi(), user_ns, setup_error, ..Default::default() };
    // Reap everything; stop at the program's own exit.
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                report.exit = Some(ExitKind::Exited(code));
                break;
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == program => {
                report.exit = Some(ExitKind::Signaled(sig as i32));
                break;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    if report.setup_error.is_some() {
        // The program's process never reached `exec`: nothing ran, nothing to copy.
        report.exit = None;
    }
    // Whatever the program left running (daemons, orphans) dies now.
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(status) = waitpid(Pid::from_raw(-1), None) {
        if !matches!(status, WaitStatus::StillAlive) {
            report.leftovers_killed += 1;
        }
    }
    copy_outputs(&mut report);
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

fn at(root: &Path, target: &str) -> PathBuf {
    root.join(target)
}

fn build_root(cfg: &ExecConfig) -> Result<(), String> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("making / private: {e}"))?;
    let root = &cfg.root;
    mount(Some("tmpfs"), root, Some("tmpfs"), MsFlags::MS_NOSUID, Some("size=16m,mode=0755"))
        .map_err(|e| format!("mounting the root tmpfs on {}: {e}", root.display()))?;
    for m in &cfg.mounts {
        apply(root, m).map_err(|e| format!("{m:?}: {e}"))?;
    }
    nix::unistd::sethostname("sandbox").map_err(|e| format!("sethostname: {e}"))?;
    let old = root.join(".oldroot");
    std::fs::create_dir(&old).map_err(|e| format!("creating .oldroot: {e}"))?;
    nix::unistd::pivot_root(root, &old).map_err(|e| format!("pivot_root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    umount2("/.oldroot", MntFlags::MNT_DETACH)
        .map_err(|e| format!("detaching the old root: {e}"))?;
    std::fs::remove_dir("/.oldroot").map_err(|e| format!("removing .oldroot: {e}"))?;
    mount(none, "/", none, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID, none)
        .map_err(|e| format!("remounting / read-only: {e}"))?;
    Ok(())
}

fn apply(root: &Path, m: &Mount) -> Result<(), String> {
    let none: Option<&str> = None;
    match m {
        Mount::Dir { target, mode } => {
            let p = at(root, target);
            std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| e.to_string())
        }
        Mount::File { target, contents } => {
            let p = at(root, target);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&p, contents).map_err(|e| e.to_string())
        }
        Mount::Symlink { target, points_to } => {
            std::os::unix::fs::symlink(points_to, at(root, target)).map_err(|e| e.to_string())
        }
        Mount::Tmpfs { target, size, mode } => {
            let p = at(root, target);
            std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
            // /dev holds bound device nodes, so it cannot be `nodev`.
            let mut flags = MsFlags::MS_NOSUID;
            if target != "dev" {
                flags |= MsFlags::MS_NODEV;
            }
            let opts = format!("size={size},mode={mode:o}");
            mount(Some("tmpfs"), &p, Some("tmpfs"), flags, Some(opts.as_str()))
                .map_err(|e| e.to_string())
        }
        Mount::Bind { source, target, writable, device } => {
            let p = at(root, target);
            let rec = if source.is_dir() { MsFlags::MS_REC } else { MsFlags::empty() };
            mount(Some(source.as_path()), &p, none, MsFlags::MS_BIND | rec, none)
                .map_err(|e| e.to_string())?;
            let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID;
            if !writable {
                flags |= MsFlags::MS_RDONLY;
            }
            if !device {
                flags |= MsFlags::MS_NODEV;
            }
            mount(none, &p, none, flags, none).map_err(|e| e.to_string())
        }
        Mount::Proc { target } => {
            let p = at(root, target);
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            // `hidepid=2`: a process sees only the processes of its own uid in /proc; the init
            // (root) and everything of other uids is invisible, not merely unreadable.
            mount(Some("proc"), &p, Some("proc"), flags, Some("hidepid=2"))
                .map_err(|e| e.to_string())
        }
    }
}

/// Moves the calling process, already running as the unprivileged `uid`/`gid`, into a new
/// user namespace that maps only that uid and gid to themselves.
///
/// The namespaces the init built (mount, PID, network…) stay owned by the host's user
/// namespace, because building them needs real root; the program's own namespace adds what a
/// user namespace gives on top of the uid drop: every other uid on the host (root included) is
/// unmapped inside it and shows as the overflow id, and whatever capability the program might
/// gain is confined to a namespace that owns no resource. Hosts that forbid unprivileged user
/// namespaces (`user.max_user_namespaces = 0`, AppArmor's `restrict_unprivileged_userns`) make
/// this fail; the job then runs without it, and [`crate::cgroup::Enforced::user_ns`] says so.
fn enter_user_namespace(uid: u32, gid: u32) -> Result<(), String> {
    // Changing uids made the process non-dumpable, which makes its /proc files root's; `exec`
    // would make it dumpable again anyway.
    nix::sys::prctl::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare(CLONE_NEWUSER): {e}"))?;
    // An unprivileged process may map only its own ids, and gids only once setgroups is off.
    for (file, line) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("{uid} {uid} 1")),
        ("/proc/self/gid_map", format!("{gid} {gid} 1")),
    ] {
        std::fs::write(file, line).map_err(|e| format!("writing {file}: {e}"))?;
    }
    Ok(())
}

/// Largest status message the program's process sends the init.
const STATUS_BYTES_MAX: u64 = 4096;

/// Reads what the program's process said on the status pipe: `u` when it entered its user
/// namespace, then `!` and the reason when its setup failed (it never ran the program).
fn parse_status(status: &[u8]) -> (bool, Option<String>) {
    let user_ns = status.first() == Some(&b'u');
    let error = status
        .iter()
        .position(|b| *b == b'!')
        .map(|i| String::from_utf8_lossy(&status[i + 1..]).into_owned());
    (user_ns, error)
}

/// Runs in the program's process, after `fork` in the init: never returns. `status` is the
/// pipe (closed by `exec`) on which it tells the init whether it entered its user namespace,
/// and why its setup failed if it did: a limit or a protection that cannot be applied is the
/// host's problem, never reported as the program's exit.
fn run_program(cfg: &ExecConfig, status: std::fs::File) -> ! {
    let status = std::cell::RefCell::new(status);
    let die = |what: &str, e: &dyn std::fmt::Display| -> ! {
        let _ = write!(status.borrow_mut(), "!{what}: {e}");
        std::process::exit(126)
    };
    let _ = std::fs::write("/proc/self/oom_score_adj", "0");
    use nix::sys::resource::{setrlimit, Resource};
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        die("RLIMIT_CORE", &e);
    }
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, cfg.nofile, cfg.nofile) {
        die("RLIMIT_NOFILE", &e);
    }
    if let Some(n) = cfg.nproc {
        if let Err(e) = setrlimit(Resource::RLIMIT_NPROC, n, n) {
            die("RLIMIT_NPROC", &e);
        }
    }
    // stdin and stdout go nowhere; stderr is kept (its tail becomes the failure reason).
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        Ok(null) => {
            use std::os::fd::AsRawFd;
            for fd in [0, 1] {
                // SAFETY: dup2 onto the standard descriptors of this single-threaded process.
                #[allow(unsafe_code)]
                let r = unsafe { libc::dup2(null.as_raw_fd(), fd) };
                if r < 0 {
                    die("redirecting stdio", &std::io::Error::last_os_error());
                }
            }
        }
        Err(e) => die("opening /dev/null", &e),
    }
    match &cfg.image {
        // A WorkingDir the image does not have is the image's problem, not a setup failure:
        // start at the root instead (Docker would create it; this root is read-only).
        Some(img) => {
            if nix::unistd::chdir(img.workdir.as_str()).is_err() {
                if let Err(e) = nix::unistd::chdir("/") {
                    die("chdir /", &e);
                }
            }
        }
        None => {
            if let Err(e) = nix::unistd::chdir("/tmp") {
                die("chdir /tmp", &e);
            }
        }
    }
    let (uid, gid) = (Uid::from_raw(cfg.uid), Gid::from_raw(cfg.gid));
    if let Err(e) = nix::unistd::setgroups(&[]) {
        die("setgroups", &e);
    }
    if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
        die("setresgid", &e);
    }
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        die("setresuid", &e);
    }
    if cfg.user_namespace && enter_user_namespace(cfg.uid, cfg.gid).is_ok() {
        let _ = status.borrow_mut().write_all(b"u");
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        die("no_new_privs", &e);
    }
    if cfg.landlock {
        match apply_landlock(cfg.gpu) {
            Err(e) => die("landlock", &e),
            Ok(false) if cfg.strict => die(
                "landlock",
                &"the kernel does not enforce Landlock, which every job must have \
                  (enable the `landlock` LSM, Linux 5.13 or later)",
            ),
            Ok(_) => {}
        }
    }
    if cfg.seccomp {
        if let Err(e) = apply_seccomp() {
            die("seccomp", &e);
        }
    }
    let cstr = |s: &str| CString::new(s).unwrap_or_else(|e| die("argument with a NUL byte", &e));
    let env: Vec<CString> = cfg.env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect();
    let Some(img) = &cfg.image else {
        let path = cstr("/job/prover");
        let mut args = vec![path.clone()];
        args.extend(cfg.args.iter().map(|a| cstr(a)));
        let e = nix::unistd::execve(&path, &args, &env).unwrap_err();
        eprintln!("provernet-sandbox: exec /job/prover: {e}");
        std::process::exit(if e == nix::errno::Errno::ENOENT { 127 } else { 126 })
    };
    // From here on, a failure is the image's: its exit status says so (127: not found).
    let args: Vec<CString> = img.argv.iter().map(|a| cstr(a)).collect();
    let first = img.argv.first().map(String::as_str).unwrap_or_default();
    let candidates: Vec<String> = if first.contains('/') {
        vec![first.to_owned()]
    } else {
        img.path.iter().map(|d| format!("{}/{first}", d.trim_end_matches('/'))).collect()
    };
    let mut last = nix::errno::Errno::ENOENT;
    for c in &candidates {
        let e = nix::unistd::execve(&cstr(c), &args, &env).unwrap_err();
        // As execvp: keep looking past what is missing or not executable here.
        if !matches!(
            e,
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::EACCES
        ) {
            last = e;
            break;
        }
        if e == nix::errno::Errno::EACCES || last == nix::errno::Errno::ENOENT {
            last = e;
        }
    }
    eprintln!("provernet-sandbox: exec {first:?} (the image's entrypoint): {last}");
    std::process::exit(if last == nix::errno::Errno::ENOENT { 127 } else { 126 })
}

fn landlock_abi() -> i32 {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI.
    // SAFETY: a query syscall with null arguments, as documented for the version flag.
    #[allow(unsafe_code)]
    let v = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32)
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// Restricts the filesystem (read-only but for `/job/out`, `/tmp` and `/dev`, and for a GPU
/// job `/proc`) and TCP.
/// Returns whether the kernel enforces it at all (fully, or partly on kernels older than
/// the ABI asked for: the filesystem rules of ABI 1 are the part that matters).
fn apply_landlock(gpu: bool) -> Result<bool, landlock::RulesetError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(["/job/out", "/tmp", "/dev"], AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(
            ["/proc"].into_iter().filter(|_| gpu),
            // The name is written with O_TRUNC, which Landlock checks as a truncation.
            AccessFs::from_read(abi) | AccessFs::WriteFile | AccessFs::Truncate,
        ))?
        .restrict_self()?;
    Ok(status.ruleset != RulesetStatus::NotEnforced)
}

/// The system calls a program may make: everything a runtime (glibc, musl, Go, Rust, Python,
/// Node, the JVM, CUDA's user-space driver) needs to compute, use memory, threads, processes
/// within the job, files, pipes and local sockets. Anything else fails with `EPERM`: namespaces
/// (`unshare`, `setns`), `mount` and the new mount API, `ptrace` and cross-process memory
/// access, `bpf`, `perf_event_open`, `userfaultfd`, `io_uring`, keyrings, kernel modules,
/// `kexec`, the clocks' setters, `personality`, `setuid` and friends, `chown`, `mknod`,
/// extended-attribute writes, swap, quotas, reboot. Syscall numbers with the x32 bit set are
/// not in the list, so the x32 ABI is refused too; i386 (`int 0x80`) has another audit arch
/// and kills the process.
const ALLOWED_SYSCALLS: &[i64] = &[
    // Files and directories.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_lseek,
    libc::SYS_stat,
    libc::SYS_fstat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync_file_range,
    libc::SYS_fadvise64,
    libc::SYS_readahead,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_umask,
    libc::SYS_flock,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_sendfile,
    libc::SYS_copy_file_range,
    libc::SYS_splice,
    libc::SYS_tee,
    libc::SYS_memfd_create,
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_flistxattr,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    // Waiting on descriptors.
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_create,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd,
    libc::SYS_eventfd2,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_signalfd,
    libc::SYS_signalfd4,
    // Asynchronous I/O of the older kind (io_uring is refused).
    libc::SYS_io_setup,
    libc::SYS_io_destroy,
    libc::SYS_io_submit,
    libc::SYS_io_cancel,
    libc::SYS_io_getevents,
    // Memory.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mincore,
    libc::SYS_msync,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_mlockall,
    libc::SYS_munlockall,
    libc::SYS_membarrier,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_mbind,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    // System V IPC, private to the job's IPC namespace.
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmdt,
    libc::SYS_shmctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    // Processes and threads, within the job's PID namespace (`clone` has its own rule).
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_gettid,
    libc::SYS_getpgid,
    libc::SYS_getpgrp,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_futex,
    libc::SYS_rseq,
    libc::SYS_arch_prctl,
    libc::SYS_prctl,
    // Filters only ever narrow what is allowed (and the second filter here needs it).
    libc::SYS_seccomp,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_getattr,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_getrlimit,
    libc::SYS_setrlimit,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_times,
    libc::SYS_sysinfo,
    libc::SYS_uname,
    libc::SYS_capget,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_ioprio_get,
    libc::SYS_getcpu,
    libc::SYS_restart_syscall,
    // Signals and time.
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sigaltstack,
    libc::SYS_pause,
    libc::SYS_alarm,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_delete,
    libc::SYS_getrandom,
    // Sockets: creating one is limited to `AF_UNIX` below; these act on what exists.
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
];

/// The `clone` flags that create namespaces (`CLONE_NEWTIME` shares its bit with the exit
/// signal in `clone`, and exists only for `unshare` and `clone3`, both refused).
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// The seccomp filters of the program's process: the allow-list, with `clone` allowed only
/// without namespace flags and `socket`/`socketpair` only for `AF_UNIX`, and then `clone3`
/// answering `ENOSYS` (its flags live in memory a filter cannot read; runtimes fall back to
/// `clone` on `ENOSYS`, not on `EPERM`).
pub fn seccomp_filters() -> Result<Vec<seccompiler::BpfProgram>, String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let err = |e: seccompiler::BackendError| e.to_string();
    let arg0 = |op, value| {
        SeccompCondition::new(0, SeccompCmpArgLen::Qword, op, value)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(err)
    };
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED_SYSCALLS.iter().map(|s| (*s, vec![])).collect();
    rules.insert(libc::SYS_clone, vec![arg0(SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)?]);
    let unix = libc::AF_UNIX as u64;
    rules.insert(libc::SYS_socket, vec![arg0(SeccompCmpOp::Eq, unix)?]);
    rules.insert(libc::SYS_socketpair, vec![arg0(SeccompCmpOp::Eq, unix)?]);
    let allow = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(err)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    [allow, clone3].into_iter().map(|f| f.try_into().map_err(err)).collect()
}

/// Installs [`seccomp_filters`]. Filters run newest first and the first of the strictest
/// actions wins, so `clone3` gets the second filter's `ENOSYS` rather than the allow-list's
/// `EPERM`.
fn apply_seccomp() -> Result<(), String> {
    for program in seccomp_filters()? {
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies the regular files of `/job/out` (a capped tmpfs) to the root-only `/.out`.
fn copy_outputs(report: &mut ExecReport) {
    if let Ok(s) = nix::sys::statvfs::statvfs("/job/out") {
        report.output_full = s.blocks_available() == 0;
    }
    let Ok(dir) = std::fs::read_dir("/job/out") else { return };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ok_name = name.parse::<provernet_types::FileName>().is_ok();
        let meta = entry.path().symlink_metadata();
        match meta {
            Ok(m) if m.is_file() && ok_name => {
                match std::fs::copy(entry.path(), Path::new("/.out").join(&name)) {
                    Ok(n) => report.outputs.push((name, n)),
                    Err(_) => report.unexpected_outputs.push(name),
                }
            }
            _ => report.unexpected_outputs.push(name),
        }
    }
    report.outputs.sort();
    report.unexpected_outputs.sort();
}
