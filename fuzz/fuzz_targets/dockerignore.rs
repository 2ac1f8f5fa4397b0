//! Fuzz the `.dockerignore` reader and matcher: the first line of the input is a path, the
//! rest is an ignore file. No panic, no hang on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ossb_core::dockerignore::{PatternMatcher, read_ignore_file};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, file) = text.split_once('\n').unwrap_or((text, ""));
    let patterns = read_ignore_file(file);
    if let Ok(m) = PatternMatcher::new(&patterns) {
        let _ = m.matches(path);
        let _ = m.matches_or_parent_matches(path);
    }
});
