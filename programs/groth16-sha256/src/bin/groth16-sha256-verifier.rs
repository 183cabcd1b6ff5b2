//! Verifier executable. Inputs: `vk` (verifying key), `digest` (the job's public statement);
//! proof file: `proof`. Exit 0 valid, 1 invalid, 2 verifier error (a malformed key or digest).

#[allow(clippy::print_stderr)]
fn main() {
    let root = groth16_sha256::job_root();
    let error = |msg: String| -> ! {
        eprintln!("groth16-sha256-verifier: {msg}");
        std::process::exit(2)
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read(&path).unwrap_or_else(|e| error(format!("reading {}: {e}", path.display())))
    };
    let vk = groth16_sha256::VerifyingKeyFile::from_bytes(&read(root.join("in/vk")))
        .unwrap_or_else(|e| error(e.to_string()));
    let digest = read(root.join("in/digest"));
    let Ok(proof) = std::fs::read(root.join("proof/proof")) else {
        eprintln!("groth16-sha256-verifier: no proof file `proof`");
        std::process::exit(1)
    };
    match groth16_sha256::verify(&vk, &digest, &proof) {
        Ok(true) => eprintln!("VALID: knowledge of a SHA-256 preimage of {}", hex(&digest)),
        Ok(false) => {
            eprintln!("INVALID proof for digest {}", hex(&digest));
            std::process::exit(1)
        }
        Err(e) => error(e.to_string()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
