//! The error type of the executor's filesystem operations.

use std::io;

/// An error of a filesystem operation of the executor; every message names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call on a path beneath a root failed.
    #[error(
        "cannot {op} `{path}`: {source}; check that the path exists and is writable by the build user"
    )]
    Io {
        /// The operation (`open`, `mkdir`, `unlink`...).
        op: &'static str,
        /// The path beneath the root (or on the host for a root itself).
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A path would leave its root (`..`, an absolute name, a link to the outside).
    #[error(
        "path `{path}` escapes the root ({reason}); refusing it: fix the layer, archive or instruction that names it"
    )]
    Escape {
        /// The offending path as written.
        path: String,
        /// Why it escapes.
        reason: String,
    },
    /// A tar entry could not be applied.
    #[error("layer entry `{entry}`: {message}")]
    Entry {
        /// The entry's name in the tar stream.
        entry: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A COPY or ADD source is missing (or was excluded).
    #[error(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat {path}: file does not exist (source `{path}` in {context}; check the path and .dockerignore)"
    )]
    SourceNotFound {
        /// The source path as written.
        path: String,
        /// Where it was looked up (`build context`, `stage builder`).
        context: String,
    },
    /// A COPY or ADD instruction is malformed.
    #[error("{message}")]
    Invalid {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A `--chown` user or group could not be resolved.
    #[error(
        "unable to find {what} `{name}` in /etc/{file} of the image; create it first or use a numeric id"
    )]
    UnknownId {
        /// `user` or `group`.
        what: &'static str,
        /// The name as written.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
}

impl FsError {
    /// An [`FsError::Io`] from a rustix error.
    pub fn io(op: &'static str, path: impl Into<String>, err: impl Into<io::Error>) -> Self {
        FsError::Io {
            op,
            path: path.into(),
            source: err.into(),
        }
    }

    /// The OS error number behind this error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl From<FsError> for crate::Error {
    fn from(err: FsError) -> Self {
        crate::Error::new(crate::ExitCode::Build, err.to_string())
    }
}

/// The result type of the executor's filesystem operations.
pub type Result<T> = std::result::Result<T, FsError>;
