//! A prover this project did not write, end to end: snarkjs (Groth16 over BN254, from npm) and
//! the circuit compiler circom2 (from npm), packaged by the test into OCI images offline (the
//! machine's Node.js and the npm packages, two layers), deployed with `program deploy --image
//! --verifier-image`, proven by a prover node on one validator's network and verified by a
//! committee of other nodes running snarkjs' own verifier, then fetched and checked again by
//! `proof fetch`. The requester's side (compiling the circuit, the trusted setup) runs here with
//! the same packages, as a rollup team would run it.
//!
//! The npm packages come from `PROVERNET_TEST_NPM` (a directory whose `node_modules` holds
//! snarkjs 0.7 and circom2, installed by `.ci/run`); without it the test says so and does
//! nothing, except in CI, where it must run. Needs root (the sandbox) and Node.js.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use provernet_image::build::{write_layout, FileEntry};
use provernet_image::RunConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// Where the packages are installed inside the images.
const MODULES: &str = "/opt/snarkjs/node_modules";

fn npm_dir() -> Option<PathBuf> {
    match std::env::var_os("PROVERNET_TEST_NPM") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set PROVERNET_TEST_NPM (.ci/run installs snarkjs and circom2)"
            );
            eprintln!("PROVERNET_TEST_NPM is not set: the third-party prover test did nothing");
            None
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every regular file under `dir`, as entries under `to` (modes kept, links left out).
fn tree(dir: &Path, to: &str, out: &mut Vec<FileEntry>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let path = format!("{to}/{}", e.file_name().to_string_lossy());
        if meta.is_dir() {
            tree(&e.path(), &path, out);
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            out.push(FileEntry { path, source: e.path(), mode });
        }
    }
}

/// Two images over the same two layers (Node.js and its libraries; the npm packages): one runs
/// snarkjs' prover on the job's inputs, the other its verifier on a proof.
fn images(dir: &Path, npm: &Path) -> (PathBuf, PathBuf) {
    let node = std::fs::canonicalize("/usr/bin/node").expect("Node.js at /usr/bin/node");
    let mut base =
        vec![FileEntry { path: "/usr/bin/node".into(), source: node.clone(), mode: 0o755 }];
    for lib in provernet_image::build::shared_libraries(&node).unwrap() {
        base.push(FileEntry { path: lib.to_string_lossy().into_owned(), source: lib, mode: 0o755 });
    }
    let mut modules = Vec::new();
    tree(&npm.join("node_modules"), MODULES, &mut modules);
    let cli = format!("{MODULES}/snarkjs/cli.js");
    let run = |args: &[&str]| RunConfig {
        entrypoint: Some(
            ["/usr/bin/node", cli.as_str()].iter().chain(args).map(|s| s.to_string()).collect(),
        ),
        env: Some(vec![
            "PATH=/usr/bin:/bin".into(),
            "NODE_OPTIONS=--max-old-space-size=1024".into(),
        ]),
        working_dir: Some("/tmp".into()),
        ..RunConfig::default()
    };
    let prover = dir.join("snarkjs-prover");
    let prove = run(&[
        "groth16",
        "fullprove",
        "/job/in/input.json",
        "/job/in/circuit.wasm",
        "/job/in/circuit.zkey",
        "/job/out/proof.json",
        "/job/out/public.json",
    ]);
    write_layout(&prover, &[base.clone(), modules.clone()], &prove).unwrap();
    let verifier = dir.join("snarkjs-verifier");
    let verify = run(&[
        "groth16",
        "verify",
        "/job/in/vkey.json",
        "/job/proof/public.json",
        "/job/proof/proof.json",
    ]);
    write_layout(&verifier, &[base, modules], &verify).unwrap();
    (prover, verifier)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snarkjs_from_npm_proves_and_verifies_as_images_on_the_network() {
    let Some(npm) = npm_dir() else { return };
    // Two validators; three nodes on both of them (the prover and a committee of the others).
    let mut net = Net::many(11, 2, 3, &[], |i| i % 2).await;
    for i in 0..3 {
        net.start_node(i).await;
    }
    // The requester's side: a circuit (c = a·b), compiled by circom2, and a Groth16 setup by
    // snarkjs (a throwaway powers of tau: a test, not a ceremony).
    let work = net.path("circuit");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("mul.circom"),
        "pragma circom 2.0.0;\ntemplate Multiplier() { signal input a; signal input b; signal output c; c <== a * b; }\ncomponent main = Multiplier();\n",
    )
    .unwrap();
    let modules = npm.join("node_modules");
    let node = |args: &[&str]| {
        let mut c = Command::new("node");
        c.current_dir(&work).args(args);
        c
    };
    let circom = modules.join("circom2/cli.js");
    run(&mut node(&[circom.to_str().unwrap(), "mul.circom", "--r1cs", "--wasm", "-o", "."]));
    let snarkjs = modules.join("snarkjs/cli.js");
    let s = snarkjs.to_str().unwrap();
    run(&mut node(&[s, "powersoftau", "new", "bn128", "6", "pot0.ptau"]));
    run(&mut node(&[
        s,
        "powersoftau",
        "contribute",
        "pot0.ptau",
        "pot1.ptau",
        "--name=test",
        "-e=test entropy",
    ]));
    run(&mut node(&[s, "powersoftau", "prepare", "phase2", "pot1.ptau", "pot.ptau"]));
    run(&mut node(&[s, "groth16", "setup", "mul.r1cs", "pot.ptau", "circuit.zkey"]));
    run(&mut node(&[s, "zkey", "export", "verificationkey", "circuit.zkey", "vkey.json"]));
    std::fs::write(work.join("input.json"), r#"{"a": "3", "b": "11"}"#).unwrap();

    let (prover, verifier) = images(net.dir.path(), &npm);
    let (prover, verifier) =
        (prover.to_string_lossy().into_owned(), verifier.to_string_lossy().into_owned());
    let mut args = vec!["program", "deploy", "--name", "snarkjs-mul", "--image", &prover];
    args.extend(["--verifier-image", &verifier, "--time", "120s", "--verifier-time", "120s"]);
    args.extend(["--memory", "2GiB", "--verifier-memory", "2GiB"]);
    for i in ["input.json", "circuit.wasm", "circuit.zkey", "vkey.json"] {
        args.extend(["--input-name", i]);
    }
    let v = net.cli_json(&args);
    assert!(v["image"].as_str().unwrap().starts_with("sha256:"), "{v}");

    let input = |name: &str, file: &str| format!("{name}={}", work.join(file).display());
    let inputs = [
        input("input.json", "input.json"),
        input("circuit.wasm", "mul_js/mul.wasm"),
        input("circuit.zkey", "circuit.zkey"),
        input("vkey.json", "vkey.json"),
    ];
    let mut args = vec!["job", "submit", "snarkjs-mul", "--wait"];
    for i in &inputs {
        args.extend(["--input", i.as_str()]);
    }
    let v = net.cli_json(&args);
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    let winner =
        v["attempts"].as_array().unwrap().iter().find(|a| a["state"] == "Verified").unwrap();
    // Verified by a committee of the other nodes, each running snarkjs' verifier image.
    let votes = winner["votes"].as_array().unwrap();
    assert!(!votes.is_empty() && votes.iter().all(|v| v == "valid"), "{winner:#}");

    let id = v["id"].as_str().unwrap();
    let out = net.path("fetched-snarkjs");
    let f = net.cli_json(&["proof", "fetch", id, "--out", &out.to_string_lossy()]);
    assert_eq!(f["verdict"], "valid", "{f}");
    // The public output is the product: c = 3 · 11.
    let public = std::fs::read_to_string(out.join("proof/public.json")).unwrap();
    assert!(public.contains("\"33\""), "{public}");
}
