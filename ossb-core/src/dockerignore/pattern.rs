//! One `.dockerignore` pattern: upstream's classification and its regexp.

use super::fnmatch;
use super::regex::Regex;

/// How a pattern is matched, as upstream classifies it after cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// The path must equal the pattern.
    Exact,
    /// `dir/**`: the path must start with the text before `**`.
    Prefix,
    /// `**/name` or `**name`: the path must end with the text after `**`.
    Suffix,
    /// Anything else: a regexp.
    Regexp,
}

/// A cleaned pattern, ready to match slash-separated paths.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    dirs: usize,
    exclusion: bool,
    match_type: MatchType,
    regexp_source: String,
    /// `None` when the pattern is malformed; matching it then fails.
    regexp: Option<Regex>,
    valid: bool,
}

impl Pattern {
    /// Builds a pattern from its cleaned text (without the leading `!`).
    pub(super) fn new(cleaned: String, exclusion: bool) -> Self {
        let (match_type, regexp_source) = translate(&cleaned);
        let regexp = match match_type {
            MatchType::Regexp => Regex::new(&regexp_source).ok(),
            _ => None,
        };
        let valid =
            fnmatch::is_valid(&cleaned) && (match_type != MatchType::Regexp || regexp.is_some());
        Pattern {
            dirs: cleaned.split('/').count(),
            cleaned,
            exclusion,
            match_type,
            regexp_source,
            regexp,
            valid,
        }
    }

    /// The cleaned pattern text (without `!`).
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` pattern that re-includes what it matches.
    pub fn exclusion(&self) -> bool {
        self.exclusion
    }

    /// How upstream would classify this pattern.
    pub fn match_type(&self) -> MatchType {
        self.match_type
    }

    /// The regexp upstream builds for `/` separators (empty unless [`MatchType::Regexp`]).
    pub fn regexp_source(&self) -> &str {
        &self.regexp_source
    }

    /// Number of path elements in the pattern (used for parent matching).
    pub(super) fn dirs(&self) -> usize {
        self.dirs
    }

    /// Whether `path` matches; `None` when the pattern is malformed.
    pub(super) fn matches(&self, path: &str) -> Option<bool> {
        if !self.valid {
            return None;
        }
        Some(match self.match_type {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => {
                let prefix = self.cleaned.get(..self.cleaned.len().saturating_sub(2));
                path.starts_with(prefix.unwrap_or_default())
            }
            MatchType::Suffix => {
                let suffix = self.cleaned.get(2..).unwrap_or_default();
                path.ends_with(suffix) || suffix.strip_prefix('/') == Some(path)
            }
            MatchType::Regexp => self.regexp.as_ref()?.is_match(path),
        })
    }
}

/// Upstream's pattern-to-regexp translation for `/` separators, with its classification.
fn translate(pattern: &str) -> (MatchType, String) {
    let mut re = String::from("^");
    let mut kind = MatchType::Exact;
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner skips a leading byte-order mark.
    chars.next_if_eq(&'\u{feff}');
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is the same as `**`.
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = MatchType::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = MatchType::Regexp;
                }
                if first {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = MatchType::Regexp;
            }
            '?' => {
                re.push_str("[^/]");
                kind = MatchType::Regexp;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(e) => {
                    re.push('\\');
                    re.push(e);
                    kind = MatchType::Regexp;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(c);
                kind = MatchType::Regexp;
            }
            _ => re.push(c),
        }
        first = false;
    }
    if kind == MatchType::Regexp {
        re.push('$');
        (kind, re)
    } else {
        (kind, String::new())
    }
}
