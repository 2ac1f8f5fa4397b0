//! Shell patterns for `${X#p}`, `${X%p}` and `${X/p/r}`, as BuildKit evaluates them.
//!
//! BuildKit turns the pattern into a Go regexp (`*` → `.*` or `.*?`, `?` → `.`, everything
//! else literal; no bracket expressions) and takes the leftmost-first match. This module
//! compiles the same pattern into a token list and runs a Pike VM with thread priorities, which
//! gives the identical match in O(pattern × text) time. Like Go's `.`, wildcards never match
//! `\n`.

use super::ShellError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

/// A compiled pattern; `greedy` decides whether `*` prefers longer or shorter runs.
struct Pattern {
    toks: Vec<Tok>,
    greedy: bool,
}

fn compile(pattern: &str, greedy: bool) -> Result<Pattern, ShellError> {
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner skips a leading byte-order mark.
    chars.next_if_eq(&'\u{feff}');
    let mut toks = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            // `\}` and `\/` only protected the delimiter; the backslash is not part of the pattern.
            '\\' if matches!(chars.peek(), Some('}' | '/')) => {}
            '\\' => match chars.next() {
                Some(e @ ('*' | '?' | '\\')) => toks.push(Tok::Lit(e)),
                other => {
                    let shown = other.map(String::from).unwrap_or_default();
                    return Err(ShellError::InvalidPattern {
                        pattern: pattern.to_string(),
                        reason: format!("invalid escape '\\{shown}'"),
                    });
                }
            },
            _ => toks.push(Tok::Lit(c)),
        }
    }
    Ok(Pattern { toks, greedy })
}

/// A VM thread: waiting at token `pc` (a star waits on its own body), started at `start`.
#[derive(Clone, Copy)]
struct Thread {
    pc: usize,
    start: usize,
}

impl Pattern {
    /// Follows epsilon moves from `pc` in priority order, appending runnable threads.
    /// `pc == toks.len()` is the match state. Iterative, so long runs of stars are safe.
    fn add(&self, list: &mut Vec<Thread>, seen: &mut [bool], pc: usize, start: usize) {
        let mut pc = pc;
        // Lazy stars passed on the way: skipping has priority, so they are queued last.
        let mut lazy = Vec::new();
        while !seen[pc] {
            seen[pc] = true;
            match self.toks.get(pc) {
                Some(Tok::Star) if self.greedy => list.push(Thread { pc, start }),
                Some(Tok::Star) => lazy.push(pc),
                _ => {
                    list.push(Thread { pc, start });
                    break;
                }
            }
            pc += 1;
        }
        list.extend(lazy.into_iter().rev().map(|pc| Thread { pc, start }));
    }

    /// Leftmost-first match in `text` starting the search at `from`; `anchored` only tries
    /// `from` itself. Returns character offsets `(start, end)`.
    fn find(&self, text: &[char], from: usize, anchored: bool) -> Option<(usize, usize)> {
        let n = self.toks.len();
        let mut clist: Vec<Thread> = Vec::new();
        let mut nlist: Vec<Thread> = Vec::new();
        // States already queued for the current position (Go's sparse queue membership).
        let mut seen = vec![false; n + 1];
        let mut found = None;
        let mut pos = from;
        loop {
            if found.is_none() && (pos == from || !anchored) {
                // A new start has the lowest priority of all threads at this position.
                self.add(&mut clist, &mut seen, 0, pos);
            }
            if clist.is_empty() {
                break;
            }
            let ch = text.get(pos).copied();
            seen.iter_mut().for_each(|s| *s = false);
            nlist.clear();
            for t in &clist {
                let Some(tok) = self.toks.get(t.pc) else {
                    // Matched: every lower-priority thread is cut off.
                    found = Some((t.start, pos));
                    break;
                };
                let Some(c) = ch else { continue };
                let next = match *tok {
                    Tok::Lit(l) if l == c => t.pc + 1,
                    Tok::Any if c != '\n' => t.pc + 1,
                    Tok::Star if c != '\n' => t.pc,
                    _ => continue,
                };
                self.add(&mut nlist, &mut seen, next, t.start);
            }
            if ch.is_none() {
                break;
            }
            std::mem::swap(&mut clist, &mut nlist);
            pos += 1;
        }
        found
    }
}

/// `${X#p}`, `${X##p}`, `${X%p}`, `${X%%p}`: `word` is the text after the first `#`/`%`.
pub(super) fn trim(word: &str, value: &str, op: char) -> Result<String, ShellError> {
    let (word, greedy) = match word.strip_prefix(op) {
        Some(rest) => (rest, true),
        None => (word, false),
    };
    if op == '#' {
        return trim_prefix(word, value, greedy);
    }
    // Suffix trimming is prefix trimming of the reversed text with the reversed pattern.
    let reversed: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(word), &reversed, greedy)?;
    Ok(out.chars().rev().collect())
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let pat = compile(pattern, greedy)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match pat.find(&text, 0, true) {
        Some((_, end)) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern but keeps each `\x` pair in order (`a\*c` → `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pieces: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        pieces.push(&chars[i..i + len]);
        i += len;
    }
    pieces.iter().rev().flat_map(|p| p.iter()).collect()
}

/// The longest result (in bytes) of `${X//p/r}`. Nested replace-all substitutions
/// multiply the length at every level, so without a bound a short word could take minutes
/// and gigabytes; no real Dockerfile word comes near this.
pub(super) const MAX_REPLACE_RESULT: usize = 1 << 20;

/// `${X/p/r}` (first match) and `${X//p/r}` (every match, Go `ReplaceAllString` rules).
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ShellError> {
    let pat = compile(pattern, true)?;
    let text: Vec<char> = value.chars().collect();
    if !all {
        return Ok(match pat.find(&text, 0, false) {
            Some((s, e)) => {
                let mut out: String = text[..s].iter().collect();
                out.push_str(replacement);
                out.extend(&text[e..]);
                out
            }
            None => value.to_string(),
        });
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((s, e)) = pat.find(&text, search, false) else {
            break;
        };
        out.extend(&text[last_end..s]);
        // No replacement for an empty match right after the previous match.
        if e > last_end || s == 0 {
            expand_template(&mut out, replacement, &text[s..e]);
            if out.len() > MAX_REPLACE_RESULT {
                return Err(ShellError::TooLarge(MAX_REPLACE_RESULT));
            }
        }
        last_end = e;
        let width = usize::from(search < text.len());
        search = if search + width > e {
            search + width
        } else if search + 1 > e {
            search + 1
        } else {
            e
        };
    }
    out.extend(&text[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regexp whose only group is the whole match: `$$` is `$`,
/// `$0`/`${0}` the match, any other well-formed reference empty, a malformed one literal.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .map(char::len_utf8)
            .sum();
        let closed = !braced || body[name_len..].starts_with('}');
        if name_len == 0 || !closed {
            out.push('$');
            continue;
        }
        if &body[..name_len] == "0" {
            out.extend(matched);
        }
        rest = &body[name_len + usize::from(braced)..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(word: &str, value: &str, op: char) -> String {
        trim(word, value, op).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn lazy_and_greedy_prefix() {
        assert_eq!(trimmed("*x", "axbxc", '#'), "bxc");
        assert_eq!(trimmed("#*x", "axbxc", '#'), "c");
        assert_eq!(trimmed("x*", "axbxc", '%'), "axb");
        assert_eq!(trimmed("%x*", "axbxc", '%'), "a");
    }

    #[test]
    fn wildcards_stop_at_newline() {
        assert_eq!(trimmed("#*c", "ab\nc", '#'), "ab\nc");
        assert_eq!(trimmed("?", "\nx", '#'), "\nx");
    }

    #[test]
    fn replace_all_handles_empty_matches_and_templates() {
        assert_eq!(replace("", "ab", "-", true).ok(), Some("-a-b-".into()));
        assert_eq!(
            replace("b", "abab", "[$0]", true).ok(),
            Some("a[b]a[b]".into())
        );
        assert_eq!(replace("b", "ab", "$$x$", true).ok(), Some("a$x$".into()));
        assert_eq!(replace("b", "ab", "${1}", true).ok(), Some("a".into()));
    }

    #[test]
    fn replace_all_results_are_bounded() {
        let value = "x".repeat(2000);
        let long = "y".repeat(600);
        assert_eq!(
            replace("", &value, &long, true),
            Err(ShellError::TooLarge(MAX_REPLACE_RESULT))
        );
        assert_eq!(
            replace("", &value, "yy", true).map(|s| s.len()),
            Ok(2000 + 2001 * 2)
        );
    }

    #[test]
    fn bad_escape_is_an_error() {
        assert!(trim("\\x", "abc", '#').is_err());
        assert!(trim("a\\", "abc", '#').is_err());
    }
}
