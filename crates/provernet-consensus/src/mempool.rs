//! The validator's pool of signed transactions waiting for a block.
//!
//! Admission decodes the transaction against the codec's bounds, checks the signature and chain
//! id, and checks the nonce against the last finalized state: a used nonce is refused, a nonce
//! more than [`MempoolConfig::nonce_window`] ahead is refused, and a client's transaction with
//! the account's next nonce is run through the ledger's own rules
//! ([`provernet_ledger::check_tx`]), so an unfunded job or an unknown program is refused before
//! it takes block space. A transaction gossiped by a peer skips that last check: the peer ran
//! it against its own state, which may be a block ahead of this one (an accept for an attempt
//! assigned by a block this validator has not finalized yet), and refusing it here would keep
//! it from every proposer but its first validator. Every limit is explicit: transactions and
//! bytes in all, and per account, so one account's flood cannot crowd out the others.
//!
//! Pending transactions that can apply next are gossiped again every few blocks
//! ([`Mempool::regossip`]), so one that a peer missed (it was down, or partitioned) still
//! reaches every proposer.
//!
//! Spam: an account's pending fee-paying transactions must all be affordable (its balance
//! covers the chain's `tx_fee` for each), so an account with nothing cannot queue anything;
//! transactions that cannot apply next because a nonce below them is missing (*gapped*) are
//! capped per account ([`MempoolConfig::gapped_per_account`]) and dropped after
//! [`MempoolConfig::gapped_expiry_blocks`]; and a quarter of the pool is kept for
//! transactions with their account's next nonce, so a flood of future nonces never locks
//! honest transactions out.
//!
//! A transaction leaves the pool when a finalized block includes it (a transaction the ledger
//! refused in the block does not use its nonce, and is dropped rather than retried forever), or
//! when a finalized block used its nonce.

use provernet_ledger::{check_tx, State, TxError};
use provernet_types::{
    AccountId, Encode, MicroCredits, Nonce, SignedTx, TxDecodeError, TxHash, VerifiedTx,
};
use std::collections::BTreeMap;

/// Limits of one validator's pool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
    pub per_account: usize,
    /// How far past an account's next nonce a queued transaction may be.
    pub nonce_window: u64,
    /// Most transactions per account that cannot apply next because a nonce below them is
    /// missing.
    pub gapped_per_account: usize,
    /// Finalized blocks after which a transaction still gapped is dropped.
    pub gapped_expiry_blocks: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_txs: 100_000,
            max_bytes: 256 << 20,
            per_account: 1024,
            nonce_window: 1024,
            gapped_per_account: 16,
            gapped_expiry_blocks: 32,
        }
    }
}

/// Why a transaction was not admitted. Each maps to a stable API error code.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction rejected: {0}")]
    Decode(#[from] TxDecodeError),
    #[error("transaction rejected by the ledger: {0}")]
    Ledger(TxError),
    #[error("nonce {got} of account {account} is already used; the next nonce is {next}")]
    StaleNonce { account: AccountId, got: Nonce, next: Nonce },
    #[error("nonce {got} of account {account} is too far ahead of its next nonce {next} (window {window})")]
    NonceTooFar { account: AccountId, got: Nonce, next: Nonce, window: u64 },
    #[error("another transaction with nonce {nonce} of account {account} is already pending")]
    NonceTaken { account: AccountId, nonce: Nonce },
    #[error(
        "account {account} already has {limit} pending transactions; wait for some to finalize"
    )]
    AccountFull { account: AccountId, limit: usize },
    #[error("the mempool is full ({txs} transactions, {bytes} bytes); retry later")]
    Full { txs: usize, bytes: usize },
    #[error("account {account} already has {limit} pending transactions waiting for a missing nonce below them; send that nonce first")]
    TooManyGapped { account: AccountId, limit: usize },
    #[error("account {account} holds {have}, not enough for the transaction fees of its {pending} pending transactions and this one ({need})")]
    CannotPayFees { account: AccountId, pending: usize, need: MicroCredits, have: MicroCredits },
    /// A blob the transaction names could not be obtained.
    #[error("{0}")]
    Blob(provernet_blobs::BlobError),
}

impl AdmitError {
    /// A stable, machine-readable code for API errors: for a transaction the ledger refuses,
    /// the ledger's own code.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Decode(TxDecodeError::Signature(_)) => "bad_signature",
            AdmitError::Decode(_) => "malformed_transaction",
            AdmitError::Ledger(e) => e.code(),
            AdmitError::StaleNonce { .. } => "stale_nonce",
            AdmitError::NonceTooFar { .. } => "nonce_too_far",
            AdmitError::NonceTaken { .. } => "nonce_taken",
            AdmitError::AccountFull { .. } => "account_rate_limited",
            AdmitError::Full { .. } => "mempool_full",
            AdmitError::TooManyGapped { .. } => "too_many_gapped_nonces",
            AdmitError::CannotPayFees { .. } => "insufficient_balance_for_fees",
            AdmitError::Blob(e) => e.code(),
        }
    }
}

/// Where a transaction came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    /// A client of this validator's API: checked against the ledger's rules.
    Client,
    /// Another validator's gossip: it checked the ledger's rules against its own state.
    Peer,
}

/// What admission did with a valid transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admitted {
    /// New to this pool.
    Added,
    /// Already pending here (e.g. gossiped back); nothing changed.
    Known,
}

#[derive(Debug)]
struct Entry {
    tx: VerifiedTx,
    bytes: usize,
    /// The finalized height when it was last gossiped (or admitted).
    gossiped: u64,
    /// The finalized height when it was admitted.
    admitted: u64,
}

/// A bounded pool ordered by account and nonce.
#[derive(Debug, Default)]
pub struct Mempool {
    cfg: MempoolConfig,
    by_nonce: BTreeMap<(AccountId, Nonce), Entry>,
    by_hash: BTreeMap<TxHash, (AccountId, Nonce)>,
    per_account: BTreeMap<AccountId, usize>,
    bytes: usize,
}

impl Mempool {
    pub fn new(cfg: MempoolConfig) -> Mempool {
        Mempool { cfg, ..Mempool::default() }
    }

    pub fn len(&self) -> usize {
        self.by_nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_nonce.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The verified transaction with this hash, if pending here (its signature was checked on
    /// admission, so block execution need not check it again).
    pub fn verified(&self, hash: &TxHash) -> Option<VerifiedTx> {
        let key = self.by_hash.get(hash)?;
        self.by_nonce.get(key).map(|e| e.tx.clone())
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The checks of admission that need neither the pool nor the state: decodes `bytes`
    /// within the codec's bounds and checks the signature for `chain_id`. The chain runs it
    /// before taking its lock, so admissions check signatures in parallel and nothing waits on
    /// them.
    pub fn verify(chain_id: &str, bytes: &[u8]) -> Result<VerifiedTx, AdmitError> {
        Ok(SignedTx::decode(bytes)?.verify(chain_id)?)
    }

    /// Decodes, verifies and admits one encoded transaction against the finalized `state`.
    pub fn admit(
        &mut self,
        state: &State,
        chain_id: &str,
        bytes: &[u8],
        source: Source,
    ) -> Result<(TxHash, Admitted), AdmitError> {
        let tx = Self::verify(chain_id, bytes)?;
        self.admit_verified(state, tx, bytes.len(), source)
    }

    /// Admits a transaction [`Mempool::verify`] checked, `bytes` long encoded, against the
    /// finalized `state`.
    pub fn admit_verified(
        &mut self,
        state: &State,
        tx: VerifiedTx,
        bytes: usize,
        source: Source,
    ) -> Result<(TxHash, Admitted), AdmitError> {
        let hash = tx.hash();
        if self.check_verified(state, &tx, bytes, source)? == Admitted::Known {
            return Ok((hash, Admitted::Known));
        }
        let (account, nonce) = (tx.tx().signer, tx.tx().nonce);
        self.bytes += bytes;
        *self.per_account.entry(account).or_default() += 1;
        self.by_hash.insert(hash, (account, nonce));
        let height = state.height().0;
        let entry = Entry { tx, bytes, gossiped: height, admitted: height };
        self.by_nonce.insert((account, nonce), entry);
        Ok((hash, Admitted::Added))
    }

    /// Every check [`Mempool::admit_verified`] makes, without admitting: `Known` when the
    /// transaction is already pending, `Added` when it would be admitted. With
    /// [`Mempool::verify`] first, run before anything is fetched for a transaction, so only one
    /// that could be admitted makes a validator fetch its blobs.
    pub fn check_verified(
        &self,
        state: &State,
        tx: &VerifiedTx,
        bytes: usize,
        source: Source,
    ) -> Result<Admitted, AdmitError> {
        if self.by_hash.contains_key(&tx.hash()) {
            return Ok(Admitted::Known);
        }
        let (account, nonce) = (tx.tx().signer, tx.tx().nonce);
        let next = state
            .account(&account)
            .map(|a| a.nonce)
            .ok_or(AdmitError::Ledger(TxError::UnknownAccount(account)))?;
        if nonce < next {
            return Err(AdmitError::StaleNonce { account, got: nonce, next });
        }
        if nonce.0 - next.0 >= self.cfg.nonce_window {
            return Err(AdmitError::NonceTooFar {
                account,
                got: nonce,
                next,
                window: self.cfg.nonce_window,
            });
        }
        if nonce == next && source == Source::Client {
            check_tx(state, tx).map_err(AdmitError::Ledger)?;
        }
        if self.by_nonce.contains_key(&(account, nonce)) {
            return Err(AdmitError::NonceTaken { account, nonce });
        }
        let pending = self.per_account.get(&account).copied().unwrap_or(0);
        if pending >= self.cfg.per_account {
            return Err(AdmitError::AccountFull { account, limit: self.cfg.per_account });
        }
        // A transaction that cannot apply next keeps a quarter of the pool free for those
        // that can.
        let (max_txs, max_bytes) = if nonce == next {
            (self.cfg.max_txs, self.cfg.max_bytes)
        } else {
            (self.cfg.max_txs / 4 * 3, self.cfg.max_bytes / 4 * 3)
        };
        if self.by_nonce.len() >= max_txs || self.bytes + bytes > max_bytes {
            return Err(AdmitError::Full { txs: self.by_nonce.len(), bytes: self.bytes });
        }
        let run = self.run_from(account, next);
        if nonce.0 > next.0 + run as u64 && pending - run >= self.cfg.gapped_per_account {
            return Err(AdmitError::TooManyGapped { account, limit: self.cfg.gapped_per_account });
        }
        let fee = state.params().tx_fee;
        if tx.tx().body.pays_fee() && fee.0 > 0 {
            let paying = self
                .by_nonce
                .range((account, Nonce(0))..=(account, Nonce(u64::MAX)))
                .filter(|(_, e)| e.tx.tx().body.pays_fee())
                .count();
            let need = MicroCredits(fee.0.saturating_mul(paying as u64 + 1));
            let have = state.account(&account).map_or(MicroCredits(0), |a| a.balance);
            if have < need {
                return Err(AdmitError::CannotPayFees { account, pending: paying, need, have });
            }
        }
        Ok(Admitted::Added)
    }

    /// How many of `account`'s pending transactions have consecutive nonces from `next`.
    fn run_from(&self, account: AccountId, next: Nonce) -> usize {
        let mut expect = next;
        let mut run = 0;
        for ((_, nonce), _) in self.by_nonce.range((account, next)..=(account, Nonce(u64::MAX))) {
            if *nonce != expect {
                break;
            }
            run += 1;
            expect = Nonce(expect.0 + 1);
        }
        run
    }

    /// For each account, its pending transactions with consecutive nonces from the account's
    /// next nonce in `state`, stopping before the first that is not `ready`.
    fn executable<'a>(
        &'a self,
        state: &State,
        ready: &dyn Fn(&VerifiedTx) -> bool,
    ) -> Vec<Vec<&'a Entry>> {
        let mut chains: Vec<Vec<&Entry>> = Vec::new();
        for account in self.per_account.keys() {
            let Some(mut next) = state.account(account).map(|a| a.nonce) else { continue };
            let mut chain = Vec::new();
            for ((_, nonce), entry) in
                self.by_nonce.range((*account, next)..=(*account, Nonce(u64::MAX)))
            {
                if *nonce != next || !ready(&entry.tx) {
                    break;
                }
                chain.push(entry);
                next = Nonce(next.0 + 1);
            }
            if !chain.is_empty() {
                chains.push(chain);
            }
        }
        chains
    }

    /// Transactions for a block built on `state`: for each account, its pending transactions
    /// with consecutive nonces from the account's next nonce that are `ready` (their blobs are
    /// available), taken round-robin across accounts (in account order, so the choice is
    /// reproducible) until `max_txs` or `max_bytes`.
    pub fn select(
        &self,
        state: &State,
        max_txs: usize,
        max_bytes: usize,
        ready: &dyn Fn(&VerifiedTx) -> bool,
    ) -> Vec<VerifiedTx> {
        let chains = self.executable(state, ready);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for round in 0.. {
            let mut any = false;
            for chain in &chains {
                let Some(entry) = chain.get(round) else { continue };
                any = true;
                if out.len() >= max_txs || bytes + entry.bytes > max_bytes {
                    return out;
                }
                bytes += entry.bytes;
                out.push(entry.tx.clone());
            }
            if !any {
                break;
            }
        }
        out
    }

    /// Transactions to gossip again at finalized height `height`: those that could apply next
    /// on `state` and were last gossiped `every` blocks ago or more, at most `max`, in account
    /// order. Each is marked as gossiped now.
    pub fn regossip(&mut self, state: &State, height: u64, every: u64, max: usize) -> Vec<Vec<u8>> {
        let due: Vec<(AccountId, Nonce)> = self
            .executable(state, &|_| true)
            .into_iter()
            .flatten()
            .filter(|e| e.gossiped + every <= height)
            .take(max)
            .map(|e| (e.tx.tx().signer, e.tx.tx().nonce))
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            if let Some(e) = self.by_nonce.get_mut(&key) {
                e.gossiped = height;
                out.push(e.tx.signed().encode());
            }
        }
        out
    }

    /// The blobs named by pending transactions, at most `max` of them.
    pub fn pending_blobs(&self, max: usize) -> Vec<provernet_types::BlobHash> {
        self.by_nonce
            .values()
            .flat_map(|e| e.tx.tx().body.blobs())
            .map(|b| b.hash)
            .take(max)
            .collect()
    }

    /// Removes transactions by hash (those a finalized block included).
    pub fn remove(&mut self, hashes: impl IntoIterator<Item = TxHash>) {
        for hash in hashes {
            if let Some(key) = self.by_hash.get(&hash).copied() {
                self.remove_key(key);
            }
        }
    }

    fn remove_key(&mut self, key: (AccountId, Nonce)) {
        if let Some(entry) = self.by_nonce.remove(&key) {
            self.bytes -= entry.bytes;
            self.by_hash.remove(&entry.tx.hash());
            if let Some(n) = self.per_account.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.per_account.remove(&key.0);
                }
            }
        }
    }

    /// Drops `account`'s pending transactions when none has its next nonce `next`: they can
    /// never apply. This happens when a transaction of the account failed in a block (a failed
    /// transaction does not use its nonce), leaving a hole below the ones queued after it. The
    /// client learns it from their status (unknown again) and re-signs them. Returns how many
    /// were dropped.
    pub fn evict_gapped(&mut self, account: AccountId, next: Nonce) -> usize {
        if self.by_nonce.contains_key(&(account, next)) {
            return 0;
        }
        let stuck: Vec<(AccountId, Nonce)> = self
            .by_nonce
            .range((account, next)..=(account, Nonce(u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for key in &stuck {
            self.remove_key(*key);
        }
        stuck.len()
    }

    /// Drops every transaction whose nonce `state` has used (after a block is finalized): per
    /// pending account, the range below its next nonce; and every transaction that has waited
    /// gapped (a nonce below it missing) for [`MempoolConfig::gapped_expiry_blocks`].
    pub fn prune(&mut self, state: &State) {
        let height = state.height().0;
        let expiry = self.cfg.gapped_expiry_blocks;
        let mut stale: Vec<(AccountId, Nonce)> = Vec::new();
        for account in self.per_account.keys() {
            let Some(next) = state.account(account).map(|a| a.nonce) else { continue };
            stale.extend(
                self.by_nonce.range((*account, Nonce(0))..(*account, next)).map(|(k, _)| *k),
            );
            let run = self.run_from(*account, next) as u64;
            let gapped =
                (*account, Nonce(next.0.saturating_add(run)))..=(*account, Nonce(u64::MAX));
            stale.extend(
                self.by_nonce
                    .range(gapped)
                    .filter(|(_, e)| e.admitted + expiry <= height)
                    .map(|(k, _)| *k),
            );
        }
        for key in stale {
            self.remove_key(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provernet_ledger::testkit::test_genesis;
    use provernet_types::{JobId, Keypair, MicroCredits, Transaction, TxBody};

    #[test]
    fn transactions_behind_a_hole_are_evicted() {
        let genesis = test_genesis(0, |_| {});
        let state = provernet_ledger::genesis(&genesis).expect("genesis");
        let alice = Keypair::insecure_from_label("alice");
        let bob = Keypair::insecure_from_label("bob").account();
        let mut pool = Mempool::new(MempoolConfig::default());
        let tx = |nonce: u64| {
            let body = TxBody::Transfer { to: bob, amount: MicroCredits(1) };
            Transaction { signer: alice.account(), nonce: Nonce(nonce), body }
                .sign(&alice, "test")
                .encode()
        };
        let mut hashes = Vec::new();
        for n in 0..3 {
            hashes.push(pool.admit(&state, "test", &tx(n), Source::Client).expect("admitted").0);
        }
        // Nonce 0 is pending: nothing is stuck.
        assert_eq!(pool.evict_gapped(alice.account(), Nonce(0)), 0);
        assert_eq!(pool.len(), 3);
        // Nonce 0 was included but failed: the chain still expects 0, and 1 and 2 never can.
        pool.remove([hashes[0]]);
        assert_eq!(pool.evict_gapped(alice.account(), Nonce(0)), 2);
        assert!(pool.is_empty() && !pool.contains(&hashes[1]) && !pool.contains(&hashes[2]));
    }

    #[test]
    fn a_peer_may_gossip_a_transaction_this_validator_is_a_block_behind_on() {
        let genesis = test_genesis(0, |_| {});
        let state = provernet_ledger::genesis(&genesis).expect("genesis");
        let alice = Keypair::insecure_from_label("alice");
        // An accept for an attempt this validator's finalized state does not know yet.
        let body = TxBody::AcceptJob { job: JobId([7; 32]), attempt: 0 };
        let tx = Transaction { signer: alice.account(), nonce: Nonce(0), body }
            .sign(&alice, "test")
            .encode();
        let mut pool = Mempool::new(MempoolConfig::default());
        let e = pool.admit(&state, "test", &tx, Source::Client).expect_err("a client's is checked");
        assert!(matches!(e, AdmitError::Ledger(_)), "{e}");
        let (hash, _) = pool.admit(&state, "test", &tx, Source::Peer).expect("a peer's is not");
        assert!(pool.contains(&hash));
        // It is gossiped again every two blocks while it waits, not more often.
        assert!(pool.regossip(&state, 1, 2, 10).is_empty());
        assert_eq!(pool.regossip(&state, 2, 2, 10), vec![tx.clone()]);
        assert!(pool.regossip(&state, 3, 2, 10).is_empty());
        assert_eq!(pool.regossip(&state, 4, 2, 10), vec![tx]);
    }

    /// Regression, attack 4 of issue 14 ("the mempool filled for good"): accounts funded with
    /// 1 µc signed nonces 1 to 1023 but never 0, and 100,000 gapped transactions locked every
    /// honest transaction out with `mempool_full`.
    #[test]
    fn the_mempool_filled_for_good_attack_is_capped_and_expires() {
        let attackers: Vec<Keypair> =
            (0..100).map(|i| Keypair::insecure_from_label(&format!("attacker-{i}"))).collect();
        let mut genesis = test_genesis(0, |p| p.tx_fee = MicroCredits(100));
        let mut accounts = genesis.accounts.clone().into_vec();
        accounts.extend(attackers.iter().map(|k| (k.account(), MicroCredits(1))));
        genesis.accounts = provernet_types::BoundedVec::try_from_vec(accounts).expect("few");
        let mut state = provernet_ledger::genesis(&genesis).expect("genesis");
        let mut pool = Mempool::new(MempoolConfig::default());
        let sign = |key: &Keypair, nonce: u64, body: TxBody| {
            Transaction { signer: key.account(), nonce: Nonce(nonce), body }
                .sign(key, "test")
                .encode()
        };
        let (mut refused_fees, mut refused_gaps, mut admitted) = (0, 0, 0);
        for key in &attackers {
            for nonce in 1..=100u64 {
                // Transfers pay the fee, which 1 µc cannot; votes pay none but are gapped.
                let body = if nonce % 2 == 0 {
                    TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(1) }
                } else {
                    TxBody::Vote {
                        job: JobId([7; 32]),
                        attempt: 0,
                        verdict: provernet_types::Verdict::Valid,
                    }
                };
                match pool.admit(&state, "test", &sign(key, nonce, body), Source::Client) {
                    Ok(_) => admitted += 1,
                    Err(AdmitError::CannotPayFees { .. }) => refused_fees += 1,
                    Err(AdmitError::TooManyGapped { .. }) => refused_gaps += 1,
                    Err(e) => panic!("unexpected refusal: {e}"),
                }
            }
        }
        assert_eq!(admitted, 100 * 16, "at most 16 gapped transactions per account");
        assert!(refused_fees > 0 && refused_gaps > 0);
        // An honest transaction still gets in, and so does one that cannot apply next.
        let alice = Keypair::insecure_from_label("alice");
        let transfer = TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(1) };
        assert!(pool
            .admit(&state, "test", &sign(&alice, 0, transfer.clone()), Source::Client)
            .is_ok());
        // Gapped transactions are dropped once they have waited long enough.
        let ctx = |h: u64| provernet_ledger::BlockContext {
            height: provernet_types::Height(h),
            randomness: [0; 32],
            time: provernet_types::Millis(h),
        };
        for h in 1..=32 {
            provernet_ledger::apply_block(&mut state, &ctx(h), &[]).expect("empty block");
        }
        pool.prune(&state);
        assert_eq!(pool.len(), 1, "only the honest transaction is left");
    }
}
