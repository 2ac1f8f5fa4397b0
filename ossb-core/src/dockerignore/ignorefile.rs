//! Reading a `.dockerignore` file into patterns (`ignorefile.ReadAll` rules).

use super::path::clean;

/// Turns `.dockerignore` text into the pattern list: `#` in column 0 starts a comment, lines
/// are trimmed, blank lines dropped, paths cleaned with a leading `/` removed, and `!` kept as
/// a prefix (spaces after it removed). A lone `!` is kept; the matcher rejects it later.
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}
