//! ossb-k8s: see README.md (to be filled in).
