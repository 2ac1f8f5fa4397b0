//! [`JobLifecycleManager`]: the status file, cancellation, timeout and cleanups of one build.

use super::cancel::{CancelReason, CancelToken};
use super::progress::Tracker;
use super::signals;
use super::status::{
    BuildResult, DEFAULT_STATUS_FILE, FailedStep, JobStatus, STATUS_FILE_ENV, StatusRecord,
    format_duration, now_rfc3339, write_status,
};
use ossb_core::ExitCode;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The lifecycle could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The status file could not be written.
    #[error(
        "cannot write the status file {}: {source}; mount a writable emptyDir at its directory or set OSSB_STATUS_FILE",
        path.display()
    )]
    StatusFile {
        /// The status file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
}

impl JobError {
    /// Always [`ExitCode::Configuration`] (5).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Configuration
    }
}

impl From<JobError> for ossb_core::Error {
    fn from(err: JobError) -> Self {
        ossb_core::Error::new(err.exit_code(), err.to_string())
    }
}

type Cleanup = (String, Box<dyn FnOnce() + Send>);

pub(crate) struct State {
    pub(crate) record: StatusRecord,
    pub(crate) tracker: Tracker,
    started: Option<Instant>,
}

pub(crate) struct Inner {
    path: PathBuf,
    pub(crate) state: Mutex<State>,
    ended: Condvar,
    cancel: CancelToken,
    cleanups: Mutex<Vec<Cleanup>>,
    grace: Duration,
    hard_exit: bool,
}

/// Drives the status file and the exit code of one build in a Job.
///
/// Typical use by the CLI: [`from_env`](Self::from_env), [`install_signal_handler`](Self::install_signal_handler),
/// optionally [`start_timeout`](Self::start_timeout), add [`progress_sink`](Self::progress_sink)
/// to the build's sinks, give [`cancel_token`](Self::cancel_token) to the build, register
/// cleanups, then [`finish`](Self::finish) with the build's result and exit with the code.
///
/// ```
/// use ossb_k8s::job::{JobLifecycleManager, JobStatus, StatusRecord};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("status.json");
/// let job = JobLifecycleManager::new(&path).unwrap();
/// job.start("b-1");
/// job.progress(40.0, "building");
/// let code = job.finish::<()>(&Err(ossb_core::Error::new(ossb_core::ExitCode::Build, "RUN make failed")));
/// assert_eq!(code.code(), 2);
/// let rec: StatusRecord = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
/// assert_eq!((rec.status, rec.progress), (JobStatus::Failed, 40.0));
/// ```
#[derive(Clone)]
pub struct JobLifecycleManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JobLifecycleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLifecycleManager")
            .field("path", &self.inner.path)
            .field("status", &self.status())
            .finish()
    }
}

/// Keeps the signal-handling thread's pipe alive; dropping it does not uninstall handlers.
#[derive(Debug)]
pub struct SignalHandler {
    _thread: std::thread::JoinHandle<()>,
}

/// The timeout watchdog thread; it stops by itself when the job ends.
#[derive(Debug)]
pub struct Watchdog {
    _thread: std::thread::JoinHandle<()>,
}

impl JobLifecycleManager {
    /// A manager writing `path`; writes `Pending` at once so a bad path fails early.
    /// After a signal or timeout the build gets 20 s to stop before the process exits.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, JobError> {
        Self::with_options(path, Duration::from_secs(20), true)
    }

    /// Like [`new`](Self::new) with the grace period after a signal or timeout, and whether
    /// to exit the process (with 8 or 7, after running cleanups) when the build has not
    /// finished by then.
    pub fn with_options(
        path: impl Into<PathBuf>,
        grace: Duration,
        hard_exit: bool,
    ) -> Result<Self, JobError> {
        let path = path.into();
        let record = StatusRecord {
            status: JobStatus::Pending,
            message: "Build pending".into(),
            timestamp: now_rfc3339(),
            progress: 0.0,
            build_result: None,
            build_id: None,
            exit_code: None,
            failed_step: None,
            platforms: Default::default(),
            sandbox: None,
        };
        write_status(&path, &record).map_err(|source| JobError::StatusFile {
            path: path.clone(),
            source,
        })?;
        Ok(JobLifecycleManager {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(State {
                    record,
                    tracker: Tracker::default(),
                    started: None,
                }),
                ended: Condvar::new(),
                cancel: CancelToken::new(),
                cleanups: Mutex::new(Vec::new()),
                grace,
                hard_exit,
            }),
        })
    }

    /// A manager for `OSSB_STATUS_FILE`, else `/tmp/ossb-status.json`.
    pub fn from_env() -> Result<Self, JobError> {
        let path = std::env::var_os(STATUS_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATUS_FILE));
        Self::new(path)
    }

    /// The status file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The current status.
    pub fn status(&self) -> JobStatus {
        self.lock().record.status
    }

    /// The token the build polls; cancelled by signals and the timeout.
    pub fn cancel_token(&self) -> CancelToken {
        self.inner.cancel.clone()
    }

    /// Register a cleanup; cleanups run once, in reverse order of registration, when the job
    /// ends in any way (including a hard exit after a signal).
    pub fn register_cleanup(&self, name: impl Into<String>, f: impl FnOnce() + Send + 'static) {
        if let Ok(mut c) = self.inner.cleanups.lock() {
            c.push((name.into(), Box::new(f)));
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write the record (best effort after construction: a failed write is logged, never fatal).
    pub(crate) fn write(&self, record: &StatusRecord) {
        if let Err(e) = write_status(&self.inner.path, record) {
            tracing::warn!(component = "job_status", path = %self.inner.path.display(), "cannot write the status file: {e}");
        }
    }

    /// One `job_status` log line per status change; terminal states also carry the
    /// `build_result` summary (`operations`, `cache_hits`, `duration`, `digest`).
    fn log(record: &StatusRecord) {
        let build_id = record.build_id.as_deref().unwrap_or("");
        let exit_code = record.exit_code.unwrap_or(-1);
        let status = record.status.to_string();
        let msg = &record.message;
        let Some(result) = &record.build_result else {
            tracing::info!(
                component = "job_status",
                status,
                build_id,
                progress = record.progress,
                "{msg}"
            );
            return;
        };
        let operations = result.operations as u64;
        let cache_hits = result.cache_hits as u64;
        let duration = result.duration.as_str();
        let digest = result.digest.as_deref().unwrap_or("");
        match record.status {
            JobStatus::Failed => tracing::error!(
                component = "job_status",
                status,
                build_id,
                exit_code,
                progress = record.progress,
                operations,
                cache_hits,
                duration,
                "{msg}"
            ),
            JobStatus::Cancelled => tracing::warn!(
                component = "job_status",
                status,
                build_id,
                exit_code,
                progress = record.progress,
                operations,
                cache_hits,
                duration,
                "{msg}"
            ),
            _ => tracing::info!(
                component = "job_status",
                status,
                build_id,
                exit_code,
                progress = record.progress,
                operations,
                cache_hits,
                duration,
                digest,
                "{msg}"
            ),
        }
    }

    /// `Running` with `build_id`. Ignored once the job has ended.
    pub fn start(&self, build_id: &str) {
        let mut st = self.lock();
        if st.record.status.is_terminal() {
            return;
        }
        st.started.get_or_insert_with(Instant::now);
        st.record.status = JobStatus::Running;
        st.record.build_id = Some(build_id.to_string());
        st.record.message = "Build started".into();
        st.record.timestamp = now_rfc3339();
        let rec = st.record.clone();
        drop(st);
        Self::log(&rec);
        self.write(&rec);
    }

    /// Update the progress (percent, never decreasing) and message while running.
    pub fn progress(&self, percent: f64, message: &str) {
        let mut st = self.lock();
        if st.record.status != JobStatus::Running {
            return;
        }
        if percent.is_finite() {
            st.record.progress = st.record.progress.max(percent.clamp(0.0, 100.0));
        }
        st.record.message = message.to_string();
        st.record.timestamp = now_rfc3339();
        let rec = st.record.clone();
        drop(st);
        self.write(&rec);
    }

    /// Move to a terminal state once; returns false when already ended. Runs the cleanups
    /// after writing the file.
    fn end(
        &self,
        status: JobStatus,
        code: ExitCode,
        message: String,
        failed_step: Option<FailedStep>,
    ) -> bool {
        let mut st = self.lock();
        if st.record.status.is_terminal() {
            return false;
        }
        let success = status == JobStatus::Succeeded;
        let elapsed = st.started.map(|s| s.elapsed()).unwrap_or_default();
        let summary = st.tracker.summary();
        st.record.status = status;
        st.record.message = message;
        st.record.timestamp = now_rfc3339();
        st.record.exit_code = Some(code.code());
        st.record.failed_step = failed_step;
        if success {
            st.record.progress = 100.0;
            for p in st.record.platforms.values_mut() {
                *p = 100.0;
            }
        }
        st.record.build_result = Some(BuildResult {
            success,
            operations: summary.operations,
            cache_hits: summary.cache_hits,
            bytes_read: summary.bytes_read,
            bytes_written: summary.bytes_written,
            duration: format_duration(summary.duration.unwrap_or(elapsed)),
            digest: if success { summary.digest } else { None },
        });
        let rec = st.record.clone();
        drop(st);
        Self::log(&rec);
        self.write(&rec);
        self.run_cleanups();
        self.inner.ended.notify_all();
        true
    }

    /// Run the registered cleanups now, in reverse order (each at most once; a panicking
    /// cleanup is logged and the others still run).
    pub fn run_cleanups(&self) {
        let list = match self.inner.cleanups.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => return,
        };
        for (name, f) in list.into_iter().rev() {
            tracing::debug!(
                component = "job_status",
                cleanup = name.as_str(),
                "running cleanup"
            );
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                tracing::warn!(
                    component = "job_status",
                    cleanup = name.as_str(),
                    "cleanup panicked"
                );
            }
        }
    }

    /// `Succeeded`, progress 100, with the summary seen by the progress sink. Returns 0.
    pub fn complete(&self) -> ExitCode {
        self.end(
            JobStatus::Succeeded,
            ExitCode::Success,
            "Build completed successfully".into(),
            None,
        );
        ExitCode::Success
    }

    /// `Failed` with the error's exit code, naming the step that was running (as seen by
    /// the progress sink) unless `at` names one.
    pub fn fail(&self, err: &ossb_core::Error, at: Option<FailedStep>) -> ExitCode {
        let code = err.exit_code();
        let step = at.or_else(|| self.lock().tracker.running_step());
        let message = match &step {
            Some(s) => format!("Build failed at {s}: {err}"),
            None => format!("Build failed: {err}"),
        };
        self.end(JobStatus::Failed, code, message, step);
        code
    }

    /// `Cancelled` with exit code 8 (or `Failed` with 7 for a timeout); cancels the token.
    pub fn cancel(&self, reason: CancelReason) -> ExitCode {
        self.inner.cancel.cancel(reason.clone());
        let code = reason.exit_code();
        let step = self.lock().tracker.running_step();
        if code == ExitCode::Timeout {
            self.end(
                JobStatus::Failed,
                code,
                format!("Build timed out: {reason}"),
                step,
            );
        } else {
            self.end(
                JobStatus::Cancelled,
                code,
                format!("Build cancelled: {reason}"),
                step,
            );
        }
        code
    }

    /// End the job from the build's result and return the process exit code: success,
    /// cancellation or timeout when the token was cancelled, else the error's class.
    pub fn finish<T>(&self, result: &Result<T, ossb_core::Error>) -> ExitCode {
        match (result, self.inner.cancel.reason()) {
            (Ok(_), _) => self.complete(),
            (Err(_), Some(reason)) => self.cancel(reason),
            (Err(e), None) => self.fail(e, None),
        }
    }

    /// Block until the job has ended or `timeout` passed; true when it ended.
    pub fn wait_ended(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while !st.record.status.is_terminal() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.inner.ended.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// After a cancellation: give the build the grace period, then end the job and exit.
    fn enforce(&self, reason: CancelReason) {
        if self.wait_ended(self.inner.grace) {
            return;
        }
        let code = self.cancel(reason);
        if self.inner.hard_exit {
            std::process::exit(code.code());
        }
    }

    /// Install SIGTERM and SIGINT handlers (once per process). The first signal cancels the
    /// token; if the job has not ended within the grace period, or a second signal arrives,
    /// the job is ended as `Cancelled`, cleanups run, and the process exits with 8.
    pub fn install_signal_handler(&self) -> Result<SignalHandler, JobError> {
        let fd = signals::install().map_err(JobError::Signals)?;
        let job = self.clone();
        let thread = std::thread::Builder::new()
            .name("ossb-signals".into())
            .spawn(move || {
                let mut buf = [0u8; 16];
                let mut seen = 0;
                loop {
                    let n = match rustix::io::read(&fd, &mut buf) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(_) => return,
                    };
                    for &sig in &buf[..n] {
                        seen += 1;
                        let reason = CancelReason::Signal(signals::name(sig));
                        tracing::warn!(
                            component = "job_status",
                            signal = signals::name(sig),
                            "received signal, cancelling the build"
                        );
                        if seen == 1 {
                            job.inner.cancel.cancel(reason.clone());
                            let j = job.clone();
                            std::thread::spawn(move || j.enforce(reason));
                        } else {
                            let code = job.cancel(reason);
                            if job.inner.hard_exit {
                                std::process::exit(code.code());
                            }
                        }
                    }
                }
            })
            .map_err(JobError::Signals)?;
        Ok(SignalHandler { _thread: thread })
    }

    /// Cancel the build with exit code 7 if it has not ended after `limit`; after the grace
    /// period the job is ended as `Failed` and the process exits with 7.
    pub fn start_timeout(&self, limit: Duration) -> Watchdog {
        let job = self.clone();
        let thread = std::thread::spawn(move || {
            if job.wait_ended(limit) {
                return;
            }
            let reason = CancelReason::Timeout(limit);
            tracing::warn!(component = "job_status", "{reason}");
            job.inner.cancel.cancel(reason.clone());
            job.enforce(reason);
        });
        Watchdog { _thread: thread }
    }
}
