//! Hostile images: one test per trick a layer or layout may try, each refused (or neutralized)
//! with an error naming the entry, and the cache still serving the next, honest image.

mod common;

use common::*;
use provernet_image::{
    Cache, CacheError, Compression, Digest, Image, ImageError, Layer, UnpackError, UnpackLimits,
};
use std::path::Path;

const LIMITS: UnpackLimits = UnpackLimits { bytes: 1 << 20, entries: 1_000 };

/// A plain layer of `tar` bytes.
fn layer(tar: &[u8]) -> (Layer, Vec<u8>) {
    let gz = gzip(tar);
    let l = Layer {
        digest: Digest::of(&gz),
        size: gz.len() as u64,
        compression: Compression::Gzip,
        diff_id: Digest::of(tar),
    };
    (l, gz)
}

/// Unpacks `entries` as one layer into a fresh cache; returns the error text if refused.
fn unpack(cache: &Cache, entries: &[Entry]) -> Result<provernet_image::LayerReport, String> {
    let (l, gz) = layer(&tar(entries));
    cache.layer(&l, &gz[..], LIMITS).map_err(|e| e.to_string())
}

fn cache(dir: &Path) -> Cache {
    Cache::open(&dir.join("cache"), 64 << 20).expect("cache")
}

/// After a refusal: nothing half-made is left, and an honest layer still unpacks.
fn still_serves(cache: &Cache, dir: &Path) {
    let tmp = dir.join("cache/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).expect("tmp").count(),
        0,
        "a refused layer left files behind"
    );
    let honest = [dir_e("usr"), file("usr/prove", b"#!/bin/sh\necho ok\n")];
    let (l, gz) = layer(&tar(&honest));
    cache.layer(&l, &gz[..], LIMITS).expect("an honest layer after a hostile one");
    let root = cache.root(&Digest::of(b"honest image"), &[l.digest]).expect("a root");
    assert_eq!(std::fs::read(root.path.join("usr/prove")).expect("read"), b"#!/bin/sh\necho ok\n");
}

fn dir_e(name: &str) -> Entry {
    common::dir(name)
}

fn refused(entries: &[Entry], expect: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let err = unpack(&c, entries).expect_err("a hostile layer must be refused");
    for e in expect {
        assert!(err.contains(e), "{err:?} should mention {e:?}");
    }
    still_serves(&c, tmp.path());
}

#[test]
fn a_dotdot_path_is_refused() {
    refused(&[file("../../escaped", b"x")], &["../../escaped", "`..`"]);
    refused(&[dir_e("a"), file("a/../../escaped", b"x")], &["a/../../escaped", "`..`"]);
}

#[test]
fn an_absolute_path_is_refused() {
    refused(&[file("/etc/passwd", b"root::0:0::/:/bin/sh")], &["/etc/passwd", "absolute"]);
}

#[test]
fn a_write_through_a_symlink_in_the_same_layer_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().to_string_lossy().into_owned();
    refused(
        &[symlink("evil", &target), file("evil/owned", b"x")],
        &["evil/owned", "symlink \"evil\""],
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("outside").count(),
        0,
        "nothing written outside"
    );
    // The same through a relative link climbing out.
    refused(
        &[symlink("up", "../../../../.."), file("up/tmp/owned", b"x")],
        &["up/tmp/owned", "symlink"],
    );
}

#[test]
fn writes_through_a_symlink_of_a_lower_layer_stay_inside_the_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("victim"), b"keep me").expect("victim");
    let target = outside.path().to_string_lossy().into_owned();
    // Layer 1 plants a link out; layer 2 writes into it, and whites out a file behind it.
    let (l1, gz1) = layer(&tar(&[symlink("evil", &target), symlink("gone", &target)]));
    let (l2, gz2) = layer(&tar(&[file("evil/owned", b"x"), file("gone/.wh.victim", b"")]));
    c.layer(&l1, &gz1[..], LIMITS).expect("layer 1");
    c.layer(&l2, &gz2[..], LIMITS).expect("layer 2");
    let root = c.root(&Digest::of(b"image"), &[l1.digest, l2.digest]).expect("root");
    assert!(
        root.path.join("evil").symlink_metadata().expect("evil").is_dir(),
        "the upper dir replaced the link"
    );
    assert_eq!(std::fs::read(root.path.join("evil/owned")).expect("owned"), b"x");
    let mut outside_files: Vec<_> = std::fs::read_dir(outside.path())
        .expect("outside")
        .map(|e| e.expect("e").file_name())
        .collect();
    outside_files.sort();
    assert_eq!(outside_files, vec![std::ffi::OsString::from("victim")], "nothing written outside");
    assert_eq!(
        std::fs::read(outside.path().join("victim")).expect("victim"),
        b"keep me",
        "nothing deleted outside"
    );
}

#[test]
fn a_hard_link_outside_the_layer_is_refused() {
    refused(&[hardlink("passwd", "../../../etc/passwd")], &["passwd", "`..`"]);
    refused(&[hardlink("passwd", "etc/passwd")], &["passwd", "not a file this layer created"]);
    // A link to a file that comes later in the same layer is refused too.
    refused(
        &[hardlink("early", "late"), file("late", b"x")],
        &["early", "not a file this layer created"],
    );
    // An absolute link target.
    refused(&[hardlink("shadow", "/etc/shadow")], &["shadow", "absolute"]);
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    refused(&[chardev("dev/mem")], &["dev/mem", "device node"]);
    refused(&[fifo("pipe")], &["pipe", "FIFO"]);
}

#[test]
fn setuid_and_setgid_bits_are_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let report =
        unpack(&c, &[file_mode("su", b"#!/bin/sh", 0o4755), file_mode("wall", b"x", 0o2755)])
            .expect("neutralized, not refused");
    assert_eq!(report.neutralized.len(), 2, "{:?}", report.neutralized);
    let (l, _) =
        layer(&tar(&[file_mode("su", b"#!/bin/sh", 0o4755), file_mode("wall", b"x", 0o2755)]));
    let root = c.root(&Digest::of(b"suid"), &[l.digest]).expect("root");
    use std::os::unix::fs::PermissionsExt;
    for f in ["su", "wall"] {
        let mode = std::fs::metadata(root.path.join(f)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "{f}: {mode:o}");
    }
}

#[test]
fn extended_attributes_are_never_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let mut cap = file("ping", b"x");
    cap.pax = vec![
        ("SCHILY.xattr.security.capability".into(), vec![1, 0, 0, 2, 0, 0x20, 0, 0]),
        ("SCHILY.xattr.trusted.overlay.opaque".into(), b"y".to_vec()),
        ("SCHILY.xattr.user.note".into(), b"hello".to_vec()),
    ];
    let report = unpack(&c, &[cap.clone()]).expect("neutralized");
    assert_eq!(report.neutralized.len(), 3, "{:?}", report.neutralized);
    let (l, _) = layer(&tar(&[cap]));
    let path = tmp.path().join("cache/layers").join(l.digest.hex()).join("ping");
    let out = std::process::Command::new("python3")
        .args(["-c", "import os,sys; print(os.listxattr(sys.argv[1], follow_symlinks=False))"])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "no attributes on the file");
}

#[test]
fn duplicate_entries_are_refused() {
    refused(&[file("a", b"1"), file("a", b"2")], &["\"a\"", "duplicate"]);
    refused(&[dir_e("d"), dir_e("d")], &["duplicate"]);
    refused(&[file("a", b"1"), symlink("a", "/etc/passwd")], &["duplicate"]);
    // A file, then a directory over it.
    refused(&[file("a", b"1"), dir_e("a/")], &["duplicate"]);
}

#[test]
fn inconsistent_tar_headers_are_refused() {
    let mut bad = file("a", b"data");
    bad.bad_checksum = true;
    refused(&[bad], &["malformed"]);
    let mut dir_with_data = dir_e("d");
    dir_with_data.size = Some(512);
    dir_with_data.data = vec![0; 512];
    refused(&[dir_with_data], &["\"d\"", "carries 512 bytes"]);
    let mut link_with_data = symlink("l", "x");
    link_with_data.size = Some(512);
    link_with_data.data = vec![0; 512];
    refused(&[link_with_data], &["\"l\""]);
    // A file whose header claims more data than the stream holds.
    let mut short = file("short", b"abc");
    short.size = Some(1 << 19);
    let mut bytes = tar(&[short]);
    bytes.truncate(1024);
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let (l, gz) = layer(&bytes);
    let err = c.layer(&l, &gz[..], LIMITS).expect_err("truncated");
    assert!(err.to_string().contains("short"), "{err}");
    still_serves(&c, tmp.path());
}

#[test]
fn a_decompression_bomb_stops_at_the_declared_size_while_unpacking() {
    // 64 MiB of zeros compress to ~64 KiB; the layer declares 1 MiB.
    let bomb = file("zeros", &vec![0u8; 64 << 20]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let (l, gz) = layer(&tar(&[file("ok", b"fine"), bomb]));
    assert!(gz.len() < 1 << 20, "the bomb is small compressed: {}", gz.len());
    let err = c.layer(&l, &gz[..], LIMITS).expect_err("over the declared size");
    assert!(
        matches!(&err, CacheError::Unpack { source: UnpackError::TooLarge { .. }, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("zeros"), "{err}");
    still_serves(&c, tmp.path());
    // Entry counts and path lengths are bounded too.
    let many: Vec<Entry> = (0..1_001).map(|i| file(&format!("f{i}"), b"")).collect();
    refused(&many, &["more than the 1000 entries"]);
    let deep = format!("{}/x", vec!["d"; 2_100].join("/"));
    refused(&[file(&deep, b"x")], &["longer than 4096"]);
    refused(&[file(&"n".repeat(300), b"x")], &["longer than 255"]);
}

#[test]
fn a_layer_whose_tar_does_not_match_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let (mut l, gz) = layer(&tar(&[file("a", b"1")]));
    l.diff_id = Digest::of(b"something else");
    let err = c.layer(&l, &gz[..], LIMITS).expect_err("diff_id");
    assert!(err.to_string().contains("the image's config says"), "{err}");
    assert!(!c.has_layer(&l.digest));
    still_serves(&c, tmp.path());
}

#[test]
fn an_image_cannot_redirect_a_mount_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = cache(tmp.path());
    let (l, gz) = layer(&tar(&[
        symlink("tmp", "/"),
        symlink("job", "/etc"),
        file("proc", b"not a dir"),
        dir_e("dev"),
        file("dev/nvidia0", b"fake device"),
    ]));
    c.layer(&l, &gz[..], LIMITS).expect("layer");
    let root = c.root(&Digest::of(b"redirect"), &[l.digest]).expect("root");
    for m in ["tmp", "job", "proc", "dev"] {
        let meta = root.path.join(m).symlink_metadata().expect("mount point");
        assert!(meta.is_dir(), "{m} is a real directory");
        assert_eq!(std::fs::read_dir(root.path.join(m)).expect("dir").count(), 0, "{m} is empty");
    }
}

#[test]
fn bad_layouts_are_refused_naming_the_part() {
    let good = tar(&[file("prove", b"x")]);
    let cases: Vec<(Tweaks, &str)> = vec![
        (
            Tweaks { os_arch: Some(("linux".into(), "arm64".into())), ..Tweaks::default() },
            "linux/arm64",
        ),
        (
            Tweaks {
                layer_media_type: Some(
                    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into(),
                ),
                ..Tweaks::default()
            },
            "foreign",
        ),
        (
            Tweaks {
                layer_media_type: Some(
                    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted".into(),
                ),
                ..Tweaks::default()
            },
            "encrypted",
        ),
        (Tweaks { corrupt_manifest: true, ..Tweaks::default() }, "the manifest's bytes hash to"),
        (Tweaks { size_delta: -5, ..Tweaks::default() }, "its descriptor says"),
        (Tweaks { extra_diff_id: true, ..Tweaks::default() }, "the config names 2 layers"),
    ];
    for (t, expect) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        common::layout(tmp.path(), std::slice::from_ref(&good), &t);
        let err = Image::from_layout(tmp.path()).expect_err(expect);
        assert!(err.to_string().contains(expect), "{err} should mention {expect:?}");
    }
    // A layer blob missing from the layout.
    let tmp = tempfile::tempdir().expect("tempdir");
    common::layout(tmp.path(), std::slice::from_ref(&good), &Tweaks::default());
    let image = Image::from_layout(tmp.path()).expect("a good layout");
    std::fs::remove_file(image.blob_path(&image.layers[0].digest)).expect("rm");
    let err = Image::from_layout(tmp.path()).expect_err("missing layer");
    assert!(matches!(err, ImageError::Layer(_)) && err.to_string().contains("layer 0"), "{err}");
}

#[test]
fn a_full_cache_refuses_a_new_image_without_touching_layers_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Room for about two 300 KiB layers.
    let c = Cache::open(&tmp.path().join("cache"), 700 << 10).expect("cache");
    let big = |n: u8| layer(&tar(&[file(&format!("data{n}"), &vec![n; 300 << 10])]));
    let limits = UnpackLimits { bytes: 300 << 10, entries: 4 };
    let (a, gza) = big(1);
    let (b, gzb) = big(2);
    let (d, gzd) = big(3);
    c.layer(&a, &gza[..], limits).expect("a");
    c.layer(&b, &gzb[..], limits).expect("b");
    let ra = c.root(&Digest::of(b"A"), &[a.digest]).expect("root a");
    let rb = c.root(&Digest::of(b"B"), &[b.digest]).expect("root b");
    // Both in use: a third does not fit, and neither is touched.
    let err = c.layer(&d, &gzd[..], limits).expect_err("full");
    assert!(matches!(err, CacheError::Full { pinned: 2, .. }), "{err}");
    assert_eq!(std::fs::read(ra.path.join("data1")).expect("a intact").len(), 300 << 10);
    assert_eq!(std::fs::read(rb.path.join("data2")).expect("b intact").len(), 300 << 10);
    // Once A's job ends, the least recently used unpinned layer makes room.
    drop(ra);
    c.layer(&d, &gzd[..], limits).expect("d, after a is released");
    assert!(!c.has_layer(&a.digest), "a was evicted");
    assert!(c.has_layer(&b.digest), "b, pinned, was kept");
    assert!(rb.path.join("data2").exists());
}

/// A reader that says when it is first read, then waits to be let go.
struct Gate {
    inner: std::io::Cursor<Vec<u8>>,
    started: Option<std::sync::mpsc::Sender<()>>,
    go: std::sync::mpsc::Receiver<()>,
}

impl std::io::Read for Gate {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(started) = self.started.take() {
            let _ = started.send(());
            let _ = self.go.recv();
        }
        self.inner.read(buf)
    }
}

/// Two images unpacked at once cannot together pass the cache's budget: the room a layer
/// declares is held from before its first byte is read until it ends.
#[test]
fn concurrent_unpacks_cannot_together_pass_the_budget() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = Cache::open(&tmp.path().join("cache"), 700 << 10).expect("cache");
    let big = |n: u8| layer(&tar(&[file(&format!("data{n}"), &vec![n; 300 << 10])]));
    let limits = UnpackLimits { bytes: 400 << 10, entries: 4 };
    let (a, gza) = big(1);
    let (b, gzb) = big(2);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let slow = Gate { inner: std::io::Cursor::new(gza), started: Some(started_tx), go: go_rx };
    let c2 = c.clone();
    let first = std::thread::spawn(move || c2.layer(&a, slow, limits).map(|_| ()));
    started.recv().expect("the first unpack started");
    // 400 KiB are held for the first: a second 400 KiB does not fit beside it.
    let err = c.layer(&b, &gzb[..], limits).expect_err("over the budget together");
    assert!(matches!(err, CacheError::Full { .. }), "{err}");
    go.send(()).expect("let the first go");
    first.join().expect("thread").expect("the first unpacks");
    // Its room is now what it really took (300 KiB and its entries), so the second fits.
    c.layer(&b, &gzb[..], limits).expect("the second, after the first ended");
}

#[test]
fn a_layer_is_unpacked_once_and_shared_and_the_cache_survives_a_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base =
        tar(&[dir_e("usr"), dir_e("usr/lib"), file("usr/lib/libcuda-like.so", &[7u8; 4096])]);
    let (lb, gzb) = layer(&base);
    let (l1, gz1) = layer(&tar(&[file("prove-a", b"a")]));
    let (l2, gz2) = layer(&tar(&[file("prove-b", b"b")]));
    {
        let c = cache(tmp.path());
        c.layer(&lb, &gzb[..], LIMITS).expect("base");
        c.layer(&l1, &gz1[..], LIMITS).expect("a");
        // The base is already here: the second image's copy of it is not even read.
        c.layer(&lb, &b"not even gzip"[..], LIMITS).expect("cached base");
        c.layer(&l2, &gz2[..], LIMITS).expect("b");
        let ra = c.root(&Digest::of(b"A"), &[lb.digest, l1.digest]).expect("A");
        let rb = c.root(&Digest::of(b"B"), &[lb.digest, l2.digest]).expect("B");
        use std::os::unix::fs::MetadataExt;
        let ia = std::fs::metadata(ra.path.join("usr/lib/libcuda-like.so")).expect("a").ino();
        let ib = std::fs::metadata(rb.path.join("usr/lib/libcuda-like.so")).expect("b").ino();
        assert_eq!(ia, ib, "one copy of the base layer's file, linked into both roots");
    }
    let c = cache(tmp.path());
    assert!(c.has_layer(&lb.digest) && c.has_layer(&l1.digest) && c.has_layer(&l2.digest));
    let ra = c.root(&Digest::of(b"A"), &[lb.digest, l1.digest]).expect("A again");
    assert_eq!(std::fs::read(ra.path.join("prove-a")).expect("a"), b"a");
}

#[test]
fn an_image_larger_than_the_whole_cache_is_refused_before_anything_is_unpacked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(&tmp.path().join("cache"), 1 << 20).expect("cache");
    let layer = |n: u8| provernet_types::LayerRef {
        blob: provernet_types::tx::blob_ref(&[n]),
        unpacked: provernet_types::Bytes(600 << 10),
        entries: 4,
    };
    let image = provernet_types::ImageRef {
        digest: [1; 32],
        manifest: provernet_types::tx::blob_ref(b"m"),
        config: provernet_types::tx::blob_ref(b"c"),
        layers: provernet_types::BoundedVec::try_from_vec(vec![layer(1), layer(2)]).expect("two"),
    };
    let missing = tmp.path().join("no-such-blob");
    let err =
        provernet_image::prepare(&cache, &image, |_| missing.clone(), &tmp.path().join("layout"))
            .expect_err("1.2 MiB declared, a 1 MiB cache");
    assert!(matches!(err, provernet_image::ProgramImageError::Other(_)), "{err}");
    assert!(err.to_string().contains("more than this node's image cache"), "{err}");
    assert_eq!(cache.used(), 0);
}

/// A job and the node's prefetch may prepare one image at the same moment, in the same
/// layout directory: neither may ever read the other's half-written files (which the node
/// would take for a broken image, and claim as the program's failure).
#[test]
fn one_image_prepared_by_many_at_once_is_never_read_half_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let base = tar(&[dir_e("usr"), file("usr/prove", &[5u8; 70_000])]);
    let top = tar(&[file("statement", b"x")]);
    common::layout(&src, &[base, top], &Tweaks::default());
    let image = Image::from_layout(&src).expect("a good layout");
    let reports = provernet_image::measure(&image, &tmp.path().join("measure")).expect("measure");
    let mut files = std::collections::BTreeMap::new();
    let mut blob = |bytes: &[u8], path: std::path::PathBuf| {
        let b = provernet_types::tx::blob_ref(bytes);
        files.insert(b.hash, path);
        b
    };
    let manifest = blob(&image.manifest, image.blob_path(&image.digest));
    let config = blob(&image.config_bytes, image.blob_path(&image.config_digest));
    let layers = image
        .layers
        .iter()
        .zip(&reports)
        .map(|(l, r)| provernet_types::LayerRef {
            blob: blob(
                &std::fs::read(image.blob_path(&l.digest)).expect("layer"),
                image.blob_path(&l.digest),
            ),
            unpacked: provernet_types::Bytes(r.bytes),
            entries: r.entries as u32,
        })
        .collect();
    let record = provernet_types::ImageRef {
        digest: image.digest.0,
        manifest,
        config,
        layers: provernet_types::BoundedVec::try_from_vec(layers).expect("two layers"),
    };
    let cache = Cache::open(&tmp.path().join("cache"), 64 << 20).expect("cache");
    let layout = tmp.path().join("layout");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let p = provernet_image::prepare(
                        &cache,
                        &record,
                        |b| files[&b.hash].clone(),
                        &layout,
                    )
                    .expect("prepared, every time");
                    assert_eq!(
                        std::fs::read(p.root.path.join("usr/prove")).expect("root").len(),
                        70_000
                    );
                }
            });
        }
    });
}
