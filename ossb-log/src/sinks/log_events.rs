//! Progress events as `tracing` events, so they reach the JSON log in a pod.

use ossb_core::progress::{ProgressEvent, ProgressSink};

/// Emits one `tracing` event per progress event (component `build`, `stage`, `operation`,
/// `registry`), with the event's fields as structured fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

impl ProgressSink for LogEvents {
    fn event(&self, event: &ProgressEvent) {
        use ProgressEvent::*;
        match event {
            BuildStarted {
                build_id,
                platforms,
                tags,
                total_steps,
            } => tracing::info!(
                component = "build",
                build_id = %build_id,
                platforms = %platforms.join(","),
                tags = %tags.join(","),
                total_steps = *total_steps as u64,
                "build started"
            ),
            StageStarted {
                platform,
                stage,
                name,
            } => tracing::info!(
                component = "stage",
                platform = %platform,
                stage = *stage as u64,
                name = %name,
                "stage started"
            ),
            StepStarted {
                id,
                operation,
                description,
            } => tracing::info!(
                component = "operation",
                platform = %id.platform,
                stage = id.stage as u64,
                step = id.step as u64,
                operation = %operation,
                "{description}"
            ),
            StepOutput { id, line } => tracing::info!(
                component = "operation",
                platform = %id.platform,
                stage = id.stage as u64,
                step = id.step as u64,
                output = %line,
                "step output"
            ),
            StepFinished {
                id,
                cache_hit,
                duration,
                bytes,
            } => tracing::info!(
                component = "operation",
                platform = %id.platform,
                stage = id.stage as u64,
                step = id.step as u64,
                cache_hit = *cache_hit,
                duration_s = duration.as_secs_f64(),
                bytes = *bytes,
                "step finished"
            ),
            StageFinished { platform, stage } => tracing::info!(
                component = "stage",
                platform = %platform,
                stage = *stage as u64,
                "stage finished"
            ),
            Registry {
                operation,
                registry,
                repository,
                bytes,
                duration,
            } => tracing::info!(
                component = "registry",
                operation = %operation,
                registry = %registry,
                repository = %repository,
                bytes = *bytes,
                duration_s = duration.as_secs_f64(),
                "registry operation"
            ),
            Warning { message } => tracing::warn!(component = "build", "{message}"),
            Sandbox { rung, detail } => tracing::info!(
                component = "sandbox",
                rung = %rung,
                "RUN steps use the {rung} sandbox ({detail})"
            ),
            BuildFinished {
                success,
                digest,
                operations,
                cache_hits,
                bytes_read,
                bytes_written,
                duration,
                error,
            } => {
                if *success {
                    tracing::info!(
                        component = "build",
                        digest = digest.as_deref().unwrap_or(""),
                        operations = *operations as u64,
                        cache_hits = *cache_hits as u64,
                        bytes_read = *bytes_read,
                        bytes_written = *bytes_written,
                        duration_s = duration.as_secs_f64(),
                        "build completed"
                    )
                } else {
                    tracing::error!(
                        component = "build",
                        error = error.as_deref().unwrap_or(""),
                        duration_s = duration.as_secs_f64(),
                        "build failed"
                    )
                }
            }
        }
    }
}
