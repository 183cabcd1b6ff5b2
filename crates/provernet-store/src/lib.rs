//! Persist ledger state and blocks in redb; reopen and replay to the same state root.
//!
//! One redb database per node holds:
//! - `state`: every ledger record, keyed by its 33-byte state key, as of the last block;
//! - `blocks`: every applied block by height (context, transactions, resulting root);
//! - `meta`: the genesis description;
//! - `archive`: every record that left the live state (settled jobs, finished workflows; see
//!   [`provernet_ledger::archive`]) by its state key, with its place in the archive and the
//!   block that archived it; `archive_order` (place → key) and `archive_by_requester`
//!   (requester ‖ place → key) page through it, newest first. The state root commits to the
//!   archive through the peaks in the ledger's `Meta`; these tables are what the API serves.
//!
//! [`Store::commit_block`] writes a block and the records it changed in **one** redb write
//! transaction with immediate durability, so after a crash the database holds either the
//! whole block or none of it, and the state always matches the last stored block's root.
//! [`Store::open`] checks exactly that; [`Store::replay`] re-executes every block from genesis
//! and checks each root.

use provernet_ledger::{
    apply_block, genesis, Archived, BlockContext, BlockOutput, ChangeSet, Genesis, Job, LoadError,
    State, StateKey, Table, Workflow,
};
use provernet_types::limits::BLOCK_TXS_MAX;
use provernet_types::{
    codec_struct, decode_exact, AccountId, BlockHash, BoundedVec, CodecError, Encode, Height,
    JobId, Millis, SignedTx, StateRoot, TxDecodeError, VerifiedTx, WorkflowId,
};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ARCHIVE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("archive");
const ARCHIVE_ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("archive_order");
const ARCHIVE_BY_REQUESTER: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("archive_by_requester");
const GENESIS_KEY: &str = "genesis";

/// A record as the archive holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArchivedRecord {
    pub key: StateKey,
    /// Its place in the archive (0 for the first record ever archived).
    pub index: u64,
    /// The block that archived it.
    pub height: Height,
    /// The record's canonical encoding, as the live state last held it.
    pub record: Vec<u8>,
}

impl ArchivedRecord {
    /// The record as its type (a [`Job`] or a [`Workflow`], by `key.table`).
    pub fn decode<T: provernet_types::Decode>(&self) -> Result<T, StoreError> {
        decode_exact(&self.record, "archived record")
            .map_err(|source| StoreError::Corrupt { what: "archived record".into(), source })
    }
}

/// One page of the archive, newest first.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ArchivePage {
    pub records: Vec<ArchivedRecord>,
    /// Where the next page starts (pass it as `before`), when the archive goes on.
    pub next: Option<u64>,
}

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
        store.ensure_archive_tables()?;
        Ok((store, state))
    }

    /// Creates the archive's tables if missing, so readers never meet a missing table.
    fn ensure_archive_tables(&self) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|e| self.db_err(e))?;
        w.open_table(ARCHIVE).map_err(|e| self.db_err(e))?;
        w.open_table(ARCHIVE_ORDER).map_err(|e| self.db_err(e))?;
        w.open_table(ARCHIVE_BY_REQUESTER).map_err(|e| self.db_err(e))?;
        w.commit().map_err(|e| self.db_err(e))
    }

    /// Opens an existing database and loads its state, checking it against the last block.
    pub fn open(path: &Path) -> Result<(Store, State), StoreError> {
        let db = Database::open(path)
            .map_err(|e| StoreError::Db { path: path.to_owned(), source: Box::new(e.into()) })?;
        let store = Store { db, path: path.to_owned() };
        store.ensure_archive_tables()?;
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

    /// Writes a block, the state records it changed and the records it archived in one
    /// durable transaction.
    pub fn commit_block(
        &self,
        block: &BlockRecord,
        changes: &ChangeSet,
        archived: &[Archived],
    ) -> Result<(), StoreError> {
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
            let mut archive = w.open_table(ARCHIVE).map_err(|e| self.db_err(e))?;
            let mut order = w.open_table(ARCHIVE_ORDER).map_err(|e| self.db_err(e))?;
            let mut by_requester =
                w.open_table(ARCHIVE_BY_REQUESTER).map_err(|e| self.db_err(e))?;
            for a in archived {
                let key = a.key.to_bytes();
                let mut value = Vec::with_capacity(16 + a.record.len());
                value.extend_from_slice(&a.index.to_be_bytes());
                value.extend_from_slice(&a.height.0.to_be_bytes());
                value.extend_from_slice(&a.record);
                archive.insert(key.as_slice(), value.as_slice()).map_err(|e| self.db_err(e))?;
                order.insert(a.index, key.as_slice()).map_err(|e| self.db_err(e))?;
                let by = requester_key(&a.requester, a.index);
                by_requester.insert(by.as_slice(), key.as_slice()).map_err(|e| self.db_err(e))?;
            }
        }
        w.commit().map_err(|e| self.db_err(e))
    }

    /// An archived job and its place in the archive.
    pub fn archived_job(&self, id: &JobId) -> Result<Option<(u64, Job)>, StoreError> {
        let key = StateKey { table: Table::Job, id: id.0 };
        self.archived(&key)?.map(|a| Ok((a.index, a.decode()?))).transpose()
    }

    /// An archived workflow.
    pub fn archived_workflow(&self, id: &WorkflowId) -> Result<Option<Workflow>, StoreError> {
        let key = StateKey { table: Table::Workflow, id: id.0 };
        self.archived(&key)?.map(|a| a.decode()).transpose()
    }

    /// An archived record by its state key.
    pub fn archived(&self, key: &StateKey) -> Result<Option<ArchivedRecord>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let t = r.open_table(ARCHIVE).map_err(|e| self.db_err(e))?;
        let v = t.get(key.to_bytes().as_slice()).map_err(|e| self.db_err(e))?;
        v.map(|v| decode_archived(*key, v.value())).transpose()
    }

    /// Archived records of `table`, newest first, from before place `before` (from the newest
    /// when `None`), only `requester`'s when given. Looks at most at `scan` records, so a page
    /// costs the same however large the archive: fewer than `scan` records come back when
    /// others of the range are of another table, and `next` says where to go on.
    pub fn archive_page(
        &self,
        table: Table,
        requester: Option<&AccountId>,
        before: Option<u64>,
        scan: usize,
    ) -> Result<ArchivePage, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let archive = r.open_table(ARCHIVE).map_err(|e| self.db_err(e))?;
        let end = before.unwrap_or(u64::MAX);
        let mut keys: Vec<(u64, Vec<u8>)> = Vec::new();
        match requester {
            None => {
                let order = r.open_table(ARCHIVE_ORDER).map_err(|e| self.db_err(e))?;
                for entry in order.range(..end).map_err(|e| self.db_err(e))?.rev().take(scan) {
                    let (i, k) = entry.map_err(|e| self.db_err(e))?;
                    keys.push((i.value(), k.value().to_vec()));
                }
            }
            Some(who) => {
                let t = r.open_table(ARCHIVE_BY_REQUESTER).map_err(|e| self.db_err(e))?;
                let (lo, hi) = (requester_key(who, 0), requester_key(who, end));
                for entry in t
                    .range(lo.as_slice()..hi.as_slice())
                    .map_err(|e| self.db_err(e))?
                    .rev()
                    .take(scan)
                {
                    let (by, k) = entry.map_err(|e| self.db_err(e))?;
                    let place = by.value().get(32..).and_then(|p| <[u8; 8]>::try_from(p).ok());
                    let place = place.ok_or_else(|| StoreError::Corrupt {
                        what: "archive index by requester".into(),
                        source: CodecError::Invalid { what: "key", reason: "not 40 bytes" },
                    })?;
                    keys.push((u64::from_be_bytes(place), k.value().to_vec()));
                }
            }
        }
        let next = match keys.last() {
            Some((i, _)) if keys.len() == scan && *i > 0 => Some(*i),
            _ => None,
        };
        let mut records = Vec::new();
        for (_, k) in keys {
            let key = StateKey::from_bytes(&k).ok_or_else(|| StoreError::Corrupt {
                what: "archive index".into(),
                source: CodecError::Invalid { what: "state key", reason: "bad length or table" },
            })?;
            if key.table != table {
                continue;
            }
            if let Some(v) = archive.get(k.as_slice()).map_err(|e| self.db_err(e))? {
                records.push(decode_archived(key, v.value())?);
            }
        }
        Ok(ArchivePage { records, next })
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
        self.commit_block(&record, &out.changes, &out.archived)?;
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

/// The archive's by-requester key: the requester, then the place, big-endian so keys sort
/// by place.
fn requester_key(who: &AccountId, index: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&who.0);
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

fn decode_archived(key: StateKey, v: &[u8]) -> Result<ArchivedRecord, StoreError> {
    if v.len() < 16 {
        return Err(StoreError::Corrupt {
            what: "archived record".into(),
            source: CodecError::Invalid {
                what: "archived record",
                reason: "shorter than its header",
            },
        });
    }
    let (index, rest) = v.split_at(8);
    let (height, record) = rest.split_at(8);
    let be = |b: &[u8]| {
        let mut x = [0u8; 8];
        x.copy_from_slice(b);
        u64::from_be_bytes(x)
    };
    Ok(ArchivedRecord {
        key,
        index: be(index),
        height: Height(be(height)),
        record: record.to_vec(),
    })
}

fn decode_block(bytes: &[u8], what: &str) -> Result<BlockRecord, StoreError> {
    decode_exact(bytes, "block").map_err(|source| StoreError::Corrupt { what: what.into(), source })
}
