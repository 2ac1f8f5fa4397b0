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

/// Fuzz regression (shell_lex, 2026-12-02): nested `${A//pattern/replacement}` with an
/// empty pattern multiply the value's length at every level; this 130-byte word took
/// seconds and hundreds of megabytes before results were bounded.
#[test]
fn nested_replace_all_is_bounded_in_time() {
    let word = "$E/EG\\DP${A////\\${A///\u{0}\u{0}\u{0}a//P${A/// ///P${A////\\${A//////\\${A///\u{0}\u{0}\u{0}a//P${A/// ///P$\u{1}}////\\${A///\"\" /a}/PW_a\"\" /a}/PW_a}}/a}/PW_a}}";
    let mut env = BTreeMap::new();
    env.insert("A".to_string(), "a b  c".to_string());
    let started = std::time::Instant::now();
    for escape in ['\\', '`'] {
        let lexer = Lexer::new(escape);
        let _ = lexer.process_word(word, &env);
        let _ = lexer.process_words(word, &env);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // A deep enough nesting is refused with a message that says what to simplify.
    let mut deep = "zz".to_string();
    for _ in 0..4 {
        deep = format!("${{A///{deep}}}");
    }
    env.insert("A".to_string(), "a".repeat(64));
    let err = Lexer::new('\\').process_word(&deep, &env);
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("simplify the expression")),
        "{err:?}"
    );
}
