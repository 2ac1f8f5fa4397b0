//! Plain timestamped lines (non-terminal output) and JSON lines (`--progress=json`).

use super::describe;
use ossb_core::progress::{ProgressEvent, ProgressSink};
use std::io::Write;
use std::sync::Mutex;

/// Writes one timestamped line per event to a writer (stderr by default).
pub struct PlainLines {
    out: Mutex<Box<dyn Write + Send>>,
}

impl PlainLines {
    /// Lines to stderr.
    pub fn stderr() -> Self {
        Self::to(Box::new(std::io::stderr()))
    }

    /// Lines to any writer.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        PlainLines {
            out: Mutex::new(out),
        }
    }
}

impl ProgressSink for PlainLines {
    fn event(&self, event: &ProgressEvent) {
        let Some(text) = describe(event) else { return };
        let now = chrono::Utc::now().format("%H:%M:%S%.3f");
        if let Ok(mut out) = self.out.lock() {
            // Progress output is best effort; a closed stderr must not fail the build.
            let _ = writeln!(out, "{now} {text}");
        }
    }
}

/// Writes each event as one JSON object per line (stdout by default).
pub struct JsonLines {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLines {
    /// JSON lines to stdout.
    pub fn stdout() -> Self {
        Self::to(Box::new(std::io::stdout()))
    }

    /// JSON lines to any writer.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        JsonLines {
            out: Mutex::new(out),
        }
    }
}

impl ProgressSink for JsonLines {
    fn event(&self, event: &ProgressEvent) {
        let Ok(mut value) = serde_json::to_value(event) else {
            return;
        };
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "timestamp".into(),
                chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into(),
            );
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{value}");
        }
    }
}
