//! A network of real processes on loopback for end-to-end tests: validators from
//! `provernet genesis` (one, or several), prover nodes from `provernet node` (each with its own
//! key, config and log, attached to a validator of its own), and the requester's side driven
//! through the `provernet` CLI itself.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use provernet_sdk::Client;
use provernet_types::Keypair;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_provernet");

/// The directory of the workspace's binaries (the built-in programs sit beside `provernet`).
pub fn bin_dir() -> &'static Path {
    Path::new(BIN).parent().unwrap()
}

/// A child process killed with SIGKILL when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(args: &[&str], log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc { child: Some(child), log: log.to_owned() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process has a child (for a node: a sandboxed program is running).
    pub fn has_child(&self) -> bool {
        let Some(pid) = self.pid() else { return false };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("children")).is_ok_and(|c| !c.trim().is_empty())
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Node {
    pub key: Keypair,
    pub config: PathBuf,
    pub proc: Option<Proc>,
    log: PathBuf,
}

impl Node {
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "node already running");
        self.proc =
            Some(Proc::spawn(&["node", "--config", &self.config.to_string_lossy()], &self.log));
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn account(&self) -> String {
        self.key.account().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Net {
    pub dir: tempfile::TempDir,
    /// Validator 0's API.
    pub api: String,
    /// Every validator's API, in order.
    pub apis: Vec<String>,
    /// A client of validator 0 alone.
    pub client: Client,
    pub faucet_key: PathBuf,
    /// Validator 0.
    pub validator: Proc,
    /// Validators 1 and up (`None` while stopped).
    pub others: Vec<Option<Proc>>,
    pub nodes: Vec<Node>,
}

impl Net {
    /// A validator and `provers` node configurations (not started); `corrupt` lists the nodes
    /// that corrupt every proof they produce. `slot` keeps concurrent tests' ports apart.
    pub async fn new(slot: u16, provers: usize, corrupt: &[usize]) -> Net {
        Net::many(slot, 1, provers, corrupt, |_| 0).await
    }

    /// `validators` validators and `provers` node configurations (not started); node `i`
    /// talks to validator `attach(i)` first, then the others in turn.
    pub async fn many(
        slot: u16,
        validators: usize,
        provers: usize,
        corrupt: &[usize],
        attach: impl Fn(usize) -> usize,
    ) -> Net {
        Net::many_with(slot, validators, provers, corrupt, attach, "").await
    }

    /// [`Net::many`], with `validator_toml` appended to every validator's configuration.
    pub async fn many_with(
        slot: u16,
        validators: usize,
        provers: usize,
        corrupt: &[usize],
        attach: impl Fn(usize) -> usize,
        validator_toml: &str,
    ) -> Net {
        let dir = tempfile::tempdir().unwrap();
        // Below the ephemeral range, apart from the other e2e tests' ports (18380-18390 and
        // 20000-30000), and apart per test process.
        // Slot 8 fits between slot 7 and the ephemeral range (32768 and up); 9 to 13 lie below
        // slot 0.
        let pid = (std::process::id() % 250) as u16;
        let base = match slot {
            0..8 => 10_000 + pid * 10 + slot * 2_600,
            8 => 30_700 + (pid % 200) * 10,
            9 => 4_000 + pid * 10,
            10 => 6_500 + pid * 10,
            11 => 2_000 + (pid % 190) * 10,
            12 => 9_000 + (pid % 100) * 10,
            13 => 1_100 + (pid % 89) * 10,
            _ => panic!("port slots are 0 to 13"),
        };
        let (p2p, api_port) = (base, base + 5);
        let keys: Vec<Keypair> = (0..provers).map(|_| Keypair::generate()).collect();
        let mut genesis = Command::new(BIN);
        genesis
            .args(["genesis", "--validators", &validators.to_string(), "--host", "127.0.0.1"])
            .arg("--out")
            .arg(dir.path().join("net"))
            .args(["--base-port", &p2p.to_string(), "--api-port", &api_port.to_string()]);
        for k in &keys {
            genesis.args(["--fund", &format!("{}=1000", k.account())]);
        }
        let out = genesis.output().unwrap();
        assert!(out.status.success(), "genesis: {}", String::from_utf8_lossy(&out.stderr));
        let apis: Vec<String> = (0..validators)
            .map(|v| format!("http://127.0.0.1:{}", api_port as usize + v))
            .collect();
        if !validator_toml.is_empty() {
            for v in 0..validators {
                let path = dir.path().join(format!("net/validator-{v}/validator.toml"));
                let mut toml = std::fs::read_to_string(&path).unwrap();
                toml.push('\n');
                toml.push_str(validator_toml);
                std::fs::write(&path, toml).unwrap();
            }
        }
        let validator = spawn_validator(dir.path(), 0);
        let others = (1..validators).map(|v| Some(spawn_validator(dir.path(), v))).collect();
        let api = apis[0].clone();
        let client = Client::new(&api).unwrap();
        for a in &apis {
            let c = Client::new(a).unwrap();
            wait_until("a validator's API", Duration::from_secs(60), || async {
                c.status().await.is_ok()
            })
            .await;
        }
        let mut nodes = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let ndir = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&ndir).unwrap();
            std::fs::write(
                ndir.join("key.json"),
                serde_json::json!({"seed": hex::encode(key.seed())}).to_string(),
            )
            .unwrap();
            let corrupt = if corrupt.contains(&i) { "testing_corrupt_proofs = true\n" } else { "" };
            let own = attach(i);
            let list: Vec<String> =
                (0..validators).map(|k| format!("\"{}\"", apis[(own + k) % validators])).collect();
            let toml = format!(
                "api = [{}]\nkey = \"key.json\"\ndata_dir = \"data\"\nstake = \"100\"\n\
                 cores = \"1\"\nmemory = \"2GiB\"\ngpus = 0\n{corrupt}",
                list.join(", ")
            );
            std::fs::write(ndir.join("node.toml"), toml).unwrap();
            nodes.push(Node {
                key,
                config: ndir.join("node.toml"),
                proc: None,
                log: ndir.join("node.log"),
            });
        }
        let faucet_key = dir.path().join("net/faucet.json");
        Net { dir, api, apis, client, faucet_key, validator, others, nodes }
    }

    /// Stops validator `v` (1 and up) with SIGKILL.
    pub fn kill_validator(&mut self, v: usize) {
        if let Some(mut p) = self.others[v - 1].take() {
            p.kill();
        }
    }

    /// Starts validator `v` (1 and up) again from its data directory.
    pub fn restart_validator(&mut self, v: usize) {
        assert!(self.others[v - 1].is_none(), "validator {v} is running");
        self.others[v - 1] = Some(spawn_validator(self.dir.path(), v));
    }

    /// Starts node `i` and waits until the chain lists it.
    pub async fn start_node(&mut self, i: usize) {
        self.nodes[i].start();
        let id = self.nodes[i].account();
        let client = self.client.clone();
        wait_until("a node to register", Duration::from_secs(60), || {
            let (client, id) = (client.clone(), id.clone());
            async move {
                client.get::<Value>(&format!("/v1/provers/{id}")).await.ok().flatten().is_some()
            }
        })
        .await;
    }

    /// Runs the CLI as the faucet's requester; `(success, stdout, stderr)`.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_as(&self.faucet_key, args)
    }

    pub fn cli_as(&self, key: &Path, args: &[&str]) -> (bool, String, String) {
        self.cli_through(&self.api, key, args)
    }

    /// Runs the CLI against the API list `api` (`PROVERNET_API`, comma-separated).
    pub fn cli_through(&self, api: &str, key: &Path, args: &[&str]) -> (bool, String, String) {
        let out: Output = Command::new(BIN)
            .args(args)
            .env("PROVERNET_API", api)
            .env("PROVERNET_KEY", key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the CLI and parses its `--json` output; panics on failure.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let (ok, out, err) = self.cli(&all);
        assert!(ok, "provernet {args:?} failed:\n{err}\n{}", self.logs());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    }

    pub async fn job(&self, id: &str) -> Value {
        self.client.get(&format!("/v1/jobs/{id}")).await.unwrap().unwrap()
    }

    pub async fn wait_final(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.job(id).await;
            if v["final"] == true {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "job {id} not final after {limit:?}: {v:#}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn balance(&self, account: &str) -> u64 {
        self.client
            .get::<Value>(&format!("/v1/accounts/{account}"))
            .await
            .unwrap()
            .map_or(0, |v| v["balance_micro_credits"].as_u64().unwrap())
    }

    /// The chain's transaction fee, in micro-credits.
    pub async fn tx_fee(&self) -> u64 {
        let s: Value = self.client.get("/v1/status").await.unwrap().unwrap();
        s["tx_fee_micro_credits"].as_u64().unwrap()
    }

    pub async fn prover(&self, account: &str) -> Value {
        self.client.get::<Value>(&format!("/v1/provers/{account}")).await.unwrap().unwrap()
    }

    /// The tail of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        let tail = |t: String| -> String {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        s.push_str(&format!(
            "--- validator\n{}\n",
            tail(std::fs::read_to_string(&self.validator.log).unwrap_or_default())
        ));
        for v in 1..=self.others.len() {
            let log = self.dir.path().join(format!("validator-{v}.log"));
            s.push_str(&format!(
                "--- validator {v}\n{}\n",
                tail(std::fs::read_to_string(&log).unwrap_or_default())
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            s.push_str(&format!("--- node {i}\n{}\n", tail(n.log())));
        }
        s
    }

    /// Checks conservation from outside, on validator 0: the supply's parts sum to the genesis
    /// supply, and the balances of the accounts this test knows are all the balances there are.
    pub async fn assert_conserved(&self, known: &[String]) {
        let client = self.client.clone();
        self.assert_conserved_on(&client, known).await;
    }

    /// [`Net::assert_conserved`] on the validator behind `client`.
    pub async fn assert_conserved_on(&self, client: &Client, known: &[String]) {
        let s: Value = client.get("/v1/supply").await.unwrap().unwrap();
        let part = |k: &str| s[k].as_u64().unwrap() as u128;
        let parts = part("balances_micro_credits")
            + part("stakes_micro_credits")
            + part("escrows_micro_credits")
            + part("treasury_micro_credits")
            + part("burned_micro_credits");
        assert_eq!(parts, part("supply_micro_credits"), "credits not conserved: {s:#}");
        let mut sum = 0u128;
        for a in known {
            sum += u128::from(
                client
                    .get::<Value>(&format!("/v1/accounts/{a}"))
                    .await
                    .unwrap()
                    .map_or(0, |v| v["balance_micro_credits"].as_u64().unwrap()),
            );
        }
        assert_eq!(s["accounts"].as_u64().unwrap() as usize, known.len(), "{s:#}");
        assert_eq!(sum, part("balances_micro_credits"), "{s:#}");
    }

    /// Every account on the chain the test knows of: the faucet, the nodes and the validators.
    pub fn accounts(&self) -> Vec<String> {
        let mut v = vec![account_of(&self.faucet_key)];
        v.extend(self.nodes.iter().map(Node::account));
        for i in 0..self.apis.len() {
            v.push(account_of(&self.path(&format!("net/validator-{i}/key.json"))));
        }
        v
    }
}

fn spawn_validator(dir: &Path, v: usize) -> Proc {
    let log = if v == 0 { "validator.log".to_owned() } else { format!("validator-{v}.log") };
    Proc::spawn(
        &[
            "validator",
            "--config",
            &dir.join(format!("net/validator-{v}/validator.toml")).to_string_lossy(),
        ],
        &dir.join(log),
    )
}

pub fn account_of(key_file: &Path) -> String {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let seed: [u8; 32] = hex::decode(v["seed"].as_str().unwrap()).unwrap().try_into().unwrap();
    Keypair::from_seed(seed).account().to_string()
}

pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Groth16 job inputs for a `len`-byte preimage, written into the network's directory:
/// `name=path` arguments for `job submit`. Keys from the INSECURE fixed-seed setup.
pub fn groth16_inputs(net: &Net, len: usize, tag: u8) -> Vec<String> {
    let keys = net.path(&format!("g16-{len}"));
    if !keys.exists() {
        std::fs::create_dir_all(&keys).unwrap();
        let (pk, vk) = groth16_sha256::setup_insecure(len, [7; 32]).unwrap();
        std::fs::write(keys.join("pk"), pk.to_bytes()).unwrap();
        std::fs::write(keys.join("vk"), vk.to_bytes()).unwrap();
    }
    let preimage: Vec<u8> =
        (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(tag)).collect();
    let digest = groth16_sha256::sha256(&preimage);
    let pre = net.write(&format!("preimage-{len}-{tag}"), &preimage);
    let dig = net.write(&format!("digest-{len}-{tag}"), &digest);
    vec![
        format!("pk={}", keys.join("pk").display()),
        format!("vk={}", keys.join("vk").display()),
        format!("preimage={pre}"),
        format!("digest={dig}"),
    ]
}

/// Deploys program `name` through the CLI: the workspace binary `prover`, verified as
/// `verifier` says (`["--builtin", KIND]` or `["--verifier", PATH]`), with these inputs.
fn deploy(net: &Net, name: &str, prover: &str, verifier: [&str; 2], inputs: &[&str]) {
    let prover = bin_dir().join(prover);
    let prover = prover.to_string_lossy();
    let mut args = vec!["program", "deploy", "--name", name, "--prover", &prover];
    args.extend(verifier);
    for i in inputs {
        args.extend(["--input-name", i]);
    }
    // Every workspace prover writes its proof as `proof`; declared, a workflow may wire it.
    args.extend(["--output-name", "proof", "--time", "30s"]);
    let v = net.cli_json(&args);
    assert!(v["program"].as_str().is_some(), "{v}");
}

/// Deploys the built-in Groth16 program (verified natively by the validators) through the CLI.
pub fn deploy_groth16(net: &Net) {
    let inputs = ["pk", "vk", "preimage", "digest"];
    deploy(net, "groth16-sha256", "groth16-sha256-prover", ["--builtin", "groth16-bn254"], &inputs);
}

/// Deploys a program whose proofs committees of provers verify, through the CLI: the
/// workspace binaries `<name>-prover` and `<name>-verifier`, one declared input `statement`.
pub fn deploy_committee_program(net: &Net, name: &str) {
    deploy_committee_program_as(net, name, name);
}

/// [`deploy_committee_program`] of the executables `<exe>-prover` and `<exe>-verifier` under
/// the program name `name`.
pub fn deploy_committee_program_as(net: &Net, exe: &str, name: &str) {
    let verifier = bin_dir().join(format!("{exe}-verifier"));
    let verifier = verifier.to_string_lossy();
    deploy(net, name, &format!("{exe}-prover"), ["--verifier", &verifier], &["statement"]);
}

/// Deploys the built-in program `name` (`winterfell-chain` or `plonky3-keccak`: the workspace
/// binary `<name>-prover`, one input `statement`), verified natively by the validators.
pub fn deploy_native(net: &Net, name: &str) {
    deploy(net, name, &format!("{name}-prover"), ["--builtin", name], &["statement"]);
}

/// Deploys the segmented chain's join (`winterfell-chain-join`, verified by committees of
/// provers running `winterfell-chain-join-verifier`).
pub fn deploy_join(net: &Net) {
    let verifier = bin_dir().join("winterfell-chain-join-verifier");
    let verifier = verifier.to_string_lossy();
    let name = "winterfell-chain-join";
    deploy(net, name, name, ["--verifier", &verifier], &["statement"]);
}

/// `job submit ... --json` as the faucet; the job id.
pub fn submit(net: &Net, program: &str, inputs: &[String], extra: &[&str]) -> String {
    let mut args: Vec<String> = vec!["job".into(), "submit".into(), program.into()];
    for i in inputs {
        args.push("--input".into());
        args.push(i.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = net.cli_json(&refs);
    v["job"].as_str().or_else(|| v["id"].as_str()).unwrap().to_owned()
}
