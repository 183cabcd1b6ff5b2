//! Unpacking a layer in a confined child process: the node's own binary re-executed as a
//! helper, which enters new mount, network, IPC and UTS namespaces, drops to an unprivileged uid
//! (no groups, `no_new_privs`), restricts itself with Landlock to that one directory (where the
//! kernel has it), and only then reads the layer (on its stdin) and writes its files under the
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
    let stdin = std::io::stdin().lock();
    Ok(match unpack_layer_at(stdin, req.compression, root, &req.diff_id, req.limits) {
        Ok(r) => Answer::Done(r),
        Err(e) => Answer::Refused(e),
    })
}
