//! Example: parse a Dockerfile with ossb-core (to be filled in).
fn main() {}
