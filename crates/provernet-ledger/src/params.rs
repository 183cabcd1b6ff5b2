//! Chain parameters and the genesis description.

use provernet_mechanism::{MechanismParams, PriceTable};
use provernet_types::limits::*;
use provernet_types::{
    codec_struct, AccountId, Blocks, BoundedString, BoundedVec, Bytes, Height, MechanismKind,
    MicroCredits, MilliCores, NamedBlob, ProgramId, ProgramManifest, Seconds, VerifierLimits,
};

/// A job the chain sends to every new prover before it may take real work: a known program with
/// known inputs, run with the prover's full declared capacity within `time_limit`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProbeSpec {
    pub program: ProgramId,
    pub inputs: BoundedVec<NamedBlob, JOB_INPUTS_MAX>,
    pub time_limit: Seconds,
}
codec_struct!(ProbeSpec { program, inputs, time_limit });

/// Everything the protocol leaves to configuration. Fixed at genesis.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChainParams {
    pub chain_id: BoundedString<CHAIN_ID_BYTES_MAX>,
    /// The target block interval, used to turn a job's time limit into blocks.
    pub block_time_ms: u64,
    pub prices: PriceTable,
    /// Blocks an assigned prover has to accept.
    pub accept_timeout: Blocks,
    /// Blocks after the time limit for uploading the proof and posting the result.
    pub result_grace: Blocks,
    /// Blocks a committee has to vote.
    pub vote_timeout: Blocks,
    /// Committees drawn for one attempt before it is given up as unverifiable.
    pub verify_rounds_max: u8,
    /// Blocks a job may wait for its first prover before it expires.
    pub pending_timeout: Blocks,
    /// Fallback attempts after the first `redundancy` ones before the open race.
    pub fallback_attempts_max: u8,
    /// Claims of one kind (program error, time limit) from distinct provers that fail a job,
    /// at least one of them from a prover drawn after the first claim was posted.
    pub program_error_quorum: u8,
    /// Blocks a committed prover has to reveal its proof once its gate opens.
    pub reveal_window: Blocks,
    /// Provers on a verification committee.
    pub committee_size: u8,
    /// Share of an attempt's fee paid to the committee members who voted with the outcome.
    pub verifier_reward_bps: u32,
    /// Share of the fee returned to the requester when a fallback was needed.
    pub fallback_refund_bps: u32,
    /// Slashes as a share of the attempt's fee (may exceed 100%), doubled for each earlier
    /// fault of the prover (at most 16×) and capped at its stake.
    pub slash_missed_accept_bps: u32,
    pub slash_missed_deadline_bps: u32,
    pub slash_invalid_proof_bps: u32,
    /// A verification committee member that did not vote by the round's deadline.
    pub slash_missed_vote_bps: u32,
    /// A program-error or time-limit claim refuted by another prover's verified proof.
    pub slash_false_claim_bps: u32,
    /// Faults after which a prover is ejected.
    pub faults_to_eject: u32,
    pub min_prover_stake: MicroCredits,
    /// Blocks between announcing exit (or ejection) and the stake's return.
    pub exit_delay: Blocks,
    /// Jobs one account may have open (submitted, not settled) at once. Bounds the work the
    /// end-of-block rules do for jobs waiting for a prover.
    pub open_jobs_per_account_max: u32,
    /// Declines a prover may make per window.
    pub decline_quota: u32,
    pub decline_window: Blocks,
    /// The probe every new prover must pass; `None` activates provers at registration (tests).
    pub probe: Option<ProbeSpec>,
    /// Blocks between a transaction touching a job and the end-of-block rules acting on it
    /// (assignment, committee draws, fallback). Commit-then-reveal: a block's randomness is the
    /// seed of its parent's view, which the proposer of that block knows, so draws caused by a
    /// block's transactions wait until a seed from a later view exists (2 on a live chain).
    pub draw_delay: Blocks,
    /// Validator accounts: the committee for built-in verifiers.
    pub validators: BoundedVec<AccountId, VALIDATORS_MAX>,
    /// The allocation mechanisms jobs may ask for.
    pub mechanisms: BoundedVec<MechanismKind, 8>,
    pub mechanism_params: MechanismParams,
    /// What each fee-paying transaction costs its signer, burned (see
    /// `provernet_types::TxBody::pays_fee`): state growth and block space are paid for.
    pub tx_fee: MicroCredits,
    /// The most a program's manifest may give its verifier (cores, memory, time): what every
    /// committee member must be ready to spend on each vote.
    pub verifier_limits_max: VerifierLimits,
}

codec_struct!(ChainParams {
    chain_id,
    block_time_ms,
    prices,
    accept_timeout,
    result_grace,
    vote_timeout,
    verify_rounds_max,
    pending_timeout,
    fallback_attempts_max,
    program_error_quorum,
    reveal_window,
    committee_size,
    verifier_reward_bps,
    fallback_refund_bps,
    slash_missed_accept_bps,
    slash_missed_deadline_bps,
    slash_invalid_proof_bps,
    slash_missed_vote_bps,
    slash_false_claim_bps,
    faults_to_eject,
    min_prover_stake,
    exit_delay,
    open_jobs_per_account_max,
    decline_quota,
    decline_window,
    probe,
    draw_delay,
    validators,
    mechanisms,
    mechanism_params,
    tx_fee,
    verifier_limits_max
});

impl ChainParams {
    /// Defaults for a devnet with one block per second.
    pub fn devnet(validators: Vec<AccountId>) -> ChainParams {
        ChainParams {
            chain_id: BoundedString::try_new("provernet-devnet").expect("short"),
            block_time_ms: 1000,
            prices: PriceTable::default(),
            accept_timeout: Blocks(3),
            result_grace: Blocks(5),
            vote_timeout: Blocks(10),
            verify_rounds_max: 2,
            pending_timeout: Blocks(600),
            fallback_attempts_max: 2,
            program_error_quorum: 2,
            reveal_window: Blocks(10),
            committee_size: 3,
            verifier_reward_bps: 500,
            fallback_refund_bps: 5_000,
            // Each fault funds its own consequences: a missed accept or deadline pays for the
            // requester's 50% fallback refund; an invalid proof also pays the verifiers who
            // caught it.
            slash_missed_accept_bps: 5_000,
            slash_missed_deadline_bps: 10_000,
            slash_invalid_proof_bps: 20_000,
            // Voting costs a verifier run; not voting can stall a verdict. A tenth of the fee
            // (doubled per earlier fault) makes voting the better choice by far.
            slash_missed_vote_bps: 1_000,
            // A claim that the program failed, refuted by a verified proof, costs a whole fee:
            // claiming is then worse than proving for anyone with less than two thirds of the
            // provers (see ARCHITECTURE, "Claims").
            slash_false_claim_bps: 10_000,
            faults_to_eject: 5,
            min_prover_stake: MicroCredits(10 * MicroCredits::PER_CREDIT),
            exit_delay: Blocks(100),
            open_jobs_per_account_max: 1_000,
            decline_quota: 5,
            decline_window: Blocks(600),
            probe: None,
            draw_delay: Blocks(2),
            validators: BoundedVec::try_from_vec(validators).expect("within VALIDATORS_MAX"),
            mechanisms: BoundedVec::try_from_vec(MechanismKind::ALL.to_vec()).expect("within 8"),
            mechanism_params: MechanismParams::default(),
            // A ten-thousandth of a credit: nothing to a real job, 10 credits for 50,000 junk
            // submissions and cancellations.
            tx_fee: MicroCredits(100),
            verifier_limits_max: VerifierLimits {
                cores: MilliCores(4000),
                memory: Bytes::gib(8),
                time_limit: Seconds(600),
            },
        }
    }

    /// A job's time limit in blocks, rounded up.
    pub fn time_limit_blocks(&self, time_limit: Seconds) -> Blocks {
        Blocks(time_limit.0.saturating_mul(1000).div_ceil(self.block_time_ms.max(1)))
    }

    /// When a result started at `from` is due: the time limit in blocks plus the grace.
    pub fn result_deadline(&self, from: Height, time_limit: Seconds) -> Height {
        from.plus(self.time_limit_blocks(time_limit)).plus(self.result_grace)
    }

    /// The most blocks a job with `time_limit` and `redundancy` can take from submission to a
    /// final state with its escrow settled, whatever provers do. Property tests hold the ledger
    /// to this bound.
    pub fn job_lifetime_bound(&self, time_limit: Seconds, redundancy: u8) -> Blocks {
        let run = self.time_limit_blocks(time_limit).0 + self.result_grace.0;
        let verify = self.vote_timeout.0 * u64::from(self.verify_rounds_max) + 2;
        // A committed attempt may wait for its gate (the other attempts' runs) and then has
        // the reveal window.
        let attempt = self.accept_timeout.0 + 2 * run + self.reveal_window.0 + verify + 3;
        let attempts = u64::from(redundancy) + u64::from(self.fallback_attempts_max);
        let race = run + self.reveal_window.0 + verify + 3;
        // An auctioned attempt first waits out its round: the Dutch ramp, or the bidding and
        // reveal windows.
        let mp = &self.mechanism_params;
        let auction = mp.dutch_ramp_blocks.max(2 * mp.bid_window_blocks) + 1;
        // Every reaction to a transaction (submission, accept, result, each vote round) may
        // wait `draw_delay` blocks.
        let delays = self.draw_delay.0 * (2 + attempts * (3 + u64::from(self.verify_rounds_max)));
        Blocks(self.pending_timeout.0 + attempts * (attempt + auction) + race + 2 + delays)
    }

    /// Checks that the parameters are usable; run at genesis.
    pub fn validate(&self) -> Result<(), String> {
        let shares = [
            ("verifier_reward_bps", self.verifier_reward_bps, 10_000),
            ("fallback_refund_bps", self.fallback_refund_bps, 10_000),
            ("slash_missed_accept_bps", self.slash_missed_accept_bps, 100_000),
            ("slash_missed_deadline_bps", self.slash_missed_deadline_bps, 100_000),
            ("slash_invalid_proof_bps", self.slash_invalid_proof_bps, 100_000),
            ("slash_missed_vote_bps", self.slash_missed_vote_bps, 100_000),
            ("slash_false_claim_bps", self.slash_false_claim_bps, 100_000),
        ];
        for (name, v, max) in shares {
            if v > max {
                return Err(format!("{name} is {v}, above {max}"));
            }
        }
        if self.draw_delay.0 > 16 {
            return Err(format!("draw_delay is {} blocks, above 16", self.draw_delay.0));
        }
        if self.block_time_ms == 0 {
            return Err("block_time_ms must be above zero".into());
        }
        if !self.prices.is_usable() {
            return Err("prices must charge for cores and memory".into());
        }
        if self.accept_timeout.0 == 0 || self.vote_timeout.0 == 0 || self.reveal_window.0 == 0 {
            return Err(
                "accept_timeout, vote_timeout and reveal_window must be at least one block".into(),
            );
        }
        if self.committee_size == 0 || usize::from(self.committee_size) > COMMITTEE_MAX {
            return Err(format!("committee_size must be 1..={COMMITTEE_MAX}"));
        }
        if self.verify_rounds_max == 0 || self.program_error_quorum == 0 {
            return Err("verify_rounds_max and program_error_quorum must be at least 1".into());
        }
        if self.fallback_attempts_max > crate::entities::FALLBACK_ATTEMPTS_MAX {
            return Err(format!(
                "fallback_attempts_max must be at most {}",
                crate::entities::FALLBACK_ATTEMPTS_MAX
            ));
        }
        if !VerifierLimits::DEFAULT.within(&self.verifier_limits_max) {
            return Err("verifier_limits_max must allow at least 1 core, 2 GiB and 120 s".into());
        }
        self.mechanism_params.validate()?;
        if !self.mechanisms.contains(&MechanismKind::RandomWithFallback) {
            return Err("mechanisms must include random (the default)".into());
        }
        if let Some(dup) = provernet_types::first_duplicate(self.mechanisms.iter()) {
            return Err(format!("mechanism {dup} is listed twice"));
        }
        if self.validators.is_empty() {
            return Err("at least one validator is required".into());
        }
        if self.decline_window.0 == 0 {
            return Err("decline_window must be at least one block".into());
        }
        if self.tx_fee > MicroCredits(MicroCredits::PER_CREDIT) {
            return Err(format!("tx_fee is {}, above 1 credit", self.tx_fee));
        }
        Ok(())
    }
}

/// The initial state of a chain.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Genesis {
    pub params: ChainParams,
    pub accounts: BoundedVec<(AccountId, MicroCredits), GENESIS_ENTRIES_MAX>,
    pub programs: BoundedVec<ProgramManifest, GENESIS_ENTRIES_MAX>,
}
codec_struct!(Genesis { params, accounts, programs });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_at_genesis() {
        let ok = ChainParams::devnet(vec![AccountId([1; 32])]);
        assert_eq!(ok.validate(), Ok(()));
        let mut p = ok.clone();
        p.fallback_attempts_max = crate::entities::FALLBACK_ATTEMPTS_MAX + 1;
        assert!(p.validate().unwrap_err().contains("fallback_attempts_max"));
        let mut p = ok.clone();
        p.verifier_reward_bps = 10_001;
        assert!(p.validate().unwrap_err().contains("verifier_reward_bps"));
        let mut p = ok;
        p.validators = BoundedVec::new();
        assert!(p.validate().is_err());
    }
}
