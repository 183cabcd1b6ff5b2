//! A network's description (the genesis file every node holds) and a validator's secret key
//! file, and the trusted dealer that creates both for a new network.
//!
//! The consensus scheme is threshold BLS: each validator holds one share of a group key, any
//! `2f+1` of them recover a per-view seed, and nobody can predict or bias it. Here a **dealer**
//! generates the shares (`provernet genesis`): whoever runs it learns the group secret and could
//! predict every seed, so it is only for devnets and tests. A real network runs commonware's
//! distributed key generation and resharing instead (`commonware-cryptography`'s
//! `bls12381::dkg`, driven by `commonware-glue::dkg`'s reshare actor), which produce the same
//! public polynomial and per-validator shares without any party knowing the secret; the files
//! below are the output format either way.

use crate::app::{PublicKey, Scheme};
use commonware_codec::{DecodeExt, Encode as _, Read as _};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion, Sharing};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_utils::ordered::Set;
use commonware_utils::N3f1;
use provernet_ledger::Genesis;
use provernet_types::{decode_exact, AccountId, Encode, Keypair};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

/// The most validators a network file may list (the ledger's own limit).
pub const VALIDATORS_MAX: usize = provernet_types::limits::VALIDATORS_MAX;

/// One validator as every node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// ed25519 public key (hex): the p2p identity and the ledger account.
    pub public_key: String,
    /// Where its p2p listener is reachable, `host:port`.
    pub address: String,
}

/// The genesis file of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFile {
    /// For humans; checked against the ledger genesis.
    pub chain_id: String,
    /// Who generated the threshold shares ("insecure dealer" or "dkg").
    pub key_origin: String,
    pub validators: Vec<ValidatorEntry>,
    /// The threshold group's public polynomial (hex of its canonical encoding).
    pub polynomial: String,
    /// The ledger genesis (hex of its canonical encoding): parameters, accounts, programs.
    pub ledger: String,
}

/// A validator's secrets. Keep it private: the seed controls its stake and votes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// 32-byte ed25519 seed (hex).
    pub seed: String,
    /// This validator's threshold share (hex).
    pub share: String,
}

/// What went wrong reading a network or key file.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl ToString) -> NetworkError {
    NetworkError::Invalid { field, reason: reason.to_string() }
}

fn unhex(field: &'static str, s: &str) -> Result<Vec<u8>, NetworkError> {
    hex::decode(s).map_err(|e| invalid(field, format!("not hex: {e}")))
}

/// A network as a node uses it, decoded and checked.
#[derive(Clone, Debug)]
pub struct Network {
    pub genesis: Genesis,
    pub validators: Vec<(PublicKey, String)>,
    pub participants: Set<PublicKey>,
    pub polynomial: Sharing<MinSig>,
    pub namespace: Vec<u8>,
}

impl Network {
    pub fn from_file(file: &NetworkFile) -> Result<Network, NetworkError> {
        if file.validators.is_empty() || file.validators.len() > VALIDATORS_MAX {
            return Err(invalid("validators", format!("need 1 to {VALIDATORS_MAX} validators")));
        }
        let genesis: Genesis = decode_exact(&unhex("ledger", &file.ledger)?, "ledger genesis")
            .map_err(|e| invalid("ledger", e))?;
        if genesis.params.chain_id.as_str() != file.chain_id {
            return Err(invalid(
                "chain_id",
                format!(
                    "`{}` but the ledger genesis says `{}`",
                    file.chain_id,
                    genesis.params.chain_id.as_str()
                ),
            ));
        }
        let mut validators = Vec::with_capacity(file.validators.len());
        for v in &file.validators {
            let bytes = unhex("validators.public_key", &v.public_key)?;
            let key = PublicKey::decode(bytes::Bytes::from(bytes))
                .map_err(|e| invalid("validators.public_key", format!("{}: {e}", v.public_key)))?;
            if v.address.is_empty() || v.address.len() > 255 {
                return Err(invalid("validators.address", "must be host:port"));
            }
            validators.push((key, v.address.clone()));
        }
        let participants =
            Set::try_from(validators.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
                .map_err(|_| invalid("validators", "a public key appears twice"))?;
        let ledger_validators: Vec<AccountId> = genesis.params.validators.iter().copied().collect();
        let mut keys: Vec<AccountId> = validators.iter().map(|(k, _)| account_of(k)).collect();
        keys.sort();
        let mut sorted = ledger_validators.clone();
        sorted.sort();
        if keys != sorted {
            return Err(invalid("validators", "differ from the ledger genesis validator accounts"));
        }
        let max = NonZeroU32::new(validators.len() as u32)
            .ok_or_else(|| invalid("validators", "empty"))?;
        let poly_bytes = unhex("polynomial", &file.polynomial)?;
        let polynomial = Sharing::<MinSig>::read_cfg(
            &mut bytes::Bytes::from(poly_bytes),
            &(max, ModeVersion::v0()),
        )
        .map_err(|e| invalid("polynomial", e))?;
        if polynomial.total().get() as usize != validators.len() {
            return Err(invalid("polynomial", "was dealt for a different number of validators"));
        }
        let namespace = format!("provernet/{}", file.chain_id).into_bytes();
        Ok(Network { genesis, validators, participants, polynomial, namespace })
    }

    /// The signing scheme of the validator holding `keys`.
    pub fn signer(&self, keys: &KeyFile) -> Result<(ed25519::PrivateKey, Scheme), NetworkError> {
        let private = private_key(&keys.seed)?;
        let share_bytes = unhex("share", &keys.share)?;
        let share =
            Share::decode(bytes::Bytes::from(share_bytes)).map_err(|e| invalid("share", e))?;
        if !self.participants.iter().any(|p| *p == private.public_key()) {
            return Err(invalid("seed", "this key is not one of the network's validators"));
        }
        let scheme = Scheme::signer(
            &self.namespace,
            self.participants.clone(),
            self.polynomial.clone(),
            share,
        )
        .ok_or_else(|| invalid("share", "does not belong to this key in this network"))?;
        Ok((private, scheme))
    }

    /// A scheme that verifies but does not sign (for nodes that are not validators).
    pub fn verifier(&self) -> Scheme {
        Scheme::verifier(&self.namespace, self.participants.clone(), self.polynomial.clone())
    }
}

/// The ledger account of a validator key (the same ed25519 key).
pub fn account_of(key: &PublicKey) -> AccountId {
    let bytes = key.encode();
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[..32]);
    AccountId(id)
}

/// The commonware private key with this hex seed.
pub fn private_key(seed_hex: &str) -> Result<ed25519::PrivateKey, NetworkError> {
    let seed: [u8; 32] =
        unhex("seed", seed_hex)?.try_into().map_err(|_| invalid("seed", "must be 32 bytes"))?;
    // The same 32-byte seed is the project's ledger keypair, so account and identity agree.
    ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&seed))
        .map_err(|e| invalid("seed", e))
}

/// Deals threshold shares to the validators with these seeds and addresses (**insecure**: the
/// dealer sees the group secret). `ledger.params.validators` is set to their accounts.
pub fn deal_network(
    rng: impl rand_core::CryptoRng,
    mut ledger: Genesis,
    validators: &[([u8; 32], String)],
) -> Result<(NetworkFile, Vec<KeyFile>), NetworkError> {
    if validators.is_empty() || validators.len() > VALIDATORS_MAX {
        return Err(invalid("validators", format!("need 1 to {VALIDATORS_MAX} validators")));
    }
    let keys: Vec<ed25519::PrivateKey> = validators
        .iter()
        .map(|(seed, _)| private_key(&hex::encode(seed)))
        .collect::<Result<_, _>>()?;
    let accounts: Vec<AccountId> =
        validators.iter().map(|(s, _)| Keypair::from_seed(*s).account()).collect();
    ledger.params.validators = provernet_types::BoundedVec::try_from_vec(accounts)
        .map_err(|e| invalid("validators", e))?;
    let participants = Set::try_from(keys.iter().map(|k| k.public_key()).collect::<Vec<_>>())
        .map_err(|_| invalid("validators", "a key appears twice"))?;
    let (output, shares) = deal::<MinSig, PublicKey, N3f1>(rng, Mode::NonZeroCounter, participants)
        .map_err(|e| invalid("validators", format!("dealing failed: {e:?}")))?;
    let mut key_files = Vec::with_capacity(keys.len());
    for (key, (seed, _)) in keys.iter().zip(validators) {
        let share = shares
            .get_value(&key.public_key())
            .ok_or_else(|| invalid("validators", "dealer produced no share for a validator"))?;
        key_files.push(KeyFile { seed: hex::encode(seed), share: hex::encode(share.encode()) });
    }
    let file = NetworkFile {
        chain_id: ledger.params.chain_id.as_str().to_owned(),
        key_origin: "insecure dealer".into(),
        validators: keys
            .iter()
            .zip(validators)
            .map(|(k, (_, address))| ValidatorEntry {
                public_key: hex::encode(k.public_key().encode()),
                address: address.clone(),
            })
            .collect(),
        polynomial: hex::encode(output.public().encode()),
        ledger: hex::encode(ledger.encode()),
    };
    Ok((file, key_files))
}

/// [`deal_network`] with fresh randomness from the operating system.
pub fn deal_network_random(
    ledger: Genesis,
    validators: &[([u8; 32], String)],
) -> Result<(NetworkFile, Vec<KeyFile>), NetworkError> {
    use rand::SeedableRng;
    // 32 bytes from the OS generator (the same source the project's key generation uses).
    let seed = Keypair::generate().seed();
    deal_network(rand::rngs::StdRng::from_seed(seed), ledger, validators)
}
