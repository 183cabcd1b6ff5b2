//! OCI image layouts: finding the linux/amd64 image in one, and checking that its bytes, its
//! manifest's digests, its config's `diff_ids` and its media types agree before anything is
//! unpacked.
//!
//! Accepted: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) as a directory,
//! as written by `docker buildx --output type=oci`, `docker save` on Engine 25 or later, `podman
//! save --format oci-archive`, `skopeo copy … oci-archive:` and `umoci`; a nested index (one per
//! platform) is followed one level. Refused: other platforms, foreign (non-distributable) and
//! encrypted layers, layers fetched from URLs, and anything whose digest or size does not match.

use crate::{Digest, ImageError};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// At most this many layers in one image.
pub const LAYERS_MAX: usize = 128;
/// An index, manifest or config larger than this is refused.
pub const JSON_MAX: u64 = 4 << 20;

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const CONFIG_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// The compression a layer media type names, or why it is refused.
pub fn layer_compression(media_type: &str) -> Result<Compression, String> {
    if media_type.ends_with("+encrypted") || media_type.contains("+encrypted+") {
        return Err(format!(
            "an encrypted layer ({media_type}): encrypted layers are not supported"
        ));
    }
    if media_type.contains("nondistributable") || media_type.contains("foreign") {
        return Err(format!(
            "a foreign (non-distributable) layer ({media_type}): every layer must travel with the \
             image"
        ));
    }
    match media_type {
        "application/vnd.oci.image.layer.v1.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(Compression::Zstd),
        other => Err(format!("an unknown layer media type {other:?}")),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Clone, Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    architecture: String,
    os: String,
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: RootFsConfig,
}

#[derive(Debug, Deserialize)]
struct RootFsConfig {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// What the image's config says about running it, as Docker reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// One layer: the compressed blob and the digest of its uncompressed tar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    pub diff_id: Digest,
}

/// An image whose manifest and config were read and checked, and whose layer blobs matched
/// their digests and sizes.
#[derive(Clone, Debug)]
pub struct Image {
    /// The digest users know the image by (`sha256:…` of the manifest's bytes).
    pub digest: Digest,
    pub manifest: Vec<u8>,
    pub config_digest: Digest,
    pub config_bytes: Vec<u8>,
    pub run: RunConfig,
    pub layers: Vec<Layer>,
    /// Where each blob lies in the layout.
    pub blob_dir: PathBuf,
}

impl Image {
    /// Reads the linux/amd64 image of the OCI layout in `dir` and checks every blob it names.
    pub fn from_layout(dir: &Path) -> Result<Image, ImageError> {
        let bad = |what: String| ImageError::Layout(what);
        let layout = std::fs::read_to_string(dir.join("oci-layout")).map_err(|e| {
            bad(format!(
                "{} has no oci-layout file ({e}): is it an OCI image layout? (docker buildx \
                 --output type=oci, podman save --format oci-archive, skopeo copy … oci-archive:)",
                dir.display()
            ))
        })?;
        if !layout.contains("\"imageLayoutVersion\"") {
            return Err(bad("oci-layout does not name an imageLayoutVersion".into()));
        }
        let blob_dir = dir.join("blobs").join("sha256");
        let index_bytes = read_small(&dir.join("index.json"), "index.json")?;
        let index: Index = serde_json::from_slice(&index_bytes)
            .map_err(|e| bad(format!("index.json does not parse: {e}")))?;
        let mut chosen = pick(&index.manifests, "index.json")?;
        if INDEX_TYPES.contains(&chosen.media_type.as_str()) {
            let nested = read_blob(&blob_dir, &chosen, "the nested index")?;
            let nested: Index = serde_json::from_slice(&nested)
                .map_err(|e| bad(format!("the nested index does not parse: {e}")))?;
            chosen = pick(&nested.manifests, "the nested index")?;
            if INDEX_TYPES.contains(&chosen.media_type.as_str()) {
                return Err(bad("an index nested more than one level deep".into()));
            }
        }
        let digest = descriptor_digest(&chosen, "the manifest")?;
        let manifest_bytes = read_blob(&blob_dir, &chosen, "the manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| bad(format!("the manifest does not parse: {e}")))?;
        let media = manifest.media_type.as_deref().unwrap_or(chosen.media_type.as_str());
        if !media.is_empty() && !MANIFEST_TYPES.contains(&media) {
            return Err(bad(format!(
                "the manifest's media type {media:?} is not an image manifest"
            )));
        }
        if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
            return Err(bad(format!(
                "the config's media type {:?} is not an image config",
                manifest.config.media_type
            )));
        }
        if manifest.layers.is_empty() || manifest.layers.len() > LAYERS_MAX {
            return Err(bad(format!(
                "the manifest lists {} layers (1 to {LAYERS_MAX} allowed)",
                manifest.layers.len()
            )));
        }
        let config_digest = descriptor_digest(&manifest.config, "the config")?;
        let config_bytes = read_blob(&blob_dir, &manifest.config, "the config")?;
        let config: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(format!("the config does not parse: {e}")))?;
        if config.os != "linux" || config.architecture != "amd64" {
            return Err(ImageError::Platform(format!("{}/{}", config.os, config.architecture)));
        }
        if config.rootfs.kind != "layers" {
            return Err(bad(format!(
                "the config's rootfs type is {:?}, not layers",
                config.rootfs.kind
            )));
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(bad(format!(
                "the config names {} layers (diff_ids) but the manifest lists {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, (d, diff)) in manifest.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
            let what = format!("layer {i} ({})", d.digest);
            if !d.urls.is_empty() {
                return Err(ImageError::Layer(format!("{what} is fetched from URLs: refused")));
            }
            let compression = layer_compression(&d.media_type)
                .map_err(|e| ImageError::Layer(format!("{what} is {e}")))?;
            let layer_digest = descriptor_digest(d, &what)?;
            check_blob(&blob_dir, d, &what)?;
            let diff_id: Digest = diff
                .parse()
                .map_err(|e| bad(format!("the config's diff_id {i} ({diff:?}): {e}")))?;
            layers.push(Layer { digest: layer_digest, size: d.size, compression, diff_id });
        }
        Ok(Image {
            digest,
            manifest: manifest_bytes,
            config_digest,
            config_bytes,
            run: config.config.unwrap_or_default(),
            layers,
            blob_dir,
        })
    }

    /// The path of a blob of this image's layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir.join(digest.hex())
    }
}

/// The linux/amd64 entry of an index (or its only entry, if that names no platform).
fn pick(list: &[Descriptor], what: &str) -> Result<Descriptor, ImageError> {
    let amd64 = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    };
    if let Some(d) = list.iter().find(amd64) {
        return Ok(d.clone());
    }
    match list {
        [only] if only.platform.is_none() => Ok(only.clone()),
        [] => Err(ImageError::Layout(format!("{what} lists no image"))),
        _ => {
            let platforms: Vec<String> = list
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)))
                .collect();
            Err(ImageError::Platform(if platforms.is_empty() {
                format!("{} images and none says its platform", list.len())
            } else {
                platforms.join(", ")
            }))
        }
    }
}

fn descriptor_digest(d: &Descriptor, what: &str) -> Result<Digest, ImageError> {
    d.digest.parse().map_err(|e| ImageError::Layout(format!("{what}'s digest {:?}: {e}", d.digest)))
}

fn read_small(path: &Path, what: &str) -> Result<Vec<u8>, ImageError> {
    let f = std::fs::File::open(path)
        .map_err(|e| ImageError::Layout(format!("{what} ({}): {e}", path.display())))?;
    let mut bytes = Vec::new();
    f.take(JSON_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::Layout(format!("reading {what}: {e}")))?;
    if bytes.len() as u64 > JSON_MAX {
        return Err(ImageError::Layout(format!("{what} is larger than {JSON_MAX} bytes")));
    }
    Ok(bytes)
}

/// Reads a small blob (an index, manifest or config) and checks its size and digest.
fn read_blob(blob_dir: &Path, d: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
    let digest = descriptor_digest(d, what)?;
    if d.size > JSON_MAX {
        return Err(ImageError::Layout(format!("{what} is {} bytes (at most {JSON_MAX})", d.size)));
    }
    let bytes = read_small(&blob_dir.join(digest.hex()), what)?;
    if bytes.len() as u64 != d.size {
        return Err(ImageError::Mismatch(format!(
            "{what} ({digest}) is {} bytes, its descriptor says {}",
            bytes.len(),
            d.size
        )));
    }
    let got = Digest::of(&bytes);
    if got != digest {
        return Err(ImageError::Mismatch(format!("{what}'s bytes hash to {got}, not {digest}")));
    }
    Ok(bytes)
}

/// Streams a layer blob through SHA-256 and checks its size and digest.
fn check_blob(blob_dir: &Path, d: &Descriptor, what: &str) -> Result<(), ImageError> {
    let digest = descriptor_digest(d, what)?;
    let path = blob_dir.join(digest.hex());
    let f = std::fs::File::open(&path)
        .map_err(|e| ImageError::Layer(format!("{what}: its blob {}: {e}", path.display())))?;
    let (got, size) = crate::sha256_reader(f.take(d.size.saturating_add(1)))
        .map_err(|e| ImageError::Layer(format!("{what}: reading its blob: {e}")))?;
    if size != d.size {
        return Err(ImageError::Mismatch(format!(
            "{what} is {size} bytes or more, its descriptor says {}",
            d.size
        )));
    }
    if got != digest {
        return Err(ImageError::Mismatch(format!("{what}'s bytes hash to {got}")));
    }
    Ok(())
}
