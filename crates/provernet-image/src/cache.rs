//! The node's cache of unpacked layers and composed image roots.
//!
//! ```text
//! <dir>/layers/<hex>        one unpacked layer, shared by every image that has it
//! <dir>/layers/<hex>.json   its report (size, whiteouts) and when it was last used
//! <dir>/roots/<hex>         an image's root: its layers applied in order, as hard links
//! <dir>/roots/<hex>.json    the layers it links to, and when it was last used
//! <dir>/tmp/                work in progress; emptied when the cache opens
//! ```
//!
//! A layer is unpacked once, into `tmp/`, and renamed into place only when complete, so a crash
//! leaves nothing half-made under `layers/`. An image's root is composed from its layers by hard
//! links (no data is copied; the layers' whiteouts and opaque directories are applied as
//! overlayfs would), with the job's mount points (`job`, `tmp`, `dev`, `proc`) made empty real
//! directories whatever the image had there, so that an image cannot redirect a mount target.
//! The sandbox binds that root read-only. Layers are charged to a disk budget and evicted least
//! recently used; a layer or root in use by a job is pinned and never evicted, and an image that
//! does not fit beside the pinned ones is refused.

use crate::unpack::{open_beneath, unpack_layer, LayerReport, UnpackError, UnpackLimits};
use crate::{Digest, Layer};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The job's mount points in an image root: always empty directories the node made.
pub const MOUNT_POINTS: [&str; 4] = ["job", "tmp", "dev", "proc"];

/// Why the cache could not provide a layer or root.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "the image cache is full: {need} bytes more are needed, {free} can be freed without \
         touching the {pinned} layers jobs are using (budget {budget} bytes)"
    )]
    Full { need: u64, free: u64, budget: u64, pinned: usize },
    #[error("layer {layer}: {source}")]
    Unpack { layer: Digest, source: UnpackError },
    #[error("the image cache at {path}: {why}")]
    Io { path: String, why: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> CacheError {
    CacheError::Io { path: path.display().to_string(), why: e.to_string() }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LayerMeta {
    report: LayerReport,
    /// What the layer is charged against the budget.
    charge: u64,
    last_used: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RootMeta {
    layers: Vec<Digest>,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    layers: BTreeMap<Digest, LayerMeta>,
    roots: BTreeMap<Digest, RootMeta>,
    /// How many holders each layer has.
    pins: BTreeMap<Digest, usize>,
    /// Bytes held for unpacks under way (what each declares), so that concurrent unpacks
    /// cannot together pass the budget.
    reserved: u64,
    clock: u64,
    tmp_seq: u64,
}

/// The cache; cheap to clone.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    budget: u64,
    inner: Arc<Mutex<Inner>>,
    /// Unpack layer files in a confined helper (see [`crate::confined`]).
    confine: Option<crate::Confinement>,
}

/// Layers held for a job: none of them is evicted until this is dropped.
#[derive(Debug)]
pub struct Pin {
    layers: Vec<Digest>,
    inner: Arc<Mutex<Inner>>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for d in &self.layers {
            if let Some(n) = g.pins.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    g.pins.remove(d);
                }
            }
        }
    }
}

/// Room held for an unpack under way; given back when it ends, however it ends.
struct Reservation {
    inner: Arc<Mutex<Inner>>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.reserved -= self.bytes;
    }
}

/// A composed image root, pinned while this lives.
#[derive(Debug)]
pub struct ImageRoot {
    pub path: PathBuf,
    pub pin: Pin,
}

/// What a layer is charged: its data, plus a block's worth of metadata per entry.
fn charge(r: &LayerReport) -> u64 {
    r.bytes.saturating_add(r.entries.saturating_mul(512))
}

impl Cache {
    /// Opens (or creates) the cache in `dir` with a budget of `budget` bytes of unpacked layers.
    pub fn open(dir: &Path, budget: u64) -> Result<Cache, CacheError> {
        for sub in ["layers", "roots", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| io(&dir.join(sub), e))?;
        }
        remove_all(&dir.join("tmp"))?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| io(dir, e))?;
        let mut inner = Inner::default();
        for (sub, is_layer) in [("layers", true), ("roots", false)] {
            let base = dir.join(sub);
            for entry in std::fs::read_dir(&base).map_err(|e| io(&base, e))? {
                let entry = entry.map_err(|e| io(&base, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(hex) = name.strip_suffix(".json") else { continue };
                let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else { continue };
                let text = std::fs::read(entry.path()).unwrap_or_default();
                let ok = if is_layer {
                    serde_json::from_slice::<LayerMeta>(&text).ok().map(|m| {
                        inner.clock = inner.clock.max(m.last_used + 1);
                        inner.layers.insert(digest, m);
                    })
                } else {
                    serde_json::from_slice::<RootMeta>(&text).ok().map(|m| {
                        inner.clock = inner.clock.max(m.last_used + 1);
                        inner.roots.insert(digest, m);
                    })
                };
                if ok.is_none() {
                    // A record that does not parse: forget the entry and its files.
                    remove_all(&base.join(hex))?;
                    std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
                }
            }
            // Directories without a record were never finished (or their record was lost).
            for entry in std::fs::read_dir(&base).map_err(|e| io(&base, e))? {
                let entry = entry.map_err(|e| io(&base, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") {
                    continue;
                }
                let known = format!("sha256:{name}").parse::<Digest>().is_ok_and(|d| {
                    if is_layer {
                        inner.layers.contains_key(&d)
                    } else {
                        inner.roots.contains_key(&d)
                    }
                });
                if !known {
                    remove_all(&entry.path())?;
                }
            }
        }
        // A root whose layers are gone is gone too.
        let orphans: Vec<Digest> = inner
            .roots
            .iter()
            .filter(|(_, m)| m.layers.iter().any(|l| !inner.layers.contains_key(l)))
            .map(|(d, _)| *d)
            .collect();
        let cache = Cache {
            dir: dir.to_owned(),
            budget,
            inner: Arc::new(Mutex::new(inner)),
            confine: None,
        };
        for d in orphans {
            let mut g = cache.lock();
            cache.remove_root(&mut g, &d)?;
        }
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes charged by the layers held now.
    pub fn used(&self) -> u64 {
        self.lock().layers.values().map(|m| m.charge).sum()
    }

    /// The disk budget for unpacked layers.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes the budget has left without evicting anything.
    pub fn room(&self) -> u64 {
        self.budget.saturating_sub(self.used())
    }

    /// Whether the layer is unpacked here.
    pub fn has_layer(&self, digest: &Digest) -> bool {
        self.lock().layers.contains_key(digest)
    }

    /// Unpacks layer files ([`Cache::layer_file`]) in a confined helper process.
    pub fn confined(mut self, how: crate::Confinement) -> Cache {
        self.confine = Some(how);
        self
    }

    /// The unpacked layer (unpacking the blob `file` first if it is not here), within
    /// `limits`; in a confined helper if the cache is [`Cache::confined`].
    pub fn layer_file(
        &self,
        layer: &Layer,
        file: std::fs::File,
        limits: UnpackLimits,
    ) -> Result<LayerReport, CacheError> {
        match &self.confine {
            Some(how) => self.layer_with(layer, limits, |dest| {
                crate::confined::unpack_confined(
                    how,
                    file,
                    layer.compression,
                    dest,
                    &layer.diff_id,
                    limits,
                )
            }),
            None => self.layer(layer, file, limits),
        }
    }

    /// The unpacked layer (unpacking `blob` first if it is not here), within `limits`, in this
    /// process.
    pub fn layer(
        &self,
        layer: &Layer,
        blob: impl Read,
        limits: UnpackLimits,
    ) -> Result<LayerReport, CacheError> {
        self.layer_with(layer, limits, |dest| {
            unpack_layer(blob, layer.compression, dest, &layer.diff_id, limits)
        })
    }

    fn layer_with(
        &self,
        layer: &Layer,
        limits: UnpackLimits,
        unpack: impl FnOnce(&Path) -> Result<LayerReport, UnpackError>,
    ) -> Result<LayerReport, CacheError> {
        let need = {
            let mut g = self.lock();
            g.clock += 1;
            let now = g.clock;
            if let Some(m) = g.layers.get_mut(&layer.digest) {
                m.last_used = now;
                let m = m.clone();
                self.write_meta(&self.layer_meta_path(&layer.digest), &m)?;
                return Ok(m.report);
            }
            // Room for what it declares, made before unpacking and held until it ends.
            let need = limits.bytes.saturating_add(limits.entries.saturating_mul(512));
            self.make_room(&mut g, need)?;
            g.reserved += need;
            need
        };
        let _reservation = Reservation { inner: self.inner.clone(), bytes: need };
        let tmp = self.tmp_dir()?;
        let report = match unpack(&tmp) {
            Ok(r) => r,
            Err(source) => {
                remove_all(&tmp)?;
                return Err(CacheError::Unpack { layer: layer.digest, source });
            }
        };
        let mut g = self.lock();
        g.clock += 1;
        let meta =
            LayerMeta { charge: charge(&report), report: report.clone(), last_used: g.clock };
        let dest = self.dir.join("layers").join(layer.digest.hex());
        if g.layers.contains_key(&layer.digest) {
            // Unpacked by someone else meanwhile.
            remove_all(&tmp)?;
            return Ok(report);
        }
        std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))?;
        self.write_meta(&self.layer_meta_path(&layer.digest), &meta)?;
        g.layers.insert(layer.digest, meta);
        Ok(report)
    }

    /// Holds the layers of `digests` that are here (none is evicted until the pin drops): an
    /// image's first layers while its others unpack.
    pub fn pin(&self, digests: &[Digest]) -> Pin {
        let mut g = self.lock();
        let held: Vec<Digest> =
            digests.iter().filter(|d| g.layers.contains_key(d)).copied().collect();
        for d in &held {
            *g.pins.entry(*d).or_default() += 1;
        }
        Pin { layers: held, inner: self.inner.clone() }
    }

    /// The root of image `image` from its `layers` (all unpacked here), pinned.
    pub fn root(&self, image: &Digest, layers: &[Digest]) -> Result<ImageRoot, CacheError> {
        let mut g = self.lock();
        for l in layers {
            if !g.layers.contains_key(l) {
                return Err(CacheError::Io {
                    path: self.dir.display().to_string(),
                    why: format!("layer {l} is not unpacked"),
                });
            }
        }
        for l in layers {
            *g.pins.entry(*l).or_default() += 1;
        }
        let pin = Pin { layers: layers.to_vec(), inner: self.inner.clone() };
        g.clock += 1;
        let now = g.clock;
        let path = self.dir.join("roots").join(image.hex());
        if let Some(m) = g.roots.get_mut(image) {
            if m.layers == layers {
                m.last_used = now;
                let m = m.clone();
                self.write_meta(&self.root_meta_path(image), &m)?;
                return Ok(ImageRoot { path, pin });
            }
            self.remove_root(&mut g, image)?;
        }
        let reports: Vec<(PathBuf, LayerReport)> = layers
            .iter()
            .map(|l| (self.dir.join("layers").join(l.hex()), g.layers[l].report.clone()))
            .collect();
        let tmp = self.tmp_dir_locked(&mut g)?;
        drop(g);
        if let Err(e) = compose(&tmp, &reports) {
            remove_all(&tmp)?;
            return Err(e);
        }
        let mut g = self.lock();
        if g.roots.get(image).is_some_and(|m| m.layers == layers) {
            // Composed by another caller meanwhile: use theirs.
            drop(g);
            remove_all(&tmp)?;
            return Ok(ImageRoot { path, pin });
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        let meta = RootMeta { layers: layers.to_vec(), last_used: now };
        self.write_meta(&self.root_meta_path(image), &meta)?;
        g.roots.insert(*image, meta);
        Ok(ImageRoot { path, pin })
    }

    /// Evicts least recently used, unpinned layers (and the roots made of them) until `need`
    /// more bytes fit the budget; refuses, evicting nothing, if they cannot.
    fn make_room(&self, g: &mut Inner, need: u64) -> Result<(), CacheError> {
        let used: u64 = g.layers.values().map(|m| m.charge).sum::<u64>() + g.reserved;
        let mut victims: Vec<(u64, Digest, u64)> = g
            .layers
            .iter()
            .filter(|(d, _)| !g.pins.contains_key(d))
            .map(|(d, m)| (m.last_used, *d, m.charge))
            .collect();
        victims.sort();
        let free: u64 = victims.iter().map(|v| v.2).sum();
        let target = self.budget.checked_sub(need);
        let fits = target.is_some_and(|t| used.saturating_sub(free) <= t);
        if !fits {
            return Err(CacheError::Full { need, free, budget: self.budget, pinned: g.pins.len() });
        }
        let target = target.unwrap_or(0);
        let mut used = used;
        for (_, d, c) in victims {
            if used <= target {
                break;
            }
            let roots: Vec<Digest> =
                g.roots.iter().filter(|(_, m)| m.layers.contains(&d)).map(|(r, _)| *r).collect();
            for r in roots {
                self.remove_root(g, &r)?;
            }
            std::fs::remove_file(self.layer_meta_path(&d)).map_err(|e| io(&self.dir, e))?;
            remove_all(&self.dir.join("layers").join(d.hex()))?;
            g.layers.remove(&d);
            used -= c;
        }
        Ok(())
    }

    fn remove_root(&self, g: &mut Inner, image: &Digest) -> Result<(), CacheError> {
        let meta = self.root_meta_path(image);
        if meta.exists() {
            std::fs::remove_file(&meta).map_err(|e| io(&meta, e))?;
        }
        remove_all(&self.dir.join("roots").join(image.hex()))?;
        g.roots.remove(image);
        Ok(())
    }

    fn layer_meta_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("layers").join(format!("{}.json", d.hex()))
    }

    fn root_meta_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("roots").join(format!("{}.json", d.hex()))
    }

    fn write_meta(&self, path: &Path, value: &impl Serialize) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(value).map_err(|e| io(path, e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    }

    fn tmp_dir(&self) -> Result<PathBuf, CacheError> {
        let mut g = self.lock();
        self.tmp_dir_locked(&mut g)
    }

    fn tmp_dir_locked(&self, g: &mut Inner) -> Result<PathBuf, CacheError> {
        g.tmp_seq += 1;
        let path = self.dir.join("tmp").join(format!("{}-{}", std::process::id(), g.tmp_seq));
        std::fs::create_dir(&path).map_err(|e| io(&path, e))?;
        Ok(path)
    }
}

/// Removes a directory tree (never following symlinks), if it exists.
fn remove_all(path: &Path) -> Result<(), CacheError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

/// Removes whatever is at `path` (a file, a symlink or a whole directory), not following links.
fn remove_entry(path: &Path) -> Result<(), CacheError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_all(path),
        Ok(_) => std::fs::remove_file(path).map_err(|e| io(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

/// Whether every parent directory of `rel` inside `root` is a real directory (no symlinks):
/// only then may `root/rel` be touched by path.
fn parents_are_dirs(root: &Path, rel: &str) -> Result<bool, CacheError> {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = crate::unpack::open_dir(root).map_err(|e| io(root, e))?;
    for c in &comps[..comps.len().saturating_sub(1)] {
        match open_beneath(&cur, c) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(false),
            Err(e) => return Err(io(root, e)),
        }
    }
    Ok(true)
}

/// Applies the layers, lowest first, into the empty directory `root`.
fn compose(root: &Path, layers: &[(PathBuf, LayerReport)]) -> Result<(), CacheError> {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io(root, e))?;
    for (dir, report) in layers {
        for opaque in &report.opaque {
            if !parents_are_dirs(root, &format!("{opaque}/x"))? {
                continue;
            }
            let target = root.join(opaque);
            let Ok(list) = std::fs::read_dir(&target) else { continue };
            for child in list {
                let child = child.map_err(|e| io(&target, e))?;
                remove_entry(&child.path())?;
            }
        }
        for w in &report.whiteouts {
            if parents_are_dirs(root, w)? {
                remove_entry(&root.join(w))?;
            }
        }
        apply_dir(dir, root)?;
    }
    for m in MOUNT_POINTS {
        let p = root.join(m);
        remove_entry(&p)?;
        std::fs::create_dir(&p).map_err(|e| io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io(&p, e))?;
    }
    Ok(())
}

/// Links the layer directory `from` into `to`, an upper entry replacing a lower one as
/// overlayfs would (a directory over a directory merges; anything else replaces).
fn apply_dir(from: &Path, to: &Path) -> Result<(), CacheError> {
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src).map_err(|e| io(&src, e))?;
        let existing = std::fs::symlink_metadata(&dst).ok();
        if meta.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove_entry(&dst)?;
                    std::fs::create_dir(&dst).map_err(|e| io(&dst, e))?;
                }
                None => std::fs::create_dir(&dst).map_err(|e| io(&dst, e))?,
            }
            std::fs::set_permissions(
                &dst,
                std::fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
            )
            .map_err(|e| io(&dst, e))?;
            apply_dir(&src, &dst)?;
        } else {
            if existing.is_some() {
                remove_entry(&dst)?;
            }
            // link(2) does not follow a symlink: the link is linked, not its target.
            std::fs::hard_link(&src, &dst).map_err(|e| io(&dst, e))?;
        }
    }
    Ok(())
}
