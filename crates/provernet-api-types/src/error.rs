//! Errors: every error answer is `{"code", "message"}` (and, for a transaction the ledger
//! refused, the error's `fields`), `code` being one of [`ErrorCode`]'s stable names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A stable, machine-readable error code. The ledger's codes (why a transaction is
        /// refused, at admission or in a block), the mempool's, the blob store's and the API's
        /// own share one namespace; a code this version does not know is kept as `Other`.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version of the contract does not know.
            Other(String),
        }

        impl ErrorCode {
            /// Every code this version knows.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Other(s) => s,
                }
            }

            pub fn parse(s: &str) -> ErrorCode {
                match s {
                    $($name => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

codes! {
    // The ledger's (`provernet_ledger::TxError::code`).
    UnknownAccount = "unknown_account",
    BadNonce = "bad_nonce",
    InsufficientBalance = "insufficient_balance",
    ZeroAmount = "zero_amount",
    ProgramExists = "program_exists",
    ProgramNameTaken = "program_name_taken",
    UnknownProgram = "unknown_program",
    BadResources = "bad_resources",
    BadTimeLimit = "bad_time_limit",
    ProverExists = "prover_exists",
    UnknownProver = "unknown_prover",
    StakeTooLow = "stake_too_low",
    ProverExiting = "prover_exiting",
    UnknownJob = "unknown_job",
    BadRedundancy = "bad_redundancy",
    FeeBelowQuote = "fee_below_quote",
    MechanismNotEnabled = "mechanism_not_enabled",
    SingleProverMechanism = "single_prover_mechanism",
    WrongMechanism = "wrong_mechanism",
    AuctionClosed = "auction_closed",
    AlreadyBid = "already_bid",
    BidsFull = "bids_full",
    NoBid = "no_bid",
    BidMismatch = "bid_mismatch",
    CollateralTooLow = "collateral_too_low",
    NoProverCanFit = "no_prover_can_fit",
    DuplicateName = "duplicate_name",
    MissingInput = "missing_input",
    BadManifest = "bad_manifest",
    WrongJobState = "wrong_job_state",
    UnknownAttempt = "unknown_attempt",
    WrongAttemptState = "wrong_attempt_state",
    NotAssignedProver = "not_assigned_prover",
    NotRequester = "not_requester",
    NotCommitteeMember = "not_committee_member",
    AlreadyVoted = "already_voted",
    DeclineQuotaExhausted = "decline_quota_exhausted",
    NotEligible = "not_eligible",
    RaceFull = "race_full",
    OutputRules = "output_rules",
    RevealTooEarly = "reveal_too_early",
    RevealNotOpen = "reveal_not_open",
    CommitmentMismatch = "commitment_mismatch",
    DeadlinePassed = "deadline_passed",
    TooManyOpenJobs = "too_many_open_jobs",
    MissingOutput = "missing_output",
    WorkflowEmpty = "workflow_empty",
    DuplicateNode = "duplicate_node",
    TooManyInputs = "too_many_inputs",
    SelfReference = "self_reference",
    UnknownNode = "unknown_node",
    WorkflowCycle = "workflow_cycle",
    WorkflowTooLarge = "workflow_too_large",
    UndeclaredOutput = "undeclared_output",
    UnknownWorkflow = "unknown_workflow",
    WorkflowClosed = "workflow_closed",
    Overflow = "overflow",
    // The mempool's.
    BadSignature = "bad_signature",
    MalformedTransaction = "malformed_transaction",
    StaleNonce = "stale_nonce",
    NonceTooFar = "nonce_too_far",
    NonceTaken = "nonce_taken",
    AccountRateLimited = "account_rate_limited",
    MempoolFull = "mempool_full",
    TooManyGappedNonces = "too_many_gapped_nonces",
    InsufficientBalanceForFees = "insufficient_balance_for_fees",
    // The blob store's.
    BlobTooLarge = "blob_too_large",
    BlobSizeMismatch = "blob_size_mismatch",
    BlobHashMismatch = "blob_hash_mismatch",
    BlobQuotaExceeded = "blob_quota_exceeded",
    BlobUnavailable = "blob_unavailable",
    BlobFetchesBusy = "blob_fetches_busy",
    BlobUploadIncomplete = "blob_upload_incomplete",
    BlobStoreError = "blob_store_error",
    BlobNotInPieces = "blob_not_in_pieces",
    BlobOutlineMismatch = "blob_outline_mismatch",
    BlobPieceMismatch = "blob_piece_mismatch",
    BlobUploadNotStarted = "blob_upload_not_started",
    BlobUploadsTooMany = "blob_uploads_too_many",
    BlobRequestTooLarge = "blob_request_too_large",
    BlobChunkInvalid = "blob_chunk_invalid",
    // The API's own.
    NotFound = "not_found",
    NoRoute = "no_route",
    BadId = "bad_id",
    BadField = "bad_field",
    BadHeight = "bad_height",
    BadLimit = "bad_limit",
    BadState = "bad_state",
    BadHeader = "bad_header",
    MissingHeader = "missing_header",
    BlobsDisabled = "blobs_disabled",
    BodyTooLarge = "body_too_large",
    EmptyBody = "empty_body",
    RequestTimeout = "request_timeout",
    Storage = "storage",
    UploadsBusy = "uploads_busy",
    TooManySubscribers = "too_many_subscribers",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        Ok(ErrorCode::parse(&s))
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(ErrorCode::KNOWN.iter().map(|c| c.as_str().to_owned())))
            .description(Some("A stable error code (clients keep unknown codes as they are)"))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// Why the ledger refused a transaction: its code, its message and the values it names
/// (`need`, `have`, `job`…), each as a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxErrorView {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

impl std::fmt::Display for TxErrorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// For a transaction the ledger refused at admission: the values its error names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_by_name_and_unknown_ones_are_kept() {
        for c in ErrorCode::KNOWN {
            let json = serde_json::to_string(c).expect("serializes");
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).expect("parses"), *c);
        }
        assert_eq!(ErrorCode::parse("from_the_future"), ErrorCode::Other("from_the_future".into()));
        let mut names: Vec<&str> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "every code has one name");
    }
}
