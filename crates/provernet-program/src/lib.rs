//! Helpers for writing prover and verifier programs to the provernet program contract.
//!
//! The contract (BRIEF §5): inputs at `/job/in/<name>` (read-only), proof files written to
//! `/job/out/<name>`, a verifier's proof files at `/job/proof/<name>`. A prover exits 0 when it
//! wrote its proof and non-zero otherwise (the tail of stderr is kept as the reason). A
//! verifier exits 0 for a valid proof, 1 for an invalid one, and anything else for a verifier
//! error, which is not a verdict. Outside the sandbox, `PROVERNET_JOB_ROOT` replaces `/job`
//! (for benchmarks and debugging). No dependencies: programs stay small.

#![allow(clippy::print_stderr)]

use std::path::PathBuf;

/// Exit code of a verifier that found the proof invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code for a failure that is not a verdict (bad inputs, a malformed key).
pub const EXIT_ERROR: i32 = 2;

/// The root of the contract's files: `/job`, or `PROVERNET_JOB_ROOT` when set.
pub fn job_root() -> PathBuf {
    std::env::var_os("PROVERNET_JOB_ROOT").map(Into::into).unwrap_or_else(|| "/job".into())
}

/// Prints `program: msg` to stderr and exits with [`EXIT_ERROR`].
pub fn fail(program: &str, msg: impl std::fmt::Display) -> ! {
    eprintln!("{program}: {msg}");
    std::process::exit(EXIT_ERROR)
}

/// The bytes of input `name`, or exits with [`EXIT_ERROR`] naming what is missing.
pub fn input(program: &str, name: &str) -> Vec<u8> {
    let path = job_root().join("in").join(name);
    std::fs::read(&path).unwrap_or_else(|e| fail(program, format!("reading input `{name}`: {e}")))
}

/// The bytes of input `name` if the job gave it, or exits with [`EXIT_ERROR`] if it cannot be
/// read.
pub fn input_if_given(program: &str, name: &str) -> Option<Vec<u8>> {
    let path = job_root().join("in").join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => fail(program, format!("reading input `{name}`: {e}")),
    }
}

/// Input `name` as UTF-8 text, or exits with [`EXIT_ERROR`].
pub fn input_text(program: &str, name: &str) -> String {
    String::from_utf8(input(program, name))
        .unwrap_or_else(|_| fail(program, format!("input `{name}` is not UTF-8 text")))
}

/// The bytes of proof file `name`, if the prover supplied it.
pub fn proof_file(name: &str) -> Option<Vec<u8>> {
    std::fs::read(job_root().join("proof").join(name)).ok()
}

/// Writes output file `name`, or exits with [`EXIT_ERROR`].
pub fn write_output(program: &str, name: &str, bytes: &[u8]) {
    let path = job_root().join("out").join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| fail(program, format!("writing `{name}`: {e}")))
}

/// A verifier's verdict: reports it on stderr and exits 0 (valid) or [`EXIT_INVALID`].
pub fn verdict(valid: bool, what: impl std::fmt::Display) -> ! {
    if valid {
        eprintln!("VALID: {what}");
        std::process::exit(0)
    }
    eprintln!("INVALID: {what}");
    std::process::exit(EXIT_INVALID)
}
