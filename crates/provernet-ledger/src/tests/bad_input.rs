//! Every bad transaction is rejected with a typed error and changes nothing: the block with it
//! commits to exactly the same state root as the block without it.

use crate::apply::apply_block;
use crate::testkit::*;
use provernet_types::limits::*;
use provernet_types::tx::blob_ref;
use provernet_types::{
    BoundedVec, Bytes, GpuCount, JobId, Keypair, MicroCredits, MilliCores, NamedBlob, Nonce,
    ProgramId, ProverSet, Resources, Seconds, TxBody, Verdict, VerifiedTx, VerifierLimits,
};

fn assert_rejected(c: &mut TestChain, tx: VerifiedTx, code: &str) {
    c.reset_nonces();
    let ctx = c.next_context();
    let mut with = c.state.clone();
    let mut without = c.state.clone();
    let out = apply_block(&mut with, &ctx, std::slice::from_ref(&tx)).unwrap();
    let base = apply_block(&mut without, &ctx, &[]).unwrap();
    let err = out.receipts[0]
        .result
        .clone()
        .err()
        .unwrap_or_else(|| panic!("{} should be rejected with {code}", tx.tx().body.kind()));
    assert_eq!(err.code(), code, "{err}");
    assert!(!err.to_string().is_empty());
    assert_eq!(out.root, base.root, "rejected {} changed the state", tx.tx().body.kind());
    assert_eq!(out.events, base.events);
}

/// A chain with one job running on some prover: returns (chain, job, prover name).
fn running() -> (TestChain, JobId, String) {
    let mut c = TestChain::new(4, |_| {});
    let (id, tx) = c.submit("alice", c.spec(committee_program().id(), 60));
    c.block(vec![tx]);
    let p = c.job(&id).unwrap().attempts[0].prover;
    let name = c.name_of(&p.into()).unwrap();
    let accept = c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 });
    c.block(vec![accept]);
    (c, id, name)
}

#[test]
fn replayed_and_future_nonces() {
    let (mut c, _, _) = running();
    let alice = c.key("alice").clone();
    let used = c.tx_with_nonce(
        &alice,
        Nonce(0),
        TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(1) },
    );
    assert_rejected(&mut c, used, "bad_nonce");
    let next = c.state.account(&alice.account()).unwrap().nonce;
    let future = c.tx_with_nonce(
        &alice,
        Nonce(next.0 + 5),
        TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(1) },
    );
    assert_rejected(&mut c, future, "bad_nonce");
    // The same valid transaction twice in one block: the second is a replay.
    let t = c.tx("alice", TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(1) });
    let out = c.block(vec![t.clone(), t]);
    assert!(out.receipts[0].result.is_ok());
    assert_eq!(out.receipts[1].result.as_ref().unwrap_err().code(), "bad_nonce");
}

#[test]
fn unknown_signer_and_unfunded_transfers() {
    let mut c = TestChain::new(1, |_| {});
    let stranger = Keypair::insecure_from_label("stranger");
    let tx = c.tx_with_nonce(
        &stranger,
        Nonce(0),
        TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(1) },
    );
    assert_rejected(&mut c, tx, "unknown_account");
    let tx =
        c.tx("alice", TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(u64::MAX) });
    assert_rejected(&mut c, tx, "insufficient_balance");
    let tx = c.tx("alice", TxBody::Transfer { to: c.account("bob"), amount: MicroCredits(0) });
    assert_rejected(&mut c, tx, "zero_amount");
}

#[test]
fn bad_job_submissions() {
    let mut c = TestChain::new(2, |_| {});
    let program = committee_program().id();
    type Edit = Box<dyn Fn(&mut provernet_types::JobSpec)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|s| s.program = ProgramId([9; 32])), "unknown_program"),
        (Box::new(|s| s.time_limit = Seconds(0)), "bad_time_limit"),
        (Box::new(|s| s.time_limit = Seconds(TIME_LIMIT_MAX.0 + 1)), "bad_time_limit"),
        (Box::new(|s| s.redundancy = 0), "bad_redundancy"),
        (Box::new(|s| s.redundancy = 4), "bad_redundancy"),
        (Box::new(|s| s.max_fee = MicroCredits(1)), "fee_below_quote"),
        (
            Box::new(|s| {
                s.resources = Some(Resources {
                    cores: MilliCores(64_000),
                    memory: Bytes::gib(1),
                    gpus: GpuCount(0),
                })
            }),
            "no_prover_can_fit",
        ),
        (
            Box::new(|s| s.resources = Some(Resources { gpus: GpuCount(1), ..small() })),
            "no_prover_can_fit",
        ),
        (
            Box::new(|s| s.resources = Some(Resources { cores: MilliCores(0), ..small() })),
            "bad_resources",
        ),
        (
            Box::new(|s| {
                s.prover_set = ProverSet::Labels(
                    BoundedVec::try_from_vec(vec!["gpu=h100".parse().unwrap()]).unwrap(),
                )
            }),
            "no_prover_can_fit",
        ),
        (
            Box::new(|s| {
                let dup = NamedBlob { name: "x".parse().unwrap(), blob: blob_ref(b"1") };
                s.inputs = BoundedVec::try_from_vec(vec![dup.clone(), dup]).unwrap();
            }),
            "duplicate_name",
        ),
        (
            Box::new(|s| {
                let huge = NamedBlob {
                    name: "x".parse().unwrap(),
                    blob: provernet_types::BlobRef {
                        hash: Default::default(),
                        size: Bytes(BLOB_BYTES_MAX.0 + 1),
                    },
                };
                s.inputs = BoundedVec::try_from_vec(vec![huge]).unwrap();
            }),
            "bad_resources",
        ),
    ];
    for (edit, code) in cases {
        let mut spec = c.spec(program, 60);
        edit(&mut spec);
        let tx = c.tx("alice", TxBody::SubmitJob(spec));
        assert_rejected(&mut c, tx, code);
        c.block(vec![]);
    }
    // An account at its open-jobs limit.
    let mut limited = TestChain::new(2, |p| p.open_jobs_per_account_max = 2);
    for _ in 0..2 {
        let (_, tx) = limited.submit("alice", limited.spec(program, 60));
        limited.block(vec![tx]);
    }
    let tx = limited.tx("alice", TxBody::SubmitJob(limited.spec(program, 60)));
    assert_rejected(&mut limited, tx, "too_many_open_jobs");
    limited.run_agent(Behaviour::HONEST, 50);
    assert_eq!(limited.state.account(&limited.account("alice")).unwrap().open_jobs, 0);
    let (_, tx) = limited.submit("alice", limited.spec(program, 60));
    assert!(limited.block(vec![tx]).receipts[0].result.is_ok(), "settled jobs free the slots");
    // An account that cannot cover the quote (148 µc for the default spec).
    let poor = c.add_key("poor");
    let fund = c.tx("alice", TxBody::Transfer { to: poor, amount: MicroCredits(100) });
    c.block(vec![fund]);
    let tx = c.tx("poor", TxBody::SubmitJob(c.spec(program, 60)));
    assert_rejected(&mut c, tx, "insufficient_balance");
}

#[test]
fn results_votes_and_accepts_from_the_wrong_party() {
    let (mut c, id, name) = running();
    let other = if name == "p0" { "p1" } else { "p0" };
    let files = proof_files(true);
    // A commitment from a prover that was not assigned, or to an attempt that does not exist.
    let tx = c.commit(other, id, 0, &files);
    assert_rejected(&mut c, tx, "not_assigned_prover");
    let tx = c.commit(&name, id, 7, &files);
    assert_rejected(&mut c, tx, "unknown_attempt");
    // An unknown job.
    let tx = c.tx(&name, TxBody::AcceptJob { job: JobId([3; 32]), attempt: 0 });
    assert_rejected(&mut c, tx, "unknown_job");
    // Accepting twice.
    let tx = c.tx(&name, TxBody::AcceptJob { job: id, attempt: 0 });
    assert_rejected(&mut c, tx, "wrong_attempt_state");
    // A reveal with no commitment before it.
    let tx = c.reveal(&name, id, 0, &files);
    assert_rejected(&mut c, tx, "wrong_attempt_state");
    // A vote before there is a committee.
    let tx = c.tx(other, TxBody::Vote { job: id, attempt: 0, verdict: Verdict::Valid });
    assert_rejected(&mut c, tx, "wrong_attempt_state");
    // The commitment; a reveal in its own block is too early.
    let commit = c.commit(&name, id, 0, &files);
    let early = c.reveal(&name, id, 0, &files);
    let out = c.block(vec![commit, early]);
    assert!(out.receipts[0].result.is_ok());
    assert_eq!(out.receipts[1].result.as_ref().unwrap_err().code(), "reveal_too_early");
    // Files that break the output rules, or that are not the ones committed to.
    let tx = c.reveal(&name, id, 0, &BoundedVec::new());
    assert_rejected(&mut c, tx, "output_rules");
    let tx = c.reveal(&name, id, 0, &proof_files(false));
    assert_rejected(&mut c, tx, "commitment_mismatch");
    // Post the real reveal; then a double result and non-committee votes.
    let ok = c.reveal(&name, id, 0, &files);
    c.block(vec![ok]);
    c.block(vec![]);
    let tx = c.reveal(&name, id, 0, &files);
    assert_rejected(&mut c, tx, "wrong_attempt_state");
    let a = c.job(&id).unwrap().attempts[0].clone();
    assert!(!a.committee.is_empty());
    let outsider = ["p0", "p1", "p2", "p3", "alice"]
        .into_iter()
        .find(|n| !a.committee.contains(&c.account(n)))
        .unwrap();
    let valid = Verdict::Valid;
    let tx = c.tx(outsider, TxBody::Vote { job: id, attempt: 0, verdict: valid });
    assert_rejected(&mut c, tx, "not_committee_member");
    let member = c.name_of(&a.committee[0]).unwrap();
    let v = c.tx(&member, TxBody::Vote { job: id, attempt: 0, verdict: valid });
    c.block(vec![v]);
    let tx = c.tx(&member, TxBody::Vote { job: id, attempt: 0, verdict: valid });
    if c.job(&id).unwrap().attempts[0].state == crate::AttemptState::Proven {
        assert_rejected(&mut c, tx, "already_voted");
    }
}

#[test]
fn bad_registrations() {
    let mut c = TestChain::new(1, |_| {});
    let tx = c.tx(
        "p0",
        TxBody::RegisterProver {
            capacity: machine(),
            labels: BoundedVec::new(),
            stake: PROVER_STAKE,
        },
    );
    assert_rejected(&mut c, tx, "prover_exists");
    let tx = c.tx(
        "bob",
        TxBody::RegisterProver {
            capacity: machine(),
            labels: BoundedVec::new(),
            stake: MicroCredits(1),
        },
    );
    assert_rejected(&mut c, tx, "stake_too_low");
    let zero = Resources { memory: Bytes(0), ..machine() };
    let tx = c.tx(
        "bob",
        TxBody::RegisterProver { capacity: zero, labels: BoundedVec::new(), stake: PROVER_STAKE },
    );
    assert_rejected(&mut c, tx, "bad_resources");
    let tx = c.tx("alice", TxBody::RegisterProgram { manifest: committee_program() });
    assert_rejected(&mut c, tx, "program_exists");
    let mut renamed = builtin_program();
    renamed.name = "hash-chain".parse().unwrap();
    let tx = c.tx("alice", TxBody::RegisterProgram { manifest: renamed });
    assert_rejected(&mut c, tx, "program_name_taken");
    let mut unsorted = committee_program();
    unsorted.name = "new".parse().unwrap();
    unsorted.requires =
        BoundedVec::try_from_vec(vec!["b=1".parse().unwrap(), "a=1".parse().unwrap()]).unwrap();
    let tx = c.tx("alice", TxBody::RegisterProgram { manifest: unsorted });
    assert_rejected(&mut c, tx, "bad_manifest");
    // An output declared twice.
    let mut twice = committee_program();
    twice.name = "twice".parse().unwrap();
    twice.outputs =
        BoundedVec::try_from_vec(vec!["proof".parse().unwrap(), "proof".parse().unwrap()]).unwrap();
    let tx = c.tx("alice", TxBody::RegisterProgram { manifest: twice });
    assert_rejected(&mut c, tx, "bad_manifest");
    // A verifier that would take more than the chain lets a committee member give it.
    for limits in [
        provernet_types::VerifierLimits { time_limit: Seconds(3600), ..VerifierLimits::DEFAULT },
        provernet_types::VerifierLimits { cores: MilliCores(64_000), ..VerifierLimits::DEFAULT },
        provernet_types::VerifierLimits { memory: Bytes(1), ..VerifierLimits::DEFAULT },
    ] {
        let mut greedy = committee_program();
        greedy.name = "greedy".parse().unwrap();
        greedy.verifier = provernet_types::VerifierSpec::Program {
            blob: blob_ref(b"greedy verifier").into(),
            limits,
        };
        let tx = c.tx("alice", TxBody::RegisterProgram { manifest: greedy });
        assert_rejected(&mut c, tx, "bad_manifest");
    }
    // Images: a record the chain bounds, the verifier's more tightly (a committee fetches it
    // when drawn and must vote before its deadline).
    let layer = |size: u64, unpacked: u64| provernet_types::LayerRef {
        blob: provernet_types::BlobRef {
            hash: blob_ref(&size.to_le_bytes()).hash,
            size: Bytes(size),
        },
        unpacked: Bytes(unpacked),
        entries: 10,
    };
    let image = |layers: Vec<provernet_types::LayerRef>| {
        provernet_types::Code::Image(Box::new(provernet_types::ImageRef {
            digest: [9; 32],
            manifest: blob_ref(b"manifest"),
            config: blob_ref(b"config"),
            layers: BoundedVec::try_from_vec(layers).unwrap(),
        }))
    };
    let mib = 1u64 << 20;
    for (name, prover, verifier) in [
        ("no-layers", image(vec![]), None),
        ("huge-layer", image(vec![layer(9 << 30, mib)]), None),
        ("too-unpacked", image(vec![layer(mib, 40 << 30), layer(mib, 40 << 30)]), None),
        ("fat-verifier", blob_ref(b"p").into(), Some(image(vec![layer(mib, 5 << 30)]))),
        (
            "heavy-verifier",
            blob_ref(b"p").into(),
            Some(image((0..5).map(|_| layer(250 * mib, mib)).collect())),
        ),
    ] {
        let mut m = committee_program();
        m.name = name.parse().unwrap();
        m.prover = prover;
        if let Some(v) = verifier {
            m.verifier =
                provernet_types::VerifierSpec::Program { blob: v, limits: VerifierLimits::DEFAULT };
        }
        let tx = c.tx("alice", TxBody::RegisterProgram { manifest: m });
        assert_rejected(&mut c, tx, "bad_manifest");
    }
    // Within the bounds: a 3-layer prover image and a small verifier image are accepted.
    let mut ok = committee_program();
    ok.name = "image-ok".parse().unwrap();
    ok.prover = image(vec![layer(mib, 3 * mib), layer(2 * mib, 5 * mib), layer(mib, mib)]);
    ok.verifier = provernet_types::VerifierSpec::Program {
        blob: image(vec![layer(mib, 2 * mib)]),
        limits: VerifierLimits::DEFAULT,
    };
    let tx = c.tx("alice", TxBody::RegisterProgram { manifest: ok });
    let out = c.block(vec![tx]);
    assert!(out.receipts[0].result.is_ok(), "{:?}", out.receipts[0].result);
    let tx = c.tx("bob", TxBody::DeregisterProver);
    assert_rejected(&mut c, tx, "unknown_prover");
    let tx = c.tx("p0", TxBody::DeregisterProver);
    c.block(vec![tx]);
    let tx = c.tx("p0", TxBody::DeregisterProver);
    assert_rejected(&mut c, tx, "prover_exiting");
}

#[test]
fn signatures_are_checked_before_the_ledger_sees_a_transaction() {
    let c = TestChain::new(0, |_| {});
    let alice = c.key("alice");
    let bob = c.key("bob");
    let tx = provernet_types::Transaction {
        signer: alice.account(),
        nonce: Nonce(0),
        body: TxBody::Transfer { to: bob.account(), amount: MicroCredits(5) },
    };
    // Signed by the wrong key, or for another chain: never becomes a VerifiedTx.
    use provernet_types::Encode;
    let signature = bob.sign(provernet_types::crypto::TX_DOMAIN, "test", &tx.encode());
    let forged = provernet_types::SignedTx { tx: tx.clone(), signature };
    assert!(forged.verify("test").is_err());
    assert!(tx.sign(alice, "other-chain").verify("test").is_err());
}
