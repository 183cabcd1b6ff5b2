//! Makes an INSECURE demo key pair: `groth16-sha256-setup PREIMAGE_BYTES SEED_HEX OUT_DIR`.
//! Anyone who knows the seed can forge proofs. Use keys from a ceremony in production.

#[allow(clippy::print_stderr)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: groth16-sha256-setup PREIMAGE_BYTES SEED_HEX(64) OUT_DIR");
        std::process::exit(2)
    };
    if args.len() != 4 {
        usage();
    }
    let len: usize = args[1].parse().unwrap_or_else(|_| usage());
    let seed_hex = &args[2];
    if seed_hex.len() != 64 {
        usage();
    }
    let mut seed = [0u8; 32];
    for (i, s) in seed.iter_mut().enumerate() {
        *s = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).unwrap_or_else(|_| usage());
    }
    let (pk, vk) = groth16_sha256::setup_insecure(len, seed).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let out = std::path::Path::new(&args[3]);
    std::fs::create_dir_all(out)
        .and_then(|_| std::fs::write(out.join("pk"), pk.to_bytes()))
        .and_then(|_| std::fs::write(out.join("vk"), vk.to_bytes()))
        .unwrap_or_else(|e| {
            eprintln!("writing keys: {e}");
            std::process::exit(2)
        });
    eprintln!(
        "INSECURE demo keys for {len}-byte preimages written to {}: never use them for real proofs",
        out.display()
    );
}
