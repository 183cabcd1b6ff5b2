//! Persist ledger state and blocks in redb; reopen and replay to the same state root.
//!
//! One redb database per node holds:
//! - `state`: every ledger record, keyed by its 33-byte state key, as of the last block;
//! - `blocks`: every applied block by height (context, transactions, resulting root);
//! - `meta`: the genesis description.
//!
//! [`Store::commit_block`] writes a block and the records it changed in **one** redb write
//! transaction with immediate durability, so after a crash the database holds either the
//! whole block or none of it, and the state always matches the last stored block's root.
//! [`Store::open`] checks exactly that; [`Store::replay`] re-executes every block from genesis
//! and checks each root.

use provernet_ledger::{
    apply_block, genesis, BlockContext, BlockOutput, ChangeSet, Genesis, LoadError, State,
};
use provernet_types::limits::BLOCK_TXS_MAX;
use provernet_types::{
    codec_struct, decode_exact, BlockHash, BoundedVec, CodecError, Encode, Height, Millis,
    SignedTx, StateRoot, TxDecodeError, VerifiedTx,
};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const GENESIS_KEY: &str = "genesis";

/// A block as stored: what the ledger needs to re-execute it, and the root it produced.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockRecord {
    /// The consensus block's digest (all zero for blocks applied without consensus, as in
    /// benchmarks and tests).
    pub hash: BlockHash,
    pub height: Height,
    pub randomness: [u8; 32],
    pub time: Millis,
    pub txs: BoundedVec<SignedTx, BLOCK_TXS_MAX>,
    pub root: StateRoot,
}
codec_struct!(BlockRecord { hash, height, randomness, time, txs, root });

impl BlockRecord {
    pub fn context(&self) -> BlockContext {
        BlockContext { height: self.height, randomness: self.randomness, time: self.time }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: Box<redb::Error> },
    #[error("database {0} already exists; open it instead of creating it")]
    Exists(PathBuf),
    #[error("database {0} has no genesis; it was not created by provernet")]
    NoGenesis(PathBuf),
    #[error("database {0} was created from another genesis; use a fresh data directory for this network")]
    OtherGenesis(PathBuf),
    #[error("invalid genesis: {0}")]
    Genesis(#[from] provernet_ledger::GenesisError),
    #[error("stored {what} is corrupt: {source}")]
    Corrupt { what: String, source: CodecError },
    #[error("stored state cannot be loaded: {0}")]
    Load(#[from] LoadError),
    #[error("stored state root {state} does not match block {height}'s root {block}")]
    RootMismatch { height: Height, state: StateRoot, block: StateRoot },
    #[error("replay diverged at height {height}: stored root {stored}, recomputed {replayed}")]
    ReplayDiverged { height: Height, stored: StateRoot, replayed: StateRoot },
    #[error("stored block {height} holds a transaction that does not verify: {source}")]
    BadStoredTx { height: Height, source: TxDecodeError },
    #[error("stored block {height} cannot be applied: {source}")]
    BadStoredBlock { height: Height, source: provernet_ledger::BlockError },
    #[error("block {height} does not follow the stored tip {tip}")]
    NotNext { height: Height, tip: Height },
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.path.clone(), source: Box::new(e.into()) }
    }

    /// Creates a new database at `path` holding the genesis state.
    pub fn create(path: &Path, g: &Genesis) -> Result<(Store, State), StoreError> {
        if path.exists() {
            return Err(StoreError::Exists(path.to_owned()));
        }
        let state = genesis(g)?;
        let db = Database::create(path)
            .map_err(|e| StoreError::Db { path: path.to_owned(), source: Box::new(e.into()) })?;
        let store = Store { db, path: path.to_owned() };
        let records = provernet_ledger::state::records(&state);
        let w = store.db.begin_write().map_err(|e| store.db_err(e))?;
        {
            let mut meta = w.open_table(META).map_err(|e| store.db_err(e))?;
            meta.insert(GENESIS_KEY, g.encode().as_slice()).map_err(|e| store.db_err(e))?;
            let mut t = w.open_table(STATE).map_err(|e| store.db_err(e))?;
            for (k, v) in &records {
                t.insert(k.as_slice(), v.as_slice()).map_err(|e| store.db_err(e))?;
            }
            w.open_table(BLOCKS).map_err(|e| store.db_err(e))?;
        }
        w.commit().map_err(|e| store.db_err(e))?;
        Ok((store, state))
    }

    /// Opens an existing database and loads its state, checking it against the last block.
    pub fn open(path: &Path) -> Result<(Store, State), StoreError> {
        let db = Database::open(path)
            .map_err(|e| StoreError::Db { path: path.to_owned(), source: Box::new(e.into()) })?;
        let store = Store { db, path: path.to_owned() };
        let state = store.load_state()?;
        if let Some(tip) = store.tip()? {
            if tip.root != state.root() || tip.height != state.height() {
                return Err(StoreError::RootMismatch {
                    height: tip.height,
                    state: state.root(),
                    block: tip.root,
                });
            }
        } else {
            let fresh = genesis(&store.genesis()?)?;
            if fresh.root() != state.root() {
                return Err(StoreError::RootMismatch {
                    height: Height(0),
                    state: state.root(),
                    block: fresh.root(),
                });
            }
        }
        Ok((store, state))
    }

    fn load_state(&self) -> Result<State, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(STATE).map_err(|e| self.db_err(e))?;
        let mut records = Vec::with_capacity(t.len().map_err(|e| self.db_err(e))? as usize);
        for entry in t.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = entry.map_err(|e| self.db_err(e))?;
            records.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(State::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?)
    }

    pub fn genesis(&self) -> Result<Genesis, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(META).map_err(|e| self.db_err(e))?;
        let bytes = t
            .get(GENESIS_KEY)
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| StoreError::NoGenesis(self.path.clone()))?;
        decode_exact(bytes.value(), "genesis")
            .map_err(|source| StoreError::Corrupt { what: "genesis".into(), source })
    }

    /// The last stored block, if any.
    pub fn tip(&self) -> Result<Option<BlockRecord>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let last = t.last().map_err(|e| self.db_err(e))?;
        last.map(|(_, v)| decode_block(v.value(), "tip")).transpose()
    }

    pub fn block(&self, height: Height) -> Result<Option<BlockRecord>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        let v = t.get(height.0).map_err(|e| self.db_err(e))?;
        v.map(|v| decode_block(v.value(), "block")).transpose()
    }

    /// Writes a block and the state records it changed in one durable transaction.
    pub fn commit_block(&self, block: &BlockRecord, changes: &ChangeSet) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut blocks = w.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
            let tip =
                blocks.last().map_err(|e| self.db_err(e))?.map(|(k, _)| k.value()).unwrap_or(0);
            if block.height.0 != tip + 1 {
                return Err(StoreError::NotNext { height: block.height, tip: Height(tip) });
            }
            blocks.insert(block.height.0, block.encode().as_slice()).map_err(|e| self.db_err(e))?;
            let mut t = w.open_table(STATE).map_err(|e| self.db_err(e))?;
            for (key, value) in changes {
                let k = key.to_bytes();
                match value {
                    Some(v) => t.insert(k.as_slice(), v.as_slice()).map(drop),
                    None => t.remove(k.as_slice()).map(drop),
                }
                .map_err(|e| self.db_err(e))?;
            }
        }
        w.commit().map_err(|e| self.db_err(e))
    }

    /// Applies `txs` as the next block and stores it. The usual way a node advances.
    pub fn apply_and_commit(
        &self,
        state: &mut State,
        ctx: &BlockContext,
        txs: &[VerifiedTx],
    ) -> Result<BlockOutput, StoreError> {
        let out = apply_block(state, ctx, txs)
            .map_err(|source| StoreError::BadStoredBlock { height: ctx.height, source })?;
        let record = BlockRecord {
            hash: BlockHash([0; 32]),
            height: ctx.height,
            randomness: ctx.randomness,
            time: ctx.time,
            txs: BoundedVec::try_from_vec(txs.iter().map(|t| t.signed().clone()).collect())
                .map_err(|source| StoreError::Corrupt { what: "block".into(), source })?,
            root: out.root,
        };
        self.commit_block(&record, &out.changes)?;
        Ok(out)
    }

    /// Re-executes every stored block from genesis, re-checking signatures, and returns the
    /// state it ends with. Fails at the first root that differs from the stored one.
    pub fn replay(&self) -> Result<State, StoreError> {
        let mut state = genesis(&self.genesis()?)?;
        let chain_id = state.chain_id().to_owned();
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(BLOCKS).map_err(|e| self.db_err(e))?;
        for entry in t.iter().map_err(|e| self.db_err(e))? {
            let (_, v) = entry.map_err(|e| self.db_err(e))?;
            let block = decode_block(v.value(), "block")?;
            let txs = block
                .txs
                .iter()
                .map(|t| t.clone().verify(&chain_id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| StoreError::BadStoredTx { height: block.height, source })?;
            let out = apply_block(&mut state, &block.context(), &txs)
                .map_err(|source| StoreError::BadStoredBlock { height: block.height, source })?;
            if out.root != block.root {
                return Err(StoreError::ReplayDiverged {
                    height: block.height,
                    stored: block.root,
                    replayed: out.root,
                });
            }
        }
        Ok(state)
    }
}

fn decode_block(bytes: &[u8], what: &str) -> Result<BlockRecord, StoreError> {
    decode_exact(bytes, "block").map_err(|source| StoreError::Corrupt { what: what.into(), source })
}
