//! Images as programs: what `program deploy --image` measures and declares, and what a node
//! checks and prepares before it runs a job of an image program.

use crate::cache::{Cache, CacheError, ImageRoot};
use crate::oci::{Image, RunConfig};
use crate::unpack::{LayerReport, UnpackLimits};
use crate::{Digest, ImageError};
use provernet_types::limits::{IMAGE_UNPACKED_MAX, LAYER_ENTRIES_MAX};
use provernet_types::{BlobRef, ImageRef};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Entries an image archive may hold.
pub const ARCHIVE_ENTRIES_MAX: u64 = 100_000;

/// Why an image program could not be prepared (or deployed).
#[derive(Debug, thiserror::Error)]
pub enum ProgramImageError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Other(String),
    /// This machine's files failed (not the image's fault: another try may work).
    #[error("the node's disk: {0}")]
    Io(String),
}

fn other(what: impl std::fmt::Display) -> ProgramImageError {
    ProgramImageError::Other(what.to_string())
}

fn local(what: impl std::fmt::Display) -> ProgramImageError {
    ProgramImageError::Io(what.to_string())
}

/// Writes `bytes` to `path` whole or not at all (a reader never sees half a file, however
/// many write it at once).
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), ProgramImageError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| local(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| local(format!("{}: {e}", path.display())))
}

/// Copies the OCI layout inside an archive (`podman save --format oci-archive`, `docker
/// buildx --output type=oci,dest=…`, `skopeo copy … oci-archive:`) into the empty directory
/// `dest`: only `oci-layout`, `index.json` and `blobs/sha256/<digest>` regular files are taken
/// (a legacy `manifest.json` and anything else is ignored), never following a path outside it.
pub fn extract_layout_archive(archive: impl Read, dest: &Path) -> Result<(), ProgramImageError> {
    let mut tar = tar::Archive::new(archive);
    let entries = tar.entries().map_err(|e| other(format!("reading the image archive: {e}")))?;
    std::fs::create_dir_all(dest.join("blobs/sha256")).map_err(other)?;
    for (n, entry) in entries.enumerate() {
        if n as u64 >= ARCHIVE_ENTRIES_MAX {
            return Err(other(format!("the image archive has over {ARCHIVE_ENTRIES_MAX} entries")));
        }
        let mut entry = entry.map_err(|e| other(format!("reading the image archive: {e}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let name = name.trim_start_matches("./");
        let target = match name {
            "oci-layout" | "index.json" => dest.join(name),
            _ => match name.strip_prefix("blobs/sha256/") {
                Some(hex) if format!("sha256:{hex}").parse::<Digest>().is_ok() => {
                    dest.join("blobs/sha256").join(hex)
                }
                _ => continue,
            },
        };
        let mut f = std::fs::File::create(&target).map_err(other)?;
        std::io::copy(&mut entry, &mut f)
            .map_err(|e| other(format!("extracting {name} from the image archive: {e}")))?;
    }
    if !dest.join("index.json").is_file() {
        return Err(other(
            "the archive holds no index.json: it is not an OCI image archive (a `docker save` \
             older than Engine 25 writes another format; use `docker buildx build --output \
             type=oci,dest=prover.tar` or `skopeo copy docker-daemon:IMAGE oci-archive:prover.tar`)",
        ));
    }
    Ok(())
}

/// The OCI layout at `path`: the directory itself, or the archive extracted into `work`.
pub fn open_layout(path: &Path, work: &Path) -> Result<PathBuf, ProgramImageError> {
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    let f = std::fs::File::open(path).map_err(|e| other(format!("{}: {e}", path.display())))?;
    extract_layout_archive(std::io::BufReader::new(f), work)?;
    Ok(work.to_owned())
}

/// An image from a local layout or archive, unpacked into `cache` under the chain's bounds and
/// composed into a root: what `provernet program run --image` runs.
pub fn prepare_local(
    path: &Path,
    cache: &Cache,
    work: &Path,
) -> Result<Prepared, ProgramImageError> {
    let dir = open_layout(path, work)?;
    let image = Image::from_layout(&dir)?;
    let mut left = IMAGE_UNPACKED_MAX.0;
    let mut held = Vec::new();
    for l in &image.layers {
        let limits = UnpackLimits { bytes: left, entries: u64::from(LAYER_ENTRIES_MAX) };
        let blob = std::fs::File::open(image.blob_path(&l.digest)).map_err(other)?;
        left -= cache.layer_file(l, blob, limits)?.bytes;
        held.push(cache.pin(&[l.digest]));
    }
    let digests: Vec<Digest> = image.layers.iter().map(|l| l.digest).collect();
    let root = cache.root(&image.digest, &digests)?;
    Ok(Prepared { root, run: image.run })
}

/// Unpacks every layer of `image` into a scratch cache in `scratch`, under the chain's bounds:
/// what each unpacks to, which `program deploy` declares (and nodes then enforce). A layer a
/// node would refuse is refused here first, with the same error.
pub fn measure(image: &Image, scratch: &Path) -> Result<Vec<LayerReport>, ProgramImageError> {
    let cache = Cache::open(scratch, u64::MAX)?;
    let mut left = IMAGE_UNPACKED_MAX.0;
    let mut out = Vec::new();
    for l in &image.layers {
        let limits = UnpackLimits { bytes: left, entries: u64::from(LAYER_ENTRIES_MAX) };
        let blob = std::fs::File::open(image.blob_path(&l.digest)).map_err(other)?;
        let report = cache.layer_file(l, blob, limits)?;
        left -= report.bytes;
        out.push(report);
    }
    Ok(out)
}

/// An image program ready to run: its root (pinned in the cache) and its run configuration.
#[derive(Debug)]
pub struct Prepared {
    pub root: ImageRoot,
    pub run: RunConfig,
}

/// Checks the chain's record of an image against its blobs and prepares its root.
///
/// `blob` gives the local file of a blob (already fetched and checked against its BLAKE3
/// hash). The blobs are linked into an OCI layout in `layout_dir` under their SHA-256 names, and
/// the layout is read as any other: the manifest must hash to the digest the program committed
/// to, the config and layers it names must be the chain's, in order, and each layer unpacks
/// only within what the program declared.
pub fn prepare(
    cache: &Cache,
    image: &ImageRef,
    blob: impl Fn(&BlobRef) -> PathBuf,
    layout_dir: &Path,
) -> Result<Prepared, ProgramImageError> {
    // An image that declares more than this node's whole cache can never run here: say so
    // before fetching or unpacking anything (the node claims it as the program's failure,
    // which other provers confirm or refute, rather than missing the deadline).
    let declared: u64 = image
        .layers
        .iter()
        .map(|l| l.unpacked.0.saturating_add(u64::from(l.entries).saturating_mul(512)))
        .fold(0, u64::saturating_add);
    if declared > cache.budget() {
        return Err(other(format!(
            "the image unpacks to {declared} bytes (with its entries), more than this node's \
             image cache of {} bytes",
            cache.budget()
        )));
    }
    let digest = Digest(image.digest);
    let blobs_dir = layout_dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).map_err(local)?;
    let place = |b: &BlobRef, known: Option<Digest>| -> Result<Digest, ProgramImageError> {
        let src = blob(b);
        let d = match known {
            Some(d) => d,
            None => {
                crate::sha256_reader(std::fs::File::open(&src).map_err(local)?).map_err(local)?.0
            }
        };
        let dst = blobs_dir.join(d.hex());
        match std::fs::hard_link(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // Another filesystem: a copy, put in place whole.
            Err(_) => write_whole(&dst, &std::fs::read(&src).map_err(local)?).map_err(|e| {
                local(format!("linking blob {} into the image layout: {e}", b.hash))
            })?,
        }
        Ok(d)
    };
    place(&image.manifest, Some(digest))?;
    place(&image.config, None)?;
    let mut chain_layers = Vec::new();
    for l in image.layers.iter() {
        chain_layers.push(place(&l.blob, None)?);
    }
    write_whole(&layout_dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{}}}]}}"#,
        image.manifest.size.0
    );
    write_whole(&layout_dir.join("index.json"), index.as_bytes())?;
    let oci = Image::from_layout(layout_dir)?;
    let named: Vec<Digest> = oci.layers.iter().map(|l| l.digest).collect();
    if named != chain_layers {
        return Err(other(format!(
            "the image's manifest names layers {named:?}, but the program lists {chain_layers:?}"
        )));
    }
    // Each layer is held once here, so unpacking the next cannot evict it to make room.
    let mut held = Vec::new();
    for (l, declared) in oci.layers.iter().zip(image.layers.iter()) {
        let limits =
            UnpackLimits { bytes: declared.unpacked.0, entries: u64::from(declared.entries) };
        let file = std::fs::File::open(oci.blob_path(&l.digest)).map_err(local)?;
        cache.layer_file(l, file, limits)?;
        held.push(cache.pin(&[l.digest]));
    }
    let root = cache.root(&oci.digest, &named)?;
    drop(held);
    Ok(Prepared { root, run: oci.run })
}

impl RunConfig {
    /// What to execute, as Docker does with no arguments: Entrypoint followed by Cmd.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.entrypoint.clone().unwrap_or_default();
        v.extend(self.cmd.clone().unwrap_or_default());
        v
    }

    /// The image's Env as pairs (entries without `=` are ignored, as Docker does).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    }

    /// WorkingDir, or `/`.
    pub fn workdir(&self) -> String {
        self.working_dir.clone().filter(|w| w.starts_with('/')).unwrap_or_else(|| "/".into())
    }
}
