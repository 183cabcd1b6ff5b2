//! `provernet sim ...`: the mechanism lab's simulator from the command line.

use anyhow::{bail, Context, Result};
use provernet_sim::{simulate, Mech, Report, Scenario};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum SimCommand {
    /// Run a scenario over mechanisms and seeds; write a Markdown report with SVG plots.
    Run(RunArgs),
    /// Print a scenario as TOML, to start a scenario file of your own from it.
    Show {
        /// S1…S5.
        #[arg(long)]
        scenario: String,
    },
    /// Time the simulator: 10,000 jobs × 50 provers × 6 mechanisms × 20 seeds (scenario S3's
    /// provers), on every core.
    Bench {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A built-in scenario (S1…S5) or a TOML file (see `provernet sim show`).
    #[arg(long)]
    scenario: String,
    /// Mechanisms, comma-separated (default: the scenario's). The ledger's: random,
    /// stake-linear, stake-sqrt, reverse-dutch, lowest-bid, open-race; the simulator's:
    /// redundant-2…5, tullock, reputation.
    #[arg(long, value_delimiter = ',')]
    mechanisms: Vec<String>,
    /// Seeds per mechanism (default: the scenario's).
    #[arg(long)]
    seeds: Option<u32>,
    /// Jobs per run (default: the scenario's).
    #[arg(long)]
    jobs: Option<u32>,
    /// Where the report and plots go (default: sim-out/<scenario>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// Print the whole report as JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Run(a) => run_scenario(a),
        SimCommand::Show { scenario } => {
            let s = load(&scenario)?;
            print!("{}", toml::to_string(&s).context("encoding the scenario")?);
            Ok(())
        }
        SimCommand::Bench { json } => bench(json),
    }
}

fn load(name: &str) -> Result<Scenario> {
    if let Some(s) = Scenario::builtin(name) {
        return Ok(s);
    }
    let path = PathBuf::from(name);
    if !path.exists() {
        bail!(
            "no built-in scenario {name:?} and no such file\n\
             hint: use S1…S5, or a TOML file (`provernet sim show --scenario S2 > my.toml`)"
        );
    }
    let meta = std::fs::metadata(&path)?;
    if meta.len() > 1 << 20 {
        bail!("{} is {} bytes; a scenario file is at most 1 MiB", path.display(), meta.len());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Scenario::from_toml(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}\nhint: `provernet sim show --scenario S2` prints a valid file",
            path.display()
        )
    })
}

fn mechanisms(names: &[String]) -> Result<Vec<Mech>> {
    let mut out = Vec::new();
    for n in names {
        let m = Mech::parse(n.trim()).map_err(|e| anyhow::anyhow!("--mechanisms: {e}"))?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        bail!("no mechanisms to run\nhint: --mechanisms random,lowest-bid");
    }
    Ok(out)
}

fn progress(quiet: bool) -> impl Fn(usize, usize) + Sync {
    let show = !quiet && std::io::stderr().is_terminal();
    move |done, all| {
        if show {
            eprint!("\r{done}/{all} runs");
            if done == all {
                eprintln!();
            }
        }
    }
}

fn run_scenario(a: RunArgs) -> Result<()> {
    let mut sc = load(&a.scenario)?;
    if let Some(j) = a.jobs {
        sc.jobs = j;
    }
    if let Some(s) = a.seeds {
        sc.seeds = s;
    }
    if !a.mechanisms.is_empty() {
        sc.mechanisms = a.mechanisms.clone();
    }
    if sc.mechanisms.is_empty() {
        sc.mechanisms = vec!["random".into()];
    }
    sc.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mechs = mechanisms(&sc.mechanisms)?;
    let report = simulate(&sc, &mechs, sc.seeds, &progress(a.json));
    let dir = a.out.unwrap_or_else(|| PathBuf::from("sim-out").join(sc.name.to_lowercase()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = sc.name.to_lowercase();
    let plots = if a.no_plots {
        Vec::new()
    } else {
        report.plots(&dir, &stem).map_err(|e| anyhow::anyhow!("drawing the plots: {e}"))?
    };
    let md = report.markdown(&plots);
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(dir.join(format!("{stem}.json")), &json)?;
    if a.json {
        println!("{json}");
    } else {
        println!("{md}");
        println!("report: {}", md_path.display());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct BenchReport {
    machine: String,
    threads: usize,
    jobs: u32,
    provers: u32,
    mechanisms: Vec<String>,
    seeds: u32,
    runs: usize,
    elapsed_s: f64,
}

fn bench(json: bool) -> Result<()> {
    let mut sc = Scenario::builtin("S3").context("S3 is built in")?;
    sc.jobs = 10_000;
    sc.seeds = 20;
    let names = ["random", "stake-linear", "reverse-dutch", "lowest-bid", "open-race", "tullock"];
    let mechs = mechanisms(&names.map(String::from))?;
    let report: Report = simulate(&sc, &mechs, sc.seeds, &progress(json));
    let b = BenchReport {
        machine: crate::bench::machine(),
        threads: report.threads,
        jobs: sc.jobs,
        provers: sc.provers(),
        mechanisms: names.iter().map(|s| s.to_string()).collect(),
        seeds: sc.seeds,
        runs: mechs.len() * sc.seeds as usize,
        elapsed_s: report.elapsed_s,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
    } else {
        println!(
            "{} runs ({} jobs × {} provers × {} mechanisms × {} seeds) in {:.2} s on {} threads ({})",
            b.runs, b.jobs, b.provers, mechs.len(), b.seeds, b.elapsed_s, b.threads, b.machine
        );
    }
    Ok(())
}
