//! The API's JSON, as the node reads it. Everything is parsed back into the protocol's types,
//! so a malformed answer is an error here, not a wrong action later.

use anyhow::{anyhow, Context, Result};
use provernet_types::{
    BlobHash, BlobRef, BuiltinVerifier, Bytes, FileName, GpuCount, JobId, MicroCredits, MilliCores,
    ProgramId, Resources, Seconds, VerifierLimits,
};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Work {
    pub height: u64,
    pub prover: Option<serde_json::Value>,
    pub tasks: Vec<Task>,
}

impl Work {
    /// The attempts listed, as (job, attempt).
    pub fn keys(&self) -> std::collections::BTreeSet<(JobId, u8)> {
        self.tasks.iter().filter_map(|t| t.job.id.parse().ok().map(|id| (id, t.attempt))).collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Task {
    pub kind: String,
    pub attempt: u8,
    pub deadline: u64,
    /// Market tasks: the price a lock gets, or a race pays.
    #[serde(default)]
    pub price_micro_credits: Option<u64>,
    /// Auction tasks: when the auction round opened.
    #[serde(default)]
    pub round: Option<u64>,
    pub job: JobJson,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JobJson {
    pub id: String,
    pub program: String,
    pub inputs: Vec<NamedJson>,
    pub resources: ResourcesJson,
    pub time_limit_s: u64,
    pub attempts: Vec<AttemptJson>,
    #[serde(default)]
    pub fee_per_prover_micro_credits: u64,
    #[serde(default)]
    pub max_fee_micro_credits: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AttemptJson {
    pub proof: Vec<NamedJson>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NamedJson {
    pub name: String,
    pub hash: String,
    pub size: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ResourcesJson {
    pub millicores: u32,
    pub memory_bytes: u64,
    pub gpus: u16,
}

#[derive(Clone, Debug, Deserialize)]
pub struct BlobJson {
    pub hash: String,
    pub size: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VerifierLimitsJson {
    pub millicores: u32,
    pub memory_bytes: u64,
    pub time_limit_s: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VerifierJson {
    pub kind: String,
    pub blob: Option<BlobJson>,
    /// For a verifier program: what it may use on each run.
    pub limits: Option<VerifierLimitsJson>,
    /// For built-in verifiers, e.g. `groth16-bn254`.
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ProgramJson {
    pub name: String,
    pub prover: BlobJson,
    pub verifier: VerifierJson,
}

/// A job as the node works with it.
#[derive(Clone, Debug)]
pub struct JobWork {
    pub id: JobId,
    pub program: ProgramId,
    pub inputs: Vec<(FileName, BlobRef)>,
    pub resources: Resources,
    pub time_limit: Seconds,
    /// The proof files of each attempt.
    pub proofs: Vec<Vec<(FileName, BlobRef)>>,
    /// The chain's posted price for one attempt.
    pub quote: MicroCredits,
    /// The most one attempt may be paid (auctions).
    pub max_fee: MicroCredits,
}

fn blob(hash: &str, size: u64) -> Result<BlobRef> {
    let hash: BlobHash = hash.parse().map_err(|_| anyhow!("bad blob hash `{hash}`"))?;
    Ok(BlobRef { hash, size: Bytes(size) })
}

fn named(list: &[NamedJson]) -> Result<Vec<(FileName, BlobRef)>> {
    list.iter()
        .map(|n| {
            let name: FileName =
                n.name.parse().map_err(|_| anyhow!("bad file name `{}`", n.name))?;
            Ok((name, blob(&n.hash, n.size)?))
        })
        .collect()
}

impl JobJson {
    pub fn parse(&self) -> Result<JobWork> {
        let id: JobId = self.id.parse().map_err(|_| anyhow!("bad job id `{}`", self.id))?;
        Ok(JobWork {
            id,
            program: self
                .program
                .parse()
                .map_err(|_| anyhow!("bad program id `{}`", self.program))?,
            inputs: named(&self.inputs).with_context(|| format!("job {id}"))?,
            resources: Resources {
                cores: MilliCores(self.resources.millicores),
                memory: Bytes(self.resources.memory_bytes),
                gpus: GpuCount(self.resources.gpus),
            },
            time_limit: Seconds(self.time_limit_s),
            proofs: self
                .attempts
                .iter()
                .map(|a| named(&a.proof))
                .collect::<Result<_>>()
                .with_context(|| format!("job {id}"))?,
            quote: MicroCredits(self.fee_per_prover_micro_credits),
            max_fee: MicroCredits(self.max_fee_micro_credits),
        })
    }
}

/// A program as the node works with it.
#[derive(Clone, Debug)]
pub struct ProgramWork {
    pub name: String,
    pub prover: BlobRef,
    /// `None` for built-in verifiers, which the validators run; else the verifier and what it
    /// may use on each run.
    pub verifier: Option<(BlobRef, VerifierLimits)>,
    /// The built-in verifier, if it has one.
    pub builtin: Option<BuiltinVerifier>,
}

impl ProgramJson {
    pub fn parse(&self) -> Result<ProgramWork> {
        let verifier = match (self.verifier.kind.as_str(), &self.verifier.blob) {
            ("program", Some(b)) => {
                let l =
                    self.verifier.limits.as_ref().ok_or_else(|| {
                        anyhow!("program {}: its verifier has no limits", self.name)
                    })?;
                let limits = VerifierLimits {
                    cores: MilliCores(l.millicores),
                    memory: Bytes(l.memory_bytes),
                    time_limit: Seconds(l.time_limit_s),
                };
                Some((blob(&b.hash, b.size)?, limits))
            }
            _ => None,
        };
        let builtin = match self.verifier.kind.as_str() {
            "builtin" => Some(
                self.verifier
                    .name
                    .as_deref()
                    .unwrap_or_default()
                    .parse::<BuiltinVerifier>()
                    .map_err(|e| anyhow!("program {}: {e}", self.name))?,
            ),
            _ => None,
        };
        Ok(ProgramWork {
            name: self.name.clone(),
            prover: blob(&self.prover.hash, self.prover.size)?,
            verifier,
            builtin,
        })
    }
}
