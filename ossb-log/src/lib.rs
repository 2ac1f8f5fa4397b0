//! ossb-log: see README.md (to be filled in).
