//! The syntax tree of a Dockerfile: one [`Node`] per instruction, in file order.

use serde::Serialize;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ast {
    /// The instructions, in file order.
    pub children: Vec<Node>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// Parser directives found at the top of the file (`syntax`, `escape`, `check`), in order.
    pub directives: Vec<(String, String)>,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
    /// First physical line (1-based) of the first instruction.
    pub start_line: usize,
    /// Last physical line (1-based) of the last instruction.
    pub end_line: usize,
}

/// One instruction (or, for `ONBUILD`, the trigger instruction in [`Node::child`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The instruction keyword, lower-cased (`from`, `run`, ...).
    pub keyword: String,
    /// Leading `--flags` as written, with quotes removed (`--from=build`).
    pub flags: Vec<String>,
    /// The value nodes, as BuildKit splits them for this instruction.
    pub args: Vec<String>,
    /// The trigger of an `ONBUILD` instruction.
    pub child: Option<Box<Node>>,
    /// Heredocs attached to this instruction (`RUN`, `COPY`, `ADD` only).
    pub heredocs: Vec<Heredoc>,
    /// True when the arguments were written in the JSON (exec) form.
    pub json: bool,
    /// The instruction's text with continuations joined, as BuildKit keeps it in `Original`.
    pub original: String,
    /// First physical line, 1-based.
    pub start_line: usize,
    /// Last physical line (last continuation or heredoc line), 1-based.
    pub end_line: usize,
    /// Comment lines directly above the instruction (without the `#`), for doc comments.
    pub prev_comment: Vec<String>,
}

/// A heredoc body attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed.
    pub name: String,
    /// The raw body, every line with its newline; leading tabs are not yet removed.
    pub content: String,
    /// False when any part of the delimiter was quoted (no variable expansion).
    pub expand: bool,
    /// True for `<<-` (leading tabs are stripped when the body is used).
    pub chomp: bool,
    /// The file descriptor of `3<<EOF` (default 0).
    pub file_descriptor: u32,
}

/// A non-fatal parser finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Short description, e.g. `Empty continuation line`.
    pub short: String,
    /// Detail text.
    pub detail: String,
    /// Lines (1-based) the warning is about.
    pub lines: Vec<usize>,
}
