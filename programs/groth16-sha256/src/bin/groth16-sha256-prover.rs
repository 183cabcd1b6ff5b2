//! Prover executable. Inputs: `pk` (proving key), `preimage` (private), `digest` (32 bytes,
//! public). Output: `proof` (128 bytes). Exit 0 with a proof, 2 on bad inputs.

use provernet_program::{fail, input, write_output};

const ME: &str = "groth16-sha256-prover";

fn main() {
    let pk = groth16_sha256::ProvingKeyFile::from_bytes(&input(ME, "pk"))
        .unwrap_or_else(|e| fail(ME, e));
    let preimage = input(ME, "preimage");
    let digest: [u8; 32] = input(ME, "digest")
        .try_into()
        .unwrap_or_else(|_| fail(ME, "input `digest` must be 32 bytes"));
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut seed);
    }
    let proof =
        groth16_sha256::prove(&pk, &preimage, &digest, seed).unwrap_or_else(|e| fail(ME, e));
    write_output(ME, "proof", &proof);
}
