//! Write an AST back as Dockerfile text that parses to the same dump.
//!
//! Nodes that came from the parser keep their joined logical line in [`Node::original`], and
//! that line re-parses to the same node, so it is written as is. Nodes built by hand (empty
//! `original`) are rendered from their fields.

use super::dump::go_quote;
use super::parser::MAX_LINE_BYTES;
use super::{Ast, Node};

/// Render `ast` as Dockerfile text: directives, then each instruction with its heredoc bodies.
pub fn to_dockerfile(ast: &Ast) -> String {
    let mut out = String::new();
    let mut wrote_escape = false;
    for (name, value) in &ast.directives {
        if name == "escape" {
            wrote_escape = true;
        }
        out.push_str(&format!("# {name}={value}\n"));
    }
    if ast.escape != '\\' && !wrote_escape {
        out.push_str(&format!("# escape={}\n", ast.escape));
    }
    for node in &ast.children {
        let line = if node.original.is_empty() {
            render_node(node, ast.escape)
        } else {
            node.original.clone()
        };
        write_logical_line(&mut out, &line, ast.escape);
        for doc in &node.heredocs {
            out.push_str(&doc.content);
            if !doc.content.is_empty() && !doc.content.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&doc.name);
            out.push('\n');
        }
    }
    out
}

/// Write one logical line, split with continuations when it is too long, and guarded so that
/// it never ends in a continuation by accident.
fn write_logical_line(out: &mut String, line: &str, escape: char) {
    let mut rest = line;
    while rest.len() > MAX_LINE_BYTES {
        let Some(split) = split_point(rest, escape) else {
            break;
        };
        out.push_str(&rest[..split]);
        out.push(escape);
        out.push('\n');
        rest = &rest[split..];
    }
    out.push_str(rest);
    if rest.trim_end_matches([' ', '\t']).ends_with(escape) {
        // A vertical tab stops the continuation and is trimmed away with the arguments.
        out.push('\u{b}');
    }
    out.push('\n');
}

/// A byte offset within the line limit where a continuation can be inserted: the piece before
/// must not end in the escape character and the piece after must not look like a comment or
/// a blank line.
fn split_point(line: &str, escape: char) -> Option<usize> {
    let mut at = MAX_LINE_BYTES - 1;
    while at > 0 {
        if line.is_char_boundary(at) {
            let (before, after) = line.split_at(at);
            let next = after.chars().next();
            let ok_next = next.is_some_and(|c| !c.is_whitespace() && c != '#');
            if ok_next && !before.ends_with(escape) {
                return Some(at);
            }
        }
        at -= 1;
    }
    None
}

/// Escape a flag so the flag extractor gives it back unchanged.
fn render_flag(flag: &str) -> String {
    let mut out = String::with_capacity(flag.len());
    for c in flag.chars() {
        if c.is_whitespace() || matches!(c, '\\' | '\'' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Render a hand-built node from its fields.
fn render_node(node: &Node, escape: char) -> String {
    let mut line = node.keyword.to_uppercase();
    for flag in &node.flags {
        line.push(' ');
        line.push_str(&render_flag(flag));
    }
    if let Some(child) = &node.child {
        line.push(' ');
        line.push_str(&render_node(child, escape));
        return line;
    }
    let args = &node.args;
    let body = if node.json {
        let quoted: Vec<String> = args.iter().map(|a| go_quote(a)).collect();
        match node.keyword.as_str() {
            "healthcheck" if !args.is_empty() => {
                format!("{} [{}]", args[0], quoted[1..].join(", "))
            }
            _ => format!("[{}]", quoted.join(", ")),
        }
    } else {
        match node.keyword.as_str() {
            "env" | "label" => args
                .chunks(3)
                .map(|t| match t {
                    [k, v, sep] => format!("{k}{}{v}", if sep.is_empty() { " " } else { "=" }),
                    _ => t.join(" "),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => args.join(" "),
        }
    };
    if !body.is_empty() {
        line.push(' ');
        line.push_str(&body);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::super::{dump::dump, parse};
    use super::*;

    #[test]
    fn round_trips_tricky_lines() {
        for text in [
            "FROM a\nRUN foo\\ \\\n",
            "# escape=`\nFROM a\nRUN a`\n  b\n",
            "FROM a\nCOPY <<X <<Y /d\nY\nX\nX\nY\n",
        ] {
            let first = parse(text).map(|a| (dump(&a), to_dockerfile(&a)));
            let Ok((d1, printed)) = first else {
                panic!("{text:?} must parse");
            };
            let d2 = parse(&printed).map(|a| dump(&a)).ok();
            assert_eq!(d2.as_deref(), Some(d1.as_str()), "printed: {printed:?}");
        }
    }

    #[test]
    fn renders_hand_built_nodes() {
        let parsed = parse("FROM a\nENV x=1 y=\"2 3\"\nCMD [\"a b\"]\n");
        let Ok(mut ast) = parsed else {
            panic!("must parse");
        };
        let want = dump(&ast);
        for n in &mut ast.children {
            n.original.clear();
        }
        let again = parse(&to_dockerfile(&ast)).map(|a| dump(&a)).ok();
        assert_eq!(again, Some(want));
    }
}
