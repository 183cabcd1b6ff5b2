//! ed25519 keys and signatures with domain separation.
//!
//! A signature is over `domain || 0x00 || chain_id_len || chain_id || payload`, so a signature
//! made for one purpose (a transaction) or one chain can never be replayed as another.
//! Verification is strict (`verify_strict`): small-order keys and non-canonical signatures are
//! rejected, so validators can never disagree about validity.

use crate::codec::{CodecError, Decode, Encode, Reader};
use crate::ids::AccountId;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;

/// The domain of transaction signatures.
pub const TX_DOMAIN: &[u8] = b"provernet/tx/v1";
/// The domain of the signature that authorises a blob upload, over
/// [`crate::tx::blob_upload_message`]. Validators pass it on to each other, so a copy of an
/// upload is charged to the account that signed it.
pub const BLOB_UPLOAD_DOMAIN: &[u8] = b"provernet/blob-upload/v1";

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", crate::ids::to_hex(&self.0[..4]))
    }
}

impl Encode for Signature {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Signature {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Signature(r.array("signature")?))
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("account {0} is not a valid ed25519 public key")]
    BadPublicKey(AccountId),
    #[error("signature does not verify for account {0}")]
    Invalid(AccountId),
}

/// A secret signing key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.account())
    }
}

impl Keypair {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Keypair {
        Keypair(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key with this 32-byte secret seed. Deterministic: for tests and for key files.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// A deterministic key derived from a label. For tests and devnets only.
    pub fn insecure_from_label(label: &str) -> Keypair {
        Self::from_seed(crate::ids::domain_hash("provernet insecure test key", &[label.as_bytes()]))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn account(&self) -> AccountId {
        AccountId(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, domain: &[u8], chain_id: &str, payload: &[u8]) -> Signature {
        Signature(self.0.sign(&signing_message(domain, chain_id, payload)).to_bytes())
    }
}

fn signing_message(domain: &[u8], chain_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain.len() + chain_id.len() + payload.len() + 2);
    msg.extend_from_slice(domain);
    msg.push(0);
    msg.push(chain_id.len() as u8);
    msg.extend_from_slice(chain_id.as_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// Checks `signature` by `account` over `payload` in `domain` on `chain_id`.
pub fn verify(
    account: &AccountId,
    domain: &[u8],
    chain_id: &str,
    payload: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let key =
        VerifyingKey::from_bytes(&account.0).map_err(|_| SignatureError::BadPublicKey(*account))?;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(&signing_message(domain, chain_id, payload), &sig)
        .map_err(|_| SignatureError::Invalid(*account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_bound_to_domain_chain_and_payload() {
        let k = Keypair::insecure_from_label("alice");
        let sig = k.sign(TX_DOMAIN, "devnet", b"hello");
        assert_eq!(verify(&k.account(), TX_DOMAIN, "devnet", b"hello", &sig), Ok(()));
        assert!(verify(&k.account(), TX_DOMAIN, "devnet", b"hellp", &sig).is_err());
        assert!(verify(&k.account(), TX_DOMAIN, "mainnet", b"hello", &sig).is_err());
        assert!(verify(&k.account(), b"provernet/vote/v1", "devnet", b"hello", &sig).is_err());
        let other = Keypair::insecure_from_label("bob");
        assert_eq!(
            verify(&other.account(), TX_DOMAIN, "devnet", b"hello", &sig),
            Err(SignatureError::Invalid(other.account()))
        );
    }

    #[test]
    fn keys_are_deterministic_from_seed() {
        let a = Keypair::insecure_from_label("x");
        assert_eq!(Keypair::from_seed(a.seed()).account(), a.account());
    }
}
