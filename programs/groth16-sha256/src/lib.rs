//! Built-in program: Groth16 (BN254, arkworks) proof of knowledge of a SHA-256 preimage of a
//! public digest.
//!
//! Statement: "I know `preimage` of `preimage_len` bytes with `SHA-256(preimage) = digest`",
//! where `digest` is public and `preimage` stays private (Groth16 is zero-knowledge). The
//! circuit size grows with the preimage length (one SHA-256 compression per 64-byte block),
//! so jobs can be small (tests) or large (benchmarks).
//!
//! Keys are a program artifact. [`setup_insecure`] derives them from a public seed: **anyone
//! who knows the seed can forge proofs**; it exists for devnets and tests only. A real
//! deployment runs a multi-party ceremony for this circuit and passes its proving and
//! verifying keys (in the formats of [`ProvingKeyFile`] and [`VerifyingKeyFile`]) as job
//! inputs named `pk` and `vk`.
//!
//! [`verify`] checks a proof against the digest *taken from the job*, never against anything
//! the prover supplies, and is what validators call to verify natively.

use ark_bn254::{Bn254, Fr};
use ark_crypto_primitives::crh::sha256::constraints::Sha256Gadget;
use ark_crypto_primitives::snark::SNARK;
use ark_ff::ToConstraintField;
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, ProvingKey, VerifyingKey};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::uint8::UInt8;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_std::rand::{rngs::StdRng, SeedableRng};
use sha2::Digest;

/// Largest preimage a circuit may be built for.
pub const PREIMAGE_BYTES_MAX: usize = 16 * 1024;
/// The size of a serialized proof.
pub const PROOF_BYTES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the preimage is {got} bytes; this key is for {want}-byte preimages")]
    WrongLength { got: usize, want: usize },
    #[error("the preimage does not hash to the digest")]
    NotAPreimage,
    #[error("proving failed: {0}")]
    Proving(String),
}

/// The circuit. `preimage` is `None` during key generation.
#[derive(Clone, Debug)]
pub struct PreimageCircuit {
    pub preimage_len: usize,
    pub preimage: Option<Vec<u8>>,
    pub digest: [u8; 32],
}

impl ConstraintSynthesizer<Fr> for PreimageCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let digest = UInt8::new_input_vec(cs.clone(), &self.digest)?;
        let bytes: Vec<Option<u8>> = match &self.preimage {
            Some(p) => p.iter().copied().map(Some).collect(),
            None => vec![None; self.preimage_len],
        };
        let preimage = bytes
            .into_iter()
            .map(|b| UInt8::new_witness(cs.clone(), || b.ok_or(SynthesisError::AssignmentMissing)))
            .collect::<Result<Vec<_>, _>>()?;
        let computed = Sha256Gadget::digest(&preimage)?;
        computed.0.enforce_equal(&digest)
    }
}

/// A proving key with the preimage length it was made for. Stored uncompressed: the prover
/// trusts its own key, and an unchecked uncompressed load takes 0.1 s where a checked one of
/// a compressed key took 16 s.
#[derive(Debug)]
pub struct ProvingKeyFile {
    pub preimage_len: usize,
    pub key: ProvingKey<Bn254>,
}

/// A verifying key with the preimage length it was made for. Stored compressed and loaded
/// with every point checked: it comes from the job, so it is not trusted.
#[derive(Debug, Clone)]
pub struct VerifyingKeyFile {
    pub preimage_len: usize,
    pub key: VerifyingKey<Bn254>,
}

fn len_prefix(len: usize) -> [u8; 4] {
    (len as u32).to_le_bytes()
}

fn split_len<'a>(bytes: &'a [u8], what: &'static str) -> Result<(usize, &'a [u8]), Error> {
    if bytes.len() < 4 {
        return Err(Error::Malformed { what, reason: "too short".into() });
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&bytes[..4]);
    let len = u32::from_le_bytes(l) as usize;
    if len == 0 || len > PREIMAGE_BYTES_MAX {
        return Err(Error::Malformed {
            what,
            reason: format!("preimage length {len} out of range"),
        });
    }
    Ok((len, &bytes[4..]))
}

impl ProvingKeyFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = len_prefix(self.preimage_len).to_vec();
        self.key.serialize_uncompressed(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let (preimage_len, rest) = split_len(bytes, "proving key")?;
        let key = ProvingKey::deserialize_with_mode(rest, Compress::No, Validate::No)
            .map_err(|e| Error::Malformed { what: "proving key", reason: e.to_string() })?;
        Ok(Self { preimage_len, key })
    }
}

impl VerifyingKeyFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = len_prefix(self.preimage_len).to_vec();
        self.key.serialize_compressed(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let (preimage_len, mut rest) = split_len(bytes, "verifying key")?;
        let key = VerifyingKey::deserialize_with_mode(&mut rest, Compress::Yes, Validate::Yes)
            .map_err(|e| Error::Malformed { what: "verifying key", reason: e.to_string() })?;
        if !rest.is_empty() {
            return Err(Error::Malformed {
                what: "verifying key",
                reason: "trailing bytes".into(),
            });
        }
        Ok(Self { preimage_len, key })
    }
}

/// Keys for `preimage_len`-byte preimages from a public seed. **Insecure**: see the crate docs.
pub fn setup_insecure(
    preimage_len: usize,
    seed: [u8; 32],
) -> Result<(ProvingKeyFile, VerifyingKeyFile), Error> {
    if preimage_len == 0 || preimage_len > PREIMAGE_BYTES_MAX {
        return Err(Error::WrongLength { got: preimage_len, want: PREIMAGE_BYTES_MAX });
    }
    let mut rng = StdRng::from_seed(seed);
    let circuit = PreimageCircuit { preimage_len, preimage: None, digest: [0; 32] };
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(circuit, &mut rng)
        .map_err(|e| Error::Proving(e.to_string()))?;
    Ok((ProvingKeyFile { preimage_len, key: pk }, VerifyingKeyFile { preimage_len, key: vk }))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Proves knowledge of `preimage` for `digest`. Checks the statement first, so a wrong
/// preimage is reported as such instead of yielding an invalid proof.
pub fn prove(
    pk: &ProvingKeyFile,
    preimage: &[u8],
    digest: &[u8; 32],
    rng_seed: [u8; 32],
) -> Result<[u8; PROOF_BYTES], Error> {
    if preimage.len() != pk.preimage_len {
        return Err(Error::WrongLength { got: preimage.len(), want: pk.preimage_len });
    }
    if sha256(preimage) != *digest {
        return Err(Error::NotAPreimage);
    }
    let circuit = PreimageCircuit {
        preimage_len: preimage.len(),
        preimage: Some(preimage.to_vec()),
        digest: *digest,
    };
    let mut rng = StdRng::from_seed(rng_seed);
    let proof = Groth16::<Bn254>::prove(&pk.key, circuit, &mut rng)
        .map_err(|e| Error::Proving(e.to_string()))?;
    let mut out = Vec::with_capacity(PROOF_BYTES);
    proof.serialize_compressed(&mut out).expect("writing to a Vec cannot fail");
    out.try_into().map_err(|_| Error::Proving("unexpected proof size".into()))
}

/// Whether `proof` proves knowledge of a preimage of `digest` under `vk`. `Ok(false)` for an
/// invalid or malformed proof (the prover's fault); `Err` only for a malformed key or digest
/// (the job's fault).
pub fn verify(vk: &VerifyingKeyFile, digest: &[u8], proof: &[u8]) -> Result<bool, Error> {
    let digest: [u8; 32] = digest.try_into().map_err(|_| Error::Malformed {
        what: "digest",
        reason: format!("{} bytes, want 32", digest.len()),
    })?;
    if proof.len() != PROOF_BYTES {
        return Ok(false);
    }
    let Ok(proof) = Proof::<Bn254>::deserialize_with_mode(proof, Compress::Yes, Validate::Yes)
    else {
        return Ok(false);
    };
    let inputs: Vec<Fr> = digest[..]
        .to_field_elements()
        .ok_or_else(|| Error::Malformed { what: "digest", reason: "not packable".into() })?;
    let pvk: PreparedVerifyingKey<Bn254> = ark_groth16::prepare_verifying_key(&vk.key);
    Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof)
        .map_err(|e| Error::Malformed { what: "verifying key", reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prove_verify_and_reject_tampering_or_another_statement() {
        let (pk, vk) = setup_insecure(8, [1; 32]).unwrap();
        let pk = ProvingKeyFile::from_bytes(&pk.to_bytes()).unwrap();
        let vk = VerifyingKeyFile::from_bytes(&vk.to_bytes()).unwrap();
        let preimage = b"provernt";
        let digest = sha256(preimage);
        let proof = prove(&pk, preimage, &digest, [2; 32]).unwrap();
        assert!(verify(&vk, &digest, &proof).unwrap());
        // A valid proof checked against another statement.
        let other = sha256(b"another!");
        assert!(!verify(&vk, &other, &proof).unwrap());
        // A tampered proof.
        for i in [0, 40, 127] {
            let mut bad = proof;
            bad[i] ^= 1;
            assert!(!verify(&vk, &digest, &bad).unwrap(), "byte {i}");
        }
        assert!(!verify(&vk, &digest, &proof[..100]).unwrap());
        // Wrong inputs are refused before proving.
        assert!(matches!(prove(&pk, b"wrong!!!", &digest, [2; 32]), Err(Error::NotAPreimage)));
        assert!(matches!(prove(&pk, b"short", &digest, [2; 32]), Err(Error::WrongLength { .. })));
        assert!(verify(&vk, &digest[..31], &proof).is_err());
        assert!(VerifyingKeyFile::from_bytes(&[1, 0, 0, 0, 9, 9]).is_err());
    }
}
