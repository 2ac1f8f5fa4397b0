//! The `.dockerignore` matcher with moby/patternmatcher semantics (to be filled in).
