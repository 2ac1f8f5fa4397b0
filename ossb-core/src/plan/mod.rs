//! Typed instructions and the build graph (to be filled in).
