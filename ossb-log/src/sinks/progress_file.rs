//! The progress file (`/tmp/ossb-progress.json` in a pod), rewritten atomically on each update.

use ossb_core::progress::{ProgressEvent, ProgressSink};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The JSON written to the progress file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ProgressRecord {
    /// `build` while building, `done` at the end.
    pub stage: String,
    /// Percent of steps finished, 0 to 100, never decreasing.
    pub progress: f64,
    /// What is happening.
    pub message: String,
    /// RFC 3339 UTC time of the update.
    pub timestamp: String,
    /// Target platform of the step.
    pub platform: String,
    /// Instruction keyword of the step (`RUN`, `COPY`, ...), empty otherwise.
    pub operation: String,
    /// Whether the last finished step was a cache hit.
    pub cache_hit: bool,
}

struct State {
    total: usize,
    finished: usize,
    progress: f64,
    platform: String,
    operation: String,
}

/// Keeps the progress file up to date. Writes go to a temp file in the same directory that is
/// renamed over the target, so readers never see a partial file.
pub struct ProgressFile {
    path: PathBuf,
    state: Mutex<State>,
}

impl ProgressFile {
    /// A sink writing `path`; `platform` is reported until a step names its own.
    pub fn new(path: impl Into<PathBuf>, platform: &str) -> Self {
        ProgressFile {
            path: path.into(),
            state: Mutex::new(State {
                total: 0,
                finished: 0,
                progress: 0.0,
                platform: platform.to_string(),
                operation: String::new(),
            }),
        }
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, record: &ProgressRecord) {
        let Ok(text) = serde_json::to_vec(record) else {
            return;
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        // Best effort: a progress file that cannot be written must not fail the build.
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if tmp.write_all(&text).is_ok() {
                let _ = tmp.persist(&self.path);
            }
        }
    }
}

impl ProgressSink for ProgressFile {
    fn event(&self, event: &ProgressEvent) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let mut cache_hit = false;
        let (stage, message) = match event {
            ProgressEvent::BuildStarted { total_steps, .. } => {
                st.total = *total_steps;
                ("build", "Build started".to_string())
            }
            ProgressEvent::StepStarted {
                id,
                operation,
                description,
            } => {
                st.platform = id.platform.clone();
                st.operation = operation.clone();
                ("build", description.clone())
            }
            ProgressEvent::StepFinished {
                id, cache_hit: hit, ..
            } => {
                st.finished += 1;
                cache_hit = *hit;
                st.platform = id.platform.clone();
                (
                    "build",
                    format!("Finished step {} of {}", st.finished, st.total.max(1)),
                )
            }
            ProgressEvent::BuildFinished { success, .. } => {
                if *success {
                    st.progress = 100.0;
                }
                (
                    "done",
                    if *success {
                        "Build completed"
                    } else {
                        "Build failed"
                    }
                    .to_string(),
                )
            }
            _ => return,
        };
        if st.total > 0 {
            let pct = (st.finished as f64 * 100.0 / st.total as f64).min(100.0);
            st.progress = st.progress.max(pct);
        }
        let record = ProgressRecord {
            stage: stage.into(),
            progress: st.progress,
            message,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            platform: st.platform.clone(),
            operation: st.operation.clone(),
            cache_hit,
        };
        drop(st);
        self.write(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossb_core::progress::StepId;
    use std::time::Duration;

    fn read(p: &Path) -> ProgressRecord {
        serde_json::from_slice(&std::fs::read(p).expect("file written")).expect("valid json")
    }

    #[test]
    fn progress_is_monotonic_and_reaches_100() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        let sink = ProgressFile::new(&path, "linux/amd64");
        sink.event(&ProgressEvent::BuildStarted {
            build_id: "b".into(),
            platforms: vec!["linux/amd64".into()],
            tags: vec![],
            total_steps: 4,
        });
        assert_eq!(read(&path).progress, 0.0);
        let id = StepId {
            platform: "linux/arm64".into(),
            stage: 0,
            step: 1,
        };
        sink.event(&ProgressEvent::StepStarted {
            id: id.clone(),
            operation: "RUN".into(),
            description: "RUN make".into(),
        });
        let r = read(&path);
        assert_eq!(
            (r.operation.as_str(), r.platform.as_str()),
            ("RUN", "linux/arm64")
        );
        sink.event(&ProgressEvent::StepFinished {
            id,
            cache_hit: true,
            duration: Duration::from_secs(1),
            bytes: 0,
        });
        let r = read(&path);
        assert_eq!(r.progress, 25.0);
        assert!(r.cache_hit);
        sink.event(&ProgressEvent::BuildFinished {
            success: true,
            digest: Some("sha256:x".into()),
            operations: 4,
            cache_hits: 1,
            bytes_read: 0,
            bytes_written: 0,
            duration: Duration::from_secs(2),
            error: None,
        });
        let r = read(&path);
        assert_eq!((r.progress, r.stage.as_str()), (100.0, "done"));
        // Only the progress file is left: temp files were renamed over it.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
