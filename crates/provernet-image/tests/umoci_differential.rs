//! Differential test of the unpacker and the root composition against an independent
//! implementation: `umoci raw unpack` (Debian's umoci). Images are made two ways: by umoci
//! itself (layers it diffs from a real file tree: Debian's own files, then deletions,
//! replacements and a directory recreated), and by hand (whiteouts and opaque directories
//! written explicitly). Both unpackers must produce the same tree: the same paths, types,
//! permission bits, file contents and link targets.

mod common;

use common::*;
use provernet_image::{Cache, Image, UnpackLimits};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

#[allow(clippy::print_stderr)] // says why the test did nothing
fn umoci() -> bool {
    let found = Command::new("umoci").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "umoci is missing in CI: .ci/run installs it");
        eprintln!("umoci is not installed (apt-get install umoci): differential test skipped");
    }
    found
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What a tree holds: path -> (kind, permission bits, content hash or link target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, String)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, String)>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        let rel = p.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
        if ["job", "tmp", "dev", "proc"].contains(&rel.as_str()) {
            continue; // the job's mount points, which the node makes itself
        }
        let m = std::fs::symlink_metadata(&p).expect("meta");
        let mode = m.permissions().mode();
        if m.is_dir() {
            // Owner bits: both unpackers keep directories writable by their owner.
            out.insert(rel, ('d', mode & 0o077, String::new()));
            walk(root, &p, out);
        } else if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p).expect("link").to_string_lossy().into_owned();
            out.insert(rel, ('l', 0, t));
        } else {
            let bytes = std::fs::read(&p).expect("read");
            out.insert(rel, ('f', mode & 0o777, provernet_image::Digest::of(&bytes).to_string()));
        }
    }
}

/// Our unpack of the layout in `layout`, composed into a root.
fn ours(layout: &Path, cache_dir: &Path) -> BTreeMap<String, (char, u32, String)> {
    let image = Image::from_layout(layout).expect("layout");
    let cache = Cache::open(cache_dir, 1 << 30).expect("cache");
    let limits = UnpackLimits { bytes: 256 << 20, entries: 100_000 };
    for l in &image.layers {
        let blob = std::fs::File::open(image.blob_path(&l.digest)).expect("blob");
        cache.layer(l, blob, limits).expect("unpack");
    }
    let digests: Vec<_> = image.layers.iter().map(|l| l.digest).collect();
    let root = cache.root(&image.digest, &digests).expect("root");
    tree(&root.path)
}

fn theirs(layout: &Path, tag: &str, out: &Path) -> BTreeMap<String, (char, u32, String)> {
    run(Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(out));
    tree(out)
}

fn compare(a: &BTreeMap<String, (char, u32, String)>, b: &BTreeMap<String, (char, u32, String)>) {
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "only ours: {only_a:?}\nonly umoci's: {only_b:?}"
    );
    for (k, v) in a {
        assert_eq!(v, &b[k], "{k} differs (ours, umoci's)");
    }
}

#[test]
fn our_unpacker_agrees_with_umoci_on_images_umoci_made_from_debian_files() {
    if !umoci() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = tmp.path().join("img");
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").args(["init", "--layout"]).arg(&img));
    run(Command::new("umoci").args(["new", "--image"]).arg(format!("{}:t", img.display())));
    let unpack = |b: &Path| {
        let _ = std::fs::remove_dir_all(b);
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:t", img.display()))
            .arg(b));
    };
    let repack = |b: &Path| {
        run(Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:t", img.display()))
            .arg(b));
    };
    // Layer 1: real files from this Debian system: docs, a library directory, binaries, links.
    unpack(&bundle);
    let rootfs = bundle.join("rootfs");
    for src in
        ["/usr/share/doc/tar", "/usr/share/doc/gzip", "/usr/share/doc/coreutils", "/etc/ssl/certs"]
    {
        let src = Path::new(src);
        if src.is_dir() {
            let parent =
                rootfs.join(src.parent().and_then(|p| p.strip_prefix("/").ok()).expect("parent"));
            std::fs::create_dir_all(&parent).expect("parent");
            run(Command::new("cp").arg("-a").arg(src).arg(&parent));
        }
    }
    std::fs::create_dir_all(rootfs.join("usr/bin")).expect("bin");
    for b in ["/usr/bin/tar", "/usr/bin/gzip", "/bin/ls"] {
        if Path::new(b).exists() {
            std::fs::copy(b, rootfs.join("usr/bin").join(Path::new(b).file_name().expect("name")))
                .expect("copy");
        }
    }
    std::os::unix::fs::symlink("tar", rootfs.join("usr/bin/gtar")).expect("symlink");
    std::fs::hard_link(rootfs.join("usr/bin/gzip"), rootfs.join("usr/bin/gunzip-hard"))
        .expect("hard link");
    std::fs::create_dir_all(rootfs.join("opt/app/lib")).expect("opt");
    std::fs::write(rootfs.join("opt/app/lib/a.so"), b"old a").expect("a");
    std::fs::write(rootfs.join("opt/app/lib/b.so"), b"old b").expect("b");
    std::fs::write(rootfs.join("opt/app/config"), b"v1").expect("config");
    std::fs::set_permissions(rootfs.join("opt/app/config"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    repack(&bundle);
    // Layer 2: deletions, a file replaced by a directory, a directory recreated, a changed mode.
    unpack(&bundle);
    let rootfs = bundle.join("rootfs");
    std::fs::remove_dir_all(rootfs.join("usr/share/doc/gzip")).expect("rm doc");
    std::fs::remove_file(rootfs.join("usr/bin/gtar")).expect("rm link");
    std::fs::remove_dir_all(rootfs.join("opt/app/lib")).expect("rm lib");
    std::fs::create_dir_all(rootfs.join("opt/app/lib")).expect("lib again");
    std::fs::write(rootfs.join("opt/app/lib/c.so"), b"new c").expect("c");
    std::fs::remove_file(rootfs.join("opt/app/config")).expect("rm config");
    std::fs::create_dir_all(rootfs.join("opt/app/config")).expect("config dir");
    std::fs::write(rootfs.join("opt/app/config/main.toml"), b"v2").expect("main");
    std::fs::set_permissions(rootfs.join("usr/bin/tar"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    repack(&bundle);
    // Layer 3: a whole tree removed, a file brought back where a directory was.
    unpack(&bundle);
    let rootfs = bundle.join("rootfs");
    std::fs::remove_dir_all(rootfs.join("opt/app/config")).expect("rm config dir");
    std::fs::write(rootfs.join("opt/app/config"), b"v3").expect("config file");
    if rootfs.join("usr/share/doc/coreutils").exists() {
        std::fs::remove_dir_all(rootfs.join("usr/share/doc/coreutils")).expect("rm coreutils doc");
    }
    repack(&bundle);
    let a = ours(&img, &tmp.path().join("cache"));
    let b = theirs(&img, "t", &tmp.path().join("umoci-out"));
    assert!(a.len() > 20, "a real tree: {} entries", a.len());
    compare(&a, &b);
    assert_eq!(a["opt/app/config"].0, 'f');
    assert!(a.contains_key("opt/app/lib/c.so") && !a.contains_key("opt/app/lib/a.so"));
}

#[test]
fn our_unpacker_agrees_with_umoci_on_explicit_whiteouts_and_opaque_directories() {
    if !umoci() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = tmp.path().join("img");
    let l1 = tar(&[
        dir("etc"),
        file("etc/keep", b"keep"),
        file("etc/drop", b"drop"),
        dir("var"),
        dir("var/lib"),
        file("var/lib/old1", b"1"),
        dir("var/lib/sub"),
        file("var/lib/sub/old2", b"2"),
        symlink("lib64", "usr/lib"),
        dir("usr"),
        dir("usr/lib"),
        file_mode("usr/lib/libx.so", b"libx", 0o755),
    ]);
    let l2 = tar(&[
        dir("etc"),
        file("etc/.wh.drop", b""),
        dir("var"),
        dir("var/lib"),
        file("var/lib/.wh..wh..opq", b""),
        file("var/lib/new", b"new"),
        file(".wh.lib64", b""),
        dir("lib64"),
        file("lib64/ld.so", b"loader"),
    ]);
    let l3 = tar(&[dir("usr"), file("usr/.wh.lib", b""), file("usr/lib", b"now a file")]);
    common::layout(&img, &[l1, l2, l3], &Tweaks::default());
    // umoci wants a tag: name the one manifest in the index.
    let index_path = img.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index")).expect("json");
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("json")).expect("index");
    let a = ours(&img, &tmp.path().join("cache"));
    let b = theirs(&img, "t", &tmp.path().join("umoci-out"));
    compare(&a, &b);
    assert!(!a.contains_key("etc/drop") && a.contains_key("etc/keep"));
    assert!(
        !a.contains_key("var/lib/old1")
            && !a.contains_key("var/lib/sub")
            && a.contains_key("var/lib/new")
    );
    assert_eq!(a["lib64"].0, 'd');
    assert_eq!(a["usr/lib"].0, 'f');
}

#[test]
fn an_image_written_here_is_read_the_same_by_umoci() {
    if !umoci() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = tmp.path().join("img");
    let sh = std::fs::canonicalize("/bin/sh").expect("sh");
    let digest = provernet_image::build::executable_image(&img, &sh, "sh").expect("build");
    let image = Image::from_layout(&img).expect("our own layout reads back");
    assert_eq!(image.digest, digest);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.run.entrypoint.as_deref(), Some(&["/usr/local/bin/sh".to_owned()][..]));
    // Reproducible: the same files make the same image.
    let again = provernet_image::build::executable_image(&tmp.path().join("again"), &sh, "sh")
        .expect("build");
    assert_eq!(again, digest);
    let index_path = img.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index")).expect("json");
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("json")).expect("index");
    let a = ours(&img, &tmp.path().join("cache"));
    let b = theirs(&img, "t", &tmp.path().join("umoci-out"));
    compare(&a, &b);
    assert!(a.contains_key("usr/local/bin/sh"));
}
