//! The confined unpacking helper as a binary of its own (the `provernet` binary is one too):
//! started by `provernet_image::confined`, never by hand.

fn main() {
    provernet_image::confined::run_if_helper();
    #[allow(clippy::print_stderr)] // a person started it: say what it is for
    {
        eprintln!("provernet-unpack is started by the prover node to unpack image layers");
    }
    std::process::exit(2);
}
