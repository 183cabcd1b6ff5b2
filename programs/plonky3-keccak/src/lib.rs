//! Built-in program: a Plonky3 STARK of N Keccak-f[1600] permutations, bound to its job; the
//! heavy CPU workload.
//!
//! Statement (the job input `statement`, ASCII): `"<seed> <permutations>"`. The prover derives
//! the permutation inputs from the seed, computes the permutations in a trace of
//! `KeccakAir` (2,633 columns, 24 rows per permutation) over Goldilocks, and proves it with FRI
//! (100 queries, blowup 2, 16 bits of grinding: about 116 bits of conjectured security).
//!
//! **What the proof binds, and what it does not.** The job's statement seeds the Fiat–Shamir
//! transcript, so a proof made for any other statement does not verify, and the verifier checks
//! that the trace has exactly the height the permutation count implies. `KeccakAir` exposes no
//! public values, though, so the proof shows that this many permutations were computed
//! correctly *for this job*, not which inputs were permuted. It is a proof of verifiable work,
//! which is what a heavy workload needs; a program that proves a hash of specific data must
//! expose its inputs and outputs as public values.
//!
//! CPU level: with this configuration (Goldilocks, Keccak-based hashing) a generic build and an
//! `-C target-cpu=x86-64-v3` build prove at the same speed (1.43 s vs 1.41 s for 341
//! permutations on this project's CI machine). The 14× AVX2 gain the research measured was for
//! BabyBear with Poseidon2, so this program needs no `cpu=x86-64-v3` label.
//! Not zero-knowledge (`TwoAdicFriPcs` does not hide the trace).

use p3_challenger::{HashChallenger, SerializingChallenger64};
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_field::extension::BinomialExtensionField;
use p3_fri::{FriParameters, TwoAdicFriPcs};
use p3_goldilocks::Goldilocks;
use p3_keccak::{Keccak256Hash, KeccakF};
use p3_keccak_air::{generate_trace_rows, KeccakAir};
use p3_merkle_tree::MerkleTreeMmcs;
use p3_symmetric::{CompressionFunctionFromHasher, PaddingFreeSponge, SerializingHasher};
use p3_uni_stark::StarkConfig;

pub const PERMUTATIONS_MIN: u32 = 1;
pub const PERMUTATIONS_MAX: u32 = 1 << 16;
/// Largest proof file accepted (proofs are ~1.3 MB at benchmark sizes).
pub const PROOF_BYTES_MAX: usize = 16 << 20;
const ROUNDS: u64 = 24;

type Val = Goldilocks;
type Challenge = BinomialExtensionField<Val, 2>;
type ByteHash = Keccak256Hash;
type U64Hash = PaddingFreeSponge<KeccakF, 25, 17, 4>;
type FieldHash = SerializingHasher<U64Hash>;
type Compress = CompressionFunctionFromHasher<U64Hash, 2, 4>;
type ValMmcs = MerkleTreeMmcs<
    [Val; p3_keccak::VECTOR_LEN],
    [u64; p3_keccak::VECTOR_LEN],
    FieldHash,
    Compress,
    2,
    4,
>;
type ChallengeMmcs = ExtensionMmcs<Val, Challenge, ValMmcs>;
type Dft = Radix2DitParallel<Val>;
type Challenger = SerializingChallenger64<Val, HashChallenger<u8, ByteHash, 32>>;
type Pcs = TwoAdicFriPcs<Val, Dft, ValMmcs, ChallengeMmcs>;
type Config = StarkConfig<Pcs, Challenge, Challenger>;
type Proof = p3_uni_stark::Proof<Config>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "statement is malformed: {0} (want \"<seed> <permutations>\", 1..=65536 permutations)"
    )]
    Statement(String),
    #[error("proving failed: {0}")]
    Proving(String),
}

/// What a job asks to be proven.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Statement {
    pub seed: u64,
    pub permutations: u32,
}

impl Statement {
    pub fn parse(text: &str) -> Result<Statement, Error> {
        let mut it = text.split_whitespace();
        let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Statement("expected two numbers".into()));
        };
        let seed =
            a.parse().map_err(|_| Error::Statement(format!("seed `{a}` is not a number")))?;
        let permutations: u32 = b
            .parse()
            .map_err(|_| Error::Statement(format!("permutations `{b}` is not a number")))?;
        if !(PERMUTATIONS_MIN..=PERMUTATIONS_MAX).contains(&permutations) {
            return Err(Error::Statement(format!("{permutations} permutations out of range")));
        }
        Ok(Statement { seed, permutations })
    }

    /// The bytes that seed the transcript: domain, seed, count.
    fn transcript_seed(&self) -> Vec<u8> {
        let mut v = b"provernet plonky3-keccak v1".to_vec();
        v.extend_from_slice(&self.seed.to_le_bytes());
        v.extend_from_slice(&self.permutations.to_le_bytes());
        v
    }

    /// log2 of the trace height this statement implies.
    pub fn degree_bits(&self) -> usize {
        (u64::from(self.permutations) * ROUNDS).next_power_of_two().trailing_zeros() as usize
    }

    /// The permutation inputs, derived from the seed (SplitMix64).
    pub fn inputs(&self) -> Vec<[u64; 25]> {
        let mut state = self.seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (0..self.permutations).map(|_| std::array::from_fn(|_| next())).collect()
    }
}

fn config(s: &Statement) -> Config {
    let u64_hash = U64Hash::new(KeccakF {});
    let val_mmcs = ValMmcs::new(FieldHash::new(u64_hash), Compress::new(u64_hash), 3);
    let fri = FriParameters::new_benchmark(ChallengeMmcs::new(val_mmcs.clone()));
    let pcs = Pcs::new(Dft::default(), val_mmcs, fri);
    Config::new(pcs, Challenger::from_hasher(s.transcript_seed(), ByteHash {}))
}

/// Proves the statement: the proof file.
pub fn prove(s: Statement) -> Result<Vec<u8>, Error> {
    let cfg = config(&s);
    let trace = generate_trace_rows::<Val>(s.inputs(), 1);
    let proof = p3_uni_stark::prove(&cfg, &KeccakAir {}, trace, &[])
        .map_err(|e| Error::Proving(format!("{e:?}")))?;
    postcard::to_allocvec(&proof).map_err(|e| Error::Proving(e.to_string()))
}

/// Whether `file` proves `s`. `false` for an invalid or malformed proof.
pub fn verify(s: Statement, file: &[u8]) -> bool {
    if file.len() > PROOF_BYTES_MAX {
        return false;
    }
    let Ok(proof) = postcard::from_bytes::<Proof>(file) else { return false };
    if proof.degree_bits != s.degree_bits() {
        return false;
    }
    let cfg = config(&s);
    // A malformed proof must be a rejection, never a crash of the verifier.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p3_uni_stark::verify(&cfg, &KeccakAir {}, &proof, &[]).is_ok()
    }))
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_parse_strictly() {
        assert_eq!(Statement::parse("7 64").unwrap(), Statement { seed: 7, permutations: 64 });
        for bad in ["", "7", "7 0", "7 65537", "x 4", "7 4 4"] {
            assert!(Statement::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Statement { seed: 0, permutations: 64 }.degree_bits(), 11);
    }

    #[test]
    fn prove_verify_and_bind_to_the_statement() {
        let s = Statement { seed: 42, permutations: 8 };
        let file = prove(s).unwrap();
        assert!(verify(s, &file));
        assert!(!verify(Statement { seed: 43, ..s }, &file), "another job's seed");
        assert!(!verify(Statement { permutations: 12, ..s }, &file), "another count, same height");
        assert!(!verify(Statement { permutations: 16, ..s }, &file), "another height");
        let mut bad = file.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(!verify(s, &bad));
        assert!(!verify(s, &file[..file.len() / 3]));
        assert!(!verify(s, b""));
    }
}
