//! Prover executable. Inputs: `pk` (proving key), `preimage` (private), `digest` (32 bytes,
//! public). Output: `proof` (128 bytes). Exit 0 with a proof, 2 on bad inputs.

fn main() {
    let root = groth16_sha256::job_root();
    let read = |name: &str| {
        std::fs::read(root.join("in").join(name))
            .unwrap_or_else(|e| fail(&format!("reading input `{name}`: {e}")))
    };
    let pk = groth16_sha256::ProvingKeyFile::from_bytes(&read("pk"))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let preimage = read("preimage");
    let digest: [u8; 32] =
        read("digest").try_into().unwrap_or_else(|_| fail("input `digest` must be 32 bytes"));
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut seed);
    }
    let proof = groth16_sha256::prove(&pk, &preimage, &digest, seed)
        .unwrap_or_else(|e| fail(&e.to_string()));
    std::fs::write(root.join("out").join("proof"), proof)
        .unwrap_or_else(|e| fail(&format!("writing the proof: {e}")));
}

#[allow(clippy::print_stderr)]
fn fail(msg: &str) -> ! {
    eprintln!("groth16-sha256-prover: {msg}");
    std::process::exit(2)
}
