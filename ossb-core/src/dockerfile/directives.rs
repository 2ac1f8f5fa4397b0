//! Parser directives (`syntax`, `escape`, `check`) at the top of a Dockerfile.
//!
//! Directives are `# name = value` lines in the block of comment lines at the very top; the
//! block ends at the first line that is not a known directive. The same directive twice is
//! an error.

use super::ParseError;

/// Directive names BuildKit knows.
const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// One parser directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name (`syntax`, `escape`, `check`).
    pub name: String,
    /// The value with surrounding blanks removed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// Reads directives line by line until the directive block ends.
#[derive(Debug, Clone)]
pub struct DirectiveParser {
    prefix: &'static str,
    line: usize,
    done: bool,
    seen: Vec<String>,
}

impl Default for DirectiveParser {
    fn default() -> Self {
        Self::new("#")
    }
}

/// Go's `\s`: ASCII blanks without vertical tab.
fn is_go_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Match `^PREFIX\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` and return (name, value).
fn match_directive<'a>(prefix: &str, line: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix(prefix)?.trim_start_matches(is_go_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(is_go_space).strip_prefix('=')?;
    if rest.contains('\n') || rest.is_empty() {
        return None;
    }
    let trimmed = rest.trim_matches(is_go_space);
    if trimmed.is_empty() {
        // `(.+?)` still takes one blank when the value is only blanks.
        let last = rest.char_indices().last().map_or(0, |(i, _)| i);
        return Some((name, &rest[last..]));
    }
    Some((name, trimmed))
}

impl DirectiveParser {
    /// A parser for directives written after `prefix` (`#`, or `//` for syntax detection).
    pub fn new(prefix: &'static str) -> Self {
        DirectiveParser {
            prefix,
            line: 0,
            done: false,
            seen: Vec::new(),
        }
    }

    /// True once the directive block has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Look at the next physical line (without its newline).
    pub fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, ParseError> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = match_directive(self.prefix, line) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(ParseError::at_line(
                self.line,
                format!("only one {name} parser directive can be used, remove the duplicate"),
            ));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value: value.to_string(),
            line: self.line,
        }))
    }

    /// All directives at the top of `text`, stopping at the first error.
    pub fn parse_all(&mut self, text: &str) -> Result<Vec<Directive>, ParseError> {
        let mut found = Vec::new();
        for line in text.lines() {
            if self.done {
                break;
            }
            if let Some(d) = self.parse_line(line)? {
                found.push(d);
            }
        }
        Ok(found)
    }
}

/// Check an `escape` directive value: only `` ` `` and `\` are allowed.
pub fn escape_token(value: &str) -> Result<char, ParseError> {
    match value {
        "`" => Ok('`'),
        "\\" => Ok('\\'),
        _ => Err(ParseError::new(format!(
            "invalid escape token '{value}' does not match ` or \\, use one of those"
        ))),
    }
}

/// A directive found by [`parse_directive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDirective {
    /// The value up to its first space (for `syntax`, the frontend image reference).
    pub value: String,
    /// The whole value (`dockerfile:1 // opts`).
    pub cmdline: String,
    /// 1-based line (0 for the JSON document form).
    pub line: usize,
}

/// Find directive `key` in a file without parsing it (BuildKit's `ParseDirective`).
///
/// Skips a UTF-8 BOM and a `#!` first line; accepts `# key=value`, for `syntax` also
/// `// syntax=value`, and a JSON document `{"syntax": "value"}`.
pub fn parse_directive(key: &str, text: &str) -> Option<FoundDirective> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (text, first_line) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => (rest, 1),
        None if text.starts_with("#!") => ("", 1),
        _ => (text, 0),
    };
    let prefixes: &[&'static str] = if key == "syntax" {
        &["#", "//"]
    } else {
        &["#"]
    };
    for prefix in prefixes {
        let mut parser = DirectiveParser::new(prefix);
        parser.line = first_line;
        let found = match parser.parse_all(text) {
            Ok(found) => found,
            Err(_) => continue,
        };
        if let Some(d) = found.into_iter().find(|d| d.name == key) {
            let value = d.value.split(' ').next().unwrap_or("").to_string();
            return Some(FoundDirective {
                value,
                cmdline: d.value,
                line: d.line,
            });
        }
    }
    let doc = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok()?;
    match doc.get(key) {
        Some(serde_json::Value::String(v)) => Some(FoundDirective {
            value: v.clone(),
            cmdline: v.clone(),
            line: first_line,
        }),
        _ => None,
    }
}

/// Find the `syntax` directive (BuildKit's `DetectSyntax`).
pub fn detect_syntax(text: &str) -> Option<FoundDirective> {
    parse_directive("syntax", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_equivalent_matching() {
        assert_eq!(match_directive("#", "# escape = ` "), Some(("escape", "`")));
        assert_eq!(match_directive("#", "#a1=b c"), Some(("a1", "b c")));
        assert_eq!(match_directive("#", "# 1a=b"), None);
        assert_eq!(match_directive("#", "# a="), None);
        assert_eq!(match_directive("#", "# a=  "), Some(("a", " ")));
    }

    #[test]
    fn duplicate_is_an_error_with_line() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("# syntax=a").is_ok());
        let err = p.parse_line("# SYNTAX=b").err();
        assert_eq!(err.map(|e| e.line), Some(2));
    }
}
