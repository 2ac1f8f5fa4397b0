//! The shell-word lexer: BuildKit's `ProcessWord` / `ProcessWords` semantics.
//!
//! A [`Lexer`] removes quotes, applies escapes and expands `$VAR` / `${VAR...}` references in
//! one Dockerfile word, optionally splitting the result into words afterwards. It mirrors
//! BuildKit's `frontend/dockerfile/shell/lex.go`, including its quirks (positional and special
//! parameters are always unset, `[` is literal in patterns, `.`-like wildcards stop at `\n`).
//!
//! Module layout: [`env`] (variable lookup), `word` (the scanner and expansion), `pattern`
//! (the `#`, `%` and `/` shell patterns).

mod env;
mod pattern;
mod word;

use std::collections::BTreeSet;

pub use env::{EnvList, EnvLookup};

/// Errors from expanding a word. The texts follow BuildKit's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// The whole word failed; wraps the cause like BuildKit's `failed to process "word"`.
    #[error("failed to process {word:?}: {source}")]
    Process {
        /// The word as given to the lexer.
        word: String,
        /// What went wrong inside it.
        source: Box<ShellError>,
    },
    /// A `'` was never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` was never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// The end of the word came before the given character.
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    /// `${` without its closing brace.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${VAR/pattern` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}` or `${{...}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A modifier the lexer does not know, such as `${X:=y}` or `${X:#y}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${X?msg}` / `${X:?msg}` on an unset (or empty) variable; the message is expanded.
    #[error("{name}: {message}")]
    Required {
        /// The variable name.
        name: String,
        /// The expanded message, or BuildKit's default text.
        message: String,
    },
    /// A `#`, `%` or `/` pattern with a bad escape.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern text.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `${...}` nested deeper than the lexer allows (guards the stack).
    #[error("substitutions nested deeper than {0} levels")]
    TooDeep(usize),
    /// A `${X//pattern/replacement}` result longer than the lexer allows: nested
    /// replacements grow exponentially, so this guards time and memory.
    #[error(
        "substitution result longer than {0} bytes; nested ${{X//pattern/replacement}} grow the value exponentially, simplify the expression"
    )]
    TooLarge(usize),
}

/// The full outcome of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessWordResult {
    /// The word after quote removal, escapes and expansion (no splitting).
    pub result: String,
    /// The same text split into words: unquoted expansions split on whitespace.
    pub words: Vec<String>,
    /// Variable names that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Variable names that were looked up and not found.
    pub unmatched: BTreeSet<String>,
}

/// Shell-word processor with BuildKit's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character and every option off.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` as one word (no splitting).
    pub fn process_word(&self, word: &str, env: &dyn EnvLookup) -> Result<String, ShellError> {
        self.process_word_with_matches(word, env).map(|r| r.result)
    }

    /// Expands `word` and splits the result into words (quoted text is not split).
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<Vec<String>, ShellError> {
        self.process_word_with_matches(word, env).map(|r| r.words)
    }

    /// Expands `word` and reports which variables were found and which were not.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<ProcessWordResult, ShellError> {
        word::process(self, word, env).map_err(|e| ShellError::Process {
            word: word.to_string(),
            source: Box::new(e),
        })
    }
}
