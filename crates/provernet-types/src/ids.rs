//! 32-byte identifiers. Each kind of id is its own type so one can never stand in for another.

use crate::codec::{CodecError, Decode, Encode, Reader};
use std::fmt;
use std::str::FromStr;

/// Why a hex id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason} (expected 64 hex characters)")]
pub struct ParseIdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

pub(crate) fn parse_hex32(s: &str, kind: &'static str) -> Result<[u8; 32], ParseIdError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 64 {
        return Err(ParseIdError { kind, reason: "wrong length" });
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = hex_val(chunk[0]).ok_or(ParseIdError { kind, reason: "not hex" })?;
        let lo = hex_val(chunk[1]).ok_or(ParseIdError { kind, reason: "not hex" })?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 8 hex characters, for logs and tables.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                parse_hex32(s, $kind).map(Self)
            }
        }

        impl Encode for $name {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }

        impl Decode for $name {
            fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(Self(r.array($kind)?))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        crate::schema::schema!($name, crate::schema::hex32($kind));
    };
}

id32!(
    /// An account: the ed25519 public key that signs its transactions.
    AccountId,
    "account id"
);
id32!(
    /// A prover node. Equal to the account id of the key the node signs with.
    ProverId,
    "prover id"
);
id32!(
    /// A registered program: the BLAKE3 hash of its canonical manifest.
    ProgramId,
    "program id"
);
id32!(
    /// A job: the BLAKE3 hash of the submitting transaction's signer and nonce.
    JobId,
    "job id"
);
id32!(
    /// A workflow: the BLAKE3 hash of the submitting transaction's signer and nonce, in a
    /// domain of its own.
    WorkflowId,
    "workflow id"
);

id32!(
    /// Content address of a blob: the BLAKE3 hash of its bytes.
    BlobHash,
    "blob hash"
);
id32!(
    /// The BLAKE3 hash of a signed transaction's bytes.
    TxHash,
    "transaction hash"
);
id32!(
    /// The commitment over the whole ledger state after a block.
    StateRoot,
    "state root"
);
id32!(
    /// The digest of a consensus block (SHA-256 of its encoding, as the consensus engine uses).
    BlockHash,
    "block hash"
);

impl From<AccountId> for ProverId {
    fn from(a: AccountId) -> Self {
        Self(a.0)
    }
}

impl From<ProverId> for AccountId {
    fn from(p: ProverId) -> Self {
        Self(p.0)
    }
}

impl BlobHash {
    /// The content address of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

/// BLAKE3 in derive-key mode: a hash that cannot collide with one taken for another purpose.
pub fn domain_hash(domain: &'static str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(domain);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// A hashing domain for hot paths: BLAKE3 keyed with a key derived once from the domain's
/// name, so each hash costs only its input (derive-key mode re-hashes the name every call).
/// Distinct names give independent keys, so hashes of different domains never collide.
#[derive(Debug)]
pub struct Domain {
    name: &'static str,
    key: std::sync::OnceLock<[u8; 32]>,
}

impl Domain {
    pub const fn new(name: &'static str) -> Domain {
        Domain { name, key: std::sync::OnceLock::new() }
    }

    pub fn hasher(&self) -> blake3::Hasher {
        let key = self
            .key
            .get_or_init(|| blake3::derive_key("provernet domain key v1", self.name.as_bytes()));
        blake3::Hasher::new_keyed(key)
    }

    pub fn hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = self.hasher();
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = JobId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s.parse::<JobId>(), Ok(id));
        assert_eq!(format!("0x{s}").parse::<JobId>(), Ok(id));
        let err = "abc".parse::<JobId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid job id: wrong length (expected 64 hex characters)");
        assert!("zz".repeat(32).parse::<ProgramId>().is_err());
    }

    #[test]
    fn domain_hashes_differ_by_domain() {
        assert_ne!(domain_hash("provernet a", &[b"x"]), domain_hash("provernet b", &[b"x"]));
        static A: Domain = Domain::new("provernet a");
        static B: Domain = Domain::new("provernet b");
        assert_ne!(A.hash(&[b"x"]), B.hash(&[b"x"]));
        assert_ne!(A.hash(&[b"x"]), domain_hash("provernet a", &[b"x"]));
        assert_eq!(A.hash(&[b"x", b"y"]), A.hash(&[b"xy"]));
    }
}
