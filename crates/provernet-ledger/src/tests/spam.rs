//! Spam that costs: every transaction anyone can send pays the chain's fee, burned; a prover's
//! duties on the work it was given pay none.

use crate::events::PaymentKind;
use crate::testkit::*;
use crate::TxError;
use provernet_types::{AccountId, MicroCredits, TxBody};

const FEE: MicroCredits = MicroCredits(100);

fn chain() -> TestChain {
    TestChain::new(4, |p| p.tx_fee = FEE)
}

fn balance(c: &TestChain, who: &str) -> u64 {
    c.state.account(&c.account(who)).map_or(0, |a| a.balance.0)
}

#[test]
fn fee_paying_transactions_burn_the_fee_and_a_provers_duties_do_not() {
    let mut c = chain();
    let (alice, burned) = (balance(&c, "alice"), c.state.meta().burned.0);
    let t = c.tx("alice", TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(5) });
    c.block(vec![t]);
    assert_eq!(balance(&c, "alice"), alice - 5 - FEE.0);
    assert_eq!(c.state.meta().burned.0, burned + FEE.0);
    // A job costs its escrow and one fee; the prover's accept, result and the committee's
    // votes cost them nothing.
    let (id, tx) = c.submit("alice", c.spec(committee_program().id(), 60));
    let before = balance(&c, "alice");
    c.block(vec![tx]);
    let job = c.job(&id).unwrap().clone();
    assert_eq!(balance(&c, "alice"), before - job.escrow.0 - FEE.0);
    let burned = c.state.meta().burned.0;
    let provers: Vec<u64> = (0..4).map(|i| balance(&c, &format!("p{i}"))).collect();
    let mut paid = [0u64; 4];
    for _ in 0..30 {
        let txs = c.agent_txs(Behaviour::HONEST);
        let out = c.block(txs);
        for e in &out.events {
            if let crate::Event::Paid {
                to,
                amount,
                kind: PaymentKind::ProverReward | PaymentKind::VerifierReward,
                ..
            } = e
            {
                for (i, p) in paid.iter_mut().enumerate() {
                    if *to == c.account(&format!("p{i}")) {
                        *p += amount.0;
                    }
                }
            }
        }
    }
    assert!(c.job(&id).unwrap().settled);
    for i in 0..4 {
        assert_eq!(balance(&c, &format!("p{i}")), provers[i] + paid[i], "p{i} paid no fee");
    }
    // Only rounding dust of the verifier reward was burned since: no duty paid a fee.
    assert!(c.state.meta().burned.0 - burned < 3);
}

#[test]
fn an_account_that_cannot_pay_the_fee_changes_nothing() {
    let mut c = chain();
    let poor = c.add_key("poor");
    let fund = c.tx("alice", TxBody::Transfer { to: poor, amount: MicroCredits(150) });
    c.block(vec![fund]);
    // 150 µc pays one fee of 100 and 50 of transfer, not the fee and 60.
    let t = c.tx("poor", TxBody::Transfer { to: AccountId([9; 32]), amount: MicroCredits(60) });
    let out = c.block(vec![t]);
    assert!(matches!(out.receipts[0].result, Err(TxError::InsufficientBalance { .. })));
    assert_eq!(balance(&c, "poor"), 150);
    assert_eq!(c.state.account(&poor).unwrap().nonce.0, 0, "not even the nonce moved");
}

/// Regression, attack 7 of issue 14 (state grown for nothing): 51,100 jobs submitted and
/// cancelled cost their sender nothing, since a cancel refunds the whole escrow.
#[test]
fn submitting_and_cancelling_jobs_to_grow_the_state_costs_two_fees_a_job() {
    let mut c = chain();
    let before = balance(&c, "bob");
    let jobs = 20u64;
    for _ in 0..jobs {
        let (id, tx) = c.submit("bob", c.spec(committee_program().id(), 60));
        let cancel = c.tx("bob", TxBody::CancelJob { job: id });
        c.block(vec![tx, cancel]);
        c.reset_nonces();
    }
    c.idle(5);
    assert_eq!(before - balance(&c, "bob"), jobs * 2 * FEE.0, "each job costs two fees");
}
