//! Named limits. Every list, string and size that crosses a trust boundary has one here.

use crate::units::{Bytes, GpuCount, MilliCores, Seconds};

/// Largest encoded signed transaction.
pub const TX_BYTES_MAX: usize = 64 * 1024;
/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 20_000;
/// Longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 32;
/// Longest program name, input name or proof file name.
pub const NAME_BYTES_MAX: usize = 64;
/// Longest label (`key=value`).
pub const LABEL_BYTES_MAX: usize = 64;
/// Longest failure reason a prover may attach to a result (the tail of stderr).
pub const REASON_BYTES_MAX: usize = 512;
/// Most inputs of one job.
pub const JOB_INPUTS_MAX: usize = 32;
/// Most proof files of one result.
pub const PROOF_FILES_MAX: usize = 16;
/// Layers in a program's image.
pub const IMAGE_LAYERS_MAX: usize = 128;
/// An image's manifest or config blob.
pub const IMAGE_JSON_BYTES_MAX: Bytes = Bytes(4 << 20);
/// What all of an image's layers may unpack to, together.
pub const IMAGE_UNPACKED_MAX: Bytes = Bytes(64 << 30);
/// Entries in one layer.
pub const LAYER_ENTRIES_MAX: u32 = 1_000_000;
/// A verifier's image, packed (its layers' blobs): a committee member fetches it when it is
/// drawn and must vote before the round's deadline.
pub const VERIFIER_IMAGE_BYTES_MAX: Bytes = Bytes(1 << 30);
/// A verifier's image, unpacked.
pub const VERIFIER_IMAGE_UNPACKED_MAX: Bytes = Bytes(4 << 30);
/// Most labels a prover may declare.
pub const PROVER_LABELS_MAX: usize = 16;
/// Most labels a program may require or a job's prover set may name.
pub const REQUIRED_LABELS_MAX: usize = 8;
/// Most provers in a job's allow list.
pub const PROVER_ALLOW_MAX: usize = 64;
/// Most provers running one job at once.
pub const REDUNDANCY_MAX: u8 = 3;
/// Largest verification committee of provers (the `committee_size` parameter).
pub const COMMITTEE_MAX: usize = 16;
/// Most validators.
pub const VALIDATORS_MAX: usize = 128;
/// Most voters on one proof: a committee of provers, or every validator for a built-in
/// verifier.
pub const VOTERS_MAX: usize = VALIDATORS_MAX;
/// Most genesis accounts and genesis programs.
pub const GENESIS_ENTRIES_MAX: usize = 10_000;
/// Largest blob (an input, a program's executable or image layer, a parameter file): what the
/// ledger accepts and what a validator's blob store takes by default. Blobs above
/// [`UPLOAD_REQUEST_BYTES_MAX`] travel in pieces, over several requests.
pub const BLOB_BYTES_MAX: Bytes = Bytes(8 << 30);
/// Most bytes one upload request carries by default (a validator may lower it).
pub const UPLOAD_REQUEST_BYTES_MAX: Bytes = Bytes(256 << 20);
/// Largest proof file a prover node may leave (one rule for the ledger and the node, see
/// [`crate::check_outputs`]): proofs are read whole by the validators that verify them.
pub const PROOF_FILE_BYTES_MAX: Bytes = Bytes(256 << 20);
/// Shortest and longest job time limit.
pub const TIME_LIMIT_MIN: Seconds = Seconds(1);
pub const TIME_LIMIT_MAX: Seconds = Seconds(24 * 3600);
/// Largest resource request or declared capacity of one machine.
pub const CORES_MAX: MilliCores = MilliCores(4096 * 1000);
pub const MEMORY_MAX: Bytes = Bytes(64 << 40);
pub const GPUS_MAX: GpuCount = GpuCount(64);

const _: () = assert!(NAME_BYTES_MAX <= LABEL_BYTES_MAX);
const _: () = assert!(PROOF_FILES_MAX * (NAME_BYTES_MAX + 48) < TX_BYTES_MAX / 2);
const _: () = assert!(JOB_INPUTS_MAX * (NAME_BYTES_MAX + 48) < TX_BYTES_MAX / 2);
const _: () = assert!(COMMITTEE_MAX <= VOTERS_MAX && VALIDATORS_MAX <= VOTERS_MAX);
