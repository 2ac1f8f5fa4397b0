//! The job lifecycle: the status file, cancellation on signals, the build timeout, cleanups
//! and exit codes.

mod cancel;
mod lifecycle;
mod progress;
mod signals;
mod status;

pub use cancel::{CancelReason, CancelToken};
pub use lifecycle::{JobError, JobLifecycleManager, SignalHandler, Watchdog};
pub use progress::StatusProgress;
pub use status::{
    BuildResult, DEFAULT_STATUS_FILE, FailedStep, JobStatus, STATUS_FILE_ENV, StatusRecord,
    format_duration, now_rfc3339, write_status,
};
