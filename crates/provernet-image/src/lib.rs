//! Programs as OCI images.
//!
//! - [`oci`] reads an image layout and checks it whole (digests, sizes, `diff_ids`, platform,
//!   media types) before anything is unpacked.
//! - [`unpack`] unpacks one layer into a directory of its own, refusing what a hostile layer
//!   could use to write outside it or to smuggle privileges in, within declared limits.
//! - [`cache`] keeps unpacked layers by digest, shared across images, evicted least recently
//!   used under a disk budget and pinned while a job uses them, and composes an image's
//!   read-only root from its layers.
//! - [`program`] ties it to the chain: what `program deploy --image` declares, and what a node
//!   checks against the program's record before it runs an image.

pub mod build;
pub mod cache;
pub mod confined;
pub mod oci;
pub mod program;
pub mod unpack;

pub use cache::{Cache, CacheError, ImageRoot, Pin};
pub use confined::Confinement;
pub use oci::{Compression, Image, Layer, RunConfig};
pub use program::{
    extract_layout_archive, measure, open_layout, prepare, prepare_local, Prepared,
    ProgramImageError,
};
pub use unpack::{unpack_layer, LayerReport, UnpackError, UnpackLimits};

use sha2::Digest as _;
use std::io::Read;

/// A SHA-256 digest, written `sha256:<64 hex digits>` as OCI and Docker write it.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// The 64 hex digits alone (a blob's file name in a layout).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", &self.hex()[..12])
    }
}

impl std::str::FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").ok_or_else(|| {
            "only sha256 digests are supported (sha256:<64 hex digits>)".to_owned()
        })?;
        if hex_part.len() != 64
            || !hex_part.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err("a sha256 digest has 64 lower-case hex digits".into());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|e| e.to_string())?;
        Ok(Digest(out))
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

/// SHA-256 of everything `r` yields, and how many bytes that was.
pub fn sha256_reader(mut r: impl Read) -> std::io::Result<(Digest, u64)> {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((Digest(h.finalize().into()), n))
}

/// Why an image was refused before unpacking.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a usable OCI image layout: {0}")]
    Layout(String),
    #[error("the image is for {0}; provernet runs linux/amd64 images only")]
    Platform(String),
    #[error("a layer is refused: {0}")]
    Layer(String),
    #[error("the image's bytes do not match its digests: {0}")]
    Mismatch(String),
}
