//! The GPU check, for a machine with an NVIDIA GPU (never run in CI): a CUDA program packaged as
//! an OCI image (`tests/programs/build-gpu-image.sh`: a probe that loads the driver, lists the
//! GPUs it sees and runs a PTX kernel) is unpacked as a node unpacks it and run through the
//! sandbox on GPU 0, with the driver's libraries given to the image and the GPU selected by
//! UUID; then the same image claiming to need a CUDA newer than any driver is refused before
//! it runs. Run as root:
//!
//! ```sh
//! tests/programs/build-gpu-image.sh /tmp/gpu-image
//! PROVERNET_GPU_IMAGE=/tmp/gpu-image cargo test -p provernet-sandbox --test gpu -- --ignored --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use provernet_sandbox::plan::{ImageRun, RootFs};
use provernet_sandbox::{Helper, Limits, Run, Sandbox, SandboxError, Termination};
use provernet_types::{Bytes, MilliCores};
use std::path::PathBuf;
use std::time::Duration;

#[test]
#[ignore = "needs an NVIDIA GPU and PROVERNET_GPU_IMAGE (see the module's docs)"]
fn a_cuda_image_runs_on_its_assigned_gpu_with_the_host_driver() {
    let image = PathBuf::from(std::env::var("PROVERNET_GPU_IMAGE").expect("PROVERNET_GPU_IMAGE"));
    let helper = std::env::var("PROVERNET_SANDBOX_EXEC")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_provernet-sandbox-exec")));
    let dir = tempfile::tempdir().unwrap();
    let cache = provernet_image::Cache::open(&dir.path().join("images"), u64::MAX).unwrap();
    let prepared =
        provernet_image::prepare_local(&image, &cache, &dir.path().join("work")).unwrap();
    let driver = provernet_sandbox::nvidia::host_driver().expect("an NVIDIA driver on this host");
    eprintln!(
        "driver {} (serves CUDA {:?} by the table), {} libraries: {:?}",
        driver.version,
        provernet_sandbox::nvidia::cuda_of_driver(&driver.version),
        driver.libs.len(),
        driver.libs
    );
    let sandbox = Sandbox::new(Helper::Binary(helper), dir.path().join("scratch")).unwrap();
    // A machine that cannot enforce every limit (no delegated cgroups, no Landlock) may still
    // check the GPU path, saying so.
    let sandbox = if std::env::var_os("PROVERNET_SANDBOX_DEGRADED").is_some() {
        sandbox.degraded()
    } else {
        sandbox
    };
    let mut run = Run {
        job_id: "gpu".into(),
        program: PathBuf::new(),
        args: vec![],
        inputs: vec![],
        proof: vec![],
        out_dir: dir.path().join("out"),
        limits: Limits::new(MilliCores(2000), Bytes(4 << 30), Duration::from_secs(120)),
        gpus: vec![0],
        rootfs: RootFs::Image(ImageRun {
            root: prepared.root.path.clone(),
            argv: prepared.run.argv(),
            env: prepared.run.env_pairs(),
            workdir: prepared.run.workdir(),
        }),
    };
    // On a degraded machine, say which protection (if any) the driver trips over.
    if std::env::var_os("PROVERNET_GPU_DIAGNOSE").is_some() {
        use provernet_sandbox::Lifted;
        let none = Lifted::default();
        for (what, lifted) in [
            ("seccomp", Lifted { seccomp: true, ..none }),
            ("landlock", Lifted { landlock: true, ..none }),
            ("user namespace", Lifted { user_namespace: true, ..none }),
            ("all three", Lifted { seccomp: true, landlock: true, user_namespace: true }),
        ] {
            let sb = Sandbox::new(
                Helper::Binary(PathBuf::from(std::env::var("PROVERNET_SANDBOX_EXEC").unwrap())),
                dir.path().join("scratch-diag"),
            )
            .unwrap()
            .degraded()
            .lift(lifted);
            let mut r = run.clone();
            r.out_dir = dir.path().join(format!("out-{}", what.replace(' ', "-")));
            let o = sb.run(&r).unwrap();
            eprintln!("without {what}: {:?} {}", o.termination, o.stderr_tail.trim());
        }
    }
    let o = sandbox.run(&run).unwrap();
    let report = std::fs::read_to_string(dir.path().join("out/gpu.txt")).unwrap_or_default();
    eprintln!(
        "{:?} in {:?}; enforced {:?}\n--- gpu.txt\n{report}--- stderr\n{}",
        o.termination, o.wall, o.enforced, o.stderr_tail
    );
    assert_eq!(o.termination, Termination::Exited(0), "{}", o.stderr_tail);
    assert!(report.contains("kernel=ok"), "{report}");
    assert!(report.contains("devices=1"), "one GPU visible: {report}");
    let uuid = provernet_sandbox::nvidia::gpu_uuids(
        std::path::Path::new("/proc/driver/nvidia/gpus"),
        &[0],
    )
    .expect("GPU 0's UUID");
    assert!(report.contains(&format!("CUDA_VISIBLE_DEVICES={}", uuid[0])), "{report}");
    assert!(
        report.to_lowercase().contains(&uuid[0].to_lowercase()),
        "the GPU it ran on is GPU 0: {report}"
    );

    // The same image, claiming to need a CUDA no driver serves: refused before it runs.
    if let RootFs::Image(img) = &mut run.rootfs {
        img.env.retain(|(k, _)| k != "NVIDIA_REQUIRE_CUDA");
        img.env.push(("NVIDIA_REQUIRE_CUDA".into(), "cuda>=99.0".into()));
    }
    run.out_dir = dir.path().join("out-refused");
    let err = sandbox.run(&run).unwrap_err();
    eprintln!("refused: {err}");
    assert!(matches!(err, SandboxError::CudaTooOld { required: (99, 0), .. }), "{err}");
}
