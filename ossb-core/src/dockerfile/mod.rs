//! The Dockerfile syntax layer, with BuildKit's semantics.
//!
//! Module order follows the dependency chain: [`shell`] (the word lexer, a leaf) is used by
//! [`parser`], which produces the [`ast`]; [`dump`] prints an AST in BuildKit's dump format.

pub mod args;
pub mod ast;
pub mod directives;
pub mod dump;
pub mod error;
pub mod heredoc;
pub mod parser;
pub mod print;
pub mod shell;
pub mod words;

pub use ast::{Ast, Heredoc, Node, Warning};
pub use error::ParseError;
pub use parser::parse;
