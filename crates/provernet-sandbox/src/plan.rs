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

/// What the sandbox shows as the job's system files.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RootFs {
    /// The host's `/usr` (and `/lib`, `/lib64`, `/bin`), read-only: for local experiments
    /// (`provernet program run --host-root`), never for the network.
    Host,
    /// No system files at all: for static binaries.
    Empty,
    /// A program's OCI image: its root, read-only, and what to run in it.
    Image(ImageRun),
}

/// An image's root and how Docker would run it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ImageRun {
    /// The image's composed root on the host (`provernet-image`'s cache), bound read-only.
    /// Its `job`, `tmp`, `dev` and `proc` are never used: the sandbox makes its own.
    pub root: PathBuf,
    /// The image's `Entrypoint` followed by its `Cmd`. A first word without a `/` is looked up
    /// in the image's `PATH`, inside the job's root.
    pub argv: Vec<String>,
    /// The image's `Env`; the job's own variables (`PROVERNET_*`, `HOME`, `TMPDIR`, the thread
    /// counts, CUDA's) override it, its `PATH` is kept.
    pub env: Vec<(String, String)>,
    /// The image's `WorkingDir`; `/` when it is unset or the image lacks it.
    pub workdir: String,
}

/// Names at the top of a job's root that only the sandbox provides.
pub const RESERVED_TOP: [&str; 6] = ["job", "tmp", "dev", "proc", ".out", ".provernet"];

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
    /// The host's NVIDIA driver, for an image's GPU job: its files are bound into the job.
    pub driver: Option<&'a crate::nvidia::Driver>,
}

/// The ordered mounts for one run.
pub fn plan(i: &PlanInput<'_>) -> Vec<Mount> {
    let mut m = Vec::new();
    let dir = |t: &str, mode| Mount::Dir { target: t.into(), mode };
    if let RootFs::Image(image) = &i.rootfs {
        // The image's top-level entries, each bound read-only (links recreated as they are);
        // the mount points the sandbox uses are its own, whatever the image has there.
        let mut top: Vec<_> = std::fs::read_dir(&image.root)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        top.sort();
        for name in top.iter().filter(|n| !RESERVED_TOP.contains(&n.as_str())) {
            let source = image.root.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&source) else { continue };
            if meta.file_type().is_symlink() {
                if let Ok(to) = std::fs::read_link(&source) {
                    let points_to = to.to_string_lossy().into_owned();
                    m.push(Mount::Symlink { target: name.clone(), points_to });
                }
            } else if meta.is_dir() {
                m.push(dir(name, 0o755));
                m.push(Mount::Bind {
                    source,
                    target: name.clone(),
                    writable: false,
                    device: false,
                });
            } else if meta.is_file() {
                m.push(Mount::File { target: name.clone(), contents: String::new() });
                m.push(Mount::Bind {
                    source,
                    target: name.clone(),
                    writable: false,
                    device: false,
                });
            }
        }
    }
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
    let image = matches!(i.rootfs, RootFs::Image(_));
    if !image {
        synthetic_etc(&mut m, i);
    }
    m.push(Mount::Tmpfs { target: "dev".into(), size: 1 << 20, mode: 0o755 });
    for d in i.devices {
        let name = d.strip_prefix("/").unwrap_or(d).to_string_lossy().into_owned();
        m.push(Mount::File { target: name.clone(), contents: String::new() });
        m.push(Mount::Bind { source: d.clone(), target: name, writable: true, device: true });
    }
    if let (true, Some(driver)) = (image, i.driver) {
        driver_mounts(&mut m, driver);
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
    if !image {
        m.push(Mount::File { target: "job/prover".into(), contents: String::new() });
        m.push(Mount::Bind {
            source: i.program.to_owned(),
            target: "job/prover".into(),
            writable: false,
            device: false,
        });
    }
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

/// The driver's libraries and tools, read-only under `/.provernet/nvidia`, with the sonames
/// linked to them.
fn driver_mounts(m: &mut Vec<Mount>, driver: &crate::nvidia::Driver) {
    use crate::nvidia::{JOB_BIN_DIR, JOB_LIB_DIR};
    let bind_all = |m: &mut Vec<Mount>, dir: &str, files: &[PathBuf]| {
        m.push(Mount::Dir { target: dir.into(), mode: 0o755 });
        for f in files {
            let Some(name) = f.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let target = format!("{dir}/{name}");
            m.push(Mount::File { target: target.clone(), contents: String::new() });
            m.push(Mount::Bind { source: f.clone(), target, writable: false, device: false });
        }
    };
    bind_all(m, JOB_LIB_DIR, &driver.libs);
    for (soname, file) in driver.sonames() {
        m.push(Mount::Symlink { target: format!("{JOB_LIB_DIR}/{soname}"), points_to: file });
    }
    bind_all(m, JOB_BIN_DIR, &driver.bins);
}

/// `/etc` for a job without an image: passwd, group and hosts, and the host's loader cache
/// when the host's libraries are shown.
fn synthetic_etc(m: &mut Vec<Mount>, i: &PlanInput<'_>) {
    let dir = |t: &str, mode| Mount::Dir { target: t.into(), mode };
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
            driver: None,
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

    #[test]
    fn an_image_gpu_job_sees_the_image_the_driver_files_and_none_of_the_host() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("root");
        for dir in ["usr/bin", "etc", ".provernet", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("link");
        std::fs::write(root.join("job"), b"not a dir").expect("write");
        let driver = crate::nvidia::Driver {
            version: "550.54.15".into(),
            libs: vec![PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15")],
            bins: vec![PathBuf::from("/usr/bin/nvidia-smi")],
        };
        let devices = device_nodes(&[1], all_exist);
        let image = ImageRun {
            root: root.clone(),
            argv: vec!["prove".into()],
            env: vec![],
            workdir: "/".into(),
        };
        let p = plan(&PlanInput {
            rootfs: RootFs::Image(image),
            program: Path::new(""),
            inputs: &[],
            proof: &[],
            host_out: Path::new("/jobs/1/out"),
            out_max: 1 << 20,
            tmp_max: 1 << 24,
            devices: &devices,
            sandbox_uid: 65534,
            driver: Some(&driver),
        });
        let bound = |target: &str| {
            p.iter()
                .any(|m| matches!(m, Mount::Bind { target: t, writable: false, .. } if t == target))
        };
        assert!(bound("usr") && bound("etc"), "the image's own directories, read-only");
        assert!(p.contains(&Mount::Symlink { target: "bin".into(), points_to: "usr/bin".into() }));
        assert!(
            !bound(".provernet") && !bound("tmp") && !bound("job"),
            "the sandbox's names are its own"
        );
        assert!(bound(".provernet/nvidia/lib/libcuda.so.550.54.15"));
        assert!(p.contains(&Mount::Symlink {
            target: ".provernet/nvidia/lib/libcuda.so.1".into(),
            points_to: "libcuda.so.550.54.15".into()
        }));
        assert!(bound(".provernet/nvidia/bin/nvidia-smi"));
        assert!(p.contains(&Mount::Bind {
            source: "/dev/nvidia1".into(),
            target: "dev/nvidia1".into(),
            writable: true,
            device: true
        }));
        assert!(!p.iter().any(
            |m| matches!(m, Mount::Bind { source, .. } if source == Path::new("/dev/nvidia0"))
        ));
        // No synthetic /etc over the image's, no /job/prover, nothing of the host but the
        // driver's files and the devices.
        assert!(!p.iter().any(|m| matches!(m, Mount::File { target, .. } if target == "etc/passwd" || target == "job/prover")));
        for m in &p {
            if let Mount::Bind { source, device: false, .. } = m {
                let ok = source.starts_with(&root)
                    || driver.libs.contains(source)
                    || driver.bins.contains(source)
                    || source == Path::new("/jobs/1/out");
                assert!(ok, "{} is bound into the job", source.display());
            }
        }
    }
}
