//! The `ossb` command.

fn main() {
    println!("ossb {}", env!("CARGO_PKG_VERSION"));
}
