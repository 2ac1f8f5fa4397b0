//! ossb-registry: see README.md (to be filled in).
