//! Runs a scenario over mechanisms and seeds, and reports each metric as a mean with a 95%
//! confidence interval over seeds, as JSON, Markdown and SVG plots.

use crate::engine::{run, Mech, RunResult};
use crate::metrics::{gini, hhi, mean_ci95, nakamoto, shares, top_k_share};
use crate::scenario::Scenario;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A metric over seeds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Half-width of the 95% confidence interval.
    pub ci95: f64,
}

impl Stat {
    fn of(samples: &[f64]) -> Stat {
        let (mean, ci95) = mean_ci95(samples);
        Stat { mean, ci95 }
    }
}

/// The metrics, in report order: (key, label, how to print).
pub const METRICS: &[(&str, &str)] = &[
    ("cost_per_job", "requester cost per proven job (credits)"),
    ("cost_with_misses", "cost per job incl. C × miss rate"),
    ("latency_p50_s", "latency p50 (s)"),
    ("latency_p95_s", "latency p95 (s)"),
    ("latency_p99_s", "latency p99 (s)"),
    ("miss_rate", "deadline-miss rate"),
    ("unfulfilled_rate", "unfulfilled rate"),
    ("waste_ratio", "waste ratio (wasted / useful proving cost)"),
    ("profit_mean", "operator profit, mean per entity (credits)"),
    ("losing_share", "entities with a loss"),
    ("exited", "entities exited"),
    ("nc50", "Nakamoto coefficient (50%)"),
    ("nc33", "Nakamoto coefficient (33%)"),
    ("hhi", "HHI of rewards"),
    ("gini", "Gini of rewards (zeros included)"),
    ("top1", "top-1 share"),
    ("top3", "top-3 share"),
    ("top10", "top-10 share"),
    ("focus_share", "focus entity's share"),
];

#[derive(Clone, Debug, Serialize)]
pub struct MechReport {
    pub mechanism: String,
    /// Keyed by the names in [`METRICS`].
    pub metrics: Vec<(String, Stat)>,
    /// Reward shares by rank (largest first), averaged over seeds.
    pub ranked_shares: Vec<f64>,
}

impl MechReport {
    pub fn get(&self, key: &str) -> Stat {
        self.metrics
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| *s)
            .unwrap_or(Stat { mean: f64::NAN, ci95: 0.0 })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub seeds: u32,
    pub entities: usize,
    pub mechanisms: Vec<MechReport>,
    /// Wall time of the whole simulation, in seconds.
    pub elapsed_s: f64,
    pub threads: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The per-run values of every metric, in [`METRICS`] order.
fn measure(sc: &Scenario, focus: Option<usize>, r: &RunResult) -> Vec<f64> {
    let jobs = f64::from(r.jobs.max(1));
    let mut lat = r.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let missed = f64::from(r.late + r.unfulfilled) / jobs;
    // What a requester pays per proof it gets.
    let cost = r.paid / (r.latencies.len().max(1) as f64);
    let losing =
        r.profit.iter().filter(|p| **p < 0.0).count() as f64 / r.profit.len().max(1) as f64;
    let s = shares(&r.rewards);
    vec![
        cost,
        cost + sc.miss_cost * missed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        missed,
        f64::from(r.unfulfilled) / jobs,
        if r.useful_cost > 0.0 { r.wasted_cost / r.useful_cost } else { 0.0 },
        r.profit.iter().sum::<f64>() / r.profit.len().max(1) as f64,
        losing,
        f64::from(r.entities_exited),
        nakamoto(&r.rewards, 0.5) as f64,
        nakamoto(&r.rewards, 0.33) as f64,
        hhi(&r.rewards),
        gini(&r.rewards),
        top_k_share(&r.rewards, 1),
        top_k_share(&r.rewards, 3),
        top_k_share(&r.rewards, 10),
        focus.and_then(|e| s.get(e).copied()).unwrap_or(f64::NAN),
    ]
}

/// Runs every mechanism over `seeds` seeds, spread over the machine's cores. `progress` is
/// called after each run with (runs done, runs in all).
pub fn simulate(
    sc: &Scenario,
    mechs: &[Mech],
    seeds: u32,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Report {
    let started = std::time::Instant::now();
    let tasks: Vec<(usize, u32)> =
        (0..mechs.len()).flat_map(|m| (0..seeds).map(move |s| (m, s))).collect();
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(tasks.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<RunResult>>> =
        std::sync::Mutex::new(vec![None; tasks.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((m, s)) = tasks.get(i).copied() else { break };
                // Each seed is its own stream; mechanisms share seeds (common random numbers
                // for the arrivals' spacing and the first draws).
                let r = run(sc, mechs[m], 0x5eed_0000 + u64::from(s));
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(d, tasks.len());
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    // Every run of a scenario numbers its entities alike.
    let entities = results.iter().flatten().next().map(|r| r.entities.clone()).unwrap_or_default();
    let focus = sc.focus.as_deref().and_then(|f| entities.iter().position(|e| e == f));
    let mut reports = Vec::new();
    for (m, mech) in mechs.iter().enumerate() {
        let runs: Vec<&RunResult> = tasks
            .iter()
            .zip(&results)
            .filter(|((mi, _), _)| *mi == m)
            .filter_map(|(_, r)| r.as_ref())
            .collect();
        let per_run: Vec<Vec<f64>> = runs.iter().map(|r| measure(sc, focus, r)).collect();
        let metrics = METRICS
            .iter()
            .enumerate()
            .map(|(k, (key, _))| {
                let samples: Vec<f64> =
                    per_run.iter().map(|v| v[k]).filter(|x| x.is_finite()).collect();
                let stat = if samples.is_empty() {
                    Stat { mean: f64::NAN, ci95: 0.0 }
                } else {
                    Stat::of(&samples)
                };
                (key.to_string(), stat)
            })
            .collect();
        let n = runs.first().map_or(0, |r| r.rewards.len());
        let mut ranked = vec![0.0; n];
        for r in &runs {
            let mut s = shares(&r.rewards);
            s.sort_by(|a, b| b.total_cmp(a));
            for (i, x) in s.iter().enumerate() {
                ranked[i] += x / runs.len() as f64;
            }
        }
        reports.push(MechReport { mechanism: mech.name(), metrics, ranked_shares: ranked });
    }
    Report {
        scenario: sc.clone(),
        seeds,
        entities: entities.len(),
        mechanisms: reports,
        elapsed_s: started.elapsed().as_secs_f64(),
        threads,
    }
}

fn fmt(s: Stat) -> String {
    if !s.mean.is_finite() {
        return "–".into();
    }
    let digits = |x: f64| {
        let a = x.abs();
        if a >= 100.0 {
            0
        } else if a >= 10.0 {
            1
        } else if a >= 0.1 || a == 0.0 {
            3
        } else {
            5
        }
    };
    let d = digits(s.mean);
    if s.ci95 == 0.0 {
        format!("{:.*}", d, s.mean)
    } else {
        format!("{:.*} ± {:.*}", d, s.mean, d, s.ci95)
    }
}

impl Report {
    /// The report as Markdown, with the plots (if written) linked by file name.
    pub fn markdown(&self, plots: &[PathBuf]) -> String {
        let sc = &self.scenario;
        let mut out = format!(
            "# Scenario {}\n\n{}\n\n{} jobs, {} provers in {} entities, {} seeds per mechanism \
             (mean ± 95% CI over seeds); simulated in {:.1} s on {} threads.\n\n",
            sc.name,
            sc.description,
            sc.jobs,
            sc.provers(),
            self.entities,
            self.seeds,
            self.elapsed_s,
            self.threads
        );
        out.push_str("| metric |");
        for m in &self.mechanisms {
            out.push_str(&format!(" {} |", m.mechanism));
        }
        out.push_str("\n|---|");
        for _ in &self.mechanisms {
            out.push_str("---|");
        }
        out.push('\n');
        for (key, label) in METRICS {
            if *key == "focus_share" && sc.focus.is_none() {
                continue;
            }
            let label = if *key == "focus_share" {
                format!("share of `{}`", sc.focus.as_deref().unwrap_or(""))
            } else if *key == "cost_with_misses" {
                format!("cost per job incl. C = {} × miss rate", sc.miss_cost)
            } else {
                label.to_string()
            };
            out.push_str(&format!("| {label} |"));
            for m in &self.mechanisms {
                out.push_str(&format!(" {} |", fmt(m.get(key))));
            }
            out.push('\n');
        }
        for p in plots {
            if let Some(name) = p.file_name() {
                out.push_str(&format!(
                    "\n![{}]({})\n",
                    name.to_string_lossy(),
                    name.to_string_lossy()
                ));
            }
        }
        out
    }

    /// Writes `<stem>-shares.svg`, `<stem>-cost.svg` and `<stem>-latency.svg` into `dir`.
    pub fn plots(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, String> {
        use plotters::prelude::*;
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let names: Vec<String> = self.mechanisms.iter().map(|m| m.mechanism.clone()).collect();
        let colours = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK, &YELLOW];
        let mut written = Vec::new();

        // Reward shares by rank: how concentrated each mechanism makes the market.
        let path = dir.join(format!("{stem}-shares.svg"));
        {
            let root = SVGBackend::new(&path, (800, 480)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let n = self.entities.clamp(2, 30);
            let top = self
                .mechanisms
                .iter()
                .flat_map(|m| m.ranked_shares.iter().copied())
                .fold(0.0f64, f64::max)
                .max(0.01);
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!("{}: reward share by rank (top {n})", self.scenario.name),
                    ("sans-serif", 20),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(1f64..n as f64, 0f64..top * 1.05)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("rank")
                .y_desc("share of rewards")
                .draw()
                .map_err(|e| err(&e))?;
            for (i, m) in self.mechanisms.iter().enumerate() {
                let c = colours[i % colours.len()];
                let pts: Vec<(f64, f64)> = m
                    .ranked_shares
                    .iter()
                    .take(n)
                    .enumerate()
                    .map(|(r, s)| (r as f64 + 1.0, *s))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(names[i].clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        written.push(path);

        // Bars with CI whiskers for one metric per mechanism.
        let mut bars = |key: &str, title: &str, file: &str| -> Result<(), String> {
            let path = dir.join(format!("{stem}-{file}.svg"));
            let stats: Vec<Stat> = self.mechanisms.iter().map(|m| m.get(key)).collect();
            let top = stats
                .iter()
                .filter(|s| s.mean.is_finite())
                .map(|s| s.mean + s.ci95)
                .fold(0.0f64, f64::max)
                .max(1e-9);
            let root = SVGBackend::new(&path, (800, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let k = stats.len();
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("{}: {title}", self.scenario.name), ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..k as f64, 0f64..top * 1.1)
                .map_err(|e| err(&e))?;
            let labels = names.clone();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(k * 2 + 1)
                .x_label_formatter(&move |x| {
                    let i = x.floor() as usize;
                    if (x - x.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                        labels[i].clone()
                    } else {
                        String::new()
                    }
                })
                .y_desc(title)
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in stats.iter().enumerate() {
                if !s.mean.is_finite() {
                    continue;
                }
                let c = colours[i % colours.len()];
                let x = i as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.15, 0.0), (x + 0.85, s.mean)],
                        c.mix(0.6).filled(),
                    )))
                    .map_err(|e| err(&e))?;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x + 0.5, (s.mean - s.ci95).max(0.0)), (x + 0.5, s.mean + s.ci95)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(|e| err(&e))?;
            }
            root.present().map_err(|e| err(&e))?;
            drop(chart);
            drop(root);
            written.push(path);
            Ok(())
        };
        bars("cost_per_job", "requester cost per job (credits)", "cost")?;
        bars("latency_p99_s", "latency p99 (s)", "latency")?;
        bars("hhi", "HHI of rewards", "hhi")?;
        Ok(written)
    }
}
