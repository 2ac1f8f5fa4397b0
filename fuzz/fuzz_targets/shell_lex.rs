//! Fuzz the shell-word lexer with both escape characters: no panic, no hang on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ossb_core::dockerfile::shell::Lexer;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut env = BTreeMap::new();
    env.insert("A".to_string(), "a b  c".to_string());
    env.insert("EMPTY".to_string(), String::new());
    env.insert("UNI".to_string(), "한국어".to_string());
    for escape in ['\\', '`'] {
        let lexer = Lexer::new(escape);
        let _ = lexer.process_word(text, &env);
        let _ = lexer.process_words(text, &env);
        let _ = lexer.process_word_with_matches(text, &env);
    }
});
