//! The build context: `.dockerignore` rules applied while the directory is scanned, once.

use crate::dockerignore::{PatternMatcher, read_ignore_file};
use crate::error::{Error, ExitCode};
use crate::exec::context::{ContextScan, scan_context};
use std::path::{Path, PathBuf};

/// Find the ignore file: `<Dockerfile>.dockerignore` beside the Dockerfile wins over
/// `<context>/.dockerignore`, as in BuildKit.
pub fn ignore_file(context: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    if let Some(df) = dockerfile {
        let mut name = df.file_name()?.to_os_string();
        name.push(".dockerignore");
        let specific = df.with_file_name(name);
        if specific.is_file() {
            return Some(specific);
        }
    }
    let generic = context.join(".dockerignore");
    generic.is_file().then_some(generic)
}

/// Read the ignore rules (none when there is no ignore file).
pub fn load_matcher(path: Option<&Path>) -> Result<Option<PatternMatcher>, Error> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let patterns = read_ignore_file(&text);
    PatternMatcher::new(&patterns).map(Some).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("invalid pattern in {}: {e}", path.display()),
        )
    })
}

/// Scan the context directory with the ignore rules applied.
pub fn scan(context: &Path, matcher: Option<&PatternMatcher>) -> Result<ContextScan, Error> {
    let meta = std::fs::metadata(context).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!(
                "build context {} is not readable: {e} (pass an existing directory as CONTEXT)",
                context.display()
            ),
        )
    })?;
    if !meta.is_dir() {
        return Err(Error::new(
            ExitCode::Build,
            format!("build context {} is not a directory", context.display()),
        ));
    }
    let exclusions = matcher.is_some_and(|m| m.exclusions());
    let exclude = |rel: &str, is_dir: bool| -> bool {
        let Some(m) = matcher else { return false };
        // A pattern error excludes nothing; the matcher reports it on the first real use.
        let hit = m.matches_or_parent_matches(rel).unwrap_or(false);
        // With `!` patterns, a directory's contents may be re-included: keep walking it.
        hit && !(is_dir && exclusions)
    };
    scan_context(context, &exclude).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot read the build context: {e}"),
        )
    })
}
