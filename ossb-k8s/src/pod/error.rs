//! The error type of in-pod discovery and workspace preparation.

use ossb_core::ExitCode;
use std::path::PathBuf;

/// Something in the pod's files or environment is wrong. Messages name the path and the fix;
/// they never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A mounted Secret or ConfigMap has the wrong shape.
    #[error("invalid {what} at {}: {reason}", path.display())]
    Invalid {
        /// What the file is (`registry secret`, ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
        /// The exit-code class.
        class: ExitCode,
    },
    /// A symlink in a mounted volume points outside the volume.
    #[error(
        "refusing {}: it resolves to {} outside the volume {}; mount the ConfigMap/Secret without symlinks that leave it",
        path.display(), target.display(), root.display()
    )]
    Escape {
        /// The entry.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The volume root.
        root: PathBuf,
    },
    /// The workspace file system has too little free space.
    #[error(
        "not enough free space in workspace {}: {free} bytes free, {needed} bytes needed; give the emptyDir a larger sizeLimit or the node more ephemeral storage, or lower the requested size",
        path.display()
    )]
    InsufficientSpace {
        /// The workspace directory.
        path: PathBuf,
        /// Bytes available to an unprivileged user.
        free: u64,
        /// Bytes requested.
        needed: u64,
    },
}

impl PodError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PodError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The exit code this error maps to: 6 for disk space (also `ENOSPC`), 4 for invalid
    /// credentials, 5 for other configuration problems.
    ///
    /// ```
    /// use ossb_k8s::pod::PodError;
    /// let e = PodError::InsufficientSpace { path: "/workspace".into(), free: 1, needed: 2 };
    /// assert_eq!(e.exit_code(), ossb_core::ExitCode::Resource);
    /// ```
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PodError::InsufficientSpace { .. } => ExitCode::Resource,
            PodError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ExitCode::Resource
            }
            PodError::Invalid { class, .. } => *class,
            PodError::Io { .. } | PodError::Escape { .. } => ExitCode::Configuration,
        }
    }
}

impl From<PodError> for ossb_core::Error {
    fn from(err: PodError) -> Self {
        ossb_core::Error::new(err.exit_code(), err.to_string())
    }
}
