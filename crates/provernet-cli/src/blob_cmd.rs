//! `provernet blob`: files of any size to and from the validators, resumable.

use crate::requester::{explain, print_json, runtime, Conn, Progress};
use anyhow::{anyhow, Context, Result};
use provernet_types::{BlobHash, Bytes};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum BlobCommand {
    /// Upload a file as a blob and print its address. A file above one request of the
    /// validator goes in pieces, each checked on arrival; if the upload stops (the command is
    /// killed, the network drops), running the same command again sends only what is missing.
    Upload(UploadArgs),
    /// Download a blob to a file, checking every piece against the blob's hash as it arrives.
    /// It is written to FILE.part until whole; if the download stops, running the same command
    /// again goes on from where it stopped (from any validator).
    Download(DownloadArgs),
}

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    /// The file.
    pub file: PathBuf,
    /// At most this many bytes per second (e.g. `20MiB`), to leave room on a shared link.
    #[arg(long)]
    pub limit_rate: Option<Bytes>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct DownloadArgs {
    /// The blob's address (64 hex characters).
    pub hash: String,
    /// Where to write it.
    #[arg(long, short)]
    pub out: PathBuf,
    /// At most this many bytes per second (e.g. `20MiB`).
    #[arg(long)]
    pub limit_rate: Option<Bytes>,
    #[command(flatten)]
    pub conn: Conn,
}

pub fn run(cmd: BlobCommand) -> Result<()> {
    match cmd {
        BlobCommand::Upload(a) => upload(a),
        BlobCommand::Download(a) => download(a),
    }
}

fn upload(a: UploadArgs) -> Result<()> {
    let client = a.conn.client()?;
    let key = a.conn.keypair()?;
    let rt = runtime()?;
    let what = a.file.display().to_string();
    let done = rt.block_on(async {
        let chain_id = client.status().await.map_err(|e| explain(e, &a.conn.api))?.chain_id;
        let t =
            Progress::transfer(format!("uploading {what}"), a.conn.json, a.limit_rate.map(|r| r.0));
        client
            .upload_file(&key, &chain_id, &a.file, &t)
            .await
            .map_err(|e| explain(e, client.base()))
            .with_context(|| format!("uploading {what}"))
    })?;
    if a.conn.json {
        return print_json(&json!({
            "hash": done.blob.hash.to_string(),
            "size": done.blob.size.0,
            "in_pieces": done.in_pieces,
            "resumed_bytes": done.resumed_bytes,
            "existing": done.existing,
        }));
    }
    if done.resumed_bytes > 0 && !done.existing {
        eprintln!("resumed: {} were already on the validator", Bytes(done.resumed_bytes));
    }
    println!("{} ({})", done.blob.hash, done.blob.size);
    Ok(())
}

fn download(a: DownloadArgs) -> Result<()> {
    let client = a.conn.client()?;
    let hash: BlobHash = a
        .hash
        .parse()
        .map_err(|_| anyhow!("`{}` is not a blob address (64 hex characters)", a.hash))?;
    let rt = runtime()?;
    let t =
        Progress::transfer(format!("downloading {hash}"), a.conn.json, a.limit_rate.map(|r| r.0));
    let done = rt
        .block_on(client.download_file(&hash, &a.out, &t))
        .map_err(|e| explain(e, client.base()))?
        .ok_or_else(|| {
            anyhow!("no validator has blob {hash} (asked {})", client.bases().join(", "))
        })?;
    if a.conn.json {
        return print_json(&json!({
            "hash": hash.to_string(),
            "size": done.size,
            "path": a.out,
            "resumed_bytes": done.resumed_bytes,
        }));
    }
    if done.resumed_bytes > 0 {
        eprintln!(
            "resumed: {} were already in {}",
            Bytes(done.resumed_bytes),
            provernet_sdk::part_path(&a.out).display()
        );
    }
    println!("{hash} ({}) → {}", Bytes(done.size), a.out.display());
    Ok(())
}
