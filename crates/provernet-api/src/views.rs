//! Blocks in the wire contract's types; the ledger's records are converted by
//! [`provernet_ledger::contract`].

use provernet_api_types as t;
use provernet_consensus::Finalized;
use provernet_ledger::TxError;
use provernet_store::BlockRecord;

pub use provernet_ledger::contract::*;

pub fn block(
    b: &BlockRecord,
    receipt: impl Fn(&provernet_types::TxHash) -> Option<Result<(), TxError>>,
) -> t::Block {
    let transactions = b
        .txs
        .iter()
        .map(|tx| {
            let hash = tx.hash();
            let result = receipt(&hash);
            t::BlockTx {
                hash,
                sender: tx.tx.signer,
                nonce: tx.tx.nonce,
                kind: tx.tx.body.kind().to_owned(),
                status: result.as_ref().map(|r| match r {
                    Ok(()) => t::TxState::Applied,
                    Err(_) => t::TxState::Failed,
                }),
                error: result.and_then(|r| r.err()).map(|e| tx_error(&e)),
            }
        })
        .collect();
    t::Block {
        height: b.height,
        hash: b.hash,
        time_ms: b.time.0,
        state_root: b.root,
        randomness: Some(hex::encode(b.randomness)),
        genesis: false,
        txs: b.txs.iter().map(|t| t.hash()).collect(),
        transactions,
    }
}

pub fn finalized(b: &Finalized) -> t::FinalizedBlock {
    t::FinalizedBlock {
        height: b.height,
        hash: b.hash,
        time_ms: b.time.0,
        state_root: b.root,
        txs: b.txs.clone(),
        failed_txs: u32::try_from(b.receipts.iter().filter(|r| r.result.is_err()).count())
            .unwrap_or(u32::MAX),
        events: b.events.iter().map(event).collect(),
    }
}
