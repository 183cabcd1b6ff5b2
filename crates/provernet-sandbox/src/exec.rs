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
//!    namespace of its own that maps only that uid, sets `no_new_privs`, applies Landlock (read-only filesystem except `/job/out`, `/tmp` and
//!    `/dev`; no TCP) and a seccomp deny-list (mount, namespaces, ptrace, bpf, module and
//!    clock syscalls…), and `exec`s `/job/prover`;
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
    let _ = std::fs::File::from(status_rx).take(16).read_to_end(&mut status);
    let mut report = ExecReport {
        landlock_abi: landlock_abi(),
        user_ns: status.as_slice() == b"u",
        ..Default::default()
    };
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
            mount(Some("proc"), &p, Some("proc"), flags, none).map_err(|e| e.to_string())
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

/// Runs in the program's process, after `fork` in the init: never returns. `status` is the
/// pipe on which it tells the init whether it entered its user namespace.
fn run_program(cfg: &ExecConfig, mut status: std::fs::File) -> ! {
    let die = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("provernet-sandbox: {what}: {e}");
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
    if let Err(e) = nix::unistd::chdir("/tmp") {
        die("chdir /tmp", &e);
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
    if enter_user_namespace(cfg.uid, cfg.gid).is_ok() {
        let _ = status.write_all(b"u");
    }
    drop(status);
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        die("no_new_privs", &e);
    }
    if cfg.landlock {
        if let Err(e) = apply_landlock() {
            die("landlock", &e);
        }
    }
    if cfg.seccomp {
        if let Err(e) = apply_seccomp() {
            die("seccomp", &e);
        }
    }
    let cstr = |s: &str| CString::new(s).unwrap_or_else(|e| die("argument with a NUL byte", &e));
    let path = cstr("/job/prover");
    let mut args = vec![path.clone()];
    args.extend(cfg.args.iter().map(|a| cstr(a)));
    let env: Vec<CString> = cfg.env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect();
    let e = nix::unistd::execve(&path, &args, &env).unwrap_err();
    eprintln!("provernet-sandbox: exec /job/prover: {e}");
    std::process::exit(if e == nix::errno::Errno::ENOENT { 127 } else { 126 })
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

fn apply_landlock() -> Result<(), landlock::RulesetError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
        ABI,
    };
    let abi = ABI::V5;
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(["/job/out", "/tmp", "/dev"], AccessFs::from_all(abi)))?
        .restrict_self()?;
    Ok(())
}

/// Syscalls a prover has no business making. Denied with `EPERM`.
const DENIED_SYSCALLS: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_settimeofday,
    libc::SYS_adjtimex,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_vhangup,
];

fn apply_seccomp() -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    let rules = DENIED_SYSCALLS.iter().map(|s| (*s, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| e.to_string())?;
    let program: BpfProgram =
        filter.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())
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
