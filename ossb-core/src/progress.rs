//! The `ProgressSink` trait and typed progress events (to be filled in).
