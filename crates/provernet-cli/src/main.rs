//! The provernet command-line tool.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_chain;
mod bench_network;
mod bench_sandbox;
mod bench_scale;
mod bench_workflow;
mod blob_cmd;
mod chain_cmd;
mod devnet;
mod logging;
mod network_cmd;
mod node_cmd;
mod program;
mod quote;
mod requester;
mod sim_cmd;
mod workflow_cmd;

use clap::{Parser, Subcommand};

/// provernet: a decentralized, permissionless proving network.
#[derive(Parser, Debug)]
#[command(name = "provernet", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Price a job before submitting it: resources × time limit at the chain's posted prices.
    Quote(quote::QuoteArgs),
    /// Run a prover or verifier locally under the exact sandbox a node uses.
    #[command(subcommand)]
    Program(program::ProgramCommand),
    /// Measure the system's throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Create and inspect keys.
    #[command(subcommand)]
    Keys(network_cmd::KeysCommand),
    /// Create a new network: genesis file, validator keys and configurations.
    Genesis(network_cmd::GenesisArgs),
    /// Run a validator.
    Validator(network_cmd::ValidatorArgs),
    /// Run a prover node: register this machine, take assigned jobs, prove and verify.
    Node(node_cmd::NodeArgs),
    /// Submit proof jobs and follow them.
    #[command(subcommand)]
    Job(requester::JobCommand),
    /// Submit graphs of jobs wired output to input, and follow them.
    #[command(subcommand)]
    Workflow(workflow_cmd::WorkflowCommand),
    /// Fetch proofs and verify them locally.
    #[command(subcommand)]
    Proof(requester::ProofCommand),
    /// Upload and download files of any size (resumable, checked piece by piece).
    #[command(subcommand)]
    Blob(blob_cmd::BlobCommand),
    /// The chain's height, parameters and supply.
    Status(chain_cmd::StatusArgs),
    /// See a balance, send credits.
    #[command(subcommand)]
    Account(chain_cmd::AccountCommand),
    /// A prover's standing, and every prover transaction by hand.
    #[command(subcommand)]
    Prover(chain_cmd::ProverCommand),
    /// Start a local network (a validator and prover nodes) and prove a batch of real jobs.
    Devnet(devnet::DevnetArgs),
    /// The mechanism lab: simulate allocation mechanisms over scenarios and compare them.
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
}

fn main() {
    // The sandbox re-executes this binary as its single-threaded helper, and the image cache
    // as its confined unpacker.
    provernet_sandbox::run_if_helper();
    provernet_image::confined::run_if_helper();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quote(args) => quote::run(args),
        Command::Program(cmd) => program::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Keys(cmd) => network_cmd::run_keys(cmd),
        Command::Genesis(args) => network_cmd::run_genesis(args),
        Command::Validator(args) => network_cmd::run_validator_cmd(args),
        Command::Node(args) => node_cmd::run(args),
        Command::Devnet(args) => devnet::run(args),
        Command::Job(cmd) => requester::job(cmd),
        Command::Workflow(cmd) => workflow_cmd::run(cmd),
        Command::Proof(cmd) => requester::proof(cmd),
        Command::Blob(cmd) => blob_cmd::run(cmd),
        Command::Status(args) => chain_cmd::status(args),
        Command::Account(cmd) => chain_cmd::account(cmd),
        Command::Prover(cmd) => chain_cmd::prover(cmd),
        Command::Sim(cmd) => sim_cmd::run(cmd),
    };
    if let Err(err) = result {
        // The causes, outermost first; a hint is printed on its own line instead.
        let causes: Vec<String> = err
            .chain()
            .filter(|c| c.downcast_ref::<Hint>().is_none())
            .map(ToString::to_string)
            .collect();
        eprintln!("error: {}", causes.join(": "));
        if let Some(hint) = err.downcast_ref::<Hint>() {
            eprintln!("hint: {}", hint.0);
        }
        std::process::exit(1);
    }
}

/// An error that carries a suggestion for the user.
#[derive(Debug)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hint {}
