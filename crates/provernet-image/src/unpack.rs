//! Unpacking one layer into a directory of its own, as a hostile layer would try to abuse it.
//!
//! Every entry is created relative to the layer's directory, walking its parents one component
//! at a time with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, and
//! created with `O_EXCL`/`O_NOFOLLOW`: no path resolution ever follows a symlink, whether the
//! layer made it or not. Refused, with the entry named: absolute paths and `..` components
//! (normalized away would silently change what the image means; refusing is clearer), a parent
//! that is a symlink or a file, duplicate entries, hard links to anything this layer did not
//! create before the link, device nodes and FIFOs, sparse and unknown entry types,
//! non-regular entries that carry data, over-long paths and link targets, and a layer that
//! unpacks to more bytes or entries than it declared (a decompression bomb stops there, while
//! unpacking, not after). Neutralized, and listed in the report: setuid, setgid and sticky bits
//! (dropped), extended attributes of any namespace, capabilities and overlay attributes
//! included (never written), and owners (every file belongs to the unpacking user).
//!
//! Whiteouts (`.wh.<name>`) and opaque markers (`.wh..wh..opq`) are not written as files: they
//! are returned in the report, and the cache applies them when it composes an image's root.

use crate::{Compression, Digest};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fchmodat, mkdirat, FchmodatFlags, Mode};
use nix::unistd::{linkat, symlinkat};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// A path in a layer longer than this (in bytes) is refused.
pub const PATH_MAX: usize = 4096;
/// A path component longer than this is refused.
pub const NAME_MAX: usize = 255;

/// What a layer may unpack to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackLimits {
    /// The bytes of file data the layer declared it unpacks to.
    pub bytes: u64,
    /// Entries (files, directories, links, whiteouts).
    pub entries: u64,
}

/// What unpacking a layer found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// SHA-256 of the uncompressed tar stream.
    pub diff_id: Option<Digest>,
    /// Bytes of file data written.
    pub bytes: u64,
    pub entries: u64,
    /// Paths the layer deletes from the layers below it.
    pub whiteouts: Vec<String>,
    /// Directories whose contents from the layers below the layer hides.
    pub opaque: Vec<String>,
    /// What was neutralized rather than refused (bits dropped, attributes not written).
    pub neutralized: Vec<String>,
}

/// Why a layer was refused.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum UnpackError {
    #[error("layer entry {entry:?}: {why}")]
    Entry { entry: String, why: String },
    #[error(
        "the layer unpacks to more than the {declared} bytes it declared (at entry {entry:?})"
    )]
    TooLarge { declared: u64, entry: String },
    #[error("the layer has more than the {0} entries allowed")]
    TooManyEntries(u64),
    #[error("the layer's tar stream is malformed: {0}")]
    Tar(String),
    #[error(
        "the layer's uncompressed tar hashes to {got}, but the image's config says {expected}"
    )]
    DiffId { expected: Digest, got: Digest },
    #[error("{0}")]
    Io(String),
}

fn entry_err(entry: &str, why: impl Into<String>) -> UnpackError {
    UnpackError::Entry { entry: entry.to_owned(), why: why.into() }
}

/// A reader that hashes what passes through it and refuses to pass more than `cap` bytes.
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(std::io::Error::other(format!(
                "the uncompressed tar stream is longer than {} bytes",
                self.cap
            )));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the layer `blob` (compressed as `compression`) into the empty directory `dest`,
/// checking that its uncompressed tar hashes to `diff_id`.
pub fn unpack_layer(
    blob: impl Read,
    compression: Compression,
    dest: &Path,
    diff_id: &Digest,
    limits: UnpackLimits,
) -> Result<LayerReport, UnpackError> {
    let root = open_dir(dest).map_err(|e| UnpackError::Io(format!("{}: {e}", dest.display())))?;
    unpack_layer_at(blob, compression, root, diff_id, limits)
}

/// [`unpack_layer`] into a directory already open (a confined helper opens it before it drops
/// its privileges, so it needs no right to the path above it).
pub fn unpack_layer_at(
    blob: impl Read,
    compression: Compression,
    root: OwnedFd,
    diff_id: &Digest,
    limits: UnpackLimits,
) -> Result<LayerReport, UnpackError> {
    let decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(blob)
                .map_err(|e| UnpackError::Tar(format!("starting zstd: {e}")))?,
        ),
    };
    // Headers and padding take at most a few blocks per entry beyond the data itself.
    let cap = limits
        .bytes
        .saturating_add(limits.entries.saturating_add(16).saturating_mul(4 * 512))
        .saturating_add(1 << 20);
    let hashing = Hashing { inner: decoded, hash: sha2::Sha256::new(), read: 0, cap };
    let mut archive = tar::Archive::new(hashing);
    let mut u = Unpacker {
        root,
        limits,
        report: LayerReport::default(),
        seen: BTreeSet::new(),
        linkable: BTreeSet::new(),
    };
    {
        let entries = archive.entries().map_err(|e| UnpackError::Tar(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| UnpackError::Tar(e.to_string()))?;
            u.entry(entry)?;
        }
    }
    // The rest of the stream (end-of-archive blocks, padding) counts toward the diff_id.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| UnpackError::Tar(e.to_string()))?;
    let got = Digest(rest.hash.finalize().into());
    if got != *diff_id {
        return Err(UnpackError::DiffId { expected: *diff_id, got });
    }
    // Durable before the cache renames it into place.
    nix::unistd::syncfs(u.root.as_fd()).map_err(|e| UnpackError::Io(format!("syncfs: {e}")))?;
    u.report.diff_id = Some(got);
    Ok(u.report)
}

struct Unpacker {
    root: OwnedFd,
    limits: UnpackLimits,
    report: LayerReport,
    /// Paths the layer named explicitly (a second mention is a duplicate).
    seen: BTreeSet<String>,
    /// Files and symlinks this layer created: the only targets a hard link may have.
    linkable: BTreeSet<String>,
}

/// A layer path split into components, after checks; `""` for the root.
fn components(entry: &str, raw: &[u8]) -> Result<Vec<String>, UnpackError> {
    if raw.len() > PATH_MAX {
        return Err(entry_err(entry, format!("a path longer than {PATH_MAX} bytes")));
    }
    let text =
        std::str::from_utf8(raw).map_err(|_| entry_err(entry, "a path that is not UTF-8"))?;
    if text.starts_with('/') {
        return Err(entry_err(entry, "an absolute path"));
    }
    let mut out = Vec::new();
    for c in text.split('/') {
        match c {
            "" | "." => continue,
            ".." => return Err(entry_err(entry, "a path with a `..` component")),
            c if c.len() > NAME_MAX => {
                return Err(entry_err(entry, format!("a name longer than {NAME_MAX} bytes")))
            }
            c if c.contains('\0') => return Err(entry_err(entry, "a NUL in its path")),
            c => out.push(c.to_owned()),
        }
    }
    Ok(out)
}

fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

/// Opens a directory to create entries in (its path may be followed: it is the caller's).
pub fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
}

/// Opens the directory `name` inside `dir`, never through a symlink.
pub(crate) fn open_beneath(dir: impl AsFd, name: &str) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(beneath());
    openat2(dir, name, how)
}

impl Unpacker {
    /// The directory holding `comps`' last component, created (0755) where missing.
    fn parent(&self, entry: &str, comps: &[String], create: bool) -> Result<OwnedFd, UnpackError> {
        let mut cur = open_beneath(self.root.as_fd(), ".")
            .map_err(|e| UnpackError::Io(format!("the layer directory: {e}")))?;
        let parents = &comps[..comps.len().saturating_sub(1)];
        for (i, c) in parents.iter().enumerate() {
            let prefix = parents[..=i].join("/");
            let next = match open_beneath(cur.as_fd(), c) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(cur.as_fd(), c.as_str(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| entry_err(entry, format!("creating {prefix}: {e}")))?;
                    open_beneath(cur.as_fd(), c)
                        .map_err(|e| entry_err(entry, format!("opening {prefix}: {e}")))?
                }
                Err(Errno::ELOOP) => {
                    return Err(entry_err(entry, format!("writes through the symlink {prefix:?}")))
                }
                Err(Errno::ENOTDIR) => {
                    return Err(entry_err(
                        entry,
                        format!("its parent {prefix:?} is not a directory"),
                    ))
                }
                Err(e) => return Err(entry_err(entry, format!("opening {prefix}: {e}"))),
            };
            cur = next;
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = e.path_bytes().into_owned();
        let entry = String::from_utf8_lossy(&raw).into_owned();
        let kind = e.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        self.report.entries += 1;
        if self.report.entries > self.limits.entries {
            return Err(UnpackError::TooManyEntries(self.limits.entries));
        }
        let comps = components(&entry, &raw)?;
        let size = e.size();
        if size > 0 && !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(entry_err(
                &entry,
                format!("a {kind:?} entry that carries {size} bytes of data"),
            ));
        }
        let Some(name) = comps.last().cloned() else {
            // The layer's root ("./"): nothing to create.
            return Ok(());
        };
        let path = comps.join("/");
        if let Ok(Some(pax)) = e.pax_extensions() {
            for ext in pax.flatten() {
                if let Ok(key) = ext.key() {
                    if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                        self.report
                            .neutralized
                            .push(format!("{path}: attribute {attr} not written"));
                    }
                }
            }
        }
        // Whiteouts are recorded, not written.
        if let Some(target) = name.strip_prefix(".wh.") {
            let dir = comps[..comps.len() - 1].join("/");
            if target == ".wh..opq" {
                self.report.opaque.push(dir);
            } else if target.is_empty()
                || target == "."
                || target == ".."
                || target.starts_with(".wh.")
            {
                return Err(entry_err(&entry, "a whiteout of no valid name"));
            } else {
                let whited =
                    if dir.is_empty() { target.to_owned() } else { format!("{dir}/{target}") };
                self.report.whiteouts.push(whited);
            }
            return Ok(());
        }
        let is_dir = matches!(kind, tar::EntryType::Directory);
        if !self.seen.insert(path.clone()) {
            return Err(entry_err(&entry, "a duplicate entry (the layer names this path twice)"));
        }
        let mode =
            e.header().mode().map_err(|err| entry_err(&entry, format!("its mode: {err}")))?;
        if mode & 0o7000 != 0 && !is_dir {
            self.report
                .neutralized
                .push(format!("{path}: setuid/setgid/sticky bits {:o} dropped", mode & 0o7000));
        }
        let perms = Mode::from_bits_truncate(mode & 0o777);
        let parent = self.parent(&entry, &comps, true)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let written = self.report.bytes.saturating_add(size);
                if written > self.limits.bytes {
                    return Err(UnpackError::TooLarge { declared: self.limits.bytes, entry });
                }
                let how = OpenHow::new()
                    .flags(
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                    )
                    .mode(Mode::from_bits_truncate(0o600))
                    .resolve(beneath());
                let fd = openat2(parent.as_fd(), name.as_str(), how)
                    .map_err(|err| exists(&entry, err, "creating the file"))?;
                let mut file = std::fs::File::from(fd);
                let copied = std::io::copy(&mut (&mut e).take(size), &mut file)
                    .map_err(|err| UnpackError::Tar(format!("{entry}: reading its data: {err}")))?;
                if copied != size {
                    return Err(entry_err(
                        &entry,
                        format!("its data ends after {copied} of {size} bytes"),
                    ));
                }
                file.flush().map_err(|err| UnpackError::Io(format!("{entry}: {err}")))?;
                fchmod(file.as_fd(), perms)
                    .map_err(|err| UnpackError::Io(format!("{entry}: {err}")))?;
                self.report.bytes = written;
                self.linkable.insert(path);
            }
            tar::EntryType::Directory => {
                // The owner keeps rwx so the layer's own entries (and eviction) can be written;
                // the job runs as another user on a read-only root.
                let dir_mode = Mode::from_bits_truncate((mode & 0o777) | 0o700);
                match mkdirat(parent.as_fd(), name.as_str(), dir_mode) {
                    Ok(()) => {}
                    // Created before as the parent of an earlier entry: not a duplicate.
                    Err(Errno::EEXIST) if open_beneath(parent.as_fd(), &name).is_ok() => {}
                    Err(err) => return Err(exists(&entry, err, "creating the directory")),
                }
                fchmodat(parent.as_fd(), name.as_str(), dir_mode, FchmodatFlags::NoFollowSymlink)
                    .map_err(|err| UnpackError::Io(format!("{entry}: {err}")))?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&entry, "a symlink without a target"))?;
                if target.is_empty() || target.len() > PATH_MAX || target.contains(&0) {
                    return Err(entry_err(
                        &entry,
                        "a symlink whose target is empty, too long or has a NUL",
                    ));
                }
                let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target);
                symlinkat(target, parent.as_fd(), name.as_str())
                    .map_err(|err| exists(&entry, err, "creating the symlink"))?;
                self.linkable.insert(path);
            }
            tar::EntryType::Link => {
                let raw_target = e
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&entry, "a hard link without a target"))?
                    .into_owned();
                let target = components(&entry, &raw_target)?;
                let joined = target.join("/");
                if !self.linkable.contains(&joined) {
                    return Err(entry_err(
                        &entry,
                        format!(
                            "a hard link to {joined:?}, which is not a file this layer created \
                             before it"
                        ),
                    ));
                }
                let tparent = self.parent(&entry, &target, false)?;
                let tname = target.last().map(String::as_str).unwrap_or(".");
                linkat(
                    tparent.as_fd(),
                    tname,
                    parent.as_fd(),
                    name.as_str(),
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(|err| exists(&entry, err, "creating the hard link"))?;
                self.linkable.insert(path);
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(entry_err(&entry, "a device node: images may not carry devices"))
            }
            tar::EntryType::Fifo => {
                return Err(entry_err(&entry, "a FIFO: images may not carry one"))
            }
            other => return Err(entry_err(&entry, format!("an unsupported entry type {other:?}"))),
        }
        Ok(())
    }
}

fn exists(entry: &str, err: Errno, doing: &str) -> UnpackError {
    match err {
        Errno::EEXIST => entry_err(entry, "a duplicate entry (the path exists already)"),
        Errno::ELOOP => entry_err(entry, "writes through a symlink"),
        e => entry_err(entry, format!("{doing}: {e}")),
    }
}
