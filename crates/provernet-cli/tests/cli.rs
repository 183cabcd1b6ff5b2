//! The `provernet` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn provernet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_provernet")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn quote_matches_the_seed_price() {
    let (code, out, _) = provernet(&[
        "quote",
        "--offline",
        "--cores",
        "32",
        "--memory",
        "190GB",
        "--gpus",
        "1",
        "--time",
        "5m",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "32 cores, 190GB, 1 GPUs for 5m × 1: 0.035000 credits (default prices)");
}

#[test]
fn quote_json() {
    let (code, out, _) = provernet(&[
        "quote",
        "--offline",
        "--cores",
        "500m",
        "--memory",
        "64GiB",
        "--time",
        "90s",
        "--redundancy",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cores"], "500m");
    assert_eq!(v["memory"], "64GiB");
    assert_eq!(v["time_limit_s"], 90);
    let per = v["per_prover_micro_credits"].as_u64().unwrap();
    assert_eq!(v["total_micro_credits"].as_u64().unwrap(), 2 * per);
}

#[test]
fn quote_errors_name_the_problem() {
    let (code, _, err) = provernet(&["quote", "--cores", "2", "--memory", "64", "--time", "5m"]);
    assert_eq!(code, 2);
    assert!(err.contains("a unit is required"), "{err}");
    let (code, _, err) = provernet(&[
        "quote",
        "--cores",
        "2",
        "--memory",
        "1GiB",
        "--time",
        "5m",
        "--redundancy",
        "9",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("error: redundancy 9 is outside 1..=3"), "{err}");
    assert!(err.contains("hint: use --redundancy 1, 2 or 3"), "{err}");
}

#[test]
fn bench_ledger_reports_what_it_measured() {
    let (code, out, err) = provernet(&[
        "bench",
        "ledger",
        "--blocks",
        "3",
        "--warmup",
        "4",
        "--block-txs",
        "200",
        "--provers",
        "32",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["blocks"], 3);
    assert_eq!(v["txs"], 600);
    assert!(v["tx_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["tx_kinds"]["accept_job"].as_u64().unwrap() > 0);
    assert!(v["tx_kinds"]["vote"].as_u64().unwrap() > 0, "the pipeline reached verification");
}

#[test]
fn bench_scale_reports_checkpoints_and_draws_them() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("scale.svg");
    let args = ["bench", "scale", "--provers", "20", "--settled", "300", "--block-txs", "400"];
    let more = ["--blocks", "2", "--pollers", "50", "--json", "--svg", svg.to_str().unwrap()];
    let (code, out, err) = provernet(&[&args[..], &more[..]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let points = v["checkpoints"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{v}");
    assert!(points[0]["settled"].as_u64().unwrap() >= 300, "{v}");
    assert_eq!(points[0]["work_polls"], 100);
    assert!(points[0]["archived"].as_u64().unwrap() >= 300, "settled jobs are archived: {v}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("settled jobs"), "{drawn}");
    // The plot can be drawn again from the JSON alone.
    let json = dir.path().join("scale.json");
    std::fs::write(&json, &out).unwrap();
    let again = dir.path().join("again.svg");
    let (code, _, err) = provernet(&[
        "bench",
        "scale",
        "--replot",
        json.to_str().unwrap(),
        "--svg",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), drawn);
    let (code, _, err) = provernet(&["bench", "scale", "--settled", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--settled must be at least 1"), "{err}");
}

#[test]
fn program_run_refuses_a_non_elf_prover() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("prover.txt");
    std::fs::write(&script, "echo not a program\n").unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = provernet(&[
        "program",
        "run",
        "--prover",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("neither a Linux ELF executable nor a `#!` script"), "{err}");
    assert!(!out.exists(), "nothing ran");
}

#[test]
fn a_prover_node_refuses_to_run_jobs_without_cgroups() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "api = \"http://127.0.0.1:9\"\nkey = \"prover.key\"\ndata_dir = \"data\"\n\
         stake = \"100\"\nno_cgroups = true\n",
    )
    .unwrap();
    let (code, _, err) = provernet(&["node", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`no_cgroups` is not allowed on a prover node"), "{err}");
    assert!(err.contains("--degraded"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing started");
}

#[test]
fn node_init_writes_a_config_with_detected_capacity_and_says_what_next() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("node");
    let d = d.to_str().unwrap();
    let api = "http://127.0.0.1:8080,http://127.0.0.1:8081";
    let (code, out, err) =
        provernet(&["node", "init", "--dir", d, "--api", api, "--stake", "150", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let account = v["account"].as_str().unwrap().to_owned();
    assert_eq!(account.len(), 64);
    let next = v["next"].as_array().unwrap();
    assert!(next[0].as_str().unwrap().contains(&format!("--to {account} --amount 151.000000")));
    assert_eq!(next[1], format!("provernet node --config {d}/node.toml"));
    let toml = std::fs::read_to_string(format!("{d}/node.toml")).unwrap();
    assert!(toml.contains("stake = \"150.000000\""), "{toml}");
    assert!(toml.contains("api = [\"http://127.0.0.1:8080\", \"http://127.0.0.1:8081\"]"));
    let cores = v["capacity"]["cores"].as_str().unwrap();
    assert!(toml.contains(&format!("cores = \"{cores}\"")), "{toml}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(format!("{d}/key.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");
    // A second init keeps the key and refuses to overwrite the configuration.
    let (code, _, err) = provernet(&["node", "init", "--dir", d]);
    assert_eq!(code, 1);
    assert!(err.contains("node.toml exists") && err.contains("hint: pass --force"), "{err}");
    let (code, out, _) = provernet(&["node", "init", "--dir", d, "--force", "--json"]);
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["account"], account.as_str(), "the key is kept");
    let (code, _, err) = provernet(&["node", "init", "--dir", d, "--force", "--api", "ftp://x"]);
    assert_eq!(code, 1);
    assert!(err.contains("not an http"), "{err}");
}
