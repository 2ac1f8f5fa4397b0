//! Scanning one word: quotes, escapes, `$` expansion and word splitting.

use std::collections::BTreeSet;

use super::pattern;
use super::{EnvLookup, Lexer, ProcessWordResult, ShellError};

/// Deepest `${...}` nesting accepted; each level recurses, so this bounds stack use.
const MAX_DEPTH: usize = 200;

/// Expands `word` with `lexer`'s options (errors are not yet wrapped).
pub(super) fn process(
    lexer: &Lexer,
    word: &str,
    env: &dyn EnvLookup,
) -> Result<ProcessWordResult, ShellError> {
    let mut chars: Vec<char> = word.chars().collect();
    // Go's text/scanner drops a byte-order mark at the very start.
    if chars.first() == Some(&'\u{feff}') {
        chars.remove(0);
    }
    let mut sw = ShellWord {
        lexer,
        env,
        chars,
        pos: 0,
        raw_escapes: lexer.raw_escapes,
        depth: 0,
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    let (result, words) = sw.process_stop_on(None, lexer.raw_escapes)?;
    Ok(ProcessWordResult {
        result,
        words,
        matched: sw.matched,
        unmatched: sw.unmatched,
    })
}

/// Accumulates split words: whitespace from expansions separates, quoted text never does.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct ShellWord<'a> {
    lexer: &'a Lexer,
    env: &'a dyn EnvLookup,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn quotes_active(&self) -> bool {
        !self.lexer.skip_process_quotes
    }

    /// Processes until `stop` (consumed) or the end of input; `None` means end of input.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
                continue;
            }
            if self.quotes_active() && (ch == '\'' || ch == '"') {
                let tmp = if ch == '\'' {
                    self.process_single_quote()?
                } else {
                    self.process_double_quote()?
                };
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
                continue;
            }
            self.pos += 1;
            if ch == self.lexer.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // A trailing escape character is dropped.
                let Some(escaped) = self.next() else { break };
                words.add_raw_char(escaped);
                result.push(escaped);
            } else {
                words.add_char(ch);
                result.push(ch);
            }
        }
        match stop {
            Some(c) => Err(ShellError::UnexpectedEnd(c)),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    let escape = self.lexer.escape;
                    if ch == escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is ignored; the loop then reports the open quote.
                            None => continue,
                            // Only these can be escaped; before anything else the escape stays.
                            Some(next) if next == '"' || next == '$' || next == escape => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.lookup(name);
        if value.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        value
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.depth += 1;
        let out = if self.depth > MAX_DEPTH {
            Err(ShellError::TooDeep(MAX_DEPTH))
        } else {
            self.dollar_inner()
        };
        self.depth -= 1;
        out
    }

    fn dollar_inner(&mut self) -> Result<String, ShellError> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(first) = self.next() else {
            return Err(ShellError::MissingBrace);
        };
        match first {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let Some(modifier) = self.next() else {
                    return Err(ShellError::MissingBrace);
                };
                self.modifier(&name, modifier, true)
            }
            '+' | '-' | '?' | '#' | '%' => self.modifier(&name, first, false),
            '/' => self.substitute(&name),
            other => Err(ShellError::UnsupportedModifier(other.to_string())),
        }
    }

    /// `${name<mod>word}` and `${name:<mod>word}` (`null_is_unset` for the colon forms).
    fn modifier(
        &mut self,
        name: &str,
        modifier: char,
        null_is_unset: bool,
    ) -> Result<String, ShellError> {
        let spelled = if null_is_unset {
            format!(":{modifier}")
        } else {
            modifier.to_string()
        };
        let is_pattern = modifier == '#' || modifier == '%';
        if null_is_unset && is_pattern {
            return Err(ShellError::UnsupportedModifier(spelled));
        }
        // Pattern words keep their escapes so `\*` stays a literal star.
        let word = self.word_until('}', is_pattern, ShellError::MissingBrace)?;
        let value = self.lookup(name);
        let Some(value) = value else {
            if self.lexer.skip_unset_env {
                return Ok(format!("${{{name}{spelled}{word}}}"));
            }
            return match modifier {
                '-' => Ok(word),
                '+' => Ok(String::new()),
                '?' => Err(required(name, word, "is not allowed to be unset")),
                '#' | '%' => pattern::trim(&word, "", modifier),
                _ => Err(ShellError::UnsupportedModifier(spelled)),
            };
        };
        let empty_is_unset = null_is_unset && value.is_empty();
        match modifier {
            '-' if empty_is_unset => Ok(word),
            '-' => Ok(value),
            '+' if empty_is_unset => Ok(String::new()),
            '+' => Ok(word),
            '?' if empty_is_unset => Err(required(name, word, "is not allowed to be empty")),
            '?' => Ok(value),
            '#' | '%' => pattern::trim(&word, &value, modifier),
            _ => Err(ShellError::UnsupportedModifier(spelled)),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn substitute(&mut self, name: &str) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pat = self.word_until('/', true, ShellError::MissingSlash)?;
        let replacement = self.word_until('}', true, ShellError::MissingBrace)?;
        match self.lookup(name) {
            None if self.lexer.skip_unset_env => Ok(format!("${{{name}/{pat}/{replacement}}}")),
            value => pattern::replace(&pat, &value.unwrap_or_default(), &replacement, all),
        }
    }

    /// Processes a nested word ending at `stop`; running out of input gives `at_eof`.
    fn word_until(
        &mut self,
        stop: char,
        raw_escapes: bool,
        at_eof: ShellError,
    ) -> Result<String, ShellError> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(at_eof),
            Err(e) => Err(e),
        }
    }

    /// Reads a variable name: all digits, one special character, or letters/digits/`_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }
}

/// POSIX special parameters; never set in a Dockerfile.
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

fn required(name: &str, word: String, default: &str) -> ShellError {
    let message = if word.is_empty() {
        default.to_string()
    } else {
        word
    };
    ShellError::Required {
        name: name.to_string(),
        message,
    }
}
