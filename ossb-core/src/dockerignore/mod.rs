//! The `.dockerignore` matcher with moby/patternmatcher semantics.
