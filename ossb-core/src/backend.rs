//! The `BuildBackend` trait: run a build request, locally or elsewhere (to be filled in).
