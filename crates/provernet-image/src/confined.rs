//! Unpacking a layer in a confined child process: the node's own binary re-executed as a
//! helper, which enters new mount, network, IPC and UTS namespaces, drops to an unprivileged uid
//! (no groups, `no_new_privs`), restricts itself with Landlock to that one directory (where the
//! kernel has it) and with a seccomp allow-list to the system calls unpacking needs (reading,
//! writing files and directories beneath an open descriptor, memory, ending; no `exec`, no
//! sockets, no `ptrace`, no mounts: anything else answers `EPERM`), and only then reads the layer (on its stdin) and writes its files under the
//! directory it was given, which that uid owns. A bug in the decompressors,
//! the tar reader or our own checks then runs with no privilege, no network and nothing
//! writable but that directory; the defences of [`crate::unpack`] still apply inside.

use crate::unpack::{open_dir, unpack_layer_at, LayerReport, UnpackError, UnpackLimits};
use crate::{Compression, Digest};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Set (to anything) in the helper's environment: the process is the unpacking helper.
pub const HELPER_ENV: &str = "PROVERNET_UNPACK_HELPER";
/// The helper's request, as JSON.
const REQUEST_ENV: &str = "PROVERNET_UNPACK_REQUEST";
/// The most a helper may answer on stdout.
const ANSWER_MAX: u64 = 64 << 20;

/// How to unpack confined: the executable to re-execute (one that calls
/// [`run_if_helper`] first thing) and the uid to unpack as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    pub exe: PathBuf,
    pub uid: u32,
}

#[derive(Serialize, Deserialize)]
struct Request {
    compression: Compression,
    diff_id: Digest,
    limits: UnpackLimits,
    dest: PathBuf,
    uid: u32,
}

/// What the helper answers.
#[derive(Serialize, Deserialize)]
enum Answer {
    Done(LayerReport),
    Refused(UnpackError),
    /// The confinement itself failed (not the layer's fault).
    Setup(String),
}

/// Unpacks `blob` into `dest` (created here, owned by the confinement's uid) in a confined
/// helper process.
pub fn unpack_confined(
    how: &Confinement,
    blob: std::fs::File,
    compression: Compression,
    dest: &Path,
    diff_id: &Digest,
    limits: UnpackLimits,
) -> Result<LayerReport, UnpackError> {
    let setup = |what: String| UnpackError::Io(format!("confining the unpacker: {what}"));
    nix::unistd::chown(
        dest,
        Some(nix::unistd::Uid::from_raw(how.uid)),
        Some(nix::unistd::Gid::from_raw(how.uid)),
    )
    .map_err(|e| setup(format!("giving {} to uid {}: {e}", dest.display(), how.uid)))?;
    let request =
        Request { compression, diff_id: *diff_id, limits, dest: dest.to_owned(), uid: how.uid };
    let request = serde_json::to_string(&request).map_err(|e| setup(e.to_string()))?;
    let child = std::process::Command::new(&how.exe)
        .env(HELPER_ENV, "1")
        .env(REQUEST_ENV, request)
        .stdin(blob)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| setup(format!("starting {}: {e}", how.exe.display())))?;
    let out = child.wait_with_output().map_err(|e| setup(e.to_string()))?;
    let mut answer = Vec::new();
    let _ = (&out.stdout[..]).take(ANSWER_MAX).read_to_end(&mut answer);
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(Answer::Done(report)) => Ok(report),
        Ok(Answer::Refused(e)) => Err(e),
        Ok(Answer::Setup(why)) => Err(setup(why)),
        Err(_) => Err(setup(format!(
            "the helper ended ({}) without an answer: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// Runs the unpacking helper and exits, if this process was started as one; returns otherwise.
/// Call it first thing in `main` of the executable a [`Confinement`] names.
pub fn run_if_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let answer = match helper() {
        Ok(a) => a,
        Err(why) => Answer::Setup(why),
    };
    let code = i32::from(!matches!(answer, Answer::Done(_)));
    if let Ok(text) = serde_json::to_string(&answer) {
        use std::io::Write;
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    std::process::exit(code)
}

/// Where the kernel has Landlock, the helper may touch nothing but what is beneath `dest` (the
/// directory it opened before dropping its privileges: the rule holds on that descriptor, with
/// no path to resolve); the layer comes on stdin, already open. No TCP either.
fn restrict_to(dest: &std::os::fd::OwnedFd) -> Result<(), String> {
    use landlock::{
        Access, AccessFs, AccessNet, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
    };
    let abi = ABI::V5;
    let fd = dest.try_clone().map_err(|e| e.to_string())?;
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rule(PathBeneath::new(fd, AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The system calls the helper makes once confined: reading its layer and writing the
/// layer's files beneath its directory, memory, signals of its own, time, and ending.
const UNPACK_SYSCALLS: &[libc::c_long] = &[
    // Reading the layer, answering on stdout.
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // Files and directories, beneath a descriptor (Landlock bounds where).
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_mkdirat,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_readlinkat,
    libc::SYS_fchmod,
    // A directory opened `O_PATH` is changed through `/proc/self/fd/N` (beneath Landlock's rule).
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_utimensat,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_syncfs,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_getdents64,
    libc::SYS_fstatfs,
    // Memory.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // Threads, signals and time of its own.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_prlimit64,
    libc::SYS_getrlimit,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Installs the allow-list of [`UNPACK_SYSCALLS`]: anything else (`execve`, sockets,
/// `ptrace`, `mount`, `unshare`, `setuid`, `io_uring`, x32 numbers) answers `EPERM`.
fn allow_only_unpacking() -> Result<(), String> {
    seccompiler::apply_filter(&unpack_filter()?).map_err(|e| e.to_string())
}

fn unpack_filter() -> Result<seccompiler::BpfProgram, String> {
    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
    let rules = UNPACK_SYSCALLS.iter().map(|n| (*n, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| e.to_string())?;
    filter.try_into().map_err(|e: seccompiler::BackendError| e.to_string())
}

fn helper() -> Result<Answer, String> {
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let raw = std::env::var(REQUEST_ENV).map_err(|e| format!("no request: {e}"))?;
    let req: Request = serde_json::from_str(&raw).map_err(|e| format!("bad request: {e}"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    // Opened while still root: the unprivileged uid needs no right to the path above it.
    let root = open_dir(&req.dest).map_err(|e| format!("{}: {e}", req.dest.display()))?;
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(|e| format!("unshare: {e} (the node must run as root)"))?;
    let (uid, gid) = (Uid::from_raw(req.uid), Gid::from_raw(req.uid));
    setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    if nix::unistd::geteuid().is_root() {
        return Err("still root after dropping privileges".into());
    }
    restrict_to(&root).map_err(|e| format!("landlock: {e}"))?;
    allow_only_unpacking().map_err(|e| format!("seccomp: {e}"))?;
    let stdin = std::io::stdin().lock();
    Ok(match unpack_layer_at(stdin, req.compression, root, &req.diff_id, req.limits) {
        Ok(r) => Answer::Done(r),
        Err(e) => Answer::Refused(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE_ENV: &str = "PROVERNET_TEST_UNPACK_FILTER_PROBE";

    /// Run in a child process by the test below (ignored on its own: it installs a filter on
    /// its thread): under the helper's filter, what a decompressor or tar bug could try is
    /// refused, and files still work.
    #[test]
    #[ignore = "run by the_confined_unpacker_cannot_exec_open_sockets_or_unshare in a child"]
    fn filtered_probe() {
        assert!(std::env::var_os(PROBE_ENV).is_some(), "run by its parent test only");
        let _ = nix::sys::prctl::set_no_new_privs();
        allow_only_unpacking().expect("filter installs");
        let eperm = |e: std::io::Error| e.raw_os_error() == Some(libc::EPERM);
        assert!(std::net::TcpListener::bind("127.0.0.1:0").map_err(eperm).err() == Some(true));
        let spawned = std::process::Command::new("/bin/true").status();
        assert!(spawned.map_err(eperm).err() == Some(true), "a program started");
        let unshared = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS);
        assert_eq!(unshared, Err(nix::errno::Errno::EPERM));
        // (Not `setuid`: glibc applies it to every thread of this harness, and aborts when the
        // filtered thread alone refuses; the helper is single-threaded.)
        assert_eq!(nix::unistd::chroot("/"), Err(nix::errno::Errno::EPERM));
        std::fs::write("/dev/null", b"files still work").expect("write");
        println!("probe: all refused");
    }

    /// A decompressor or tar bug exploited inside the helper still cannot run a program, reach
    /// the network, or leave its namespaces or uid: those calls answer `EPERM`.
    #[test]
    fn the_confined_unpacker_cannot_exec_open_sockets_or_unshare() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "confined::tests::filtered_probe",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(PROBE_ENV, "1")
            .output()
            .expect("run the probe");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("probe: all refused"), "{text}");
    }
}
