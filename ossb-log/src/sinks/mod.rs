//! [`ProgressSink`](ossb_core::progress::ProgressSink) implementations.

mod lines;
mod log_events;
mod progress_file;
mod terminal;

pub use lines::{JsonLines, PlainLines};
pub use log_events::LogEvents;
pub use progress_file::ProgressFile;
pub use terminal::{TerminalView, format_bytes};

use ossb_core::progress::ProgressEvent;

/// A one-line human description of an event (`None` for events not worth a line).
pub fn describe(event: &ProgressEvent) -> Option<String> {
    use ProgressEvent::*;
    Some(match event {
        BuildStarted {
            platforms,
            tags,
            total_steps,
            ..
        } => format!(
            "build started: {} step(s) for {}{}",
            total_steps,
            platforms.join(","),
            if tags.is_empty() {
                String::new()
            } else {
                format!(", tags {}", tags.join(" "))
            }
        ),
        StageStarted { platform, name, .. } => format!("[{platform}] stage {name}"),
        StepStarted {
            id, description, ..
        } => {
            format!("[{} {}/{}] {}", id.platform, id.stage, id.step, description)
        }
        StepOutput { line, .. } => format!("  | {line}"),
        StepFinished {
            id,
            cache_hit,
            duration,
            ..
        } => format!(
            "[{} {}/{}] {} in {:.2}s",
            id.platform,
            id.stage,
            id.step,
            if *cache_hit { "CACHED" } else { "done" },
            duration.as_secs_f64()
        ),
        StageFinished { .. } => return None,
        Registry {
            operation,
            registry,
            repository,
            bytes,
            duration,
        } => format!(
            "{operation} {registry}/{repository}: {bytes} bytes in {:.2}s",
            duration.as_secs_f64()
        ),
        Warning { message } => format!("warning: {message}"),
        Sandbox { rung, detail } => format!("RUN steps use the {rung} sandbox ({detail})"),
        BuildFinished {
            success: true,
            digest,
            duration,
            operations,
            cache_hits,
            bytes_read,
            bytes_written,
            ..
        } => format!(
            "build finished in {:.2}s: {} ({} operations, {} cached, {} read, {} written)",
            duration.as_secs_f64(),
            digest.as_deref().unwrap_or("-"),
            operations,
            cache_hits,
            terminal::format_bytes(*bytes_read),
            terminal::format_bytes(*bytes_written)
        ),
        BuildFinished {
            success: false,
            error,
            ..
        } => {
            format!(
                "build failed: {}",
                error.as_deref().unwrap_or("unknown error")
            )
        }
    })
}
