//! Resources, labels, file names and prover sets.

use crate::codec::{BoundedString, BoundedVec, CodecError, Decode, Encode, Reader};
use crate::ids::{BlobHash, ProverId};
use crate::limits::*;
use crate::units::{Bytes, GpuCount, MilliCores};
use crate::{codec_struct, codec_unit_enum};
use std::fmt;
use std::str::FromStr;

/// CPU, memory and GPUs: what a job asks for or a machine offers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub cores: MilliCores,
    pub memory: Bytes,
    pub gpus: GpuCount,
}
codec_struct!(Resources { cores, memory, gpus });

impl Resources {
    pub const ZERO: Resources =
        Resources { cores: MilliCores(0), memory: Bytes(0), gpus: GpuCount(0) };

    /// Whether `self` fits inside `capacity` in every dimension.
    pub fn fits_in(&self, capacity: &Resources) -> bool {
        self.cores <= capacity.cores && self.memory <= capacity.memory && self.gpus <= capacity.gpus
    }

    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cores: self.cores.checked_add(other.cores)?,
            memory: self.memory.checked_add(other.memory)?,
            gpus: self.gpus.checked_add(other.gpus)?,
        })
    }

    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cores: self.cores.checked_sub(other.cores)?,
            memory: self.memory.checked_sub(other.memory)?,
            gpus: self.gpus.checked_sub(other.gpus)?,
        })
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cores: self.cores.saturating_sub(other.cores),
            memory: self.memory.saturating_sub(other.memory),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }

    /// Which dimension, if any, exceeds the protocol's per-machine maximum or is unusable.
    pub fn check_bounds(&self) -> Result<(), &'static str> {
        if self.cores.0 == 0 {
            return Err("cores must be above zero");
        }
        if self.memory.0 == 0 {
            return Err("memory must be above zero");
        }
        if self.cores > CORES_MAX {
            return Err("cores above the protocol maximum");
        }
        if self.memory > MEMORY_MAX {
            return Err("memory above the protocol maximum");
        }
        if self.gpus > GPUS_MAX {
            return Err("GPUs above the protocol maximum");
        }
        Ok(())
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cores, {}, {} GPUs", self.cores, self.memory, self.gpus)
    }
}
impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a name or label was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub input: String,
    pub reason: &'static str,
}

fn check_name(s: &str, what: &'static str, extra: &[u8]) -> Result<(), NameError> {
    let err = |reason| NameError { what, input: s.chars().take(80).collect(), reason };
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.len() > NAME_BYTES_MAX.max(LABEL_BYTES_MAX) {
        return Err(err("too long"));
    }
    if s.starts_with('.') || s.starts_with('-') {
        return Err(err("must not start with `.` or `-`"));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
    if !s.bytes().all(|b| ok(b) || extra.contains(&b)) {
        return Err(err("only letters, digits, `_`, `-` and `.` are allowed"));
    }
    Ok(())
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(BoundedString<{ $max }>);

        impl $name {
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_name(s, $what, $extra)?;
                BoundedString::try_new(s).map(Self).map_err(|_| NameError {
                    what: $what,
                    input: s.chars().take(80).collect(),
                    reason: "too long",
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }

        impl Encode for $name {
            fn encode_to(&self, out: &mut Vec<u8>) {
                self.0.encode_to(out);
            }
        }

        impl Decode for $name {
            fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                let s = BoundedString::<{ $max }>::decode_from(r)?;
                check_name(s.as_str(), $what, $extra)
                    .map_err(|e| CodecError::Invalid { what: $what, reason: e.reason })?;
                Ok(Self(s))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        crate::schema::schema!($name, crate::schema::name($what, $max));
    };
}

checked_name!(
    /// A file name in the program contract (`/job/in/<name>`, `/job/out/<name>`) or a program
    /// name: no path separators, no leading dot, so it can never escape its directory.
    FileName,
    NAME_BYTES_MAX,
    "name",
    b""
);
checked_name!(
    /// A prover label such as `gpu=h100` or `cpu=x86-64-v3`.
    Label,
    LABEL_BYTES_MAX,
    "label",
    b"=:"
);

/// The first item that appears twice in `items`, if any (for names that must be unique).
pub fn first_duplicate<'a, T: Ord + 'a>(items: impl IntoIterator<Item = &'a T>) -> Option<&'a T> {
    let mut sorted: Vec<&T> = items.into_iter().collect();
    sorted.sort();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// A blob the chain refers to: its content hash and exact size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BlobRef {
    pub hash: BlobHash,
    pub size: Bytes,
}
codec_struct!(BlobRef { hash, size });

impl fmt::Debug for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.hash.short(), self.size)
    }
}

/// A named blob: one job input or one proof file.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NamedBlob {
    pub name: FileName,
    pub blob: BlobRef,
}
codec_struct!(NamedBlob { name, blob });

impl fmt::Debug for NamedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name, self.blob)
    }
}

/// Which provers a job may be assigned to.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum ProverSet {
    /// Every active prover.
    #[default]
    Any,
    /// Provers carrying every one of these labels.
    Labels(BoundedVec<Label, REQUIRED_LABELS_MAX>),
    /// Only these provers.
    Allow(BoundedVec<ProverId, PROVER_ALLOW_MAX>),
}

impl ProverSet {
    /// Whether a prover with `id` and `labels` belongs to the set.
    pub fn admits(&self, id: &ProverId, labels: &[Label]) -> bool {
        match self {
            ProverSet::Any => true,
            ProverSet::Labels(required) => required.iter().all(|l| labels.contains(l)),
            ProverSet::Allow(ids) => ids.contains(id),
        }
    }
}

impl Encode for ProverSet {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            ProverSet::Any => out.push(0),
            ProverSet::Labels(l) => {
                out.push(1);
                l.encode_to(out);
            }
            ProverSet::Allow(a) => {
                out.push(2);
                a.encode_to(out);
            }
        }
    }
}

impl Decode for ProverSet {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("prover set")? {
            0 => Ok(ProverSet::Any),
            1 => Ok(ProverSet::Labels(Decode::decode_from(r)?)),
            2 => Ok(ProverSet::Allow(Decode::decode_from(r)?)),
            tag => Err(CodecError::InvalidTag { what: "prover set", tag }),
        }
    }
}

/// Verifiers the validators run natively instead of a committee of provers. Each one checks
/// the statement of one built-in program, read from the job's inputs.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub enum BuiltinVerifier {
    /// Groth16 over BN254 (arkworks): `groth16-sha256`'s SHA-256 preimage statement (inputs
    /// `vk` and `digest`).
    Groth16Bn254,
    /// A winterfell STARK of `winterfell-chain`'s iterated cube (input `statement`).
    WinterfellChain,
    /// A Plonky3 STARK of `plonky3-keccak`'s Keccak-f permutations (input `statement`).
    Plonky3Keccak,
}
codec_unit_enum!(BuiltinVerifier { Groth16Bn254 = 1, WinterfellChain = 2, Plonky3Keccak = 3 });

impl BuiltinVerifier {
    pub const ALL: [BuiltinVerifier; 3] = [
        BuiltinVerifier::Groth16Bn254,
        BuiltinVerifier::WinterfellChain,
        BuiltinVerifier::Plonky3Keccak,
    ];

    /// The stable name used on the command line and in the API.
    pub fn name(&self) -> &'static str {
        match self {
            BuiltinVerifier::Groth16Bn254 => "groth16-bn254",
            BuiltinVerifier::WinterfellChain => "winterfell-chain",
            BuiltinVerifier::Plonky3Keccak => "plonky3-keccak",
        }
    }
}

impl std::fmt::Display for BuiltinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BuiltinVerifier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuiltinVerifier::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = BuiltinVerifier::ALL.iter().map(|b| b.name()).collect();
            format!("no built-in verifier `{s}`; the built-in ones are {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_exact;

    #[test]
    fn file_names_cannot_escape() {
        for bad in ["", "../x", "a/b", ".hidden", "-flag", "a b", "x\0"] {
            assert!(bad.parse::<FileName>().is_err(), "{bad:?} accepted");
        }
        for good in ["input", "proof.bin", "seg_01-a"] {
            assert!(good.parse::<FileName>().is_ok(), "{good:?} refused");
        }
        assert!("gpu=h100".parse::<Label>().is_ok());
        assert!("gpu=h100".parse::<FileName>().is_err());
    }

    #[test]
    fn decoding_rechecks_names() {
        let raw = BoundedString::<NAME_BYTES_MAX>::try_new("../etc").unwrap().encode();
        assert!(decode_exact::<FileName>(&raw, "name").is_err());
    }

    #[test]
    fn duplicates_are_found() {
        assert_eq!(first_duplicate(&[3, 1, 2, 1]), Some(&1));
        assert_eq!(first_duplicate(&[3, 1, 2]), None);
    }

    #[test]
    fn resource_fit() {
        let cap = Resources { cores: MilliCores(8000), memory: Bytes::gib(16), gpus: GpuCount(1) };
        let job = Resources { cores: MilliCores(8000), memory: Bytes::gib(16), gpus: GpuCount(0) };
        assert!(job.fits_in(&cap));
        let gpu2 = Resources { gpus: GpuCount(2), ..job };
        assert!(!gpu2.fits_in(&cap));
        assert_eq!(cap.saturating_sub(&job), Resources { gpus: GpuCount(1), ..Resources::ZERO });
    }

    #[test]
    fn prover_set_admission() {
        let id = ProverId([1; 32]);
        let labels = vec!["gpu=h100".parse::<Label>().unwrap()];
        let want_gpu = ProverSet::Labels(BoundedVec::try_from_vec(labels.clone()).unwrap());
        assert!(want_gpu.admits(&id, &labels));
        assert!(!want_gpu.admits(&id, &[]));
        let allow = ProverSet::Allow(BoundedVec::try_from_vec(vec![ProverId([2; 32])]).unwrap());
        assert!(!allow.admits(&id, &labels));
        assert!(ProverSet::Any.admits(&id, &[]));
    }
}
