//! Word-level splitting of an instruction line: the keyword, leading `--flags`, and the
//! quote-preserving word splitter used by `ARG`, `ENV` and `LABEL`.

/// BuildKit's `[\t\v\f\r ]+` separator (ASCII only, unlike [`char::is_whitespace`]).
pub(crate) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Split on runs of `[\t\v\f\r ]`, at most `limit` pieces (0 = no limit), like Go's
/// `regexp.Split`: a leading separator gives an empty first piece.
pub(crate) fn split_token_space(text: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if limit != 0 && pieces.len() + 1 == limit {
            break;
        }
        if is_token_space(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if !is_token_space(d) {
                    break;
                }
                end = j + d.len_utf8();
                iter.next();
            }
            pieces.push(&text[start..i]);
            start = end;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// Split an instruction line into its lower-cased keyword, its leading `--flags` (quotes
/// removed) and the trimmed argument text.
pub fn split_command(line: &str) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let mut parts = split_token_space(trimmed, 2).into_iter();
    let keyword = go_lowercase(parts.next().unwrap_or(""));
    match parts.next() {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest);
            (keyword, flags, args.trim().to_string())
        }
        None => (keyword, Vec::new(), String::new()),
    }
}

/// Lower-case one character at a time, as Go's `strings.ToLower` does (no context rules).
pub(crate) fn go_lowercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mut lower = c.to_lowercase();
        if lower.len() == 1 || c == '\u{130}' {
            out.push(lower.next().unwrap_or(c));
        } else {
            out.extend(lower);
        }
    }
    out
}

#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Take leading `--flag` words off `line`; returns the rest of the line and the flags.
///
/// Quotes inside a flag are removed and `\` escapes the next character (always `\`, whatever
/// the escape directive says, as in BuildKit). A bare `--` ends the flags and is dropped.
pub fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut iter = line.char_indices().peekable();
    while let Some((pos, ch)) = iter.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if !line[pos..].starts_with("--") {
                    return (&line[pos..], flags);
                }
                phase = Phase::Word;
            }
            Phase::Word | Phase::Quote(_) => {}
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if word == "--" {
                        return (&line[pos..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        Some((_, next)) => word.push(next),
                        None => continue,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        Some((_, next)) => word.push(next),
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(word);
    }
    ("", flags)
}

/// Split `rest` into words on whitespace, keeping quotes and escape characters in the words
/// (BuildKit's `parseWords`, used for `ARG`, `ENV` and `LABEL`).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut iter = rest.chars().peekable();
    while let Some(ch) = iter.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                }
                if ch == escape {
                    // An escape at the very end is dropped; otherwise it and the next
                    // character are kept verbatim, even when that character is a quote.
                    match iter.next() {
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                        }
                        None => continue,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    match iter.next() {
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                        }
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_first_plain_word() {
        let (rest, flags) = extract_builder_flags("--from=a --chown=\"x y\" src dst");
        assert_eq!(flags, vec!["--from=a", "--chown=x y"]);
        assert_eq!(rest, "src dst");
    }

    #[test]
    fn double_dash_ends_flags() {
        let (rest, flags) = extract_builder_flags("--a -- --b c");
        assert_eq!(flags, vec!["--a"]);
        assert_eq!(rest.trim(), "--b c");
        let (rest, flags) = extract_builder_flags("--a --");
        assert_eq!((rest, flags), ("", vec!["--a".to_string()]));
    }

    #[test]
    fn split_keeps_leading_empty_piece() {
        assert_eq!(split_token_space(" a  b", 0), vec!["", "a", "b"]);
        assert_eq!(split_token_space("a  b c", 2), vec!["a", "b c"]);
    }
}
