//! Structured logging and progress sinks for OSSB.
//!
//! - [`json`]: a `tracing` layer that writes one JSON object per line with the fields a
//!   Kubernetes operator filters on (`timestamp`, `level`, `msg`, `component`, `build_id`,
//!   `job_name`, `pod_name`, `namespace`, `node_name`, and the event's own fields).
//! - [`init`]: installs that layer, or a human-readable one on a terminal.
//! - [`sinks`]: [`ossb_core::progress::ProgressSink`] implementations: an atomically rewritten
//!   progress file, log events, plain lines, JSON lines and a live terminal view
//!   ([`sinks::TerminalView`], only when stderr is a terminal).
//!
//! ```
//! use ossb_core::progress::{ProgressEvent, ProgressSink};
//! let dir = tempfile::tempdir().unwrap();
//! let sink = ossb_log::sinks::ProgressFile::new(dir.path().join("progress.json"), "linux/amd64");
//! sink.event(&ProgressEvent::Warning { message: "hello".into() });
//! ```

pub mod json;
pub mod sinks;

pub use json::{JsonLayer, StaticFields};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON in a Kubernetes pod, human-readable text elsewhere.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Install the global `tracing` subscriber writing to stderr. `level` is `debug`, `info`,
/// `warn` or `error` (or any `EnvFilter` directive). Returns false when a subscriber was
/// already installed (the call is then a no-op).
pub fn init(format: LogFormat, level: &str, fields: StaticFields) -> bool {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        // JSON where logs are collected (a pod); people and CI logs read text.
        LogFormat::Auto => fields.in_pod,
    };
    if json {
        tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer::new(fields, std::io::stderr))
            .try_init()
            .is_ok()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .try_init()
            .is_ok()
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
