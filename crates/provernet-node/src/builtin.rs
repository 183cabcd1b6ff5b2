//! Validators' native verification of built-in proof systems.
//!
//! A program whose manifest names a built-in verifier has its proofs checked by the
//! validators themselves, not by a committee of provers: each validator runs this loop beside
//! its consensus engine, against its own API (then the other validators', should its own stop
//! answering). It reads its work like a prover node does (the validators are the committee of
//! every built-in attempt), fetches the job's public inputs and the proof, verifies in-process,
//! and votes. The statement always comes from the job's inputs, never from the prover.
//!
//! Built in: Groth16 over BN254 (`groth16-sha256`: inputs `vk` and `digest`), the winterfell
//! STARK of `winterfell-chain` and the Plonky3 STARK of `plonky3-keccak` (input `statement`).
//! A verdict needs two thirds of the validators' votes (see the ledger's quorum rules).

use crate::txq::{TxOutcome, TxQueue};
use crate::views::{JobWork, TaskKind, Work};
use anyhow::{anyhow, bail, Result};
use provernet_sdk::Client;
use provernet_types::{BlobRef, BuiltinVerifier, JobId, Keypair, TxBody, Verdict};
use std::collections::BTreeSet;
use std::time::Duration;

/// The job inputs a built-in verifier reads: the public statement, never a proving key.
fn public_inputs(kind: BuiltinVerifier) -> &'static [&'static str] {
    match kind {
        BuiltinVerifier::Groth16Bn254 => &["vk", "digest"],
        BuiltinVerifier::WinterfellChain | BuiltinVerifier::Plonky3Keccak => &["statement"],
    }
}

/// The largest public input a built-in verifier reads: real statements are far smaller, and a
/// validator does not download or parse a requester's megabytes.
fn input_bytes_max(kind: BuiltinVerifier, name: &str) -> u64 {
    match (kind, name) {
        // A compressed BN254 verifying key: a few points per public input.
        (BuiltinVerifier::Groth16Bn254, "vk") => 64 << 10,
        (BuiltinVerifier::Groth16Bn254, _) => 1 << 10,
        (BuiltinVerifier::WinterfellChain | BuiltinVerifier::Plonky3Keccak, _) => 4 << 10,
    }
}

/// The largest proof file a built-in verifier reads.
fn proof_bytes_max(kind: BuiltinVerifier) -> u64 {
    match kind {
        BuiltinVerifier::Groth16Bn254 => 1 << 20,
        BuiltinVerifier::WinterfellChain => winterfell_chain::PROOF_BYTES_MAX as u64,
        BuiltinVerifier::Plonky3Keccak => plonky3_keccak::PROOF_BYTES_MAX as u64,
    }
}

/// Verifies one proof natively. `inputs` and `proof` are the job's files by name.
/// [`Verdict::Invalid`] for a proof that does not prove the job's statement;
/// [`Verdict::CannotVerify`] when the statement itself cannot be read (missing, not text, not
/// a statement or a key of this system): the requester's side of the contract.
pub fn verify_builtin(
    kind: BuiltinVerifier,
    inputs: &[(String, Vec<u8>)],
    proof: &[(String, Vec<u8>)],
) -> Verdict {
    let file = |list: &[(String, Vec<u8>)], name: &str| -> Option<Vec<u8>> {
        list.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
    };
    let input =
        |name: &str| file(inputs, name).ok_or_else(|| anyhow!("the job has no `{name}` input"));
    let text = |name: &str| -> Result<String> {
        String::from_utf8(input(name)?).map_err(|_| anyhow!("input `{name}` is not UTF-8 text"))
    };
    let Some(proof) = file(proof, "proof") else { return Verdict::Invalid };
    let verdict = |valid: bool| if valid { Verdict::Valid } else { Verdict::Invalid };
    let checked: Result<Verdict> = (|| match kind {
        BuiltinVerifier::Groth16Bn254 => {
            let vk = groth16_sha256::VerifyingKeyFile::from_bytes(&input("vk")?)
                .map_err(|e| anyhow!("the job's verifying key: {e}"))?;
            let digest = input("digest")?;
            Ok(verdict(groth16_sha256::verify(&vk, &digest, &proof).unwrap_or(false)))
        }
        BuiltinVerifier::WinterfellChain => {
            let s = winterfell_chain::Statement::parse(&text("statement")?)
                .map_err(|e| anyhow!("the job's statement: {e}"))?;
            Ok(verdict(winterfell_chain::verify(s, &proof).is_ok_and(|v| v.is_some())))
        }
        BuiltinVerifier::Plonky3Keccak => {
            let s = plonky3_keccak::Statement::parse(&text("statement")?)
                .map_err(|e| anyhow!("the job's statement: {e}"))?;
            Ok(verdict(plonky3_keccak::verify(s, &proof)))
        }
    })();
    checked.unwrap_or_else(|e| {
        tracing::warn!("cannot verify: {e:#}");
        Verdict::CannotVerify
    })
}

/// Runs until the process ends: votes on every built-in attempt whose committee holds `seed`'s
/// account, through the validator APIs `apis` (its own first).
pub async fn run_builtin_verifier(apis: Vec<String>, seed: [u8; 32]) {
    let list: Vec<&str> = apis.iter().map(String::as_str).collect();
    let client = match Client::many(&list) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("built-in verifier: {e}");
            return;
        }
    };
    let status = loop {
        match client.status().await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let key = Keypair::from_seed(seed);
    let me = key.account();
    let txq = TxQueue::spawn(client.clone(), key, status.chain_id);
    let mut done: BTreeSet<(JobId, u8)> = BTreeSet::new();
    let failed: std::sync::Arc<std::sync::Mutex<Vec<(JobId, u8)>>> = Default::default();
    // Work changes only with finalized blocks: read it after each one (and every 2 s).
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let following = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(crate::follow_blocks(client.clone(), wake.clone(), following));
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let work: Work = match client.work(&me).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("built-in verifier: reading work: {e}");
                continue;
            }
        };
        for task in work.tasks.iter().filter(|t| t.kind == TaskKind::Vote) {
            let job = JobWork::from(&task.job);
            if !done.insert((job.id, task.attempt)) {
                continue;
            }
            let (client, txq, attempt) = (client.clone(), txq.clone(), task.attempt);
            let retry = failed.clone();
            tokio::spawn(async move {
                let failed = match check(&client, &job, attempt).await {
                    Ok(verdict) => {
                        tracing::info!(job = %job.id, attempt, verdict = verdict.name(), "verified natively; voting");
                        match txq.send(TxBody::Vote { job: job.id, attempt, verdict }).await {
                            TxOutcome::Failed { reason } => {
                                tracing::warn!(job = %job.id, attempt, "vote failed: {reason}; retrying while the round lasts");
                                true
                            }
                            TxOutcome::Applied { .. } => false,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(job = %job.id, attempt, "not voting: {e:#}");
                        false
                    }
                };
                if failed {
                    retry
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((job.id, attempt));
                }
            });
        }
        // Forget attempts no longer listed, so the set stays bounded, and try again the votes
        // whose transactions failed while their round lasts.
        let listed = crate::views::keys(&work);
        done.retain(|k| listed.contains(k));
        for k in
            std::mem::take(&mut *failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
        {
            done.remove(&k);
        }
    }
}

async fn fetch(client: &Client, blob: &BlobRef) -> Result<Vec<u8>> {
    // Built-in verifiers read their files whole: their statements and proofs are small, and
    // nothing larger is taken into memory.
    let max = provernet_types::limits::PROOF_FILE_BYTES_MAX;
    if blob.size > max {
        bail!(
            "blob {} is {} bytes, above the {max} a built-in verifier reads",
            blob.hash,
            blob.size
        );
    }
    let bytes = client
        .download(&blob.hash)
        .await?
        .ok_or_else(|| anyhow!("no validator has blob {}", blob.hash))?;
    if bytes.len() as u64 != blob.size.0 {
        bail!("blob {} has the wrong size", blob.hash);
    }
    Ok(bytes)
}

async fn check(client: &Client, job: &JobWork, attempt: u8) -> Result<Verdict> {
    let program = crate::views::ProgramWork::try_from(
        &client
            .program(&job.program.to_string())
            .await?
            .ok_or_else(|| anyhow!("unknown program {}", job.program))?,
    )
    .map_err(|e| anyhow!(e))?;
    let Some(kind) = program.builtin else {
        bail!("program {} is verified by a committee", program.name)
    };
    let wanted = public_inputs(kind);
    let mut inputs = Vec::new();
    for (name, blob) in job.inputs.iter().filter(|(n, _)| wanted.contains(&n.as_str())) {
        let max = input_bytes_max(kind, name.as_str());
        if blob.size.0 > max {
            tracing::warn!(job = %job.id, "input `{name}` is {} bytes, above the {max} a {kind} statement may have", blob.size.0);
            return Ok(Verdict::CannotVerify);
        }
        inputs.push((name.as_str().to_owned(), fetch(client, blob).await?));
    }
    let mut proof = Vec::new();
    for (name, blob) in job.proofs.get(usize::from(attempt)).into_iter().flatten() {
        if blob.size.0 > proof_bytes_max(kind) {
            return Ok(Verdict::Invalid);
        }
        proof.push((name.as_str().to_owned(), fetch(client, blob).await?));
    }
    Ok(tokio::task::spawn_blocking(move || verify_builtin(kind, &inputs, &proof)).await?)
}
