//! Parse errors with a location.

use std::fmt;

/// A Dockerfile syntax error: what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name, when known (`Dockerfile`).
    pub file: Option<String>,
    /// 1-based line, 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// A message a person understands, lowercase, no trailing period.
    pub message: String,
}

impl ParseError {
    /// An error at a line (column unknown).
    pub fn at_line(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            file: None,
            line,
            column: 0,
            message: message.into(),
        }
    }

    /// An error with no location yet; the parser fills in the line with [`ParseError::or_line`].
    pub fn new(message: impl Into<String>) -> Self {
        Self::at_line(0, message)
    }

    /// Set the line when none is known yet (helpers report errors without a location).
    pub fn or_line(mut self, line: usize) -> Self {
        if self.line == 0 {
            self.line = line;
        }
        self
    }

    /// Attach the file name.
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("Dockerfile");
        match (self.line, self.column) {
            (0, _) => write!(f, "{file}: {}", self.message),
            (l, 0) => write!(f, "{file}:{l}: {}", self.message),
            (l, c) => write!(f, "{file}:{l}:{c}: {}", self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// The 1-based column of the first non-blank character of `line` (1-based) in `text`: where the
/// instruction on that line starts. 0 when the line does not exist.
pub fn instruction_column(text: &str, line: usize) -> usize {
    if line == 0 {
        return 0;
    }
    text.lines()
        .nth(line - 1)
        .map(|l| l.chars().take_while(|c| c.is_whitespace()).count() + 1)
        .unwrap_or(0)
}
