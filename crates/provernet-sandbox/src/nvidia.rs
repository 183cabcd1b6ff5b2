//! The host's NVIDIA driver as an image's GPU job sees it, in the manner of
//! libnvidia-container: the user-space libraries versioned with the running kernel driver (and
//! only those) bound read-only into the job under `/.provernet/nvidia/lib`, with their sonames
//! linked beside them and that directory first on `LD_LIBRARY_PATH`; `nvidia-smi` under
//! `/.provernet/nvidia/bin`; the job's GPUs selected by UUID, which names the same device
//! whatever order CUDA enumerates in and however few `/dev/nvidiaN` the job can see; and an
//! image's `NVIDIA_REQUIRE_CUDA` checked against what the driver serves before anything runs.
//!
//! Everything here reads files it is given the paths of, so the plan is unit-tested on fake
//! trees without a GPU.

use std::path::{Path, PathBuf};

/// Where the job finds the driver's files.
pub const JOB_LIB_DIR: &str = ".provernet/nvidia/lib";
pub const JOB_BIN_DIR: &str = ".provernet/nvidia/bin";

/// The driver's libraries a CUDA program may load ("compute" and "utility" in
/// libnvidia-container's terms), with the major version of their soname (`None`: the soname
/// carries the driver's whole version).
const LIBS: &[(&str, Option<&str>)] = &[
    ("libcuda", Some("1")),
    ("libcudadebugger", Some("1")),
    ("libnvidia-ml", Some("1")),
    ("libnvidia-ptxjitcompiler", Some("1")),
    ("libnvidia-nvvm", Some("4")),
    ("libnvidia-opencl", Some("1")),
    ("libnvidia-cfg", Some("1")),
    ("libnvidia-gpucomp", None),
];

/// Tools from the driver a job may run.
const BINS: &[&str] = &["nvidia-smi"];

/// Where hosts keep the driver's libraries and tools.
pub const HOST_LIB_DIRS: &[&str] =
    &["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"];
pub const HOST_BIN_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/local/bin"];

/// The running driver's user-space files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Driver {
    pub version: String,
    /// Host paths of the libraries of exactly that version.
    pub libs: Vec<PathBuf>,
    pub bins: Vec<PathBuf>,
}

impl Driver {
    /// The links to make next to the libraries: (soname, file it points to).
    pub fn sonames(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for lib in &self.libs {
            let Some(file) = lib.file_name().map(|f| f.to_string_lossy().into_owned()) else {
                continue;
            };
            for (stem, major) in LIBS {
                if file == format!("{stem}.so.{}", self.version) {
                    if let Some(major) = major {
                        out.push((format!("{stem}.so.{major}"), file.clone()));
                    }
                    out.push((format!("{stem}.so"), file.clone()));
                }
            }
        }
        out
    }
}

/// The running kernel driver's version, from `/sys/module/nvidia/version` or the first line
/// of `/proc/driver/nvidia/version` ("NVRM version: NVIDIA UNIX x86_64 Kernel Module
/// 550.54.15 …").
pub fn driver_version(sys_module: &Path, proc_version: &Path) -> Option<String> {
    if let Ok(v) = std::fs::read_to_string(sys_module) {
        let v = v.trim();
        if is_version(v) {
            return Some(v.to_owned());
        }
    }
    let text = std::fs::read_to_string(proc_version).ok()?;
    let line = text.lines().next()?;
    line.split_whitespace().find(|w| is_version(w)).map(str::to_owned)
}

fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.').count() >= 2
        && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The driver's files of exactly `version` found in these directories (the first of each).
pub fn driver_files(version: &str, lib_dirs: &[PathBuf], bin_dirs: &[PathBuf]) -> Driver {
    let mut libs = Vec::new();
    for (stem, _) in LIBS {
        let name = format!("{stem}.so.{version}");
        if let Some(p) = lib_dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file()) {
            libs.push(p);
        }
    }
    let bins = BINS
        .iter()
        .filter_map(|b| bin_dirs.iter().map(|d| d.join(b)).find(|p| p.is_file()))
        .collect();
    Driver { version: version.to_owned(), libs, bins }
}

/// The host's driver, if a GPU driver runs here. Its libraries are looked for where the
/// operator says (`PROVERNET_NVIDIA_LIB_DIRS`, `:`-separated), in the directories the dynamic
/// loader is configured with (`/etc/ld.so.conf` and its includes), and in the usual places.
pub fn host_driver() -> Option<Driver> {
    let version = driver_version(
        Path::new("/sys/module/nvidia/version"),
        Path::new("/proc/driver/nvidia/version"),
    )?;
    let mut libs: Vec<PathBuf> = std::env::var("PROVERNET_NVIDIA_LIB_DIRS")
        .map(|v| v.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    libs.extend(ld_so_conf_dirs(Path::new("/etc/ld.so.conf"), 0));
    libs.extend(HOST_LIB_DIRS.iter().map(PathBuf::from));
    let mut bins: Vec<PathBuf> = HOST_BIN_DIRS.iter().map(PathBuf::from).collect();
    // The tools usually live beside the libraries' prefix (`…/lib` → `…/bin`).
    bins.extend(libs.iter().filter_map(|l| l.parent().map(|p| p.join("bin"))));
    Some(driver_files(&version, &libs, &bins))
}

/// The directories an `ld.so.conf` names, following `include` lines (with `*` globs in their
/// last component) up to a few levels deep.
pub fn ld_so_conf_dirs(conf: &Path, depth: u32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(conf) else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
        if let Some(pattern) = line.strip_prefix("include") {
            if depth >= 4 {
                continue;
            }
            let pattern = Path::new(pattern.trim());
            let pattern = if pattern.is_relative() {
                conf.parent().unwrap_or(Path::new("/")).join(pattern)
            } else {
                pattern.to_owned()
            };
            let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else { continue };
            let name = name.to_string_lossy();
            let (prefix, suffix) = name.split_once('*').unwrap_or((&name, ""));
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            let n = p
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            if name.contains('*') {
                                n.starts_with(prefix) && n.ends_with(suffix)
                            } else {
                                n == name.as_ref()
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                out.extend(ld_so_conf_dirs(&f, depth + 1));
            }
        } else if line.starts_with('/') {
            out.push(PathBuf::from(line));
        }
    }
    out
}

/// The newest CUDA a driver serves without a forward-compatibility package: the first driver
/// of each CUDA release, from NVIDIA's release notes ("CUDA Toolkit and Corresponding Driver
/// Versions", Linux x86_64).
pub fn cuda_of_driver(version: &str) -> Option<(u32, u32)> {
    /// (first driver of a release, its CUDA version).
    type Release = ((u32, u32, u32), (u32, u32));
    const TABLE: &[Release] = &[
        ((580, 65, 6), (13, 0)),
        ((575, 51, 3), (12, 9)),
        ((570, 26, 0), (12, 8)),
        ((565, 57, 1), (12, 7)),
        ((560, 28, 3), (12, 6)),
        ((555, 42, 2), (12, 5)),
        ((550, 54, 14), (12, 4)),
        ((545, 23, 6), (12, 3)),
        ((535, 54, 3), (12, 2)),
        ((530, 30, 2), (12, 1)),
        ((525, 60, 13), (12, 0)),
        ((520, 61, 5), (11, 8)),
        ((515, 43, 4), (11, 7)),
        ((510, 39, 1), (11, 6)),
        ((495, 29, 5), (11, 5)),
        ((470, 42, 1), (11, 4)),
        ((465, 19, 1), (11, 3)),
        ((460, 27, 3), (11, 2)),
        ((455, 23, 4), (11, 1)),
        ((450, 36, 6), (11, 0)),
    ];
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let v =
        (parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0));
    TABLE.iter().find(|(min, _)| v >= *min).map(|(_, cuda)| *cuda)
}

/// The CUDA version an image requires: `cuda>=X.Y` in its `NVIDIA_REQUIRE_CUDA` (the other
/// constraints there, `brand=` and `driver` ranges for forward compatibility, are ignored).
pub fn required_cuda(env: &[(String, String)]) -> Option<(u32, u32)> {
    let (_, v) = env.iter().find(|(k, _)| k == "NVIDIA_REQUIRE_CUDA")?;
    let req = v.split_whitespace().find_map(|c| c.strip_prefix("cuda>="))?;
    let mut parts = req.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// The UUIDs of the GPUs with these device minors (the `N` of `/dev/nvidiaN`), in that order,
/// from the driver's `/proc/driver/nvidia/gpus/<pci>/information`; `None` unless every one
/// is found.
pub fn gpu_uuids(proc_gpus: &Path, minors: &[u32]) -> Option<Vec<String>> {
    let mut known = Vec::new();
    for e in std::fs::read_dir(proc_gpus).ok()?.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path().join("information")) else { continue };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == name))
                .map(|(_, v)| v.trim().to_owned())
        };
        if let (Some(minor), Some(uuid)) = (field("Device Minor"), field("GPU UUID")) {
            if let Ok(m) = minor.parse::<u32>() {
                known.push((m, uuid));
            }
        }
    }
    minors.iter().map(|m| known.iter().find(|(k, _)| k == m).map(|(_, u)| u.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_sys_or_proc() {
        let d = tempfile::tempdir().expect("tempdir");
        let proc_v = d.path().join("version");
        std::fs::write(
            &proc_v,
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n",
        )
        .expect("write");
        assert_eq!(
            driver_version(&d.path().join("missing"), &proc_v).as_deref(),
            Some("550.54.15")
        );
        let sys = d.path().join("sys");
        std::fs::write(&sys, "570.86.10\n").expect("write");
        assert_eq!(driver_version(&sys, &proc_v).as_deref(), Some("570.86.10"));
        assert_eq!(driver_version(&d.path().join("a"), &d.path().join("b")), None);
    }

    #[test]
    fn only_libraries_of_the_running_version_are_taken_with_their_sonames() {
        let d = tempfile::tempdir().expect("tempdir");
        let lib = d.path().join("lib");
        std::fs::create_dir_all(&lib).expect("mkdir");
        for f in [
            "libcuda.so.550.54.15",
            "libcuda.so.535.104.05", // a stale one from an older driver
            "libnvidia-ml.so.550.54.15",
            "libnvidia-nvvm.so.550.54.15",
            "libnvidia-gpucomp.so.550.54.15",
            "libGL.so.1", // not a compute library
        ] {
            std::fs::write(lib.join(f), b"elf").expect("write");
        }
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::write(bin.join("nvidia-smi"), b"elf").expect("write");
        let drv = driver_files(
            "550.54.15",
            &[d.path().join("nowhere"), lib.clone()],
            std::slice::from_ref(&bin),
        );
        let names: Vec<String> = drv
            .libs
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "libcuda.so.550.54.15",
                "libnvidia-ml.so.550.54.15",
                "libnvidia-nvvm.so.550.54.15",
                "libnvidia-gpucomp.so.550.54.15"
            ]
        );
        assert_eq!(drv.bins, vec![bin.join("nvidia-smi")]);
        let links = drv.sonames();
        assert!(links.contains(&("libcuda.so.1".into(), "libcuda.so.550.54.15".into())));
        assert!(
            links.contains(&("libnvidia-nvvm.so.4".into(), "libnvidia-nvvm.so.550.54.15".into()))
        );
        assert!(links.iter().all(|(s, _)| s != "libnvidia-gpucomp.so.1"), "{links:?}");
    }

    #[test]
    fn an_image_needing_a_newer_cuda_than_the_driver_serves_is_detected() {
        assert_eq!(cuda_of_driver("550.54.15"), Some((12, 4)));
        assert_eq!(cuda_of_driver("535.104.05"), Some((12, 2)));
        assert_eq!(cuda_of_driver("570.86.10"), Some((12, 8)));
        assert_eq!(cuda_of_driver("390.1"), None);
        let env = |v: &str| vec![("NVIDIA_REQUIRE_CUDA".to_owned(), v.to_owned())];
        assert_eq!(
            required_cuda(&env("cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471")),
            Some((12, 4))
        );
        assert_eq!(required_cuda(&env("cuda>=11")), Some((11, 0)));
        assert_eq!(required_cuda(&[]), None);
        assert!(required_cuda(&env("cuda>=12.4")) > cuda_of_driver("535.104.05"));
    }

    #[test]
    fn gpus_are_named_by_uuid_from_their_device_minor() {
        let d = tempfile::tempdir().expect("tempdir");
        for (pci, minor, uuid) in [
            ("0000:3b:00.0", 0, "GPU-aaaa"),
            ("0000:86:00.0", 1, "GPU-bbbb"),
            ("0000:af:00.0", 2, "GPU-cccc"),
        ] {
            let dir = d.path().join(pci);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join("information"),
                format!("Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\nDevice Minor: \t {minor}\n"),
            )
            .expect("write");
        }
        assert_eq!(gpu_uuids(d.path(), &[2, 0]), Some(vec!["GPU-cccc".into(), "GPU-aaaa".into()]));
        assert_eq!(gpu_uuids(d.path(), &[3]), None);
    }

    #[test]
    fn the_loader_configuration_is_followed_through_its_includes() {
        let d = tempfile::tempdir().expect("tempdir");
        let confd = d.path().join("ld.so.conf.d");
        std::fs::create_dir_all(&confd).expect("mkdir");
        std::fs::write(confd.join("nvidia.conf"), "# the driver\n/opt/nvidia/lib64\n")
            .expect("write");
        std::fs::write(confd.join("x86_64-linux-gnu.conf"), "/usr/local/lib/x86_64-linux-gnu\n")
            .expect("write");
        std::fs::write(confd.join("ignored.txt"), "/nope\n").expect("write");
        let conf = d.path().join("ld.so.conf");
        std::fs::write(&conf, format!("include {}/*.conf\n/extra/lib\n", confd.display()))
            .expect("write");
        assert_eq!(
            ld_so_conf_dirs(&conf, 0),
            vec![
                PathBuf::from("/opt/nvidia/lib64"),
                PathBuf::from("/usr/local/lib/x86_64-linux-gnu"),
                PathBuf::from("/extra/lib")
            ]
        );
    }
}
