//! Validators' native verification of built-in proof systems.
//!
//! A program whose manifest names a built-in verifier has its proofs checked by the
//! validators themselves, not by a committee of provers: each validator runs this loop beside
//! its consensus engine, against its own API. It reads its work like a prover node does (the
//! validators are the committee of every built-in attempt), fetches the job's public inputs
//! and the proof from its blob store, verifies in-process, and votes. The statement always
//! comes from the job's inputs (for Groth16, the `digest` and the `vk`), never from the prover.
//!
//! Built in so far: Groth16 on BN254 (`groth16-sha256`). Attempts of other built-in kinds are
//! logged and left unvoted, which the chain resolves as unverifiable after its vote rounds.

use crate::txq::{TxOutcome, TxQueue};
use crate::views::{JobWork, Work};
use anyhow::{anyhow, bail, Result};
use provernet_sdk::Client;
use provernet_types::{BlobRef, JobId, Keypair, TxBody};
use std::collections::BTreeSet;
use std::time::Duration;

/// The job inputs a built-in verifier reads: the public statement, never a proving key.
fn public_inputs(kind: &str) -> Result<&'static [&'static str]> {
    if kind.contains("Groth16Bn254") {
        return Ok(&["vk", "digest"]);
    }
    bail!("no native verifier for {kind}")
}

/// Verifies one proof natively. `inputs` and `proof` are the job's files by name.
pub fn verify_builtin(
    kind: &str,
    inputs: &[(String, Vec<u8>)],
    proof: &[(String, Vec<u8>)],
) -> Result<bool> {
    let file = |list: &[(String, Vec<u8>)], name: &str| -> Option<Vec<u8>> {
        list.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
    };
    if kind.contains("Groth16Bn254") {
        let vk = file(inputs, "vk").ok_or_else(|| anyhow!("the job has no `vk` input"))?;
        let digest =
            file(inputs, "digest").ok_or_else(|| anyhow!("the job has no `digest` input"))?;
        let Some(proof) = file(proof, "proof") else { return Ok(false) };
        let vk = groth16_sha256::VerifyingKeyFile::from_bytes(&vk)
            .map_err(|e| anyhow!("the job's verifying key: {e}"))?;
        return Ok(groth16_sha256::verify(&vk, &digest, &proof).unwrap_or(false));
    }
    bail!("no native verifier for {kind}")
}

/// Runs until the process ends: votes on every built-in attempt whose committee holds `seed`'s
/// account, through the validator API at `api`.
pub async fn run_builtin_verifier(api: String, seed: [u8; 32]) {
    let client = match Client::new(&api) {
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
    // Work changes only with finalized blocks: read it after each one (and every 2 s).
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn(crate::follow_blocks(client.clone(), wake.clone()));
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let work: Work = match client.get(&format!("/v1/provers/{me}/work")).await {
            Ok(Some(w)) => w,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("built-in verifier: reading work: {e}");
                continue;
            }
        };
        for task in work.tasks.iter().filter(|t| t.kind == "vote") {
            let Ok(job) = task.job.parse() else { continue };
            if !done.insert((job.id, task.attempt)) {
                continue;
            }
            let (client, txq, attempt) = (client.clone(), txq.clone(), task.attempt);
            tokio::spawn(async move {
                match check(&client, &job, attempt).await {
                    Ok(valid) => {
                        tracing::info!(job = %job.id, attempt, valid, "verified natively; voting");
                        if let TxOutcome::Failed { reason } =
                            txq.send(TxBody::Vote { job: job.id, attempt, valid }).await
                        {
                            tracing::warn!(job = %job.id, attempt, "vote failed: {reason}");
                        }
                    }
                    Err(e) => tracing::warn!(job = %job.id, attempt, "not voting: {e:#}"),
                }
            });
        }
        // Forget attempts no longer listed, so the set stays bounded.
        let listed = work.keys();
        done.retain(|k| listed.contains(k));
    }
}

async fn fetch(client: &Client, blob: &BlobRef) -> Result<Vec<u8>> {
    let bytes = client
        .download(&blob.hash)
        .await?
        .ok_or_else(|| anyhow!("blob {} is not in this validator's store", blob.hash))?;
    if bytes.len() as u64 != blob.size.0 {
        bail!("blob {} has the wrong size", blob.hash);
    }
    Ok(bytes)
}

async fn check(client: &Client, job: &JobWork, attempt: u8) -> Result<bool> {
    let program: crate::views::ProgramJson = client
        .get(&format!("/v1/programs/{}", job.program))
        .await?
        .ok_or_else(|| anyhow!("unknown program"))?;
    let program = program.parse()?;
    let Some(kind) = program.builtin else {
        bail!("program {} is verified by a committee", program.name)
    };
    let wanted = public_inputs(&kind)?;
    let mut inputs = Vec::new();
    for (name, blob) in job.inputs.iter().filter(|(n, _)| wanted.contains(&n.as_str())) {
        inputs.push((name.as_str().to_owned(), fetch(client, blob).await?));
    }
    let mut proof = Vec::new();
    for (name, blob) in job.proofs.get(usize::from(attempt)).into_iter().flatten() {
        if blob.size.0 > 1 << 20 {
            return Ok(false);
        }
        proof.push((name.as_str().to_owned(), fetch(client, blob).await?));
    }
    tokio::task::spawn_blocking(move || verify_builtin(&kind, &inputs, &proof)).await?
}
