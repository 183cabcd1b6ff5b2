//! The block that consensus orders: a header and the signed transactions, in the project's
//! canonical codec, wrapped in commonware's codec with a length prefix.
//!
//! A block commits to its parent (by digest), its height, the view its parent was certified in,
//! the proposer's timestamp, the **threshold seed of the parent's view** (the randomness the
//! ledger uses for this block) and the **state root after executing it**. Every validator
//! re-executes the block in `verify` and refuses to vote for a wrong root, so a finalized block's
//! root is the agreed state.

use bytes::{Buf, BufMut, Bytes};
use commonware_codec::{EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::types::Height as CwHeight;
use commonware_consensus::Heightable;
use commonware_cryptography::sha256::{Digest, Sha256};
use commonware_cryptography::{Digestible, Hasher};
use provernet_types::limits::BLOCK_TXS_MAX;
use provernet_types::{
    codec_struct, decode_exact, domain_hash, BoundedVec, Encode, Height, Millis, SignedTx,
    StateRoot,
};

/// The most bytes one block may take on the wire (header and transactions).
pub const BLOCK_BYTES_MAX: usize = 4 << 20;

/// Bytes of a recovered seed signature (BLS12-381 `MinSig`: a compressed G1 point).
pub const SEED_BYTES: usize = 48;

/// The fields of a block, in the project's canonical codec.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    pub parent: [u8; 32],
    pub height: Height,
    /// The consensus view in which the parent was certified (0 for genesis).
    pub parent_view: u64,
    /// The proposer's clock, strictly increasing along the chain; for display only.
    pub time: Millis,
    /// The recovered threshold seed of `parent_view`; `None` only on the genesis block and its
    /// child, since view 0 has no seed.
    pub seed: Option<[u8; SEED_BYTES]>,
    /// The state root after applying this block.
    pub root: StateRoot,
    pub txs: BoundedVec<SignedTx, BLOCK_TXS_MAX>,
}
codec_struct!(Header { parent, height, parent_view, time, seed, root, txs });

/// A block as consensus sees it. Immutable: its encoding is computed once.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    header: Header,
    bytes: Bytes,
}

impl Block {
    /// Wraps a header; fails if the encoding is above [`BLOCK_BYTES_MAX`].
    pub fn new(header: Header) -> Result<Block, usize> {
        let bytes = header.encode();
        if bytes.len() > BLOCK_BYTES_MAX {
            return Err(bytes.len());
        }
        Ok(Block { header, bytes: Bytes::from(bytes) })
    }

    /// The height-0 block every validator starts from: it commits to the genesis state root and
    /// the chain id, so networks with different genesis files never share a digest.
    pub fn genesis(chain_id: &str, root: StateRoot) -> Block {
        let parent = domain_hash("provernet genesis parent", &[chain_id.as_bytes()]);
        Block::new(Header {
            parent,
            height: Height(0),
            parent_view: 0,
            time: Millis(0),
            seed: None,
            root,
            txs: BoundedVec::default(),
        })
        .expect("the genesis block is tiny")
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The encoded header, as hashed and stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        let len = u32::try_from(self.bytes.len()).expect("blocks are bounded far below 4 GiB");
        buf.put_u32(len);
        buf.put_slice(&self.bytes);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        4 + self.bytes.len()
    }
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        if buf.remaining() < 4 {
            return Err(CodecError::EndOfBuffer);
        }
        let len = buf.get_u32() as usize;
        if len > BLOCK_BYTES_MAX {
            return Err(CodecError::Invalid("Block", "above the block size limit"));
        }
        if buf.remaining() < len {
            return Err(CodecError::EndOfBuffer);
        }
        let bytes = buf.copy_to_bytes(len);
        let header: Header = decode_exact(&bytes, "block")
            .map_err(|_| CodecError::Invalid("Block", "malformed block header or transactions"))?;
        // The project codec is canonical, so the decoded header re-encodes to `bytes`.
        Ok(Block { header, bytes })
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        Sha256::hash(&[b"provernet block", &self.bytes])
    }
}

impl Heightable for Block {
    fn height(&self) -> CwHeight {
        CwHeight::new(self.header.height.0)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        Digest::from(self.header.parent)
    }
}

impl commonware_consensus::BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        4 + BLOCK_BYTES_MAX
    }
}

/// The ledger randomness of a block: a hash of its parent-view seed, or of the parent digest for
/// the first block (whose parent, genesis, has no view seed).
pub fn randomness(header: &Header) -> [u8; 32] {
    match &header.seed {
        Some(seed) => domain_hash("provernet block randomness", &[seed]),
        None => domain_hash("provernet first block randomness", &[&header.parent]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode as _};

    #[test]
    fn blocks_round_trip_and_reject_garbage() {
        let g = Block::genesis("devnet", StateRoot([7; 32]));
        let bytes = g.encode();
        let back = Block::decode(bytes.clone()).expect("decodes");
        assert_eq!(back, g);
        assert_eq!(back.digest(), g.digest());
        // A flipped length prefix or a truncated body is an error, not a panic.
        let mut bad = bytes.to_vec();
        bad[3] ^= 0xff;
        assert!(Block::decode(Bytes::from(bad)).is_err());
        assert!(Block::decode(bytes.slice(..bytes.len() - 1)).is_err());
        // Different chains have different genesis digests.
        assert_ne!(g.digest(), Block::genesis("other", StateRoot([7; 32])).digest());
    }
}
