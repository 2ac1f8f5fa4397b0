//! The crate's error type and the documented process exit codes.

use std::fmt;

/// The documented exit codes of `ossb`, shared by every front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// The build succeeded.
    Success = 0,
    /// An error that fits no other class.
    General = 1,
    /// The Dockerfile or a build step is wrong (syntax, missing file, failing RUN).
    Build = 2,
    /// A registry could not be reached or refused an operation.
    Registry = 3,
    /// Credentials were missing or refused.
    Authentication = 4,
    /// Flags, configuration files or the environment are wrong.
    Configuration = 5,
    /// Not enough disk, memory or another resource.
    Resource = 6,
    /// The build ran past its time limit.
    Timeout = 7,
    /// The build was cancelled (SIGTERM, SIGINT).
    Cancelled = 8,
}

impl ExitCode {
    /// The numeric process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// An error of the build core, classified for its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile failed to parse.
    #[error(transparent)]
    Parse(#[from] crate::dockerfile::ParseError),
    /// An error with a class and a message that names the cause and the fix.
    #[error("{message}")]
    Classified {
        /// The exit-code class.
        class: ExitCode,
        /// The message for a person.
        message: String,
    },
}

impl Error {
    /// A classified error.
    pub fn new(class: ExitCode, message: impl Into<String>) -> Self {
        Error::Classified {
            class,
            message: message.into(),
        }
    }

    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Parse(_) => ExitCode::Build,
            Error::Classified { class, .. } => *class,
        }
    }
}

impl From<crate::image::error::ImageError> for Error {
    fn from(err: crate::image::error::ImageError) -> Self {
        use crate::image::error::ImageError;
        let class = match &err {
            ImageError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ExitCode::Resource
            }
            ImageError::InvalidPlatform { .. } => ExitCode::Configuration,
            _ => ExitCode::General,
        };
        Error::new(class, err.to_string())
    }
}

impl From<crate::reference::ReferenceError> for Error {
    fn from(err: crate::reference::ReferenceError) -> Self {
        Error::new(ExitCode::Build, err.to_string())
    }
}
