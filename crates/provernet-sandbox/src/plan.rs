//! The filesystem the sandboxed program sees, as a plan of mounts computed before anything is
//! mounted. Pure, so the plan (GPU devices included) is tested without privileges.
//!
//! ```text
//! /                 tmpfs, read-only after setup
//! /usr, /lib…       the host's, read-only (RootFs::Host) — or nothing (RootFs::Empty, static binaries)
//! /etc              a synthetic minimum: passwd, group, hosts; the host's ld.so.cache
//! /dev              null, zero, full, random, urandom, the assigned /dev/nvidia* and nothing
//!                   else; /dev/shm is a link to /tmp
//! /proc             a fresh procfs of the job's PID namespace
//! /tmp              tmpfs, size-capped, charged to the job's memory
//! /job/prover       the executable, read-only
//! /job/in/<name>    each input, read-only
//! /job/proof/<name> (verifier) each proof file, read-only
//! /job/out          tmpfs capped at the output limit; copied out after the program exits
//! /.out             the host's output directory, root-only (mode 0700): the copy's target
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the sandbox shows of the host's system files.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RootFs {
    /// The host's `/usr` (and `/lib`, `/lib64`, `/bin`), read-only: for dynamically linked or
    /// interpreted programs.
    Host,
    /// No system files at all: for static binaries.
    Empty,
}

/// One step of the plan, with paths relative to the new root.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Mount {
    Dir { target: String, mode: u32 },
    Tmpfs { target: String, size: u64, mode: u32 },
    Bind { source: PathBuf, target: String, writable: bool, device: bool },
    Symlink { target: String, points_to: String },
    File { target: String, contents: String },
    Proc { target: String },
}

/// The devices every job gets.
const BASE_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];
/// The NVIDIA control devices a CUDA program needs besides its own GPUs.
const NVIDIA_CONTROL: &[&str] = &["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"];

/// The device nodes for a job with `gpus` (host GPU indices), among those that `exists` says
/// the host has. Only the assigned GPUs are ever bound; control devices only when a GPU is.
pub fn device_nodes(gpus: &[u32], exists: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        BASE_DEVICES.iter().map(|d| Path::new("/dev").join(d)).filter(|p| exists(p)).collect();
    if !gpus.is_empty() {
        for g in gpus {
            out.push(PathBuf::from(format!("/dev/nvidia{g}")));
        }
        out.extend(NVIDIA_CONTROL.iter().map(|d| Path::new("/dev").join(d)).filter(|p| exists(p)));
    }
    out
}

/// `CUDA_VISIBLE_DEVICES` for the assigned GPUs: their host indices.
pub fn cuda_visible_devices(gpus: &[u32]) -> Option<String> {
    if gpus.is_empty() {
        return None;
    }
    Some(gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
}

/// Everything the plan needs to know about one run.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub rootfs: RootFs,
    pub program: &'a Path,
    pub inputs: &'a [(String, PathBuf)],
    pub proof: &'a [(String, PathBuf)],
    pub host_out: &'a Path,
    pub out_max: u64,
    pub tmp_max: u64,
    pub devices: &'a [PathBuf],
    pub sandbox_uid: u32,
}

/// The ordered mounts for one run.
pub fn plan(i: &PlanInput<'_>) -> Vec<Mount> {
    let mut m = Vec::new();
    let dir = |t: &str, mode| Mount::Dir { target: t.into(), mode };
    if i.rootfs == RootFs::Host {
        for sys in ["usr", "lib", "lib64", "bin", "sbin"] {
            let host = Path::new("/").join(sys);
            match std::fs::read_link(&host) {
                Ok(to) => m.push(Mount::Symlink {
                    target: sys.into(),
                    points_to: to.to_string_lossy().into_owned(),
                }),
                Err(_) if host.is_dir() => {
                    m.push(dir(sys, 0o755));
                    m.push(Mount::Bind {
                        source: host,
                        target: sys.into(),
                        writable: false,
                        device: false,
                    });
                }
                Err(_) => {}
            }
        }
    }
    m.push(dir("etc", 0o755));
    m.push(Mount::File {
        target: "etc/passwd".into(),
        contents: format!(
            "root:x:0:0::/:/nonexistent\nprover:x:{0}:{0}::/tmp:/nonexistent\n",
            i.sandbox_uid
        ),
    });
    m.push(Mount::File {
        target: "etc/group".into(),
        contents: format!("root:x:0:\nprover:x:{}:\n", i.sandbox_uid),
    });
    m.push(Mount::File { target: "etc/hosts".into(), contents: "127.0.0.1 localhost\n".into() });
    if i.rootfs == RootFs::Host && Path::new("/etc/ld.so.cache").exists() {
        m.push(Mount::File { target: "etc/ld.so.cache".into(), contents: String::new() });
        m.push(Mount::Bind {
            source: "/etc/ld.so.cache".into(),
            target: "etc/ld.so.cache".into(),
            writable: false,
            device: false,
        });
    }
    m.push(Mount::Tmpfs { target: "dev".into(), size: 1 << 20, mode: 0o755 });
    for d in i.devices {
        let name = d.strip_prefix("/").unwrap_or(d).to_string_lossy().into_owned();
        m.push(Mount::File { target: name.clone(), contents: String::new() });
        m.push(Mount::Bind { source: d.clone(), target: name, writable: true, device: true });
    }
    m.push(Mount::Symlink { target: "dev/fd".into(), points_to: "/proc/self/fd".into() });
    m.push(Mount::Symlink { target: "dev/stdin".into(), points_to: "/proc/self/fd/0".into() });
    m.push(Mount::Symlink { target: "dev/stdout".into(), points_to: "/proc/self/fd/1".into() });
    m.push(Mount::Symlink { target: "dev/stderr".into(), points_to: "/proc/self/fd/2".into() });
    // POSIX shared memory and named semaphores (Python's multiprocessing, OpenMP runtimes)
    // live in /dev/shm: here, the job's /tmp, with its cap.
    m.push(Mount::Symlink { target: "dev/shm".into(), points_to: "/tmp".into() });
    m.push(dir("proc", 0o555));
    m.push(Mount::Proc { target: "proc".into() });
    m.push(Mount::Tmpfs { target: "tmp".into(), size: i.tmp_max, mode: 0o1777 });
    m.push(dir("job", 0o755));
    m.push(Mount::File { target: "job/prover".into(), contents: String::new() });
    m.push(Mount::Bind {
        source: i.program.to_owned(),
        target: "job/prover".into(),
        writable: false,
        device: false,
    });
    m.push(dir("job/in", 0o755));
    for (name, path) in i.inputs {
        let t = format!("job/in/{name}");
        m.push(Mount::File { target: t.clone(), contents: String::new() });
        m.push(Mount::Bind { source: path.clone(), target: t, writable: false, device: false });
    }
    if !i.proof.is_empty() {
        m.push(dir("job/proof", 0o755));
        for (name, path) in i.proof {
            let t = format!("job/proof/{name}");
            m.push(Mount::File { target: t.clone(), contents: String::new() });
            m.push(Mount::Bind { source: path.clone(), target: t, writable: false, device: false });
        }
    }
    m.push(Mount::Tmpfs { target: "job/out".into(), size: i.out_max, mode: 0o1777 });
    m.push(dir(".out", 0o700));
    m.push(Mount::Bind {
        source: i.host_out.to_owned(),
        target: ".out".into(),
        writable: true,
        device: false,
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_exist(_: &Path) -> bool {
        true
    }

    #[test]
    fn no_gpu_no_nvidia_devices() {
        let d = device_nodes(&[], all_exist);
        assert!(d.iter().all(|p| !p.to_string_lossy().contains("nvidia")), "{d:?}");
        assert!(d.contains(&PathBuf::from("/dev/null")));
        assert_eq!(cuda_visible_devices(&[]), None);
    }

    #[test]
    fn only_assigned_gpus_are_bound() {
        let d = device_nodes(&[1, 3], all_exist);
        let nv: Vec<_> =
            d.iter().filter(|p| p.to_string_lossy().starts_with("/dev/nvidia")).collect();
        assert!(nv.contains(&&PathBuf::from("/dev/nvidia1")));
        assert!(nv.contains(&&PathBuf::from("/dev/nvidia3")));
        assert!(!nv.contains(&&PathBuf::from("/dev/nvidia0")));
        assert!(!nv.contains(&&PathBuf::from("/dev/nvidia2")));
        assert!(nv.contains(&&PathBuf::from("/dev/nvidiactl")));
        assert!(nv.contains(&&PathBuf::from("/dev/nvidia-uvm")));
        assert_eq!(cuda_visible_devices(&[1, 3]).as_deref(), Some("1,3"));
    }

    #[test]
    fn missing_control_devices_are_skipped() {
        let d = device_nodes(&[0], |p| !p.to_string_lossy().contains("modeset"));
        assert!(!d.contains(&PathBuf::from("/dev/nvidia-modeset")));
        assert!(d.contains(&PathBuf::from("/dev/nvidia0")));
    }

    #[test]
    fn plan_binds_inputs_read_only_and_output_as_capped_tmpfs() {
        let inputs = vec![("digest".to_string(), PathBuf::from("/data/digest"))];
        let devices = device_nodes(&[0], all_exist);
        let p = plan(&PlanInput {
            rootfs: RootFs::Empty,
            program: Path::new("/progs/prover"),
            inputs: &inputs,
            proof: &[],
            host_out: Path::new("/jobs/1/out"),
            out_max: 1 << 20,
            tmp_max: 1 << 24,
            devices: &devices,
            sandbox_uid: 65534,
        });
        assert!(p.contains(&Mount::Bind {
            source: "/data/digest".into(),
            target: "job/in/digest".into(),
            writable: false,
            device: false
        }));
        assert!(p.contains(&Mount::Tmpfs {
            target: "job/out".into(),
            size: 1 << 20,
            mode: 0o1777
        }));
        assert!(p.contains(&Mount::Bind {
            source: "/dev/nvidia0".into(),
            target: "dev/nvidia0".into(),
            writable: true,
            device: true
        }));
        // Nothing of the host's system is visible with an empty root.
        assert!(!p.iter().any(|m| matches!(m, Mount::Bind { target, .. } if target == "usr")));
        // The only writable binds are devices and the root-only copy target.
        for m in &p {
            if let Mount::Bind { writable: true, target, device, .. } = m {
                assert!(*device || target == ".out", "{target} is writable");
            }
        }
    }
}
