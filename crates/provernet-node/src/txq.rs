//! The node's transactions, in nonce order, with repair after failures.
//!
//! A node signs many small transactions (accepts, results, votes) and cannot wait a block for
//! each before sending the next, so it pipelines them with consecutive nonces. A transaction
//! that fails in its block does not use its nonce (the ledger's rule), which leaves the ones
//! queued behind it unable to apply; the validator's mempool then drops them. This queue
//! notices (their status is unknown again), learns the chain's next nonce, and re-signs the
//! dropped ones in their original order.

use provernet_sdk::{Client, ErrorCode, SdkError, TxState};
use provernet_types::{Keypair, Nonce, Transaction, TxBody, TxHash};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most transactions in flight at once.
const IN_FLIGHT_MAX: usize = 32;
/// How often statuses are polled.
const POLL: Duration = Duration::from_millis(150);
/// A transaction not finalized after this long is given up on (its caller is told).
const FINALITY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Applied {
        hash: TxHash,
        height: u64,
    },
    /// Refused at admission or failed in its block; the reason is the node's or the ledger's.
    Failed {
        reason: String,
    },
}

type Reply = oneshot::Sender<TxOutcome>;

/// A handle to the queue's task.
#[derive(Clone, Debug)]
pub struct TxQueue {
    tx: mpsc::Sender<(TxBody, Reply)>,
}

impl TxQueue {
    /// Starts the queue's task for `key`'s account.
    pub fn spawn(client: Client, key: Keypair, chain_id: String) -> TxQueue {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(Worker { client, key, chain_id, inflight: VecDeque::new() }.run(rx));
        TxQueue { tx }
    }

    /// Sends `body` and waits until it is finalized or refused.
    pub async fn send(&self, body: TxBody) -> TxOutcome {
        let (reply, rx) = oneshot::channel();
        let kind = body.kind();
        if self.tx.send((body, reply)).await.is_err() {
            return TxOutcome::Failed { reason: format!("{kind}: the transaction queue stopped") };
        }
        rx.await.unwrap_or(TxOutcome::Failed {
            reason: format!("{kind}: the transaction queue stopped"),
        })
    }

    /// Sends `body` without waiting; failures are logged.
    pub fn send_detached(&self, body: TxBody) {
        let q = self.clone();
        tokio::spawn(async move {
            let kind = body.kind();
            if let TxOutcome::Failed { reason } = q.send(body).await {
                tracing::warn!("{kind} failed: {reason}");
            }
        });
    }
}

#[derive(Debug)]
struct InFlight {
    nonce: Nonce,
    body: TxBody,
    hash: TxHash,
    reply: Reply,
    sent: Instant,
}

struct Worker {
    client: Client,
    key: Keypair,
    chain_id: String,
    inflight: VecDeque<InFlight>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<(TxBody, Reply)>) {
        // Bodies to (re)send, oldest first.
        let mut queue: VecDeque<(TxBody, Reply)> = VecDeque::new();
        // After a failure or drop, no new nonce is used until everything in flight resolved
        // and the chain's nonce is read again.
        let mut broken = false;
        let mut next: Option<Nonce> = None;
        let mut closed = false;
        loop {
            while let Ok(item) = rx.try_recv() {
                queue.push_back(item);
            }
            if self.inflight.is_empty() {
                if closed && queue.is_empty() {
                    return;
                }
                if broken || next.is_none() {
                    match self.client.next_nonce(&self.key.account()).await {
                        Ok(n) => {
                            next = Some(n);
                            broken = false;
                        }
                        Err(e) => {
                            tracing::warn!("reading the account's nonce: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            }
            while !broken && self.inflight.len() < IN_FLIGHT_MAX {
                let (Some(n), Some((body, reply))) = (next, queue.pop_front()) else { break };
                match self.submit(n, &body).await {
                    Ok(hash) => {
                        self.inflight.push_back(InFlight {
                            nonce: n,
                            body,
                            hash,
                            reply,
                            sent: Instant::now(),
                        });
                        next = Some(Nonce(n.0 + 1));
                    }
                    Err(SdkError::Api {
                        code: ErrorCode::StaleNonce | ErrorCode::NonceTaken | ErrorCode::NonceTooFar,
                        ..
                    }) => {
                        // Someone else used this account, or our view is old: start again.
                        queue.push_front((body, reply));
                        broken = true;
                    }
                    Err(SdkError::Api { code, message, .. }) => {
                        let _ = reply.send(TxOutcome::Failed {
                            reason: format!("{}: refused ({code}): {message}", body.kind()),
                        });
                    }
                    Err(e) => {
                        tracing::warn!("submitting {}: {e}; retrying", body.kind());
                        queue.push_front((body, reply));
                        broken = true;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if self.inflight.is_empty() && queue.is_empty() {
                // Idle: wait for the next body.
                match rx.recv().await {
                    Some(item) => queue.push_back(item),
                    None => closed = true,
                }
                continue;
            }
            tokio::time::sleep(POLL).await;
            broken |= self.poll(&mut queue).await;
        }
    }

    async fn submit(&self, nonce: Nonce, body: &TxBody) -> Result<TxHash, SdkError> {
        let signed = Transaction { signer: self.key.account(), nonce, body: body.clone() }
            .sign(&self.key, &self.chain_id);
        self.client.submit(&signed).await?;
        Ok(signed.hash())
    }

    /// Resolves what finalized; returns whether the nonce sequence broke.
    async fn poll(&mut self, queue: &mut VecDeque<(TxBody, Reply)>) -> bool {
        let mut broken = false;
        let mut requeue = Vec::new();
        let mut still = VecDeque::new();
        while let Some(f) = self.inflight.pop_front() {
            match self.client.tx(&f.hash).await {
                Ok(Some(s)) if s.status == TxState::Applied => {
                    let _ = f.reply.send(TxOutcome::Applied {
                        hash: f.hash,
                        height: s.height.map_or(0, |h| h.0),
                    });
                }
                Ok(Some(s)) if s.status == TxState::Failed => {
                    broken = true;
                    let reason = s.error.map_or_else(|| "failed".to_owned(), |e| e.to_string());
                    let _ = f.reply.send(TxOutcome::Failed {
                        reason: format!("{} (nonce {}): {reason}", f.body.kind(), f.nonce),
                    });
                }
                Ok(Some(_)) if f.sent.elapsed() > FINALITY_TIMEOUT => {
                    broken = true;
                    let _ = f.reply.send(TxOutcome::Failed {
                        reason: format!(
                            "{}: not finalized within {FINALITY_TIMEOUT:?}",
                            f.body.kind()
                        ),
                    });
                }
                Ok(Some(_)) => still.push_back(f),
                // Unknown: dropped from the mempool behind a failed transaction.
                Ok(None) => {
                    broken = true;
                    requeue.push((f.body, f.reply));
                }
                Err(e) => {
                    tracing::debug!("polling {}: {e}", f.hash);
                    still.push_back(f);
                }
            }
        }
        self.inflight = still;
        for item in requeue.into_iter().rev() {
            queue.push_front(item);
        }
        broken
    }
}
