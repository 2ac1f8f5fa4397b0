//! The status file (`/tmp/ossb-status.json`) and its atomic rewrite.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Default path of the status file.
pub const DEFAULT_STATUS_FILE: &str = "/tmp/ossb-status.json";
/// Overrides [`DEFAULT_STATUS_FILE`].
pub const STATUS_FILE_ENV: &str = "OSSB_STATUS_FILE";

/// The job's state, as written to the status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Not started yet.
    Pending,
    /// Building.
    Running,
    /// The build succeeded.
    Succeeded,
    /// The build failed (including a timeout).
    Failed,
    /// The build was cancelled (SIGTERM, SIGINT).
    Cancelled,
}

impl JobStatus {
    /// True for `Succeeded`, `Failed` and `Cancelled`: no further transition happens.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The step a build failed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStep {
    /// Target platform.
    pub platform: String,
    /// Stage index.
    pub stage: usize,
    /// Stage name (`AS name`, or the index as text).
    pub stage_name: String,
    /// Step index in the stage.
    pub step: usize,
    /// Instruction keyword (`RUN`, `COPY`, ...).
    pub operation: String,
    /// The instruction as shown in progress (secrets never included).
    pub instruction: String,
}

impl fmt::Display for FailedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage {} ({}) step {} `{}` on {}",
            self.stage, self.stage_name, self.step, self.instruction, self.platform
        )
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The summary of a finished build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildResult {
    /// True on success.
    pub success: bool,
    /// Steps executed or served from the cache.
    pub operations: usize,
    /// Steps served from the cache.
    pub cache_hits: usize,
    /// Bytes read: build context files and base or cached layer blobs (left out when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_read: u64,
    /// Bytes of layer blobs written to the store (left out when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_written: u64,
    /// Wall time, like `45s` or `2m5s`.
    pub duration: String,
    /// The image digest on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The JSON object in the status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// The state.
    pub status: JobStatus,
    /// What happened, for a person.
    pub message: String,
    /// RFC 3339 UTC time of this update.
    pub timestamp: String,
    /// Percent done, 0 to 100, never decreasing.
    pub progress: f64,
    /// The summary, once the build has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_result: Option<BuildResult>,
    /// The build id, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The process exit code, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Where the build failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<FailedStep>,
    /// Percent done per target platform.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, f64>,
    /// The rung of the execution ladder RUN steps ran on (`full`, `reduced`, `chroot`,
    /// `ptrace`), once the first RUN step chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// The current UTC time in RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Format a duration like the status file does: `45s`, `2m5s`, `1h0m3s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ossb_k8s::job::format_duration(Duration::from_millis(45_400)), "45s");
/// assert_eq!(ossb_k8s::job::format_duration(Duration::from_secs(125)), "2m5s");
/// assert_eq!(ossb_k8s::job::format_duration(Duration::from_secs(3603)), "1h0m3s");
/// ```
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// Write `record` to `path` atomically: a temp file in the same directory, renamed over it.
pub fn write_status(path: &Path, record: &StatusRecord) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let text = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ossb-status")
        .tempfile_in(dir)?;
    tmp.write_all(&text)?;
    tmp.write_all(b"\n")?;
    // Readable by a sidecar running as another user.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
