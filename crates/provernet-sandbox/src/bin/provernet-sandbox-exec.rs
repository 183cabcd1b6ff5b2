//! The sandbox helper. Started by `provernet-sandbox`, never by hand: it reads its
//! configuration from stdin and runs one program inside fresh namespaces.

fn main() {
    provernet_sandbox::exec::helper_main()
}
