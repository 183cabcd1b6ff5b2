//! Deterministic simulations of a 4-validator network: commonware's simulated runtime (clock,
//! storage, scheduling) and simulated p2p network (latency, loss, partitions), with the real
//! ledger, mempool, executor, redb store and blob network (each validator's blob store lives
//! in memory for the whole test, so it survives the validator's crash like a disk). Every test
//! prints its seed when it fails; the same seed replays the same run.

use commonware_cryptography::Signer as _;
use commonware_p2p::simulated::{self, Link, Oracle};
use commonware_runtime::{deterministic, Clock, Handle, Quota, Runner, Supervisor as _};
use commonware_utils::{probability, NZUsize, NZU32};
use provernet_blobs::{Backend, BlobStore, Limits};
use provernet_consensus::engine::{channel, Channels, MAX_MESSAGE_BYTES};
use provernet_consensus::network::{deal_network, KeyFile, Network};
use provernet_consensus::{Chain, ChainConfig, PublicKey, Submitter, ValidatorConfig};
use provernet_ledger::{ChainParams, Genesis};
use provernet_types::{
    AccountId, BoundedVec, Encode, Keypair, MicroCredits, Nonce, Transaction, TxBody,
};
use std::path::PathBuf;
use std::time::Duration;

const N: usize = 4;

fn validator_seed(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn user() -> Keypair {
    Keypair::from_seed([0xaa; 32])
}

/// Accounts funded with 1 µc, for the mempool flood.
fn attacker(i: usize) -> Keypair {
    Keypair::from_seed([0xb0 + i as u8; 32])
}

const ATTACKERS: usize = 20;

fn ledger_genesis() -> Genesis {
    let params = ChainParams::devnet(Vec::new());
    let mut accounts = vec![(user().account(), MicroCredits(1_000_000_000))];
    accounts.extend((0..ATTACKERS).map(|i| (attacker(i).account(), MicroCredits(1))));
    Genesis {
        params,
        accounts: BoundedVec::try_from_vec(accounts).expect("few accounts"),
        programs: BoundedVec::default(),
    }
}

struct Node {
    submitter: Submitter,
    handles: Vec<Handle<()>>,
}

impl Node {
    /// Stops every task of the node, as a crash would; its storage stays.
    async fn crash(self) {
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
    }
}

struct Net {
    network: Network,
    keys: Vec<KeyFile>,
    dir: tempfile::TempDir,
    oracle: Oracle<PublicKey, deterministic::Context>,
    blobs: Vec<BlobStore>,
}

impl Net {
    fn public_key(&self, i: usize) -> PublicKey {
        self.network.signer(&self.keys[i]).expect("key").0.public_key()
    }

    fn db(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("v{i}.redb"))
    }

    async fn start(&self, context: &deterministic::Context, i: usize) -> Node {
        let (private, scheme) = self.network.signer(&self.keys[i]).expect("signer");
        let chain = Chain::open(&self.db(i), &self.network.genesis, ChainConfig::default())
            .expect("open chain");
        let control = self.oracle.control(private.public_key());
        let quota = Quota::per_second(NZU32!(10_000));
        let mut pairs = Vec::new();
        for ch in channel::ALL {
            pairs.push(control.register(ch, quota).await.expect("register channel"));
        }
        let mut pairs = pairs.into_iter();
        let mut next = || pairs.next().expect("eight channels");
        let channels = Channels {
            votes: next(),
            certificates: next(),
            resolver: next(),
            backfill: next(),
            blocks: next(),
            txs: next(),
            blobs: next(),
            haves: next(),
        };
        let cfg = ValidatorConfig {
            public_key: private.public_key(),
            scheme,
            chain,
            partition: format!("validator-{i}"),
            blobs: self.blobs[i].clone(),
        };
        let (submitter, handles) = provernet_consensus::start(
            context.child("validator").with_attribute("index", i),
            cfg,
            self.oracle.manager(),
            control,
            channels,
        )
        .await;
        Node { submitter, handles }
    }

    async fn start_all(&self, context: &deterministic::Context) -> Vec<Node> {
        let mut nodes = Vec::with_capacity(N);
        for i in 0..N {
            nodes.push(self.start(context, i).await);
        }
        nodes
    }

    async fn link_all(&self, link: Link, members: &[usize]) {
        for &a in members {
            for &b in members {
                if a != b {
                    let _ = self
                        .oracle
                        .add_link(self.public_key(a), self.public_key(b), link.clone())
                        .await;
                }
            }
        }
    }

    async fn unlink(&self, a: usize, b: usize) {
        let _ = self.oracle.remove_link(self.public_key(a), self.public_key(b)).await;
        let _ = self.oracle.remove_link(self.public_key(b), self.public_key(a)).await;
    }
}

async fn setup(context: &mut deterministic::Context) -> Net {
    setup_with(context, Limits::default()).await
}

async fn setup_with(context: &mut deterministic::Context, limits: Limits) -> Net {
    let validators: Vec<([u8; 32], String)> =
        (0..N).map(|i| (validator_seed(i), format!("127.0.0.1:{}", 30000 + i))).collect();
    let (file, keys) = deal_network(&mut *context, ledger_genesis(), &validators).expect("deal");
    let network = Network::from_file(&file).expect("network file");
    let (sim, oracle) = simulated::Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: MAX_MESSAGE_BYTES,
            max_peers_per_set: NZUsize!(N),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        network.participants.iter().cloned(),
    )
    .await;
    sim.start();
    let blobs =
        (0..N).map(|_| BlobStore::open(&Backend::Memory, limits).expect("memory store")).collect();
    Net { network, keys, dir: tempfile::tempdir().expect("tempdir"), oracle, blobs }
}

fn good_link() -> Link {
    Link {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        success_rate: probability!(1.0),
    }
}

fn lossy_link() -> Link {
    Link {
        latency: Duration::from_millis(80),
        jitter: Duration::from_millis(40),
        success_rate: probability!(0.9),
    }
}

/// A transfer from the test user with this nonce.
fn transfer(nonce: u64, chain_id: &str) -> Vec<u8> {
    Transaction {
        signer: user().account(),
        nonce: Nonce(nonce),
        body: TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(1) },
    }
    .sign(&user(), chain_id)
    .encode()
}

/// Waits until every listed node's finalized height reaches `height`, or panics after `limit`.
async fn wait_height(
    context: &deterministic::Context,
    nodes: &[&Node],
    height: u64,
    limit: Duration,
) {
    let start = context.current();
    loop {
        if nodes.iter().all(|n| n.submitter.chain().tip().height >= height) {
            return;
        }
        let waited = context.current().duration_since(start).unwrap_or_default();
        if waited > limit {
            let heights: Vec<u64> =
                nodes.iter().map(|n| n.submitter.chain().tip().height).collect();
            panic!(
                "validators did not reach height {height} within {limit:?}: heights {heights:?}"
            );
        }
        context.sleep(Duration::from_millis(100)).await;
    }
}

/// Every listed node holds the same block hash and state root at every height up to `height`.
fn assert_same_chain(nodes: &[&Node], height: u64) {
    for h in 1..=height {
        let records: Vec<_> = nodes
            .iter()
            .map(|n| {
                n.submitter
                    .chain()
                    .with_store(|s| s.block(provernet_types::Height(h)))
                    .expect("store readable")
                    .expect("block stored")
            })
            .collect();
        for r in &records[1..] {
            assert_eq!(r.hash, records[0].hash, "block hash differs at height {h}");
            assert_eq!(r.root, records[0].root, "state root differs at height {h}");
        }
    }
}

#[allow(clippy::print_stderr)] // the seed must reach the person debugging the failure
fn run(
    seed: u64,
    test: impl FnOnce(
        deterministic::Context,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    // RUST_LOG=provernet_consensus=debug shows what the validators did.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let cfg =
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(3600)));
    let runner = deterministic::Runner::new(cfg);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.start(test)));
    if let Err(e) = result {
        eprintln!("simulation failed with seed {seed}; rerun with PROVERNET_SIM_SEED={seed}");
        std::panic::resume_unwind(e);
    }
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("PROVERNET_SIM_SEED") {
        return vec![s.parse().expect("PROVERNET_SIM_SEED is a number")];
    }
    let count: u64 =
        std::env::var("PROVERNET_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    (default..default + count).collect()
}

#[test]
fn four_validators_agree_under_message_loss() {
    for seed in seeds(1) {
        run(seed, |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(lossy_link(), &[0, 1, 2, 3]).await;
                let nodes = net.start_all(&context).await;
                let chain_id = nodes[0].submitter.chain().chain_id().to_owned();
                for nonce in 0..20 {
                    nodes[(nonce % 4) as usize]
                        .submitter
                        .submit(&transfer(nonce, &chain_id))
                        .await
                        .expect("admitted");
                }
                let all: Vec<&Node> = nodes.iter().collect();
                wait_height(&context, &all, 15, Duration::from_secs(120)).await;
                assert_same_chain(&all, 15);
                // Every submitted transfer applied exactly once.
                let nonce = nodes[0]
                    .submitter
                    .chain()
                    .with_state(|s| s.account(&user().account()).map(|a| a.nonce));
                assert_eq!(nonce, Some(Nonce(20)));
            })
        });
    }
}

/// The user's next nonce as `node` sees it.
fn user_nonce(node: &Node) -> Option<Nonce> {
    node.submitter.chain().with_state(|s| s.account(&user().account()).map(|a| a.nonce))
}

async fn submit_all(node: &Node, nonces: std::ops::Range<u64>) {
    let chain_id = node.submitter.chain().chain_id().to_owned();
    for nonce in nonces {
        node.submitter.submit(&transfer(nonce, &chain_id)).await.expect("admitted");
    }
}

#[test]
fn a_partitioned_validator_catches_up_after_the_partition_heals() {
    for seed in seeds(100) {
        run(seed, |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(good_link(), &[0, 1, 2, 3]).await;
                let nodes = net.start_all(&context).await;
                let all: Vec<&Node> = nodes.iter().collect();
                wait_height(&context, &all, 3, Duration::from_secs(60)).await;
                // Cut validator 3 off; the other three are a quorum and go on.
                for other in 0..3 {
                    net.unlink(3, other).await;
                }
                let stuck = nodes[3].submitter.chain().tip().height;
                submit_all(&nodes[0], 0..10).await;
                let majority: Vec<&Node> = nodes[..3].iter().collect();
                wait_height(&context, &majority, stuck + 15, Duration::from_secs(120)).await;
                assert!(
                    nodes[3].submitter.chain().tip().height <= stuck + 1,
                    "an isolated validator cannot finalize alone"
                );
                // Heal: validator 3 backfills and rejoins.
                net.link_all(good_link(), &[0, 1, 2, 3]).await;
                let target = nodes[0].submitter.chain().tip().height + 5;
                wait_height(&context, &all, target, Duration::from_secs(120)).await;
                assert_same_chain(&all, target);
                assert_eq!(user_nonce(&nodes[3]), Some(Nonce(10)));
            })
        });
    }
}

#[test]
fn a_crashed_validator_restarts_from_its_storage_and_catches_up() {
    for seed in seeds(200) {
        run(seed, |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(lossy_link(), &[0, 1, 2, 3]).await;
                let mut nodes = Vec::new();
                for i in 0..N {
                    nodes.push(Some(net.start(&context, i).await));
                }
                let live = |nodes: &Vec<Option<Node>>| -> Vec<u64> {
                    nodes.iter().flatten().map(|n| n.submitter.chain().tip().height).collect()
                };
                {
                    let all: Vec<&Node> = nodes.iter().flatten().collect();
                    wait_height(&context, &all, 5, Duration::from_secs(60)).await;
                    submit_all(all[0], 0..5).await;
                }
                let crashed = nodes[2].take().expect("node 2 runs");
                let before = crashed.submitter.chain().tip().height;
                crashed.crash().await;
                // The chain goes on without it, and accepts transactions meanwhile.
                {
                    let rest: Vec<&Node> = nodes.iter().flatten().collect();
                    submit_all(rest[1], 5..10).await;
                    wait_height(&context, &rest, before + 10, Duration::from_secs(120)).await;
                }
                let restarted = net.start(&context, 2).await;
                assert!(
                    restarted.submitter.chain().tip().height >= before,
                    "restart resumes from the stored tip, not from genesis"
                );
                nodes[2] = Some(restarted);
                let target = live(&nodes).into_iter().max().unwrap_or(0) + 5;
                let all: Vec<&Node> = nodes.iter().flatten().collect();
                wait_height(&context, &all, target, Duration::from_secs(120)).await;
                assert_same_chain(&all, target);
                for n in &all {
                    assert_eq!(
                        user_nonce(n),
                        Some(Nonce(10)),
                        "no transaction lost or applied twice"
                    );
                }
            })
        });
    }
}

#[test]
fn a_late_joiner_syncs_the_finalized_chain() {
    for seed in seeds(300) {
        run(seed, |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(good_link(), &[0, 1, 2, 3]).await;
                let mut nodes = Vec::new();
                for i in 0..3 {
                    nodes.push(net.start(&context, i).await);
                }
                submit_all(&nodes[0], 0..8).await;
                {
                    let first: Vec<&Node> = nodes.iter().collect();
                    wait_height(&context, &first, 20, Duration::from_secs(120)).await;
                }
                nodes.push(net.start(&context, 3).await);
                let target = nodes[0].submitter.chain().tip().height + 3;
                let all: Vec<&Node> = nodes.iter().collect();
                wait_height(&context, &all, target, Duration::from_secs(120)).await;
                assert_same_chain(&all, target);
                assert_eq!(user_nonce(&nodes[3]), Some(Nonce(8)));
            })
        });
    }
}

#[test]
fn the_same_seed_replays_the_same_chain() {
    let digest_of = |seed: u64| {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        run(seed, move |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(lossy_link(), &[0, 1, 2, 3]).await;
                let nodes = net.start_all(&context).await;
                submit_all(&nodes[1], 0..5).await;
                let all: Vec<&Node> = nodes.iter().collect();
                wait_height(&context, &all, 8, Duration::from_secs(60)).await;
                let chain = nodes[0].submitter.chain();
                let blocks: Vec<_> = (1..=8)
                    .map(|h| {
                        chain
                            .with_store(|s| s.block(provernet_types::Height(h)))
                            .ok()
                            .flatten()
                            .map(|b| (b.hash, b.time))
                    })
                    .collect();
                sink.lock().map(|mut v| v.extend(blocks)).ok();
            })
        });
        let v = out.lock().map(|v| v.clone()).unwrap_or_default();
        v
    };
    let a = digest_of(42);
    assert_eq!(a.len(), 8);
    assert_eq!(a, digest_of(42), "a seed replays exactly");
}

/// `len` bytes of a blob that differs by `tag`.
fn blob_bytes(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag)).collect()
}

/// Uploads `data` to validator `i` as the test user would through its API: stored there,
/// then announced with the upload's signature.
async fn upload(net: &Net, node: &Node, i: usize, data: &[u8]) -> provernet_types::BlobRef {
    let blob = provernet_types::tx::blob_ref(data);
    let chain_id = node.submitter.chain().chain_id().to_owned();
    let signature = user().sign(
        provernet_types::crypto::BLOB_UPLOAD_DOMAIN,
        &chain_id,
        &provernet_types::tx::blob_upload_message(&blob),
    );
    net.blobs[i]
        .put(&user().account(), &blob, bytes::Bytes::from(data.to_vec()))
        .await
        .expect("stored");
    let upload = provernet_consensus::blobnet::Upload { account: user().account(), signature };
    node.submitter.blobs().expect("a blob network").uploaded(blob, upload);
    blob
}

/// A program registration naming `prover` as its executable: a transaction with a blob.
fn register_program(
    nonce: u64,
    name: &str,
    prover: provernet_types::BlobRef,
    chain_id: &str,
) -> Vec<u8> {
    let manifest = provernet_types::ProgramManifest {
        name: name.parse().expect("name"),
        prover: prover.into(),
        verifier: provernet_types::VerifierSpec::Builtin(
            provernet_types::BuiltinVerifier::Groth16Bn254,
        ),
        default_resources: provernet_types::Resources {
            cores: provernet_types::MilliCores(1000),
            memory: provernet_types::Bytes(1 << 30),
            gpus: provernet_types::GpuCount(0),
        },
        default_time_limit: provernet_types::Seconds(60),
        requires: BoundedVec::default(),
        inputs: BoundedVec::default(),
        outputs: BoundedVec::default(),
    };
    Transaction {
        signer: user().account(),
        nonce: Nonce(nonce),
        body: TxBody::RegisterProgram { manifest },
    }
    .sign(&user(), chain_id)
    .encode()
}

/// Waits until validator `i`'s store holds `blob`, or panics after `limit`.
async fn wait_blob(
    context: &deterministic::Context,
    net: &Net,
    i: usize,
    blob: &provernet_types::BlobRef,
    limit: Duration,
) {
    let start = context.current();
    loop {
        if net.blobs[i].has(&blob.hash).await.expect("store") {
            return;
        }
        let waited = context.current().duration_since(start).unwrap_or_default();
        assert!(waited <= limit, "validator {i} never got blob {}", blob.hash);
        context.sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn blobs_reach_every_validator_across_a_partition_and_a_crash() {
    for seed in seeds(400) {
        run(seed, |mut context| {
            Box::pin(async move {
                let net = setup(&mut context).await;
                net.link_all(lossy_link(), &[0, 1, 2, 3]).await;
                let mut nodes: Vec<Option<Node>> = Vec::new();
                for i in 0..N {
                    nodes.push(Some(net.start(&context, i).await));
                }
                let node = |nodes: &Vec<Option<Node>>, i: usize| -> Node {
                    let n = nodes[i].as_ref().expect("running");
                    Node { submitter: n.submitter.clone(), handles: Vec::new() }
                };
                let chain_id = node(&nodes, 0).submitter.chain().chain_id().to_owned();
                {
                    let all: Vec<&Node> = nodes.iter().flatten().collect();
                    wait_height(&context, &all, 2, Duration::from_secs(60)).await;
                }
                // Validator 3 sits in a minority partition while a blob of several pieces is
                // uploaded to validator 0 and a transaction names it.
                for other in 0..3 {
                    net.unlink(3, other).await;
                }
                let first = blob_bytes(3 * provernet_blobs::pieces::PIECE_BYTES as usize + 1000, 1);
                let b1 = upload(&net, &node(&nodes, 0), 0, &first).await;
                node(&nodes, 0)
                    .submitter
                    .submit(&register_program(0, "first", b1, &chain_id))
                    .await
                    .expect("validator 0 holds the blob and admits the transaction");
                for i in [1, 2] {
                    wait_blob(&context, &net, i, &b1, Duration::from_secs(60)).await;
                }
                // Validator 2 crashes; the two others and validator 3 (healed) carry on.
                let crashed = nodes[2].take().expect("node 2 runs");
                crashed.crash().await;
                net.link_all(lossy_link(), &[0, 1, 3]).await;
                context.sleep(Duration::from_secs(2)).await;
                // A second blob goes to validator 1 while validator 2 is down, and is named
                // by a transaction submitted through validator 3, which must fetch it first.
                let second = blob_bytes(200_000, 2);
                let b2 = upload(&net, &node(&nodes, 1), 1, &second).await;
                let v3 = node(&nodes, 3);
                let mut admitted = false;
                for _ in 0..100 {
                    match v3.submitter.submit(&register_program(1, "second", b2, &chain_id)).await {
                        Ok(_) => {
                            admitted = true;
                            break;
                        }
                        // Validator 3 is still catching up on the program registered above.
                        Err(e)
                            if e.code() == "stale_nonce"
                                || matches!(e, provernet_consensus::AdmitError::Ledger(_))
                                || e.code() == "nonce_taken" =>
                        {
                            context.sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => panic!("validator 3 refused the transaction: {e}"),
                    }
                }
                assert!(admitted, "validator 3 never admitted the second registration");
                let rest: Vec<&Node> = nodes.iter().flatten().collect();
                let target = rest[0].submitter.chain().tip().height + 6;
                wait_height(&context, &rest, target, Duration::from_secs(180)).await;
                // Validator 3 fetched the first blob once it finalized the block naming it.
                wait_blob(&context, &net, 3, &b1, Duration::from_secs(120)).await;
                // Validator 2 restarts from its storage and fetches what it missed.
                nodes[2] = Some(net.start(&context, 2).await);
                net.link_all(lossy_link(), &[0, 1, 2, 3]).await;
                let all: Vec<&Node> = nodes.iter().flatten().collect();
                let target = all[0].submitter.chain().tip().height + 5;
                wait_height(&context, &all, target, Duration::from_secs(180)).await;
                for i in 0..N {
                    for (b, data) in [(&b1, &first), (&b2, &second)] {
                        wait_blob(&context, &net, i, b, Duration::from_secs(120)).await;
                        let stored = net.blobs[i].get(&b.hash).await.expect("read").expect("held");
                        assert_eq!(
                            stored.as_ref(),
                            data.as_slice(),
                            "validator {i} holds the bytes"
                        );
                    }
                }
                for n in &all {
                    let names = n.submitter.chain().with_state(|s| {
                        ["first", "second"].map(|p| s.program_by_name(p).is_some())
                    });
                    assert_eq!(names, [true, true]);
                }
            })
        });
    }
}

/// Regression, attack 2 of issue 14 ("honest provers slashed for free"): a transaction naming
/// a blob no validator holds never reaches a block, so no prover is ever assigned work whose
/// input does not exist (through real processes: `hostile_e2e.rs`).
#[test]
fn a_transaction_naming_a_blob_nobody_has_is_refused_with_the_blob_named() {
    run(500, |mut context| {
        Box::pin(async move {
            let net = setup(&mut context).await;
            net.link_all(good_link(), &[0, 1, 2, 3]).await;
            let nodes = net.start_all(&context).await;
            let chain_id = nodes[0].submitter.chain().chain_id().to_owned();
            let missing = provernet_types::tx::blob_ref(b"never uploaded anywhere");
            let e = nodes[0]
                .submitter
                .submit(&register_program(0, "ghost", missing, &chain_id))
                .await
                .expect_err("refused");
            assert_eq!(e.code(), "blob_unavailable");
            assert!(e.to_string().contains(&missing.hash.to_string()), "{e}");
        })
    });
}

#[test]
fn an_accounts_quota_holds_on_every_validator_not_per_upload() {
    run(600, |mut context| {
        Box::pin(async move {
            // Each validator keeps at most 4 MiB of one account's blobs.
            let quota = 4 << 20;
            let net =
                setup_with(&mut context, Limits { blob_max: 8 << 20, account_quota: quota }).await;
            net.link_all(good_link(), &[0, 1, 2, 3]).await;
            let nodes = net.start_all(&context).await;
            {
                let all: Vec<&Node> = nodes.iter().collect();
                wait_height(&context, &all, 2, Duration::from_secs(60)).await;
            }
            // 3 MiB uploaded to validator 0 is copied to every validator, charged to the
            // uploader on each.
            let first = blob_bytes(3 << 20, 7);
            let b = upload(&net, &nodes[0], 0, &first).await;
            for i in 0..N {
                wait_blob(&context, &net, i, &b, Duration::from_secs(60)).await;
                assert_eq!(net.blobs[i].usage(&user().account()).await.expect("usage"), 3 << 20);
            }
            // Another 3 MiB, uploaded to a different validator, is refused there before it is
            // stored: uploading to each validator in turn does not multiply the quota.
            let second = blob_bytes(3 << 20, 8);
            let blob = provernet_types::tx::blob_ref(&second);
            let e = net.blobs[1]
                .put(&user().account(), &blob, bytes::Bytes::from(second))
                .await
                .expect_err("over the quota");
            assert!(matches!(e, provernet_blobs::BlobError::QuotaExceeded { .. }), "{e}");
            assert!(!net.blobs[1].has(&blob.hash).await.expect("store"));
        })
    });
}

/// Regression, attack 4 of issue 14 ("the mempool filled for good"): accounts with nothing
/// flood every validator with transactions whose nonces can never apply, while an honest user
/// keeps sending transfers. The flood is capped per account, expires, and never keeps the
/// honest transfers out of blocks.
#[test]
fn a_flood_of_gapped_nonces_does_not_keep_honest_transactions_out() {
    run(700, |mut context| {
        Box::pin(async move {
            let net = setup(&mut context).await;
            net.link_all(good_link(), &[0, 1, 2, 3]).await;
            let nodes = net.start_all(&context).await;
            let chain_id = nodes[0].submitter.chain().chain_id().to_owned();
            let mut refused = 0;
            for round in 0..5u64 {
                // Each attacker signs 40 more nonces above a nonce 0 it never sends: votes,
                // which pay no fee, and transfers, which 1 µc cannot pay for.
                for i in 0..ATTACKERS {
                    let key = attacker(i);
                    for nonce in 1 + round * 40..=40 + round * 40 {
                        let body = if nonce % 2 == 0 {
                            TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(1) }
                        } else {
                            TxBody::Vote {
                                job: provernet_types::JobId([7; 32]),
                                attempt: 0,
                                verdict: provernet_types::Verdict::Valid,
                            }
                        };
                        let tx = Transaction { signer: key.account(), nonce: Nonce(nonce), body }
                            .sign(&key, &chain_id)
                            .encode();
                        for n in &nodes {
                            if n.submitter.submit(&tx).await.is_err() {
                                refused += 1;
                            }
                        }
                    }
                }
                // The honest user's transfers, through each validator in turn.
                submit_all(&nodes[(round % 4) as usize], round * 3..round * 3 + 3).await;
                let (txs, _) = nodes[0].submitter.chain().mempool_size();
                assert!(txs <= ATTACKERS * 16 + 15, "the pool holds {txs} transactions");
                context.sleep(Duration::from_secs(2)).await;
            }
            assert!(refused > 0);
            let all: Vec<&Node> = nodes.iter().collect();
            let start = context.current();
            loop {
                if all.iter().all(|n| user_nonce(n) == Some(Nonce(15))) {
                    break;
                }
                let waited = context.current().duration_since(start).unwrap_or_default();
                assert!(waited < Duration::from_secs(60), "honest transfers were kept out");
                context.sleep(Duration::from_millis(200)).await;
            }
            // The flood expires: after the expiry the pools are empty again.
            let h = nodes[0].submitter.chain().tip().height;
            wait_height(&context, &all, h + 40, Duration::from_secs(120)).await;
            for n in &all {
                assert_eq!(n.submitter.chain().mempool_size().0, 0);
            }
        })
    });
}
