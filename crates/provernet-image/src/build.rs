//! Writing an OCI image layout from files on this machine, reproducibly (fixed times and owners,
//! entries sorted): how the devnet packages a prover and the libraries it loads as an image, and
//! a small stand-in for `docker build` where no container engine runs.

use crate::oci::RunConfig;
use crate::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One file of a layer: where it goes in the image, where it is here, and its mode.
#[derive(Clone, Debug)]
pub struct FileEntry {
    pub path: String,
    pub source: PathBuf,
    pub mode: u32,
}

fn err(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// A gzip-compressed layer of `files` (their parent directories added), and its diff_id.
fn layer(files: &[FileEntry]) -> std::io::Result<(Vec<u8>, Digest)> {
    let mut entries: Vec<&FileEntry> = files.iter().collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dirs = std::collections::BTreeSet::new();
    for f in &entries {
        let mut p = Path::new(f.path.trim_start_matches('/'));
        while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(parent.to_string_lossy().into_owned());
            p = parent;
        }
    }
    let mut tar = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for f in entries {
        let bytes =
            std::fs::read(&f.source).map_err(|e| err(format!("{}: {e}", f.source.display())))?;
        let mut h = header(tar::EntryType::Regular, f.mode, bytes.len() as u64);
        tar.append_data(&mut h, f.path.trim_start_matches('/'), &bytes[..])?;
    }
    let raw = tar.into_inner()?;
    let diff_id = Digest::of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw)?;
    Ok((gz.finish()?, diff_id))
}

fn put_blob(dir: &Path, bytes: &[u8]) -> std::io::Result<Digest> {
    let d = Digest::of(bytes);
    std::fs::write(dir.join("blobs/sha256").join(d.hex()), bytes)?;
    Ok(d)
}

/// Writes an OCI layout of a linux/amd64 image with these layers (lowest first) and run
/// configuration into the directory `dir` (created); the manifest's digest.
pub fn write_layout(
    dir: &Path,
    layers: &[Vec<FileEntry>],
    run: &RunConfig,
) -> std::io::Result<Digest> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let (gz, diff_id) = layer(files)?;
        let d = put_blob(dir, &gz)?;
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d.to_string(),
            "size": gz.len(),
        }));
        diff_ids.push(diff_id.to_string());
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).map_err(err)?;
    let cd = put_blob(dir, &config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descriptors,
    });
    let manifest = serde_json::to_vec(&manifest).map_err(err)?;
    let md = put_blob(dir, &manifest)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(),
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).map_err(err)?)?;
    Ok(md)
}

/// The shared libraries a dynamically linked `exe` loads on this machine, as the loader would
/// find them (from `ldd`): what an image of it must carry besides the executable.
pub fn shared_libraries(exe: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd").arg(exe).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(err(format!(
            "ldd {}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// An image of the executable `exe` as `/usr/local/bin/<name>` (its entrypoint) over a layer
/// of the libraries it loads here (and the C library's others that runtimes load, `libm`,
/// `libdl`, `libpthread`, `librt`, `libgcc_s`, where this machine has them).
pub fn executable_image(dir: &Path, exe: &Path, name: &str) -> std::io::Result<Digest> {
    let mut libs = shared_libraries(exe)?;
    if let Some(libc_dir) = libs
        .iter()
        .find(|l| l.ends_with("libc.so.6"))
        .and_then(|l| l.parent())
        .map(Path::to_path_buf)
    {
        for extra in ["libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libgcc_s.so.1"] {
            let p = libc_dir.join(extra);
            if p.exists() && !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    let lib_layer: Vec<FileEntry> = libs
        .iter()
        .map(|l| FileEntry {
            path: l.to_string_lossy().into_owned(),
            source: l.clone(),
            mode: 0o755,
        })
        .collect();
    let exe_path = format!("/usr/local/bin/{name}");
    let exe_layer = vec![FileEntry { path: exe_path.clone(), source: exe.to_owned(), mode: 0o755 }];
    let run = RunConfig {
        entrypoint: Some(vec![exe_path]),
        env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()]),
        working_dir: Some("/".into()),
        ..RunConfig::default()
    };
    write_layout(dir, &[lib_layer, exe_layer], &run)
}
