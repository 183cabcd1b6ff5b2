//! Every ledger error the CLI can provoke, through a real validator: the command fails, the
//! user sees the chain's own error code and a hint keyed by that code, and the whole message
//! is a snapshot (`tests/snapshots/`, ids and hashes redacted), so a change in what users read
//! shows in review. Needs no root: no prover node runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use provernet_types::Keypair;
use std::path::PathBuf;
use support::*;

/// A key file for a fresh account.
fn key_file(net: &Net, name: &str) -> (PathBuf, String) {
    let key = Keypair::generate();
    let path = net.path(&format!("{name}.json"));
    std::fs::write(&path, serde_json::json!({"seed": hex::encode(key.seed())}).to_string())
        .unwrap();
    (path, key.account().to_string())
}

/// `text` with every 64-character hex run replaced, so snapshots do not depend on keys.
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 {
            out.push_str("<id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Runs a command that must fail with `code`; the redacted message for the snapshot.
fn refused(net: &Net, key: &std::path::Path, args: &[&str], code: &str, hint: bool) -> String {
    let (ok, out, err) = net.cli_as(key, args);
    assert!(!ok, "provernet {args:?} should fail:\n{out}");
    assert!(
        err.contains(&format!("({code})")) || err.contains(&format!(", {code})")),
        "{args:?}: expected {code}:\n{err}"
    );
    assert_eq!(err.contains("\nhint: "), hint, "{args:?}: a hint for {code}:\n{err}");
    let dir = net.dir.path().to_string_lossy().into_owned();
    let bin = bin_dir().to_string_lossy().into_owned();
    let text = format!("$ provernet {}\n{}", args.join(" "), err);
    redact(&text.replace(&dir, "<dir>").replace(&bin, "<bin>"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_ledger_error_the_cli_can_provoke_reaches_the_user_with_its_code_and_hint() {
    let net = Net::new(9, 0, &[]).await;
    let faucet = net.faucet_key.clone();
    let (stranger, stranger_id) = key_file(&net, "stranger");
    let (poor, poor_id) = key_file(&net, "poor");
    let mut seen = Vec::new();

    // Accounts and provers.
    seen.push(refused(&net, &stranger, &["prover", "deregister"], "unknown_account", true));
    seen.push(refused(&net, &faucet, &["prover", "deregister"], "unknown_prover", true));
    let register = ["prover", "register", "--cores", "1", "--memory", "1GiB", "--stake"];
    let low: Vec<&str> = register.iter().copied().chain(["0.000001"]).collect();
    seen.push(refused(&net, &faucet, &low, "stake_too_low", true));
    let (ok, _, err) = net.cli(&["account", "transfer", "--to", &poor_id, "--amount", "1"]);
    assert!(ok, "{err}");
    let rich: Vec<&str> = register.iter().copied().chain(["500"]).collect();
    seen.push(refused(&net, &poor, &rich, "insufficient_balance", true));
    let ok_stake: Vec<&str> = register.iter().copied().chain(["100"]).collect();
    let (ok, _, err) = net.cli(&ok_stake);
    assert!(ok, "{err}");
    seen.push(refused(&net, &faucet, &ok_stake, "prover_exists", true));

    // Programs.
    deploy_native(&net, "winterfell-chain");
    let prover = bin_dir().join("winterfell-chain-prover");
    let again = [
        "program",
        "deploy",
        "--name",
        "winterfell-chain",
        "--prover",
        prover.to_str().unwrap(),
        "--builtin",
        "winterfell-chain",
        "--time",
        "45s",
    ];
    seen.push(refused(&net, &faucet, &again, "program_name_taken", true));

    // Jobs.
    let statement = format!("statement={}", net.write("statement", b"3 1024"));
    let submit = ["job", "submit", "winterfell-chain", "--input", &statement];
    let dutch: Vec<&str> = submit
        .iter()
        .copied()
        .chain(["--mechanism", "reverse-dutch", "--redundancy", "2"])
        .collect();
    seen.push(refused(&net, &faucet, &dutch, "single_prover_mechanism", true));
    let job = support::submit(&net, "winterfell-chain", std::slice::from_ref(&statement), &[]);
    let nobody = "ab".repeat(32);
    seen.push(refused(&net, &faucet, &["job", "cancel", &nobody], "unknown_job", true));
    seen.push(refused(&net, &stranger, &["job", "cancel", &job], "unknown_account", true));
    let (ok, _, err) = net.cli(&["account", "transfer", "--to", &stranger_id, "--amount", "1"]);
    assert!(ok, "{err}");
    seen.push(refused(&net, &stranger, &["job", "cancel", &job], "not_requester", true));
    seen.push(refused(&net, &stranger, &["prover", "accept", &job, "5"], "unknown_attempt", true));
    // The registered prover (the faucet's account) is the only one: the job is assigned to it.
    support::wait_until("the job's assignment", std::time::Duration::from_secs(30), || async {
        net.job(&job).await["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    seen.push(refused(
        &net,
        &stranger,
        &["prover", "accept", &job, "0"],
        "not_assigned_prover",
        true,
    ));
    seen.push(refused(
        &net,
        &faucet,
        &["prover", "vote", &job, "0", "valid"],
        "wrong_attempt_state",
        true,
    ));
    let proof = format!("proof={}", net.write("proof", b"not a proof"));
    seen.push(refused(
        &net,
        &faucet,
        &["prover", "reveal", &job, "0", "--proof", &proof],
        "wrong_attempt_state",
        true,
    ));
    // A job no prover has accepted yet can be cancelled, once.
    let (ok, _, err) = net.cli(&["job", "cancel", &job]);
    assert!(ok, "{err}");
    seen.push(refused(&net, &faucet, &["job", "cancel", &job], "wrong_job_state", true));
    insta::assert_snapshot!(seen.join("\n"));

    // The same verbs when they succeed, as `--json`.
    let show = |args: &[&str], key: &std::path::Path| -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (ok, out, err) = net.cli_as(key, &all);
        assert!(ok, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let before = show(&["account", "show", &poor_id], &faucet)["balance_micro_credits"].as_u64();
    let sent = show(&["account", "transfer", "--to", &poor_id, "--amount", "2.5"], &faucet);
    assert_eq!(sent["amount_micro_credits"], 2_500_000);
    let after = show(&["account", "show"], &poor)["balance_micro_credits"].as_u64();
    assert_eq!(after, before.map(|b| b + 2_500_000));
    let me = show(&["prover", "status"], &faucet);
    assert_eq!(me["status"], "Active", "{me}");
    assert_eq!(me["stake_micro_credits"], 100_000_000);
    let all = show(&["prover", "list"], &faucet);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1));
    let status = show(&["status"], &faucet);
    assert!(status["status"]["height"].as_u64().is_some_and(|h| h > 0), "{status}");
    // More jobs than one API page: the CLI pages through.
    let listed = show(&["job", "list", "--limit", "200"], &faucet);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let left = show(&["prover", "deregister"], &faucet);
    assert_eq!(left["kind"], "deregister_prover");
    assert_eq!(show(&["prover", "status"], &faucet)["status"], "Exiting");
}

/// A workflow file's mistakes are refused before anything is uploaded or paid, each naming
/// the node and the field (or the line); the chain's own refusals keep their codes. Then a
/// good file is submitted, shown and cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn workflow_files_are_refused_naming_the_node_and_the_field() {
    let net = Net::new(9, 0, &[]).await;
    let register = ["prover", "register", "--cores", "1", "--memory", "1GiB", "--stake", "100"];
    let (ok, _, err) = net.cli(&register);
    assert!(ok, "{err}");
    deploy_native(&net, "winterfell-chain");
    let node = |name: &str, extra: &str| {
        format!("  - name: {name}\n    program: winterfell-chain\n    inputs:\n      statement: {{ text: \"3 64\" }}\n{extra}")
    };
    let cases = [
        ("nodes: [\n", vec!["line"]),
        ("nodes:\n  - name: a\n    program: winterfell-chain\n    colour: red\n", vec!["colour"]),
        (
            "nodes:\n  - name: a\n    program: nope\n",
            vec!["node `a`, program", "there is no program `nope`", "hint:"],
        ),
        (
            &format!("nodes:\n{}{}", node("a", ""), node("b", "      x: { from: a/trace }\n")),
            vec!["node `b`, input `x`", "does not declare output `trace`", "proof"],
        ),
        (
            &format!(
                "nodes:\n{}{}",
                node("a", "      x: { from: b/proof }\n"),
                node("b", "      y: { from: a/proof }\n")
            ),
            vec!["node `a` is on a cycle"],
        ),
        (
            &format!("nodes:\n{}    resources: {{ memory: 4 gigs }}\n", node("a", "")),
            vec!["node `a`, resources.memory"],
        ),
        (
            &format!("nodes:\n{}      x: {{ file: missing.bin }}\n", node("a", "")),
            vec!["node `a`, input `x`", "missing.bin"],
        ),
        (
            &format!("nodes:\n{}    max_fee: 0.000001\n", node("a", "")),
            vec!["fee_below_quote", "node `a`"],
        ),
        (
            &format!("max_fee: 0.000001\nnodes:\n{}{}", node("a", ""), node("b", "")),
            vec!["fee_below_quote"],
        ),
    ];
    for (i, (yaml, wants)) in cases.iter().enumerate() {
        let file = net.write(&format!("flow-{i}.yaml"), yaml.as_bytes());
        let (ok, out, err) = net.cli(&["workflow", "submit", &file]);
        assert!(!ok, "case {i} should fail:\n{yaml}\n{out}");
        for want in wants {
            assert!(err.contains(want), "case {i}: `{want}` not in:\n{err}");
        }
    }
    // Nothing was submitted or paid for by any of them.
    let (_, out, _) = net.cli(&["job", "list", "--mine", "--json"]);
    assert!(out.contains("\"items\": []"), "{out}");

    // A good file: submitted, shown as a tree, cancelled.
    let good =
        format!("nodes:\n{}{}", node("leaf", ""), node("join", "      x: { from: leaf/proof }\n"));
    let file = net.write("flow-good.yaml", good.as_bytes());
    let v = net.cli_json(&["workflow", "submit", &file]);
    let id = v["workflow"].as_str().unwrap().to_owned();
    assert_eq!(v["jobs"].as_object().map(|o| o.len()), Some(2), "{v}");
    let (ok, tree, err) = net.cli(&["workflow", "status", &id]);
    assert!(ok, "{err}");
    assert!(
        tree.contains("join") && tree.contains("└─ leaf") && tree.contains("waiting"),
        "{tree}"
    );
    let w = net.cli_json(&["workflow", "cancel", &id]);
    assert_eq!(w["cancelled"], true, "{w}");
    assert_eq!(w["nodes"][1]["status"], "skipped", "{w}");
    let again = net.cli(&["workflow", "cancel", &id]);
    assert!(!again.0 && again.2.contains("workflow_closed"), "{}", again.2);
}
