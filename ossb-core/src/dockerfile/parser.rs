//! The line-level Dockerfile parser (to be filled in).

use super::{Ast, ParseError};

/// Parse a Dockerfile's text into its syntax tree.
pub fn parse(_text: &str) -> Result<Ast, ParseError> {
    Err(ParseError::at_line(0, "the parser is not written yet"))
}
