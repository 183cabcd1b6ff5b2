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

/// The layer of the libraries `exe` loads here (and the C library's others that runtimes load,
/// `libm`, `libdl`, `libpthread`, `librt`, `libgcc_s`, where this machine has them).
fn library_layer(exe: &Path) -> std::io::Result<Vec<FileEntry>> {
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
    Ok(libs
        .iter()
        .map(|l| FileEntry {
            path: l.to_string_lossy().into_owned(),
            source: l.clone(),
            mode: 0o755,
        })
        .collect())
}

fn entrypoint(path: &str) -> RunConfig {
    RunConfig {
        entrypoint: Some(vec![path.to_owned()]),
        env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()]),
        working_dir: Some("/".into()),
        ..RunConfig::default()
    }
}

/// An image of the executable `exe` as `/usr/local/bin/<name>` (its entrypoint) over a layer
/// of the libraries it loads here (see [`library_layer`]).
pub fn executable_image(dir: &Path, exe: &Path, name: &str) -> std::io::Result<Digest> {
    let lib_layer = library_layer(exe)?;
    let exe_path = format!("/usr/local/bin/{name}");
    let exe_layer = vec![FileEntry { path: exe_path.clone(), source: exe.to_owned(), mode: 0o755 }];
    write_layout(dir, &[lib_layer, exe_layer], &entrypoint(&exe_path))
}

/// What a file is, as a program: how it must travel to run on a node that shows a program
/// nothing of its own files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executable {
    /// A static ELF executable: it runs alone.
    Static,
    /// An ELF executable that needs a loader and libraries (`PT_INTERP`).
    Dynamic,
    /// A `#!` script, and its interpreter.
    Script { interpreter: PathBuf },
}

/// What `path` is as a program, from its first bytes (an ELF's program headers, or a `#!`
/// line); an error names what it is not.
pub fn classify(path: &Path) -> std::io::Result<Executable> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head)?;
    if n >= 2 && &head[..2] == b"#!" {
        let mut line = Vec::new();
        f.seek(SeekFrom::Start(2))?;
        for b in std::io::BufReader::new(f).bytes().take(256) {
            let b = b?;
            if b == b'\n' {
                break;
            }
            line.push(b);
        }
        let line = String::from_utf8_lossy(&line);
        let interpreter = line.split_whitespace().next().unwrap_or("");
        if !interpreter.starts_with('/') {
            return Err(err(format!(
                "{}: the `#!` line names no absolute interpreter",
                path.display()
            )));
        }
        return Ok(Executable::Script { interpreter: PathBuf::from(interpreter) });
    }
    if n < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return Err(err(format!(
            "{} is neither a Linux ELF executable nor a `#!` script (64-bit, little-endian ELF)",
            path.display()
        )));
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().map_err(err)?);
    let (phentsize, phnum) = (u64::from(u16_at(0x36)), u64::from(u16_at(0x38)));
    if phentsize < 4 || phnum > 4096 {
        return Err(err(format!("{}: malformed ELF program headers", path.display())));
    }
    for i in 0..phnum {
        f.seek(SeekFrom::Start(phoff + i * phentsize))?;
        let mut kind = [0u8; 4];
        f.read_exact(&mut kind)?;
        // PT_INTERP: the program names a loader.
        if u32::from_le_bytes(kind) == 3 {
            return Ok(Executable::Dynamic);
        }
    }
    Ok(Executable::Static)
}

/// An image of the script `script` as `/usr/local/bin/<name>` (its entrypoint), with its
/// interpreter at the path its `#!` line names and the libraries the interpreter loads. Only
/// the interpreter comes along: a script that runs other programs needs an image of its own.
pub fn script_image(dir: &Path, script: &Path, name: &str) -> std::io::Result<Digest> {
    let Executable::Script { interpreter } = classify(script)? else {
        return Err(err(format!("{} is not a script", script.display())));
    };
    if interpreter.file_name().is_some_and(|n| n == "env") {
        return Err(err(format!(
            "{}: `#!{}` finds its interpreter on the PATH, which a packaged script does not \
             have; name the interpreter's absolute path, or build an image",
            script.display(),
            interpreter.display()
        )));
    }
    let source = std::fs::canonicalize(&interpreter)
        .map_err(|e| err(format!("the interpreter {}: {e}", interpreter.display())))?;
    if matches!(classify(&source)?, Executable::Script { .. }) {
        return Err(err(format!("the interpreter {} is itself a script", interpreter.display())));
    }
    let mut base = library_layer(&source)?;
    base.push(FileEntry { path: interpreter.to_string_lossy().into_owned(), source, mode: 0o755 });
    let path = format!("/usr/local/bin/{name}");
    let top = vec![FileEntry { path: path.clone(), source: script.to_owned(), mode: 0o755 }];
    write_layout(dir, &[base, top], &entrypoint(&path))
}

/// Packages `exe` as an image in `dir` when it cannot run alone: a dynamically linked
/// executable with the libraries it loads here, a script with its interpreter. `None` for a
/// static executable, which runs as it is.
pub fn package(dir: &Path, exe: &Path, name: &str) -> std::io::Result<Option<Digest>> {
    match classify(exe)? {
        Executable::Static => Ok(None),
        Executable::Dynamic => executable_image(dir, exe, name).map(Some),
        Executable::Script { .. } => script_image(dir, exe, name).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_told_apart_by_their_headers() {
        // Debian's `ldconfig` is static-pie; `sh` needs the loader.
        assert_eq!(classify(Path::new("/sbin/ldconfig")).expect("ldconfig"), Executable::Static);
        assert_eq!(classify(Path::new("/bin/sh")).expect("sh"), Executable::Dynamic);
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("prove.sh");
        std::fs::write(&script, "#!/bin/sh -e\nexit 0\n").expect("write");
        assert_eq!(
            classify(&script).expect("script"),
            Executable::Script { interpreter: PathBuf::from("/bin/sh") }
        );
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "echo not a program\n").expect("write");
        let e = classify(&text).expect_err("text");
        assert!(e.to_string().contains("neither a Linux ELF executable nor a `#!` script"), "{e}");
        let relative = dir.path().join("rel.sh");
        std::fs::write(&relative, "#!sh\n").expect("write");
        assert!(classify(&relative).is_err(), "a relative interpreter");
        let env = dir.path().join("env.sh");
        std::fs::write(&env, "#!/usr/bin/env sh\n").expect("write");
        let e = script_image(&dir.path().join("env-image"), &env, "env.sh").expect_err("env");
        assert!(e.to_string().contains("absolute path"), "{e}");
    }

    #[test]
    fn a_script_is_packaged_with_its_interpreter_and_a_static_executable_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("prove.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi > /job/out/proof\n").expect("write");
        let layout = dir.path().join("layout");
        let digest = package(&layout, &script, "prove.sh").expect("package").expect("an image");
        let image = crate::Image::from_layout(&layout).expect("a valid layout");
        assert_eq!(image.digest, digest);
        assert_eq!(image.run.argv(), ["/usr/local/bin/prove.sh"]);
        // The interpreter sits at the path its `#!` line names, over its libraries.
        let mut names = Vec::new();
        for l in &image.layers {
            let file = std::fs::File::open(image.blob_path(&l.digest)).expect("layer");
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
            for e in tar.entries().expect("entries") {
                names.push(e.expect("entry").path().expect("path").to_string_lossy().into_owned());
            }
        }
        assert!(names.iter().any(|n| n == "bin/sh"), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("libc.so.6")), "{names:?}");
        assert!(names.iter().any(|n| n == "usr/local/bin/prove.sh"), "{names:?}");
        assert_eq!(
            package(&dir.path().join("s"), Path::new("/sbin/ldconfig"), "l").expect("ok"),
            None
        );
    }
}
