//! Parser benchmark (to be filled in).
fn main() {}
