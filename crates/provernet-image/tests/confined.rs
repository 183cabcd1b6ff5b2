//! Unpacking in the confined helper: an unprivileged uid of its own, fresh namespaces, the
//! layer on its stdin. Honest layers unpack the same, owned by that uid; hostile ones are
//! refused with the same errors as in process. Needs root (to drop to the helper's uid), as
//! the prover node has.

mod common;

use common::*;
use provernet_image::{
    Cache, CacheError, Compression, Confinement, Digest, Layer, UnpackError, UnpackLimits,
};
use std::os::unix::fs::MetadataExt;

const UID: u32 = 65533;
const LIMITS: UnpackLimits = UnpackLimits { bytes: 1 << 20, entries: 100 };

/// A confined cache in `dir/cache`, under a directory the helper's uid cannot enter (as a
/// node's data directory may be): it works on the directory it opened before dropping root.
fn confined_cache(dir: &std::path::Path) -> Cache {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_provernet-unpack"));
    Cache::open(&dir.join("cache"), 64 << 20)
        .expect("cache")
        .confined(Confinement { exe, uid: UID })
}

/// A gzip layer of `entries`, written to a file (the helper reads it on its stdin).
fn layer_file(dir: &std::path::Path, name: &str, entries: &[Entry]) -> (Layer, std::fs::File) {
    let t = tar(entries);
    let gz = gzip(&t);
    let path = dir.join(name);
    std::fs::write(&path, &gz).expect("write");
    let layer = Layer {
        digest: Digest::of(&gz),
        size: gz.len() as u64,
        compression: Compression::Gzip,
        diff_id: Digest::of(&t),
    };
    (layer, std::fs::File::open(path).expect("open"))
}

fn root() -> bool {
    let me = nix::unistd::geteuid().is_root();
    assert!(me || std::env::var_os("CI").is_none(), "CI runs these tests as root");
    me
}

#[test]
fn an_honest_layer_unpacks_confined_and_belongs_to_the_helpers_uid() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = confined_cache(tmp.path());
    let (layer, file) = layer_file(
        tmp.path(),
        "ok.tar.gz",
        &[dir("usr"), file_mode("usr/prove", b"#!/bin/sh\n", 0o4755), symlink("bin", "usr")],
    );
    let report = cache.layer_file(&layer, file, LIMITS).expect("unpacked");
    assert_eq!(report.neutralized.len(), 1, "the setuid bit was dropped: {report:?}");
    let unpacked = tmp.path().join("cache/layers").join(layer.digest.hex());
    let meta = std::fs::metadata(unpacked.join("usr/prove")).expect("file");
    assert_eq!(meta.uid(), UID, "written by the helper's uid, not root");
    assert_eq!(meta.mode() & 0o7777, 0o755);
    let root = cache.root(&Digest::of(b"img"), &[layer.digest]).expect("root");
    assert_eq!(std::fs::read(root.path.join("usr/prove")).expect("read"), b"#!/bin/sh\n");
}

#[test]
fn hostile_layers_are_refused_by_the_confined_helper_as_in_process() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = confined_cache(tmp.path());
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().to_string_lossy().into_owned();
    for (name, entries, expect) in [
        ("dotdot", vec![file("../escaped", b"x")], "`..`"),
        ("through", vec![symlink("evil", &target), file("evil/owned", b"x")], "symlink"),
        ("device", vec![chardev("dev/mem")], "device node"),
    ] {
        let (layer, f) = layer_file(tmp.path(), name, &entries);
        let err = cache.layer_file(&layer, f, LIMITS).expect_err(name);
        assert!(
            matches!(&err, CacheError::Unpack { source: UnpackError::Entry { .. }, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(expect), "{err} should mention {expect}");
    }
    let (layer, f) = layer_file(tmp.path(), "bomb", &[file("zeros", &vec![0u8; 8 << 20])]);
    let err = cache.layer_file(&layer, f, LIMITS).expect_err("bomb");
    assert!(
        matches!(&err, CacheError::Unpack { source: UnpackError::TooLarge { .. }, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).expect("outside").count(), 0);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("cache/tmp")).expect("tmp").count(),
        0,
        "nothing half-made left"
    );
}
