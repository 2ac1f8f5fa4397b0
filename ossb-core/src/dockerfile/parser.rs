//! The line-level Dockerfile parser: physical lines, continuations, comments, directives and
//! heredoc bodies become one [`Node`] per instruction.

use super::args::parse_instruction_args;
use super::directives::{DirectiveParser, escape_token};
use super::heredoc::{heredocs_from_line, keyword_allows_heredoc};
use super::words::split_command;
use super::{Ast, Node, ParseError, Warning};

pub use super::args::{parse_json_array, parse_name_value};
pub use super::words::parse_words;

/// The longest physical line BuildKit's scanner accepts, in bytes, without its newline.
pub const MAX_LINE_BYTES: usize = 65535;

/// Physical lines of the input, each with its line ending, numbered from 1.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line with its newline, or an error when it is longer than BuildKit allows.
    fn next_line(&mut self) -> Option<Result<&'a str, ParseError>> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.number += 1;
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_LINE_BYTES {
            return Some(Err(ParseError::at_line(
                self.number,
                format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES}"),
            )));
        }
        Some(Ok(line))
    }
}

/// Drop the line ending (every trailing `\r` and `\n`).
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// True when the first non-blank character is `#`.
fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Remove a trailing continuation (`escape` followed by blanks) and say whether the logical
/// line ends here. An escape preceded by another escape does not continue the line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// Build the node for one logical line (also used for the `ONBUILD` trigger).
fn node_from_line(line: &str, escape: char) -> Result<Node, ParseError> {
    let (keyword, flags, rest) = split_command(line);
    let mut node = Node {
        keyword,
        flags,
        args: Vec::new(),
        child: None,
        heredocs: Vec::new(),
        json: false,
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        prev_comment: Vec::new(),
    };
    if node.keyword == "onbuild" {
        if !rest.is_empty() {
            node.child = Some(Box::new(node_from_line(&rest, escape)?));
        }
    } else {
        let args = parse_instruction_args(&node.keyword, &rest, escape)?;
        node.args = args.values;
        node.json = args.json;
    }
    Ok(node)
}

/// True when heredocs on this instruction's line are read (`RUN`/`COPY`/`ADD`, directly or as
/// an `ONBUILD` trigger, and not in JSON form).
fn can_contain_heredoc(node: &Node) -> bool {
    let target = match (&node.keyword[..], &node.child) {
        ("onbuild", Some(child)) => child,
        _ => node,
    };
    keyword_allows_heredoc(&target.keyword) && !target.json
}

/// Parse a Dockerfile's text into its syntax tree.
///
/// Accepts a UTF-8 BOM and CRLF line endings. Fails on a file without instructions, a line
/// longer than 65535 bytes, bad or duplicate directives, an unterminated heredoc and argument
/// errors (`ENV` without a value, JSON arrays holding non-strings).
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    parse_text(text).map_err(|mut e| {
        if e.line > 0 && e.column == 0 {
            e.column = super::error::instruction_column(text, e.line);
        }
        e
    })
}

fn parse_text(text: &str) -> Result<Ast, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Lines {
        rest: text,
        number: 0,
    };
    let mut directive_parser = DirectiveParser::default();
    let mut ast = Ast {
        children: Vec::new(),
        escape: '\\',
        directives: Vec::new(),
        warnings: Vec::new(),
        start_line: 0,
        end_line: 0,
    };
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = lines.next_line() {
        let content = trim_newline(raw?);
        let trimmed = content.trim_start();
        let start_line = lines.number;
        let directive = match directive_parser.is_done() {
            true => None,
            false => directive_parser
                .parse_line(trimmed)
                .map_err(|e| e.or_line(start_line))?,
        };
        if let Some(d) = directive {
            if d.name == "escape" {
                ast.escape = escape_token(&d.value).map_err(|e| e.or_line(start_line))?;
            }
            ast.directives.push((d.name, d.value));
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            match comment.trim() {
                "" => comments.clear(),
                c => comments.push(c.to_string()),
            }
            continue;
        }
        let (first, mut end_of_line) = trim_continuation(trimmed, ast.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut logical = String::from(first);
        let mut empty_lines = Vec::new();
        while !end_of_line {
            let Some(raw) = lines.next_line() else {
                break;
            };
            let content = trim_newline(raw?);
            if is_comment(content) {
                continue;
            }
            if content.trim_start().is_empty() {
                empty_lines.push(lines.number);
                continue;
            }
            let (part, eol) = trim_continuation(content, ast.escape);
            logical.push_str(part);
            end_of_line = eol;
        }
        if !empty_lines.is_empty() {
            ast.warnings.push(Warning {
                short: format!("Empty continuation line found in: {logical}"),
                detail: "Empty continuation lines will become errors in a future release"
                    .to_string(),
                lines: empty_lines,
            });
        }

        let mut node = node_from_line(&logical, ast.escape).map_err(|e| e.or_line(start_line))?;
        if can_contain_heredoc(&node) && logical.contains("<<") {
            for mut doc in heredocs_from_line(&logical).map_err(|e| e.or_line(start_line))? {
                read_heredoc_body(&mut lines, &mut doc).map_err(|e| e.or_line(start_line))?;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = lines.number;
        node.prev_comment = std::mem::take(&mut comments);
        if ast.children.is_empty() {
            ast.start_line = start_line;
        }
        ast.end_line = lines.number;
        ast.children.push(node);
    }

    if ast.children.is_empty() {
        return Err(ParseError::at_line(
            0,
            "file with no instructions, add at least one instruction such as FROM",
        ));
    }
    Ok(ast)
}

/// Read physical lines into `doc.content` up to its terminator line.
fn read_heredoc_body(lines: &mut Lines<'_>, doc: &mut super::Heredoc) -> Result<(), ParseError> {
    while let Some(raw) = lines.next_line() {
        let raw = raw?;
        let mut candidate = trim_newline(raw);
        if doc.chomp {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == doc.name {
            return Ok(());
        }
        doc.content.push_str(raw);
    }
    Err(ParseError::new(format!(
        "unterminated heredoc {}, end it with a line holding only {}",
        doc.name, doc.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(usize, usize)> {
        parse(text)
            .map(|ast| {
                ast.children
                    .iter()
                    .map(|n| (n.start_line, n.end_line))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\  ", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a`", '`'), ("a", false));
    }

    #[test]
    fn line_spans_cover_continuations_and_heredocs() {
        let text = "FROM a\n\nRUN x \\\n# c\n\n  y\nRUN <<EOF\nbody\nEOF\n\n";
        assert_eq!(spans(text), vec![(1, 1), (3, 6), (7, 9)]);
    }

    #[test]
    fn warnings_name_the_blank_lines() {
        let ast = parse("RUN a \\\n\n b\n").ok();
        let warnings = ast.map(|a| a.warnings).unwrap_or_default();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].lines, vec![2]);
        assert!(warnings[0].short.contains("RUN a  b"));
    }

    #[test]
    fn error_locations() {
        let err = parse("FROM a\nENV PATH\n").err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(2));
        let err = parse("FROM a\nRUN <<EOF\nx\n").err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(2));
        let err = parse("# escape=x\nFROM a\n").err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(1));
        let err = parse("# escape=`\n# escape=\\\nFROM a\n").err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(2));
        let long = format!("FROM a\nLABEL x={}\n", "a".repeat(65536));
        let err = parse(&long).err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(2));
    }

    #[test]
    fn bom_and_crlf() {
        let ast = parse("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n").ok();
        let args: Vec<_> = ast
            .map(|a| a.children.into_iter().map(|n| n.args).collect())
            .unwrap_or_default();
        assert_eq!(args, vec![vec!["a".to_string()], vec!["b  c".to_string()]]);
    }
}
