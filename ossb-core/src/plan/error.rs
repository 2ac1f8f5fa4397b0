//! The error of planning: an instruction or the build graph is invalid.

use crate::error::{Error, ExitCode};

/// Why a Dockerfile could not be turned into a build graph.
///
/// `message` is BuildKit's text where BuildKit has one (tests compare it exactly); `line` is the
/// first line (1-based) of the instruction at fault, 0 when the error is about the whole file.
/// The rendered error names the Dockerfile (`Dockerfile.dev:3: ...`) once the caller attaches
/// it with [`PlanError::with_file`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PlanError {
    /// First line (1-based) of the instruction at fault, 0 when not tied to a line.
    pub line: usize,
    /// Last line (1-based) of the instruction at fault, 0 when not tied to a line.
    pub end_line: usize,
    /// What is wrong, in BuildKit's words where it has them.
    pub message: String,
    /// The Dockerfile's path as the user gave it, when known.
    pub file: Option<String>,
    /// 1-based column where the instruction at fault starts, 0 when unknown.
    pub column: usize,
}

impl PlanError {
    /// An error not tied to a line.
    pub fn new(message: impl Into<String>) -> Self {
        PlanError {
            line: 0,
            end_line: 0,
            message: message.into(),
            file: None,
            column: 0,
        }
    }

    /// An error at the given lines.
    pub fn at(line: usize, end_line: usize, message: impl Into<String>) -> Self {
        PlanError {
            line,
            end_line,
            message: message.into(),
            file: None,
            column: 0,
        }
    }

    /// Attach a location when the error has none yet.
    pub fn with_location(mut self, line: usize, end_line: usize) -> Self {
        if self.line == 0 {
            self.line = line;
            self.end_line = end_line;
        }
        self
    }

    /// Attach the column of the erring instruction, computed from the Dockerfile's text.
    pub fn with_column_from(mut self, text: &str) -> Self {
        if self.column == 0 {
            self.column = crate::dockerfile::error::instruction_column(text, self.line);
        }
        self
    }

    /// Name the Dockerfile the error is about.
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The exit-code class of planning errors: always [`ExitCode::Build`].
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Build
    }

    fn render(&self) -> String {
        let file = self.file.as_deref().unwrap_or("dockerfile");
        if self.line == 0 {
            format!("{file}: {}", self.message)
        } else {
            match self.column {
                0 => format!("{file}:{}: {}", self.line, self.message),
                c => format!("{file}:{}:{c}: {}", self.line, self.message),
            }
        }
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::new(ExitCode::Build, e.to_string())
    }
}
