//! Programs as OCI images, over real processes: an image built offline with Debian's `umoci`
//! from the workspace's Groth16 prover and the Debian libraries it loads (two layers), deployed
//! with `program deploy --image` as an OCI archive through validator 0, and proven by nodes
//! attached to validator 1 only (so the manifest, config and layers cross between validators),
//! each node checking the image against the program's record, unpacking it into its cache and
//! running it in its own root (both prepare it as soon as it is deployed, before any job). The
//! proof is fetched and checked by `proof fetch`. A tampered image is refused at deploy, naming
//! the part. Needs root (the sandbox) and umoci.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (is umoci installed?)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Copies `file` (following links) to the same path under `root`.
fn copy_into(root: &Path, file: &Path) {
    let dest = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(std::fs::canonicalize(file).unwrap(), &dest).unwrap();
}

/// An OCI layout of the workspace binary `exe`, as `/usr/local/bin/prover`, over a layer of
/// the Debian libraries it loads, made by umoci; and an archive of it (as `podman save
/// --format oci-archive` writes one).
fn build_image(dir: &Path, exe: &str) -> (PathBuf, PathBuf) {
    let layout = dir.join("image-layout");
    let bundle = dir.join("image-bundle");
    let image = format!("{}:prover", layout.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let unpack = || {
        let _ = std::fs::remove_dir_all(&bundle);
        run(Command::new("umoci").args(["unpack", "--rootless", "--image", &image]).arg(&bundle));
    };
    let repack = || run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
    let exe = bin_dir().join(exe);
    // Layer 1: what the dynamic loader needs (libc and friends, from Debian's packages).
    unpack();
    let ldd = Command::new("ldd").arg(&exe).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            copy_into(&bundle.join("rootfs"), Path::new(p));
        }
    }
    repack();
    // Layer 2: the prover.
    unpack();
    let prover = bundle.join("rootfs/usr/local/bin/prover");
    std::fs::create_dir_all(prover.parent().unwrap()).unwrap();
    std::fs::copy(&exe, &prover).unwrap();
    repack();
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.entrypoint",
        "/usr/local/bin/prover",
        "--config.env",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "--config.workingdir",
        "/",
    ]));
    let archive = dir.join("prover.tar");
    run(Command::new("tar").arg("-cf").arg(&archive).arg("-C").arg(&layout).arg("."));
    (layout, archive)
}

/// The first regular file under `dir`.
fn walk_first_file(dir: &Path) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let m = e.path().symlink_metadata().ok()?;
        if m.is_file() {
            return Some(e.path());
        }
        if m.is_dir() {
            if let Some(f) = walk_first_file(&e.path()) {
                return Some(f);
            }
        }
    }
    None
}

/// The manifest digest the layout's index names.
fn manifest_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_program_is_deployed_proven_on_another_validator_and_fetched() {
    let mut net = Net::many(10, 2, 2, &[], |_| 1).await;
    for i in 0..2 {
        net.start_node(i).await;
    }
    let (layout, archive) = build_image(net.dir.path(), "groth16-sha256-prover");

    // A tampered layer is refused at deploy, naming the layer.
    let bad = net.path("tampered-layout");
    run(Command::new("cp").arg("-a").arg(&layout).arg(&bad));
    let manifest: serde_json::Value = {
        let d = manifest_digest(&bad);
        let path = bad.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let layer = manifest["layers"][1]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let layer_path = bad.join("blobs/sha256").join(layer);
    let mut bytes = std::fs::read(&layer_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&layer_path, bytes).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let (ok, _, err) = net.cli(&[
        "program",
        "deploy",
        "--name",
        "tampered",
        "--image",
        &bad,
        "--builtin",
        "groth16-bn254",
    ]);
    assert!(!ok, "a tampered image deployed");
    assert!(err.contains("layer 1") && err.contains("hash to"), "{err}");

    // The real image, as an archive.
    let archive = archive.to_string_lossy().into_owned();
    let mut args = vec!["program", "deploy", "--name", "g16-image", "--image", &archive];
    args.extend(["--builtin", "groth16-bn254", "--time", "60s"]);
    for i in ["pk", "vk", "preimage", "digest"] {
        args.extend(["--input-name", i]);
    }
    let v = net.cli_json(&args);
    assert_eq!(v["image"], manifest_digest(&layout).as_str(), "{v}");
    let program: serde_json::Value = net
        .client
        .get(&format!("/v1/programs/{}", v["program"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(program["prover"]["kind"], "image", "{program}");
    assert_eq!(program["prover"]["layers"].as_array().unwrap().len(), 2, "{program}");

    // Both nodes prepare the image ahead of its first job (they could run it): its two layers
    // land in each node's cache before anything is submitted.
    let layers_of = |i: usize| -> usize {
        std::fs::read_dir(net.dir.path().join(format!("node-{i}/data/images/layers")))
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0)
    };
    wait_until("both nodes to prefetch the image", std::time::Duration::from_secs(90), || async {
        layers_of(0) == 2 && layers_of(1) == 2
    })
    .await;

    let inputs = groth16_inputs(&net, 64, 3);
    let mut args = vec!["job", "submit", "g16-image", "--wait"];
    for i in &inputs {
        args.extend(["--input", i.as_str()]);
    }
    let v = net.cli_json(&args);
    assert_eq!(v["status"], "Verified", "{v:#}\n{}", net.logs());
    let id = v["id"].as_str().unwrap();
    let out = net.path("fetched-image-proof");
    let f = net.cli_json(&["proof", "fetch", id, "--out", &out.to_string_lossy()]);
    assert_eq!(f["verdict"], "valid", "{f}");

    // The prover's node holds the image's two layers, unpacked once, and its root.
    let winner =
        v["attempts"].as_array().unwrap().iter().find(|a| a["state"] == "Verified").unwrap()
            ["prover"]
            .as_str()
            .unwrap()
            .to_owned();
    let i = net.nodes.iter().position(|n| n.account() == winner).unwrap();
    let images = net.dir.path().join(format!("node-{i}/data/images"));
    let layers = std::fs::read_dir(images.join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(layers, 2, "{}", images.display());
    let roots = std::fs::read_dir(images.join("roots")).unwrap().count();
    assert!(roots >= 1);
    // Unpacked by the node's confined helper, as its own unprivileged uid, not as root.
    let layer_dir = std::fs::read_dir(images.join("layers"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let any_file = walk_first_file(&layer_dir).expect("a file in the layer");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&any_file).unwrap().uid(), 65533, "{}", any_file.display());
}
