//! `provernet bench sandbox`: what the sandbox costs.
//!
//! 1. Fixed start-up cost: `/bin/true` launched directly and in the sandbox, interleaved.
//! 2. Runtime ratio: a prover run directly (its files under `PROVERNET_JOB_ROOT`, which the
//!    built-in programs honour) and in the sandbox, interleaved, with the same thread count;
//!    and the same prover packaged as an OCI image (itself and the libraries it loads) run in
//!    its own root.
//! 3. Image start-up: `/bin/true` as an OCI image, cold (a fresh layer cache: unpack and
//!    compose, then run) and warm (cached), the preparation timed apart from the run.

use crate::bench::{machine, percentile};
use anyhow::{Context, Result};
use provernet_sandbox::plan::RootFs;
use provernet_sandbox::{Helper, Limits, Run, Sandbox};
use provernet_types::{Bytes, FileName, MilliCores, Seconds};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Launches of `/bin/true` each way for the start-up cost.
    #[arg(long, default_value_t = 30)]
    startup_runs: usize,
    /// A prover to compare directly vs sandboxed (it must honour `PROVERNET_JOB_ROOT`).
    #[arg(long)]
    prover: Option<PathBuf>,
    /// Its inputs, `name=path`.
    #[arg(long = "input", value_parser = crate::program::parse_input)]
    inputs: Vec<(FileName, PathBuf)>,
    /// Runs of the prover each way.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value = "2")]
    cores: MilliCores,
    #[arg(long, default_value = "4GiB")]
    memory: Bytes,
    #[arg(long, default_value = "10m")]
    time: Seconds,
    /// Dedicated host CPUs for the sandboxed runs (`0,1`); without it a CPU quota applies.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<u32>,
    /// Run the sandbox without cgroups (to measure what they cost).
    #[arg(long)]
    no_cgroups: bool,
    /// Launches of `/bin/true` as an image, cold and warm each.
    #[arg(long, default_value_t = 10)]
    image_runs: usize,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    machine: String,
    limits_enforced: String,
    startup_direct_ms_p50: f64,
    startup_sandbox_ms_p50: f64,
    startup_sandbox_ms_min: f64,
    startup_overhead_ms_p50: f64,
    image: ImageReport,
    prover: Option<ProverReport>,
}

/// `/bin/true` as an OCI image.
#[derive(serde::Serialize)]
struct ImageReport {
    runs: usize,
    layers: usize,
    /// The layers' compressed and unpacked sizes.
    packed_kib: u64,
    unpacked_kib: u64,
    /// A fresh cache: checking the layout, unpacking every layer and composing the root.
    cold_prepare_ms_p50: f64,
    cold_run_ms_p50: f64,
    /// Everything cached: checking the layout and finding the root.
    warm_prepare_ms_p50: f64,
    warm_run_ms_p50: f64,
}

#[derive(serde::Serialize)]
struct ProverReport {
    runs: usize,
    direct_wall_s: Vec<f64>,
    sandbox_wall_s: Vec<f64>,
    direct_cpu_s: Vec<f64>,
    sandbox_cpu_s: Vec<f64>,
    wall_ratio_p50: f64,
    cpu_ratio_p50: f64,
    /// sandbox/direct of each adjacent pair (the order alternates to cancel drift): the
    /// median and the quartiles, which a noisy host spreads but does not shift.
    wall_ratio_pairs: Vec<f64>,
    wall_ratio_pairs_p25_p50_p75: [f64; 3],
    cpu_ratio_pairs_p25_p50_p75: [f64; 3],
    sandbox_peak_memory_mib: Option<u64>,
    /// The prover as an OCI image in the sandbox (its root prepared once, before the runs).
    image_wall_s: Vec<f64>,
    image_wall_ratio_p50: f64,
}

/// User + system CPU of all waited-for children so far.
fn children_cpu() -> Duration {
    let r = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    match r {
        Ok(r) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(r.user_time()) + t(r.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn median(v: Vec<f64>) -> f64 {
    quartiles(v)[1]
}

/// The 25th, 50th and 75th percentiles (nearest rank).
fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return [0.0; 3];
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

pub fn run(args: SandboxArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = tempfile::tempdir()?;
    let mut sb = Sandbox::new(Helper::SelfExec(exe), tmp.path().join("scratch"))?;
    if args.no_cgroups {
        sb = sb.without_cgroups().degraded();
    }
    let mut limits = Limits::new(args.cores, args.memory, Duration::from_secs(args.time.0));
    limits.cpuset = (!args.cpus.is_empty()).then(|| args.cpus.clone());
    let mut direct = Vec::new();
    let mut sandboxed = Vec::new();
    let mut enforced = String::new();
    for i in 0..args.startup_runs {
        let t = Instant::now();
        let st = std::process::Command::new("/bin/true").status()?;
        anyhow::ensure!(st.success(), "/bin/true failed");
        direct.push(t.elapsed());
        let t = Instant::now();
        let o = sb.run(&Run {
            job_id: format!("startup{i}"),
            program: "/bin/true".into(),
            args: vec![],
            inputs: vec![],
            proof: vec![],
            out_dir: tmp.path().join(format!("startup-out-{i}")),
            limits: limits.clone(),
            gpus: vec![],
            rootfs: RootFs::Host,
        })?;
        sandboxed.push(t.elapsed());
        anyhow::ensure!(o.succeeded(), "/bin/true failed in the sandbox: {o:?}");
        enforced = format!("{:?}", o.enforced);
    }
    let d50 = percentile(&mut direct, 0.5);
    let s50 = percentile(&mut sandboxed, 0.5);
    let smin = sandboxed.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let image = image_startup(&args, &sb, &limits, tmp.path())?;
    let prover = match &args.prover {
        None => None,
        Some(prover) => Some(compare(&args, prover, &sb, limits, tmp.path())?),
    };
    let report = Report {
        machine: machine(),
        limits_enforced: enforced,
        startup_direct_ms_p50: d50,
        startup_sandbox_ms_p50: s50,
        startup_sandbox_ms_min: smin,
        startup_overhead_ms_p50: s50 - d50,
        image,
        prover,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("machine: {}", report.machine);
        println!(
            "start-up: direct {:.1} ms, sandbox {:.1} ms (min {:.1}) → overhead {:.1} ms (p50 of {} runs)",
            d50, s50, smin, report.startup_overhead_ms_p50, args.startup_runs
        );
        let im = &report.image;
        println!(
            "image start-up (/bin/true, {} layers, {} KiB packed, {} KiB unpacked): cold prepare {:.1} ms + run {:.1} ms, warm prepare {:.1} ms + run {:.1} ms (p50 of {} runs)",
            im.layers, im.packed_kib, im.unpacked_kib, im.cold_prepare_ms_p50, im.cold_run_ms_p50,
            im.warm_prepare_ms_p50, im.warm_run_ms_p50, im.runs
        );
        if let Some(p) = &report.prover {
            println!(
                "prover as an image, wall s: {:?} → ratio to direct {:.3}",
                p.image_wall_s, p.image_wall_ratio_p50
            );
            println!(
                "prover wall s: direct {:?}, sandbox {:?} → ratio {:.3}",
                p.direct_wall_s, p.sandbox_wall_s, p.wall_ratio_p50
            );
            println!(
                "prover CPU s: direct {:?}, sandbox {:?} → ratio {:.3}",
                p.direct_cpu_s, p.sandbox_cpu_s, p.cpu_ratio_p50
            );
            let [w25, w50, w75] = p.wall_ratio_pairs_p25_p50_p75;
            let [c25, c50, c75] = p.cpu_ratio_pairs_p25_p50_p75;
            println!(
                "paired ratios (p25/p50/p75): wall {w25:.3}/{w50:.3}/{w75:.3}, CPU {c25:.3}/{c50:.3}/{c75:.3}"
            );
        }
    }
    Ok(())
}

/// An image root prepared from a layout (the guard keeps it pinned) and how to run it.
fn image_rootfs(
    layout: &std::path::Path,
    cache_dir: &std::path::Path,
    work: &std::path::Path,
) -> Result<(RootFs, provernet_image::Prepared)> {
    let cache = provernet_image::Cache::open(cache_dir, u64::MAX)?;
    let p = provernet_image::prepare_local(layout, &cache, work)?;
    let rootfs = RootFs::Image(provernet_sandbox::plan::ImageRun {
        root: p.root.path.clone(),
        argv: p.run.argv(),
        env: p.run.env_pairs(),
        workdir: p.run.workdir(),
    });
    Ok((rootfs, p))
}

fn image_startup(
    args: &SandboxArgs,
    sb: &Sandbox,
    limits: &Limits,
    tmp: &std::path::Path,
) -> Result<ImageReport> {
    let layout = tmp.join("true-image");
    let exe = std::fs::canonicalize("/bin/true")?;
    provernet_image::build::executable_image(&layout, &exe, "true")?;
    let image = provernet_image::Image::from_layout(&layout)?;
    let packed: u64 = image.layers.iter().map(|l| l.size).sum();
    let mut report = ImageReport {
        runs: args.image_runs,
        layers: image.layers.len(),
        packed_kib: packed >> 10,
        unpacked_kib: 0,
        cold_prepare_ms_p50: 0.0,
        cold_run_ms_p50: 0.0,
        warm_prepare_ms_p50: 0.0,
        warm_run_ms_p50: 0.0,
    };
    let (mut cold_prep, mut cold_run, mut warm_prep, mut warm_run) =
        (vec![], vec![], vec![], vec![]);
    let run = |i: usize, tag: &str, rootfs: RootFs| -> Result<Duration> {
        let t = Instant::now();
        let o = sb.run(&Run {
            job_id: format!("image-{tag}{i}"),
            program: PathBuf::new(),
            args: vec![],
            inputs: vec![],
            proof: vec![],
            out_dir: tmp.join(format!("image-out-{tag}-{i}")),
            limits: limits.clone(),
            gpus: vec![],
            rootfs,
        })?;
        anyhow::ensure!(
            o.succeeded(),
            "/bin/true as an image failed: {:?} {}",
            o.termination,
            o.stderr_tail
        );
        Ok(t.elapsed())
    };
    for i in 0..args.image_runs {
        let t = Instant::now();
        let (rootfs, prepared) = image_rootfs(
            &layout,
            &tmp.join(format!("cold-cache-{i}")),
            &tmp.join(format!("cold-work-{i}")),
        )?;
        cold_prep.push(t.elapsed());
        cold_run.push(run(i, "cold", rootfs)?);
        drop(prepared);
        let _ = std::fs::remove_dir_all(tmp.join(format!("cold-cache-{i}")));
    }
    let warm_cache = tmp.join("warm-cache");
    let (_, first) = image_rootfs(&layout, &warm_cache, &tmp.join("warm-work"))?;
    report.unpacked_kib = dir_kib(&first.root.path);
    drop(first);
    for i in 0..args.image_runs {
        let t = Instant::now();
        let (rootfs, prepared) =
            image_rootfs(&layout, &warm_cache, &tmp.join(format!("warm-work-{i}")))?;
        warm_prep.push(t.elapsed());
        warm_run.push(run(i, "warm", rootfs)?);
        drop(prepared);
    }
    report.cold_prepare_ms_p50 = percentile(&mut cold_prep, 0.5);
    report.cold_run_ms_p50 = percentile(&mut cold_run, 0.5);
    report.warm_prepare_ms_p50 = percentile(&mut warm_prep, 0.5);
    report.warm_run_ms_p50 = percentile(&mut warm_run, 0.5);
    Ok(report)
}

/// The size of the regular files under `dir`, in KiB.
fn dir_kib(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total >> 10
}

fn compare(
    args: &SandboxArgs,
    prover: &std::path::Path,
    sb: &Sandbox,
    limits: Limits,
    tmp: &std::path::Path,
) -> Result<ProverReport> {
    let threads = args.cores.0.div_ceil(1000).max(1).to_string();
    let mut r = ProverReport {
        runs: args.runs,
        direct_wall_s: vec![],
        sandbox_wall_s: vec![],
        direct_cpu_s: vec![],
        sandbox_cpu_s: vec![],
        wall_ratio_p50: 0.0,
        cpu_ratio_p50: 0.0,
        wall_ratio_pairs: vec![],
        wall_ratio_pairs_p25_p50_p75: [0.0; 3],
        cpu_ratio_pairs_p25_p50_p75: [0.0; 3],
        sandbox_peak_memory_mib: None,
        image_wall_s: vec![],
        image_wall_ratio_p50: 0.0,
    };
    // The prover as an image: itself and the libraries it loads, prepared once.
    let layout = tmp.join("prover-image");
    provernet_image::build::executable_image(&layout, prover, "prover")?;
    let (image_root, _prepared) =
        image_rootfs(&layout, &tmp.join("prover-cache"), &tmp.join("prover-work"))?;
    for i in 0..args.runs {
        for sandbox_turn in [i % 2 == 1, i % 2 == 0] {
            if sandbox_turn {
                run_sandboxed(args, prover, sb, &limits, tmp, i, RootFs::Host, &mut r)?;
            } else {
                run_direct(args, prover, &threads, tmp, i, &mut r)?;
            }
        }
        run_sandboxed(args, prover, sb, &limits, tmp, i, image_root.clone(), &mut r)?;
    }
    r.image_wall_ratio_p50 = median(r.image_wall_s.clone()) / median(r.direct_wall_s.clone());
    let pairs = |s: &[f64], d: &[f64]| -> Vec<f64> {
        s.iter().zip(d).filter(|(_, d)| **d > 0.0).map(|(s, d)| s / d).collect()
    };
    r.wall_ratio_pairs = pairs(&r.sandbox_wall_s, &r.direct_wall_s);
    r.wall_ratio_pairs_p25_p50_p75 = quartiles(r.wall_ratio_pairs.clone());
    r.cpu_ratio_pairs_p25_p50_p75 = quartiles(pairs(&r.sandbox_cpu_s, &r.direct_cpu_s));
    r.wall_ratio_p50 = median(r.sandbox_wall_s.clone()) / median(r.direct_wall_s.clone());
    r.cpu_ratio_p50 = median(r.sandbox_cpu_s.clone()) / median(r.direct_cpu_s.clone());
    Ok(r)
}

fn run_direct(
    args: &SandboxArgs,
    prover: &std::path::Path,
    threads: &str,
    tmp: &std::path::Path,
    i: usize,
    r: &mut ProverReport,
) -> Result<()> {
    // Direct: the same files laid out as the contract's /job.
    let root = tmp.join(format!("direct-{i}"));
    std::fs::create_dir_all(root.join("in"))?;
    std::fs::create_dir_all(root.join("out"))?;
    for (name, path) in &args.inputs {
        std::fs::copy(path, root.join("in").join(name.as_str()))
            .with_context(|| format!("copying input {name}"))?;
    }
    let cpu0 = children_cpu();
    let t = Instant::now();
    let st = std::process::Command::new(prover)
        .env("PROVERNET_JOB_ROOT", &root)
        .env("RAYON_NUM_THREADS", threads)
        .stderr(std::process::Stdio::null())
        .status()?;
    let wall = t.elapsed();
    anyhow::ensure!(st.success(), "the prover failed when run directly: {st}");
    r.direct_wall_s.push(wall.as_secs_f64());
    r.direct_cpu_s.push((children_cpu() - cpu0).as_secs_f64());
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one run of the comparison, as its caller sets it up
fn run_sandboxed(
    args: &SandboxArgs,
    prover: &std::path::Path,
    sb: &Sandbox,
    limits: &Limits,
    tmp: &std::path::Path,
    i: usize,
    rootfs: RootFs,
    r: &mut ProverReport,
) -> Result<()> {
    let image = matches!(rootfs, RootFs::Image(_));
    let mut inputs = Vec::new();
    for (name, path) in &args.inputs {
        inputs.push((name.clone(), path.clone(), Bytes(std::fs::metadata(path)?.len())));
    }
    let o = sb.run(&Run {
        job_id: format!("bench{i}{}", if image { "i" } else { "" }),
        program: prover.to_owned(),
        args: vec![],
        inputs,
        proof: vec![],
        out_dir: tmp.join(format!("sandbox-out-{i}{}", if image { "-image" } else { "" })),
        limits: limits.clone(),
        gpus: vec![],
        rootfs,
    })?;
    anyhow::ensure!(
        o.succeeded(),
        "the prover failed in the sandbox: {:?}\n{}",
        o.termination,
        o.stderr_tail
    );
    if image {
        r.image_wall_s.push(o.wall.as_secs_f64());
        return Ok(());
    }
    r.sandbox_wall_s.push(o.wall.as_secs_f64());
    r.sandbox_cpu_s.push(o.cpu.map_or(0.0, |c| c.as_secs_f64()));
    r.sandbox_peak_memory_mib = o.peak_memory.map(|b| b.0 >> 20);
    Ok(())
}
