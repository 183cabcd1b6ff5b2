//! Building layers and image layouts byte by byte, hostile ones included.
#![allow(dead_code)]

use provernet_image::Digest;
use std::io::Write;
use std::path::Path;

/// One tar entry, as raw as a hostile layer may make it.
#[derive(Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    /// The size field, if it should lie about the data.
    pub size: Option<u64>,
    /// PAX records to put before the entry.
    pub pax: Vec<(String, Vec<u8>)>,
    pub bad_checksum: bool,
}

impl Entry {
    fn new(name: &str, kind: u8, mode: u32) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind,
            mode,
            data: Vec::new(),
            link: Vec::new(),
            size: None,
            pax: Vec::new(),
            bad_checksum: false,
        }
    }
}

pub fn file(name: &str, data: &[u8]) -> Entry {
    Entry { data: data.to_vec(), ..Entry::new(name, b'0', 0o644) }
}

pub fn file_mode(name: &str, data: &[u8], mode: u32) -> Entry {
    Entry { data: data.to_vec(), ..Entry::new(name, b'0', mode) }
}

pub fn dir(name: &str) -> Entry {
    Entry::new(name, b'5', 0o755)
}

pub fn symlink(name: &str, target: &str) -> Entry {
    Entry { link: target.as_bytes().to_vec(), ..Entry::new(name, b'2', 0o777) }
}

pub fn hardlink(name: &str, target: &str) -> Entry {
    Entry { link: target.as_bytes().to_vec(), ..Entry::new(name, b'1', 0o644) }
}

pub fn chardev(name: &str) -> Entry {
    Entry::new(name, b'3', 0o666)
}

pub fn fifo(name: &str) -> Entry {
    Entry::new(name, b'6', 0o644)
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

fn header(
    name: &[u8],
    kind: u8,
    mode: u32,
    size: u64,
    link: &[u8],
    bad_checksum: bool,
) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let sum = if bad_checksum { sum + 1 } else { sum };
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

/// A tar stream of `entries`, with end-of-archive blocks.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 {
            pax.push(("path".into(), e.name.clone()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                // "<len> <key>=<value>\n", where len counts itself.
                let rest = k.len() + v.len() + 3;
                let mut len = rest + 1;
                while format!("{len}").len() + rest > len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            out.extend_from_slice(&header(
                b"PaxHeader",
                b'x',
                0o644,
                body.len() as u64,
                b"",
                false,
            ));
            out.extend_from_slice(&body);
            pad(&mut out);
        }
        let size = e.size.unwrap_or(e.data.len() as u64);
        out.extend_from_slice(&header(&e.name, e.kind, e.mode, size, &e.link, e.bad_checksum));
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

pub fn put_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    std::fs::write(blobs.join(d.hex()), bytes).expect("blob");
    d
}

/// How to spoil a layout.
#[derive(Clone, Default)]
pub struct Tweaks {
    pub os_arch: Option<(String, String)>,
    pub layer_media_type: Option<String>,
    /// Added to a layer descriptor's size.
    pub size_delta: i64,
    /// Extra diff_ids in the config (naming layers the manifest lacks).
    pub extra_diff_id: bool,
    /// Flip a byte of the manifest after its digest is taken.
    pub corrupt_manifest: bool,
    pub entrypoint: Option<Vec<String>>,
}

/// An OCI layout in `dir` holding one image of gzip-compressed `layers` (tar streams);
/// returns the manifest's digest.
pub fn layout(dir: &Path, layers: &[Vec<u8>], t: &Tweaks) -> Digest {
    std::fs::create_dir_all(dir).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        diff_ids.push(Digest::of(l).to_string());
        let gz = gzip(l);
        let d = put_blob(dir, &gz);
        descs.push(serde_json::json!({
            "mediaType": t.layer_media_type.clone().unwrap_or_else(|| "application/vnd.oci.image.layer.v1.tar+gzip".into()),
            "digest": d.to_string(),
            "size": (gz.len() as i64 + t.size_delta),
        }));
    }
    if t.extra_diff_id {
        diff_ids.push(Digest::of(b"missing").to_string());
    }
    let (os, arch) = t.os_arch.clone().unwrap_or(("linux".into(), "amd64".into()));
    let config = serde_json::json!({
        "architecture": arch, "os": os,
        "config": {"Entrypoint": t.entrypoint.clone().unwrap_or_else(|| vec!["/prove".into()]), "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).expect("json");
    let cd = put_blob(dir, &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    });
    let mut manifest = serde_json::to_vec(&manifest).expect("json");
    let md = put_blob(dir, &manifest);
    if t.corrupt_manifest {
        manifest[10] ^= 1;
        std::fs::write(dir.join("blobs/sha256").join(md.hex()), &manifest).expect("blob");
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len()}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json"))
        .expect("index");
    md
}
