//! The chain from the command line: its status, accounts and provers, and a verb for every
//! transaction kind the chain accepts (`account transfer`, `prover register | deregister |
//! accept | decline | commit | reveal | claim | race | vote | lock | bid | reveal-bid`; jobs
//! and programs have their own commands). A prover node sends its duties by itself; the
//! prover verbs are for operators acting by hand and for tests.

use crate::requester::{explain, hinted, print_json, runtime, transact, upload, Conn};
use anyhow::{anyhow, bail, Context, Result};
use provernet_sdk::{types, Client};
use provernet_types::{
    AccountId, AttemptOutcome, BoundedString, BoundedVec, Bytes, FileName, GpuCount, JobId, Label,
    MicroCredits, MilliCores, Millis, NamedBlob, ProgramFailure, Resources, TxBody, Usage, Verdict,
};
use serde_json::json;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// status

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
}

pub fn status(a: StatusArgs) -> Result<()> {
    let client = a.conn.client()?;
    runtime()?.block_on(async {
        let s = client.status().await.map_err(|e| explain(e, &a.conn.api))?;
        let supply = client.supply().await.map_err(|e| explain(e, &a.conn.api))?;
        if a.conn.json {
            return print_json(&json!({ "status": s, "supply": supply }));
        }
        println!("chain       {}", s.chain_id);
        println!("height      {} (block {}, state root {})", s.height, s.block_hash, s.state_root);
        println!("block time  {} ms", s.block_time_ms);
        println!("tx fee      {}", s.tx_fee_micro_credits);
        println!("mempool     {} txs, {}", s.mempool.txs, Bytes(s.mempool.bytes));
        let names: Vec<String> = s
            .mechanisms
            .enabled
            .iter()
            .map(|m| provernet_types::MechanismKind::from(*m).name().to_owned())
            .collect();
        println!("mechanisms  {}", names.join(", "));
        println!("supply      {} ({} accounts)", supply.supply_micro_credits, supply.accounts);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// account

#[derive(clap::Subcommand, Debug)]
pub enum AccountCommand {
    /// Show an account's balance, next nonce and open jobs (default: the account of --key).
    Show(AccountShowArgs),
    /// Send credits to another account (created if new); costs the chain's transaction fee.
    Transfer(TransferArgs),
}

#[derive(clap::Args, Debug)]
pub struct AccountShowArgs {
    /// The account id (64 hex characters).
    account: Option<AccountId>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// The receiving account id.
    #[arg(long)]
    to: AccountId,
    /// The amount in credits (`12`, `0.5`), or micro-credits with `µc` (`35000µc`).
    #[arg(long)]
    amount: MicroCredits,
    #[command(flatten)]
    conn: Conn,
}

pub fn account(cmd: AccountCommand) -> Result<()> {
    match cmd {
        AccountCommand::Show(a) => {
            let id = match a.account {
                Some(id) => id,
                None => a
                    .conn
                    .keypair()
                    .map_err(|e| e.context("give an account id, or --key for your own account"))?
                    .account(),
            };
            let client = a.conn.client()?;
            runtime()?.block_on(async {
                let acc = client.account(&id).await.map_err(|e| explain(e, &a.conn.api))?;
                let Some(acc) = acc else {
                    return Err(hinted(
                        format!("account {id} does not exist on this chain"),
                        "an account exists once it holds credits: `provernet account transfer --to ID`",
                    ));
                };
                if a.conn.json {
                    return print_json(&acc);
                }
                println!("account   {}", acc.id);
                println!("balance   {}", acc.balance_micro_credits);
                println!("nonce     {}", acc.nonce.0);
                println!("open jobs {}", acc.open_jobs);
                Ok(())
            })
        }
        AccountCommand::Transfer(a) => {
            if a.amount.0 == 0 {
                bail!("--amount must be above zero");
            }
            let key = a.conn.keypair()?;
            let client = a.conn.client()?;
            runtime()?.block_on(async {
                let (chain_id, fee) = chain(&client, &a.conn).await?;
                let have = client
                    .account(&key.account())
                    .await
                    .map_err(|e| explain(e, &a.conn.api))?
                    .map_or(MicroCredits(0), |acc| acc.balance_micro_credits);
                let need = a.amount.checked_add(fee).ok_or_else(|| anyhow!("amount overflows"))?;
                if have < need {
                    return Err(hinted(
                        format!(
                            "account {} holds {have}; the transfer needs {need} ({} and the fee {fee})",
                            key.account(),
                            a.amount
                        ),
                        "send less, or fund this account first",
                    ));
                }
                let body = TxBody::Transfer { to: a.to, amount: a.amount };
                let nonce = transact(&client, &key, &chain_id, body).await?;
                if a.conn.json {
                    return print_json(&json!({
                        "from": key.account(),
                        "to": a.to,
                        "amount_micro_credits": a.amount.0,
                        "fee_micro_credits": fee.0,
                        "nonce": nonce,
                    }));
                }
                println!("sent {} to {} (fee {fee})", a.amount, a.to);
                Ok(())
            })
        }
    }
}

/// The chain id and the transaction fee.
async fn chain(client: &Client, conn: &Conn) -> Result<(String, MicroCredits)> {
    let s = client.status().await.map_err(|e| explain(e, &conn.api))?;
    Ok((s.chain_id, s.tx_fee_micro_credits))
}

// ---------------------------------------------------------------------------------------------
// prover

#[derive(clap::Subcommand, Debug)]
pub enum ProverCommand {
    /// Show a prover's standing: status, capacity, stake, earnings, faults (default: --key's).
    Status(ProverShowArgs),
    /// List the registered provers.
    List(ProverListArgs),
    /// Register the account of --key as a prover (a node does this by itself on its first
    /// start).
    Register(RegisterArgs),
    /// Leave: take no new work; the stake returns after the exit delay once no work is held.
    Deregister(ConnOnly),
    /// Accept an attempt assigned to this prover.
    Accept(AttemptArgs),
    /// Decline an attempt assigned to this prover (within the decline quota).
    Decline(AttemptArgs),
    /// Commit to the proof files of a running attempt (binds them to this prover).
    Commit(ProofArgs),
    /// Reveal the committed proof files of an attempt (uploads them, then posts them).
    Reveal(ProofArgs),
    /// Claim that the program failed on its own, or ran out of the job's time limit.
    Claim(ClaimArgs),
    /// Enter a job's open race with the commitment of a proof (reveal it with `reveal`).
    Race(RaceArgs),
    /// Vote on a proof as a committee member.
    Vote(VoteArgs),
    /// Lock a reverse-Dutch job at its current price (posts collateral).
    Lock(JobArg),
    /// Place a sealed bid on a lowest-bid job (the salt comes from your key).
    Bid(BidArgs),
    /// Open your sealed bid on a lowest-bid job, with the price you bid.
    RevealBid(BidArgs),
}

#[derive(clap::Args, Debug)]
pub struct ConnOnly {
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct ProverShowArgs {
    /// The prover's account id.
    prover: Option<AccountId>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct ProverListArgs {
    /// At most this many (the API is paged through).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// Cores this machine offers.
    #[arg(long)]
    cores: MilliCores,
    /// Memory it offers.
    #[arg(long)]
    memory: Bytes,
    /// GPUs it offers.
    #[arg(long, default_value = "0")]
    gpus: GpuCount,
    /// A label such as `cpu=x86-64-v3` (repeat).
    #[arg(long = "label")]
    labels: Vec<Label>,
    /// The stake, in credits.
    #[arg(long)]
    stake: MicroCredits,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct JobArg {
    /// The job id.
    job: JobId,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct AttemptArgs {
    /// The job id.
    job: JobId,
    /// The attempt's index (`job status` lists them).
    attempt: u8,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct ProofArgs {
    /// The job id.
    job: JobId,
    /// The attempt's index.
    attempt: u8,
    /// A proof file as `name=path` (repeat).
    #[arg(long = "proof", value_parser = crate::program::parse_input, required = true)]
    files: Vec<(FileName, PathBuf)>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct RaceArgs {
    /// The job id.
    job: JobId,
    /// A proof file as `name=path` (repeat).
    #[arg(long = "proof", value_parser = crate::program::parse_input, required = true)]
    files: Vec<(FileName, PathBuf)>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct ClaimArgs {
    /// The job id.
    job: JobId,
    /// The attempt's index.
    attempt: u8,
    /// What happened: `exit:N`, `signal:N`, `oom`, `no-output`, `output-rules`,
    /// `not-executable` or `time-limit`.
    #[arg(long)]
    failure: String,
    /// The tail of the program's stderr, or why.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct VoteArgs {
    /// The job id.
    job: JobId,
    /// The attempt's index.
    attempt: u8,
    /// `valid`, `invalid` or `cannot-verify`.
    verdict: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args, Debug)]
pub struct BidArgs {
    /// The job id.
    job: JobId,
    /// The price, in credits.
    #[arg(long)]
    price: MicroCredits,
    #[command(flatten)]
    conn: Conn,
}

fn parse_verdict(s: &str) -> Result<Verdict> {
    match s {
        "valid" => Ok(Verdict::Valid),
        "invalid" => Ok(Verdict::Invalid),
        "cannot-verify" | "cannot_verify" => Ok(Verdict::CannotVerify),
        other => bail!("verdict `{other}` is not valid, invalid or cannot-verify"),
    }
}

/// A claim's outcome from `--failure` and `--reason`.
fn parse_claim(failure: &str, reason: &str) -> Result<AttemptOutcome> {
    let reason: BoundedString<{ provernet_types::limits::REASON_BYTES_MAX }> =
        BoundedString::try_new(reason).map_err(|_| {
            anyhow!("--reason is at most {} bytes", provernet_types::limits::REASON_BYTES_MAX)
        })?;
    let number = |v: &str| -> Result<u32> {
        v.parse().map_err(|_| anyhow!("`{failure}`: `{v}` is not a number"))
    };
    let failure = match failure.split_once(':') {
        Some(("exit", n)) => ProgramFailure::Exit(number(n)?),
        Some(("signal", n)) => ProgramFailure::Signal(number(n)?),
        None if failure == "time-limit" => return Ok(AttemptOutcome::TimeLimit { reason }),
        None if failure == "oom" => ProgramFailure::OutOfMemory,
        None if failure == "no-output" => ProgramFailure::NoOutput,
        None if failure == "output-rules" => ProgramFailure::OutputRules,
        None if failure == "not-executable" => ProgramFailure::NotExecutable,
        _ => bail!(
            "--failure `{failure}` is not exit:N, signal:N, oom, no-output, output-rules, \
             not-executable or time-limit"
        ),
    };
    Ok(AttemptOutcome::ProgramError { failure, reason })
}

/// Uploads proof files and names them, in name order.
async fn proof_files(
    client: &Client,
    key: &provernet_types::Keypair,
    chain_id: &str,
    files: &[(FileName, PathBuf)],
    quiet: bool,
) -> Result<BoundedVec<NamedBlob, { provernet_types::limits::PROOF_FILES_MAX }>> {
    let mut named = Vec::new();
    for (name, path) in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let blob =
            upload(client, key, chain_id, &format!("proof file {name}"), bytes, quiet).await?;
        named.push(NamedBlob { name: name.clone(), blob });
    }
    named.sort_by(|a, b| a.name.cmp(&b.name));
    BoundedVec::try_from_vec(named)
        .map_err(|_| anyhow!("at most {} proof files", provernet_types::limits::PROOF_FILES_MAX))
}

fn print_prover(p: &types::Prover) {
    println!("prover     {}", p.id);
    let until = p.exiting_until.map_or(String::new(), |h| format!(" until height {}", h.0));
    println!("status     {}{until}", p.status);
    let (c, u) = (&p.capacity, &p.used);
    println!("capacity   {} cores, {}, {} GPUs", c.cores, c.memory, c.gpus.0);
    println!("in use     {} cores, {}, {} GPUs", u.cores, u.memory, u.gpus.0);
    if !p.labels.is_empty() {
        let labels: Vec<&str> = p.labels.iter().map(Label::as_str).collect();
        println!("labels     {}", labels.join(", "));
    }
    println!("stake      {} ({} bonded)", p.stake_micro_credits, p.bonded_micro_credits);
    println!("earned     {}", p.earned_micro_credits);
    println!("slashed    {}", p.slashed_micro_credits);
    println!("completed  {} jobs, {} faults", p.completed, p.faults);
    println!("registered at height {}", p.registered_at.0);
}

pub fn prover(cmd: ProverCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        ProverCommand::Status(a) => {
            let id = match a.prover {
                Some(id) => id,
                None => a
                    .conn
                    .keypair()
                    .map_err(|e| e.context("give a prover id, or --key for your own"))?
                    .account(),
            };
            let client = a.conn.client()?;
            rt.block_on(async {
                let p = client.prover(&id.into()).await.map_err(|e| explain(e, &a.conn.api))?;
                let Some(p) = p else {
                    return Err(hinted(
                        format!("{id} is not a registered prover"),
                        "`provernet prover register` or `provernet node` registers one",
                    ));
                };
                if a.conn.json {
                    return print_json(&p);
                }
                print_prover(&p);
                Ok(())
            })
        }
        ProverCommand::List(a) => {
            let client = a.conn.client()?;
            rt.block_on(async {
                let mut all: Vec<types::Prover> = Vec::new();
                let mut cursor = None;
                while all.len() < a.limit {
                    let page = client
                        .provers(cursor.as_ref())
                        .await
                        .map_err(|e| explain(e, &a.conn.api))?;
                    all.extend(page.items);
                    match page.next_cursor.and_then(|c| c.parse().ok()) {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                all.truncate(a.limit);
                if a.conn.json {
                    return print_json(&json!({ "items": all }));
                }
                println!(
                    "{:<66} {:<8} {:>8} {:>10} {:>16} {:>16} {:>6}",
                    "prover", "status", "cores", "memory", "stake", "earned", "faults"
                );
                for p in &all {
                    println!(
                        "{:<66} {:<8} {:>8} {:>10} {:>16} {:>16} {:>6}",
                        p.id.to_string(),
                        p.status.name().to_owned(),
                        p.capacity.cores,
                        p.capacity.memory,
                        p.stake_micro_credits.to_string(),
                        p.earned_micro_credits.to_string(),
                        p.faults
                    );
                }
                println!("{} provers", all.len());
                Ok(())
            })
        }
        ProverCommand::Register(a) => {
            let capacity = Resources { cores: a.cores, memory: a.memory, gpus: a.gpus };
            capacity.check_bounds().map_err(|e| anyhow!("capacity: {e}"))?;
            let mut labels = a.labels.clone();
            labels.sort();
            labels.dedup();
            let labels =
                BoundedVec::try_from_vec(labels).map_err(|_| anyhow!("too many labels"))?;
            send(&a.conn, TxBody::RegisterProver { capacity, labels, stake: a.stake }, "registered")
        }
        ProverCommand::Deregister(a) => send(
            &a.conn,
            TxBody::DeregisterProver,
            "deregistered: no new work; the stake returns after the exit delay",
        ),
        ProverCommand::Accept(a) => {
            send(&a.conn, TxBody::AcceptJob { job: a.job, attempt: a.attempt }, "accepted")
        }
        ProverCommand::Decline(a) => {
            send(&a.conn, TxBody::DeclineJob { job: a.job, attempt: a.attempt }, "declined")
        }
        ProverCommand::Vote(a) => {
            let verdict = parse_verdict(&a.verdict)?;
            send(&a.conn, TxBody::Vote { job: a.job, attempt: a.attempt, verdict }, "voted")
        }
        ProverCommand::Claim(a) => {
            let outcome = parse_claim(&a.failure, &a.reason)?;
            let usage = Usage { wall: Millis(0), cpu: Millis(0), peak_memory: Bytes(0) };
            let body = TxBody::PostResult { job: a.job, attempt: a.attempt, outcome, usage };
            send(&a.conn, body, "claimed")
        }
        ProverCommand::Commit(a) => with_files(&a.conn, &a.files, |key, files| {
            let commitment = provernet_types::result_commitment(&key.account(), &a.job, &files);
            TxBody::CommitResult { job: a.job, attempt: a.attempt, commitment }
        }),
        ProverCommand::Reveal(a) => with_files(&a.conn, &a.files, |_, files| {
            let usage = Usage { wall: Millis(0), cpu: Millis(0), peak_memory: Bytes(0) };
            let outcome = AttemptOutcome::Proof(files);
            TxBody::PostResult { job: a.job, attempt: a.attempt, outcome, usage }
        }),
        ProverCommand::Race(a) => with_files(&a.conn, &a.files, |key, files| {
            let commitment = provernet_types::result_commitment(&key.account(), &a.job, &files);
            TxBody::PostRaceProof { job: a.job, commitment }
        }),
        ProverCommand::Lock(a) => {
            let client = a.conn.client()?;
            let job = rt.block_on(job_of(&client, &a.conn, &a.job))?;
            let Some(round) = job.auction_round_opened_at else {
                bail!("job {} has no open auction round (it is {})", a.job, job.status);
            };
            send(&a.conn, TxBody::LockJob { job: a.job, round }, "locked")
        }
        ProverCommand::Bid(a) => bid(a, false),
        ProverCommand::RevealBid(a) => bid(a, true),
    }
}

/// Seals a bid, or reveals it, with the salt derived from the key.
fn bid(a: BidArgs, reveal: bool) -> Result<()> {
    let key = a.conn.keypair()?;
    let client = a.conn.client()?;
    let job = runtime()?.block_on(job_of(&client, &a.conn, &a.job))?;
    let Some(round) = job.auction_round_opened_at else {
        bail!("job {} has no open auction round (it is {})", a.job, job.status);
    };
    let salt = provernet_node::bid_salt(&key.seed(), a.job, round.0);
    let body = if reveal {
        TxBody::RevealBid { job: a.job, price: a.price, salt }
    } else {
        let commitment = provernet_types::bid_commitment(&a.job, &key.account(), a.price, &salt);
        TxBody::BidJob { job: a.job, commitment }
    };
    send(&a.conn, body, if reveal { "bid revealed" } else { "bid sealed" })
}

async fn job_of(client: &Client, conn: &Conn, id: &JobId) -> Result<types::Job> {
    client
        .job(id)
        .await
        .map_err(|e| explain(e, &conn.api))?
        .ok_or_else(|| hinted(format!("there is no job {id}"), "`provernet job list` lists jobs"))
}

/// Uploads `files`, then sends the transaction `make` builds from them.
fn with_files(
    conn: &Conn,
    files: &[(FileName, PathBuf)],
    make: impl FnOnce(
        &provernet_types::Keypair,
        BoundedVec<NamedBlob, { provernet_types::limits::PROOF_FILES_MAX }>,
    ) -> TxBody,
) -> Result<()> {
    let key = conn.keypair()?;
    let client = conn.client()?;
    runtime()?.block_on(async {
        let (chain_id, _) = chain(&client, conn).await?;
        let files = proof_files(&client, &key, &chain_id, files, conn.json).await?;
        let body = make(&key, files);
        finish(conn, &client, &key, &chain_id, body, "sent").await
    })
}

/// Signs and sends `body` as --key, waits for its block and reports.
fn send(conn: &Conn, body: TxBody, done: &str) -> Result<()> {
    let key = conn.keypair()?;
    let client = conn.client()?;
    runtime()?.block_on(async {
        let (chain_id, _) = chain(&client, conn).await?;
        finish(conn, &client, &key, &chain_id, body, done).await
    })
}

async fn finish(
    conn: &Conn,
    client: &Client,
    key: &provernet_types::Keypair,
    chain_id: &str,
    body: TxBody,
    done: &str,
) -> Result<()> {
    let kind = body.kind();
    let nonce = transact(client, key, chain_id, body).await?;
    if conn.json {
        return print_json(&json!({ "kind": kind, "signer": key.account(), "nonce": nonce }));
    }
    println!("{done} ({kind}, nonce {nonce})");
    Ok(())
}
