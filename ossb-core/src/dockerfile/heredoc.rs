//! Heredoc recognition on `RUN`, `COPY` and `ADD`: finding `<<WORD` on an instruction line,
//! classifying the delimiter word, and tab stripping for `<<-`.
//!
//! The delimiter words need shell-style quote removal; the small lexer here does just that
//! (the full expansion lexer lives in the `shell` module).

use super::{Heredoc, ParseError};

/// Instructions whose lines may carry heredocs.
pub fn keyword_allows_heredoc(keyword: &str) -> bool {
    matches!(keyword, "run" | "copy" | "add")
}

/// How [`lex_words`] treats quotes and escapes.
#[derive(Clone, Copy)]
struct LexMode {
    /// Keep quote characters in the words.
    raw_quotes: bool,
    /// Keep the escape character in the words.
    raw_escapes: bool,
}

/// One word as lexed, plus whether a quote character acted as a quote in it.
struct Word {
    text: String,
    quoted: bool,
}

/// Split `text` into shell words with `\` as escape; variables are left as written.
///
/// `<<` followed by blanks keeps the blanks in the word, so `<<  EOF` stays one word, as in
/// BuildKit's lexer. Unterminated quotes are an error.
fn lex_words(text: &str, mode: LexMode) -> Result<Vec<Word>, ParseError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(Word {
                        text: std::mem::take(&mut word),
                        quoted,
                    });
                }
                in_word = false;
                quoted = false;
            }
            '\'' | '"' => {
                in_word = true;
                quoted = true;
                if mode.raw_quotes {
                    word.push(ch);
                }
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == ch {
                        closed = true;
                        break;
                    }
                    if ch == '"' && c == '\\' {
                        match chars.peek() {
                            Some(&next @ ('"' | '\\' | '$')) => {
                                chars.next();
                                if mode.raw_escapes {
                                    word.push('\\');
                                }
                                word.push(next);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    word.push(c);
                }
                if !closed {
                    return Err(ParseError::new(format!(
                        "unexpected end of statement while looking for matching {ch}, close the quote"
                    )));
                }
                if mode.raw_quotes {
                    word.push(ch);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    if mode.raw_escapes {
                        word.push('\\');
                    }
                    word.push(next);
                } else if mode.raw_escapes {
                    word.push('\\');
                }
            }
            '<' if chars.peek() == Some(&'<') => {
                in_word = true;
                chars.next();
                word.push_str("<<");
                while let Some(&c) = chars.peek() {
                    if !matches!(c, ' ' | '\t' | '\r' | '\n') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
            }
            _ => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(Word { text: word, quoted });
    }
    Ok(words)
}

/// Classify one word as a heredoc redirection (BuildKit's `ParseHeredoc`).
///
/// The word must match `^(\d*)<<(-?)\s*([^<]*)$` and the delimiter must be one shell word.
/// Returns `Ok(None)` when it is not a heredoc and an error for unbalanced quotes. The
/// returned heredoc has an empty `content`.
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, ParseError> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    // Go's `\s` is ASCII: tab, newline, form feed, carriage return and space.
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = if digits == 0 {
        0
    } else {
        word[..digits].parse::<u32>().unwrap_or(0)
    };
    let words = lex_words(
        rest,
        LexMode {
            raw_quotes: false,
            raw_escapes: false,
        },
    )?;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    Ok(Some(Heredoc {
        name: word.text.clone(),
        content: String::new(),
        expand: !word.quoted,
        chomp,
        file_descriptor,
    }))
}

/// The heredocs named on an instruction line, in order (BuildKit's `heredocsFromLine`).
///
/// The line is split into words keeping quotes and escapes, so `"<<EOF"` is not a heredoc.
/// A line whose quotes do not balance has no heredocs.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseError> {
    let Ok(words) = lex_words(
        line,
        LexMode {
            raw_quotes: true,
            raw_escapes: true,
        },
    ) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc_word(&word.text)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Remove all leading tabs from every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for line in content.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_and_chomp() {
        let doc = parse_heredoc_word("3<<-EOF").ok().flatten();
        let doc = doc.map(|d| (d.name, d.chomp, d.file_descriptor));
        assert_eq!(doc, Some(("EOF".to_string(), true, 3)));
    }

    #[test]
    fn escaped_quote_does_not_disable_expansion() {
        let doc = parse_heredoc_word("<<eo\\'f").ok().flatten();
        assert_eq!(
            doc.map(|d| (d.name, d.expand)),
            Some(("eo'f".to_string(), true))
        );
    }

    #[test]
    fn chomp_strips_only_tabs() {
        assert_eq!(chomp_heredoc_content("\t\ta\n  b\n\tc"), "a\n  b\nc");
    }
}
