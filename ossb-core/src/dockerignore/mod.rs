//! The `.dockerignore` matcher with moby/patternmatcher semantics.
//!
//! Patterns are cleaned like paths and tried in order; a `!` pattern re-includes what it
//! matches and the last matching pattern decides. `*` and `?` never match `/`, `**` matches
//! any number of path elements, and a path also matches when one of its parent directories
//! does. Malformed patterns are accepted at construction and fail each match that evaluates
//! them, like upstream.
//!
//! Modules: `path` (Go `path.Clean`), `fnmatch` (Go `filepath.Match` syntax check), `regex`
//! (the regexp subset upstream emits), `pattern` (one pattern), `ignorefile` (file reading).

mod fnmatch;
mod ignorefile;
mod path;
mod pattern;
mod regex;

pub use ignorefile::read_ignore_file;
pub use path::clean as clean_path;
pub use pattern::{MatchType, Pattern};

/// Errors from building or using a [`PatternMatcher`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A pattern that is only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A malformed pattern (Go's `filepath.ErrBadPattern`).
    #[error("syntax error in pattern")]
    BadPattern,
    /// A [`MatchInfo`] from a matcher with a different number of patterns.
    #[error("wrong number of values in parentMatched")]
    WrongParentInfo,
}

/// Per-pattern results for a directory, passed down while walking a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Trims and cleans each pattern, drops empty ones and detects `!` exclusions. A lone `!`
    /// is an error; other malformed patterns only fail when matched.
    pub fn new(patterns: &[impl AsRef<str>]) -> Result<Self, PatternError> {
        let mut pm = PatternMatcher::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let p = path::clean(p);
            let (body, exclusion) = match p.strip_prefix('!') {
                Some("") => return Err(PatternError::IllegalExclusion),
                Some(rest) => (rest.to_string(), true),
                None => (p, false),
            };
            pm.exclusions |= exclusion;
            pm.patterns.push(Pattern::new(body, exclusion));
        }
        Ok(pm)
    }

    /// Whether any pattern is a `!` exclusion.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// The active patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Upstream's deprecated `Matches`: a failing pattern is retried against only the parent
    /// prefix with as many elements as the pattern has.
    pub fn matches(&self, file: &str) -> Result<bool, PatternError> {
        let parent = path::dir(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        self.evaluate(file, |p| {
            if parent == "." || p.dirs() > parent_dirs.len() {
                return false;
            }
            p.matches(&parent_dirs[..p.dirs()].join("/")) == Some(true)
        })
    }

    /// Whether `file` or any of its parent directories is matched (last match wins).
    pub fn matches_or_parent_matches(&self, file: &str) -> Result<bool, PatternError> {
        let parent = path::dir(file);
        self.evaluate(file, |p| parent_matches(p, &parent))
    }

    /// Walking variant: `parent` holds the results for the parent directory (or is the
    /// default when unknown, which checks the parents directly). Returns this path's result and
    /// the info to pass to its children.
    pub fn matches_using_parent_results(
        &self,
        file: &str,
        parent: MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let known = &parent.parent_matched;
        if !known.is_empty() && known.len() != self.patterns.len() {
            return Err(PatternError::WrongParentInfo);
        }
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = known.get(i).copied().unwrap_or(false);
            if !hit {
                if p.exclusion() != matched {
                    continue;
                }
                hit = p.matches(file).ok_or(PatternError::BadPattern)?;
                if !hit && known.is_empty() {
                    hit = parent_matches(p, &path::dir(file));
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !p.exclusion();
            }
        }
        Ok((matched, info))
    }

    /// The shared loop: a pattern is only tried when it could change the result.
    fn evaluate(
        &self,
        file: &str,
        parent_check: impl Fn(&Pattern) -> bool,
    ) -> Result<bool, PatternError> {
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion() != matched {
                continue;
            }
            let hit = p.matches(file).ok_or(PatternError::BadPattern)? || parent_check(p);
            if hit {
                matched = !p.exclusion();
            }
        }
        Ok(matched)
    }
}

/// Whether `pattern` matches any ancestor prefix of `parent` (errors count as no match).
fn parent_matches(pattern: &Pattern, parent: &str) -> bool {
    if parent == "." {
        return false;
    }
    let dirs: Vec<&str> = parent.split('/').collect();
    (1..=dirs.len()).any(|n| pattern.matches(&dirs[..n].join("/")) == Some(true))
}

/// Upstream's deprecated `Matches(file, patterns)` function: the cleaned path `.` never
/// matches.
pub fn simple_matches(file: &str, patterns: &[impl AsRef<str>]) -> Result<bool, PatternError> {
    let pm = PatternMatcher::new(patterns)?;
    let file = path::clean(file);
    if file == "." {
        return Ok(false);
    }
    pm.matches(&file)
}

/// `MatchesOrParentMatches(file, patterns)` as a function: the cleaned path `.` never matches.
pub fn matches_or_parent_matches(
    file: &str,
    patterns: &[impl AsRef<str>],
) -> Result<bool, PatternError> {
    let pm = PatternMatcher::new(patterns)?;
    let file = path::clean(file);
    if file == "." {
        return Ok(false);
    }
    pm.matches_or_parent_matches(&file)
}
