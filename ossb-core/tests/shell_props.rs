//! Property tests: the shell lexer and the `.dockerignore` matcher never panic.

use std::collections::BTreeMap;

use ossb_core::dockerfile::shell::Lexer;
use ossb_core::dockerignore::{MatchInfo, PatternMatcher, read_ignore_file, simple_matches};
use proptest::prelude::*;

/// Words biased towards the characters the lexer treats specially.
fn word() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "*", "\\", "`", "'", "\"", " ", "\n",
        "a", "X", "1", "@", "안", "\u{feff}",
    ]);
    prop_oneof![
        prop::collection::vec(special, 0..40).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

fn env() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(vec!["a", "X", "1", "@"]), word(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn pattern_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "*",
        "**",
        "?",
        "[",
        "]",
        "^",
        "-",
        "\\",
        "/",
        "!",
        ".",
        "a",
        "z",
        "[:alpha:]",
        "(",
        "$",
        " ",
    ]);
    prop_oneof![
        prop::collection::vec(special, 0..16).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn lexer_never_panics(input in word(), env in env(), backtick in any::<bool>(),
                          raw in any::<bool>(), skip_unset in any::<bool>()) {
        let mut lexer = Lexer::new(if backtick { '`' } else { '\\' });
        lexer.raw_quotes = raw;
        lexer.raw_escapes = raw;
        lexer.skip_unset_env = skip_unset;
        let one = lexer.process_word(&input, &env);
        let many = lexer.process_words(&input, &env);
        // Both entry points agree on success or failure.
        prop_assert_eq!(one.is_ok(), many.is_ok());
    }

    #[test]
    fn matcher_never_panics(patterns in prop::collection::vec(pattern_text(), 0..4),
                            path in pattern_text()) {
        let _ = simple_matches(&path, &patterns);
        if let Ok(pm) = PatternMatcher::new(&patterns) {
            let _ = pm.matches(&path);
            let _ = pm.matches_or_parent_matches(&path);
            let _ = pm.matches_using_parent_results(&path, MatchInfo::default());
        }
        let _ = read_ignore_file(&patterns.join("\n"));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let word = "${a:-".repeat(5000) + &"}".repeat(5000);
    let env = BTreeMap::new();
    assert!(Lexer::new('\\').process_word(&word, &env).is_err());
}

#[test]
fn long_star_patterns_stay_fast() {
    let env: BTreeMap<String, String> = [("V".to_string(), "a".repeat(2000))].into();
    let word = format!("${{V%%{}b}}", "*".repeat(2000));
    let out = Lexer::new('\\').process_word(&word, &env);
    assert_eq!(out.ok(), Some("a".repeat(2000)));
}
